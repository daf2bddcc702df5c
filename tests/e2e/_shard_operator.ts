// An operator process for the sharding e2e test and benchmark: a Manager with `sharding` on the
// Leases `shard-e2e-*`, one sharded Controller on the ConfigMaps labelled `app=shard-e2e` of a
// namespace. Its reconcile waits `reconcileMs` (I/O: an external system), then, when the
// ConfigMap's `data.want` is not yet in its annotation `shard-e2e/done`, merge-patches it.
//
// stdout: JSON lines. {"event":"ready"}, then per finished reconcile
// {"event":"run", key, start, end, sent, wrote, ok, fenced} (Date.now() times; `sent` = when its
// patch was sent, `wrote` = when it was answered, `ok` = it finished without an error, `fenced` = a write was refused because the
// shard was no longer proven held), and
// {"event":"shards", held, members} whenever the set of held shards changed; {"event":"exit"}.
//
// Usage: deno run -A tests/e2e/_shard_operator.ts <kubeconfig> <namespace> <identity> <shards>
//          [reconcileMs] [concurrency]

import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { Controller } from "../../runtime/controller.ts";
import { Manager, shutdownSignal } from "../../runtime/manager.ts";
import { ShardFencedError } from "../../runtime/sharding.ts";
import { systemClock } from "../../clock.ts";

const [
  kubeconfig,
  namespace,
  identity,
  shardsArg,
  reconcileArg,
  concurrencyArg,
] = Deno.args;
const shards = Number(shardsArg);
const reconcileMs = Number(reconcileArg ?? 20);
const say = (event: Record<string, unknown>) => console.log(JSON.stringify({ ...event, identity }));

const client = new Client(await Config.fromKubeconfig({ path: kubeconfig }), {
  maxRetries: 0,
});
const configmaps = Api.v1ConfigMap().within(namespace);
const manager = new Manager(client, {
  sharding: {
    namespace,
    name: "shard-e2e",
    shards,
    identity,
    // Short timings for the e2e test; SHARD_OPERATOR_TIMING=default: the library's (15/10/2 s).
    ...(Deno.env.get("SHARD_OPERATOR_TIMING") === "default"
      ? {}
      : { leaseDurationMs: 4_000, renewDeadlineMs: 2_500, retryPeriodMs: 500 }),
    drainTimeoutMs: 5_000,
  },
  gracePeriodMs: 5_000,
});
const controller = new Controller(client, configmaps, async (cm, ctx) => {
  const start = Date.now();
  let ok = false;
  let fenced = false;
  let sent: number | undefined;
  let wrote: number | undefined;
  try {
    await systemClock.sleep(reconcileMs, ctx.signal);
    const want = cm.data?.want ?? "";
    if (cm.metadata?.annotations?.["shard-e2e/done"] !== want) {
      sent = Date.now();
      await ctx.client.patch(configmaps, cm.metadata!.name!, {
        metadata: {
          annotations: { "shard-e2e/done": want, "shard-e2e/by": identity },
        },
      }, { type: "merge", signal: ctx.signal });
      wrote = Date.now();
    }
    ok = true;
  } catch (e) {
    fenced = e instanceof ShardFencedError;
    throw e;
  } finally {
    say({
      event: "run",
      key: ctx.key,
      start,
      end: Date.now(),
      sent,
      wrote,
      ok,
      fenced,
    });
  }
}, {
  name: "shard-e2e",
  labelSelector: "app=shard-e2e",
  concurrency: Number(concurrencyArg ?? 8),
});
manager.add(controller);

let last = "";
const report = setInterval(() => {
  const text = manager.registry.expose();
  const held = [...text.matchAll(/kube_sharding_keys\{[^}]*shard="(\d+)"\}/g)]
    .map((m) => Number(m[1])).sort((a, b) => a - b);
  const members = Number(
    /kube_sharding_members\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0,
  );
  const mode = /kube_sharding_filter_mode\{[^}]*mode="(\w+)"\} 1/.exec(text)
    ?.[1];
  const handovers: Record<string, number> = {};
  for (
    const m of text.matchAll(
      /kube_sharding_handovers_total\{[^}]*event="(\w+)"\} (\d+)/g,
    )
  ) {
    handovers[m[1]] = Number(m[2]);
  }
  const relists = [
    ...text.matchAll(/kube_reflector_relists_total\{[^}]*\} (\d+)/g),
  ].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  const now = JSON.stringify({ held, members, mode, handovers });
  if (now !== last) {
    last = now;
    say({
      event: "shards",
      held,
      members,
      mode,
      handovers,
      relists,
      at: Date.now(),
    });
  }
}, 100);
say({ event: "ready" });
try {
  await manager.run(shutdownSignal());
  say({ event: "exit" });
} finally {
  clearInterval(report);
  client.close();
}
