// defineCustomResource: names, the CRD it builds, .parse(), and use as an Api.

import assert from "node:assert/strict";
import { z } from "zod";
import { Api, type CustomObject } from "../../api.ts";
import {
  CustomResource,
  type CustomResourceDefinition,
  CustomResourceParseError,
  CustomResourceSchemaError,
  defineCustomResource,
} from "../../custom_resource.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const spec = z.object({
  replicas: z.int().min(0).default(1).describe("Desired replicas."),
  image: z.string().min(1),
  items: z.array(z.object({ size: z.number(), name: z.string() })).optional(),
  token: z.string().optional(),
});
const status = z.object({
  replicas: z.int().optional(),
  phase: z.enum(["Pending", "Ready"]).optional(),
  selector: z.string().optional(),
});

const Foo = defineCustomResource({
  group: "example.com",
  version: "v1",
  kind: "Foo",
  namespaced: true,
  spec,
  status,
  shortNames: ["fo"],
  categories: ["all"],
  printerColumns: [
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Phase", type: "string", jsonPath: ".status.phase", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
  scale: { labelSelectorPath: ".status.selector" },
});

test("defineCustomResource: plural, singular and listKind defaults; overrides", () => {
  assert.equal(Foo.plural, "foos");
  assert.equal(Foo.kind, "Foo");
  assert.equal(Foo.apiVersion, "example.com/v1");
  const names = Foo.crd().spec.names;
  assert.deepEqual(names, {
    kind: "Foo",
    plural: "foos",
    singular: "foo",
    listKind: "FooList",
    shortNames: ["fo"],
    categories: ["all"],
  });
  const Policy = defineCustomResource({
    group: "example.com",
    version: "v1alpha1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    namespaced: false,
    spec: z.object({}),
  });
  assert.equal(Policy.plural, "networkpolicies");
  assert.equal(Policy.crd().metadata?.name, "networkpolicies.example.com");
  assert.equal(Policy.crd().spec.names.singular, "networkpolicy");
  assert.equal(Policy.crd().spec.scope, "Cluster");
});

test("defineCustomResource: crd(): the apiextensions.k8s.io/v1 definition", () => {
  const crd: CustomResourceDefinition = Foo.crd();
  assert.equal(crd.apiVersion, "apiextensions.k8s.io/v1");
  assert.equal(crd.kind, "CustomResourceDefinition");
  assert.deepEqual(crd.metadata, { name: "foos.example.com" });
  assert.equal(crd.spec.group, "example.com");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.equal(crd.spec.versions.length, 1);
  const [v] = crd.spec.versions;
  assert.equal(v.name, "v1");
  assert.equal(v.served, true);
  assert.equal(v.storage, true);
  assert.deepEqual(v.subresources, {
    status: {},
    scale: {
      specReplicasPath: ".spec.replicas",
      statusReplicasPath: ".status.replicas",
      labelSelectorPath: ".status.selector",
    },
  });
  assert.deepEqual(v.additionalPrinterColumns, [
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Phase", type: "string", jsonPath: ".status.phase", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ]);
  const root = v.schema!.openAPIV3Schema;
  assert.equal(root.type, "object");
  assert.deepEqual(root.required, ["spec"]);
  assert.deepEqual(Object.keys(root.properties!), [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "status",
  ]);
  assert.deepEqual(root.properties!.metadata, { type: "object" });
  assert.deepEqual(root.properties!.spec.properties!.replicas, {
    description: "Desired replicas.",
    type: "integer",
    default: 1,
    minimum: 0,
  });
  assert.deepEqual(root.properties!.spec.required, ["image"]);
  assert.equal(root.properties!.status.required, undefined);
  // Plain JSON, and a fresh copy each time.
  assert.deepEqual(JSON.parse(JSON.stringify(crd)), crd);
  crd.spec.group = "changed";
  assert.equal(Foo.crd().spec.group, "example.com");
});

test("defineCustomResource: crd(): no status schema, no subresources; an optional spec is not required", () => {
  const Bar = defineCustomResource({
    group: "example.com",
    version: "v1",
    kind: "Bar",
    namespaced: true,
    spec: z.object({ a: z.string() }).default({ a: "x" }),
  });
  const [v] = Bar.crd().spec.versions;
  assert.equal(v.subresources, undefined);
  assert.equal(v.additionalPrinterColumns, undefined);
  const root = v.schema!.openAPIV3Schema;
  assert.equal(root.required, undefined);
  assert.equal(root.properties!.status, undefined);
  assert.deepEqual(root.properties!.spec.default, { a: "x" });
});

test("defineCustomResource: invalid names are refused with what to use instead", () => {
  const base = { group: "example.com", version: "v1", kind: "Foo", namespaced: true, spec };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ group: "example" }, /invalid group "example".*at least one dot/],
    [{ group: "Example.com" }, /invalid group/],
    [{ version: "1" }, /invalid version "1".*"v1"/],
    [{ kind: "my_kind" }, /invalid kind "my_kind".*UpperCamelCase/],
    [{ plural: "Foos" }, /invalid plural "Foos"/],
    [{ singular: "foo.bar" }, /invalid singular/],
    [{ listKind: "Foo" }, /invalid listKind/],
    [{ shortNames: ["ok", "Not OK"] }, /invalid shortNames\[1\] "Not OK"/],
    [{ categories: ["a_b"] }, /invalid categories\[0\]/],
    [{ namespaced: undefined }, /"namespaced" must be true/],
    [{ spec: { type: "object" } }, /"spec" must be a zod schema/],
    [{ status: "nope" }, /"status" must be a zod schema/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(
      () => defineCustomResource({ ...base, ...patch } as never),
      (e: unknown) => e instanceof TypeError && re.test(e.message),
      JSON.stringify(patch),
    );
  }
});

test("defineCustomResource: schema errors name the path; spec and status must be objects", () => {
  const base = { group: "example.com", version: "v1", kind: "Foo", namespaced: true };
  assert.throws(
    () =>
      defineCustomResource({
        ...base,
        spec: z.object({ items: z.array(z.object({ size: z.union([z.string(), z.boolean()]) })) }),
      }),
    (e: unknown) =>
      e instanceof CustomResourceSchemaError && e.path === "spec.items[].size" &&
      /union of string and boolean/.test(e.message),
  );
  assert.throws(
    () => defineCustomResource({ ...base, spec: z.object({}), status: z.object({ at: z.date() }) }),
    (e: unknown) => e instanceof CustomResourceSchemaError && e.path === "status.at",
  );
  assert.throws(
    () => defineCustomResource({ ...base, spec: z.string() }),
    (e: unknown) =>
      e instanceof CustomResourceSchemaError && /spec must be an object schema/.test(e.message),
  );
});

test("defineCustomResource: printer columns, scale and selectable fields are checked against the schema", () => {
  const base = { group: "example.com", version: "v1", kind: "Foo", namespaced: true, spec, status };
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { printerColumns: [{ name: "R", type: "integer", jsonPath: ".spec.replica" }] },
      /printerColumns\[0\] \("R"\): jsonPath \.spec\.replica does not exist.*no field "replica" in spec \(known fields: replicas, image, items, token\)/,
    ],
    [
      { printerColumns: [{ name: "R", type: "int", jsonPath: ".spec.replicas" }] },
      /invalid type "int": use one of integer, number, string, boolean, date/,
    ],
    [
      { printerColumns: [{ name: "R", type: "string", jsonPath: "spec.image" }] },
      /must be a simple JSON path starting with "\."/,
    ],
    [
      { printerColumns: [{ name: "R", type: "string", jsonPath: ".spec.image", format: "x" }] },
      /invalid format "x"/,
    ],
    [
      { printerColumns: [{ name: "", type: "string", jsonPath: ".spec.image" }] },
      /needs a non-empty name/,
    ],
    [
      { printerColumns: [{ name: "S", type: "string", jsonPath: ".spec.image[0]" }] },
      /image is not a list/,
    ],
    [{ scale: { specReplicasPath: ".spec.image" } }, /spec\.image is string.*must be integer/],
    [{ scale: { specReplicasPath: ".status.replicas" } }, /must be a JSON path under \.spec\./],
    [{ scale: { statusReplicasPath: ".status.count" } }, /no field "count" in status/],
    [{ selectableFields: [".spec.items"] }, /array, but selectable fields must be string/],
    [{ selectableFields: [".metadata.name"] }, /must not point into metadata/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () => defineCustomResource({ ...base, ...patch } as never),
      (e: unknown) => e instanceof TypeError && re.test(e.message),
      JSON.stringify(patch),
    );
  }
  // Paths into arrays, maps and open objects resolve.
  const ok = defineCustomResource({
    ...base,
    spec: z.object({
      items: z.array(z.object({ name: z.string() })),
      labels: z.record(z.string(), z.string()),
      free: z.record(z.string(), z.unknown()),
    }),
    printerColumns: [
      { name: "First", type: "string", jsonPath: ".spec.items[0].name" },
      { name: "Ready", type: "string", jsonPath: '.spec.items[?(@.name=="a")].name' },
      { name: "App", type: "string", jsonPath: ".spec.labels.app" },
      { name: "Free", type: "string", jsonPath: ".spec.free.any.thing" },
    ],
    selectableFields: [".spec.labels.app"],
  });
  assert.deepEqual(ok.crd().spec.versions[0].selectableFields, [{ jsonPath: ".spec.labels.app" }]);
});

