// Admission webhooks: validate and mutate handlers, JSON Patch output (escaping, arrays,
// removals, checked by applying it with the fake server's independent RFC 6902 code), refusals
// for identity changes, handler errors and time-outs, malformed reviews, and the derived
// webhook configurations.

import assert from "node:assert/strict";
import { z } from "zod";
import { Api, type KubeObject } from "../../api.ts";
import { defineCustomResource } from "../../custom_resource.ts";
import { jsonPatch } from "../../testing/_patch.ts";
import { VirtualClock } from "../../testing/mod.ts";
import {
  AdmissionDenied,
  type AdmissionRequest,
  admissionRequestOf,
  allow,
  deny,
  mutate,
  validate,
  webhookConfigurations,
} from "../../webhook/mod.ts";
import { test } from "../_test.ts";

const Foo = defineCustomResource({
  group: "example.com",
  version: "v1",
  kind: "Foo",
  namespaced: true,
  spec: z.object({ replicas: z.number().int().default(1), image: z.string().optional() }),
});

const CM = Api.v1ConfigMap();

function request<T extends KubeObject>(
  object: T | null,
  extra: Partial<AdmissionRequest<T>> = {},
): AdmissionRequest<T> {
  return {
    uid: "u-1",
    kind: { group: "", version: "v1", kind: "ConfigMap" },
    resource: { group: "", version: "v1", resource: "configmaps" },
    operation: "CREATE",
    userInfo: { username: "alice" },
    object,
    oldObject: null,
    dryRun: false,
    namespace: "default",
    name: object?.metadata?.name,
    ...extra,
  };
}

function decodePatch(patch: string | undefined): unknown[] {
  assert.ok(patch, "a patch");
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(patch), (c) => c.charCodeAt(0))));
}

const cm = (data: Record<string, string>, labels: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "a", namespace: "default", labels },
  data,
});

test("validate: allow, deny with message, reason and code, warnings; nothing returned admits", async () => {
  const w = validate(CM, (req) => {
    const color = req.object?.data?.color;
    if (color === "red") {
      return deny("data.color must not be red", { reason: "Invalid", code: 422 });
    }
    if (color === "blue") return allow("blue is deprecated");
    return undefined;
  });
  assert.deepEqual(await w.admit(request(cm({ color: "red" }))), {
    uid: "u-1",
    allowed: false,
    status: { message: "data.color must not be red", reason: "Invalid", code: 422 },
  });
  assert.deepEqual(await w.admit(request(cm({ color: "blue" }))), {
    uid: "u-1",
    allowed: true,
    warnings: ["blue is deprecated"],
  });
  assert.deepEqual(await w.admit(request(cm({}))), { uid: "u-1", allowed: true });
  // Defaults: Forbidden, 403.
  const plain = validate(CM, () => deny("no"), { name: "plain.example.com" });
  assert.deepEqual((await plain.admit(request(cm({})))).status, {
    message: "no",
    reason: "Forbidden",
    code: 403,
  });
});

test("validate: a thrown AdmissionDenied refuses; any other error refuses with a clear message, never rejects", async () => {
  const denied = validate(CM, () => {
    throw new AdmissionDenied("not today", { reason: "Invalid", code: 422 });
  });
  assert.equal((await denied.admit(request(cm({})))).status?.message, "not today");
  const broken = validate(CM, () => {
    throw new RangeError("token=abc123 leaked?");
  });
  const r = await broken.admit(request(cm({})));
  assert.equal(r.allowed, false);
  assert.equal(r.status?.code, 500);
  assert.match(r.status!.message!, /validate-configmaps\.core\.kube\.webhook.*failed.*RangeError/);
  assert.doesNotMatch(r.status!.message!, /abc123/, "the error's text is logged, not answered");
  const rejects = validate(CM, () => Promise.reject(new Error("x")));
  assert.equal((await rejects.admit(request(cm({})))).allowed, false);
});

test("validate: a handler that hangs past timeoutSeconds is refused before the API server gives up; its signal aborts", async () => {
  const clock = new VirtualClock();
  let aborted = false;
  const w = validate(CM, (_req, ctx) =>
    new Promise<void>((resolve) => {
      ctx.signal.addEventListener("abort", () => {
        aborted = true;
        resolve();
      });
    }), { timeoutSeconds: 2, clock });
  const pending = w.admit(request(cm({})));
  await clock.advance(1749);
  let settled = false;
  pending.then(() => settled = true);
  await clock.flush();
  assert.equal(settled, false, "still waiting at 1749 ms");
  await clock.advance(1);
  const r = await pending;
  assert.equal(r.allowed, false);
  assert.equal(r.status?.code, 504);
  assert.match(r.status!.message!, /did not answer within 1750 ms/);
  assert.equal(aborted, true);
});

