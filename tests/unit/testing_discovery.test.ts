// FakeApiServer: discovery, CRDs, registered resources, listen(), config(), kubeconfig().
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { ApiError, Client, type Client as ClientType } from "../../mod.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

async function get(
  client: ClientType,
  path: string,
  query: Record<string, string> = {},
): Promise<Obj> {
  return await client.requestJson({ path, query, retry: false });
}

async function send(
  client: ClientType,
  method: string,
  path: string,
  body?: unknown,
): Promise<Obj> {
  return await client.requestJson({ method, path, body, retry: false });
}

const CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "widgets.example.com" },
  spec: {
    group: "example.com",
    scope: "Namespaced",
    names: { plural: "widgets", kind: "Widget", shortNames: ["wd"] },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
        },
        selectableFields: [{ jsonPath: ".spec.color" }],
      },
      { name: "v1beta1", served: true, storage: false },
    ],
  },
};

test("FakeApiServer: discovery documents for the built-in groups", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const api = await get(client, "/api");
  assert.equal(api.kind, "APIVersions");
  assert.deepEqual(api.versions, ["v1"]);

  const core = await get(client, "/api/v1");
  assert.equal(core.kind, "APIResourceList");
  assert.equal(core.groupVersion, "v1");
  const pods = core.resources.find((r: Obj) => r.name === "pods");
  assert.deepEqual(pods, {
    name: "pods",
    singularName: "pod",
    namespaced: true,
    kind: "Pod",
    verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    shortNames: ["po"],
    categories: ["all"],
  });
  assert.deepEqual(core.resources.find((r: Obj) => r.name === "pods/status"), {
    name: "pods/status",
    singularName: "",
    namespaced: true,
    kind: "Pod",
    verbs: ["get", "patch", "update"],
  });
  const names = core.resources.map((r: Obj) => r.name);
  for (const r of ["namespaces", "configmaps", "secrets", "services", "nodes", "events"]) {
    assert.ok(names.includes(r), r);
  }
  assert.equal(core.resources.find((r: Obj) => r.name === "nodes").namespaced, false);

  const groups = await get(client, "/apis");
  assert.equal(groups.kind, "APIGroupList");
  const apps = groups.groups.find((g: Obj) => g.name === "apps");
  assert.deepEqual(apps, {
    name: "apps",
    versions: [{ groupVersion: "apps/v1", version: "v1" }],
    preferredVersion: { groupVersion: "apps/v1", version: "v1" },
  });
  const appsV1 = await get(client, "/apis/apps/v1");
  assert.equal(appsV1.groupVersion, "apps/v1");
  assert.equal(appsV1.resources[0].kind, "Deployment");
  assert.equal((await get(client, "/apis/apps")).kind, "APIGroup");
  assert.equal((await get(client, "/version")).major, "1");
});

test("FakeApiServer: creating a CRD serves its versions, Established, with discovery", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const created = await send(
    client,
    "POST",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    CRD,
  );
  assert.equal(created.metadata.generation, 1);
  assert.equal(created.spec.names.singular, "widget");
  assert.equal(created.spec.names.listKind, "WidgetList");
  assert.deepEqual(created.spec.conversion, { strategy: "None" });
  assert.deepEqual(created.status, {
    conditions: null,
    acceptedNames: { plural: "", kind: "" },
    storedVersions: ["v1"],
  });
  const crd = await get(
    client,
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
  );
  const established = crd.status.conditions.find((c: Obj) => c.type === "Established");
  assert.equal(established.status, "True");
  assert.equal(crd.status.acceptedNames.kind, "Widget");

  const group = (await get(client, "/apis")).groups.find((g: Obj) => g.name === "example.com");
  assert.deepEqual(group.versions.map((v: Obj) => v.version), ["v1", "v1beta1"]);
  assert.equal(group.preferredVersion.version, "v1");
  const resources = (await get(client, "/apis/example.com/v1")).resources;
  assert.deepEqual(resources.map((r: Obj) => r.name), ["widgets", "widgets/status"]);
  assert.deepEqual(resources[0].shortNames, ["wd"]);

  const path = "/apis/example.com/v1/namespaces/default/widgets";
  const widget = await send(client, "POST", path, {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name: "w1" },
    spec: { color: "red" },
    status: { ready: true },
  });
  assert.equal(widget.metadata.generation, 1);
  assert.equal(widget.status, undefined, "status subresource: create drops status");
  const status = await send(client, "PUT", `${path}/w1/status`, {
    ...widget,
    status: { ready: true },
  });
  assert.deepEqual(status.status, { ready: true });
  assert.equal(status.metadata.generation, 1);

  const listed = await get(client, path);
  assert.equal(listed.kind, "WidgetList");
  assert.deepEqual(listed.metadata, { continue: "", resourceVersion: server.resourceVersion });
  assert.equal(
    listed.items[0].apiVersion,
    "example.com/v1",
    "custom resource items keep apiVersion",
  );
  assert.equal(listed.items[0].kind, "Widget");
  const other = await get(client, "/apis/example.com/v1beta1/namespaces/default/widgets/w1");
  assert.equal(other.apiVersion, "example.com/v1beta1");

  const byField = await get(client, path, { fieldSelector: "spec.color=red" });
  assert.equal(byField.items.length, 1);
  const badField = await client.request({
    path,
    query: { fieldSelector: "spec.size=1" },
    retry: false,
  }).catch((
    e,
  ) => e);
  assert.ok(badField instanceof ApiError);
  assert.equal(badField.body?.message, "field label not supported: spec.size");

  const deleted = await send(client, "DELETE", `${path}/w1`);
  assert.deepEqual(deleted.details, {
    name: "w1",
    group: "example.com",
    kind: "widgets",
    uid: widget.metadata.uid,
  });
});