test("defineCustomResource: parse(): returns the typed object with zod's output", () => {
  const object = {
    apiVersion: "example.com/v1",
    kind: "Foo",
    metadata: { name: "a", namespace: "ns" },
    spec: { image: "nginx" },
    status: { phase: "Ready" },
  };
  const parsed = Foo.parse(object);
  assert.equal(parsed.spec.replicas, 1); // the default
  assert.equal(parsed.status?.phase, "Ready");
  assert.deepEqual(parsed.metadata, { name: "a", namespace: "ns" });
  // Unknown spec fields are dropped like the server's pruning would.
  const pruned = Foo.parse({ ...object, spec: { image: "x", extra: true } });
  assert.deepEqual(pruned.spec, { replicas: 1, image: "x" });
  // No status is fine.
  assert.equal(Foo.parse({ metadata: { name: "b" }, spec: { image: "x" } }).status, undefined);
});

test("defineCustomResource: parse(): errors name the object, the kind and each field path, not the values", () => {
  const secret = "hunter2-secret-value";
  const object = {
    apiVersion: "example.com/v1",
    kind: "Foo",
    metadata: { name: "a", namespace: "ns" },
    spec: {
      replicas: "three",
      image: "",
      items: [{ size: 1, name: "ok" }, { size: "big", name: 2 }],
      token: 12345,
    },
    status: { phase: secret },
  };
  let error: unknown;
  try {
    Foo.parse(object);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof CustomResourceParseError, String(error));
  assert.ok(error instanceof TypeError);
  assert.equal(error.kind, "Foo");
  assert.equal(error.objectKey, "ns/a");
  assert.match(error.message, /^Invalid Foo ns\/a \(example\.com\/v1\): /);
  assert.match(error.message, /spec\.replicas: expected number, got string/);
  assert.match(error.message, /spec\.image: Too small/);
  assert.match(error.message, /spec\.items\[1\]\.size: expected number, got string/);
  assert.match(error.message, /spec\.items\[1\]\.name: expected string, got number/);
  assert.match(error.message, /spec\.token: expected string, got number/);
  assert.match(error.message, /status\.phase: Invalid option: expected one of "Pending"\|"Ready"/);
  assert.ok(!error.message.includes(secret), "the value must not be in the message");
  assert.ok(!error.message.includes("three"));
  assert.ok(!error.message.includes("12345"));
  assert.deepEqual(error.issues.map((i) => i.path), [
    "spec.replicas",
    "spec.image",
    "spec.items[1].size",
    "spec.items[1].name",
    "spec.token",
    "status.phase",
  ]);
  assert.equal(error.issues[0].code, "invalid_type");
});

