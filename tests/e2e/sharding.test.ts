// Sharded controllers against the real kube-apiserver (KEP-5866), with the ShardedListAndWatch
// feature gate on and off:
//
// 1. The server's facts: with the gate, a list with `shardSelector` answers only objects in range
//    and echoes the selector in `metadata.shardInfo`, and a watch with it delivers only objects in
//    range; without the gate the parameter is ignored (every object, no shardInfo).
// 2. Replica processes (tests/e2e/_shard_operator.ts, separate `deno` subprocesses) on 12 shards:
//    three start, one is SIGKILLed, a fourth joins, one gets SIGTERM, one is frozen with SIGSTOP
//    past its lease and resumed. In each phase the test changes every object and waits until
//    each has converged (read back as kubectl prints it). A ledger of every reconcile (key,
//    replica, start, time of its write) must show no key written by two replicas at once.
//
// Lease settings (short, to keep CI short): lease 4 s, renew deadline 2.5 s, retry 0.5 s. Times are
// printed for the notes and only checked against generous bounds (a loaded 2-core machine).

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { shardOf, shardSelectorOf } from "../../runtime/sharding.ts";
import { e2eTest, eventually, kubectl, uniqueNamespace } from "./_harness.ts";

const SHARDS = 12;
const OBJECTS = 120;
const LEASE_MS = 4_000;
const RETRY_MS = 500;
const GENEROUS_MS = 10_000;

interface RunEvent {
  event: "run";
  identity: string;
  key: string;
  start: number;
  end: number;
  /** When its patch was sent (the write may land until `wrote`). */
  sent?: number;
  wrote?: number;
  ok: boolean;
  fenced: boolean;
}

interface ShardsEvent {
  event: "shards";
  identity: string;
  held: number[];
  members: number;
  mode?: string;
  at: number;
}

class Replica {
  readonly runs: RunEvent[] = [];
  readonly shards: ShardsEvent[] = [];
  ready = false;
  exited = false;
  child!: Deno.ChildProcess;
  #reading: Promise<void> = Promise.resolve();
  constructor(readonly identity: string) {}

  start(kubeconfig: string, namespace: string) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./_shard_operator.ts", import.meta.url).pathname,
        kubeconfig,
        namespace,
        this.identity,
        String(SHARDS),
        "20",
      ],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          const event = JSON.parse(line);
          if (event.event === "run") this.runs.push(event);
          else if (event.event === "shards") this.shards.push(event);
          else if (event.event === "ready") this.ready = true;
          else if (event.event === "exit") this.exited = true;
        }
      }
    })();
  }

  /** The shards held at the last report. */
  get held(): number[] {
    return this.shards.at(-1)?.held ?? [];
  }

  kill(signal: Deno.Signal): number {
    const at = Date.now();
    this.child.kill(signal);
    return at;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGCONT");
      this.child.kill("SIGTERM");
    } catch {
      // exited
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // exited
      }
    }, 20_000);
    await this.child.status;
    clearTimeout(timer);
    await this.#reading;
  }
}

/** Changes `data.want` of every object, then waits until every one carries it as `done`. */
async function phase(client: Client, kubeconfig: string, namespace: string, want: string) {
  const configmaps = Api.v1ConfigMap().within(namespace);
  const started = Date.now();
  await Promise.all(
    Array.from(
      { length: OBJECTS },
      (_, i) => client.patch(configmaps, `obj-${i}`, { data: { want } }, { type: "merge" }),
    ),
  );
  await eventually(`every object converged to want=${want}`, async () => {
    const list = JSON.parse(
      await kubectl(
        kubeconfig,
        "get",
        "configmaps",
        "-n",
        namespace,
        "-l",
        "app=shard-e2e",
        "-o",
        "json",
      ),
    ) as { items: KubeObject[] };
    const behind = list.items.filter((o) => o.metadata?.annotations?.["shard-e2e/done"] !== want)
      .map((o) => o.metadata?.name);
    assert.equal(list.items.length, OBJECTS);
    assert.deepEqual(behind, []);
  }, 60_000);
  return Date.now() - started;
}

/** No key written by two replicas within one another's run (start → write answered). */
function assertLedger(replicas: Replica[]) {
  const byKey = new Map<string, RunEvent[]>();
  for (const r of replicas) {
    for (const run of r.runs) {
      if (run.wrote === undefined) continue; // wrote nothing: did not act
      byKey.set(run.key, [...(byKey.get(run.key) ?? []), run]);
    }
  }
  let checked = 0;
  for (const [key, runs] of byKey) {
    runs.sort((a, b) => a.start - b.start);
    for (let i = 1; i < runs.length; i++) {
      const before = runs[i - 1];
      const run = runs[i];
      checked++;
      if (before.identity === run.identity) continue;
      assert.ok(
        before.wrote! <= run.start,
        `${key}: ${before.identity} acted [${before.start}, ${before.wrote}] while ${run.identity} acted [${run.start}, ${run.wrote}]`,
      );
    }
  }
  return checked;
}

