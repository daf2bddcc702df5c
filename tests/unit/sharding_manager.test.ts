// Sharded Managers on the fake API server and a virtual clock: the keys spread over replicas by
// shard, a ledger shows no key reconciled by two replicas at once through a join and a clean
// stop, and a replica cut off from the Leases has its in-flight writes refused (fenced), not sent.
// The fake API server ignores shardSelector, so this is the client-side filtering mode.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Controller } from "../../runtime/controller.ts";
import { sourceCount } from "../../runtime/_controller/cache.ts";
import { Manager } from "../../runtime/manager.ts";
import { ShardFencedError, shardOf } from "../../runtime/sharding.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const CONFIGMAPS = Api.v1ConfigMap().within("default");
const SHARDS = 4;
const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

interface Entry {
  key: string;
  replica: string;
  start: number;
  end: number;
}

/** A replica's link: `cutLeases` makes every Lease request hang (the others go through). */
class Link {
  cutLeases = false;
  writes: string[] = [];
  constructor(readonly server: FakeApiServer) {}
  client(): Client {
    return new Client(this.server.config(), {
      maxRetries: 0,
      fetch: (input, init) => {
        const request = input instanceof Request ? input : new Request(input, init);
        const url = new URL(request.url);
        if (this.cutLeases && url.pathname.includes("/leases")) {
          const signal = init?.signal ?? request.signal;
          return new Promise((_, reject) => {
            signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
          });
        }
        if (request.method !== "GET" && url.pathname.includes("/configmaps")) {
          this.writes.push(`${request.method} ${url.pathname}`);
        }
        return this.server.fetch(input, init);
      },
    });
  }
}

function replica(
  server: FakeApiServer,
  clock: VirtualClock,
  id: string,
  ledger: Entry[],
  reconcileMs = 100,
  onReconcile?: (client: Client, key: string) => Promise<void>,
) {
  const link = new Link(server);
  const client = link.client();
  const manager = new Manager(client, {
    clock,
    gracePeriodMs: 5_000,
    sharding: { namespace: "default", name: "cms", shards: SHARDS, identity: id, ...TIMING },
  });
  const controller = new Controller(client, CONFIGMAPS, async (cm, ctx) => {
    const entry = { key: ctx.key, replica: id, start: clock.now(), end: -1 };
    ledger.push(entry);
    try {
      await clock.sleep(reconcileMs, ctx.signal);
      await onReconcile?.(ctx.client, ctx.key);
    } finally {
      entry.end = clock.now();
    }
    void cm;
  }, { clock, name: "cms", concurrency: 4 });
  manager.add(controller);
  const stop = new AbortController();
  const done = manager.run(stop.signal);
  return { id, link, manager, controller, stop, done };
}

/** No key has two overlapping runs on different replicas. */
function assertNoOverlap(ledger: Entry[]) {
  const byKey = new Map<string, Entry[]>();
  for (const e of ledger) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  for (const [key, runs] of byKey) {
    for (const a of runs) {
      for (const b of runs) {
        if (a === b || a.replica === b.replica) continue;
        const aEnd = a.end < 0 ? Infinity : a.end;
        const bEnd = b.end < 0 ? Infinity : b.end;
        assert.ok(
          aEnd <= b.start || bEnd <= a.start,
          `${key} ran on ${a.replica} [${a.start}, ${a.end}] and ${b.replica} [${b.start}, ${b.end}]`,
        );
      }
    }
  }
}

async function seed(server: FakeApiServer, count: number) {
  const client = server.client();
  const uids = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const cm = await client.create(CONFIGMAPS, {
      metadata: { name: `cm-${i}` },
      data: { i: `${i}` },
    });
    uids.set(`default/cm-${i}`, cm.metadata!.uid!);
  }
  return uids;
}

