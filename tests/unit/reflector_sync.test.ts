import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { type CacheChange, Reflector, type ReflectorOptions } from "../../reflector.ts";
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
import { compactRun, testStore } from "./_helpers.ts";

const configMaps = Api.v1ConfigMap().within("default");

function reflector(stub: StubServer, sleeps = new Sleeps(), options: ReflectorOptions = {}) {
  return new Reflector(stub.client(), configMaps, {
    ...testStore(),
    backoff: { random: () => 0 },
    sleep: sleeps.sleep,
    watchTimeoutSeconds: 5,
    ...options,
  });
}

function content(map: ReadonlyMap<string, KubeObject>): string[] {
  return [...map].map(([key, o]) => `${key}@${o.metadata?.resourceVersion}`).sort();
}

function describeChange(c: CacheChange<KubeObject>): string {
  const old = c.old ? ` (was ${c.old.metadata?.resourceVersion})` : "";
  return `${c.type}:${c.object.metadata?.name}@${c.object.metadata?.resourceVersion}${old}`;
}

async function take<T>(iterator: AsyncIterableIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

test("Reflector: init() syncs with a watch list ending at the initial-events-end bookmark", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1")), ev("ADDED", cm("b", "2")), bookmark("10", true)], {
      hang: true,
    }),
  );
  const rf = reflector(stub);
  await rf.init();
  await rf.ready;
  const query = stub.requests[0].query;
  assert.equal(stub.requests[0].watch, true);
  assert.equal(query.get("sendInitialEvents"), "true");
  assert.equal(query.get("resourceVersionMatch"), "NotOlderThan");
  assert.equal(query.get("allowWatchBookmarks"), "true");
  assert.equal(query.get("resourceVersion"), null);
  assert.deepEqual(content(rf.read()), ["default/a@1", "default/b@2"]);
  assert.equal(rf.version(), "10");
  assert.equal(stub.cancelled, 1, "init() leaves the stream after the bookmark");
  assert.equal(stub.open, 0);
});

test("Reflector: poll() after init() watches from the bookmark's resource version", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1")), bookmark("10", true)]),
    events([ev("MODIFIED", cm("a", "11")), ev("ADDED", cm("b", "12"))]),
  );
  const rf = reflector(stub).timeout(20);
  await rf.init();
  await rf.poll();
  assert.equal(stub.requests[1].query.get("resourceVersion"), "10");
  assert.equal(stub.requests[1].query.get("timeoutSeconds"), "20");
  assert.equal(stub.requests[1].query.get("sendInitialEvents"), null);
  assert.deepEqual(content(rf.read()), ["default/a@11", "default/b@12"]);
  assert.equal(rf.version(), "12");
});

test("Reflector: a resync builds the new map aside and swaps it in atomically", async () => {
  const stub = new StubServer().push(
    events([
      ev("ADDED", cm("a", "1")),
      ev("ADDED", cm("b", "1")),
      ev("ADDED", cm("c", "1")),
      bookmark("10", true),
    ]),
    events([errorEvent(410, "Expired", "too old resource version")]),
    events([
      ev("ADDED", cm("a", "1")),
      ev("ADDED", cm("b", "5")),
      ev("ADDED", cm("d", "6")),
      bookmark("30", true),
    ]),
  );
  const seenDuringSync: string[][] = [];
  const rf = reflector(stub);
  const view = rf.read();
  rf.transform((object) => {
    seenDuringSync.push(content(view));
    return object;
  });
  const changes = rf.changes();
  await rf.init();
  // During the first sync, readers saw the empty cache: never a partial one. (The compact
  // store runs the transform when an object is read, not during the sync: nothing to see.)
  const compact = compactRun();
  assert.deepEqual(seenDuringSync, compact ? [] : [[], [], []]);
  assert.deepEqual(content(view), ["default/a@1", "default/b@1", "default/c@1"]);
  seenDuringSync.length = 0;
  await rf.poll();
  // During the resync, readers saw the complete old content.
  const old = ["default/a@1", "default/b@1", "default/c@1"];
  assert.deepEqual(seenDuringSync, compact ? [] : [old, old, old]);
  assert.deepEqual(content(view), ["default/a@1", "default/b@5", "default/d@6"]);
  assert.equal(rf.version(), "30");
  const seen = await take(changes, 6);
  assert.deepEqual(seen.map(describeChange), [
    "ADDED:a@1",
    "ADDED:b@1",
    "ADDED:c@1",
    "MODIFIED:b@5 (was 1)",
    "ADDED:d@6",
    "DELETED:c@1 (was 1)",
  ]);
  await changes.return!();
});