test("defineCustomResource: parse(): missing fields, wrong kinds, non-objects, cluster-scoped names", () => {
  assert.throws(
    () => Foo.parse({ metadata: { name: "a", namespace: "ns" } }),
    /Invalid Foo ns\/a \(example\.com\/v1\): spec: required, but missing \(expected object\)/,
  );
  assert.throws(
    () => Foo.parse({ metadata: { name: "a" }, spec: {} }),
    /Invalid Foo a .*spec\.image: required, but missing \(expected string\)/,
  );
  assert.throws(
    () => Foo.parse({ apiVersion: "example.com/v2", kind: "Bar", spec: { image: "x" } }),
    /Invalid Foo \(unnamed\) .*apiVersion: expected "example\.com\/v1", got "example\.com\/v2"; kind: expected "Foo", got "Bar"/,
  );
  assert.throws(
    () => Foo.parse(null),
    /Invalid Foo \(unnamed\) .*: expected a Foo object, got null/,
  );
  assert.throws(() => Foo.parse([]), /got array/);
  const many = Foo.parse.bind(Foo, {
    spec: { image: "x", items: Array.from({ length: 12 }, () => ({})) },
  });
  assert.throws(many, /… and 14 more$/);
});

test("defineCustomResource: a CustomResource is an Api; within() and allNamespaces() keep the methods", () => {
  assert.ok(Foo instanceof Api);
  assert.ok(Foo instanceof CustomResource);
  assert.equal(Foo.namespace, undefined);
  assert.equal(Foo.collectionPath(), "/apis/example.com/v1/foos");
  const inNs = Foo.within("team-a");
  assert.ok(inNs instanceof CustomResource);
  assert.equal(inNs.namespace, "team-a");
  assert.equal(inNs.collectionPath(), "/apis/example.com/v1/namespaces/team-a/foos");
  assert.equal(inNs.itemPath("x"), "/apis/example.com/v1/namespaces/team-a/foos/x");
  assert.equal(inNs.subresourcePath("x", "status"), `${inNs.itemPath("x")}/status`);
  assert.deepEqual(inNs.crd(), Foo.crd());
  assert.equal(inNs.parse({ spec: { image: "i" } }).spec.image, "i");
  assert.equal(inNs.specSchema, spec);
  assert.equal(inNs.statusSchema, status);
  const all = inNs.allNamespaces();
  assert.ok(all instanceof CustomResource);
  assert.equal(all.namespace, undefined);
  assert.equal(Foo.namespace, undefined, "within() does not change the original");
  assert.throws(() => Foo.within("Bad_NS"), /Invalid namespace/);
  const Cluster = defineCustomResource({
    group: "example.com",
    version: "v1",
    kind: "Zone",
    namespaced: false,
    spec: z.object({}),
  });
  assert.throws(() => Cluster.within("ns"), /cluster-scoped/);
  assert.equal(Cluster.itemPath("z"), "/apis/example.com/v1/zones/z");
  // Types: the Api's object type is CustomObject<z.output<spec>, z.output<status>>.
  const typed: Api<CustomObject<z.output<typeof spec>, z.output<typeof status>>> = inNs;
  assert.ok(typed);
  const noStatus: CustomObject<Record<string, never>, never> = Cluster.parse({ spec: {} });
  assert.ok(noStatus);
});

