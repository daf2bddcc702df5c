// The controller runtime against the FakeApiServer on a virtual clock: every delay is exact.

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import {
  Action,
  Api,
  ApiError,
  Client,
  Controller,
  type CustomObject,
  type KubeObject,
  predicates,
  type ReconcileContext,
  sharedCache,
  TerminalError,
} from "../../mod.ts";
import { ControllerHarness, FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";
import { harnessServer, testStore } from "./_helpers.ts";

interface FooSpec {
  name: string;
  info: string;
  replicas?: number;
}
interface FooStatus {
  count?: number;
}
type Foo = CustomObject<FooSpec, FooStatus>;

const foos = Api.customResource<FooSpec, FooStatus>("foos").group("clux.dev").version("v1")
  .within("default");
const configMaps = Api.v1ConfigMap().within("default");

function fooServer(): FakeApiServer {
  const server = new FakeApiServer();
  server.registerResource({
    group: "clux.dev",
    version: "v1",
    kind: "Foo",
    plural: "foos",
    namespaced: true,
    subresources: ["status"],
  });
  return server;
}

function seedFoo(server: FakeApiServer, name: string, replicas = 1): void {
  server.seed({
    apiVersion: "clux.dev/v1",
    kind: "Foo",
    metadata: { name, namespace: "default" },
    spec: { name, info: "x", replicas },
  });
}

function seedConfigMap(server: FakeApiServer, name: string, extra: Partial<KubeObject> = {}) {
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "default", ...extra.metadata },
    data: { v: "0" },
  });
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value?: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve: resolve as (value?: T) => void };
}

const noJitter = { jitter: 0 };

test("controller: every object is reconciled once after the sync; a key queued twice runs once", async () => {
  await using server = new FakeApiServer();
  for (const name of ["a", "b", "c"]) seedConfigMap(server, name);
  await using h = new ControllerHarness(harnessServer(server));
  const runs: string[] = [];
  const gate = deferred();
  h.start(
    new Controller(h.client, configMaps, async (cm, ctx) => {
      runs.push(`${cm.metadata!.name}:${ctx.reason}`);
      if (cm.metadata!.name === "a" && runs.length === 1) await gate.promise;
    }, { ...testStore(), clock: h.clock }),
  );
  await h.settle();
  // Initial sync: a runs and blocks (concurrency 1); b and c wait.
  assert.deepEqual(runs.map((r) => r.split(":")[0]), ["a"]);
  // b changes three times while it waits: still one queue entry.
  for (let i = 1; i <= 3; i++) {
    await h.client.patch(configMaps, "b", { data: { v: String(i) } });
  }
  await h.settle();
  gate.resolve();
  await h.settle();
  assert.deepEqual(runs.map((r) => r.split(":")[0]), ["a", "b", "c"]);
  assert.equal(h.outcomes.filter((o) => o.key === "default/b").length, 1);
  assert.equal(h.outcomes.every((o) => o.result === "success"), true);
});

test("controller: never two reconciles of one key; a change during a run queues it again after", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  seedConfigMap(server, "b");
  await using h = new ControllerHarness(harnessServer(server));
  let running = 0;
  let maxSameKey = 0;
  const active = new Map<string, number>();
  const gates: { promise: Promise<void>; resolve: () => void }[] = [];
  const seen: string[] = [];
  h.start(
    new Controller(h.client, configMaps, async (cm) => {
      const key = cm.metadata!.name!;
      running++;
      active.set(key, (active.get(key) ?? 0) + 1);
      maxSameKey = Math.max(maxSameKey, active.get(key)!);
      seen.push(`${key}@${cm.data?.v}`);
      if (key === "a") {
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
      }
      active.set(key, active.get(key)! - 1);
      running--;
    }, { ...testStore(), clock: h.clock, concurrency: 4 }),
  );
  await h.settle();
  assert.equal(gates.length, 1);
  await h.client.patch(configMaps, "a", { data: { v: "1" } });
  await h.client.patch(configMaps, "a", { data: { v: "2" } });
  await h.settle();
  assert.equal(gates.length, 1, "no second run of a while the first runs");
  gates[0].resolve();
  await h.settle();
  assert.equal(gates.length, 2, "one more run of a, after the first");
  gates[1].resolve();
  await h.settle();
  assert.equal(maxSameKey, 1);
  assert.deepEqual(seen.filter((s) => s.startsWith("a")), ["a@0", "a@2"]);
});

