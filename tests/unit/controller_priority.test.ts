// Priority and reconcile timeouts of the controller runtime, on the virtual clock.

import assert from "node:assert/strict";
import { Api, Controller, Manager, Priority } from "../../mod.ts";
import { LOW_PRIORITY, WorkQueue } from "../../runtime/_controller/queue.ts";
import { ControllerHarness, FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

function seedConfigMaps(server: FakeApiServer, count: number): void {
  for (let i = 0; i < count; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `cm-${i}`, namespace: "default" },
      data: { v: "0" },
    });
  }
}

/** A queue whose worker records keys and blocks until released one at a time. */
function gatedQueue(clock: VirtualClock) {
  const ran: string[] = [];
  const gates: (() => void)[] = [];
  const queue = new WorkQueue({
    clock,
    concurrency: 1,
    paused: true,
    worker: (key, _reasons, info) => {
      ran.push(`${key}@${info.priority}`);
      return new Promise<void>((resolve) => gates.push(resolve));
    },
  });
  const step = async () => {
    gates.shift()?.();
    await clock.flush();
  };
  return { queue, ran, step };
}

test("queue: higher priority first, FIFO within a priority; re-adding raises, never lowers", async () => {
  const clock = new VirtualClock();
  const { queue, ran, step } = gatedQueue(clock);
  for (const key of ["a", "b", "c"]) queue.add(key, "initial sync", { priority: LOW_PRIORITY });
  queue.add("x", "changed");
  queue.add("c", "changed"); // raised: behind x, ahead of a and b
  queue.add("x", "initial sync", { priority: LOW_PRIORITY }); // not lowered
  queue.add("urgent", "asked", { priority: 10 });
  assert.equal(queue.priorityOf("c"), 0);
  assert.equal(queue.depth, 5);
  queue.resume();
  await clock.flush();
  for (let i = 0; i < 5; i++) await step();
  assert.deepEqual(ran, ["urgent@10", "x@0", "c@0", "a@-100", "b@-100"]);
  assert.equal(queue.depth, 0);
  queue.stop();
  await step();
});

test("queue: a timer fires at the priority it was set with; a running key re-added keeps the highest", async () => {
  const clock = new VirtualClock();
  const { queue, ran, step } = gatedQueue(clock);
  queue.resume();
  queue.add("a", "changed");
  await clock.flush();
  // a runs; meanwhile it is queued again twice (low, then normal): it runs again at normal.
  queue.add("a", "initial sync", { priority: LOW_PRIORITY });
  queue.add("a", "changed");
  queue.add("b", "initial sync", { priority: LOW_PRIORITY });
  queue.addAfter("c", "requeue", 100, "requeue", { priority: LOW_PRIORITY });
  await step();
  await step();
  await clock.advance(100);
  await step();
  await step();
  assert.deepEqual(ran, ["a@0", "a@0", "b@-100", "c@-100"]);
  queue.stop();
});

test("queue: a key raised 50 times while it waits runs once (its stale slots are skipped)", async () => {
  const clock = new VirtualClock();
  let runs = 0;
  const queue = new WorkQueue({
    clock,
    concurrency: 1,
    worker: () => {
      runs++;
      return Promise.resolve();
    },
    paused: true,
  });
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 1_000; i++) queue.add(`k${i}`, "r", { priority: round });
  }
  assert.equal(queue.depth, 1_000);
  queue.resume();
  await clock.flush();
  assert.equal(runs, 1_000);
  queue.stop();
});

test("controller: during a 10,000-key initial wave an edited object is reconciled within a few reconciles", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 10_000);
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  const gates: (() => void)[] = [];
  const controller = new Controller(h.client, configMaps, (cm, ctx) => {
    runs.push(`${cm.metadata!.name}:${ctx.reason}:${ctx.priority}`);
    return new Promise<void>((resolve) => gates.push(resolve));
  }, { clock: h.clock });
  h.start(controller);
  await h.settle();
  assert.equal(runs.length, 1);
  assert.equal(controller.stats().queueDepth, 9_999);
  for (let i = 0; i < 5; i++) {
    gates.shift()!();
    await h.settle();
  }
  assert.equal(runs.length, 6);
  assert.ok(runs.every((r) => r.endsWith(":initial sync:-100")), runs.join());
  // A real edit of an object far back in the wave.
  await h.client.patch(configMaps, "cm-9000", { data: { v: "edited" } });
  await h.settle();
  let position = -1;
  for (let i = 0; i < 5 && position < 0; i++) {
    gates.shift()!();
    await h.settle();
    position = runs.findIndex((r) => r.startsWith("cm-9000:"));
  }
  // The run in progress ends, then the edit is next: the 7th reconcile.
  assert.equal(position, 6, runs.slice(0, 10).join());
  assert.equal(runs[6], "cm-9000:changed:0");
  assert.equal(controller.stats().queueDepth, 10_000 - 7);
  await h.stop();
  for (const release of gates.splice(0)) release();
});

