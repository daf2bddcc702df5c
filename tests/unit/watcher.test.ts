// The watch loop (_client/watcher.ts) on its own, against the stub server: the steps it yields for a
// paged list, a watch list, a fallback, a 410 relist and a transient failure, with no consumer in
// between; and the store (_client/store.ts) on its own: indexes and the atomic replace.

import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { Api, type KubeObject } from "../../api.ts";
import { Store, UNCHANGED } from "../../_client/store.ts";
import { Watcher, type WatcherStep } from "../../_client/watcher.ts";
import { VirtualClock } from "../../testing/mod.ts";
import {
  bookmark,
  cm,
  errorEvent,
  ev,
  events,
  list,
  Sleeps,
  status,
  StubServer,
} from "./_stub_server.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");
const log = getLogger(["kube", "test"]);

/** A Watcher that syncs by paged list, sleeps on `sleeps` and backs off without jitter. */
function listingWatcher(stub: StubServer, sleeps: Sleeps): Watcher<KubeObject> {
  return new Watcher(
    stub.client(),
    configMaps,
    {
      initialSync: "list",
      backoff: { random: () => 0 },
      sleep: sleeps.sleep,
      watchTimeoutSeconds: 5,
    },
    log,
    "Watch",
  );
}

function describe(step: WatcherStep<KubeObject>): string {
  const names = (objects: KubeObject[]) =>
    objects.map((o) => `${o.metadata?.name}@${o.metadata?.resourceVersion}`).join(",");
  switch (step.type) {
    case "init-start":
      return "init-start";
    case "init-objects":
      return `init-objects(${names(step.objects)})`;
    case "init-delete":
      return `init-delete(${names(step.objects)})`;
    case "init-done":
      return `init-done(${step.resourceVersion})`;
    case "events":
      return `events(${
        step.events.map((e) =>
          e.type === "BOOKMARK"
            ? `BOOKMARK@${e.resourceVersion}`
            : `${e.type}:${e.object.metadata?.name}@${e.object.metadata?.resourceVersion}`
        ).join(",")
      })`;
  }
}

async function steps(
  iterator: AsyncIterable<WatcherStep<KubeObject>>,
  until: (seen: string[]) => boolean = () => false,
): Promise<string[]> {
  const seen: string[] = [];
  for await (const step of iterator) {
    seen.push(describe(step));
    if (until(seen)) break;
  }
  return seen;
}

test("Watcher: a paged list yields init-start, one init-objects per page, init-done, then watch events", async () => {
  const stub = new StubServer().push(
    list([cm("a", "1")], "10", "page2"),
    list([cm("b", "2")], "10"),
    events([ev("ADDED", cm("c", "11")), bookmark("12")]),
  );
  const watcher = new Watcher(
    stub.client(),
    configMaps,
    {
      initialSync: "list",
      pageSize: 1,
      watchTimeoutSeconds: 5,
    },
    log,
    "Watch",
  );
  const controller = new AbortController();
  const seen = await steps(watcher.run(controller.signal), (s) => s.length === 5);
  controller.abort();
  assert.deepEqual(seen, [
    "init-start",
    "init-objects(a@1)",
    "init-objects(b@2)",
    "init-done(10)",
    "events(ADDED:c@11)",
  ]);
  assert.equal(stub.requests[2].query.get("resourceVersion"), "10");
  assert.equal(watcher.resourceVersion, "10", "the batch was not taken yet when the loop stopped");
  assert.equal(stub.open, 0);
});

test("Watcher: a watch list yields its initial objects, init-done at the end bookmark, then live events on the same stream", async () => {
  const stub = new StubServer().push(
    events([
      ev("ADDED", cm("a", "1")),
      ev("ADDED", cm("b", "2")),
      bookmark("10", true),
      ev("MODIFIED", cm("a", "11")),
    ], { hang: true }),
  );
  const watcher = new Watcher(stub.client(), configMaps, { watchTimeoutSeconds: 5 }, log, "Sync");
  const controller = new AbortController();
  const seen = await steps(watcher.run(controller.signal), (s) => s.length === 5);
  controller.abort();
  assert.deepEqual(seen, [
    "init-start",
    "init-objects(a@1)", // the stub sends one event per chunk: one step per chunk
    "init-objects(b@2)",
    "init-done(10)",
    "events(MODIFIED:a@11)",
  ]);
  assert.equal(stub.requests.length, 1);
  assert.equal(stub.requests[0].query.get("sendInitialEvents"), "true");
  assert.equal(stub.open, 0);
});

test("Watcher: a refused watch list falls back to a list, which starts over with init-start", async () => {
  const stub = new StubServer().push(
    status(422, { kind: "Status", code: 422, reason: "Invalid", message: "no watch list" }),
    list([cm("a", "1")], "10"),
  );
  const watcher = new Watcher(stub.client(), configMaps, {}, log, "Sync");
  assert.deepEqual(await steps(watcher.sync(undefined)), [
    "init-start",
    "init-start",
    "init-objects(a@1)",
    "init-done(10)",
  ]);
  assert.equal(stub.requests[1].watch, false);
  assert.equal(watcher.needsSync, false);
});