test("controller: concurrency bounds the runs across keys", async () => {
  await using server = new FakeApiServer();
  for (let i = 0; i < 6; i++) seedConfigMap(server, `cm-${i}`);
  await using h = new ControllerHarness(harnessServer(server));
  let running = 0;
  let max = 0;
  const gates: { promise: Promise<void>; resolve: () => void }[] = [];
  const controller = new Controller(h.client, configMaps, async () => {
    running++;
    max = Math.max(max, running);
    const gate = deferred();
    gates.push(gate);
    await gate.promise;
    running--;
  }, { ...testStore(), clock: h.clock, concurrency: 2 });
  h.start(controller);
  await h.settle();
  assert.equal(running, 2);
  assert.equal(controller.stats().queueDepth, 4);
  assert.equal(controller.stats().inFlight, 2);
  for (;;) {
    const open = gates.splice(0);
    if (open.length === 0) break;
    for (const g of open) g.resolve();
    await h.settle();
  }
  assert.equal(max, 2);
  assert.equal(controller.stats().reconciles.success, 6);
});

test("controller: per-key backoff doubles, resets after a success", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  const attempts: number[] = [];
  let fail = 3;
  h.start(
    new Controller(h.client, configMaps, (_cm, ctx) => {
      at.push(h.clock.now());
      attempts.push(ctx.attempt);
      if (fail-- > 0) throw new Error("boom");
      return Action.done();
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 100, ...noJitter } }),
  );
  await h.settle();
  await h.advance(10_000);
  assert.deepEqual(at, [0, 100, 300, 700]);
  assert.deepEqual(attempts, [1, 2, 3, 4]);
  // After the success, the next failure starts again at 100 ms.
  fail = 1;
  const t0 = h.clock.now();
  await h.client.patch(configMaps, "a", { data: { v: "1" } });
  await h.settle();
  await h.advance(10_000);
  assert.deepEqual(at.slice(4).map((t) => t - t0), [0, 100]);
  assert.deepEqual(attempts.slice(4), [1, 2]);
  const results = h.outcomes.map((o) => o.result);
  assert.deepEqual(results, ["error", "error", "error", "success", "error", "success"]);
  assert.deepEqual(h.outcomes.filter((o) => o.result === "error").map((o) => o.requeueAfterMs), [
    100,
    200,
    400,
    100,
  ]);
});

test("controller: a sync throw, an async rejection and a non-Error value are all retried", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  let n = 0;
  const controller = new Controller(h.client, configMaps, (): Promise<void> | void => {
    n++;
    if (n === 1) throw new TypeError("a bug");
    if (n === 2) return Promise.reject(new Error("async"));
    if (n === 3) throw "a string";
  }, { ...testStore(), clock: h.clock, backoff: { initialMs: 10, ...noJitter } });
  h.start(controller);
  await h.advance(1_000);
  assert.equal(n, 4);
  assert.equal(controller.stats().reconciles.error, 3);
  assert.equal(controller.stats().retries, 3);
  assert.equal(controller.stats().reconciles.success, 1);
});

test("controller: an ApiError with Retry-After waits exactly that long", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  seedConfigMap(server, "settings");
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  h.start(
    new Controller(h.client, configMaps, async (cm, ctx) => {
      if (cm.metadata!.name !== "a") return;
      at.push(h.clock.now());
      await ctx.client.get(configMaps, "settings", { signal: ctx.signal });
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 100, ...noJitter } }),
  );
  server.inject({ on: "get", resource: "configmaps", fault: { status: 429, retryAfter: 7 } });
  await h.advance(20_000);
  assert.deepEqual(at, [0, 7_000]);
  const error = h.outcomes.find((o) => o.result === "error")!;
  assert.ok(error.error instanceof ApiError && error.error.status === 429);
  assert.equal(error.requeueAfterMs, 7_000);
});