test("sharded Managers: keys spread by shard; a join and a clean stop move shards without overlap", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const uids = await seed(server, 40);
  const ledger: Entry[] = [];
  const a = replica(server, clock, "a", ledger);
  for (let i = 0; i < 16; i++) await clock.advance(250); // its first lease round only announces it
  const firstPass = new Set(ledger.map((e) => e.key));
  assert.equal(firstPass.size, 40, "a alone reconciles every key");
  assert.ok(ledger.every((e) => e.replica === "a"));

  const b = replica(server, clock, "b", ledger);
  for (let i = 0; i < 40; i++) await clock.advance(250);
  const heldA = new Set(heldOf(a.manager));
  const heldB = new Set(heldOf(b.manager));
  assert.equal(heldA.size, 2);
  assert.equal(heldB.size, 2);
  // b reconciled exactly the keys of its shards when it took them.
  const byB = new Set(ledger.filter((e) => e.replica === "b").map((e) => e.key));
  for (const [key, uid] of uids) {
    assert.equal(byB.has(key), heldB.has(shardOf({ metadata: { uid } }, SHARDS)), key);
  }
  // A change now is reconciled by the holder of its shard only.
  const before = ledger.length;
  const client = server.client();
  for (let i = 0; i < 40; i++) {
    await client.patch(CONFIGMAPS, `cm-${i}`, { data: { i: `${i}`, v: "2" } });
  }
  for (let i = 0; i < 8; i++) await clock.advance(250);
  const after = ledger.slice(before);
  assert.equal(after.length, 40, after.map((e) => `${e.replica} ${e.key}`).join(", "));
  for (const e of after) {
    const shard = shardOf({ metadata: { uid: uids.get(e.key)! } }, SHARDS);
    assert.equal(e.replica, heldA.has(shard) ? "a" : "b", e.key);
  }
  const metrics = b.manager.registry.expose();
  assert.match(metrics, /kube_sharding_shards_held\{group="cms"\} 2/);
  assert.match(
    metrics,
    /kube_sharding_filter_mode\{group="cms",resource="configmaps",mode="client"\} 1/,
  );
  assert.match(metrics, /kube_sharding_keys\{group="cms",resource="configmaps",shard="\d"\} \d+/);

  // b stops cleanly: a gets every shard back within a few retry periods, and runs their keys.
  b.stop.abort();
  for (let i = 0; i < 24; i++) await clock.advance(250);
  await b.done;
  assert.equal(heldOf(a.manager).length, SHARDS);
  assertNoOverlap(ledger);
  a.stop.abort();
  for (let i = 0; i < 24; i++) await clock.advance(250);
  await a.done;
});

function heldOf(manager: Manager): number[] {
  const text = manager.registry.expose();
  const held = Number(/kube_sharding_shards_held\{group="cms"\} (\d+)/.exec(text)?.[1] ?? 0);
  const shards: number[] = [];
  for (
    const m of text.matchAll(
      /kube_sharding_keys\{group="cms",resource="configmaps",shard="(\d+)"\}/g,
    )
  ) {
    shards.push(Number(m[1]));
  }
  assert.equal(shards.length, held);
  return shards.sort();
}

test("sharded Manager: a replica cut off from its Leases aborts its reconciles and refuses their writes", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  await seed(server, 1);
  const ledger: Entry[] = [];
  const errors: unknown[] = [];
  let calls = 0;
  const a = replica(server, clock, "a", ledger, 0, async (client, key) => {
    if (calls++ > 0) return;
    // The first run outlives the renew deadline, ignoring its signal, then writes.
    await clock.sleep(12_000);
    try {
      await client.patch(CONFIGMAPS, key.split("/")[1], { data: { late: "1" } });
    } catch (e) {
      errors.push(e);
      throw e;
    }
  });
  for (let i = 0; i < 12; i++) await clock.advance(250);
  assert.equal(ledger.length, 1);
  a.link.cutLeases = true;
  const writes = a.link.writes.length;
  for (let i = 0; i < 60; i++) await clock.advance(250);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof ShardFencedError, String(errors[0]));
  assert.match(String(errors[0]), /Write refused \(fenced\): the reconcile of default\/cm-0/);
  assert.equal(a.link.writes.length, writes, "the fenced write was not sent");
  const metrics = a.manager.registry.expose();
  assert.match(metrics, /kube_sharding_fenced_writes_total\{group="cms"\} 1/);
  assert.match(metrics, /kube_sharding_handovers_total\{group="cms",event="lost"\} [1-9]/);
  a.link.cutLeases = false;
  a.stop.abort();
  for (let i = 0; i < 40; i++) await clock.advance(250);
  await a.done;
});

/**
 * A link whose lists answer `metadata.shardInfo` for a `shardSelector` (as a server with the
 * ShardedListAndWatch gate does); the items and watches are not filtered, which the client-side
 * hash check covers. Records the shard selectors of the watches.
 */
class ShardingServerLink extends Link {
  watches: string[] = [];
  override client(): Client {
    const inner = super.client();
    void inner;
    return new Client(this.server.config(), {
      maxRetries: 0,
      fetch: async (input, init) => {
        const request = input instanceof Request ? input : new Request(input, init);
        const url = new URL(request.url);
        const selector = url.searchParams.get("shardSelector");
        const response = await this.server.fetch(input, init);
        if (!selector || !url.pathname.endsWith("/configmaps")) return response;
        if (url.searchParams.get("watch")) {
          this.watches.push(selector);
          return response;
        }
        const list = await response.json();
        list.metadata = { ...list.metadata, shardInfo: { selector } };
        return new Response(JSON.stringify(list), {
          status: response.status,
          headers: { "content-type": "application/json" },
        });
      },
    });
  }
}

