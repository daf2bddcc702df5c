// defineCustomResource against the real kube-apiserver: the generated CRD is accepted as a
// structural schema, becomes Established, is enforced, and every verb works on its objects.

import assert from "node:assert/strict";
import { z } from "zod";
import { Api } from "../../api.ts";
import type { Client } from "../../client.ts";
import {
  CustomResource,
  type CustomResourceDefinition,
  defineCustomResource,
} from "../../custom_resource.ts";
import { type ApiError, isInvalid, isNotFound } from "../../errors.ts";
import { e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";

const crds = new Api<CustomResourceDefinition>({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});

const Foo = defineCustomResource({
  group: "e2e.denokube.dev",
  version: "v1",
  kind: "Foo",
  namespaced: true,
  shortNames: ["fo"],
  categories: ["denokube"],
  spec: z.object({
    replicas: z.int().min(0).max(50).default(1).describe("Desired replicas."),
    image: z.string().min(1).describe("The container image."),
    mode: z.enum(["Fast", "Safe"]).optional(),
    port: z.union([z.int().min(1).max(65535), z.string().regex(/^[a-z][a-z0-9-]*$/)]).optional(),
    items: z.array(z.object({ name: z.string(), size: z.number().positive() })).optional(),
    labels: z.record(z.string(), z.string()).optional(),
  }),
  status: z.object({
    replicas: z.int().optional(),
    phase: z.enum(["Pending", "Ready"]).optional(),
    selector: z.string().optional(),
    observedGeneration: z.int().optional(),
  }),
  printerColumns: [
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Image", type: "string", jsonPath: ".spec.image" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
  ],
  scale: { labelSelectorPath: ".status.selector" },
});

// Every construct the converter supports, in one schema, to prove the API server accepts them.
const KitchenSink = defineCustomResource({
  group: "e2e.denokube.dev",
  version: "v1alpha1",
  kind: "KitchenSink",
  plural: "kitchensinks",
  namespaced: false,
  spec: z.object({
    text: z.string().min(1).max(20).regex(/^[a-z]+$/i),
    prefixed: z.string().startsWith("x-").endsWith("!").optional(),
    email: z.email().optional(),
    uri: z.url().optional(),
    uuid: z.uuid().optional(),
    uuid4: z.uuidv4().optional(),
    ipv4: z.ipv4().optional(),
    ipv6: z.ipv6().optional(),
    cidr: z.cidrv4().optional(),
    mac: z.mac().optional(),
    when: z.iso.datetime({ offset: true }).optional(),
    day: z.iso.date().optional(),
    bytes: z.base64().optional(),
    host: z.hostname().optional(),
    cuid: z.cuid().optional(),
    ulid: z.ulid().optional(),
    nanoid: z.nanoid().optional(),
    emoji: z.emoji().optional(),
    isoTime: z.iso.time().optional(),
    template: z.templateLiteral(["v", z.int()]).optional(),
    named: z.string().regex(/^(?<major>\d+)\.(?<minor>\d+)$/).optional(),
    unicode: z.string().regex(/^\u00e9+$/u).optional(),
    ratio: z.number().gt(0).lt(1).optional(),
    even: z.int().multipleOf(2).optional(),
    i32: z.int32().optional(),
    u32: z.uint32().optional(),
    f32: z.float32().optional(),
    f64: z.float64().optional(),
    flag: z.boolean().default(false),
    level: z.enum(["low", "high"]).nullable().optional(),
    lit: z.literal(["a", "b"]).optional(),
    numLit: z.literal([1, 2]).optional(),
    nullableText: z.string().nullable().optional(),
    intOrString: z.union([z.int(), z.string()]).optional(),
    scalars: z.union([z.email(), z.ipv4()]).optional(),
    source: z.discriminatedUnion("type", [
      z.object({ type: z.literal("git"), url: z.string() }),
      z.object({ type: z.literal("s3"), bucket: z.string(), region: z.string().optional() }),
    ]).optional(),
    both: z.object({ a: z.string() }).and(z.object({ b: z.int() })).optional(),
    map: z.record(z.string(), z.object({ n: z.int() })).optional(),
    fixedKeys: z.partialRecord(z.enum(["cpu", "memory"]), z.string()).optional(),
    free: z.record(z.string(), z.unknown()).optional(),
    anything: z.unknown(),
    loose: z.looseObject({ known: z.string().optional() }).optional(),
    ports: z.array(z.object({ name: z.string(), port: z.int() }))
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
      .optional(),
    limits: z.object({ min: z.int(), max: z.int() })
      .meta({
        "x-kubernetes-validations": [{ rule: "self.min <= self.max", message: "min > max" }],
      })
      .optional(),
    nested: z.array(z.array(z.object({ deep: z.string().default("d") }))).max(3).optional(),
  }),
});

/** Waits (at most 60 s) until the CRD reports Established=True. */
async function waitEstablished(client: Client, name: string): Promise<CustomResourceDefinition> {
  let last: CustomResourceDefinition | undefined;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    last = await client.get(crds, name);
    const conditions = last.status?.conditions ?? [];
    if (conditions.some((c) => c.type === "Established" && c.status === "True")) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`CRD ${name} not Established: ${JSON.stringify(last?.status)}`);
}