test("controller: onError sees error, object and attempt, and picks the delay", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const seen: string[] = [];
  const at: number[] = [];
  h.start(
    new Controller(h.client, configMaps, () => {
      at.push(h.clock.now());
      if (at.length < 3) throw new Error(`e${at.length}`);
    }, {
      ...testStore(),
      clock: h.clock,
      onError: (error, object, info) => {
        seen.push(`${(error as Error).message}:${object.metadata!.name}:${info.attempt}`);
        return info.attempt * 1_000;
      },
    }),
  );
  await h.advance(10_000);
  assert.deepEqual(seen, ["e1:a:1", "e2:a:2"]);
  assert.deepEqual(at, [0, 1_000, 3_000]);
});

test("controller: requeueAfter with an error is honoured; a requeue is not dropped by a change", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  h.start(
    new Controller(h.client, configMaps, () => {
      at.push(h.clock.now());
      if (at.length === 1) return Action.retry(new Error("external API down"), 60_000);
      if (at.length === 2) return Action.requeue(30_000);
      return Action.done();
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 5, ...noJitter } }),
  );
  await h.advance(100_000);
  assert.deepEqual(at.slice(0, 2), [0, 60_000]);
  // The requeue at 90 000 ran although nothing changed.
  assert.deepEqual(at, [0, 60_000, 90_000]);
  assert.equal(h.outcomes[0].result, "error");
  assert.equal(h.outcomes[0].requeueAfterMs, 60_000);
  assert.equal(h.outcomes[1].result, "requeue");
  // A change in between does not cancel a pending requeue.
  const t0 = h.clock.now();
  const controller2 = new Controller(h.client, configMaps, () => {
    at.push(h.clock.now() - t0);
    return at.length === 4 ? Action.requeue(30_000) : Action.done();
  }, { ...testStore(), clock: h.clock, name: "second" });
  await h.stop();
  at.length = 3;
  h.start(controller2);
  await h.settle();
  await h.advance(10_000);
  await h.client.patch(configMaps, "a", { data: { v: "changed" } });
  await h.advance(40_000);
  assert.deepEqual(at.slice(3), [0, 10_000, 30_000]);
});

test("controller: a terminal error stops retries until the object changes (own writes do not count)", async () => {
  await using server = fooServer();
  seedFoo(server, "f");
  await using h = new ControllerHarness(harnessServer(server));
  const runs: string[] = [];
  h.start(
    new Controller(h.client, foos, async (foo: Foo, ctx: ReconcileContext) => {
      runs.push(`${foo.spec.replicas}:${ctx.reason}`);
      if ((foo.spec.replicas ?? 0) > 5) {
        // Writing a status condition changes the resourceVersion: that is not a user change.
        await ctx.client.patchStatus(foos, foo.metadata!.name!, { status: { count: runs.length } });
        throw new TerminalError("spec.replicas must be at most 5");
      }
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 10, ...noJitter } }),
  );
  await h.settle();
  await h.client.patch(foos, "f", { spec: { replicas: 9 } });
  await h.advance(3_600_000);
  assert.deepEqual(runs, ["1:initial sync", "9:changed"]);
  assert.equal(h.outcomes.at(-1)!.result, "terminal");
  await h.client.patch(foos, "f", { spec: { replicas: 2 } });
  await h.advance(1_000);
  assert.deepEqual(runs.slice(2), ["2:changed"]);
  assert.equal(h.outcomes.at(-1)!.result, "success");
});