test("FakeApiServer: deleting a CRD deletes its custom resources and stops serving them", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  await send(client, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD);
  const path = "/apis/example.com/v1/namespaces/default/widgets";
  await send(client, "POST", path, {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name: "w" },
  });
  const deleted = await send(
    client,
    "DELETE",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
  );
  assert.ok(deleted.metadata.deletionTimestamp);
  const res = await server.fetch(`http://fake.invalid${path}`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  assert.equal(server.objects("Widget").length, 0);
  assert.equal(server.objects("CustomResourceDefinition").length, 0);
});

test("FakeApiServer: an invalid CRD is 422", async () => {
  await using server = new FakeApiServer();
  const error = await send(
    server.client(),
    "POST",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    {
      ...CRD,
      metadata: { name: "wrong.example.com" },
    },
  ).catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 422);
  assert.match(
    error.body?.message ?? "",
    /metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural\+"."\+spec.group/,
  );
});

test("FakeApiServer: registerResource serves a cluster-scoped custom resource at once", async () => {
  await using server = new FakeApiServer();
  server.registerResource({
    group: "example.com",
    version: "v1alpha1",
    kind: "Gadget",
    plural: "gadgets",
    namespaced: false,
    subresources: ["status"],
    shortNames: ["gd"],
  });
  const client = server.client();
  const created = await send(client, "POST", "/apis/example.com/v1alpha1/gadgets", {
    apiVersion: "example.com/v1alpha1",
    kind: "Gadget",
    metadata: { name: "g" },
    spec: { size: 1 },
  });
  assert.equal(created.metadata.namespace, undefined);
  const patched = await client.requestJson<Obj>({
    method: "PATCH",
    path: "/apis/example.com/v1alpha1/gadgets/g",
    body: { spec: { size: 2 } },
    contentType: "application/merge-patch+json",
  });
  assert.equal(patched.metadata.generation, 2);
  const doc = await get(client, "/apis/example.com/v1alpha1");
  assert.equal(doc.resources[0].namespaced, false);
  assert.deepEqual(doc.resources[0].shortNames, ["gd"]);
  const any = await get(client, "/apis/example.com/v1alpha1/gadgets", {
    fieldSelector: "spec.size=2",
  });
  assert.equal(any.items.length, 1, "without selectableFields any path is accepted");
});

test("FakeApiServer: listen() serves over loopback; kubeconfig() and config() point at it", async () => {
  const server = new FakeApiServer();
  assert.equal(server.config().server, "http://fake.invalid");
  assert.throws(() => server.kubeconfig(), /listen/);
  const { url } = await server.listen();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await server.listen()).url, url);
  assert.equal(server.config().server, url);
  const kubeconfig = parseYaml(server.kubeconfig()) as Obj;
  assert.equal(kubeconfig.clusters[0].cluster.server, url);
  assert.equal(kubeconfig["current-context"], "fake");

  // A real HTTP client through the socket.
  const client = new Client(server.config());
  const created = await send(client, "POST", "/api/v1/namespaces/default/configmaps", {
    metadata: { name: "a" },
  });
  assert.equal(created.metadata.name, "a");
  const res = await fetch(`${url}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1`);
  const body = await res.text();
  assert.equal(JSON.parse(body.split("\n")[0]).object.metadata.name, "a");

  // A client that goes away ends the server side of its watch.
  const controller = new AbortController();
  const dropped = await fetch(
    `${url}/api/v1/namespaces?watch=1&resourceVersion=${server.resourceVersion}`,
    {
      signal: controller.signal,
    },
  );
  assert.equal(server.openWatches, 1);
  controller.abort();
  await dropped.body?.cancel().catch(() => {});
  for (let i = 0; i < 500 && server.openWatches > 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(server.openWatches, 0);

  // An open watch ends when the server closes.
  const open = await fetch(
    `${url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${server.resourceVersion}`,
  );
  assert.equal(server.openWatches, 1);
  const closing = server.close();
  assert.equal(await open.text(), "");
  await closing;
  client.close();
  assert.equal(server.openWatches, 0);
});

test("FakeApiServer: client() is wired to server.fetch", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  assert.equal(client.namespace, "default");
  const ns = await get(client, "/api/v1/namespaces/kube-system");
  assert.equal(ns.metadata.labels["kubernetes.io/metadata.name"], "kube-system");
  await client[Symbol.asyncDispose]();
});