test("Reflector: auto falls back to a paged list when the server rejects sendInitialEvents (422)", async () => {
  const stub = new StubServer().push(
    status(422, {
      kind: "Status",
      status: "Failure",
      reason: "Invalid",
      code: 422,
      message: 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden',
    }),
    list([cm("a", "1")], "10"),
    status(410, { kind: "Status", status: "Failure", reason: "Expired", code: 410 }),
    list([cm("b", "2")], "20"),
  );
  const rf = reflector(stub);
  await rf.init();
  assert.deepEqual(content(rf.read()), ["default/a@1"]);
  assert.equal(stub.requests[1].watch, false);
  assert.equal(stub.requests[1].query.get("limit"), "500");
  await rf.poll();
  // The next sync goes straight to the list: the fallback is remembered.
  assert.equal(stub.requests[3].watch, false);
  assert.deepEqual(content(rf.read()), ["default/b@2"]);
  assert.equal(rf.version(), "20");
});

test("Reflector: auto falls back to a list when the stream ends before the end bookmark", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1"))]),
    list([cm("a", "1"), cm("b", "2")], "10"),
  );
  const rf = reflector(stub);
  await rf.init();
  assert.deepEqual(content(rf.read()), ["default/a@1", "default/b@2"]);
  assert.equal(stub.requests[1].watch, false);
});

test("Reflector: initialSync watchList does not fall back: an incomplete stream is an error", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "1"))]));
  const rf = reflector(stub, new Sleeps(), { initialSync: "watchList" });
  await assert.rejects(rf.init(), (e: unknown) => e instanceof ApiError && e.status === 0);
  assert.equal(rf.read().size, 0);
});

test("Reflector: initialSync list uses a paged list and then watches from its resource version", async () => {
  const stub = new StubServer().push(
    list([cm("a", "1")], "10", "next"),
    list([cm("b", "2")], "11"),
    events([ev("DELETED", cm("a", "12"))]),
  );
  const rf = reflector(stub, new Sleeps(), { initialSync: "list", pageSize: 1 });
  await rf.init();
  assert.equal(stub.requests[0].query.get("limit"), "1");
  assert.equal(stub.requests[1].query.get("continue"), "next");
  assert.deepEqual(content(rf.read()), ["default/a@1", "default/b@2"]);
  await rf.poll();
  assert.equal(stub.requests[2].query.get("resourceVersion"), "11");
  assert.deepEqual(content(rf.read()), ["default/b@2"]);
});

test("Reflector: run() keeps the same watch-list stream after the sync, re-watches, and stops on abort", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1")), bookmark("10", true), ev("MODIFIED", cm("a", "11"))]),
    events([ev("ADDED", cm("b", "12"))], { hang: true }),
  );
  const rf = reflector(stub);
  const controller = new AbortController();
  const changes = rf.changes({ signal: controller.signal });
  const running = rf.run({ signal: controller.signal });
  await rf.ready;
  const seen = await take(changes, 3);
  assert.deepEqual(seen.map(describeChange), ["ADDED:a@1", "MODIFIED:a@11 (was 1)", "ADDED:b@12"]);
  assert.equal(stub.requests[1].query.get("resourceVersion"), "11");
  assert.equal(stub.requests[1].query.get("sendInitialEvents"), null);
  controller.abort();
  await running;
  assert.deepEqual(await changes.next(), { done: true, value: undefined });
  assert.equal(stub.open, 0);
});

test("Reflector: run() retries transient failures with backoff and honours Retry-After", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    status(503, "unavailable"),
    status(429, "slow down", { "Retry-After": "3" }),
    events([ev("ADDED", cm("a", "1")), bookmark("10", true)], { hang: true }),
  );
  const rf = reflector(stub, sleeps);
  const controller = new AbortController();
  const running = rf.run({ signal: controller.signal });
  await rf.ready;
  controller.abort();
  await running;
  assert.deepEqual(sleeps.delays, [800, 3000]);
  assert.deepEqual(content(rf.read()), ["default/a@1"]);
  assert.equal(stub.open, 0);
});

test("Reflector: run() rejects on 403, rejecting ready and ending changes() with the error", async () => {
  const stub = new StubServer().push(
    status(403, { kind: "Status", status: "Failure", reason: "Forbidden", code: 403 }),
    status(403, { kind: "Status", status: "Failure", reason: "Forbidden", code: 403 }),
  );
  const rf = reflector(stub);
  const changes = rf.changes();
  const next = changes.next();
  const isForbidden = (e: unknown) => e instanceof ApiError && e.status === 403;
  await assert.rejects(rf.run(), isForbidden);
  await assert.rejects(rf.ready, isForbidden);
  await assert.rejects(next, isForbidden);
  // 403 on the watch list falls back to a list, whose 403 is final.
  assert.equal(stub.requests.length, 2);
  assert.equal(stub.requests[1].watch, false);
});
