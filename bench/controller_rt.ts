/**
 * The controller runtime side by side with controller-runtime v0.25.3 on the real control plane:
 * `deno task bench --only controller-rt [--n 10000] [--edits 100] [--churn-rate 0]
 * [--churn-seconds 60] [--concurrency 4] [--runs 1] [--scenario wave|leader] [--kube-v8-flags F]`
 * (also `deno run -A bench/controller_rt.ts …`). Prints a table and splices it into
 * bench/RESULTS.md (section 8 for the wave, 8c for the leader change) unless `--no-write`.
 *
 * The controller (the same on both sides): Widgets (bench.denokube.dev/v1, a CRD with a status
 * subresource) as primaries with a generation-changed predicate; each reconcile reads the Widget
 * from the cache, applies one owned ConfigMap with server-side apply and merge-patches the
 * Widget's status; both own ConfigMaps; `concurrency` workers (MaxConcurrentReconciles); no
 * client-side rate limit on either side. Each run gets its own namespace seeded with `n` Widgets
 * (and emptied again before the next run is seeded), so every run starts from the same state.
 *
 * `--scenario wave` (default): from the moment a contender's caches have synced, the driver edits
 * `edits` random Widgets (one every 10 ms, `spec.editedAt` = the time of the edit) while the
 * initial wave runs; after the wave, `--churn-rate` edits per second for `--churn-seconds`,
 * each of another Widget. The contender prints one `EDIT <name> <editedAt> <time>` line the first
 * time a reconcile ends that saw an edit; the driver matches those lines to the edits it made
 * (so both sides are counted by the same code) and stops the contender when the wave is done and
 * every edit was seen. Measured: start (process start) to every Widget reconciled once, edit
 * latency p50/p99 during the wave and during the churn, peak RSS (VmHWM), heap at the end, and
 * the kube-apiserver's CPU during the run (from /proc).
 *
 * `--scenario leader`: two replicas of the same contender with leader election on a Lease and
 * warm standbys (kube: `Manager` with `leaderElection` and `manager.cache`; controller-runtime:
 * `LeaderElection`, `LeaderElectionReleaseOnCancel` and `EnableWarmup`). Replica A leads and
 * finishes its wave; B starts and syncs its caches as a standby; A is stopped (SIGTERM: graceful,
 * the lease released); measured: A's stop → B's acquire, B's acquire → its first reconcile, B's
 * acquire → every Widget reconciled once (by B), each side's "acquired" being the start of its
 * leader-only work (a leader-election runnable).
 *
 * The runs alternate (kube, controller-runtime, kube, …); tables show medians. Timeouts scale
 * with `n` (`--timeout-minutes` overrides); a run that makes no progress for `--idle-minutes`
 * (default 3) is stopped and the edits it never saw are listed with their Widgets' state.
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import { Api, Client, conditions, Config, type KubeObject, waitFor } from "../mod.ts";
import { apiServerPid, buildBenchProgram, processCpuMs } from "./cluster.ts";

const here = new URL(".", import.meta.url);
const args = Deno.args;
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const n = Number(flag("n", "10000"));
const scenario = flag("scenario", "wave");
const edits = scenario === "leader" ? 0 : Math.min(Number(flag("edits", "100")), n);
const churnRate = scenario === "leader" ? 0 : Number(flag("churn-rate", "0"));
const churnSeconds = Number(flag("churn-seconds", "60"));
const churnTotal = churnRate > 0
  ? Math.min(Math.round(churnRate * churnSeconds), Math.max(0, n - edits))
  : 0;
const concurrency = Number(flag("concurrency", "4"));
const runs = Number(flag("runs", "1"));
const seedWorkers = Number(flag("seed-workers", "64"));
/** Per contender process: 15 min plus 30 ms per Widget (a wave runs at ~100 Widgets/s here). */
const timeoutMs = Number(flag("timeout-minutes", "0")) * 60_000 ||
  15 * 60_000 + n * 30;
const idleMs = Number(flag("idle-minutes", "3")) * 60_000;
const write = !args.includes("--no-write");
/**
 * `--kube-v8-flags F` adds a third contender: the kube program under `deno run --v8-flags=F`
 * (e.g. `--max-semi-space-size=2`: a smaller young generation, the main term of a Deno process's
 * peak RSS beyond its live heap), measured in the same alternation as the other two.
 */
