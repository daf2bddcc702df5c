/**
 * Runs the benchmarks and writes `bench/RESULTS.md`: `deno task bench`.
 *
 * Flags:
 * - `--smoke`: every benchmark once at tiny sizes (a CI check that the benchmarks work; the real
 *   control plane part only with `--with-cluster`). Writes nothing.
 * - `--runs N`: alternated runs per figure (default 5).
 * - `--no-cluster`: skip the real control plane part of a full run.
 * - `--out PATH`: where to write the results (default `bench/RESULTS.md`).
 * - `--only clientgo`: only section 3c (client-go side by side on the real control plane), spliced
 *   into the existing results file (its section and target rows replaced, the rest kept).
 * - `--only compact`: the compact store (`store: "compact"`) against the objects store, protobuf,
 *   at the sync sizes: time to ready, heap and ArrayBuffer bytes per pod, and the cost of reads
 *   (random `get`, a full iteration, a reconcile-like loop). Prints its table; writes nothing.
 *   `--sizes 10000,100000` picks the pod counts (default: the sync sizes); `--churn` adds the
 *   1M-event churn of section 5 on the compact store.
 * - `--only controller`: run only the controller runtime benchmark (`bench/controller.ts`) and
 *   replace its section (6) in the results file, keeping the rest as it is.
 * - `--only controller-rt`: the controller runtime side by side with controller-runtime on the
 *   real control plane (`bench/controller_rt.ts`: `--n`, `--edits`, `--churn-rate`,
 *   `--churn-seconds`, `--concurrency`, `--runs`, `--seed-workers`, `--timeout-minutes`), section
 *   8 of the results file; with `--scenario leader`, the leader change with warm standbys
 *   (section 8c).
 *
 * Every measured client runs in a fresh `deno run --v8-flags=--expose-gc` process per run
 * (`bench/measure.ts`), and the runs alternate (a, b, c, …, a, b, c, …) so that drift affects all
 * clients equally. The data comes from `bench/stream_server.ts`, another process.
 *
 * @module
 */

import { makePod } from "./fixture.ts";
import { webhookSection } from "./webhook.ts";
import type { Job } from "./measure.ts";

const here = new URL(".", import.meta.url);
const root = new URL("..", here);

const args = Deno.args;
const smoke = args.includes("--smoke");
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
const runs = Number(flag("--runs") ?? (smoke ? 1 : 5));
const withCluster = smoke ? args.includes("--with-cluster") : !args.includes("--no-cluster");
const outPath = flag("--out") ?? new URL("RESULTS.md", here).pathname;

const sizes = smoke
  ? {
    watch: 2_000,
    sync: [1_000],
    churn: 20_000,
    churnKeys: 1_000,
    sampleEvery: 5_000,
    pacedRate: 1_000,
    paced: 1_500,
    warmup: 500,
    cluster: 1_000,
    clusterPods: 500,
    controller: 1_000,
  }
  : {
    watch: 100_000,
    sync: [10_000, 100_000],
    churn: 1_000_000,
    churnKeys: 10_000,
    sampleEvery: 100_000,
    pacedRate: 1_000,
    paced: 6_000,
    warmup: 1_000,
    cluster: 10_000,
    clusterPods: 10_000,
    controller: 10_000,
  };

/** Kills a hung benchmark process (generous in smoke runs too: a loaded CI machine is slow). */
const CHILD_TIMEOUT_MS = smoke ? 180_000 : 600_000;

// ---------------------------------------------------------------------------------------------
// Processes

interface Server {
  port: number;
  prepare(ns: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", new URL("stream_server.ts", here).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/PORT \d+/.test(text)) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the stream server exited before listening");
    text += value;
  }
  const port = Number(text.match(/PORT (\d+)/)![1]);
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    port,
    async prepare(ns) {
      const response = await fetch(
        `http://127.0.0.1:${port}/_prepare?ns=${ns}`,
        {
          method: "POST",
        },
      );
      const body = await response.json();
      if (!response.ok) {
        throw new Error(`prepare ${ns}: ${JSON.stringify(body)}`);
      }
      return body;
    },
    async stop() {
      await child.stdin.close().catch(() => {});
      await child.status;
    },
  };
}

type Result = Record<string, number>;

/** The 1-minute load average before each measurement: the machine may be shared. */
const loads: number[] = [];

async function loadAverage(): Promise<void> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  const load = Number(text.split(" ")[0]);
  if (Number.isFinite(load) && text) loads.push(load);
}