async function serverFacts(client: Client, namespace: string, gate: boolean) {
  const configmaps = Api.v1ConfigMap().within(namespace);
  const selector = shardSelectorOf([0, 1, 2, 3, 4, 5], SHARDS); // the first half
  const list = await client.list(configmaps, {
    labelSelector: "app=shard-e2e",
    shardSelector: selector,
  });
  const info = (list.metadata as { shardInfo?: { selector?: string } }).shardInfo;
  const inRange = list.items.filter((o) => shardOf(o, SHARDS) < 6).length;
  if (gate) {
    assert.equal(info?.selector, selector, "a sharded list echoes its selector");
    assert.equal(list.items.length, inRange, "a sharded list has only objects in range");
    assert.ok(inRange > OBJECTS / 4 && inRange < (OBJECTS * 3) / 4);
  } else {
    assert.equal(info, undefined, "without the gate: no shardInfo");
    assert.equal(list.items.length, OBJECTS, "without the gate: the selector is ignored");
  }
  // A watch from the list's version: a change of every object; only those in range arrive
  // with the gate.
  const seen = new Set<string>();
  const stop = new AbortController();
  const watching = (async () => {
    for await (
      const event of client.watch(configmaps, {
        resourceVersion: list.metadata?.resourceVersion,
        labelSelector: "app=shard-e2e",
        shardSelector: selector,
        signal: stop.signal,
        timeoutSeconds: 30,
      })
    ) {
      if (event.type === "MODIFIED") seen.add(event.object.metadata!.name!);
      if (event.type === "MODIFIED" && event.object.metadata?.name === `obj-${OBJECTS - 1}`) break;
      if (seen.size >= (gate ? inRange : OBJECTS)) break;
    }
  })().catch((e) => {
    if (!stop.signal.aborted) throw e;
  });
  for (let i = 0; i < OBJECTS; i++) {
    await client.patch(configmaps, `obj-${i}`, { metadata: { labels: { probe: "1" } } }, {
      type: "merge",
    });
  }
  await Promise.race([watching, new Promise((r) => setTimeout(r, 20_000))]);
  stop.abort();
  await watching;
  const names = new Map(list.items.map((o) => [o.metadata!.name!, o]));
  const outside = [...seen].filter((n) => shardOf(names.get(n)!, SHARDS) >= 6);
  if (gate) {
    assert.deepEqual(outside, [], "a sharded watch delivers only objects in range");
    assert.equal(seen.size, inRange);
  } else assert.ok(outside.length > 0, "without the gate the watch is not filtered");
}