test("controller: a requeue keeps the priority its run waited at unless the action sets one", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  h.start(
    new Controller(h.client, configMaps, (cm, ctx) => {
      runs.push(`${cm.metadata!.name}:${ctx.reason}:${ctx.priority}`);
      if (ctx.reason !== "initial sync") return;
      return cm.metadata!.name === "cm-0"
        ? { requeueAfter: 1_000 }
        : { requeueAfter: 1_000, priority: 5 };
    }, { clock: h.clock }),
  );
  await h.settle();
  await h.advance(1_000);
  // (Which runs first is the queue's business, tested above: both timers fire at once here.)
  assert.deepEqual(runs.sort(), [
    "cm-0:initial sync:-100",
    "cm-0:requeue:-100",
    "cm-1:initial sync:-100",
    "cm-1:requeue:5",
  ]);
});

test("controller: reconcileTimeoutMs aborts ctx.signal and counts an error with backoff", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 1);
  await using h = new ControllerHarness(server);
  const seen: string[] = [];
  const controller = new Controller(h.client, configMaps, async (_cm, ctx) => {
    seen.push(`start@${h.clock.now()}:${ctx.reason}`);
    if (ctx.attempt === 1) {
      try {
        await h.clock.sleep(5_000, ctx.signal);
      } catch (e) {
        seen.push(`aborted@${h.clock.now()}:${(e as Error).name}`);
        throw e;
      }
    }
  }, {
    clock: h.clock,
    reconcileTimeoutMs: 1_000,
    backoff: { initialMs: 250, jitter: 0 },
  });
  h.start(controller);
  await h.settle();
  await h.advance(999);
  assert.equal(h.outcomes.length, 0);
  await h.advance(1);
  assert.deepEqual(seen, ["start@0:initial sync", "aborted@1000:TimeoutError"]);
  const [first] = h.outcomes;
  assert.equal(first.result, "error");
  assert.equal(first.timedOut, true);
  assert.equal(first.requeueAfterMs, 250);
  assert.equal(controller.stats().timeouts, 1);
  assert.equal(controller.stats().retries, 1);
  await h.advance(250);
  assert.deepEqual(seen.at(-1), "start@1250:retry after timeout");
  assert.equal(h.outcomes.at(-1)!.result, "success");
  assert.equal(h.outcomes.at(-1)!.attempt, 2);
});

test("controller: a reconcile that ignores its timed-out signal stays in flight and never runs twice", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 1);
  await using h = new ControllerHarness(server);
  let runs = 0;
  const controller = new Controller(h.client, configMaps, async () => {
    runs++;
    if (runs === 1) await h.clock.sleep(10_000); // ignores ctx.signal
  }, { clock: h.clock, reconcileTimeoutMs: 1_000, backoff: { initialMs: 250, jitter: 0 } });
  h.start(controller);
  await h.settle();
  await h.advance(1_000);
  assert.equal(controller.stats().timeouts, 1);
  assert.equal(controller.stats().inFlight, 1);
  await h.client.patch(configMaps, "cm-0", { data: { v: "1" } });
  await h.advance(5_000);
  assert.equal(runs, 1, "not run again while the ignored run goes on");
  await h.advance(4_000);
  assert.equal(h.outcomes[0].result, "error");
  assert.equal(h.outcomes[0].timedOut, true);
  // The change made while it ran queued it again; the retry's backoff applies too.
  await h.advance(250);
  assert.equal(runs, 2);
  assert.equal(h.outcomes.at(-1)!.result, "success");
});

test("controller: shutdown does not wait past the grace period for a reconcile that ignores its signal", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 1);
  const h = new ControllerHarness(server);
  let release!: () => void;
  const stuck = new Promise<void>((resolve) => release = resolve);
  const controller = new Controller(h.client, configMaps, () => stuck, {
    clock: h.clock,
    gracePeriodMs: 5_000,
  });
  const stop = new AbortController();
  let ended = false;
  const run = controller.run(stop.signal).finally(() => ended = true);
  await h.settle();
  assert.equal(controller.stats().inFlight, 1);
  stop.abort();
  await h.clock.advance(5_000);
  await h.settle();
  assert.equal(ended, false);
  await h.clock.advance(1_000);
  await run;
  assert.equal(ended, true);
  assert.equal(server.openWatches, 0);
  release();
  await h.settle();
});

test("manager: controller_runtime_reconcile_timeouts_total counts expired reconciles", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  await using h = new ControllerHarness(server);
  const manager = new Manager(h.client, { clock: h.clock });
  const controller = new Controller(h.client, configMaps, async (cm, ctx) => {
    if (cm.metadata!.name === "cm-1" && ctx.attempt === 1) {
      await h.clock.sleep(60_000, ctx.signal);
    }
  }, { clock: h.clock, reconcileTimeoutMs: 1_000, backoff: { initialMs: 250, jitter: 0 } });
  manager.add(controller);
  assert.match(
    manager.registry.expose(),
    /^controller_runtime_reconcile_timeouts_total\{controller="configmap-controller"\} 0$/m,
  );
  h.start(controller);
  await h.advance(2_000);
  assert.match(
    manager.registry.expose(),
    /^controller_runtime_reconcile_timeouts_total\{controller="configmap-controller"\} 1$/m,
  );
  assert.equal(Priority.low < Priority.normal, true);
});