async function invalid(promise: Promise<unknown>, field: RegExp): Promise<ApiError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(isInvalid(error), `expected 422 Invalid, got ${error}`);
  assert.equal(error.status, 422);
  assert.match(error.message, field);
  return error;
}

e2eTest("custom resources: CRD from zod schemas, verbs, status, scale, validation", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("crd");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const foos = Foo.within(ns);

  await t.step("the real API server accepts the CRD and it becomes Established", async () => {
    const created = await client.create(crds, Foo.crd());
    assert.equal(created.metadata?.name, "foos.e2e.denokube.dev");
    const established = await waitEstablished(client, "foos.e2e.denokube.dev");
    assert.ok(
      established.status?.conditions?.some((c) =>
        c.type === "NamesAccepted" && c.status === "True"
      ),
    );
    // The server kept the schema as sent: nothing was dropped or rewritten.
    const sent = Foo.crd().spec.versions[0];
    const stored = established.spec.versions[0];
    assert.deepEqual(stored.schema, sent.schema);
    assert.deepEqual(stored.subresources, sent.subresources);
    assert.deepEqual(
      stored.additionalPrinterColumns?.map((c) => ({ ...c, priority: c.priority || undefined })),
      sent.additionalPrinterColumns?.map((c) => ({ ...c, priority: c.priority || undefined })),
    );
  });

  await t.step("create, get, list; the server applies defaults; .parse() reads them", async () => {
    const created = await client.create(foos, {
      metadata: { name: "a" },
      spec: { replicas: 2, image: "nginx", port: "http", items: [{ name: "x", size: 1.5 }] },
    });
    assert.equal(created.kind, "Foo");
    assert.equal(created.apiVersion, "e2e.denokube.dev/v1");
    // No replicas sent: the CRD's default fills it in.
    const defaulted = await client.create(foos, {
      metadata: { name: "b" },
      spec: { image: "busybox" } as never,
    });
    assert.equal(defaulted.spec.replicas, 1);
    const a = foos.parse(await client.get(foos, "a"));
    assert.equal(a.spec.replicas, 2);
    assert.equal(a.spec.port, "http");
    assert.deepEqual(a.spec.items, [{ name: "x", size: 1.5 }]);
    const list = await client.list(foos);
    assert.deepEqual(list.items.map((o) => foos.parse(o).metadata?.name).sort(), ["a", "b"]);
    const across = await client.list(Foo);
    assert.ok(across.items.some((o) => o.metadata?.namespace === ns));
  });

  await t.step("merge patch and server-side apply with a fieldManager", async () => {
    const merged = await client.patch(foos, "a", { spec: { mode: "Fast", labels: { k: "v" } } });
    assert.equal(foos.parse(merged).spec.mode, "Fast");
    assert.deepEqual(merged.spec.labels, { k: "v" });
    const applied = await client.apply(foos, {
      metadata: { name: "a" },
      spec: { image: "nginx:1.27", replicas: 3 },
    }, { fieldManager: "e2e-crd", force: true });
    const parsed = foos.parse(applied);
    assert.equal(parsed.spec.image, "nginx:1.27");
    assert.equal(parsed.spec.replicas, 3);
    assert.equal(parsed.spec.mode, "Fast", "fields of other managers stay");
    assert.ok(applied.metadata?.managedFields?.some((m) => m.manager === "e2e-crd"));
    // Server-side apply creates, too.
    const made = await client.apply(foos, {
      metadata: { name: "c" },
      spec: { image: "redis" },
    }, { fieldManager: "e2e-crd" });
    assert.equal(foos.parse(made).spec.replicas, 1);
  });

  await t.step("status subresource: replaceStatus and patchStatus", async () => {
    const current = await client.get(foos, "a");
    const replaced = await client.replaceStatus(foos, {
      ...current,
      status: { phase: "Pending", replicas: 0, selector: "app=a" },
    });
    assert.equal(foos.parse(replaced).status?.phase, "Pending");
    const patched = await client.patchStatus(foos, "a", {
      status: { phase: "Ready", replicas: 3 },
    });
    const parsed = foos.parse(patched);
    assert.equal(parsed.status?.phase, "Ready");
    assert.equal(parsed.status?.replicas, 3);
    assert.equal(parsed.status?.selector, "app=a");
    // Status is ignored on the main resource, spec on the status subresource.
    const viaMain = await client.patch(foos, "a", { status: { phase: "Pending" } });
    assert.equal(viaMain.status?.phase, "Ready");
    const viaStatus = await client.patchStatus(foos, "a", { spec: { replicas: 9 } });
    assert.equal(viaStatus.spec.replicas, 3);
    // An invalid status is rejected by the status schema.
    await invalid(
      client.patchStatus(foos, "a", { status: { phase: "Broken" } }),
      /status\.phase/,
    );
    const applied = await client.patchStatus(foos, "a", {
      apiVersion: Foo.apiVersion,
      kind: Foo.kind,
      metadata: { name: "a" },
      status: { observedGeneration: 4 },
    }, { type: "apply", fieldManager: "e2e-status" });
    assert.equal(foos.parse(applied).status?.observedGeneration, 4);
  });

  await t.step("scale subresource reads and writes .spec.replicas", async () => {
    const scale = await client.getScale(foos, "a");
    assert.equal(scale.spec?.replicas, 3);
    assert.equal(scale.status?.replicas, 3);
    assert.equal(scale.status?.selector, "app=a");
    const scaled = await client.patchScale(foos, "a", { spec: { replicas: 5 } });
    assert.equal(scaled.spec?.replicas, 5);
    assert.equal(foos.parse(await client.get(foos, "a")).spec.replicas, 5);
  });

  await t.step("discovery finds the kind; kubectl lists it with the printer columns", async () => {
    const { api, resource } = await client.discover(Foo.apiVersion, "Foo");
    assert.equal(api.plural, "foos");
    assert.equal(api.namespaced, true);
    assert.deepEqual(resource.shortNames, ["fo"]);
    // Fully qualified: other tests in this process may define another `foos` (clux.dev), and a bare
    // plural is then ambiguous to kubectl, whose discovery cache may still hold the other group.
    const out = await kubectl(cp.kubeconfigPath, "get", "foos.e2e.denokube.dev", "-n", ns);
    const [header, ...rows] = out.trim().split("\n");
    // With printer columns, kubectl shows exactly those (no AGE unless it is one of them).
    assert.match(header, /^NAME\s+REPLICAS\s+IMAGE\s+PHASE$/);
    const a = rows.find((r) => r.startsWith("a "));
    assert.ok(a, out);
    assert.match(a, /^a\s+5\s+nginx:1\.27\s+Ready$/);
    assert.equal(rows.length, 3);
    const byShortName = await kubectl(cp.kubeconfigPath, "get", "fo", "-n", ns, "-o", "name");
    assert.match(byShortName, /^foo\.e2e\.denokube\.dev\/a$/m);
    const byCategory = await kubectl(cp.kubeconfigPath, "get", "denokube", "-n", ns, "-o", "name");
    assert.match(byCategory, /foo\.e2e\.denokube\.dev\/b/);
    const explained = await kubectl(
      cp.kubeconfigPath,
      "explain",
      "foos.spec.replicas",
      "--api-version",
      Foo.apiVersion,
    );
    assert.match(explained, /Desired replicas\./);
  });

  await t.step("the server enforces the schema: invalid objects get 422 Invalid", async () => {
    const make = (spec: unknown, name = "bad") =>
      client.create(foos, { metadata: { name }, spec } as never);
    await invalid(make({ replicas: "three", image: "x" }), /spec\.replicas.*integer/);
    await invalid(make({ replicas: 1.5, image: "x" }), /spec\.replicas/);
    await invalid(make({ replicas: 51, image: "x" }), /spec\.replicas.*50/);
    await invalid(make({ image: "" }), /spec\.image/);
    await invalid(make({ replicas: 1 }), /spec\.image.*Required/);
    await invalid(make({ image: "x", mode: "Slow" }), /spec\.mode.*"Fast", "Safe"/);
    await invalid(make({ image: "x", port: "Not-Valid" }), /spec\.port/);
    await invalid(make({ image: "x", port: 70000 }), /spec\.port/);
    await invalid(make({ image: "x", port: true }), /spec\.port/);
    await invalid(make({ image: "x", items: [{ name: "n", size: 0 }] }), /spec\.items\[0\]\.size/);
    await invalid(make({ image: "x", labels: { k: 1 } }), /spec\.labels\.k/);
    const missing = await client.create(foos, { metadata: { name: "nospec" } } as never)
      .catch((e) => e);
    assert.ok(isInvalid(missing), `expected 422, got ${missing}`);
    assert.match(missing.message, /spec.*Required/);
    // Nothing was stored.
    await assert.rejects(client.get(foos, "bad"), isNotFound);
  });

  await t.step(".parse() flags objects that bypass the TypeScript types", async () => {
    // Unknown fields are pruned by the server; a wrong type never gets in. What .parse() guards
    // against is data read with a schema that is stricter than the server's: here a narrower
    // client-side enum.
    const Narrow = defineCustomResource({
      group: "e2e.denokube.dev",
      version: "v1",
      kind: "Foo",
      namespaced: true,
      spec: z.object({ image: z.string(), mode: z.enum(["Safe"]) }),
    });
    const a = await client.get(foos, "a");
    assert.throws(
      () => Narrow.within(ns).parse(a),
      new RegExp(
        `^CustomResourceParseError: Invalid Foo ${ns}/a \\(e2e\\.denokube\\.dev/v1\\): ` +
          'spec\\.mode: Invalid input: expected "Safe"$',
      ),
    );
  });

  await t.step("delete", async () => {
    await client.delete(foos, "c");
    await assert.rejects(client.get(foos, "c"), isNotFound);
  });

  await t.step("every supported zod construct is accepted and enforced by the server", async () => {
    const installed = await KitchenSink.install(client, { fieldManager: "e2e", timeoutMs: 60_000 });
    assert.deepEqual(
      installed.spec.versions[0].schema,
      KitchenSink.crd().spec.versions[0].schema,
      "the server kept every keyword",
    );
    const sinks = KitchenSink;
    const valid = {
      text: "Hello",
      prefixed: "x-y!",
      email: "a@example.com",
      uri: "https://example.com/x",
      uuid: "123e4567-e89b-12d3-a456-426614174000",
      uuid4: "9b2c1c4e-3f0a-4d6b-8c1e-2a3b4c5d6e7f",
      ipv4: "10.0.0.1",
      ipv6: "::1",
      cidr: "10.0.0.0/8",
      mac: "00:1a:2b:3c:4d:5e",
      when: "2024-01-02T03:04:05+02:00",
      day: "2024-02-29",
      bytes: "aGVsbG8=",
      host: "example.com",
      cuid: "cjld2cjxh0000qzrmn831i7rn",
      ulid: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
      nanoid: "V1StGXR8_Z5jdHi6B-myT",
      emoji: "🙂",
      isoTime: "10:20:30",
      template: "v12",
      named: "1.2",
      unicode: "éé",
      ratio: 0.5,
      even: 4,
      i32: 7,
      u32: 4000000000,
      f32: 1.25,
      f64: 2.5,
      level: null,
      lit: "b",
      numLit: 2,
      nullableText: null,
      intOrString: 8080,
      scalars: "10.0.0.2",
      source: { type: "s3", bucket: "b" },
      both: { a: "x", b: 1 },
      map: { one: { n: 1 } },
      fixedKeys: { cpu: "1" },
      free: { deep: { er: [1, "two", { three: true }] } },
      anything: { any: ["thing"] },
      loose: { known: "k", unknown: { kept: 1 } },
      ports: [{ name: "http", port: 80 }, { name: "https", port: 443 }],
      limits: { min: 1, max: 2 },
      nested: [[{}], [{ deep: "x" }]],
    };
    const created = await client.create(sinks, { metadata: { name: "ok" }, spec: valid } as never);
    const parsed = sinks.parse(created);
    assert.equal(parsed.spec.flag, false, "default applied by the server");
    assert.deepEqual(parsed.spec.nested, [[{ deep: "d" }], [{ deep: "x" }]]);
    assert.equal(parsed.spec.level, null, "nullable enum keeps null");
    assert.equal(parsed.spec.nullableText, null);
    assert.deepEqual(parsed.spec.free, valid.free, "preserve-unknown-fields keeps everything");
    assert.deepEqual(parsed.spec.anything, valid.anything);
    assert.deepEqual(created.spec.loose, valid.loose, "looseObject keeps unknown fields");
    assert.equal(parsed.spec.u32, 4000000000);

    const reject = async (patch: Record<string, unknown>, field: RegExp) => {
      await invalid(
        client.create(sinks, { metadata: { name: "bad" }, spec: { ...valid, ...patch } } as never),
        field,
      );
    };
    await reject({ text: "no spaces" }, /spec\.text/);
    await reject({ text: "x".repeat(21) }, /spec\.text/);
    await reject({ prefixed: "x-y" }, /spec\.prefixed/);
    await reject({ email: "not-an-email" }, /spec\.email/);
    await reject({ uuid4: "123e4567-e89b-12d3-a456-426614174000" }, /spec\.uuid4/);
    await reject({ ipv4: "10.0.0.300" }, /spec\.ipv4/);
    await reject({ cidr: "10.0.0.0" }, /spec\.cidr/);
    await reject({ when: "yesterday" }, /spec\.when/);
    await reject({ day: "2023-02-29x" }, /spec\.day/);
    await reject({ cuid: "xyz" }, /spec\.cuid/);
    await reject({ template: "v1.5" }, /spec\.template/);
    await reject({ named: "1" }, /spec\.named/);
    await reject({ unicode: "e" }, /spec\.unicode/);
    await reject({ ratio: 1 }, /spec\.ratio/);
    await reject({ ratio: 0 }, /spec\.ratio/);
    await reject({ even: 3 }, /spec\.even/);
    await reject({ i32: 1.5 }, /spec\.i32/);
    await reject({ u32: -1 }, /spec\.u32/);
    await reject({ level: "mid" }, /spec\.level/);
    await reject({ lit: "c" }, /spec\.lit/);
    await reject({ numLit: 3 }, /spec\.numLit/);
    await reject({ intOrString: 1.5 }, /spec\.intOrString/);
    await reject({ intOrString: false }, /spec\.intOrString/);
    await reject({ scalars: "neither" }, /spec\.scalars/);
    await reject({ source: { type: "ftp", url: "u" } }, /spec\.source\.type/);
    await reject({ source: { type: "git" } }, /spec\.source/); // git needs url
    await reject({ source: { type: "git", bucket: "b" } }, /spec\.source/);
    await reject({ both: { a: "x" } }, /spec\.both\.b/);
    await reject({ map: { one: { n: "1" } } }, /spec\.map\.one\.n/);
    await reject({ fixedKeys: { cpu: 1 } }, /spec\.fixedKeys\.cpu/);
    await reject({ ports: [{ name: "a", port: 1 }, { name: "a", port: 2 }] }, /spec\.ports\[1\]/);
    await reject({ limits: { min: 3, max: 2 } }, /min > max/);
    await reject({ nested: [[], [], [], []] }, /spec\.nested/);
    await reject({ flag: "yes" }, /spec\.flag/);
  });

  await t.step("CustomResource.crdApi() lists the installed definitions", async () => {
    const list = await client.list(CustomResource.crdApi());
    const names = list.items.map((c) => c.metadata?.name).sort();
    assert.deepEqual(names, ["foos.e2e.denokube.dev", "kitchensinks.e2e.denokube.dev"]);
  });
});
