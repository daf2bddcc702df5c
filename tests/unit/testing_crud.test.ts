// FakeApiServer: CRUD verbs, error bodies, patches, apply, status subresource, deletion.
import assert from "node:assert/strict";
import { failure } from "./_helpers.ts";
import type { Client } from "../../mod.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const CM = "/api/v1/namespaces/default/configmaps";
const PODS = "/api/v1/namespaces/default/pods";

async function send(
  client: Client,
  method: string,
  path: string,
  body?: unknown,
  contentType?: string,
  query?: Record<string, string>,
): Promise<{ status: number; body: Obj }> {
  const res = await client.request({ method, path, body, contentType, query, retry: false });
  return { status: res.status, body: await res.json() };
}

function pod(name: string, extra: Obj = {}): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...(extra.metadata ?? {}) },
    spec: { containers: [{ name: "c", image: "nginx" }], ...(extra.spec ?? {}) },
    ...(extra.status ? { status: extra.status } : {}),
  };
}

test("FakeApiServer: create, get, replace, delete a configmap with real metadata and codes", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const startRv = Number(server.resourceVersion);
  const created = await send(client, "POST", CM, {
    metadata: { name: "settings", labels: { app: "web" } },
    data: { color: "blue" },
  });
  assert.equal(created.status, 201);
  const meta = created.body.metadata;
  assert.equal(created.body.kind, "ConfigMap");
  assert.equal(created.body.apiVersion, "v1");
  assert.equal(meta.namespace, "default");
  assert.match(meta.uid, /^[0-9a-f-]{36}$/);
  assert.equal(meta.resourceVersion, String(startRv + 1));
  assert.match(meta.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(meta.generation, undefined, "configmaps carry no generation");
  assert.equal(server.resourceVersion, meta.resourceVersion);
  assert.equal(meta.managedFields[0].manager, "denokube");
  assert.equal(meta.managedFields[0].operation, "Update");

  const got = await send(client, "GET", `${CM}/settings`);
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, created.body);

  const replaced = await send(client, "PUT", `${CM}/settings`, {
    ...got.body,
    data: { color: "red" },
  });
  assert.equal(replaced.status, 200);
  assert.equal(replaced.body.data.color, "red");
  assert.equal(Number(replaced.body.metadata.resourceVersion), startRv + 2);
  assert.equal(replaced.body.metadata.uid, meta.uid);

  // A no-op update does not write.
  const same = await send(client, "PUT", `${CM}/settings`, replaced.body);
  assert.equal(same.body.metadata.resourceVersion, replaced.body.metadata.resourceVersion);

  const deleted = await send(client, "DELETE", `${CM}/settings`);
  assert.equal(deleted.status, 200);
  assert.deepEqual(deleted.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { name: "settings", kind: "configmaps", uid: meta.uid },
  });
  const gone = await failure(send(client, "GET", `${CM}/settings`));
  assert.equal(gone.status, 404);
});

test("FakeApiServer: error bodies match the real server: NotFound, AlreadyExists, Conflict", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const missing = await failure(send(client, "GET", `${CM}/x`));
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: 'configmaps "x" not found',
    reason: "NotFound",
    details: { name: "x", kind: "configmaps" },
    code: 404,
  });

  const deploy = await failure(
    send(client, "GET", "/apis/apps/v1/namespaces/default/deployments/web"),
  );
  assert.equal(deploy.body?.message, 'deployments.apps "web" not found');
  assert.deepEqual(deploy.body?.details, { name: "web", group: "apps", kind: "deployments" });

  await send(client, "POST", CM, { metadata: { name: "a" } });
  const exists = await failure(send(client, "POST", CM, { metadata: { name: "a" } }));
  assert.equal(exists.status, 409);
  assert.equal(exists.reason, "AlreadyExists");
  assert.equal(exists.body?.message, 'configmaps "a" already exists');
  assert.deepEqual(exists.body?.details, { name: "a", kind: "configmaps" });

  const stale = await failure(
    send(client, "PUT", `${CM}/a`, { metadata: { name: "a", resourceVersion: "1" }, data: {} }),
  );
  assert.equal(stale.status, 409);
  assert.equal(stale.reason, "Conflict");
  assert.equal(
    stale.body?.message,
    'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
  );

  // Without a resourceVersion the update is unconditional.
  const ok = await send(client, "PUT", `${CM}/a`, { metadata: { name: "a" }, data: { k: "v" } });
  assert.equal(ok.body.data.k, "v");

  const notThere = await failure(send(client, "PUT", `${CM}/b`, { metadata: { name: "b" } }));
  assert.equal(notThere.status, 404);
});