const kubeV8Flags = flag("kube-v8-flags", "");
const TUNED = `kube (--v8-flags=${kubeV8Flags})`;
type Label = "kube" | "controller-runtime" | typeof TUNED;
const LABELS: Label[] = kubeV8Flags
  ? ["kube", "controller-runtime", TUNED]
  : ["kube", "controller-runtime"];
const log = (message: string) =>
  console.error(
    `bench controller-rt ${new Date().toISOString().slice(11, 19)}: ${message}`,
  );
const widgetName = (i: number) => `w-${String(i).padStart(6, "0")}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.bench.denokube.dev
spec:
  group: bench.denokube.dev
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                value: { type: string }
                editedAt: { type: integer }
                phase: { type: string }
            status:
              type: object
              properties:
                observedGeneration: { type: integer }
                value: { type: string }
`;

const crds = Api.dynamic({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});

/** Builds bench/controllerruntime into the cache (once per version of its sources). */
async function buildControllerRuntime(): Promise<string> {
  const started = performance.now();
  const bin = await buildBenchProgram("controllerruntime");
  if (typeof bin !== "string") throw new Error(`bench/controllerruntime: ${bin.missing}`);
  const seconds = Math.round((performance.now() - started) / 1000);
  if (seconds > 1) log(`built controller-runtime program in ${seconds} s`);
  return bin;
}

const widgetsIn = (ns: string) =>
  Api.customResource("widgets").group("bench.denokube.dev").version("v1")
    .within(ns) as unknown as Api<KubeObject>;

/** One wave run's figures. */
interface RunResult {
  waveMs: number;
  syncMs: number;
  reconciles: number;
  edits: number;
  editP50Ms: number;
  editP99Ms: number;
  churnEdits: number;
  churnP50Ms: number;
  churnP99Ms: number;
  /** Churn edits reconciled per second, from the first churn edit to the last churn reconcile. */
  churnRate: number;
  /** Edits the contender never reported (0 in a complete run). */
  missing: number;
  peakRssKiB: number;
  heapBytes: number;
  apiServerCpuMs: number;
  load: string;
}

/** One leader-change run's figures (wall ms differences). */
interface LeaderResult {
  stopToAcquireMs: number;
  acquireToFirstMs: number;
  acquireToAllMs: number;
  /** A's SIGTERM → A's process reports it stopped (lease released). */
  oldLeaderStopMs: number;
  standbyPeakRssKiB: number;
  load: string;
}

/** A contender process and the lines it printed (see controller_rt_kube.ts for the protocol). */
class Contender {
  readonly child: Deno.ChildProcess;
  /** The last 4000 characters the process wrote to stderr (bounded at any scale). */
  stderrTail = "";
  readonly marks = new Map<string, number[]>();
  readonly edits = new Map<string, number>();
  result: Record<string, number> | undefined;
  lastActivity = Date.now();
  readonly done: Promise<void>;
  #waiters: { word: string; resolve: () => void }[] = [];
  onLine?: (word: string, rest: string[]) => void;

  constructor(readonly label: string, command: string, commandArgs: string[]) {
    const child = this.child = new Deno.Command(command, {
      args: commandArgs,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    (async () => {
      for await (
        const chunk of child.stderr.pipeThrough(new TextDecoderStream())
      ) {
        this.stderrTail = (this.stderrTail + chunk).slice(-4000);
      }
    })().catch(() => {});
    this.done = this.#read();
  }

  async #read(): Promise<void> {
    let buffer = "";
    for await (
      const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.#line(line);
      }
    }
  }

  #line(line: string): void {
    const space = line.indexOf(" ");
    const word = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? [] : line.slice(space + 1).split(" ");
    if (word === "RESULT") {
      this.result = JSON.parse(line.slice(space + 1));
    } else if (word === "EDIT") {
      this.lastActivity = Date.now();
      this.edits.set(`${rest[0]} ${rest[1]}`, Number(rest[2]));
    } else if (word === "PROGRESS") {
      const key = `${rest[0]} ${rest[1]}`;
      if (this.marks.get("PROGRESS")?.slice(0, 2).join(" ") !== key) {
        this.lastActivity = Date.now();
      }
      this.marks.set("PROGRESS", rest.map(Number));
      log(
        `${this.label}: ${rest[0]}/${n} Widgets reconciled, ${rest[1]} reconciles, ${
          rest[2]
        } failed`,
      );
    } else if (/^[A-Z]+$/.test(word)) {
      this.lastActivity = Date.now();
      this.marks.set(word, rest.map(Number));
    } else {
      return;
    }
    this.onLine?.(word, rest);
    this.#waiters = this.#waiters.filter((w) => {
      if (w.word !== word) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once the process printed `word` (at once if it did already). */
  until(word: string): Promise<void> {
    if (this.marks.has(word) || (word === "RESULT" && this.result)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push({ word, resolve }));
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  async stop(graceMs = 60_000): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // exited already
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // exited already
      }
    }, graceMs);
    const status = await this.child.status;
    clearTimeout(timer);
    await this.done.catch(() => {});
    return status;
  }
}

