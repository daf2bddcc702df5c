// Conversion: a hub and a spoke version, lossless round trips (fields the spoke lacks survive in
// an annotation; changes made through the spoke are kept), a list of mixed versions in one
// review, failures that name the object, and the multi-version CRD with webhook conversion.

import assert from "node:assert/strict";
import { z } from "zod";
import type { KubeObject } from "../../api.ts";
import { defineCustomResource } from "../../custom_resource.ts";
import {
  conversionRequestOf,
  defineConversion,
  generateCertificates,
  HUB_ANNOTATION,
  WebhookServer,
} from "../../webhook/mod.ts";
import { test } from "../_test.ts";

const common = { group: "example.com", kind: "Foo", namespaced: true } as const;
const FooV1 = defineCustomResource({
  ...common,
  version: "v1",
  spec: z.object({
    replicas: z.int(),
    image: z.string(),
    paused: z.boolean().optional(),
  }),
  status: z.object({ ready: z.int().optional() }),
});
const FooV1alpha1 = defineCustomResource({
  ...common,
  version: "v1alpha1",
  spec: z.object({ size: z.int(), image: z.string() }),
  status: z.object({ ready: z.int().optional() }),
});

const conversion = defineConversion({
  hub: FooV1,
  spokes: [{
    version: FooV1alpha1,
    toHub: (o) => ({
      spec: { replicas: o.spec.size, image: o.spec.image },
      ...(o.status ? { status: o.status } : {}),
    }),
    fromHub: (o) => ({
      spec: { size: o.spec.replicas, image: o.spec.image },
      ...(o.status ? { status: o.status } : {}),
    }),
  }],
});

const v1 = (name: string, spec: Record<string, unknown>): KubeObject =>
  ({
    apiVersion: "example.com/v1",
    kind: "Foo",
    metadata: { name, namespace: "default", uid: `uid-${name}`, labels: { a: "b" } },
    spec,
    status: { ready: 2 },
  }) as KubeObject;

test("conversion: hub → spoke → hub is lossless: a field the spoke lacks survives in an annotation", () => {
  const stored = v1("a", { replicas: 3, image: "nginx", paused: true });
  const alpha = conversion.convert(stored, "example.com/v1alpha1") as unknown as {
    spec: unknown;
    metadata: { annotations: Record<string, string>; labels: unknown };
  };
  assert.deepEqual(alpha.spec, { size: 3, image: "nginx" });
  assert.deepEqual(alpha.metadata.labels, { a: "b" });
  assert.ok(alpha.metadata.annotations[HUB_ANNOTATION]);
  const back = conversion.convert(alpha as unknown as KubeObject, "example.com/v1");
  assert.deepEqual(back, stored, "unchanged, the annotation gone");
});

test("conversion: a change made through the spoke is kept; the lost field still comes back", () => {
  const stored = v1("a", { replicas: 3, image: "nginx", paused: true });
  const alpha = conversion.convert(stored, "example.com/v1alpha1") as unknown as {
    spec: { size: number; image: string };
  };
  alpha.spec.size = 5;
  alpha.spec.image = "httpd";
  const back = conversion.convert(alpha as unknown as KubeObject, "example.com/v1") as unknown as {
    spec: unknown;
  };
  assert.deepEqual(back.spec, { replicas: 5, image: "httpd", paused: true });
  // An object created in the spoke (no annotation) converts with the converter alone.
  const fresh = {
    apiVersion: "example.com/v1alpha1",
    kind: "Foo",
    metadata: { name: "b" },
    spec: { size: 1, image: "x" },
  } as KubeObject;
  assert.deepEqual(
    (conversion.convert(fresh, "example.com/v1") as unknown as { spec: unknown }).spec,
    { replicas: 1, image: "x" },
  );
});

test("conversion: a review converts a list of mixed versions in one go, in order", () => {
  const a = v1("a", { replicas: 1, image: "x" });
  const b = conversion.convert(v1("b", { replicas: 2, image: "y" }), "example.com/v1alpha1");
  const response = conversion.review({
    uid: "r-1",
    desiredAPIVersion: "example.com/v1alpha1",
    objects: [a, b],
  });
  assert.equal(response.result.status, "Success");
  assert.equal(response.uid, "r-1");
  assert.deepEqual(
    response.convertedObjects.map((
      o,
    ) => [o.metadata?.name, (o as { apiVersion?: string }).apiVersion]),
    [["a", "example.com/v1alpha1"], ["b", "example.com/v1alpha1"]],
  );
  const toHub = conversion.review({
    uid: "r-2",
    desiredAPIVersion: "example.com/v1",
    objects: response.convertedObjects,
  });
  assert.deepEqual(toHub.convertedObjects[0], a);
});