test("defineCustomResource: CustomResource.crdApi() addresses CustomResourceDefinitions", () => {
  const api = CustomResource.crdApi();
  assert.equal(api.collectionPath(), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
  assert.equal(api.namespaced, false);
});

test("defineCustomResource: install() applies the CRD and waits until Established; then the verbs work", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const installed = await Foo.install(client, { timeoutMs: 5000 });
  assert.equal(installed.metadata?.name, "foos.example.com");
  assert.ok(
    installed.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"),
  );
  const foos = Foo.within("default");
  const created = await client.create(foos, {
    metadata: { name: "a" },
    spec: { replicas: 2, image: "nginx" },
  });
  assert.equal(created.apiVersion, "example.com/v1");
  assert.equal(created.kind, "Foo");
  const read = foos.parse(await client.get(foos, "a"));
  assert.equal(read.spec.replicas, 2);
  const list = await client.list(foos);
  assert.deepEqual(list.items.map((o) => foos.parse(o).metadata?.name), ["a"]);
  // Installing again (already there) is fine.
  await Foo.install(client);
});

test("defineCustomResource: install() gives up after the timeout, naming the definition", async () => {
  const crd = Foo.crd();
  const fetch = (input: Request | URL | string, init?: RequestInit) => {
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const body = method === "PATCH"
      ? crd
      : { ...crd, status: { conditions: [{ type: "Established", status: "False" }] } };
    return Promise.resolve(
      new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } }),
    );
  };
  const client = new Client(
    new Config({
      cluster: {
        server: "https://k8s.test",
        insecureSkipTlsVerify: false,
        disableCompression: false,
      },
      credentials: { token: "t" },
    }),
    { fetch },
  );
  await assert.rejects(
    Foo.install(client, { timeoutMs: 200 }),
    /CustomResourceDefinition foos\.example\.com was not Established within 200 ms \(conditions: Established=False\)/,
  );
});