test('namespaced create in a missing namespace is 404 namespaces "x" not found', async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const error = await failure(
    send(client, "POST", "/api/v1/namespaces/nope/configmaps", { metadata: { name: "a" } }),
  );
  assert.equal(error.status, 404);
  assert.equal(error.body?.message, 'namespaces "nope" not found');
  assert.deepEqual(error.body?.details, { name: "nope", kind: "namespaces" });
  const namespaces = await send(client, "GET", "/api/v1/namespaces");
  const names = namespaces.body.items.map((n: Obj) => n.metadata.name);
  assert.deepEqual(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
  assert.equal(namespaces.body.items[0].status.phase, "Active");
});

test("FakeApiServer: 422 Invalid for a missing or malformed name; 400 for a name or namespace mismatch", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const noName = await failure(send(client, "POST", CM, { metadata: {} }));
  assert.equal(noName.status, 422);
  assert.equal(noName.reason, "Invalid");
  assert.equal(
    noName.body?.message,
    'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
  );
  assert.deepEqual(noName.body?.details, {
    kind: "ConfigMap",
    causes: [{
      reason: "FieldValueRequired",
      message: "Required value: name or generateName is required",
      field: "metadata.name",
    }],
  });

  const bad = await failure(send(client, "POST", CM, { metadata: { name: "Bad_Name" } }));
  assert.equal(bad.status, 422);
  assert.match(
    bad.body?.message ?? "",
    /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
  );
  assert.equal(bad.body?.details?.causes?.[0].reason, "FieldValueInvalid");

  const badNs = await failure(
    send(client, "POST", "/api/v1/namespaces", { metadata: { name: "a.b" } }),
  );
  assert.equal(badNs.status, 422);
  assert.match(badNs.body?.message ?? "", /RFC 1123 label/);

  const badPod = await failure(send(client, "POST", PODS, { metadata: { name: "p" }, spec: {} }));
  assert.equal(badPod.status, 422);
  assert.equal(badPod.body?.message, 'Pod "p" is invalid: spec.containers: Required value');

  await send(client, "POST", CM, { metadata: { name: "a" } });
  const mismatch = await failure(send(client, "PUT", `${CM}/a`, { metadata: { name: "b" } }));
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.reason, "BadRequest");
  assert.equal(
    mismatch.body?.message,
    "the name of the object (b) does not match the name on the URL (a)",
  );

  const nsMismatch = await failure(
    send(client, "POST", CM, { metadata: { name: "c", namespace: "kube-system" } }),
  );
  assert.equal(nsMismatch.status, 400);
  assert.equal(
    nsMismatch.body?.message,
    "the namespace of the provided object does not match the namespace sent on the request",
  );

  const withRv = await failure(
    send(client, "POST", CM, { metadata: { name: "d", resourceVersion: "5" } }),
  );
  assert.equal(withRv.status, 500);
  assert.equal(withRv.body?.message, "resourceVersion should not be set on objects to be created");
});