test("controller: read your own writes — the next run waits until the cache has its write", async () => {
  for (const timeout of [10_000, 0]) {
    await using server = fooServer();
    seedFoo(server, "f");
    // Watch events reach the cache 1 s after the write.
    await using h = new ControllerHarness(harnessServer(server), { watchLatencyMs: 1_000 });
    const counts: number[] = [];
    const controller = new Controller(h.client, foos, async (foo: Foo, ctx) => {
      const count = foo.status?.count ?? 0;
      counts.push(count);
      if (count >= 3 || counts.length >= 6) return;
      await ctx.client.patchStatus(foos, "f", { status: { count: count + 1 } });
      return Action.requeue(0);
    }, { ...testStore(), clock: h.clock, readYourWritesTimeoutMs: timeout });
    h.start(controller);
    await h.advance(20_000);
    if (timeout > 0) {
      // Each run saw the previous run's write.
      assert.deepEqual(counts.slice(0, 4), [0, 1, 2, 3]);
      assert.ok(controller.stats().readYourWritesWaits >= 3);
      assert.equal(controller.stats().readYourWritesTimeouts, 0);
    } else {
      // Without the wait the second run reads the stale cache: this is what the test guards.
      assert.deepEqual(counts.slice(0, 2), [0, 0]);
    }
  }
});

test("controller: shutdown lets runs finish within the grace period, then aborts ctx.signal", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "quick");
  seedConfigMap(server, "slow");
  await using h = new ControllerHarness(harnessServer(server));
  const aborted: string[] = [];
  const controller = new Controller(h.client, configMaps, async (cm, ctx) => {
    const ms = cm.metadata!.name === "quick" ? 1_000 : 3_600_000;
    try {
      await h.clock.sleep(ms, ctx.signal);
    } catch (e) {
      aborted.push(cm.metadata!.name!);
      throw e;
    }
  }, { ...testStore(), clock: h.clock, concurrency: 2, gracePeriodMs: 5_000 });
  const stop = new AbortController();
  const run = controller.run(stop.signal);
  const outcomes: string[] = [];
  controller.onOutcome((o) => outcomes.push(`${o.key}:${o.result}`));
  await h.settle();
  assert.equal(controller.stats().inFlight, 2);
  stop.abort();
  await h.clock.advance(1_000);
  assert.deepEqual(outcomes, ["default/quick:success"]);
  await h.clock.advance(3_999);
  assert.deepEqual(aborted, []);
  await h.clock.advance(1);
  await run;
  assert.deepEqual(aborted, ["slow"]);
  assert.deepEqual(outcomes, ["default/quick:success", "default/slow:aborted"]);
  assert.equal(server.openWatches, 0);
});

test("controller: abortInFlight aborts running reconciles only; the controller goes on", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  let runs = 0;
  const controller = new Controller(h.client, configMaps, async (_cm, ctx) => {
    runs++;
    if (runs === 1) await h.clock.sleep(60_000, ctx.signal);
  }, { ...testStore(), clock: h.clock, backoff: { initialMs: 100, ...noJitter } });
  h.start(controller);
  await h.settle();
  controller.abortInFlight("leadership lost");
  await h.settle();
  // Not an error of the reconcile: counted as aborted, and the key runs again at once.
  assert.equal(h.outcomes[0].result, "aborted");
  assert.equal(h.outcomes[0].error, "leadership lost");
  assert.equal(controller.stats().reconciles.error, 0);
  assert.equal(controller.stats().retries, 0);
  assert.equal(runs, 2);
});

test("controller: a deleted object is gone, not an error loop", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const controller = new Controller(h.client, configMaps, () => {
    throw new Error("always fails");
  }, { ...testStore(), clock: h.clock, backoff: { initialMs: 1_000, ...noJitter } });
  h.start(controller);
  await h.settle();
  await h.client.delete(configMaps, "a");
  await h.advance(3_600_000);
  const results = h.outcomes.map((o) => o.result);
  assert.deepEqual(results, ["error", "gone"]);
  assert.equal(controller.stats().scheduled, 0);
});

