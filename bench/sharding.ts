/**
 * Sharded controllers on the real kube-apiserver (KEP-5866), one run per scenario, alternated:
 * `deno run -A bench/sharding.ts [--objects 3000] [--runs 2] [--reconcile-ms 20]
 * [--concurrency 4]`. Not part of `deno task test` (it takes minutes).
 *
 * For each scenario, fresh replica processes (tests/e2e/_shard_operator.ts, 12 shards) run a
 * controller over N ConfigMaps (1 KiB of data each) whose reconcile waits `reconcile-ms` (I/O)
 * and then patches the object; each replica reaches the API server through its own loopback TCP
 * proxy that counts bytes. Every object starts unreconciled; `allReconciledMs` runs from the
 * spawn of the replica processes (start, lease rounds, hand-overs, cache syncs included) until
 * each object carries its reconciled value, as the bench's own Reflector sees it. Bytes are what
 * each replica received from the server during the run.
 *
 * The replicas use the library's lease timings (15 s lease, 10 s renew deadline, 2 s retry).
 *
 * Scenarios: 1 replica and 3 replicas with the ShardedListAndWatch gate on (server-side
 * selectors), 3 replicas with the gate off (one unsharded watch per replica, hashed client-side).
 *
 * @module
 */

import { Api } from "../api.ts";
import { Reflector } from "../reflector.ts";
import { Client } from "../client.ts";
import { Config } from "../config.ts";
import { startControlPlane } from "../testenv/control_plane.ts";
import { TcpProxy } from "../tests/e2e/_tcp_proxy.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const OBJECTS = flag("--objects", 3_000);
const RUNS = flag("--runs", 2);
const RECONCILE_MS = flag("--reconcile-ms", 20);
const CONCURRENCY = flag("--concurrency", 4);
const SHARDS = 12;

interface Result {
  scenario: string;
  allReconciledMs: number;
  bytesPerReplica: number[];
  /** Shard lease events per replica at the end (acquired, released, lost, abandoned). */
  handovers: Record<string, number>[];
}

async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class Replica {
  held: number[] = [];
  handovers: Record<string, number> = {};
  ready = false;
  proxy: TcpProxy;
  child!: Deno.ChildProcess;
  #reading!: Promise<void>;
  #kubeconfig = "";
  constructor(target: { hostname: string; port: number }) {
    this.proxy = new TcpProxy(target);
  }
  async start(kubeconfig: string, namespace: string, identity: string) {
    const config = JSON.parse(await Deno.readTextFile(kubeconfig));
    config.clusters[0].cluster.server = `https://127.0.0.1:${this.proxy.port}`;
    this.#kubeconfig = await Deno.makeTempFile({
      prefix: `kubeconfig-${identity}-`,
    });
    await Deno.writeTextFile(this.#kubeconfig, JSON.stringify(config));
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../tests/e2e/_shard_operator.ts", import.meta.url).pathname,
        this.#kubeconfig,
        namespace,
        identity,
        String(SHARDS),
        String(RECONCILE_MS),
        String(CONCURRENCY),
      ],
      stdout: "piped",
      stderr: "inherit",
      env: { SHARD_OPERATOR_TIMING: "default" },
    }).spawn();
    this.#reading = (async () => {
      let rest = "";
      for await (
        const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          const event = JSON.parse(line);
          if (event.event === "shards") {
            this.held = event.held;
            this.handovers = event.handovers;
          }
          if (event.event === "ready") this.ready = true;
        }
      }
    })();
  }
  async stop() {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // exited
    }
    await this.child.status;
    await this.#reading;
    await this.proxy.close();
    await Deno.remove(this.#kubeconfig).catch(() => {});
  }
}

