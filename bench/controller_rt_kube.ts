/**
 * Benchmark only: the kube side of `bench/run.ts --only controller-rt` (driven by
 * bench/controller_rt.ts). The same controller as bench/controllerruntime/main.go: Widgets
 * (bench.denokube.dev/v1) as primaries; each reconcile reads the Widget (the cached object it
 * is given), applies one owned ConfigMap (server-side apply) and patches the Widget's status; it
 * owns ConfigMaps. The protocol on stdout (the same on both sides; the driver decides when a run
 * is complete and does the edit accounting):
 *
 * - `SYNCED <ms since start>` once its caches have synced;
 * - `WAVE <ms since start> <wall ms>` when every Widget has been reconciled once (with
 *   `--leader`: once since this replica leads);
 * - `EDIT <name> <editedAt> <wall ms>` the first time a reconcile ends that saw a Widget with that
 *   `spec.editedAt` (set by the driver);
 * - `PROGRESS <Widgets seen> <reconciles> <failed reconciles>` every 10 s (the first failures'
 *   messages go to stderr);
 * - with `--leader <lease>`: a {@linkcode Manager} with leader election on that Lease and both
 *   caches kept warm on every replica (`manager.cache`); `ACQUIRED <wall ms>` when a leader-only
 *   task starts, `FIRST <wall ms>` when the first reconcile starts;
 * - on SIGTERM: `RESULT <json>` (reconciles, peak RSS, heap), then a graceful stop (the Manager
 *   releases the lease) and `STOPPED <wall ms>`.
 *
 * deno run -A bench/controller_rt_kube.ts --kubeconfig K --namespace NS --n N [--leader L]
 *
 * @module
 */

import {
  Api,
  Client,
  Config,
  Controller,
  Manager,
  ownerReference,
  predicates,
  sharedCache,
} from "../mod.ts";

const started = performance.now();
const wallMs = () => (performance.timeOrigin + performance.now()).toFixed(1);
const args = Deno.args;
const flag = (name: string, fallback?: string) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
};
const ns = flag("namespace");
const n = Number(flag("n"));
const concurrency = Number(flag("concurrency", "4"));
const timeoutMs = Number(flag("timeout-ms", String(20 * 60_000)));
const lease = flag("leader", "");

interface WidgetSpec {
  value: string;
  editedAt?: number;
  phase?: string;
}
const widgets = Api.customResource<
  WidgetSpec,
  { observedGeneration?: number; value?: string }
>(
  "widgets",
).group("bench.denokube.dev").version("v1").within(ns);
const configMaps = Api.v1ConfigMap().within(ns);

const client = new Client(
  await Config.fromKubeconfig({ path: flag("kubeconfig") }),
);
// Bounded by n keys and by the driver's edits.
const seen = new Set<string>();
const editSeen = new Set<string>();
let reconciles = 0;
let failures = 0;
let waveMs = 0;
let first = false;
const stop = new AbortController();

const controller = new Controller(client, widgets, async (w, ctx) => {
  if (!first) {
    first = true;
    console.log(`FIRST ${wallMs()}`);
  }
  const name = w.metadata!.name!;
  const value = w.spec.value;
  try {
    await ctx.client.apply(configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: `${name}-owned`,
        namespace: ns,
        labels: { role: "owned" },
        ownerReferences: [ownerReference(w)],
      },
      data: { value },
    }, { fieldManager: "bench-controller", force: true });
    await ctx.client.patchStatus(widgets, name, {
      status: { observedGeneration: w.metadata!.generation, value },
    }, { type: "merge" });
  } catch (e) {
    // Retried with the controller's backoff, as on the Go side.
    if (++failures <= 5) console.error(`reconcile failed: ${e instanceof Error ? e.message : e}`);
    throw e;
  }
  reconciles++;
  seen.add(ctx.key);
  if (seen.size === n && waveMs === 0) {
    waveMs = performance.now() - started;
    console.log(`WAVE ${waveMs.toFixed(1)} ${wallMs()}`);
  }
  const editedAt = w.spec.editedAt;
  if (editedAt !== undefined && editedAt > 0) {
    // Only the driver's edits set spec.editedAt; the driver matches these lines to its edits.
    const id = `${name} ${editedAt}`;
    if (!editSeen.has(id)) {
      editSeen.add(id);
      console.log(`EDIT ${id} ${wallMs()}`);
    }
  }
}, {
  name: "widget-controller",
  concurrency,
  // Skip status-only updates (its own status patch), as controller-runtime's
  // GenerationChangedPredicate on the Go side.
  predicates: [predicates.generationChanged],
}).owns(configMaps);

const progress = setInterval(
  () => console.log(`PROGRESS ${seen.size} ${reconciles} ${failures}`),
  10_000,
);
const timer = setTimeout(() => stop.abort(), timeoutMs);
const onTerm = () => stop.abort();
Deno.addSignalListener("SIGTERM", onTerm);
Deno.addSignalListener("SIGINT", onTerm);
stop.signal.addEventListener("abort", () => {
  const status = Deno.readTextFileSync("/proc/self/status");
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? -1);
  console.log(`RESULT ${
    JSON.stringify({
      waveMs,
      reconciles,
      failures,
      peakRssKiB: hwm,
      heapBytes: Deno.memoryUsage().heapUsed,
    })
  }`);
}, { once: true });

let running: Promise<void>;
let ready: Promise<unknown>;
if (lease) {
  const manager = new Manager(client, {
    leaderElection: { namespace: ns, name: lease },
  });
  // Warm on every replica: the controller joins these caches when this replica leads.
  const widgetCache = manager.cache(widgets);
  const ownedCache = manager.cache(configMaps);
  manager.add({
    name: "bench-acquired",
    run: async (signal) => {
      console.log(`ACQUIRED ${wallMs()}`);
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    },
  });
  manager.add(controller);
  ready = Promise.all([widgetCache.ready, ownedCache.ready]);
  running = manager.run(stop.signal);
} else {
  running = controller.run(stop.signal);
  const widgetCache = sharedCache(client, widgets);
  const ownedCache = sharedCache(client, configMaps);
  ready = Promise.all([widgetCache.ready, ownedCache.ready]).finally(() =>
    Promise.all([widgetCache.release(), ownedCache.release()])
  );
}
await Promise.race([ready, running]);
if (!stop.signal.aborted) {
  console.log(`SYNCED ${(performance.now() - started).toFixed(1)}`);
}
await running;
clearTimeout(timer);
clearInterval(progress);
console.log(`STOPPED ${wallMs()}`);
client.close();
Deno.exit(0);
