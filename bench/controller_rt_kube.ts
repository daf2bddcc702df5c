/**
 * Benchmark only: the kube side of `bench/run.ts --only controller-rt` (driven by
 * bench/controller_rt.ts). The same controller as bench/controllerruntime/main.go: Widgets
 * (bench.denokube.dev/v1) as primaries; each reconcile reads the Widget (the cached object it
 * is given), applies one owned ConfigMap (server-side apply) and patches the Widget's status; it
 * owns ConfigMaps. Prints `SYNCED <ms>` when its caches have synced, then one `RESULT <json>`
 * line when every Widget has been reconciled once and every expected edit (spec.editedAt, set
 * by the driver) has been seen, and exits.
 *
 * deno run -A bench/controller_rt_kube.ts --kubeconfig K --namespace NS --n N --edits E
 *
 * @module
 */

import {
  Api,
  Client,
  Config,
  Controller,
  ownerReference,
  predicates,
  sharedCache,
} from "../mod.ts";

const started = performance.now();
const args = Deno.args;
const flag = (name: string, fallback?: string) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
};
const ns = flag("namespace");
const n = Number(flag("n"));
const edits = Number(flag("edits", "0"));
const concurrency = Number(flag("concurrency", "4"));
const timeoutMs = Number(flag("timeout-ms", String(20 * 60_000)));

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
const seen = new Set<string>();
const editSeen = new Set<string>();
const latencies: number[] = [];
const churn: number[] = [];
let churnLast = 0;
let reconciles = 0;
let waveMs = 0;
const stop = new AbortController();

const controller = new Controller(client, widgets, async (w, ctx) => {
  const name = w.metadata!.name!;
  const value = w.spec.value;
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
  const now = Date.now();
  reconciles++;
  seen.add(ctx.key);
  if (seen.size === n && waveMs === 0) {
    waveMs = performance.now() - started;
    console.log(`WAVE ${waveMs.toFixed(1)}`);
  }
  const editedAt = w.spec.editedAt;
  if (editedAt !== undefined && editedAt > 0) {
    const id = `${ctx.key}@${editedAt}`;
    if (!editSeen.has(id)) {
      editSeen.add(id);
      if (w.spec.phase === "churn") {
        churn.push(now - editedAt);
        churnLast = now;
      } else {
        latencies.push(now - editedAt);
      }
    }
  }
  if (waveMs > 0 && latencies.length + churn.length >= edits) stop.abort();
}, {
  name: "widget-controller",
  concurrency,
  // Skip status-only updates (its own status patch), as controller-runtime's
  // GenerationChangedPredicate on the Go side.
  predicates: [predicates.generationChanged],
}).owns(configMaps);

const running = controller.run(stop.signal);
const widgetCache = sharedCache(client, widgets);
const ownedCache = sharedCache(client, configMaps);
await Promise.all([widgetCache.ready, ownedCache.ready]);
console.log(`SYNCED ${(performance.now() - started).toFixed(1)}`);
await Promise.all([widgetCache.release(), ownedCache.release()]);
const timer = setTimeout(() => stop.abort(), timeoutMs);
await running;
clearTimeout(timer);

const quantile = (xs: number[], q: number) => {
  const sorted = xs.toSorted((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(q * (sorted.length - 1))] : -1;
};
const status = await Deno.readTextFile("/proc/self/status");
const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? -1);
console.log(`RESULT ${
  JSON.stringify({
    waveMs,
    reconciles,
    edits: latencies.length,
    editP50Ms: quantile(latencies, 0.5),
    editP99Ms: quantile(latencies, 0.99),
    churnEdits: churn.length,
    churnP50Ms: quantile(churn, 0.5),
    churnP99Ms: quantile(churn, 0.99),
    churnLastMs: churnLast,
    peakRssKiB: hwm,
    heapBytes: Deno.memoryUsage().heapUsed,
  })
}`);
client.close();
Deno.exit(0);