test("Watcher: a 410 ERROR event makes the next round a relist; a 503 waits the backoff on the clock", async () => {
  const clock = new VirtualClock();
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "11")), errorEvent(410, "Expired")]),
    list([cm("a", "12")], "20"),
    status(503, "busy"),
  );
  const watcher = new Watcher(
    stub.client(),
    configMaps,
    {
      resourceVersion: "10",
      initialSync: "list",
      backoff: { random: () => 0 },
      clock,
    },
    log,
    "Watch",
  );
  assert.deepEqual(await steps(watcher.poll(undefined, 5)), [
    "events(ADDED:a@11)",
    "init-start",
    "init-objects(a@12)",
    "init-done(20)",
  ]);
  assert.equal(watcher.resourceVersion, "20");
  // The 503 of the next watch is transient: the round ends quietly, the one after waits 800 ms.
  assert.deepEqual(await steps(watcher.poll(undefined, 5)), []);
  const requests = stub.requests.length;
  const controller = new AbortController();
  const next = steps(watcher.poll(controller.signal, 5));
  await clock.advance(799);
  assert.equal(stub.requests.length, requests, "watched again before the backoff elapsed");
  await clock.advance(1);
  for (let i = 0; i < 10 && stub.requests.length === requests; i++) await Promise.resolve();
  assert.equal(stub.requests.length, requests + 1);
  controller.abort();
  await assert.rejects(next);
  assert.equal(stub.requests.at(-1)?.query.get("resourceVersion"), "20");
});

test("Store: indexes follow upserts and removals; replace swaps content and indexes at once", () => {
  const store = new Store<KubeObject>();
  store.addIndex("app", (o) => [o.metadata?.labels?.app ?? ""]);
  const a = {
    metadata: { name: "a", namespace: "x", resourceVersion: "1", labels: { app: "web" } },
  };
  assert.equal(store.upsert("x/a", a), undefined);
  assert.equal(store.upsert("x/a", { ...a }), UNCHANGED, "same resourceVersion: nothing to do");
  const a2 = { metadata: { ...a.metadata, resourceVersion: "2", labels: { app: "db" } } };
  assert.equal(store.upsert("x/a", a2), a);
  assert.deepEqual(store.byIndex("app", "web"), []);
  assert.deepEqual(store.byIndex("app", "db"), [a2]);
  assert.deepEqual(store.byIndex("namespace", "x"), [a2]);
  const view = store.view;
  const before = [...view.keys()];
  const b = {
    metadata: { name: "b", namespace: "y", resourceVersion: "3", labels: { app: "web" } },
  };
  const previous = store.replace(new Map([["y/b", b]]));
  assert.deepEqual([...previous.keys()], before);
  assert.deepEqual([...view.keys()], ["y/b"], "the view shows the new content");
  assert.deepEqual(store.byIndex("app", "web"), [b]);
  assert.deepEqual(store.byIndex("namespace", "x"), []);
  assert.equal(store.remove("y/b"), b);
  assert.equal(store.size, 0);
  assert.throws(() => store.byIndex("nope", "v"), /No index "nope"/);
});

test("Watcher: a server answering 410 to every watch gets its LISTs paced by the backoff, not a storm", async () => {
  const sleeps = new Sleeps();
  const expired = () =>
    status(410, { kind: "Status", status: "Failure", code: 410, reason: "Expired" });
  const stub = new StubServer().push(
    list([cm("a", "1")], "10"),
    expired(),
    list([cm("a", "1")], "11"),
    expired(),
    list([cm("a", "1")], "12"),
    events([errorEvent(410, "Gone")]),
    list([cm("a", "1")], "13"),
    expired(),
    list([cm("a", "1")], "14"),
  );
  const watcher = listingWatcher(stub, sleeps);
  const controller = new AbortController();
  const seen = await steps(
    watcher.run(controller.signal),
    (s) => s.filter((x) => x.startsWith("init-done")).length === 5,
  );
  controller.abort();
  assert.equal(seen.filter((x) => x === "init-start").length, 5);
  // The first expiry relists at once; each further one in a row waits a doubling backoff step.
  assert.deepEqual(sleeps.delays, [800, 1600, 3200]);
});

test("Watcher: expiries after healthy watches relist at once, without backoff", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1")], "10"),
    events([ev("MODIFIED", cm("a", "11")), errorEvent(410, "Expired")]),
    list([cm("a", "12")], "20"),
    events([ev("MODIFIED", cm("a", "21")), errorEvent(410, "Expired")]),
    list([cm("a", "22")], "30"),
  );
  const watcher = listingWatcher(stub, sleeps);
  const controller = new AbortController();
  await steps(
    watcher.run(controller.signal),
    (s) => s.filter((x) => x.startsWith("init-done")).length === 3,
  );
  controller.abort();
  assert.deepEqual(sleeps.delays, []);
});
