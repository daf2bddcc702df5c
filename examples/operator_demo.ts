// deno task demo:operator [--fast]      (= deno run --allow-all examples/operator_demo.ts)
//
// The Foo operator in production dress, with nothing to set up: starts the real control plane
// (kube-apiserver, etcd, controller-manager, scheduler and KWOK nodes, built by testenv/build.ts),
// runs three replicas of examples/deploy/foo_operator.ts as separate processes with leader
// election on one Lease, and shows who leads while it creates a Foo, stops the leader cleanly
// (SIGTERM: the lease is handed over at once) and then kills the next one (SIGKILL: a standby
// takes over once the lease has expired by its own clock).
//
//   --fast   shorter lease timings (lease 5 s, renew deadline 3 s, retry 0.5 s) instead of
//            client-go's (15 s, 10 s, 2 s)
//
// Each replica serves /healthz, /readyz and /metrics on a loopback port (printed at start).

import { parseArgs } from "node:util";
import { Api, Client, Config } from "../mod.ts";
import { startControlPlane } from "../testenv/control_plane.ts";
import { FOOS } from "./foo_operator.ts";

const { values: flags } = parseArgs({
  args: Deno.args.filter((arg) => arg !== "--"),
  options: { fast: { type: "boolean", default: false } },
});

const started = Date.now();
const stamp = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const say = (line: string) => console.log(`${stamp()}  ${line}`);

say("starting the control plane (the first run builds it from source: several minutes)…");
await using cp = await startControlPlane({ cluster: "full" });
say(`control plane ready at ${cp.server}`);
const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
const crd = new URL("./foo.yaml", import.meta.url).pathname;
const apply = await new Deno.Command("kubectl", {
  args: ["--kubeconfig", cp.kubeconfigPath, "apply", "-f", crd],
  stdout: "null",
}).output();
if (!apply.success) throw new Error("kubectl apply -f examples/foo.yaml failed");
await new Deno.Command("kubectl", {
  args: [
    "--kubeconfig",
    cp.kubeconfigPath,
    "wait",
    "--for=condition=established",
    "crd/foos.clux.dev",
  ],
  stdout: "null",
}).output();

interface Replica {
  name: string;
  port: number;
  child: Deno.ChildProcess;
  alive: boolean;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const timings: Record<string, string> = flags.fast
  ? { LEASE_DURATION_MS: "5000", RENEW_DEADLINE_MS: "3000", RETRY_PERIOD_MS: "500" }
  : {};
const replicas: Replica[] = ["replica-a", "replica-b", "replica-c"].map((name) => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./deploy/foo_operator.ts", import.meta.url).pathname],
    env: {
      KUBECONFIG: cp.kubeconfigPath,
      POD_NAME: name,
      POD_NAMESPACE: "default",
      METRICS_PORT: String(port),
      METRICS_ADDRESS: "127.0.0.1",
      ...timings,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const replica = { name, port, child, alive: true };
  child.status.then(() => replica.alive = false);
  say(`started ${name} (pid ${child.pid}), endpoints on http://127.0.0.1:${port}/metrics`);
  return replica;
});

async function metric(replica: Replica, pattern: RegExp): Promise<string> {
  if (!replica.alive) return "-";
  try {
    const text = await (await fetch(`http://127.0.0.1:${replica.port}/metrics`)).text();
    return text.match(pattern)?.[1] ?? "0";
  } catch {
    return "?";
  }
}

const leases = Api.coordinationV1Lease().within("default");
async function holder(): Promise<{ holder: string; transitions: number }> {
  try {
    const lease = await client.get(leases, "foo-operator");
    return {
      holder: lease.spec?.holderIdentity ?? "",
      transitions: lease.spec?.leaseTransitions ?? 0,
    };
  } catch {
    return { holder: "", transitions: 0 };
  }
}

async function show(): Promise<void> {
  const lease = await holder();
  const rows = await Promise.all(replicas.map(async (r) => {
    const leading = await metric(r, /^leader_election_master_status\{[^}]*\} (\d+)$/m);
    const reconciles = await metric(
      r,
      /^controller_runtime_reconcile_total\{controller="foo-operator",result="success"\} (\d+)$/m,
    );
    const state = !r.alive ? "stopped" : leading === "1" ? "LEADER" : "standby";
    return `${r.name}: ${state.padEnd(7)} reconciles ${reconciles}`;
  }));
  let foo = "";
  try {
    const baz = await client.get(FOOS.within("default"), "baz");
    const ready = baz.status?.conditions?.find((c) => c.type === "Ready");
    foo = `  | foo/baz: ${baz.spec.replicas} replicas, Ready=${ready?.status ?? "?"} (${
      ready?.message ?? ""
    })`;
  } catch {
    // not created yet
  }
  const line = `lease holder ${lease.holder || "(none)"} #${lease.transitions} | ${
    rows.join(" | ")
  }${foo}`;
  if (line !== lastLine) say(line); // only changes
  lastLine = line;
}
let lastLine = "";

async function waitForLeader(not?: string): Promise<{ name: string; ms: number }> {
  const from = Date.now();
  for (;;) {
    const { holder: h } = await holder();
    if (h && h !== not) return { name: h, ms: Date.now() - from };
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ticker = setInterval(() => show().catch(() => {}), 1_000);
try {
  const first = await waitForLeader();
  say(`${first.name} leads`);
  await client.create(FOOS.within("default"), {
    metadata: { name: "baz" },
    spec: { name: "baz", info: "demo", replicas: 2 },
  });
  say("created foo/baz with 2 replicas: the leader applies a Deployment, KWOK runs its pods");
  await new Promise((r) => setTimeout(r, 8_000));

  const a = replicas.find((r) => r.name === first.name)!;
  say(`SIGTERM ${a.name}: it stops its controller, then releases the lease`);
  const termAt = Date.now();
  a.child.kill("SIGTERM");
  const second = await waitForLeader(a.name);
  say(`${second.name} leads, ${Date.now() - termAt} ms after the SIGTERM`);
  await client.patch(FOOS.within("default"), "baz", { spec: { replicas: 3 } });
  say("scaled foo/baz to 3: the new leader reconciles it");
  await new Promise((r) => setTimeout(r, 6_000));

  const b = replicas.find((r) => r.name === second.name)!;
  say(`SIGKILL ${b.name}: no release; the last standby waits for the lease to expire`);
  const killAt = Date.now();
  b.child.kill("SIGKILL");
  const third = await waitForLeader(b.name);
  say(`${third.name} leads, ${Date.now() - killAt} ms after the SIGKILL`);
  await new Promise((r) => setTimeout(r, 5_000));
} finally {
  clearInterval(ticker);
  for (const r of replicas) {
    if (r.alive) r.child.kill("SIGTERM");
    await r.child.status;
  }
  client.close();
}
say("done");
