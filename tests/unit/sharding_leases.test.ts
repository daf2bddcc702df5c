// Shard leases on a virtual clock and the fake API server: the fair share, cooperative hand-over
// (drain, then release), expiry of a dead replica's shards, fencing at the renew deadline, and
// the invariant checked at every step: no shard is proven by two replicas at once.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { type ShardHooks, ShardLeases, shareOf } from "../../runtime/_sharding/leases.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const LEASES = Api.coordinationV1Lease().within("default");
const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** A replica's link to the API server, which the test can cut (every request hangs). */
class Link {
  cut = false;
  constructor(readonly server: FakeApiServer) {}
  client(): Client {
    return new Client(this.server.config(), {
      maxRetries: 0,
      fetch: (input, init) => {
        if (this.cut) {
          const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
          return new Promise((_, reject) => {
            signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
          });
        }
        return this.server.fetch(input, init);
      },
    });
  }
}

interface Replica {
  id: string;
  link: Link;
  leases: ShardLeases;
  events: string[];
  /** Shards whose drain has not finished (the test resolves them). */
  busy: Map<number, () => void>;
  /** Keep the drain of these shards from finishing. */
  stuck: Set<number>;
  stop: AbortController;
  done: Promise<void>;
}

function start(
  server: FakeApiServer,
  clock: VirtualClock,
  id: string,
  shards: number,
  drainTimeoutMs = 5_000,
): Replica {
  const link = new Link(server);
  const events: string[] = [];
  const busy = new Map<number, () => void>();
  const stuck = new Set<number>();
  const hooks: ShardHooks = {
    acquired: (s) => events.push(`+${s}`),
    drain: (s, timeoutMs) => {
      events.push(`drain ${s}`);
      if (!stuck.has(s)) return Promise.resolve(true);
      return new Promise((resolve) => {
        busy.set(s, () => resolve(true));
        clock.sleep(timeoutMs).then(() => resolve(false));
      });
    },
    lost: (s, reason) => events.push(`-${s} ${reason.split(":")[0]}`),
  };
  const leases = new ShardLeases(link.client(), {
    namespace: "default",
    name: "op",
    shards,
    identity: id,
    drainTimeoutMs,
    clock,
    ...TIMING,
  }, hooks);
  const stop = new AbortController();
  const done = leases.run(stop.signal);
  return { id, link, leases, events, busy, stuck, stop, done };
}

/** Advances in small steps, checking after each that no shard is proven by two replicas. */
async function advance(clock: VirtualClock, ms: number, replicas: Replica[], step = 250) {
  for (let t = 0; t < ms; t += step) {
    await clock.advance(Math.min(step, ms - t));
    const shards = replicas[0].leases.options.shards;
    for (let s = 0; s < shards; s++) {
      const holders = replicas.filter((r) => r.leases.proven(s)).map((r) => r.id);
      assert.ok(holders.length <= 1, `shard ${s} proven by ${holders} at ${clock.now()}`);
    }
  }
}

async function holders(server: FakeApiServer, shards: number): Promise<string[]> {
  const client = server.client();
  const out: string[] = [];
  for (let s = 0; s < shards; s++) {
    out.push((await client.get(LEASES, `op-shard-${s}`)).spec?.holderIdentity ?? "");
  }
  return out;
}

test("shareOf gives ⌊N/M⌋ each and one more to the first N mod M members", () => {
  assert.deepEqual(["a", "b", "c"].map((m) => shareOf(12, ["a", "b", "c"], m)), [4, 4, 4]);
  assert.deepEqual(
    ["a", "b", "c", "d", "e"].map((m) => shareOf(12, ["a", "b", "c", "d", "e"], m)),
    [
      3,
      3,
      2,
      2,
      2,
    ],
  );
  assert.equal(shareOf(12, ["a"], "z"), 0, "not a member: no share");
  assert.equal(shareOf(4, [], "a"), 4);
});

