import assert from "node:assert/strict";
import { summary } from "./_helpers.ts";
import { Api, type KubeObject } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { Informer, type InformerOptions } from "../../informer.ts";
import type { WatchEvent } from "../../watch.ts";
import {
  bookmark,
  cm,
  errorEvent,
  ev,
  events,
  list,
  refused,
  Sleeps,
  status,
  StubServer,
} from "./_stub_server.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

function informer(stub: StubServer, sleeps: Sleeps, options: InformerOptions = {}) {
  return new Informer(stub.client(), configMaps, {
    backoff: { random: () => 0 },
    sleep: sleeps.sleep,
    watchTimeoutSeconds: 5,
    ...options,
  });
}

/** Takes `n` events from the iterator, then leaves it (which cancels any open body). */
async function take<T extends KubeObject>(
  iterator: AsyncIterable<WatchEvent<T>>,
  n: number,
): Promise<WatchEvent<T>[]> {
  const out: WatchEvent<T>[] = [];
  if (n === 0) return out;
  for await (const event of iterator) {
    out.push(event);
    if (out.length === n) break;
  }
  return out;
}

function rv(stub: StubServer, i: number): string | null {
  return stub.requests[i].query.get("resourceVersion");
}

test("Informer: first delivers existing objects as ADDED, then re-watches from the last RV after a normal close", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1"), cm("b", "2")], "10"),
    events([ev("ADDED", cm("c", "11")), ev("MODIFIED", cm("a", "12"))]),
    events([ev("DELETED", cm("b", "13"))], { hang: true }),
  );
  const inf = informer(stub, sleeps);
  const out = await take(inf, 5);
  assert.deepEqual(summary(out), [
    "ADDED:a@1",
    "ADDED:b@2",
    "ADDED:c@11",
    "MODIFIED:a@12",
    "DELETED:b@13",
  ]);
  assert.equal(stub.requests[0].watch, false);
  assert.equal(stub.requests[0].query.get("limit"), "500");
  assert.equal(stub.requests[1].watch, true);
  assert.equal(rv(stub, 1), "10");
  assert.equal(stub.requests[1].query.get("timeoutSeconds"), "5");
  assert.equal(stub.requests[1].query.get("allowWatchBookmarks"), "true");
  assert.equal(rv(stub, 2), "12");
  assert.deepEqual(sleeps.delays, []);
  assert.equal(inf.version(), "13");
  assert.equal(stub.open, 0);
  assert.equal(stub.cancelled, 1);
});

test("Informer: streaming mode picks a random server timeout in [300, 600] s by default", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "2"))]));
  const inf = new Informer(stub.client(), configMaps, { resourceVersion: "1" });
  await take(inf, 1);
  const seconds = Number(stub.requests[0].query.get("timeoutSeconds"));
  assert.ok(seconds >= 300 && seconds <= 600, `timeoutSeconds ${seconds}`);
});

test("Informer: after init() only changes are delivered", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1")], "10"),
    events([ev("ADDED", cm("b", "11"))], { hang: true }),
  );
  const inf = informer(stub, sleeps);
  await inf.init();
  assert.equal(inf.version(), "10");
  assert.equal(inf.pop(), undefined);
  assert.deepEqual(summary(await take(inf, 1)), ["ADDED:b@11"]);
  assert.equal(rv(stub, 1), "10");
});

test("Informer: poll() watches once with the timeout and queues events; pop() takes them", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1")], "10"),
    events([ev("ADDED", cm("b", "11")), ev("MODIFIED", cm("a", "12"))]),
  );
  const inf = informer(stub, sleeps).timeout(15);
  await inf.init();
  await inf.poll();
  assert.equal(stub.requests[1].query.get("timeoutSeconds"), "15");
  assert.equal(rv(stub, 1), "10");
  assert.deepEqual(summary([inf.pop()!, inf.pop()!]), ["ADDED:b@11", "MODIFIED:a@12"]);
  assert.equal(inf.pop(), undefined);
  assert.equal(inf.version(), "12");
});