test("validate: custom resources are parsed with their schema; a schema violation is a 422 naming the field", async () => {
  let seen: unknown;
  const w = validate(Foo, (req) => {
    seen = req.object?.spec.replicas;
  });
  const foo = { apiVersion: "example.com/v1", kind: "Foo", metadata: { name: "f" }, spec: {} };
  assert.equal((await w.admit(request(foo as never))).allowed, true);
  assert.equal(seen, 1, "the zod default");
  const bad = { ...foo, spec: { replicas: "three" } };
  const r = await w.admit(request(bad as never));
  assert.equal(r.allowed, false);
  assert.equal(r.status?.code, 422);
  assert.match(r.status!.message!, /spec\.replicas/);
});

test("mutate: the JSON Patch escapes ~ and /, handles arrays and removals, and applies to the original to give the handler's object", async () => {
  const original = {
    ...cm({ keep: "1", drop: "2" }, { "app.kubernetes.io/name": "x", "a~b": "y" }),
    list: [1, 2, 3, 4],
    nested: { gone: true, arr: [{ a: 1 }, { b: 2 }] },
  };
  let want: unknown;
  const w = mutate(CM, (o) => {
    const x = o as unknown as typeof original;
    delete (x.data as Record<string, string>).drop;
    x.metadata.labels["app.kubernetes.io/name"] = "z";
    delete x.metadata.labels["a~b"];
    x.metadata.labels["c~/d"] = "new";
    x.list = [1, 3];
    x.nested = { arr: [{ a: 1 }, { b: 3 }, { c: 4 }] } as never;
    (x as Record<string, unknown>).undef = undefined;
    want = JSON.parse(JSON.stringify(x));
  });
  const r = await w.admit(request(original as never));
  assert.equal(r.allowed, true);
  assert.equal(r.patchType, "JSONPatch");
  const ops = decodePatch(r.patch);
  const paths = ops.map((o) => (o as { path: string }).path);
  assert.ok(paths.includes("/metadata/labels/app.kubernetes.io~1name"), paths.join(" "));
  assert.ok(paths.includes("/metadata/labels/a~0b"), paths.join(" "));
  assert.ok(paths.includes("/metadata/labels/c~0~1d"), paths.join(" "));
  assert.ok(!paths.includes("/undef"), "undefined is absent, not a removal of a missing field");
  assert.deepEqual(jsonPatch(structuredClone(original), ops), want);
  assert.notDeepEqual(want, original);
});

test("mutate: no change answers no patch; in-place changes and returned objects both work", async () => {
  const none = mutate(CM, () => {});
  assert.deepEqual(await none.admit(request(cm({ a: "1" }))), { uid: "u-1", allowed: true });
  const returned = mutate(CM, (o) => ({ ...o, data: { a: "2" } }));
  const ops = decodePatch((await returned.admit(request(cm({ a: "1" })))).patch);
  assert.deepEqual(ops, [{ op: "replace", path: "/data/a", value: "2" }]);
});

test("mutate: changing name, namespace, kind or apiVersion is refused with the field, the old and the new value", async () => {
  for (
    const [field, change] of [
      ["metadata.name", (o: KubeObject) => o.metadata!.name = "b"],
      ["metadata.namespace", (o: KubeObject) => o.metadata!.namespace = "other"],
      ["kind", (o: KubeObject) => (o as { kind: string }).kind = "Secret"],
      ["apiVersion", (o: KubeObject) => (o as { apiVersion: string }).apiVersion = "v2"],
    ] as const
  ) {
    const w = mutate(CM, (o) => {
      change(o);
    }, { name: "m.example.com" });
    const r = await w.admit(request(cm({})));
    assert.equal(r.allowed, false, field);
    assert.match(r.status!.message!, new RegExp(`changed ${field.replace(".", "\\.")} from`));
    assert.equal(r.patch, undefined);
  }
});

test("mutate: custom resources get the schema's defaults in the patch; throwing AdmissionDenied refuses", async () => {
  const w = mutate(Foo, (foo) => {
    if (foo.spec.image === "forbidden") throw new AdmissionDenied("image forbidden");
    foo.spec.image ??= "nginx";
  });
  const foo = { apiVersion: "example.com/v1", kind: "Foo", metadata: { name: "f" }, spec: {} };
  const ops = decodePatch((await w.admit(request(foo as never))).patch);
  assert.deepEqual(jsonPatch(structuredClone(foo), ops), {
    ...foo,
    spec: { replicas: 1, image: "nginx" },
  });
  const r = await w.admit(request({ ...foo, spec: { image: "forbidden" } } as never));
  assert.equal(r.status?.message, "image forbidden");
});

