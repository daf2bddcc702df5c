/**
 * The controller runtime side by side with controller-runtime v0.25.3 on the real control plane:
 * `deno task bench --only controller-rt [--n 10000] [--edits 100] [--concurrency 4] [--runs 1]`
 * (also `deno run -A bench/controller_rt.ts …`). Prints a table and splices it into
 * bench/RESULTS.md as section 8 (unless `--no-write`).
 *
 * The controller (the same on both sides): Widgets (bench.denokube.dev/v1, a CRD with a status
 * subresource) as primaries with a generation-changed predicate; each reconcile reads the Widget
 * from the cache, applies one owned ConfigMap with server-side apply and merge-patches the
 * Widget's status; both own ConfigMaps; `concurrency` workers (MaxConcurrentReconciles); no
 * client-side rate limit on either side. Each contender gets its own namespace seeded with `n`
 * Widgets, so both start from the same state. From the moment a contender's caches have synced,
 * the driver edits `edits` random Widgets (one every 10 ms, `spec.editedAt` = the time of the
 * edit) while the initial wave runs; the contender reports, per edit, the time from the edit to
 * the end of the reconcile that saw it.
 *
 * Measured per run: start (process start) to every Widget reconciled once, edit latency p50/p99
 * during the wave, peak RSS (VmHWM), heap at the end, and the kube-apiserver's CPU during the
 * run (from /proc). The runs alternate (kube, controller-runtime, kube, …).
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import { Api, Client, conditions, Config, type KubeObject, waitFor } from "../mod.ts";
import { apiServerPid, processCpuMs } from "./cluster.ts";

const here = new URL(".", import.meta.url);
const args = Deno.args;
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const n = Number(flag("n", "10000"));
const edits = Number(flag("edits", "100"));
const churnRate = Number(flag("churn-rate", "0"));
const churnSeconds = Number(flag("churn-seconds", "60"));
const churnTotal = Math.min(Math.round(churnRate * churnSeconds), Math.max(0, n - edits));
const concurrency = Number(flag("concurrency", "4"));
const runs = Number(flag("runs", "1"));
const write = !args.includes("--no-write");
const log = (message: string) => console.error(`bench controller-rt: ${message}`);

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

interface RunResult {
  churnEdits: number;
  churnP50Ms: number;
  churnP99Ms: number;
  churnLastMs: number;
  churnStartMs: number;
  waveMs: number;
  reconciles: number;
  edits: number;
  editP50Ms: number;
  editP99Ms: number;
  peakRssKiB: number;
  heapBytes: number;
  apiServerCpuMs: number;
  syncMs: number;
  load: string;
}

/** Builds bench/controllerruntime into the cache (once per version of its sources). */
async function buildControllerRuntime(): Promise<string> {
  const dir = new URL("controllerruntime/", here);
  let digest = "";
  for (const file of ["go.mod", "go.sum", "main.go"]) {
    const bytes = await Deno.readFile(new URL(file, dir));
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    digest += [...hash.slice(0, 4)].map((b) => b.toString(16).padStart(2, "0"))
      .join("");
  }
  const cache = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/denokube/bench`;
  const bin = `${cache}/controllerruntime-${digest}`;
  if (await Deno.stat(bin).then(() => true, () => false)) return bin;
  await Deno.mkdir(cache, { recursive: true });
  const started = performance.now();
  const out = await new Deno.Command("go", {
    args: ["build", "-o", `${bin}.tmp`, "."],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `go build of bench/controllerruntime failed:\n${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  await Deno.rename(`${bin}.tmp`, bin);
  log(
    `built controller-runtime program in ${Math.round((performance.now() - started) / 1000)} s`,
  );
  return bin;
}

async function seed(client: Client, ns: string): Promise<void> {
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const widgets = Api.customResource("widgets").group("bench.denokube.dev")
    .version("v1")
    .within(ns);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      await client.create(widgets, {
        metadata: { name: `w-${String(i).padStart(6, "0")}` },
        spec: { value: `v${i}` },
      } as never);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  log(
    `seeded ${n} Widgets in ${ns} in ${Math.round(performance.now() - started)} ms`,
  );
}

/** Runs one contender process; edits Widgets once it reports SYNCED. */
async function runOne(
  label: string,
  command: string,
  commandArgs: string[],
  client: Client,
  ns: string,
  apiPid: number,
): Promise<RunResult> {
  const widgets = Api.customResource<{ value: string; editedAt?: number }>(
    "widgets",
  )
    .group("bench.denokube.dev").version("v1").within(ns);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3)
    .join(" ");
  const cpuBefore = await processCpuMs(apiPid);
  const child = new Deno.Command(command, {
    args: commandArgs,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let syncMs = NaN;
  let result: Record<string, number> | undefined;
  const editing: Promise<void>[] = [];
  // Distinct Widgets for every edit: two edits of one Widget could be seen by one reconcile.
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const churnStart = { ms: 0 };
  const decoder = new TextDecoderStream();
  const lines = child.stdout.pipeThrough(decoder);
  let buffer = "";
  for await (const chunk of lines) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith("SYNCED ")) {
        syncMs = Number(line.slice(7));
        editing.push(
          editDuringWave(client, widgets as unknown as Api<KubeObject>, order.slice(0, edits)),
        );
      } else if (line.startsWith("WAVE ") && churnTotal > 0) {
        editing.push(
          churnAfterWave(
            client,
            widgets as unknown as Api<KubeObject>,
            order.slice(edits, edits + churnTotal),
            churnStart,
          ),
        );
      } else if (line.startsWith("RESULT ")) {
        result = JSON.parse(line.slice(7));
      }
    }
  }
  const status = await child.status;
  await Promise.all(editing);
  const cpuAfter = await processCpuMs(apiPid);
  if (!result) {
    throw new Error(
      `${label} exited ${status.code} without a RESULT:\n${(await stderr).slice(-3000)}`,
    );
  }
  await stderr;
  return {
    ...(result as unknown as RunResult),
    apiServerCpuMs: cpuAfter - cpuBefore,
    syncMs,
    load,
    churnStartMs: churnStart.ms,
  };
}