test("Informer: bookmark-only stream advances the resource version and queues nothing", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([], "10"),
    events([bookmark("15"), bookmark("20")]),
    events([]),
  );
  const inf = informer(stub, sleeps);
  await inf.init();
  await inf.poll();
  assert.equal(inf.pop(), undefined);
  assert.equal(inf.version(), "20");
  await inf.poll();
  assert.equal(rv(stub, 2), "20");
});

test("Informer: bookmarks are delivered with the bookmarks option", async () => {
  const stub = new StubServer().push(events([bookmark("15")]));
  const inf = informer(stub, new Sleeps(), { resourceVersion: "10", bookmarks: true });
  assert.deepEqual(summary(await take(inf, 1)), ["BOOKMARK:15"]);
});

const expiredStatus = {
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  reason: "Expired",
  code: 410,
  message: "too old resource version: 10 (30)",
};

/** The relist scenario: a, b, c delivered; during the gap b changed, c was deleted, d created. */
function relistScenario(expiry: ReturnType<typeof status> | ReturnType<typeof events>) {
  return new StubServer().push(
    list([cm("a", "1"), cm("b", "1"), cm("c", "1")], "10"),
    expiry,
    list([cm("a", "1"), cm("b", "5"), cm("d", "6")], "30"),
    events([ev("ADDED", cm("e", "31"))], { hang: true }),
  );
}

async function assertRelistDiff(stub: StubServer, sleeps: Sleeps) {
  const inf = informer(stub, sleeps);
  const out = await take(inf, 7);
  assert.deepEqual(summary(out), [
    "ADDED:a@1",
    "ADDED:b@1",
    "ADDED:c@1",
    "MODIFIED:b@5",
    "ADDED:d@6",
    "DELETED:c@1",
    "ADDED:e@31",
  ]);
  const deleted = out[5];
  assert.equal(deleted.type, "DELETED");
  if (deleted.type === "DELETED") {
    // The informer keeps only key → resourceVersion: the tombstone is minimal.
    assert.deepEqual(deleted.object, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { namespace: "default", name: "c", resourceVersion: "1" },
    });
  }
  assert.equal(stub.requests[2].watch, false);
  assert.equal(rv(stub, 2), null);
  assert.equal(rv(stub, 3), "30");
  assert.deepEqual(sleeps.delays, []);
}

test("Informer: 410 as HTTP status: re-list and emit the difference (deletion in the gap, unchanged not repeated)", async () => {
  const sleeps = new Sleeps();
  await assertRelistDiff(relistScenario(status(410, expiredStatus)), sleeps);
});

for (const reason of ["Expired", "Gone"]) {
  test(`410 as ERROR event with reason ${reason}: re-list and emit the difference`, async () => {
    const sleeps = new Sleeps();
    await assertRelistDiff(
      relistScenario(events([errorEvent(410, reason, "too old resource version")])),
      sleeps,
    );
  });
}

test("Informer: poll(): a 410 re-lists in the same call and queues the difference", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1"), cm("b", "1")], "10"),
    events([ev("MODIFIED", cm("a", "11")), errorEvent(410, "Gone")]),
    list([cm("a", "11")], "30"),
  );
  const inf = informer(stub, sleeps);
  await inf.init();
  await inf.poll();
  const out: WatchEvent[] = [];
  for (let e = inf.pop(); e; e = inf.pop()) out.push(e);
  assert.deepEqual(summary(out), ["MODIFIED:a@11", "DELETED:b@1"]);
  assert.equal(inf.version(), "30");
});

test("Informer: 429 with a plain-text body and Retry-After is retried after the server's delay", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    status(429, "Too many requests, please try again later.\n", { "Retry-After": "7" }),
    events([ev("ADDED", cm("a", "11"))], { hang: true }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  assert.deepEqual(summary(await take(inf, 1)), ["ADDED:a@11"]);
  assert.deepEqual(sleeps.delays, [7000]);
  assert.equal(stub.requests.length, 2);
  assert.equal(rv(stub, 1), "10");
});