function contenderCommand(
  label: Label,
  bin: string,
  kubeconfig: string,
  ns: string,
  extra: string[] = [],
): [string, string[]] {
  const common = [
    "--namespace",
    ns,
    "--n",
    String(n),
    "--concurrency",
    String(concurrency),
  ];
  return label !== "controller-runtime"
    ? [Deno.execPath(), [
      "run",
      "-A",
      ...(label === TUNED ? [`--v8-flags=${kubeV8Flags}`] : []),
      new URL("controller_rt_kube.ts", here).pathname,
      "--kubeconfig",
      kubeconfig,
      ...common,
      "--timeout-ms",
      String(timeoutMs),
      ...extra,
    ]]
    : [bin, [
      "--config",
      kubeconfig,
      ...common,
      "--timeout",
      `${Math.round(timeoutMs / 1000)}s`,
      ...extra,
    ]];
}

/** Creates the namespace and `n` Widgets, `seedWorkers` requests at a time (429s are retried). */
async function seed(client: Client, ns: string): Promise<void> {
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const widgets = widgetsIn(ns);
  let next = 0;
  let created = 0;
  const started = performance.now();
  const progress = setInterval(
    () => log(`seeding ${ns}: ${created}/${n}`),
    10_000,
  );
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      await client.create(widgets, {
        metadata: { name: widgetName(i) },
        spec: { value: `v${i}` },
      } as never);
      created++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(seedWorkers, n) }, worker));
  } finally {
    clearInterval(progress);
  }
  const ms = performance.now() - started;
  log(
    `seeded ${n} Widgets in ${ns} in ${Math.round(ms)} ms (${Math.round(n / (ms / 1000))}/s)`,
  );
}

/**
 * Empties a run's namespace before the next run is seeded: deletes its Widgets and ConfigMaps
 * (the apiserver-only control plane has no namespace or garbage collector controller) and waits
 * until both lists are empty, so that the next run neither races the deletion nor shares the
 * apiserver and etcd with the last run's objects.
 */
async function empty(client: Client, ns: string): Promise<void> {
  const started = performance.now();
  const apis = [
    widgetsIn(ns),
    Api.v1ConfigMap().within(ns) as unknown as Api<KubeObject>,
  ];
  for (let attempt = 0;; attempt++) {
    let left = 0;
    for (const api of apis) {
      const page = await client.list(api, { limit: 1 });
      const remaining = (page.items.length ? 1 : 0) +
        (page.metadata?.remainingItemCount ?? 0);
      left += remaining;
      if (remaining > 0) {
        // One DeleteCollection can outlast the request timeout at 100k objects; it goes on
        // server side, and this loop asks again.
        await client.deleteCollection(api, { propagationPolicy: "Background" })
          .catch((e) =>
            log(
              `deleteCollection in ${ns}: ${e instanceof Error ? e.message : e}`,
            )
          );
      }
    }
    if (left === 0) break;
    if (attempt > 0) log(`emptying ${ns}: ${left} objects left`);
    await sleep(2_000);
  }
  await client.delete(Api.v1Namespace(), ns).catch(() => {});
  log(`emptied ${ns} in ${Math.round(performance.now() - started)} ms`);
}