/** Runs one measurement in a fresh process. */
async function measure(job: Job): Promise<Result> {
  await loadAverage();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      "--allow-all",
      new URL("measure.ts", here).pathname,
      JSON.stringify(job),
    ],
    cwd: root.pathname,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const out = new TextDecoder().decode(stdout);
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  if (code !== 0 || !line) {
    throw new Error(
      `${job.scenario} ${job.ns ?? ""} failed (exit ${code}):\n${out}\n${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  return JSON.parse(line.slice("RESULT ".length));
}

/** Runs `runs` rounds of all jobs, alternated; returns each job's results. */
async function alternate(label: string, jobs: Job[]): Promise<Result[][]> {
  const results: Result[][] = jobs.map(() => []);
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < jobs.length; i++) {
      const started = performance.now();
      results[i].push(await measure(jobs[i]));
      log(
        `${label} run ${round + 1}/${runs} ${describeJob(jobs[i])}: ${
          Math.round(performance.now() - started)
        } ms`,
      );
    }
  }
  return results;
}

function describeJob(job: Job): string {
  return `${job.scenario}${job.strip ? "+strip" : ""}${job.store ? `+${job.store}` : ""}${
    job.mode ? `(${job.mode})` : ""
  }`;
}

function log(message: string): void {
  console.error(
    `[bench ${((performance.now()) / 1000).toFixed(1)}s] ${message}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

interface Stat {
  median: number;
  min: number;
  max: number;
}

function stat(values: number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

function fmt(value: number, digits: number): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function show(s: Stat, digits = 0, unit = ""): string {
  if (runs === 1) return `${fmt(s.median, digits)}${unit}`;
  return `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

function ratio(a: number, b: number): string {
  return `${fmt(a / b, 2)}×`;
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

const report: string[] = [];
const targets: { target: string; value: string; met: boolean }[] = [];

function table(head: string[], rows: string[][]): void {
  report.push(`| ${head.join(" | ")} |`);
  report.push(
    `| ${head.map((_h, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
  );
  for (const row of rows) report.push(`| ${row.join(" | ")} |`);
  report.push("");
}

async function watchThroughput(server: Server): Promise<void> {
  const ns = `w-${sizes.watch}`;
  const info = await server.prepare(ns);
  const base: Job = {
    scenario: "",
    port: server.port,
    ns,
    n: sizes.watch,
    lastResourceVersion: info.lastResourceVersion as string,
    alive: info.alive as number,
  };
  const names: [string, string, Partial<Job>?][] = [
    ["watch-raw", "(a) raw: fetch + split lines + JSON.parse"],
    ["watch-client", "(b) `client.watch`"],
    ["watch-informer", "(c) `Informer`"],
    ["watch-reflector", "(d) `Reflector` applying events (`run()`)"],
    ["watch-client-node", "(e) client-node `Watch`"],
    ["watch-client", "(f) `client.watch`, protobuf", { format: "protobuf" }],
    ["watch-reflector", "(g) `Reflector` applying events, protobuf", {
      format: "protobuf",
    }],
  ];
  const results = await alternate(
    "watch",
    names.map(([scenario, , extra]) => ({ ...base, scenario, ...extra })),
  );
  const bytes = info.bytes as number;
  const rates = results.map((rs) => stat(rs.map((r) => (sizes.watch / r.ms) * 1000)));
  const mbs = results.map((rs) => stat(rs.map((r) => bytes / 1e6 / (r.ms / 1000))));
  const counts = info.counts as Record<string, number>;
  report.push("## 2. Watch throughput");
  report.push("");
  report.push(
    `One stream of ${fmt(sizes.watch, 0)} events (${fmt(bytes / 1e6, 1)} MB; ` +
      `${counts.ADDED} ADDED, ${counts.MODIFIED} MODIFIED, ${counts.DELETED} DELETED over ` +
      `${fmt(Math.min(10_000, sizes.watch / 4), 0)} keys), from request to the last event. ` +
      "Ratios are of the medians.",
  );
  report.push("");
  table(
    ["client", "events/s", "MB/s", "× raw", "× client-node"],
    names.map(([, label], i) => [
      label,
      show(rates[i]),
      show(mbs[i], 1),
      ratio(rates[i].median, rates[0].median),
      ratio(rates[i].median, rates[4].median),
    ]),
  );
  const watchRate = rates[1].median;
  targets.push({
    target: "watch path (`client.watch`) ≥ 0.9× raw",
    value: ratio(watchRate, rates[0].median),
    met: watchRate >= 0.9 * rates[0].median,
  });
  targets.push({
    target: "watch path (`client.watch`) ≥ 1.5× client-node",
    value: ratio(watchRate, rates[4].median),
    met: watchRate >= 1.5 * rates[4].median,
  });
  for (const [i, label] of [[2, "Informer"], [3, "Reflector"]] as const) {
    targets.push({
      target: `${label} events/s ≥ 0.9× raw (informational)`,
      value: ratio(rates[i].median, rates[0].median),
      met: rates[i].median >= 0.9 * rates[0].median,
    });
  }
}

/** Average JSON size of list items, with and without managedFields (every 25th pod). */
function objectSizes(n: number): { full: number; stripped: number } {
  let full = 0, stripped = 0, count = 0;
  for (let i = 0; i < n; i += 25) {
    const pod = makePod(i, { resourceVersion: 1000 + i }) as {
      apiVersion?: string;
      kind?: string;
      metadata: { managedFields?: unknown };
    };
    delete pod.apiVersion;
    delete pod.kind;
    full += JSON.stringify(pod).length;
    delete pod.metadata.managedFields;
    stripped += JSON.stringify(pod).length;
    count++;
  }
  return { full: full / count, stripped: stripped / count };
}

async function initialSync(server: Server): Promise<void> {
  report.push("## 3. Initial sync (paged list, 500 per page)");
  report.push("");
  report.push(
    "Time from start to a complete cache (`Reflector.ready`; client-node: `informer.start()` " +
      "resolved, which also includes opening its watch). Heap: `Deno.memoryUsage().heapUsed` " +
      "after two `gc()` calls, minus the same taken before the sync, per cached object; " +
      "ratios to the average JSON size of an object as listed (full / without managedFields). " +
      "client-node lists through its `CoreV1Api.listNamespacedPod` with `limit=500` and " +
      "`_continue` (its `ListWatch` does not page by itself).",
  );
  report.push("");
  const rows: string[][] = [];
  for (const n of sizes.sync) {
    const ns = `l-${n}`;
    await server.prepare(ns);
    const size = objectSizes(n);
    const base: Job = { scenario: "", port: server.port, ns, n };
    const jobs: [Job, string][] = [
      [{ ...base, scenario: "sync-raw" }, "raw: fetch + JSON.parse into a Map"],
      [{ ...base, scenario: "sync-reflector" }, "`Reflector`"],
      [
        { ...base, scenario: "sync-reflector", strip: true },
        "`Reflector` + `stripManagedFields`",
      ],
      [{ ...base, scenario: "sync-client-node" }, "client-node `makeInformer`"],
      [
        { ...base, scenario: "sync-reflector", format: "protobuf" },
        "`Reflector`, protobuf",
      ],
      [
        {
          ...base,
          scenario: "sync-reflector",
          format: "protobuf",
          strip: true,
        },
        "`Reflector`, protobuf + `stripManagedFields`",
      ],
    ];
    const results = await alternate(`sync ${n}`, jobs.map(([job]) => job));
    const times = results.map((rs) => stat(rs.map((r) => r.ms)));
    const perObject = results.map((rs) => stat(rs.map((r) => r.heap / n)));
    jobs.forEach(([, label], i) => {
      rows.push([
        `${fmt(n, 0)} pods: ${label}`,
        show(times[i], 0, " ms"),
        ratio(times[i].median, times[0].median),
        ratio(times[i].median, times[3].median),
        show(perObject[i], 0, " B"),
        `${fmt(perObject[i].median / size.full, 2)} / ${
          fmt(perObject[i].median / size.stripped, 2)
        }`,
      ]);
    });
    report.push(
      `${fmt(n, 0)} pods: average object JSON ${fmt(size.full, 0)} B, ` +
        `${fmt(size.stripped, 0)} B without managedFields.`,
    );
    report.push("");
    targets.push({
      target: `initial sync ${fmt(n, 0)}: \`Reflector\` time ≤ 1.2× raw`,
      value: ratio(times[1].median, times[0].median),
      met: times[1].median <= 1.2 * times[0].median,
    });
    targets.push({
      target: `initial sync ${fmt(n, 0)}: \`Reflector\` ≥ 1.5× faster than client-node`,
      value: `${fmt(times[3].median / times[1].median, 2)}× faster`,
      met: times[3].median >= 1.5 * times[1].median,
    });
    targets.push({
      target: `heap/object ${fmt(n, 0)} with strip ≤ 1.0× object JSON (full / stripped)`,
      value: `${fmt(perObject[2].median / size.full, 2)}× / ${
        fmt(perObject[2].median / size.stripped, 2)
      }×`,
      met: perObject[2].median <= size.full,
    });
  }
  table(
    [
      "sync",
      "time to ready",
      "× raw",
      "× client-node",
      "heap/object",
      "heap ÷ JSON (full / stripped)",
    ],
    rows,
  );
}

async function latency(server: Server): Promise<void> {
  const ns = `p-${sizes.pacedRate}-${sizes.paced}`;
  await server.prepare(ns);
  const job: Job = {
    scenario: "latency",
    port: server.port,
    ns,
    n: sizes.paced,
    warmup: sizes.warmup,
  };
  const [results] = await alternate("latency", [job]);
  const p50 = stat(results.map((r) => r.p50));
  const p99 = stat(results.map((r) => r.p99));
  const max = stat(results.map((r) => r.max));
  const offset = stat(results.map((r) => Math.abs(r.clockOffsetMs)));
  const rtt = stat(results.map((r) => r.clockRttMs));
  report.push("## 4. Latency: server write → visible in the Reflector");
  report.push("");
  report.push(
    `A paced watch of ${fmt(sizes.paced, 0)} pod events at ${fmt(sizes.pacedRate, 0)}/s; the ` +
      `first ${fmt(sizes.warmup, 0)} are a JIT warm-up and not counted. The server stamps each ` +
      "event (an annotation) with `performance.timeOrigin + performance.now()` just before " +
      "handing it to the socket; the client takes the same clock when the change comes out of " +
      "`reflector.changes()` (so the cache already holds it). Both processes read the same " +
      "system clock; the residual offset is measured before each run (min-RTT sample of 30 " +
      `\`GET /clock\`: |offset| ${show(offset, 3, " ms")}, RTT ${show(rtt, 3, " ms")}) and ` +
      "subtracted.",
  );
  report.push("");
  table(["", "p50", "p99", "max"], [[
    "write → `changes()`",
    show(p50, 2, " ms"),
    show(p99, 2, " ms"),
    show(max, 2, " ms"),
  ]]);
  targets.push({
    target: "p99 latency < 5 ms",
    value: `${fmt(p99.median, 2)} ms`,
    met: p99.median < 5,
  });
}

async function steadyState(server: Server): Promise<void> {
  const ns = `c-${sizes.churn}-${sizes.churnKeys}`;
  await server.prepare(ns);
  const job: Job = {
    scenario: "churn",
    port: server.port,
    ns,
    n: sizes.churn,
    alive: sizes.churnKeys,
    sampleEvery: sizes.sampleEvery,
  };
  const [results] = await alternate("churn", [job]);
  const mb = (f: (r: Result) => number) => stat(results.map((r) => f(r) / 1e6));
  const growth = mb((r) => r.last - r.first);
  report.push("## 5. Steady state: long churn");
  report.push("");
  report.push(
    `A \`Reflector\` (with \`stripManagedFields\`) over ${fmt(sizes.churnKeys, 0)} pods, then ` +
      `${fmt(sizes.churn, 0)} MODIFIED events cycling through the ${fmt(sizes.churnKeys, 0)} ` +
      `keys; heap after two \`gc()\` sampled every ${fmt(sizes.sampleEvery, 0)} events. The ` +
      "reflector is driven by `run()` and nobody calls `events()`, as in an application that " +
      "only reads the cache.",
  );
  report.push("");
  table(["", "value"], [
    ["events/s", show(stat(results.map((r) => (r.events / r.ms) * 1000)))],
    ["heap after the initial list", show(mb((r) => r.ready), 1, " MB")],
    ["first sample", show(mb((r) => r.first), 1, " MB")],
    ["last sample", show(mb((r) => r.last), 1, " MB")],
    ["max sample", show(mb((r) => r.max), 1, " MB")],
    ["last − first", show(growth, 1, " MB")],
  ]);
  const samples = results[Math.floor(results.length / 2)]
    .samples as unknown as number[];
  report.push(
    `Samples of one run (MB): ${samples.map((s) => fmt(s / 1e6, 1)).join(", ")}.`,
  );
  report.push("");
  const first = mb((r) => r.first).median;
  targets.push({
    target: "steady-state heap flat (last within 5% of first)",
    value: `${fmt(growth.median, 1)} MB`,
    met: Math.abs(growth.median) <= 0.05 * first,
  });
}

const CONTROLLER_SECTION = "## 6. Controller runtime";

/** Runs `bench/controller.ts` in a fresh process per run. */
async function controllerRuntime(): Promise<void> {
  const results: Result[] = [];
  for (let round = 0; round < runs; round++) {
    await loadAverage();
    const started = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--v8-flags=--expose-gc",
        "--allow-all",
        new URL("controller.ts", here).pathname,
        String(sizes.controller),
      ],
      cwd: root.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    if (!out.success || !line) {
      throw new Error(
        `bench/controller.ts failed (exit ${out.code}):\n${text}\n${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
    results.push(JSON.parse(line.slice("RESULT ".length)));
    log(
      `controller run ${round + 1}/${runs}: ${Math.round(performance.now() - started)} ms`,
    );
  }
  const s = (f: (r: Result) => number) => stat(results.map(f));
  const n = fmt(sizes.controller, 0);
  report.push(CONTROLLER_SECTION);
  report.push("");
  report.push(
    `A \`Controller\` with a no-op reconcile (concurrency 1) over ${n} ConfigMaps served by an ` +
      "in-memory `FakeApiServer` (no sockets), in a fresh process per run " +
      "(`bench/controller.ts`). The sync floor is a plain `Reflector.init()` of the same " +
      "objects; the controller cannot start reconciling before its cache is synced.",
  );
  report.push("");
  table(["", "value"], [
    [
      `Reflector initial sync of ${n} (floor)`,
      show(s((r) => r.syncMs), 0, " ms"),
    ],
    [
      `run() → each of ${n} keys reconciled once`,
      show(s((r) => r.allReconciledMs), 0, " ms"),
    ],
    [
      "controller overhead per reconcile (queue, state, ctx, outcome)",
      show(s((r) => r.perReconcileUs), 1, " µs"),
    ],
    [
      "bare work queue per key (add + hand out + finish)",
      show(s((r) => r.queueUs), 2, " µs"),
    ],
    [
      `heap per queued key (${n} keys in a paused queue)`,
      show(s((r) => r.queuedBytesPerKey), 0, " B"),
    ],
    [
      `controller heap per key beyond its cache (${n} cached, ${n} − 1 queued)`,
      show(s((r) => r.controllerBytesPerKey), 0, " B"),
    ],
  ]);
}

let kubernetesVersion = "";

async function realCluster(): Promise<void> {
  const { startControlPlane } = await import("../testenv/control_plane.ts");
  const { Client } = await import("../client.ts");
  const { Config } = await import("../config.ts");
  const { Api } = await import("../api.ts");
  log("starting the control plane");
  const cp = await startControlPlane();
  try {
    const client = new Client(
      await Config.fromKubeconfig({ path: cp.kubeconfigPath }),
    );
    const version = await client.requestJson<{ gitVersion: string }>({
      path: "/version",
    });
    kubernetesVersion = version.gitVersion;
    const ns = "bench";
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    const api = Api.v1ConfigMap().within(ns);
    const n = sizes.cluster;
    let next = 0;
    let bytes = 0;
    const started = performance.now();
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        const created = await client.create(api, {
          metadata: {
            name: `cm-${String(i).padStart(5, "0")}`,
            labels: { app: "bench", shard: String(i % 16) },
          },
          data: {
            index: String(i),
            payload: "x".repeat(200),
            "config.yaml": `id: ${i}\n`,
          },
        } as never);
        bytes += JSON.stringify(created).length;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const createMs = performance.now() - started;
    client.close();
    log(`created ${n} ConfigMaps in ${Math.round(createMs)} ms`);
    const base: Job = {
      scenario: "cluster-sync",
      kubeconfig: cp.kubeconfigPath,
      ns,
      n,
    };
    const jobs: [Job, string][] = [
      [{ ...base, mode: "watchList" }, "WatchList (`sendInitialEvents`)"],
      [{ ...base, mode: "list" }, "paged list (500) + watch"],
    ];
    const results = await alternate("cluster", jobs.map(([job]) => job));
    const times = results.map((rs) => stat(rs.map((r) => r.ms)));
    const perObject = results.map((rs) => stat(rs.map((r) => r.heap / n)));
    report.push(
      "## 3b. WatchList vs paged list against the real control plane",
    );
    report.push("");
    report.push(
      `kube-apiserver ${kubernetesVersion} + etcd on loopback (TLS, watch cache on), ` +
        `${fmt(n, 0)} ConfigMaps (average ${fmt(bytes / n, 0)} B of JSON with managedFields), ` +
        `created with 32 concurrent requests in ${fmt(createMs / 1000, 1)} s. \`Reflector\` ` +
        "without transform; the same time and heap definitions as above.",
    );
    report.push("");
    table(
      ["initial sync", "time to ready", "heap/object"],
      jobs.map((
        [, label],
        i,
      ) => [label, show(times[i], 0, " ms"), show(perObject[i], 0, " B")]),
    );
    await clientGoSideBySide(cp.kubeconfigPath, cp.dir);
  } finally {
    await cp.stop();
  }
}

/** One contender of the side-by-side comparison. */
interface Contender {
  label: string;
  run: () => Promise<Result>;
  /** Managed fields dropped by a transform. */
  strip?: boolean;
}

/**
 * 3c: the same pods synced by client-go (protobuf and JSON), client-node and this library in
 * each mode, alternated, with client CPU, apiserver CPU, heap per object and peak RSS.
 */
async function clientGoSideBySide(
  kubeconfig: string,
  dir: string,
): Promise<void> {
  const { apiServerPid, buildClientGo, processCpuMs, runClientGo, seedPods } = await import(
    "./cluster.ts"
  );
  report.push("## 3c. Side by side with client-go on the real control plane");
  report.push("");
  const bin = await buildClientGo();
  const pid = await apiServerPid(dir);
  if (typeof bin !== "string" || pid === undefined) {
    report.push(
      `Not measured: ${typeof bin !== "string" ? bin.missing : "no apiserver pid"}.`,
    );
    report.push("");
    return;
  }
  const n = sizes.clusterPods;
  const ns = "bench-pods";
  log(`seeding ${n} pods`);
  const seeded = await seedPods(kubeconfig, ns, n);
  log(`seeded ${n} pods in ${Math.round(seeded.ms)} ms`);
  const go = (format: string, mode: string, strip = false): Contender => ({
    label: `client-go ${format}, ${mode === "watchlist" ? "WatchList" : "list"}${
      strip ? " + strip" : ""
    }`,
    strip,
    run: () =>
      runClientGo(bin, [
        `-kubeconfig=${kubeconfig}`,
        `-namespace=${ns}`,
        `-n=${n}`,
        `-format=${format}`,
        `-mode=${mode}`,
        ...(strip ? ["-strip"] : []),
      ]),
  });
  const kube = (
    format: "json" | "protobuf",
    mode: "watchList" | "list",
    strip = false,
    store?: "compact",
  ) => ({
    label: `this library ${format}, ${mode === "watchList" ? "WatchList" : "paged list"}${
      strip ? " + strip" : ""
    }${store ? ", compact store" : ""}`,
    strip,
    run: () =>
      measure({
        scenario: "cluster-pods",
        kubeconfig,
        ns,
        n,
        mode,
        format,
        strip,
        store,
      }) as Promise<
        Result
      >,
  });
  const contenders: Contender[] = [
    go("protobuf", "watchlist"),
    go("protobuf", "list"),
    go("json", "watchlist"),
    go("json", "list"),
    kube("protobuf", "watchList"),
    kube("protobuf", "list"),
    kube("protobuf", "watchList", false, "compact"),
    kube("protobuf", "list", false, "compact"),
    kube("json", "watchList"),
    kube("json", "list"),
    {
      label: "client-node `makeInformer` (one list)",
      run: () => measure({ scenario: "cluster-pods-client-node", kubeconfig, ns, n }),
    },
    go("protobuf", "watchlist", true),
    kube("protobuf", "watchList", true),
    kube("protobuf", "watchList", true, "compact"),
    kube("json", "watchList", true),
  ];
  const results: Result[][] = contenders.map(() => []);
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < contenders.length; i++) {
      await loadAverage();
      const cpu0 = await processCpuMs(pid);
      const result = await contenders[i].run();
      result.apiserverCpuMs = (await processCpuMs(pid)) - cpu0;
      results[i].push(result);
      log(
        `client-go side by side run ${round + 1}/${runs} ${contenders[i].label}: ${
          Math.round(result.ms)
        } ms`,
      );
    }
  }
  const col = (i: number, f: (r: Result) => number) => stat(results[i].map(f));
  const ref = 0; // client-go protobuf WatchList
  const metrics = {
    ms: (r: Result) => r.ms,
    cpu: (r: Result) => r.cpuMs,
    server: (r: Result) => r.apiserverCpuMs,
    heap: (r: Result) => (r.heap + (r.external ?? 0)) / n,
    rss: (r: Result) => r.peakRss / 1024 / 1024,
  };
  const refs = Object.fromEntries(
    Object.entries(metrics).map(([k, f]) => [k, col(ref, f).median]),
  ) as Record<keyof typeof metrics, number>;
  report.push(
    `kube-apiserver ${kubernetesVersion} + etcd on loopback (TLS, watch cache on), ${
      fmt(n, 0)
    } pods in one namespace (created with a kubelet-like status update each, in ${
      fmt(seeded.ms / 1000, 1)
    } s): average ${fmt(seeded.json, 0)} B of JSON per pod, ${
      fmt(seeded.stripped, 0)
    } B without managedFields. Each run is a fresh process: the client-go program ` +
      "(`bench/clientgo`, an informer from `informers.NewSharedInformerFactory`, " +
      "WatchList by the `WatchListClient` gate) or `bench/measure.ts` (a `Reflector`; " +
      "client-node's `makeInformer`). Sync: start to synced/ready. Client CPU: user + system " +
      "of the client process during the sync. apiserver CPU: user + system of the " +
      "kube-apiserver process over the whole run. Heap: Go `HeapAlloc` / V8 `heapUsed` plus " +
      "`external` (ArrayBuffers: the compact store's bytes) after GC, minus the same before, " +
      "per pod. Peak RSS: `VmHWM` of the client process. Ratios " +
      "are to client-go protobuf WatchList.",
  );
  report.push("");
  table(
    [
      "client",
      "sync",
      "client CPU",
      "apiserver CPU",
      "heap/pod",
      "heap ÷ JSON",
      "peak RSS",
    ],
    contenders.map((c, i) => {
      const cell = (k: keyof typeof metrics, digits: number, unit: string) => {
        const s = col(i, metrics[k]);
        return `${show(s, digits, unit)} (${ratio(s.median, refs[k])})`;
      };
      const h = col(i, metrics.heap).median;
      return [
        c.label,
        cell("ms", 0, " ms"),
        cell("cpu", 0, " ms"),
        cell("server", 0, " ms"),
        cell("heap", 0, " B"),
        fmt(h / (c.strip ? seeded.stripped : seeded.json), 2),
        cell("rss", 0, " MiB"),
      ];
    }),
  );
  const best = (indexes: number[], k: keyof typeof metrics) =>
    Math.min(...indexes.map((i) => col(i, metrics[k]).median));
  const indexes = (f: (c: Contender) => boolean) => contenders.flatMap((c, i) => f(c) ? [i] : []);
  const mine = (c: Contender) => c.label.startsWith("this library ");
  const ours = indexes((c) => mine(c) && !c.strip);
  const oursLabel = (k: keyof typeof metrics) => {
    const i = ours.reduce((
      a,
      b,
    ) => (col(a, metrics[k]).median <= col(b, metrics[k]).median ? a : b));
    return contenders[i].label.replace("this library ", "");
  };
  for (
    const [k, what] of [
      ["ms", "sync to ready"],
      ["cpu", "client CPU"],
      ["server", "apiserver CPU"],
      ["rss", "peak RSS"],
    ] as const
  ) {
    const v = best(ours, k);
    targets.push({
      target: `${fmt(n, 0)} real pods: ${what} ≤ client-go protobuf (best: ${oursLabel(k)})`,
      value: ratio(v, refs[k]),
      met: v <= refs[k],
    });
  }
  const heapBest = best(ours, "heap");
  targets.push({
    target: `${fmt(n, 0)} real pods: heap/pod ≤ 0.5× client-go's (best: ${oursLabel("heap")})`,
    value: ratio(heapBest, refs.heap),
    met: heapBest <= 0.5 * refs.heap,
  });
  const stripped = best(indexes((c) => mine(c) && Boolean(c.strip)), "heap");
  targets.push({
    target: `${fmt(n, 0)} real pods: heap/pod with strip ≤ 1.0× its JSON without managedFields`,
    value: `${fmt(stripped / seeded.stripped, 2)}×`,
    met: stripped <= seeded.stripped,
  });
  // The compact store's goals (issue 25), against client-go protobuf WatchList.
  const compact = contenders.findIndex((c) => c.label.endsWith("WatchList, compact store"));
  if (compact >= 0) {
    for (
      const [k, what, goal] of [
        ["ms", "sync to ready", 0.8],
        ["heap", "heap/pod", 0.35],
        ["rss", "peak RSS", 1.0],
      ] as const
    ) {
      const v = col(compact, metrics[k]).median;
      targets.push({
        target: `${fmt(n, 0)} real pods: compact store (WatchList) ${what} ≤ ${
          fmt(goal, 2)
        }× client-go protobuf`,
        value: ratio(v, refs[k]),
        met: v <= goal * refs[k],
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Machine and versions

async function machine(): Promise<string[]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpu = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  const memKb = Number(meminfo.match(/^MemTotal:\s*(\d+)/m)?.[1] ?? 0);
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", here)));
  const clientNode =
    Object.entries(lock.specifiers ?? {}).find(([k]) =>
      k.startsWith("npm:@kubernetes/client-node@")
    )?.[1] ?? "?";
  if (!kubernetesVersion) {
    const goMod = await Deno.readTextFile(
      new URL("testenv/apiserver/go.mod", root),
    ).catch(() => "");
    const pin = goMod.match(/k8s\.io\/kubernetes\s+(v\S+)/)?.[1];
    kubernetesVersion = pin ? `${pin} (pinned; the control plane part did not run)` : "n/a";
  }
  return [
    "| | |",
    "| --- | --- |",
    `| CPU | ${cpu} |`,
    `| cores | ${navigator.hardwareConcurrency} |`,
    `| RAM | ${fmt(memKb / 1024 / 1024, 1)} GiB |`,
    `| OS | ${Deno.build.os} ${Deno.build.arch} |`,
    `| Deno | ${Deno.version.deno} |`,
    `| V8 | ${Deno.version.v8} |`,
    `| @kubernetes/client-node | ${clientNode} |`,
    `| Kubernetes | ${kubernetesVersion} |`,
    `| date | ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC |`,
    `| runs per figure | ${runs}, alternated, each in a fresh process |`,
    `| 1-min load average before each measurement | ${
      loads.length ? show(stat(loads), 2) : "n/a"
    } (${navigator.hardwareConcurrency} cores; other work on the machine adds noise) |`,
    "",
  ];
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main && flag("--only") === "controller-rt") {
  // Section 7, side by side with controller-runtime: bench/controller_rt.ts (its own flags).
  const { main } = await import("./controller_rt.ts");
  await main();
  Deno.exit(0);
}

if (import.meta.main && flag("--only") === "controller") {
  await controllerRuntime();
  const section = report.join("\n");
  if (smoke) {
    console.log(section);
  } else {
    const old = await Deno.readTextFile(outPath).catch(() => "# kube benchmarks\n");
    const at = old.indexOf(CONTROLLER_SECTION);
    const next = at < 0 ? -1 : old.indexOf("\n## ", at + CONTROLLER_SECTION.length);
    const text = at < 0
      ? `${old.trimEnd()}\n\n${section}`
      : `${old.slice(0, at)}${section}${next < 0 ? "" : old.slice(next)}`;
    await Deno.writeTextFile(outPath, text);
    await new Deno.Command(Deno.execPath(), {
      args: [
        "fmt",
        "--quiet",
        "--config",
        new URL("deno.json", root).pathname,
        outPath,
      ],
    }).output();
    log(`updated ${CONTROLLER_SECTION} in ${outPath}`);
  }
  Deno.exit(0);
}

/** `--only clientgo`: section 3c alone, spliced into the existing results file. */
async function onlyClientGo(): Promise<void> {
  const started = performance.now();
  const { startControlPlane } = await import("../testenv/control_plane.ts");
  const cp = await startControlPlane();
  try {
    const { Client } = await import("../client.ts");
    const { Config } = await import("../config.ts");
    await using client = new Client(
      await Config.fromKubeconfig({ path: cp.kubeconfigPath }),
    );
    kubernetesVersion = (await client.requestJson<{ gitVersion: string }>({ path: "/version" }))
      .gitVersion;
    await clientGoSideBySide(cp.kubeconfigPath, cp.dir);
  } finally {
    await cp.stop();
  }
  const minutes = (performance.now() - started) / 60_000;
  const old = (await Deno.readTextFile(outPath).catch(() => "# kube benchmarks\n")).split(
    "\n",
  );
  // Drop the previous 3c section, its target rows and its provenance line.
  const kept: string[] = [];
  let skipping = false;
  let provenance = false; // the previous provenance paragraph, over several lines
  for (const line of old) {
    if (line.startsWith("## ")) skipping = line.startsWith("## 3c.");
    if (line.startsWith("Section 3c ")) provenance = true;
    else if (line === "" && provenance) {
      provenance = false;
      continue;
    }
    if (skipping || provenance || line.includes(" real pods: ")) continue;
    kept.push(line);
  }
  const at = (prefix: string) => kept.findIndex((l) => l.startsWith(prefix));
  let section = at("## 4.");
  if (section < 0) section = kept.length;
  kept.splice(section, 0, ...report);
  const targetsAt = at("## 1. Targets");
  if (targetsAt >= 0) {
    let end = targetsAt + 1;
    while (end < kept.length && !kept[end].startsWith("|")) end++;
    while (end < kept.length && kept[end].startsWith("|")) end++;
    kept.splice(
      end,
      0,
      ...targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? "yes" : "**no**"} |`),
    );
  }
  const title = at("# kube benchmarks");
  kept.splice(
    title + 2,
    0,
    `Section 3c and its target rows: \`bench/run.ts --only clientgo\` (${runs} alternated runs, ` +
      `${fmt(minutes, 0)} min) on ${new Date().toISOString().slice(0, 16).replace("T", " ")} ` +
      `UTC, 1-min load average ${loads.length ? show(stat(loads), 2) : "n/a"} on ` +
      `${navigator.hardwareConcurrency} cores shared with other work; the other sections are ` +
      "from the full run described next.",
    "",
  );
  await Deno.writeTextFile(outPath, kept.join("\n"));
  await new Deno.Command(Deno.execPath(), {
    args: [
      "fmt",
      "--quiet",
      "--config",
      new URL("deno.json", root).pathname,
      outPath,
    ],
  })
    .output();
  log(`spliced section 3c into ${outPath}`);
}

/** `--only compact`: the compact store against the objects store (protobuf), with read costs. */
async function onlyCompact(): Promise<void> {
  const server = await startServer();
  try {
    const rows: string[][] = [];
    const counts = flag("--sizes")?.split(",").map(Number) ?? sizes.sync;
    for (const n of counts) {
      const ns = `l-${n}`;
      await server.prepare(ns);
      const base: Job = {
        scenario: "sync-reflector",
        port: server.port,
        ns,
        n,
        format: "protobuf",
        reads: true,
      };
      const jobs: [Job, string][] = [
        [base, "`Reflector`, protobuf (objects store)"],
        [{ ...base, store: "compact" }, "`Reflector`, protobuf, compact store"],
        [
          { ...base, strip: true },
          "`Reflector`, protobuf + `stripManagedFields`",
        ],
        [
          { ...base, store: "compact", strip: true },
          "`Reflector`, protobuf, compact store + `stripManagedFields`",
        ],
      ];
      const results = await alternate(`compact ${n}`, jobs.map(([job]) => job));
      const col = (i: number, f: (r: Result) => number) => stat(results[i].map(f));
      jobs.forEach(([, label], i) => {
        rows.push([
          `${fmt(n, 0)} pods: ${label}`,
          show(col(i, (r) => r.ms), 0, " ms"),
          show(col(i, (r) => r.heap / n), 0, " B"),
          show(col(i, (r) => (r.external ?? 0) / n), 0, " B"),
          show(col(i, (r) => (r.heap + (r.external ?? 0)) / n), 0, " B"),
          show(col(i, (r) => r.getUs), 1, " µs"),
          show(col(i, (r) => r.iterateMs), 0, " ms"),
          show(col(i, (r) => r.reconcileMs), 0, " ms"),
        ]);
      });
    }
    report.push(
      '## Compact store (`store: "compact"`) against the objects store',
    );
    report.push("");
    report.push(
      `Protobuf paged list from \`bench/stream_server.ts\`, ${runs} alternated runs, 1-min load ` +
        `average ${loads.length ? show(stat(loads), 2) : "n/a"} on ` +
        `${navigator.hardwareConcurrency} shared cores. Heap: V8 \`heapUsed\` after GC; ` +
        "ArrayBuffers: `external` (the compact store's bytes live there). get: a random key " +
        "(20,000 of them); iteration: `read().values()` once; reconcile: `get` of every key once " +
        "and three fields read.",
    );
    report.push("");
    table(
      [
        "sync",
        "time to ready",
        "heap/pod",
        "ArrayBuffers/pod",
        "total/pod",
        "get",
        "iterate",
        "reconcile",
      ],
      rows,
    );
    if (args.includes("--churn")) {
      // The 1M-event churn of section 5, on the compact store (heap + ArrayBuffers).
      const ns = `c-${sizes.churn}-${sizes.churnKeys}`;
      await server.prepare(ns);
      const [results] = await alternate("churn compact", [{
        scenario: "churn",
        port: server.port,
        ns,
        n: sizes.churn,
        alive: sizes.churnKeys,
        sampleEvery: sizes.sampleEvery,
        store: "compact",
      }]);
      const mb = (f: (r: Result) => number) => stat(results.map((r) => f(r) / 1e6));
      report.push("");
      report.push(
        `Churn: a compact \`Reflector\` (+ \`stripManagedFields\`) over ${
          fmt(sizes.churnKeys, 0)
        } pods, then ${fmt(sizes.churn, 0)} MODIFIED events counted from \`changes()\`; heap + ` +
          `ArrayBuffers after GC every ${fmt(sizes.sampleEvery, 0)} events.`,
      );
      report.push("");
      table(["", "value"], [
        ["events/s", show(stat(results.map((r) => (r.events / r.ms) * 1000)))],
        ["memory after the initial list", show(mb((r) => r.ready), 1, " MB")],
        ["first sample", show(mb((r) => r.first), 1, " MB")],
        ["last sample", show(mb((r) => r.last), 1, " MB")],
        ["max sample", show(mb((r) => r.max), 1, " MB")],
        ["last − first", show(mb((r) => r.last - r.first), 1, " MB")],
      ]);
    }
    console.log(report.join("\n"));
  } finally {
    await server.stop();
  }
}

if (import.meta.main && flag("--only") === "clientgo") {
  await onlyClientGo();
} else if (import.meta.main && flag("--only") === "compact") {
  await onlyCompact();
} else if (import.meta.main) {
  const started = performance.now();
  const server = await startServer();
  log(`stream server on port ${server.port}`);
  try {
    await watchThroughput(server);
    await initialSync(server);
    if (withCluster) {
      try {
        await realCluster();
      } catch (e) {
        if (smoke) throw e;
        log(
          `the real control plane part failed: ${e instanceof Error ? e.stack : e}`,
        );
        report.push(
          "## 3b. WatchList vs paged list against the real control plane",
        );
        report.push("");
        report.push(`Not measured: ${e instanceof Error ? e.message : e}`);
        report.push("");
      }
    }
    await latency(server);
    await steadyState(server);
    await controllerRuntime();
    // Section 7: the webhook server side by side with controller-runtime's (bench/webhook.ts).
    const webhooks = await webhookSection({
      smoke,
      runs: Math.min(runs, 3),
      seconds: smoke ? 1 : 5,
      runtimes: ["deno"],
      log,
    });
    report.push(...webhooks.lines, "");
    targets.push(...webhooks.targets);
  } finally {
    await server.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const lines = [
    "# kube benchmarks",
    "",
    `Generated by \`deno task bench\` (\`bench/run.ts\`${smoke ? " --smoke" : ""}) in ` +
    `${fmt(seconds, 0)} s. Figures: median (min–max) over ${runs} alternated runs, each ` +
    "client in a fresh `deno run --v8-flags=--expose-gc` process; data from a separate " +
    "loopback server process (`bench/stream_server.ts`) serving pre-built buffers in 64 KiB " +
    "chunks. Pods are ~4 KB of JSON (`bench/fixture.ts`).",
    "",
    ...(await machine()),
    "## 1. Targets",
    "",
    "| target | measured | met |",
    "| --- | ---: | :---: |",
    ...targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? "yes" : "**no**"} |`),
    "",
    ...report,
  ];
  const text = lines.join("\n");
  if (smoke) {
    console.log(text);
    log(`smoke run OK in ${fmt(seconds, 1)} s`);
  } else {
    await Deno.writeTextFile(outPath, text);
    // Keep the file as `deno fmt` wants it: the repository's `deno fmt --check` covers it.
    await new Deno.Command(Deno.execPath(), {
      args: [
        "fmt",
        "--quiet",
        "--config",
        new URL("deno.json", root).pathname,
        outPath,
      ],
    }).output();
    log(`wrote ${outPath} in ${fmt(seconds, 0)} s`);
  }
}