test("FakeApiServer: 405 for unsupported methods, Status 404 for unknown resources, plain 404 elsewhere", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  for (
    const [method, path] of [
      ["PUT", CM],
      ["PATCH", CM],
      ["POST", `${CM}/a`],
      ["POST", "/api/v1/configmaps"],
      ["DELETE", "/api/v1/configmaps"],
      ["POST", `${PODS}/p/status`],
      ["DELETE", `${PODS}/p/status`],
    ]
  ) {
    const error = await failure(send(client, method, path, {}));
    assert.equal(error.status, 405, `${method} ${path}`);
    assert.deepEqual(error.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "the server does not allow this method on the requested resource",
      reason: "MethodNotAllowed",
      details: {},
      code: 405,
    });
  }
  for (
    const path of [
      "/api/v1/foos",
      "/api/v1/configmaps/a",
      "/api/v1/namespaces/default/nodes",
      `${CM}/a/status`,
      "/apis/apps/v1/namespaces/default/widgets",
    ]
  ) {
    const error = await failure(send(client, "GET", path));
    assert.equal(error.status, 404, path);
    assert.equal(error.body?.message, "the server could not find the requested resource");
  }
  const res = await server.fetch("http://fake.invalid/apis/nope.example.com/v1/things");
  assert.equal(res.status, 404);
  assert.equal(await res.text(), "404 page not found\n");
});

test("FakeApiServer: generateName, generation, and the status subresource", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const created = await send(client, "POST", PODS, {
    ...pod(""),
    metadata: { generateName: "web-" },
    status: { phase: "Running" },
  });
  const name: string = created.body.metadata.name;
  assert.match(name, /^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  assert.equal(created.body.metadata.generateName, "web-");
  assert.equal(created.body.metadata.generation, 1);
  assert.equal(created.body.status.phase, "Pending", "status on create is ignored");

  // Main resource writes ignore status changes; spec changes bump generation.
  const updated = await send(client, "PUT", `${PODS}/${name}`, {
    ...created.body,
    spec: { ...created.body.spec, nodeName: "node-1" },
    status: { phase: "Failed" },
  });
  assert.equal(updated.body.metadata.generation, 2);
  assert.equal(updated.body.status.phase, "Pending");

  // Status writes change only status, not generation, not spec or labels.
  const status = await send(client, "PUT", `${PODS}/${name}/status`, {
    ...updated.body,
    metadata: { ...updated.body.metadata, labels: { ignored: "yes" } },
    spec: { containers: [{ name: "other", image: "x" }] },
    status: { phase: "Running" },
  });
  assert.equal(status.body.status.phase, "Running");
  assert.equal(status.body.metadata.generation, 2);
  assert.equal(status.body.spec.nodeName, "node-1");
  assert.equal(status.body.metadata.labels, undefined);

  const patched = await send(
    client,
    "PATCH",
    `${PODS}/${name}/status`,
    { status: { phase: "Succeeded" }, spec: { nodeName: "ignored" } },
    "application/merge-patch+json",
  );
  assert.equal(patched.body.status.phase, "Succeeded");
  assert.equal(patched.body.spec.nodeName, "node-1");
  const read = await send(client, "GET", `${PODS}/${name}/status`);
  assert.equal(read.body.status.phase, "Succeeded");

  // Stale RV on the status subresource is a conflict too.
  const stale = await failure(send(client, "PUT", `${PODS}/${name}/status`, created.body));
  assert.equal(stale.reason, "Conflict");

  // No status subresource on configmaps.
  const missing = await failure(send(client, "GET", `${CM}/x/status`));
  assert.equal(missing.status, 404);
});