test("admissionRequestOf: malformed and unknown-version reviews name what is wrong", () => {
  assert.match(String(admissionRequestOf([])), /not a JSON object/);
  assert.match(String(admissionRequestOf({ kind: "Pod" })), /kind is "Pod"/);
  assert.match(
    String(admissionRequestOf({ kind: "AdmissionReview", apiVersion: "admission.k8s.io/v1beta1" })),
    /admission\.k8s\.io\/v1beta1.*only admission\.k8s\.io\/v1/,
  );
  const base = { kind: "AdmissionReview", apiVersion: "admission.k8s.io/v1" };
  assert.match(String(admissionRequestOf(base)), /request is missing/);
  assert.match(String(admissionRequestOf({ ...base, request: { operation: "CREATE" } })), /uid/);
  assert.match(
    String(admissionRequestOf({ ...base, request: { uid: "x", operation: "PATCH" } })),
    /operation "PATCH"/,
  );
  assert.match(
    String(admissionRequestOf({ ...base, request: { uid: "x", operation: "CREATE", object: 3 } })),
    /request\.object is not an object/,
  );
  const ok = admissionRequestOf({ ...base, request: { uid: "x", operation: "DELETE" } });
  assert.equal(typeof ok, "object");
  assert.equal((ok as AdmissionRequest).object, null);
  assert.equal((ok as AdmissionRequest).dryRun, false);
});

test("options: invalid names, paths and timeouts are refused when the webhook is made", () => {
  assert.throws(() => validate(CM, () => {}, { name: "short" }), /at least three segments/);
  assert.throws(() => validate(CM, () => {}, { timeoutSeconds: 31 }), /1 to 30/);
  assert.throws(() => validate(CM, () => {}, { path: "x" }), /start with "\/"/);
  assert.equal(validate(Foo, () => {}).path, "/validate-example-com-v1-foo");
  assert.equal(mutate(CM, () => {}).path, "/mutate-core-v1-configmap");
});

test("webhookConfigurations: rules from the Api, policies, selectors, match conditions, URL or Service client config, CA bundle", () => {
  const v = validate(Foo, () => {}, {
    operations: ["CREATE", "UPDATE", "DELETE"],
    failurePolicy: "Ignore",
    timeoutSeconds: 5,
    subresources: ["status"],
    namespaceSelector: { matchLabels: { team: "a" } },
    matchConditions: [{ name: "not-admin", expression: "request.userInfo.username != 'admin'" }],
  });
  const m = mutate(Api.v1Namespace(), () => {}, { reinvocationPolicy: "IfNeeded" });
  const { validating, mutating } = webhookConfigurations([v, m], {
    name: "foo-operator",
    clientConfig: { url: "https://127.0.0.1:9443/" },
    caBundle: "PEM",
  });
  assert.equal(validating?.metadata?.name, "foo-operator");
  const vw = validating!.webhooks![0];
  assert.deepEqual(vw.rules, [{
    apiGroups: ["example.com"],
    apiVersions: ["v1"],
    resources: ["foos", "foos/status"],
    operations: ["CREATE", "UPDATE", "DELETE"],
    scope: "Namespaced",
  }]);
  assert.equal(vw.clientConfig.url, "https://127.0.0.1:9443/validate-example-com-v1-foo");
  assert.equal(vw.clientConfig.caBundle, btoa("PEM"));
  assert.equal(vw.failurePolicy, "Ignore");
  assert.equal(vw.sideEffects, "None");
  assert.equal(vw.timeoutSeconds, 5);
  assert.deepEqual(vw.admissionReviewVersions, ["v1"]);
  assert.deepEqual(vw.namespaceSelector, { matchLabels: { team: "a" } });
  assert.equal(vw.matchConditions?.[0].name, "not-admin");
  const mw = mutating!.webhooks![0];
  assert.equal(mw.rules![0].scope, "Cluster");
  assert.deepEqual(mw.rules![0].apiGroups, [""]);
  assert.equal(mw.reinvocationPolicy, "IfNeeded");
  assert.equal(mw.failurePolicy, "Fail");
  const svc = webhookConfigurations([v], {
    name: "x",
    clientConfig: { service: { namespace: "ops", name: "foo-webhook" } },
  });
  assert.deepEqual(svc.validating!.webhooks![0].clientConfig, {
    service: {
      namespace: "ops",
      name: "foo-webhook",
      path: "/validate-example-com-v1-foo",
      port: 443,
    },
  });
  assert.equal(svc.mutating, undefined);
  assert.throws(
    () => webhookConfigurations([v, v], { name: "x", clientConfig: { url: "https://h" } }),
    /Two webhooks are named/,
  );
  assert.throws(
    () => webhookConfigurations([v], { name: "x", clientConfig: { url: "http://h" } }),
    /must be https/,
  );
});