for (const gate of [true, false]) {
  e2eTest(
    `sharding: replica processes on 12 shards, gate ShardedListAndWatch ${gate ? "on" : "off"}`,
    async ({ cp, client, t }) => {
      const namespace = uniqueNamespace("shard");
      await client.create(Api.v1Namespace(), { metadata: { name: namespace } });
      const configmaps = Api.v1ConfigMap().within(namespace);
      for (let i = 0; i < OBJECTS; i++) {
        await client.create(configmaps, {
          metadata: { name: `obj-${i}`, labels: { app: "shard-e2e" } },
          data: { want: "0" },
        });
      }
      await t.step("the server's facts", () => serverFacts(client, namespace, gate));

      const replicas: Replica[] = [];
      const spawn = (identity: string) => {
        const r = new Replica(identity);
        replicas.push(r);
        r.start(cp.kubeconfigPath, namespace);
        return r;
      };
      const live = () => replicas.filter((r) => !r.exited);
      const measured: Record<string, number> = {};
      /** Waits until the given replicas hold every shard, each `share` of them. */
      const balanced = async (set: Replica[], what: string, timeoutMs = 30_000) => {
        const started = Date.now();
        await eventually(what, () => {
          const held = set.flatMap((r) => r.held).sort((a, b) => a - b);
          assert.deepEqual(held, Array.from({ length: SHARDS }, (_, i) => i));
          const share = SHARDS / set.length;
          for (const r of set) {
            assert.ok(Math.abs(r.held.length - share) < 1, `${r.identity}: ${r.held}`);
          }
        }, timeoutMs);
        return Date.now() - started;
      };
      try {
        const [a, b, c] = ["r1", "r2", "r3"].map(spawn);
        await t.step("three replicas split the shards and converge every object", async () => {
          await balanced([a, b, c], "three replicas with 4 shards each", 60_000);
          for (const r of [a, b, c]) {
            assert.equal(r.shards.at(-1)?.mode, gate ? "server" : "client", r.identity);
          }
          measured.converge3 = await phase(client, cp.kubeconfigPath, namespace, "1");
        });
        await t.step(
          "SIGKILL of a replica: its shards are taken after their leases expire",
          async () => {
            const killedAt = a.kill("SIGKILL");
            await a.child.status;
            a.exited = true;
            await balanced([b, c], "two replicas hold every shard");
            measured.sigkill = Date.now() - killedAt;
            assert.ok(
              measured.sigkill <= LEASE_MS + 4 * RETRY_MS + GENEROUS_MS,
              `${measured.sigkill} ms`,
            );
            measured.convergeAfterKill = await phase(client, cp.kubeconfigPath, namespace, "2");
          },
        );
        const d = spawn("r4");
        await t.step("a joining replica gets its share by hand-over", async () => {
          const joinedAt = Date.now();
          await balanced([b, c, d], "three replicas again, one of them new");
          measured.join = Date.now() - joinedAt;
          measured.convergeAfterJoin = await phase(client, cp.kubeconfigPath, namespace, "3");
        });
        await t.step(
          "SIGTERM of a replica: it drains and hands over in about a retry period",
          async () => {
            const stoppedAt = b.kill("SIGTERM");
            await balanced([c, d], "two replicas after SIGTERM");
            measured.sigterm = Date.now() - stoppedAt;
            await b.child.status;
            assert.ok(b.exited, "r2 exited cleanly");
            assert.ok(
              measured.sigterm < LEASE_MS,
              `hand-over took ${measured.sigterm} ms: no expiry`,
            );
            measured.convergeAfterTerm = await phase(client, cp.kubeconfigPath, namespace, "4");
          },
        );
        await t.step(
          "SIGSTOP past the lease, then SIGCONT: the frozen replica's shards move; it rejoins",
          async () => {
            // Freeze it in the middle of its work: changes first, SIGSTOP once it finished one
            // reconcile of them (its other workers are busy then). d takes its shards after
            // their leases expire; its reconciles in flight must not write when it resumes.
            const changedAt = Date.now();
            const runsBefore = c.runs.length;
            const converging = phase(client, cp.kubeconfigPath, namespace, "5");
            await eventually("r3 reconciles the changes", () => {
              assert.ok(c.runs.slice(runsBefore).some((r) => r.start >= changedAt));
            }, 30_000);
            const frozenAt = c.kill("SIGSTOP");
            await eventually("d holds every shard", () => {
              assert.equal(d.held.length, SHARDS);
            }, 30_000);
            measured.sigstop = Date.now() - frozenAt;
            await converging;
            await new Promise((r) => setTimeout(r, 1_000));
            c.kill("SIGCONT");
            await balanced([c, d], "the resumed replica rejoined");
            const late = c.runs.filter((r) => r.start < frozenAt && r.end > frozenAt + LEASE_MS);
            measured.inFlightAtFreeze = late.length;
            measured.fencedAfterResume = late.filter((r) => r.fenced).length;
            // A run frozen before its write ends without writing (fenced or aborted). A patch
            // sent just before the freeze is answered only after SIGCONT, so the send time
            // tells when it wrote, not the answer's.
            for (const r of late) {
              assert.ok(r.wrote === undefined || r.sent! < frozenAt + 1_000, JSON.stringify(r));
            }
            measured.convergeAfterStop = await phase(client, cp.kubeconfigPath, namespace, "6");
          },
        );
        await t.step("the ledger: no key written by two replicas at once", () => {
          measured.ledgerPairs = assertLedger(replicas);
          measured.runs = replicas.reduce((n, r) => n + r.runs.length, 0);
          measured.fenced = replicas.reduce((n, r) => n + r.runs.filter((x) => x.fenced).length, 0);
          assert.ok(measured.ledgerPairs > OBJECTS, "the ledger has successive runs to compare");
        });
        console.error(`sharding e2e (gate ${gate ? "on" : "off"}): ${JSON.stringify(measured)}`);
      } finally {
        await Promise.all(live().map((r) => r.stop()));
        await Promise.all(replicas.map((r) => r.stop()));
      }
    },
    gate ? { featureGates: { ShardedListAndWatch: true } } : {},
  );
}