test("sharded Manager on a server that honours shardSelector: one cache per held shard, following hand-overs", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const uids = await seed(server, 20);
  const ledger: Entry[] = [];
  const start = (id: string) => {
    const link = new ShardingServerLink(server);
    const client = link.client();
    const manager = new Manager(client, {
      clock,
      gracePeriodMs: 5_000,
      sharding: { namespace: "default", name: "cms", shards: SHARDS, identity: id, ...TIMING },
    });
    manager.add(
      new Controller(client, CONFIGMAPS, (_cm, ctx) => {
        ledger.push({ key: ctx.key, replica: id, start: clock.now(), end: clock.now() });
      }, { clock, name: "cms" }),
    );
    const stop = new AbortController();
    return { link, client, manager, stop, done: manager.run(stop.signal) };
  };
  const a = start("a");
  for (let i = 0; i < 16; i++) await clock.advance(250);
  assert.match(a.manager.registry.expose(), /kube_sharding_filter_mode\{[^}]*mode="server"\} 1/);
  assert.equal(sourceCount(a.client), SHARDS, "one cache per held shard");
  assert.equal(new Set(a.link.watches).size, SHARDS);
  assert.equal(new Set(ledger.map((e) => e.key)).size, 20);
  assert.equal(ledger.length, 20, "each key once: a shard's first sync is not queued twice");

  const b = start("b");
  for (let i = 0; i < 40; i++) await clock.advance(250);
  assert.equal(sourceCount(a.client), 2, "the caches of handed-over shards are released");
  assert.equal(sourceCount(b.client), 2);
  const byB = ledger.filter((e) => e.replica === "b").map((e) => e.key).sort();
  const heldB = new Set(heldOf(b.manager));
  assert.deepEqual(
    byB,
    [...uids].filter(([, uid]) => heldB.has(shardOf({ metadata: { uid } }, SHARDS))).map(([k]) => k)
      .sort(),
  );
  for (const r of [a, b]) r.stop.abort();
  for (let i = 0; i < 24; i++) await clock.advance(250);
  await Promise.all([a.done, b.done]);
  assert.equal(sourceCount(a.client), 0);
});

test("sharded Managers: a change of an owned object queues its owner on the replica holding the owner's shard only", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const uids = await seed(server, 16);
  const secrets = Api.v1Secret().within("default");
  for (const [key, uid] of uids) {
    const name = key.split("/")[1];
    await server.client().create(secrets, {
      metadata: {
        name: `${name}-secret`,
        ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name, uid, controller: true }],
      },
      stringData: { v: "1" },
    });
  }
  const runs: { replica: string; key: string; reason: string }[] = [];
  const start = (id: string) => {
    const client = new Link(server).client();
    const manager = new Manager(client, {
      clock,
      gracePeriodMs: 5_000,
      sharding: { namespace: "default", name: "cms", shards: SHARDS, identity: id, ...TIMING },
    });
    manager.add(
      new Controller(client, CONFIGMAPS, (_cm, ctx) => {
        runs.push({ replica: id, key: ctx.key, reason: ctx.reason });
      }, { clock, name: "cms" }).owns(secrets),
    );
    const stop = new AbortController();
    return { manager, stop, done: manager.run(stop.signal) };
  };
  const a = start("a");
  const b = start("b");
  for (let i = 0; i < 40; i++) await clock.advance(250);
  const heldA = new Set(heldOf(a.manager));
  assert.equal(heldA.size, 2);
  runs.length = 0;
  for (const key of uids.keys()) {
    await server.client().patch(secrets, `${key.split("/")[1]}-secret`, { stringData: { v: "2" } });
  }
  for (let i = 0; i < 8; i++) await clock.advance(250);
  assert.equal(runs.length, 16, runs.map((r) => `${r.replica} ${r.key}`).join(", "));
  for (const run of runs) {
    const shard = shardOf({ metadata: { uid: uids.get(run.key)! } }, SHARDS);
    assert.equal(run.replica, heldA.has(shard) ? "a" : "b", run.key);
    assert.match(run.reason, /^owned Secret default\/cm-\d+-secret changed$/);
  }
  for (const r of [a, b]) r.stop.abort();
  for (let i = 0; i < 24; i++) await clock.advance(250);
  await Promise.all([a.done, b.done]);
});