test("FakeApiServer: merge patch, JSON patch (all ops) and strategic merge patch", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  await send(client, "POST", CM, { metadata: { name: "a" }, data: { x: "1", y: "2" } });
  const merged = await send(
    client,
    "PATCH",
    `${CM}/a`,
    { data: { x: null, z: "3" }, metadata: { labels: { l: "v" } } },
    "application/merge-patch+json",
  );
  assert.deepEqual(merged.body.data, { y: "2", z: "3" });
  assert.deepEqual(merged.body.metadata.labels, { l: "v" });

  const patched = await send(client, "PATCH", `${CM}/a`, [
    { op: "test", path: "/data/y", value: "2" },
    { op: "add", path: "/data/a~1b", value: "slash" },
    { op: "replace", path: "/data/y", value: "22" },
    { op: "copy", from: "/data/y", path: "/data/copy" },
    { op: "move", from: "/data/z", path: "/data/moved" },
    { op: "remove", path: "/data/copy" },
  ], "application/json-patch+json");
  assert.deepEqual(patched.body.data, { y: "22", "a/b": "slash", moved: "3" });

  const failed = await failure(
    send(
      client,
      "PATCH",
      `${CM}/a`,
      [{ op: "test", path: "/data/y", value: "nope" }],
      "application/json-patch+json",
    ),
  );
  assert.equal(failed.status, 422);
  assert.equal(
    failed.body?.message,
    "the server rejected our request due to an error in our request",
  );
  const malformed = await failure(
    send(client, "PATCH", `${CM}/a`, { op: "add" }, "application/json-patch+json"),
  );
  assert.equal(malformed.status, 400);

  const strategic = await send(
    client,
    "PATCH",
    `${CM}/a`,
    { data: { s: "1" } },
    "application/strategic-merge-patch+json",
  );
  assert.equal(strategic.body.data.s, "1");

  const staleRv = await failure(
    send(
      client,
      "PATCH",
      `${CM}/a`,
      { metadata: { resourceVersion: "1" } },
      "application/merge-patch+json",
    ),
  );
  assert.equal(staleRv.reason, "Conflict");

  const unknownType = await failure(send(client, "PATCH", `${CM}/a`, {}, "application/xml"));
  assert.equal(unknownType.status, 415);
  assert.equal(unknownType.reason, "UnsupportedMediaType");
  assert.equal(unknownType.body?.message, "415: Unsupported Media Type");

  const noObject = await failure(
    send(client, "PATCH", `${CM}/zz`, {}, "application/merge-patch+json"),
  );
  assert.equal(noObject.status, 404);
});