const quantile = (xs: number[], q: number) => {
  const sorted = xs.toSorted((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(q * (sorted.length - 1))] : NaN;
};
/** The median (the mean of the two middle values of an even count). */
const median = (xs: number[]) => {
  const sorted = xs.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const loadAvg = async () =>
  (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

/** Widgets in random order: every edit of a run is of another Widget. */
function shuffled(): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

interface Edit {
  name: string;
  editedAt: number;
  churn: boolean;
}

/** Edits one Widget; the edit is expected only once the apiserver accepted it. */
async function edit(
  client: Client,
  widgets: Api<KubeObject>,
  i: number,
  churn: boolean,
  expected: Map<string, Edit>,
): Promise<void> {
  const name = widgetName(i);
  const editedAt = Date.now();
  try {
    await client.patch(widgets, name, {
      spec: { value: `${churn ? "churn" : "edited"}-${i}`, editedAt },
    }, { type: "merge" });
    expected.set(`${name} ${editedAt}`, { name, editedAt, churn });
  } catch (e) {
    log(
      `edit of ${name} failed (not counted): ${e instanceof Error ? e.message : e}`,
    );
  }
}

/** One wave run of a contender (see the module documentation). */
async function runWave(
  label: Label,
  bin: string,
  kubeconfig: string,
  client: Client,
  ns: string,
  apiPid: number,
): Promise<RunResult> {
  const widgets = widgetsIn(ns);
  const load = await loadAvg();
  const cpuBefore = await processCpuMs(apiPid);
  const order = shuffled();
  const expected = new Map<string, Edit>();
  const editing: Promise<void>[] = [];
  let churnStart = 0;
  const [command, commandArgs] = contenderCommand(label, bin, kubeconfig, ns);
  const c = new Contender(label, command, commandArgs);
  c.onLine = (word) => {
    if (word === "SYNCED") {
      editing.push((async () => {
        for (const i of order.slice(0, edits)) {
          await edit(client, widgets, i, false, expected);
          await sleep(10);
        }
      })());
    } else if (word === "WAVE") {
      log(`${label}: wave done in ${c.marks.get("WAVE")![0].toFixed(0)} ms`);
      if (churnTotal > 0) {
        editing.push((async () => {
          churnStart = Date.now();
          const pending: Promise<void>[] = [];
          for (
            const [k, i] of order.slice(edits, edits + churnTotal).entries()
          ) {
            const wait = churnStart + (k * 1000) / churnRate - Date.now();
            if (wait > 0) await sleep(wait);
            pending.push(edit(client, widgets, i, true, expected));
          }
          await Promise.all(pending);
          log(`${label}: churn of ${churnTotal} edits sent`);
        })());
      }
    }
  };
  const started = Date.now();
  let missing: Edit[] = [];
  for (;;) {
    const exited = await Promise.race([
      c.done.then(() => true),
      sleep(1_000).then(() => false),
    ]);
    if (exited) break;
    const sent = c.marks.has("WAVE") &&
      editing.length === (churnTotal > 0 ? 2 : 1);
    if (sent) await Promise.all(editing);
    missing = [...expected.entries()].filter(([id]) => !c.edits.has(id)).map((
      [, e],
    ) => e);
    if (sent && missing.length === 0) break;
    const now = Date.now();
    if (now - c.lastActivity > idleMs || now - started > timeoutMs) {
      log(
        `${label}: ${now - started > timeoutMs ? "timed out" : "no progress"}; wave ${
          c.marks.has("WAVE") ? "done" : "not done"
        }, ${missing.length} of ${expected.size} edits not seen`,
      );
      for (const e of missing.slice(0, 10)) {
        const w = await client.get(widgets, e.name).catch(() => undefined) as
          | {
            metadata?: { generation?: number };
            spec?: unknown;
            status?: unknown;
          }
          | undefined;
        log(
          `  not seen: ${e.name} editedAt ${e.editedAt} (${e.churn ? "churn" : "wave"}): ` +
            JSON.stringify({
              generation: w?.metadata?.generation,
              spec: w?.spec,
              status: w?.status,
            }),
        );
      }
      break;
    }
  }
  const status = await c.stop();
  await Promise.allSettled(editing);
  const cpuAfter = await processCpuMs(apiPid);
  if (!c.result) {
    throw new Error(
      `${label} exited ${status.code} without a RESULT:\n${c.stderrTail.slice(-3000)}`,
    );
  }
  const latencies = (churn: boolean) =>
    [...expected.entries()].filter(([id, e]) => e.churn === churn && c.edits.has(id))
      .map(([id, e]) => c.edits.get(id)! - e.editedAt);
  const wave = latencies(false);
  const churn = latencies(true);
  const churnEnds = [...expected.entries()].filter(([id, e]) => e.churn && c.edits.has(id))
    .map(([id]) => c.edits.get(id)!);
  const churnLast = churnEnds.length ? Math.max(...churnEnds) : 0;
  return {
    waveMs: c.result.waveMs,
    syncMs: c.marks.get("SYNCED")?.[0] ?? NaN,
    reconciles: c.result.reconciles,
    edits: wave.length,
    editP50Ms: quantile(wave, 0.5),
    editP99Ms: quantile(wave, 0.99),
    churnEdits: churn.length,
    churnP50Ms: quantile(churn, 0.5),
    churnP99Ms: quantile(churn, 0.99),
    churnRate: churn.length / ((churnLast - churnStart) / 1000),
    missing: missing.length,
    peakRssKiB: c.result.peakRssKiB,
    heapBytes: c.result.heapBytes,
    apiServerCpuMs: cpuAfter - cpuBefore,
    load,
  };
}

/** One leader-change run (see the module documentation). */
async function runLeader(
  label: Label,
  bin: string,
  kubeconfig: string,
  ns: string,
): Promise<LeaderResult> {
  const load = await loadAvg();
  const lease = "bench-leader";
  const [command, argsA] = contenderCommand(label, bin, kubeconfig, ns, [
    "--leader",
    lease,
  ]);
  const [, argsB] = contenderCommand(label, bin, kubeconfig, ns, [
    "--leader",
    lease,
  ]);
  const deadline = async (what: string, p: Promise<void>, c: Contender) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new Error(
                `${label}: ${what} timed out:\n${c.stderrTail.slice(-2000)}`,
              ),
            );
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  const a = new Contender(`${label} A`, command, argsA);
  let b: Contender | undefined;
  try {
    await deadline("A's wave", a.until("WAVE"), a);
    log(`${label}: A led and finished its wave; starting the standby B`);
    b = new Contender(`${label} B`, command, argsB);
    await deadline("B's sync", b.until("SYNCED"), b);
    // Let the standby settle (controller-runtime's warmup fills its queue after the sync).
    await sleep(2_000);
    if (b.marks.has("ACQUIRED")) {
      throw new Error(`${label}: B acquired while A still led`);
    }
    const stopAt = performance.timeOrigin + performance.now();
    const stoppingA = a.stop();
    await deadline(
      "B's takeover",
      Promise.all([b.until("ACQUIRED"), b.until("WAVE")]).then(
        () => {},
      ),
      b,
    );
    await stoppingA;
    const acquired = b.marks.get("ACQUIRED")![0];
    const result: LeaderResult = {
      stopToAcquireMs: acquired - stopAt,
      acquireToFirstMs: b.marks.get("FIRST")![0] - acquired,
      acquireToAllMs: b.marks.get("WAVE")![1] - acquired,
      oldLeaderStopMs: (a.marks.get("STOPPED")?.[0] ?? NaN) - stopAt,
      standbyPeakRssKiB: NaN,
      load,
    };
    await b.stop();
    result.standbyPeakRssKiB = b.result?.peakRssKiB ?? NaN;
    return result;
  } finally {
    await a.stop();
    await b?.stop();
  }
}

function splice(old: string, heading: string, section: string): string {
  const at = old.indexOf(heading);
  const next = at < 0 ? -1 : old.indexOf("\n## ", at + 1);
  return at < 0
    ? `${old.trimEnd()}\n\n${section}`
    : `${old.slice(0, at)}${section}${next < 0 ? "" : old.slice(next + 1)}`;
}

async function writeSection(heading: string, lines: string[]): Promise<void> {
  console.log(lines.join("\n"));
  if (!write) return;
  const path = new URL("RESULTS.md", here);
  const old = await Deno.readTextFile(path).catch(() => "");
  await Deno.writeTextFile(path, splice(old, heading, lines.join("\n")));
  await new Deno.Command(Deno.execPath(), {
    args: [
      "fmt",
      "--quiet",
      "--config",
      new URL("../deno.json", here).pathname,
      path.pathname,
    ],
  }).output();
  log(`wrote "${heading}" in ${path.pathname}`);
}

/**
 * The RESULTS.md sections, so that the runs the lead makes do not overwrite each other: the wave
 * (8), the wave with steady churn after it (8b), the leader change (8c), the wave at 100,000
 * Widgets or more (8d). A run replaces its own section.
 */
const WAVE_HEADING = "## 8. The controller runtime side by side";
const CHURN_HEADING = "## 8b. Steady churn after the wave";
const LEADER_HEADING = "## 8c. Leader change with warm standbys";
const LARGE_HEADING = "## 8d. The initial wave at";
const waveHeading = churnTotal > 0 ? CHURN_HEADING : n >= 100_000 ? LARGE_HEADING : WAVE_HEADING;
const waveTitle = waveHeading === CHURN_HEADING
  ? `${CHURN_HEADING} (${n.toLocaleString("en")} Widgets)`
  : waveHeading === LARGE_HEADING
  ? `${LARGE_HEADING} ${n.toLocaleString("en")} Widgets, side by side with controller-runtime`
  : `${WAVE_HEADING} with controller-runtime on the real control plane`;

function waveSection(results: Record<string, RunResult[]>): string[] {
  const labels = LABELS;
  const m = (label: string, f: (r: RunResult) => number) => median(results[label].map(f));
  const row = (label: string) => [
    label,
    `${(m(label, (r) => r.waveMs) / 1000).toFixed(1)} s`,
    `${Math.round(m(label, (r) => n / ((r.waveMs - r.syncMs) / 1000)))}/s`,
    `${m(label, (r) => r.editP50Ms).toFixed(0)} / ${m(label, (r) => r.editP99Ms).toFixed(0)} ms`,
    `${(m(label, (r) => r.peakRssKiB) / 1024).toFixed(0)} MiB`,
    `${(m(label, (r) => r.heapBytes) / 1048576).toFixed(0)} MiB`,
    `${(m(label, (r) => r.apiServerCpuMs) / 1000).toFixed(1)} s`,
    String(m(label, (r) => r.reconciles)),
    results[label].map((r) => r.load).join("; "),
  ];
  const header = [
    "controller",
    "start → all reconciled",
    "Widgets/s (wave, after sync)",
    `edit → reconciled p50 / p99 (${edits} edits)`,
    "peak RSS",
    "heap",
    "apiserver CPU",
    "reconciles",
    "load avg (1/5/15)",
  ];
  const missing = labels.flatMap((label) =>
    results[label].filter((r) => r.missing > 0).map((r) => `${label}: ${r.missing}`)
  );
  return [
    waveTitle,
    "",
    `\`bench/run.ts --only controller-rt\` (bench/controller_rt.ts): ${n.toLocaleString("en")} ` +
    `Widgets (a CRD with status), concurrency ${concurrency}, controller-runtime v0.25.3 ` +
    `(default priority queue, Widgets read from its cache), kube-apiserver + etcd from testenv ` +
    `on loopback; median of ${runs} run(s) each, alternated. "start" is the process start (Deno ` +
    "or Go runtime start included); Widgets/s counts the first wave after the caches synced; " +
    "each Widget is reconciled twice on both sides (the owned ConfigMap's creation queues its " +
    "owner again). Edits are matched by the driver to the contender's first reconcile that saw " +
    "them. Load average in the last column (the benchmark's own plus any other work on the " +
    "machine)." +
    (kubeV8Flags
      ? ` "${TUNED}" is the same kube program with that V8 flag (Go's GC runs with its defaults).`
      : ""),
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...labels.map((label) => `| ${row(label).join(" | ")} |`),
    "",
    ...(missing.length
      ? [`Edits never seen (run stopped as idle): ${missing.join(", ")}.`, ""]
      : []),
    ...(churnTotal > 0
      ? [
        `Steady churn after the wave: ${churnRate} edits/s for ${churnSeconds} s ` +
        `(${churnTotal} edits, each of another Widget): reconciled edits per second (from the ` +
        "first churn edit to the last churn reconcile) and the latency from edit to reconcile.",
        "",
        "| controller | offered | reconciled | edit → reconciled p50 / p99 |",
        "| --- | --- | --- | --- |",
        ...labels.map((label) =>
          `| ${label} | ${churnRate}/s | ${m(label, (r) => r.churnRate).toFixed(1)}/s | ${
            m(label, (r) => r.churnP50Ms).toFixed(0)
          } / ${m(label, (r) => r.churnP99Ms).toFixed(0)} ms |`
        ),
        "",
      ]
      : []),
  ];
}

function leaderSection(results: Record<string, LeaderResult[]>): string[] {
  const labels = LABELS;
  const m = (label: string, f: (r: LeaderResult) => number) => median(results[label].map(f));
  const ms = (x: number) => `${Math.round(x)} ms`;
  return [
    LEADER_HEADING + " (" + n.toLocaleString("en") + " Widgets)",
    "",
    "`bench/run.ts --only controller-rt --scenario leader` (bench/controller_rt.ts): two " +
    "replicas of the same contender with leader election on a Lease (lease 15 s, renew 10 s, " +
    "retry 2 s on both sides: their defaults) and warm standbys (kube: `Manager` with " +
    "`leaderElection` and `manager.cache` for Widgets and ConfigMaps; controller-runtime " +
    "v0.25.3: `LeaderElectionReleaseOnCancel` and `EnableWarmup`). A leads and finishes its " +
    "wave, B starts and syncs as a standby, A gets SIGTERM (graceful stop, lease released). " +
    "kube's standby watches the Lease while it campaigns and tries at once when it is released " +
    "(`watchRelease`, the default); client-go's elector under controller-runtime polls every " +
    "retry period × (1 + 1.2 × random). " +
    '"acquired" is when the replica\'s leader-only work starts (a leader-election runnable on ' +
    `both sides). Median of ${runs} run(s) each, alternated.`,
    "",
    "| controller | A's SIGTERM → B acquired | B acquired → first reconcile | B acquired → all reconciled once | A's SIGTERM → A stopped | standby peak RSS | load avg (1/5/15) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...labels.map((label) =>
      `| ${label} | ${ms(m(label, (r) => r.stopToAcquireMs))} | ${
        ms(m(label, (r) => r.acquireToFirstMs))
      } | ${ms(m(label, (r) => r.acquireToAllMs))} | ${ms(m(label, (r) => r.oldLeaderStopMs))} | ${
        (m(label, (r) => r.standbyPeakRssKiB) / 1024).toFixed(0)
      } MiB | ${results[label].map((r) => r.load).join("; ")} |`
    ),
    "",
  ];
}

/** Runs the comparison (see the module documentation). */
export async function main(): Promise<void> {
  const { startControlPlane } = await import("../testenv/control_plane.ts");
  const bin = await buildControllerRuntime();
  log(
    `scenario ${scenario}, n ${n}, ${runs} run(s) each, timeout ${
      Math.round(timeoutMs / 60_000)
    } min per run`,
  );
  log("starting the control plane");
  await using cp = await startControlPlane();
  const apiPid = await apiServerPid(cp.dir);
  if (apiPid === undefined) throw new Error("no kube-apiserver pid");
  await using client = new Client(
    await Config.fromKubeconfig({ path: cp.kubeconfigPath }),
  );
  await client.apply(crds, parseYaml(CRD) as never, { fieldManager: "bench" });
  await waitFor(
    client,
    crds,
    "widgets.bench.denokube.dev",
    conditions.crdEstablished,
    {
      timeout: 60_000,
    },
  );
  const waves: Record<string, RunResult[]> = Object.fromEntries(
    LABELS.map((l) => [l, []]),
  );
  const leaders: Record<string, LeaderResult[]> = Object.fromEntries(
    LABELS.map((l) => [l, []]),
  );
  for (let r = 0; r < runs; r++) {
    for (const label of LABELS) {
      const ns = `ctl-${label === "kube" ? "kube" : label === TUNED ? "tuned" : "crt"}-${r}`;
      await seed(client, ns);
      log(`run ${r + 1}/${runs}: ${label}`);
      try {
        if (scenario === "leader") {
          const result = await runLeader(label, bin, cp.kubeconfigPath, ns);
          log(`${label}: ${JSON.stringify(result)}`);
          leaders[label].push(result);
        } else {
          const result = await runWave(
            label,
            bin,
            cp.kubeconfigPath,
            client,
            ns,
            apiPid,
          );
          log(`${label}: ${JSON.stringify(result)}`);
          waves[label].push(result);
        }
      } finally {
        // The control plane is thrown away after the last run: no need to empty it (minutes at
        // 100,000 Widgets).
        if (r < runs - 1 || label !== LABELS.at(-1)) await empty(client, ns);
      }
    }
  }
  if (scenario === "leader") {
    await writeSection(LEADER_HEADING, leaderSection(leaders));
  } else await writeSection(waveHeading, waveSection(waves));
}

if (import.meta.main) await main();