test("controller: owns() maps controller owner references; foreign owners are ignored", async () => {
  await using server = fooServer();
  seedFoo(server, "f");
  await using h = new ControllerHarness(harnessServer(server));
  const reasons: string[] = [];
  h.start(
    new Controller(h.client, foos, (_foo, ctx) => {
      reasons.push(ctx.reason);
    }, { ...testStore(), clock: h.clock }).owns(Api.v1ConfigMap(), testStore()),
  );
  await h.settle();
  const uid = server.objects("foos")[0].metadata!.uid!;
  const owner = (kind: string, controller = true) => ({
    apiVersion: "clux.dev/v1",
    kind,
    name: "f",
    uid,
    controller,
  });
  await h.client.create(configMaps, {
    metadata: { name: "owned", ownerReferences: [owner("Foo")] },
  });
  await h.client.create(configMaps, {
    metadata: { name: "foreign", ownerReferences: [owner("Bar")] },
  });
  await h.client.create(configMaps, {
    metadata: { name: "not-controller", ownerReferences: [owner("Foo", false)] },
  });
  await h.settle();
  assert.deepEqual(reasons, ["initial sync", "owned ConfigMap default/owned changed"]);
});

test("controller: watches() maps related objects through a shared cache index", async () => {
  await using server = fooServer();
  seedFoo(server, "f");
  seedFoo(server, "g");
  await using h = new ControllerHarness(harnessServer(server));
  const reasons: string[] = [];
  // Foos name a ConfigMap in spec.info; the index answers which Foos name a given one.
  await using foosCache = sharedCache(h.client, foos, { ...testStore(), clock: h.clock });
  foosCache.index("info", (foo) => [(foo as Foo).spec.info]);
  h.start(
    new Controller(h.client, foos, (foo, ctx) => {
      reasons.push(`${foo.metadata!.name}:${ctx.reason}`);
    }, { ...testStore(), clock: h.clock }).watches(
      Api.v1ConfigMap(),
      (cm) => foosCache.byIndex("info", cm.metadata!.name!).map((f) => foos.keyOf(f)),
      testStore(),
    ),
  );
  await h.settle();
  reasons.length = 0;
  seedConfigMap(server, "x");
  await h.settle();
  assert.deepEqual(reasons.sort(), [
    "f:ConfigMap default/x changed",
    "g:ConfigMap default/x changed",
  ]);
});

test("controller: one watch per api and selectors, shared by controllers and sharedCache()", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const seen: string[] = [];
  h.start(
    new Controller(h.client, configMaps, () => void seen.push("one"), {
      ...testStore(),
      clock: h.clock,
    }),
  );
  h.start(
    new Controller(h.client, configMaps, () => void seen.push("two"), {
      ...testStore(),
      clock: h.clock,
      name: "two",
    }),
  );
  await using cache = sharedCache(h.client, configMaps, { ...testStore(), clock: h.clock });
  await cache.ready;
  await h.settle();
  assert.equal(h.watchRequests("configmaps"), 1);
  assert.deepEqual(seen.sort(), ["one", "two"]);
  // Another selector is another collection: a second watch.
  await using other = sharedCache(h.client, configMaps, { labelSelector: "app=x", clock: h.clock });
  await other.ready;
  assert.equal(h.watchRequests("configmaps"), 2);
});

test("controller: a forbidden watch is reported once, naming the resource and verbs", async () => {
  await using server = fooServer();
  await using h = new ControllerHarness(harnessServer(server));
  server.inject({
    on: ["list", "watch"],
    resource: "foos",
    times: Infinity,
    fault: { status: 403 },
  });
  const controller = new Controller(h.client, foos, () => {}, { ...testStore(), clock: h.clock });
  const run = h.start(controller);
  await h.advance(600_000);
  const error = await run.then(() => undefined, (e) => e);
  assert.ok(error instanceof Error);
  assert.match(error.message, /cannot list\/watch foos\.clux\.dev in namespace default/);
  assert.match(error.message, /verbs: \["get", "list", "watch"\]/);
  // Not an endless loop: the failure is permanent.
  assert.ok(h.requests.filter((r) => r.url.pathname.endsWith("/foos")).length <= 2);
});