test("FakeApiServer: server-side apply: create, conflicts, force, removal of unapplied fields", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const yaml = (data: Record<string, string>) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n${
      Object.entries(data).map(([k, v]) => `  ${k}: "${v}"\n`).join("")
    }`;
  const APPLY = "application/apply-patch+yaml";
  const noManager = await failure(send(client, "PATCH", `${CM}/a`, yaml({ x: "1" }), APPLY));
  assert.equal(noManager.status, 422);
  assert.equal(
    noManager.body?.message,
    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
  );

  const created = await send(client, "PATCH", `${CM}/a`, yaml({ x: "1", y: "2" }), APPLY, {
    fieldManager: "alice",
  });
  assert.equal(created.status, 201);
  assert.deepEqual(created.body.data, { x: "1", y: "2" });
  assert.deepEqual(created.body.metadata.managedFields.map((m: Obj) => [m.manager, m.operation]), [[
    "alice",
    "Apply",
  ]]);

  // Another manager changing alice's field conflicts; the same value does not.
  const conflict = await failure(
    send(client, "PATCH", `${CM}/a`, yaml({ x: "9" }), APPLY, { fieldManager: "bob" }),
  );
  assert.equal(conflict.status, 409);
  assert.equal(conflict.reason, "Conflict");
  assert.equal(
    conflict.body?.message,
    'Apply failed with 1 conflict: conflict with "alice": .data.x',
  );
  assert.deepEqual(conflict.body?.details?.causes, [{
    reason: "FieldManagerConflict",
    message: 'conflict with "alice"',
    field: ".data.x",
  }]);
  const shared = await send(client, "PATCH", `${CM}/a`, yaml({ x: "1" }), APPLY, {
    fieldManager: "bob",
  });
  assert.equal(shared.status, 200);

  const forced = await send(client, "PATCH", `${CM}/a`, yaml({ y: "7" }), APPLY, {
    fieldManager: "bob",
    force: "true",
  });
  assert.deepEqual(forced.body.data, { x: "1", y: "7" }, "x is still alice's");

  // Alice stops applying y and x: x (bob shares it? no: bob dropped x) is removed; y is bob's now.
  const dropped = await send(
    client,
    "PATCH",
    `${CM}/a`,
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    APPLY,
    {
      fieldManager: "alice",
    },
  );
  assert.deepEqual(dropped.body.data, { y: "7" });

  // An Update manager owns what it changed; apply conflicts with it too.
  await send(client, "PATCH", `${CM}/a`, { data: { u: "1" } }, "application/merge-patch+json", {
    fieldManager: "kubectl-edit",
  });
  const withUpdater = await failure(
    send(client, "PATCH", `${CM}/a`, yaml({ u: "2" }), APPLY, { fieldManager: "alice" }),
  );
  assert.equal(
    withUpdater.body?.message,
    'Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.u',
  );

  const forceOnMerge = await failure(
    send(client, "PATCH", `${CM}/a`, {}, "application/merge-patch+json", { force: "true" }),
  );
  assert.equal(forceOnMerge.status, 422);
});

test("FakeApiServer: strategic merge patch is not allowed on custom resources (415, like the real server)", async () => {
  await using server = new FakeApiServer();
  server.registerResource({
    group: "example.com",
    version: "v1",
    kind: "Widget",
    plural: "widgets",
    namespaced: true,
  });
  const client = server.client();
  const path = "/apis/example.com/v1/namespaces/default/widgets";
  await send(client, "POST", path, {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name: "w" },
  });
  const error = await failure(
    send(client, "PATCH", `${path}/w`, {}, "application/strategic-merge-patch+json"),
  );
  assert.equal(error.status, 415);
  assert.equal(
    error.body?.message,
    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
  );
});

test("FakeApiServer: delete answers: pods return the object, deletecollection returns the list", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  await send(client, "POST", PODS, pod("p1", { metadata: { labels: { app: "a" } } }));
  await send(client, "POST", PODS, pod("p2", { metadata: { labels: { app: "b" } } }));
  await send(client, "POST", PODS, pod("p3", { metadata: { labels: { app: "a" } } }));
  const before = Number(server.resourceVersion);
  const one = await send(client, "DELETE", `${PODS}/p2`);
  assert.equal(one.body.kind, "Pod");
  assert.equal(one.body.metadata.name, "p2");
  // Graceful deletion with grace 0: marked (MODIFIED), then removed (DELETED).
  assert.equal(Number(one.body.metadata.resourceVersion), before + 2);
  assert.ok(one.body.metadata.deletionTimestamp);
  assert.equal(one.body.metadata.deletionGracePeriodSeconds, 0);
  assert.equal(one.body.metadata.generation, 2);

  const many = await send(client, "DELETE", PODS, undefined, undefined, { labelSelector: "app=a" });
  assert.equal(many.body.kind, "PodList");
  assert.deepEqual(many.body.items.map((p: Obj) => p.metadata.name), ["p1", "p3"]);
  const left = await send(client, "GET", PODS);
  assert.equal(left.body.items.length, 0);

  await send(client, "POST", CM, { metadata: { name: "guarded" } });
  const precondition = await failure(
    send(client, "DELETE", `${CM}/guarded`, { preconditions: { resourceVersion: "1" } }),
  );
  assert.equal(precondition.reason, "Conflict");
  assert.match(
    precondition.body?.message ?? "",
    /^Operation cannot be fulfilled on ConfigMap "guarded": the ResourceVersion in the precondition \(1\) does not match the ResourceVersion in record \(\d+\)\. The object might have been modified$/,
  );
});

test("FakeApiServer: finalizers delay deletion until they are removed", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  await send(client, "POST", CM, { metadata: { name: "f", finalizers: ["example.com/keep"] } });
  const marked = await send(client, "DELETE", `${CM}/f`);
  assert.equal(marked.body.kind, "ConfigMap");
  assert.ok(marked.body.metadata.deletionTimestamp);
  assert.equal(marked.body.metadata.deletionGracePeriodSeconds, 0);
  const still = await send(client, "GET", `${CM}/f`);
  assert.ok(still.body.metadata.deletionTimestamp);

  const adding = await failure(send(client, "PUT", `${CM}/f`, {
    ...still.body,
    metadata: { ...still.body.metadata, finalizers: ["example.com/keep", "example.com/new"] },
  }));
  assert.equal(adding.status, 422);

  await send(
    client,
    "PATCH",
    `${CM}/f`,
    { metadata: { finalizers: null } },
    "application/merge-patch+json",
  );
  const gone = await failure(send(client, "GET", `${CM}/f`));
  assert.equal(gone.status, 404);
});

test("FakeApiServer: deleting a namespace deletes its content; protected namespaces cannot be deleted", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  await send(client, "POST", "/api/v1/namespaces", { metadata: { name: "tmp" } });
  await send(client, "POST", "/api/v1/namespaces/tmp/configmaps", { metadata: { name: "a" } });
  const deleted = await send(client, "DELETE", "/api/v1/namespaces/tmp");
  assert.equal(deleted.body.status.phase, "Terminating");
  assert.ok(deleted.body.metadata.deletionTimestamp);
  assert.equal((await failure(send(client, "GET", "/api/v1/namespaces/tmp"))).status, 404);
  assert.equal(server.objects("ConfigMap").length, 0);

  const protectedNs = await failure(send(client, "DELETE", "/api/v1/namespaces/default"));
  assert.equal(protectedNs.status, 403);
  assert.equal(
    protectedNs.body?.message,
    'namespaces "default" is forbidden: this namespace may not be deleted',
  );
});

test("FakeApiServer: dryRun=All validates and answers without storing", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const rv = server.resourceVersion;
  const res = await send(client, "POST", CM, { metadata: { name: "dry" } }, undefined, {
    dryRun: "All",
  });
  assert.equal(res.status, 201);
  assert.equal(server.resourceVersion, rv);
  assert.equal((await failure(send(client, "GET", `${CM}/dry`))).status, 404);
});

test("FakeApiServer: seed and objects: direct helpers share the API semantics", async () => {
  await using server = new FakeApiServer();
  const [created] = server.seed(
    pod("seeded", { metadata: { namespace: "apps" }, status: { phase: "Running" } }),
  );
  assert.equal(created.metadata?.namespace, "apps");
  assert.deepEqual(created.status, { phase: "Running" });
  assert.ok(server.objects("Namespace").some((n) => n.metadata?.name === "apps"));
  assert.deepEqual(server.objects("pods").map((p) => p.metadata?.name), ["seeded"]);
  assert.equal(server.objects("Pod")[0].apiVersion, "v1");
  assert.throws(
    () => server.seed({ apiVersion: "x/v1", kind: "Nope", metadata: { name: "n" } }),
    TypeError,
  );
});

test("FakeApiServer: secrets turn stringData into base64 data; services get a clusterIP", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const secret = await send(client, "POST", "/api/v1/namespaces/default/secrets", {
    metadata: { name: "s" },
    stringData: { password: "hunter2" },
  });
  assert.deepEqual(secret.body.data, { password: btoa("hunter2") });
  assert.equal(secret.body.type, "Opaque");
  assert.equal(secret.body.stringData, undefined);
  const svc = await send(client, "POST", "/api/v1/namespaces/default/services", {
    metadata: { name: "web" },
    spec: { ports: [{ port: 80 }] },
  });
  assert.match(svc.body.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
  assert.equal(svc.body.spec.type, "ClusterIP");
  const kubernetes = await send(client, "GET", "/api/v1/namespaces/default/services/kubernetes");
  assert.equal(kubernetes.body.spec.clusterIP, "10.96.0.1");
});