/** Steady churn after the wave: `churnRate` edits per second, each of another Widget. */
async function churnAfterWave(
  client: Client,
  widgets: Api<KubeObject>,
  picked: number[],
  start: { ms: number },
): Promise<void> {
  start.ms = Date.now();
  const pending: Promise<unknown>[] = [];
  for (let k = 0; k < picked.length; k++) {
    const due = start.ms + (k * 1000) / churnRate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const i = picked[k];
    pending.push(client.patch(widgets, `w-${String(i).padStart(6, "0")}`, {
      spec: { value: `churn-${i}`, editedAt: Date.now(), phase: "churn" },
    }, { type: "merge" }));
  }
  await Promise.all(pending);
}

async function editDuringWave(
  client: Client,
  widgets: Api<KubeObject>,
  picked: number[],
): Promise<void> {
  for (const i of picked) {
    const name = `w-${String(i).padStart(6, "0")}`;
    await client.patch(widgets, name, {
      spec: { value: `edited-${i}`, editedAt: Date.now() },
    }, {
      type: "merge",
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** Runs the comparison (see the module documentation). */
export async function main(): Promise<void> {
  const { startControlPlane } = await import("../testenv/control_plane.ts");
  const bin = await buildControllerRuntime();
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
  const results: Record<string, RunResult[]> = {
    kube: [],
    "controller-runtime": [],
  };
  for (let r = 0; r < runs; r++) {
    for (const label of ["kube", "controller-runtime"] as const) {
      const ns = `ctl-${label === "kube" ? "kube" : "crt"}-${r}`;
      await seed(client, ns);
      const common = [
        "--kubeconfig",
        cp.kubeconfigPath,
        "--namespace",
        ns,
        "--n",
        String(n),
      ];
      const more = [
        "--edits",
        String(Math.min(edits, n) + churnTotal),
        "--concurrency",
        String(concurrency),
      ];
      log(`run ${r + 1}/${runs}: ${label}`);
      const result = label === "kube"
        ? await runOne(
          label,
          Deno.execPath(),
          [
            "run",
            "-A",
            new URL("controller_rt_kube.ts", here).pathname,
            ...common,
            ...more,
          ],
          client,
          ns,
          apiPid,
        )
        : await runOne(
          label,
          bin,
          [
            "--config",
            cp.kubeconfigPath,
            ...common.slice(2),
            ...more,
          ],
          client,
          ns,
          apiPid,
        );
      log(`${label}: ${JSON.stringify(result)}`);
      results[label].push(result);
      // Free the apiserver and etcd of this namespace's objects before the next run.
      await client.delete(Api.v1Namespace(), ns).catch(() => {});
    }
  }
  const row = (label: string) => {
    const rs = results[label];
    const m = (f: (r: RunResult) => number) => median(rs.map(f));
    return [
      label,
      `${(m((r) => r.waveMs) / 1000).toFixed(1)} s`,
      `${Math.round(n / (m((r) => r.waveMs - r.syncMs) / 1000))}/s`,
      `${m((r) => r.editP50Ms).toFixed(0)} / ${m((r) => r.editP99Ms).toFixed(0)} ms`,
      `${(m((r) => r.peakRssKiB) / 1024).toFixed(0)} MiB`,
      `${(m((r) => r.heapBytes) / 1048576).toFixed(0)} MiB`,
      `${(m((r) => r.apiServerCpuMs) / 1000).toFixed(1)} s`,
      String(m((r) => r.reconciles)),
      rs.map((r) => r.load).join("; "),
    ];
  };
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
  const lines = [
    "## 8. The controller runtime side by side with controller-runtime on the real control plane",
    "",
    `\`bench/run.ts --only controller-rt\` (bench/controller_rt.ts): ${n.toLocaleString("en")} ` +
    `Widgets (a CRD with status), concurrency ${concurrency}, controller-runtime v0.25.3 ` +
    `(default priority queue), kube-apiserver + etcd from testenv on loopback; median of ${runs} ` +
    `run(s) each, alternated. "start" is the process start (Deno or Go runtime start included); ` +
    "Widgets/s counts the first wave after the caches synced; each Widget is reconciled twice " +
    "on both sides (the owned ConfigMap's creation queues its owner again). The machine was " +
    "shared with other work (load in the last column): the figures understate both sides.",
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    `| ${row("kube").join(" | ")} |`,
    `| ${row("controller-runtime").join(" | ")} |`,
    "",
    ...(churnTotal > 0
      ? [
        `Steady churn after the wave: ${churnRate} edits/s for ${churnSeconds} s ` +
        `(${churnTotal} edits, each of another Widget): reconciled edits per second (from the ` +
        "first churn edit to the last churn reconcile) and the latency from edit to reconcile.",
        "",
        "| controller | offered | reconciled | edit → reconciled p50 / p99 |",
        "| --- | --- | --- | --- |",
        ...["kube", "controller-runtime"].map((label) => {
          const rs = results[label];
          const m = (f: (r: RunResult) => number) => median(rs.map(f));
          const rate = m((r) => r.churnEdits / ((r.churnLastMs - r.churnStartMs) / 1000));
          return `| ${label} | ${churnRate}/s | ${rate.toFixed(1)}/s | ${
            m((r) => r.churnP50Ms).toFixed(0)
          } / ${m((r) => r.churnP99Ms).toFixed(0)} ms |`;
        }),
      ]
      : []),
    "",
  ];
  console.log(lines.join("\n"));
  if (write) {
    const path = new URL("RESULTS.md", here);
    const old = await Deno.readTextFile(path).catch(() => "");
    const at = old.indexOf("## 8. The controller runtime side by side");
    const next = at < 0 ? -1 : old.indexOf("\n## ", at + 1);
    const section = lines.join("\n");
    const updated = at < 0
      ? `${old.trimEnd()}\n\n${section}`
      : `${old.slice(0, at)}${section}${next < 0 ? "" : old.slice(next + 1)}`;
    await Deno.writeTextFile(path, updated);
    await new Deno.Command(Deno.execPath(), {
      args: [
        "fmt",
        "--quiet",
        "--config",
        new URL("../deno.json", here).pathname,
        path.pathname,
      ],
    }).output();
    log(`wrote section 8 of ${path.pathname}`);
  }
}

if (import.meta.main) await main();