test("controller: predicates skip status-only changes", async () => {
  await using server = fooServer();
  seedFoo(server, "f");
  await using h = new ControllerHarness(harnessServer(server));
  const runs: number[] = [];
  h.start(
    new Controller(h.client, foos, (foo: Foo) => {
      runs.push(foo.metadata!.generation ?? 0);
    }, { ...testStore(), clock: h.clock, predicates: [predicates.generationChanged] }),
  );
  await h.settle();
  await h.client.patchStatus(foos, "f", { status: { count: 1 } });
  await h.client.patch(foos, "f", { metadata: { labels: { a: "b" } } });
  await h.settle();
  assert.equal(runs.length, 1);
  await h.client.patch(foos, "f", { spec: { replicas: 3 } });
  await h.settle();
  assert.equal(runs.length, 2);
});

test("controller: reconcileAllOn reconciles every key per trigger, terminal ones included", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  seedConfigMap(server, "b");
  await using h = new ControllerHarness(harnessServer(server));
  const reasons: string[] = [];
  let release!: (v: string) => void;
  async function* reloads() {
    yield await new Promise<string>((r) => release = r);
    await new Promise(() => {}); // never again
  }
  h.start(
    new Controller(h.client, configMaps, (cm, ctx) => {
      reasons.push(`${cm.metadata!.name}:${ctx.reason}`);
      if (cm.metadata!.name === "b" && ctx.reason === "initial sync") {
        throw new TerminalError("bad");
      }
    }, { ...testStore(), clock: h.clock }).reconcileAllOn(reloads()),
  );
  await h.settle();
  release("config reloaded");
  await h.settle();
  assert.deepEqual(reasons, [
    "a:initial sync",
    "b:initial sync",
    "a:trigger: config reloaded",
    "b:trigger: config reloaded",
  ]);
});

test("controller: an optional global rate limit spaces the starts", async () => {
  await using server = new FakeApiServer();
  for (const name of ["a", "b", "c"]) seedConfigMap(server, name);
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  h.start(
    new Controller(h.client, configMaps, () => void at.push(h.clock.now()), {
      ...testStore(),
      clock: h.clock,
      concurrency: 3,
      rateLimit: { qps: 2, burst: 1 },
    }),
  );
  await h.advance(5_000);
  assert.deepEqual(at, [0, 500, 1_000]);
});

test("controller: ctx.recorder writes events.k8s.io/v1 Events with series", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  h.start(
    new Controller(h.client, configMaps, async (_cm, ctx) => {
      await ctx.recorder.publish({ reason: "Seen", action: "Reconcile", note: "hello" });
      await ctx.recorder.publish({ reason: "Seen", action: "Reconcile", note: "hello" });
    }, { ...testStore(), clock: h.clock, name: "cm-controller" }),
  );
  await h.settle();
  const events = server.objects("events").filter((e) => e.apiVersion === "events.k8s.io/v1");
  assert.equal(events.length, 1);
  const e = events[0] as Record<string, unknown>;
  assert.equal(e.reportingController, "cm-controller");
  assert.deepEqual((e.series as { count: number }).count, 2);
  assert.equal((e.regarding as { name: string }).name, "a");
});

test("controller: the echo of a failed run's own status write does not skip its backoff", async () => {
  await using server = fooServer();
  seedFoo(server, "f");
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  h.start(
    new Controller(h.client, foos, async (foo: Foo, ctx) => {
      at.push(h.clock.now());
      if (at.length >= 4) return;
      await ctx.client.patchStatus(foos, "f", { status: { count: (foo.status?.count ?? 0) + 1 } });
      throw new Error("not yet");
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 100, jitter: 0 } }),
  );
  await h.advance(10_000);
  assert.deepEqual(at.slice(0, 4), [0, 100, 300, 700]);
});

