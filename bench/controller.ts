/**
 * The controller runtime benchmark, one run in this process (`bench/run.ts` starts it in a fresh
 * `deno run --v8-flags=--expose-gc` process per run and prints a `RESULT {json}` line):
 *
 * - `syncMs`: a plain Reflector's initial sync of N ConfigMaps from an in-memory FakeApiServer
 *   (the floor: a controller cannot start before its cache is synced).
 * - `allReconciledMs`: from `controller.run()` until each of the N keys was reconciled once by a
 *   no-op reconcile (concurrency 1), the sync included.
 * - `perReconcileUs`: the controller's own cost per reconcile (queue, per-key state, context,
 *   outcome), from the first to the last outcome of that run, divided by N.
 * - `queueUs`: the bare work queue (add N keys, a no-op worker), per key.
 * - `queuedBytesPerKey`: heap per key with N keys waiting in a paused work queue.
 * - `controllerBytesPerKey`: heap per key of a controller holding N objects whose keys all wait
 *   (its first reconcile blocks), minus the heap of a plain Reflector with the same objects.
 *
 * @module
 */

import { Api, Controller, Reflector, systemClock } from "../mod.ts";
import { FakeApiServer } from "../testing/mod.ts";
import { WorkQueue } from "../runtime/_controller/queue.ts";

const n = Number(Deno.args[0] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

function heap(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

const configMaps = Api.v1ConfigMap().within("bench");

function seed(server: FakeApiServer): void {
  for (let i = 0; i < n; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `cm-${i}`, namespace: "bench", labels: { app: "bench", i: String(i) } },
      data: { value: "x".repeat(200) },
    });
  }
}

// 1. The floor: a Reflector's initial sync.
let syncMs: number;
{
  await using server = new FakeApiServer({ historySize: 100 });
  seed(server);
  const client = server.client();
  const t0 = performance.now();
  const reflector = new Reflector(client, configMaps);
  await reflector.init();
  syncMs = performance.now() - t0;
  if (reflector.read().size !== n) throw new Error("sync incomplete");
}

// 2. A no-op controller over N objects.
let allReconciledMs = 0;
let perReconcileUs = 0;
{
  await using server = new FakeApiServer({ historySize: 100 });
  seed(server);
  const client = server.client();
  const seen = new Set<string>();
  let first = 0;
  let last = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => resolveAll = r);
  const controller = new Controller(client, configMaps, (cm) => {
    seen.add(cm.metadata!.name!);
  });
  controller.onOutcome(() => {
    const now = performance.now();
    if (first === 0) first = now;
    last = now;
    if (seen.size === n) resolveAll();
  });
  const stop = new AbortController();
  const t0 = performance.now();
  const running = controller.run(stop.signal);
  await all;
  allReconciledMs = performance.now() - t0;
  perReconcileUs = ((last - first) * 1000) / (n - 1);
  stop.abort();
  await running;
}

// 3. The bare queue.
let queueUs: number;
{
  let done = 0;
  let resolve!: () => void;
  const finished = new Promise<void>((r) => resolve = r);
  const queue = new WorkQueue({
    clock: systemClock,
    concurrency: 1,
    worker: () => {
      if (++done === n) resolve();
      return Promise.resolve();
    },
  });
  const keys = Array.from({ length: n }, (_, i) => `bench/cm-${i}`);
  const t0 = performance.now();
  for (const key of keys) queue.add(key, "added");
  await finished;
  queueUs = ((performance.now() - t0) * 1000) / n;
  queue.stop();
}

// 4. Memory of N queued keys (paused queue).
let queuedBytesPerKey: number;
{
  const keys = Array.from({ length: n }, (_, i) => `bench/cm-${i}`);
  const before = heap();
  const queue = new WorkQueue({
    clock: systemClock,
    concurrency: 1,
    paused: true,
    worker: () => Promise.resolve(),
  });
  for (const key of keys) queue.add(key, "added");
  const after = heap();
  queuedBytesPerKey = (after - before) / n;
  if (queue.depth !== n) throw new Error("not all queued");
  queue.stop();
}

// 5. Memory of a controller with N objects cached and N - 1 keys waiting, against a Reflector.
let controllerBytesPerKey: number;
{
  await using server = new FakeApiServer({ historySize: 100 });
  seed(server);
  const client = server.client();
  const base = heap();
  const reflector = new Reflector(client, configMaps);
  await reflector.init();
  const reflectorHeap = heap() - base;
  let release!: () => void;
  const blocked = new Promise<void>((r) => release = r);
  let started!: () => void;
  const running1 = new Promise<void>((r) => started = r);
  const controller = new Controller(client, configMaps, async () => {
    started();
    await blocked;
  });
  const stop = new AbortController();
  const before = heap();
  const running = controller.run(stop.signal);
  await running1;
  if (controller.stats().queueDepth !== n - 1) {
    throw new Error(`expected ${n - 1} queued, got ${controller.stats().queueDepth}`);
  }
  const controllerHeap = heap() - before;
  controllerBytesPerKey = (controllerHeap - reflectorHeap) / n;
  release();
  stop.abort();
  await running;
  if (reflector.read().size !== n) throw new Error("reflector lost objects");
}

console.log(
  "RESULT " + JSON.stringify({
    n,
    syncMs,
    allReconciledMs,
    perReconcileUs,
    queueUs,
    queuedBytesPerKey,
    controllerBytesPerKey,
  }),
);