test("Informer: 500 and 503 are retried with backoff", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    status(500, { kind: "Status", status: "Failure", reason: "InternalError", code: 500 }),
    status(503, "upstream unavailable"),
    events([ev("ADDED", cm("a", "11"))], { hang: true }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  assert.deepEqual(summary(await take(inf, 1)), ["ADDED:a@11"]);
  assert.deepEqual(sleeps.delays, [800, 1600]);
  assert.equal(stub.requests.length, 3);
});

test("Informer: a refused connection (fetch throws TypeError) is retried", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    refused(),
    events([ev("ADDED", cm("a", "11"))], { hang: true }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  assert.deepEqual(summary(await take(inf, 1)), ["ADDED:a@11"]);
  assert.deepEqual(sleeps.delays, [800]);
});

test("Informer: a malformed line is retried from the last good resource version", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "11")), "this is not json\n"], { hang: true }),
    events([ev("ADDED", cm("b", "12"))], { hang: true }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  assert.deepEqual(summary(await take(inf, 2)), ["ADDED:a@11", "ADDED:b@12"]);
  assert.equal(rv(stub, 1), "11");
  assert.deepEqual(sleeps.delays, [800]);
  assert.equal(stub.open, 0);
});

test("Informer: a stalled stream is abandoned and re-watched", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "11"))], { hang: true }),
    events([ev("ADDED", cm("b", "12"))], { hang: true }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10", inactivityTimeoutMs: 30 });
  assert.deepEqual(summary(await take(inf, 2)), ["ADDED:a@11", "ADDED:b@12"]);
  assert.equal(rv(stub, 1), "11");
  assert.deepEqual(sleeps.delays, [800]);
  assert.equal(stub.open, 0);
});

test("Informer: 403 ends the iteration with the ApiError", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "11"))]),
    status(403, { kind: "Status", status: "Failure", reason: "Forbidden", code: 403 }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const event of inf) seen.push(event.type);
  }, (e: unknown) => e instanceof ApiError && e.status === 403);
  assert.deepEqual(seen, ["ADDED"]);
});

test("Informer: poll(): permanent failures reject, transient ones resolve and delay the next poll", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    status(500, "boom"),
    events([ev("ADDED", cm("a", "11"))]),
    status(404, { kind: "Status", status: "Failure", reason: "NotFound", code: 404 }),
  );
  const inf = informer(stub, sleeps, { resourceVersion: "10" });
  await inf.poll();
  assert.equal(inf.pop(), undefined);
  assert.deepEqual(sleeps.delays, []);
  await inf.poll();
  assert.deepEqual(sleeps.delays, [800]);
  assert.deepEqual(summary([inf.pop()!]), ["ADDED:a@11"]);
  await assert.rejects(inf.poll(), (e: unknown) => e instanceof ApiError && e.status === 404);
});

test("Informer: breaking out of for-await cancels the watch body", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "11")), ev("ADDED", cm("b", "12"))], { hang: true }),
  );
  const inf = informer(stub, new Sleeps(), { resourceVersion: "10" });
  for await (const _ of inf) break;
  assert.equal(stub.cancelled, 1);
  assert.equal(stub.open, 0);
  assert.equal(inf.version(), "11");
});

test("Informer: aborting the signal ends the stream quietly and closes the body", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "11"))], { hang: true }));
  const inf = informer(stub, new Sleeps(), { resourceVersion: "10" });
  const controller = new AbortController();
  const iterator = inf.stream({ signal: controller.signal });
  assert.equal((await iterator.next()).done, false);
  const pending = iterator.next();
  controller.abort();
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(stub.open, 0);
});

test("Informer: only one poll or iteration at a time", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "11"))], { hang: true }));
  const inf = informer(stub, new Sleeps(), { resourceVersion: "10" });
  const iterator = inf.stream();
  await iterator.next();
  await assert.rejects(inf.poll(), TypeError);
  await iterator.return!();
  assert.equal(stub.open, 0);
});