test("controller: debounceMs batches a burst of changes into one run after the window", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const runs: string[] = [];
  h.start(
    new Controller(h.client, configMaps, (cm, ctx) => {
      runs.push(`${h.clock.now()}:${cm.data?.v}:${ctx.reasons.join("+")}`);
    }, { ...testStore(), clock: h.clock, debounceMs: 500 }),
  );
  await h.settle();
  for (let i = 1; i <= 3; i++) {
    await h.client.patch(configMaps, "a", { data: { v: String(i) } });
    await h.advance(100);
  }
  await h.advance(1_000);
  assert.deepEqual(runs, ["0:0:initial sync", "500:3:changed"]);
});

test("controller: a failing reconcile is logged with its key and attempt (a bug with its error object)", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["kube", "controller"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  try {
    await using server = new FakeApiServer();
    seedConfigMap(server, "a");
    await using h = new ControllerHarness(harnessServer(server));
    let n = 0;
    h.start(
      new Controller(h.client, configMaps, () => {
        if (++n <= 2) throw new TypeError(`bug number ${n}`);
      }, { ...testStore(), clock: h.clock, backoff: { initialMs: 10, jitter: 0 } }),
    );
    await h.advance(1_000);
    const failures = records.filter((r) =>
      r.properties.attempt !== undefined && r.level === "error"
    );
    assert.deepEqual(failures.map((r) => [r.properties.key, r.properties.attempt]), [
      ["default/a", 1],
      ["default/a", 2],
    ]);
    assert.equal(failures[0].properties.delayMs, 10);
    assert.ok(failures[0].properties.error instanceof TypeError, "a bug is logged with its stack");
    assert.equal(n, 3);
  } finally {
    await reset();
  }
});

test("controller: ctx.client is interchangeable with the client (shared caches, instanceof)", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  seedConfigMap(server, "b");
  await using h = new ControllerHarness(harnessServer(server));
  const sizes: number[] = [];
  h.start(
    new Controller(h.client, configMaps, async (_cm, ctx) => {
      assert.ok(ctx.client instanceof Client);
      // The controller's own cache, not a new watch per reconcile.
      await using cache = sharedCache(ctx.client, configMaps, { ...testStore(), clock: h.clock });
      await cache.ready;
      sizes.push(cache.read().size);
    }, { ...testStore(), clock: h.clock }),
  );
  await h.settle();
  assert.deepEqual(sizes, [2, 2]);
  assert.equal(h.watchRequests("configmaps"), 1);
});

test("controller: a success after a failure cancels the retry, never a pending requeue", async () => {
  await using server = new FakeApiServer();
  seedConfigMap(server, "a");
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  h.start(
    new Controller(h.client, configMaps, () => {
      at.push(h.clock.now());
      if (at.length === 1) return Action.requeue(60_000);
      if (at.length === 2) throw new Error("transient");
      return Action.done();
    }, { ...testStore(), clock: h.clock, backoff: { initialMs: 250, jitter: 0 } }),
  );
  await h.settle();
  await h.advance(1_000);
  await h.client.patch(configMaps, "a", { data: { v: "1" } }); // run 2 fails: retry at +250
  await h.advance(100);
  await h.client.patch(configMaps, "a", { data: { v: "2" } }); // run 3 succeeds
  await h.advance(100_000);
  assert.deepEqual(at, [0, 1_000, 1_100, 60_000]);
});

test("controller: a write that a selective cache never sees does not stall the next run", async () => {
  await using server = new FakeApiServer();
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "a", namespace: "default", labels: { app: "x" } },
  });
  await using h = new ControllerHarness(harnessServer(server));
  const at: number[] = [];
  const controller = new Controller(h.client, configMaps, async (_cm, ctx) => {
    at.push(h.clock.now());
    if (at.length > 1) return;
    // Outside the controller's label selector: its cache never gets this object.
    await ctx.client.create(configMaps, { metadata: { name: `other-${at.length}` } });
    return Action.requeue(0);
  }, { ...testStore(), clock: h.clock, labelSelector: "app=x" });
  h.start(controller);
  await h.advance(30_000);
  assert.deepEqual(at, [0, 0]);
  assert.equal(controller.stats().readYourWritesTimeouts, 0);
});