test("conversion: unknown versions and throwing converters are failures that name the object", () => {
  const unknown = conversion.review({
    uid: "r",
    desiredAPIVersion: "example.com/v2",
    objects: [],
  });
  assert.equal(unknown.result.status, "Failure");
  assert.match(
    unknown.result.message!,
    /cannot convert to example\.com\/v2: Foo has example\.com\/v1, example\.com\/v1alpha1/,
  );
  const odd = conversion.review({
    uid: "r",
    desiredAPIVersion: "example.com/v1",
    objects: [
      {
        apiVersion: "example.com/v0",
        kind: "Foo",
        metadata: { name: "z", namespace: "ns" },
      } as KubeObject,
    ],
  });
  assert.match(
    odd.result.message!,
    /Foo ns\/z from example\.com\/v0 to example\.com\/v1 failed: unknown version/,
  );
  const broken = defineConversion({
    hub: FooV1,
    spokes: [{
      version: FooV1alpha1,
      toHub: () => {
        throw new RangeError("secret-ish detail");
      },
      fromHub: (o) => ({ spec: { size: o.spec.replicas, image: o.spec.image } }),
    }],
  });
  const r = broken.review({
    uid: "r",
    desiredAPIVersion: "example.com/v1",
    objects: [
      {
        apiVersion: "example.com/v1alpha1",
        kind: "Foo",
        metadata: { name: "q" },
        spec: {},
      } as KubeObject,
    ],
  });
  assert.equal(r.result.status, "Failure");
  assert.match(r.result.message!, /RangeError \(see the operator's log\)/);
  assert.doesNotMatch(r.result.message!, /secret-ish/);
  assert.throws(
    () =>
      defineConversion({
        hub: FooV1,
        spokes: [{
          version: defineCustomResource({
            ...common,
            kind: "Bar",
            version: "v2",
            spec: z.object({}),
          }),
          toHub: () => ({}) as never,
          fromHub: () => ({}) as never,
        }],
      }),
    /every version must have the hub's group, kind, plural and scope/,
  );
});

test("conversion: the CRD serves every version, stores the hub, converts by webhook with the CA bundle", () => {
  const crd = conversion.crd({ clientConfig: { url: "https://127.0.0.1:9443" }, caBundle: "PEM" });
  assert.deepEqual(
    crd.spec.versions.map((v) => [v.name, v.served, v.storage]),
    [["v1alpha1", true, false], ["v1", true, true]],
  );
  assert.ok(crd.spec.versions[0].schema?.openAPIV3Schema.properties?.spec);
  assert.deepEqual(crd.spec.conversion, {
    strategy: "Webhook",
    webhook: {
      conversionReviewVersions: ["v1"],
      clientConfig: {
        url: "https://127.0.0.1:9443/convert-example-com-foo",
        caBundle: btoa("PEM"),
      },
    },
  });
  const svc = conversion.crd({ clientConfig: { service: { namespace: "ops", name: "hook" } } });
  assert.deepEqual(
    (svc.spec.conversion as unknown as { webhook: { clientConfig: unknown } }).webhook.clientConfig,
    {
      service: { namespace: "ops", name: "hook", path: "/convert-example-com-foo", port: 443 },
    },
  );
});

test("conversionRequestOf and the server: malformed reviews are 400s naming the problem; a good one is answered", async () => {
  assert.match(
    String(conversionRequestOf({ kind: "AdmissionReview" })),
    /expected "ConversionReview"/,
  );
  assert.match(
    String(
      conversionRequestOf({ kind: "ConversionReview", apiVersion: "apiextensions.k8s.io/v1beta1" }),
    ),
    /only apiextensions\.k8s\.io\/v1/,
  );
  const base = { kind: "ConversionReview", apiVersion: "apiextensions.k8s.io/v1" };
  assert.match(
    String(
      conversionRequestOf({ ...base, request: { uid: "u", desiredAPIVersion: "x", objects: [1] } }),
    ),
    /objects\[0\]/,
  );
  const g = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 60_000 });
  const server = new WebhookServer({
    webhooks: [],
    conversions: [conversion],
    certificates: {
      current: () => g,
      caBundle: () => g.caCert,
      ready: () => true,
      run: () => Promise.resolve(),
    },
  });
  const post = (body: unknown) =>
    server.handle(
      new Request("https://x/convert-example-com-foo", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
  const bad = await post({ ...base, request: {} });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /not a conversion review: request\.uid is missing/);
  const good = await post({
    ...base,
    request: {
      uid: "u",
      desiredAPIVersion: "example.com/v1alpha1",
      objects: [v1("a", { replicas: 1, image: "i" })],
    },
  });
  const review = await good.json();
  assert.equal(review.kind, "ConversionReview");
  assert.equal(review.response.result.status, "Success");
  assert.deepEqual(review.response.convertedObjects[0].spec, { size: 1, image: "i" });
});