test("ShardLeases: a lone replica takes every shard; a second one gets half by hand-over", async () => {
  const server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = start(server, clock, "a", 6);
  await advance(clock, TIMING.retryPeriodMs + 250, [a]); // the first round only announces a
  assert.deepEqual(a.leases.held(), [0, 1, 2, 3, 4, 5]);
  const b = start(server, clock, "b", 6);
  const all = [a, b];
  await advance(clock, 4 * TIMING.retryPeriodMs, all);
  assert.deepEqual(a.leases.held(), [0, 1, 2]);
  assert.deepEqual(b.leases.held(), [3, 4, 5]);
  // a drained each shard before it let go of it, and b took it only after the release.
  for (const s of [3, 4, 5]) {
    assert.ok(a.events.indexOf(`drain ${s}`) < a.events.indexOf(`-${s} released`));
  }
  assert.deepEqual(await holders(server, 6), ["a", "a", "a", "b", "b", "b"]);
  assert.ok(clock.now() < TIMING.leaseDurationMs, "hand-over within retry periods, no expiry");
  // Shutdown of b: drain, release, and a holds everything again within a couple of periods.
  b.stop.abort();
  await advance(clock, 3 * TIMING.retryPeriodMs, all);
  await b.done;
  assert.deepEqual(a.leases.held(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(b.leases.held(), []);
  // The member Lease b left is collected: the group's list stays as small as its replicas.
  const members = await server.client().list(LEASES, {
    labelSelector: "sharding.denokube.dev/role=member",
  });
  assert.deepEqual(members.items.map((l) => l.spec?.holderIdentity), ["a"]);
  a.stop.abort();
  await advance(clock, TIMING.retryPeriodMs, all);
  await a.done;
  assert.deepEqual(await holders(server, 6), ["", "", "", "", "", ""]);
  server.close();
});

test("ShardLeases: a replica cut off fences itself at the renew deadline; its shards move after the lease duration", async () => {
  const server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = start(server, clock, "a", 4);
  const b = start(server, clock, "b", 4);
  const all = [a, b];
  await advance(clock, 4 * TIMING.retryPeriodMs, all);
  assert.equal(a.leases.held().length, 2);
  assert.equal(b.leases.held().length, 2);
  const mine = a.leases.held();
  const cutAt = clock.now();
  a.link.cut = true;
  // Until the renew deadline, a still holds its shards (and b does not take them).
  await advance(clock, TIMING.renewDeadlineMs - 2 * TIMING.retryPeriodMs, all);
  assert.ok(mine.every((s) => !b.leases.held().includes(s)));
  // a stops acting at its renew deadline, before b may take over.
  await advance(clock, 2 * TIMING.retryPeriodMs + 250, all);
  assert.deepEqual(a.leases.held(), []);
  assert.ok(a.events.some((e) => e.endsWith("lost")), a.events.join(", "));
  assert.ok(mine.every((s) => !b.leases.held().includes(s)), "b waits for the lease duration");
  // b takes them once their record has been unchanged for the lease duration (its own clock):
  // a renewed at most a retry period before the cut, b saw it at most a retry period later.
  while (b.leases.held().length < 4) {
    assert.ok(clock.now() - cutAt <= TIMING.leaseDurationMs + 2 * TIMING.retryPeriodMs);
    await advance(clock, 250, all);
  }
  assert.ok(clock.now() - cutAt > TIMING.leaseDurationMs - TIMING.retryPeriodMs);
  // a comes back: it rejoins and gets its share by hand-over from b, never by force.
  a.link.cut = false;
  await advance(clock, TIMING.leaseDurationMs + 4 * TIMING.retryPeriodMs, all);
  assert.equal(a.leases.held().length, 2);
  assert.equal(b.leases.held().length, 2);
  for (const r of all) r.stop.abort();
  await advance(clock, 2 * TIMING.retryPeriodMs, all);
  await Promise.all(all.map((r) => r.done));
  server.close();
});

test("ShardLeases: a hand-over waits for the work in flight; work that does not stop leaves the lease to expire", async () => {
  const server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = start(server, clock, "a", 2, 5_000);
  await advance(clock, TIMING.retryPeriodMs + 250, [a]); // the first round only announces a
  assert.deepEqual(a.leases.held(), [0, 1]);
  a.stuck.add(1);
  const b = start(server, clock, "b", 2, 5_000);
  const all = [a, b];
  await advance(clock, 2 * TIMING.retryPeriodMs, all);
  assert.ok(a.events.includes("drain 1"));
  assert.ok(a.leases.proven(1), "still a's while its work runs");
  assert.ok(!a.leases.accepting(1), "no new work on a draining shard");
  assert.deepEqual(b.leases.held(), []);
  // The work finishes: a releases, b takes it within a retry period.
  a.busy.get(1)!();
  await advance(clock, TIMING.retryPeriodMs + 250, all);
  assert.deepEqual(a.leases.held(), [0]);
  assert.deepEqual(b.leases.held(), [1]);

  // b's work on shard 1 never stops: at shutdown it abandons the lease, which then expires.
  b.stuck.add(1);
  b.stop.abort();
  const stoppedAt = clock.now();
  await advance(clock, 5_000 + 500, all);
  await b.done;
  assert.ok(b.events.includes("-1 abandoned"), b.events.join(", "));
  assert.equal((await holders(server, 2))[1], "b", "an abandoned lease is not released");
  assert.ok(!a.leases.held().includes(1));
  await advance(clock, TIMING.leaseDurationMs + 2 * TIMING.retryPeriodMs, all);
  assert.deepEqual(a.leases.held(), [0, 1]);
  assert.ok(clock.now() - stoppedAt >= TIMING.leaseDurationMs);
  a.stuck.clear();
  a.stop.abort();
  await advance(clock, 2 * TIMING.retryPeriodMs, all);
  await a.done;
  server.close();
});

test("ShardLeases: replicas started together split the shards without a hand-over", async () => {
  const server = new FakeApiServer();
  const clock = new VirtualClock();
  const all = ["a", "b", "c"].map((id) => start(server, clock, id, 12));
  await advance(clock, 3 * TIMING.retryPeriodMs, all);
  for (const r of all) {
    assert.equal(r.leases.held().length, 4, r.id);
    assert.equal(r.leases.stats.released, 0, `${r.id} took no shard it had to give back`);
  }
  for (const r of all) r.stop.abort();
  await advance(clock, 2 * TIMING.retryPeriodMs, all);
  await Promise.all(all.map((r) => r.done));
  server.close();
});
