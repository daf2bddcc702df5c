// An operator process for the leader-election e2e test: a Manager with leader election on the
// Lease `lease-e2e`, whose one leader-only task appends "identity#transition@ms" to the ConfigMap
// `ledger` (read, then update with its resourceVersion) every 200 ms. It prints JSON lines on
// stdout: {"event":"start"|"stop"|"exit", identity, transition, at} with at = Date.now(); "stop"
// also carries the reason its work was stopped, and {"event":"leader", leader} reports each change
// of the holder this replica observed ("" when the lease was released).
//
// Usage: deno run -A tests/e2e/_lease_operator.ts <kubeconfig> <namespace> <identity>

import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { isConflict } from "../../errors.ts";
import { Manager, shutdownSignal } from "../../runtime/manager.ts";
import { systemClock } from "../../clock.ts";

const [kubeconfig, namespace, identity] = Deno.args;
const say = (event: Record<string, unknown>) =>
  console.log(JSON.stringify({ ...event, identity, at: Date.now() }));

const client = new Client(await Config.fromKubeconfig({ path: kubeconfig }), { maxRetries: 0 });
const ledger = Api.v1ConfigMap().within(namespace);
const manager = new Manager(client, {
  leaderElection: {
    namespace,
    name: "lease-e2e",
    identity,
    leaseDurationMs: 5_000,
    renewDeadlineMs: 3_000,
    retryPeriodMs: 500,
  },
  gracePeriodMs: 5_000,
});
manager.add({
  name: "ledger-writer",
  async run(signal) {
    const transition = manager.leadership?.transitions;
    say({ event: "start", transition });
    try {
      while (!signal.aborted) {
        try {
          const cm = await client.get(ledger, "ledger", { signal });
          const line = `${identity}#${transition}@${Date.now()}\n`;
          await client.replace(ledger, { ...cm, data: { log: (cm.data?.log ?? "") + line } }, {
            signal,
          });
        } catch (e) {
          if (signal.aborted) break;
          if (!isConflict(e)) say({ event: "error", error: String(e) });
        }
        await systemClock.sleep(200, signal).catch(() => {});
      }
    } finally {
      const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
      say({ event: "stop", transition, reason });
    }
  },
});
manager.elector!.onLeaderChange((leader) => say({ event: "leader", leader }));
say({ event: "ready" });
try {
  await manager.run(shutdownSignal());
  say({ event: "exit" });
} finally {
  client.close();
}
