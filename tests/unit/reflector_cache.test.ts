import assert from "node:assert/strict";
import { summary, testStore } from "./_helpers.ts";
import { Api, type KubeObject } from "../../api.ts";
import { Reflector, stripManagedFields } from "../../reflector.ts";
import { bookmark, ev, events, list, Sleeps, StubServer } from "./_stub_server.ts";
import { test } from "../_test.ts";

function obj(
  name: string,
  resourceVersion: string,
  namespace: string | undefined = "default",
  labels: Record<string, string> = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      resourceVersion,
      labels,
      managedFields: [{ manager: "kubectl", operation: "Apply" }],
    },
  };
}

function names(objects: KubeObject[]): string[] {
  return objects.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`).sort();
}

function sync(...objects: KubeObject[]) {
  return events([...objects.map((o) => ev("ADDED", o)), bookmark("100", true)]);
}

test("Reflector: indexes: the built-in namespace index and a custom one follow every change", async () => {
  const stub = new StubServer().push(
    sync(
      obj("a", "1", "ns1", { app: "web" }),
      obj("b", "2", "ns2", { app: "web" }),
      obj("c", "3", "ns1", { app: "db" }),
    ),
    events([
      ev("MODIFIED", obj("a", "101", "ns1", { app: "db" })),
      ev("DELETED", obj("b", "102", "ns2", { app: "web" })),
      ev("ADDED", obj("d", "103", "ns3", { app: "web" })),
    ]),
  );
  const rf = new Reflector(stub.client(), Api.v1ConfigMap(), {
    ...testStore(),
    sleep: new Sleeps().sleep,
  })
    .index("app", (o) => o.metadata?.labels?.app ? [o.metadata.labels.app] : []);
  await rf.init();
  assert.deepEqual(names(rf.byIndex("namespace", "ns1")), ["ns1/a", "ns1/c"]);
  assert.deepEqual(names(rf.byIndex("app", "web")), ["ns1/a", "ns2/b"]);
  await rf.poll();
  assert.deepEqual(names(rf.byIndex("app", "web")), ["ns3/d"]);
  assert.deepEqual(names(rf.byIndex("app", "db")), ["ns1/a", "ns1/c"]);
  assert.deepEqual(names(rf.byIndex("namespace", "ns2")), []);
  assert.deepEqual(names(rf.byIndex("namespace", "ns3")), ["ns3/d"]);
  // An index added later is built from the current content.
  rf.index("name", (o) => [o.metadata?.name ?? ""]);
  assert.deepEqual(names(rf.byIndex("name", "c")), ["ns1/c"]);
  assert.throws(() => rf.byIndex("nope", "x"), TypeError);
});

test("Reflector: an index function that throws does not stop the cache: the object is indexed under no value", async () => {
  const stub = new StubServer().push(
    sync(obj("a", "1", "ns1", { app: "web" }), obj("bad", "2", "ns1", { app: "web" })),
    events([
      ev("MODIFIED", obj("bad", "101", "ns1", { app: "db" })),
      ev("ADDED", obj("c", "102", "ns1", { app: "web" })),
      ev("DELETED", obj("bad", "103", "ns1", { app: "db" })),
    ]),
  );
  const controller = new AbortController();
  const rf = new Reflector(stub.client(), Api.v1ConfigMap(), {
    ...testStore(),
    sleep: new Sleeps().sleep,
  })
    .index("app", (o) => {
      if (o.metadata?.name === "bad") throw new Error("no app for you");
      return [o.metadata?.labels?.app ?? ""];
    });
  const changes = rf.changes({ signal: controller.signal });
  const running = rf.run({ signal: controller.signal });
  const seen: string[] = [];
  for await (const change of changes) {
    seen.push(
      `${change.type}:${change.object.metadata?.name}@${change.object.metadata?.resourceVersion}`,
    );
    if (seen.length === 5) break;
  }
  controller.abort();
  await running; // resolves on abort: the throwing index was no permanent failure
  assert.deepEqual(seen, [
    "ADDED:a@1",
    "ADDED:bad@2",
    "MODIFIED:bad@101",
    "ADDED:c@102",
    "DELETED:bad@103",
  ]);
  assert.deepEqual(names(rf.byIndex("app", "web")), ["ns1/a", "ns1/c"]);
  assert.deepEqual(names(rf.byIndex("namespace", "ns1")), ["ns1/a", "ns1/c"]);
  assert.equal(rf.version(), "103");
});

test("Reflector: transform (stripManagedFields) is applied before caching", async () => {
  const stub = new StubServer().push(
    sync(obj("a", "1")),
    events([ev("MODIFIED", obj("a", "2"))]),
  );
  const rf = new Reflector(stub.client(), Api.v1ConfigMap().within("default"), testStore())
    .transform(stripManagedFields);
  await rf.init();
  assert.equal(rf.get("a")?.metadata?.managedFields, undefined);
  assert.equal(rf.get("a")?.metadata?.name, "a");
  await rf.poll();
  assert.equal(rf.get("a")?.metadata?.resourceVersion, "2");
  assert.equal(rf.get("a")?.metadata?.managedFields, undefined);
  const seen = rf.events();
  assert.ok(
    seen.every((e) => e.type !== "ERROR" && e.object.metadata?.managedFields === undefined),
  );
});

test("Reflector: events() returns and removes the events seen since the last call", async () => {
  const stub = new StubServer().push(
    sync(obj("a", "1"), obj("b", "2")),
    events([ev("MODIFIED", obj("a", "3")), bookmark("4"), ev("DELETED", obj("b", "5"))]),
  );
  const rf = new Reflector(stub.client(), Api.v1ConfigMap().within("default"), testStore());
  await rf.init();
  assert.deepEqual(summary(rf.events()), ["ADDED:a@1", "ADDED:b@2"]);
  assert.deepEqual(rf.events(), []);
  await rf.poll();
  assert.deepEqual(summary(rf.events()), ["MODIFIED:a@3", "DELETED:b@5"]);
  assert.deepEqual(rf.events(), []);
  assert.equal(rf.version(), "5");
});

test("Reflector: events() keeps at most maxBufferedEvents, dropping the oldest", async () => {
  const objects = Array.from({ length: 30 }, (_, i) => obj(`o${i}`, String(i + 1)));
  const stub = new StubServer().push(sync(...objects));
  const rf = new Reflector(stub.client(), Api.v1ConfigMap(), {
    ...testStore(),
    maxBufferedEvents: 8,
  });
  await rf.init();
  const kept = rf.events();
  assert.ok(kept.length >= 8 && kept.length <= 10, `kept ${kept.length}`);
  assert.deepEqual(summary(kept).at(-1), "ADDED:o29@30");
  assert.equal(rf.read().size, 30);
});

test("Reflector: get() and keys: namespace/name for namespaced kinds, name for cluster-scoped ones", async () => {
  const stub = new StubServer().push(sync(obj("a", "1", "ns1")));
  const rf = new Reflector(stub.client(), Api.v1ConfigMap(), testStore());
  await rf.init();
  assert.equal(rf.get("a", "ns1")?.metadata?.name, "a");
  assert.equal(rf.get("a", "ns2"), undefined);
  assert.throws(() => rf.get("a"), TypeError);
  assert.deepEqual([...rf.read().keys()], ["ns1/a"]);

  const nsStub = new StubServer().push(
    list([{ metadata: { name: "kube-system", resourceVersion: "5" } }], "9"),
  );
  const namespaces = new Reflector(nsStub.client(), Api.v1Namespace(), {
    ...testStore(),
    initialSync: "list",
  });
  await namespaces.init();
  assert.deepEqual([...namespaces.read().keys()], ["kube-system"]);
  assert.equal(namespaces.get("kube-system")?.kind, "Namespace");
});

test("Reflector: read() is a live read-only view: iteration started before a resync sees the old content", async () => {
  const stub = new StubServer().push(
    sync(obj("a", "1"), obj("b", "2")),
    events([{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Gone" } }]),
    sync(obj("c", "3")),
  );
  const rf = new Reflector(stub.client(), Api.v1ConfigMap().within("default"), testStore());
  await rf.init();
  const view = rf.read();
  const iterator = view.keys();
  assert.equal(iterator.next().value, "default/a");
  await rf.poll();
  assert.equal(iterator.next().value, "default/b");
  assert.deepEqual([...view.keys()], ["default/c"]);
  assert.equal(view.has("default/c"), true);
  assert.equal(view.size, 1);
  assert.equal("set" in view, false);
});

test("Reflector: changes() normalises watch events against the cache (no duplicate, ADDED of a known key is MODIFIED)", async () => {
  const stub = new StubServer().push(
    sync(obj("a", "1")),
    events([
      ev("ADDED", obj("a", "1")),
      ev("ADDED", obj("a", "2")),
      ev("DELETED", obj("a", "3")),
    ]),
  );
  const rf = new Reflector(stub.client(), Api.v1ConfigMap().within("default"), testStore());
  const controller = new AbortController();
  const changes = rf.changes({ signal: controller.signal });
  await rf.init();
  await rf.poll();
  controller.abort();
  const seen = [];
  for await (const change of changes) {
    seen.push(
      `${change.type}:${change.object.metadata?.resourceVersion}:${
        change.old?.metadata?.resourceVersion ?? "-"
      }`,
    );
  }
  assert.deepEqual(seen, ["ADDED:1:-", "MODIFIED:2:1", "DELETED:3:2"]);
});

test("Reflector: run(): events are buffered only once events() was called, so replaced objects are not kept", async () => {
  const { FakeApiServer } = await import("../../testing/mod.ts");
  await using server = new FakeApiServer();
  const client = server.client();
  const api = Api.v1ConfigMap().within("default");
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "a", namespace: "default" },
  });
  const reflector = new Reflector(client, api, testStore());
  const controller = new AbortController();
  const running = reflector.run({ signal: controller.signal });
  try {
    await reflector.ready;
    const changes = reflector.changes({ signal: controller.signal });
    await client.patch(api, "a", { data: { v: "1" } });
    assert.equal((await changes.next()).value?.type, "MODIFIED");
    // Nobody asked for events() yet: nothing was kept.
    assert.deepEqual(reflector.events(), []);
    await client.patch(api, "a", { data: { v: "2" } });
    assert.equal((await changes.next()).value?.type, "MODIFIED");
    const events = reflector.events();
    assert.deepEqual(events.map((e) => e.type), ["MODIFIED"]);
    assert.equal(reflector.byIndex("namespace", "default").length, 1);
    await changes.return?.();
  } finally {
    controller.abort();
    await running;
  }
});