async function scenario(
  client: Client,
  kubeconfig: string,
  server: string,
  replicas: number,
  name: string,
  round: number,
): Promise<Result> {
  const namespace = `shard-bench-${round}-${replicas}-${crypto.randomUUID().slice(0, 6)}`;
  await client.create(Api.v1Namespace(), { metadata: { name: namespace } });
  const configmaps = Api.v1ConfigMap().within(namespace);
  const payload = "x".repeat(1024);
  for (let i = 0; i < OBJECTS; i += 50) {
    await Promise.all(
      Array.from(
        { length: Math.min(50, OBJECTS - i) },
        (_, j) =>
          client.create(configmaps, {
            metadata: { name: `obj-${i + j}`, labels: { app: "shard-e2e" } },
            data: { want: "1", payload },
          }),
      ),
    );
  }
  const url = new URL(server);
  const target = { hostname: url.hostname, port: Number(url.port) };
  const set = Array.from({ length: replicas }, () => new Replica(target));
  const stopWatch = new AbortController();
  // The bench's own view of the objects (its bytes are not counted): a Reflector, which
  // resumes or relists when its watch breaks on a loaded machine.
  const view = new Reflector(client, configmaps, {
    labelSelector: "app=shard-e2e",
  });
  const watching = view.run({ signal: stopWatch.signal }).catch(() => {});
  await view.ready;
  const converged = (want: string) => {
    const objects = view.read();
    if (objects.size !== OBJECTS) return false;
    for (const o of objects.values()) {
      if (o.metadata?.annotations?.["shard-e2e/done"] !== want) return false;
    }
    return true;
  };
  try {
    // Cold start: every object waits for its first reconcile; the clock runs from the spawn of
    // the replicas (process start, lease rounds, hand-overs and cache syncs included).
    const t0 = performance.now();
    await Promise.all(
      set.map((r, i) => r.start(kubeconfig, namespace, `${name}-${i}`)),
    );
    let shown = Date.now();
    await waitUntil(
      () => {
        if (Date.now() - shown > 10_000) {
          shown = Date.now();
          const left = [...view.read().values()].filter((o) =>
            o.metadata?.annotations?.["shard-e2e/done"] !== "1"
          ).length;
          console.error(`${name}: ${left} objects not reconciled yet`);
        }
        return converged("1");
      },
      600_000,
      "every object reconciled",
    );
    const allReconciledMs = Math.round(performance.now() - t0);
    return {
      scenario: name,
      allReconciledMs,
      bytesPerReplica: set.map((r) => r.proxy.bytesDown),
      handovers: set.map((r) => r.handovers),
    };
  } finally {
    await Promise.all(set.map((r) => r.stop()));
    stopWatch.abort();
    await watching;
    await client.delete(Api.v1Namespace(), namespace).catch(() => {});
  }
}

const results: Result[] = [];
for (const gate of [true, false]) {
  await using cp = await startControlPlane({
    build: false,
    featureGates: gate ? { ShardedListAndWatch: true } : undefined,
    apiServerFlags: [
      "--max-requests-inflight=1000",
      "--max-mutating-requests-inflight=500",
    ],
  });
  const client = new Client(
    await Config.fromKubeconfig({ path: cp.kubeconfigPath }),
  );
  try {
    for (let round = 0; round < RUNS; round++) {
      const plans: [number, string][] = gate
        ? [[1, "1 replica, gate on"], [3, "3 replicas, gate on"]]
        : [[3, "3 replicas, gate off"]];
      for (const [replicas, name] of plans) {
        const result = await scenario(
          client,
          cp.kubeconfigPath,
          cp.server,
          replicas,
          name,
          round,
        );
        console.log(JSON.stringify(result));
        results.push(result);
      }
    }
  } finally {
    client.close();
  }
}
const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).trim();
console.log(`\nload average at the end: ${load}`);
for (const name of [...new Set(results.map((r) => r.scenario))]) {
  const rs = results.filter((r) => r.scenario === name);
  const ms = rs.map((r) => r.allReconciledMs);
  const bytes = rs.flatMap((r) => r.bytesPerReplica);
  console.log(
    `${name}: allReconciledMs ${ms.join(", ")} (median ${
      ms.sort((a, b) => a - b)[ms.length >> 1]
    }); ` +
      `bytes received per replica (MB): ${bytes.map((b) => (b / 1e6).toFixed(2)).join(", ")}`,
  );
}
