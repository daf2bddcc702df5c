// Leader election timing edges, with a virtual clock and the fake API server.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import type { Clock } from "../../clock.ts";
import {
  LeaderElector,
  type LeaderElectorOptions,
  type Leadership,
} from "../../runtime/leader_election.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import type { Lease } from "../../generated/coordination_v1.ts";
import { test } from "../_test.ts";

const LEASES = Api.coordinationV1Lease().within("default");

/** A replica's link to the API server, which the test can cut (requests hang) or break (500). */
class Link {
  mode: "ok" | "cut" | "error" = "ok";
  requests = 0;
  constructor(readonly server: FakeApiServer) {}
  client(): Client {
    return new Client(this.server.config(), {
      maxRetries: 0,
      fetch: (input, init) => {
        this.requests++;
        if (this.mode === "error") {
          return Promise.resolve(new Response("boom", { status: 500 }));
        }
        if (this.mode === "cut") {
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
  clock: Clock;
  link: Link;
  client: Client;
  elector: LeaderElector;
}

function replica(
  server: FakeApiServer,
  clock: Clock,
  identity: string,
  options: Partial<LeaderElectorOptions> = {},
): Replica {
  const link = new Link(server);
  const client = link.client();
  const elector = new LeaderElector(client, {
    namespace: "default",
    name: "op",
    identity,
    clock,
    random: () => 0,
    ...options,
  });
  return { clock, link, client, elector };
}

async function lease(server: FakeApiServer): Promise<Lease> {
  return await server.client().get(LEASES, "op");
}

/** Resolves the acquire promise into a box the test can inspect after advancing the clock. */
function campaign(r: Replica, signal?: AbortSignal) {
  const box: { leadership?: Leadership; at?: number; error?: unknown } = {};
  const clock = r.clock;
  const done = r.elector.acquire(signal).then((l) => {
    box.leadership = l;
    box.at = clock.now();
    return l;
  }, (e) => {
    box.error = e;
  });
  return { box, done };
}

test("acquire creates the Lease with client-go's defaults; renews every retry period", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock(Date.parse("2026-12-01T10:00:00Z"));
  const a = replica(server, clock, "a");
  const leadership = await a.elector.acquire();
  assert.equal(a.elector.isLeader, true);
  assert.equal(leadership.transitions, 0);
  const created = await lease(server);
  assert.equal(created.spec?.holderIdentity, "a");
  assert.equal(created.spec?.leaseDurationSeconds, 15);
  assert.equal(created.spec?.leaseTransitions, 0);
  assert.equal(created.spec?.renewTime, "2026-12-01T10:00:00.000000Z");

  await clock.advance(1_999);
  assert.equal((await lease(server)).metadata?.resourceVersion, created.metadata?.resourceVersion);
  const requests = a.link.requests;
  await clock.advance(1);
  assert.equal(a.link.requests - requests, 1, "a renew is one update of the object it wrote last");
  const renewed = await lease(server);
  assert.notEqual(renewed.metadata?.resourceVersion, created.metadata?.resourceVersion);
  assert.equal(renewed.spec?.renewTime, "2026-12-01T10:00:02.000000Z");
  assert.equal(renewed.spec?.acquireTime, created.spec?.acquireTime);
  assert.equal(renewed.spec?.leaseTransitions, 0);

  await clock.advance(60_000);
  assert.equal(leadership.signal.aborted, false);
  assert.equal((await lease(server)).spec?.renewTime, "2026-12-01T10:01:02.000000Z");
  await leadership.release();
  a.client.close();
});

test("a standby never takes a lease that keeps being renewed", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b");
  const la = await a.elector.acquire();
  const stop = new AbortController();
  const { box, done } = campaign(b, stop.signal);
  await clock.advance(120_000);
  assert.equal(box.leadership === undefined, true);
  assert.equal(b.elector.observedLeader, "a");
  assert.equal(la.signal.aborted, false);
  stop.abort();
  await done;
  assert.ok(box.error);
  await la.release();
});

test("a cut-off leader stops at the renew deadline; expiry counts from the standby's own observation", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b");
  const la = await a.elector.acquire(); // at t=0: A's last successful write started at 0
  a.link.mode = "cut";
  await clock.advance(1_000);
  const { box } = campaign(b); // B first sees A's record at t=1000 (its renewTime says t=0)
  await clock.advance(8_999); // t = 9 999
  assert.equal(la.signal.aborted, false, "still within the renew deadline");
  await clock.advance(1); // t = 10 000 = 0 + renewDeadline
  assert.equal(la.signal.aborted, true);
  assert.match(await la.ended, /renew deadline/);
  assert.equal(a.elector.isLeader, false);
  // B's attempts: 1000, 3000, … 15 000 (renewTime + 15 s, but only 14 s since B saw it) → 17 000.
  await clock.advance(5_000); // t = 15 000
  assert.equal(
    box.leadership === undefined,
    true,
    "expiry must not be judged from the remote renewTime",
  );
  await clock.advance(2_000); // t = 17 000
  assert.equal(box.at, 17_000);
  assert.equal(box.leadership?.transitions, 1);
  const now = await lease(server);
  assert.equal(now.spec?.holderIdentity, "b");
  assert.equal(now.spec?.leaseTransitions, 1);
  await box.leadership!.release();
});

test("skewed remote renewTime (far future or far past) changes nothing", async () => {
  for (const skewMs of [10 * 365 * 86_400_000, -3_600_000]) {
    await using server = new FakeApiServer();
    const clock = new VirtualClock(Date.parse("2026-12-01T10:00:00Z"));
    const skewed: Clock = { now: () => clock.now() + skewMs, sleep: (ms, s) => clock.sleep(ms, s) };
    const a = replica(server, skewed, "a");
    const b = replica(server, clock, "b");
    const la = await a.elector.acquire();
    const { box } = campaign(b);
    await clock.advance(60_000);
    assert.equal(
      box.leadership === undefined,
      true,
      `skew ${skewMs}: a renewed lease is never taken`,
    );
    a.link.mode = "cut";
    // A's last successful renew started at 60 000; B saw it at 60 000 too.
    await clock.advance(9_999);
    assert.equal(la.signal.aborted, false);
    await clock.advance(1);
    assert.equal(la.signal.aborted, true, `skew ${skewMs}: lost at the renew deadline`);
    await clock.advance(4_999); // t = 74 999 < 60 000 + 15 000
    assert.equal(box.leadership === undefined, true);
    await clock.advance(1); // B's attempt at 76 000 (every 2 s from 0)
    await clock.advance(1_000);
    assert.equal(box.at, Date.parse("2026-12-01T10:00:00Z") + 76_000);
    await box.leadership!.release();
    a.client.close();
  }
});

test("a renew that fails once and succeeds within the deadline keeps leadership", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const la = await a.elector.acquire();
  a.link.mode = "error";
  await clock.advance(6_000); // attempts at 2000, 4000, 6000 fail with 500
  assert.equal(la.signal.aborted, false);
  a.link.mode = "ok";
  await clock.advance(2_000); // 8000 succeeds: the deadline is now 18 000
  await clock.advance(9_000);
  assert.equal(la.signal.aborted, false);
  a.link.mode = "error";
  // Last success started at 16 000 (the loop renews every 2 s): lost at 26 000 exactly.
  await clock.advance(8_999);
  assert.equal(la.signal.aborted, false);
  await clock.advance(1);
  assert.equal(la.signal.aborted, true);
});

test("a leader that finds another holder stops at once and never writes back", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const la = await a.elector.acquire();
  const admin = server.client();
  const current = await admin.get(LEASES, "op");
  await admin.replace(LEASES, { ...current, spec: { ...current.spec, holderIdentity: "x" } });
  await clock.advance(2_000);
  assert.equal(la.signal.aborted, true);
  assert.match(await la.ended, /held by x/);
  assert.equal((await lease(server)).spec?.holderIdentity, "x");
  await la.release(); // no write: it is not ours
  assert.equal((await lease(server)).spec?.holderIdentity, "x");
});

test("release hands over within one retry period and keeps leaseTransitions (polling, no release watch)", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b", { random: () => 0.5, watchRelease: false });
  const la = await a.elector.acquire();
  const { box } = campaign(b); // attempts every 2000 × (1 + 1.2 × 0.5) = 3200 ms
  await clock.advance(10_000);
  await la.release();
  const released = await lease(server);
  assert.equal(released.spec?.holderIdentity, "");
  assert.equal(released.spec?.leaseDurationSeconds, 1);
  assert.equal(released.spec?.leaseTransitions, 0);
  assert.equal(la.signal.aborted, true);
  assert.equal(await la.ended, "released");
  const at = clock.now();
  await clock.advance(3_200);
  assert.ok(box.at !== undefined && box.at - at <= 3_200, `took over at ${box.at}`);
  assert.equal(box.leadership?.transitions, 1);
  assert.equal((await lease(server)).spec?.holderIdentity, "b");
  // The released leader's renew loop is gone: nothing more is written by A.
  const before = a.link.requests;
  await clock.advance(30_000);
  assert.equal(a.link.requests, before);
  await box.leadership!.release();
});

test("two candidates racing: exactly one wins the create, and one wins each takeover", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b");
  const ca = campaign(a);
  const cb = campaign(b);
  await clock.flush();
  const winners = [ca.box, cb.box].filter((x) => x.leadership);
  assert.equal(winners.length, 1);
  const first = winners[0].leadership!;
  const loser = first.identity === "a" ? b : a;
  const loserBox = first.identity === "a" ? cb.box : ca.box;
  await clock.advance(2_000); // the loser's create got AlreadyExists; its next attempt reads
  assert.equal(loser.elector.observedLeader, first.identity);
  assert.equal(loserBox.leadership === undefined, true);

  // A third candidate and the loser both find the lease expired at the same time: both PUT with
  // the same resourceVersion; the server's optimistic concurrency lets only one through.
  const c = replica(server, clock, "c");
  const winner = first.identity === "a" ? a : b;
  winner.link.mode = "cut";
  const cc = campaign(c);
  await clock.advance(40_000);
  const takers = [loserBox, cc.box].filter((x) => x.leadership);
  assert.equal(takers.length, 1);
  assert.equal(takers[0].leadership!.transitions, 1);
  assert.equal((await lease(server)).spec?.leaseTransitions, 1);
  assert.equal(first.signal.aborted, true);
  await takers[0].leadership!.release();
  const stillCampaigning = [loserBox, cc.box].find((x) => !x.leadership)!;
  await clock.advance(5_000);
  assert.ok(stillCampaigning.leadership, "the other takes the released lease");
  assert.equal(stillCampaigning.leadership!.transitions, 2);
  await stillCampaigning.leadership!.release();
});

test("a candidate that already holds the record (restart with the same identity) resumes its term", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const la = await a.elector.acquire();
  a.link.mode = "cut";
  await clock.advance(10_000);
  assert.equal(la.signal.aborted, true);
  a.link.mode = "ok";
  const again = await a.elector.acquire();
  assert.equal(again.transitions, 0, "nobody else led in between");
  await again.release();
});

test("options are checked: client-go's ordering of the timings", () => {
  const client = new Client(new FakeApiServer().config());
  const make = (o: Partial<LeaderElectorOptions>) =>
    new LeaderElector(client, { namespace: "default", name: "op", identity: "x", ...o });
  assert.throws(() => make({ leaseDurationMs: 10_000 }), /greater than renewDeadlineMs/);
  assert.throws(() => make({ renewDeadlineMs: 2_000 }), /retryPeriodMs × jitterFactor/);
  assert.throws(() => make({ leaseDurationMs: 15_500 }), /whole seconds/);
  assert.throws(() => make({ retryPeriodMs: 0 }), /positive/);
  assert.throws(() => make({ name: "a/b" }), /Invalid Lease name/);
  const d = new LeaderElector(client, { namespace: "default", name: "op" });
  assert.match(d.identity, /^.+_[0-9a-f]{8}$/);
  assert.equal(d.leaseDurationMs, 15_000);
  assert.equal(d.renewDeadlineMs, 10_000);
  assert.equal(d.retryPeriodMs, 2_000);
});

test("a Lease the identity may not use (403) rejects acquire once, naming what to grant", async () => {
  await using server = new FakeApiServer();
  const rule = server.inject({
    on: "any",
    resource: "leases",
    times: Infinity,
    fault: {
      status: 403,
      message:
        'leases.coordination.k8s.io "op" is forbidden: User "x" cannot get resource "leases"',
    },
  });
  const clock = new VirtualClock();
  const elector = new LeaderElector(server.client(), {
    namespace: "default",
    name: "op",
    identity: "x",
    clock,
  });
  let outcome: unknown = "still campaigning";
  const stop = new AbortController();
  const acquiring = elector.acquire(stop.signal).then(() => outcome = "led", (e) => outcome = e);
  await clock.advance(10_000);
  stop.abort(new Error("stopped"));
  await acquiring;
  assert.ok(outcome instanceof Error, String(outcome));
  assert.match(outcome.message, /cannot get resource "leases"/);
  assert.match(outcome.message, /Grant get, create and update on leases/);
  assert.equal(rule.hits, 1, "not retried");
});

test("with the release watch (default), a candidate takes over at once when the holder releases", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b", { random: () => 0.5 }); // polls every 3200 ms
  const la = await a.elector.acquire();
  assert.equal(a.link.requests, 2, "a candidate that leads at once never watches (get, create)");
  const { box } = campaign(b);
  await clock.advance(10_000);
  assert.equal(box.at, undefined);
  await la.release();
  const at = clock.now();
  await clock.flush();
  assert.equal(box.at, at, "took over at the release, not at the next poll (12 800)");
  assert.equal(box.leadership?.transitions, 1);
  assert.equal((await lease(server)).spec?.holderIdentity, "b");
  // The watch ended with the campaign: while B leads, only its renews reach the server.
  const before = b.link.requests;
  await clock.advance(20_000);
  assert.equal(b.link.requests - before, 10, "one renew per retry period, nothing else");
  await box.leadership!.release();
});

test("a release watch that fails falls back to polling and is retried once per retry period", async () => {
  await using server = new FakeApiServer();
  const rule = server.inject({
    on: "watch",
    resource: "leases",
    times: Infinity,
    fault: { status: 500, message: "watch broken" },
  });
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b", { random: () => 0.5 });
  const la = await a.elector.acquire();
  const { box } = campaign(b);
  await clock.advance(10_000);
  assert.ok(rule.hits >= 1 && rule.hits <= 6, `watch attempts bounded: ${rule.hits}`);
  await la.release();
  const at = clock.now();
  await clock.advance(3_200);
  assert.ok(box.at !== undefined && box.at - at > 0 && box.at - at <= 3_200, `at ${box.at}`);
  assert.equal((await lease(server)).spec?.holderIdentity, "b");
  await box.leadership!.release();
});

test("a candidate that may not watch the Lease (403) polls for the rest of its campaign without asking again", async () => {
  await using server = new FakeApiServer();
  const rule = server.inject({
    on: "watch",
    resource: "leases",
    times: Infinity,
    fault: { status: 403, message: 'cannot watch resource "leases"' },
  });
  const clock = new VirtualClock();
  const a = replica(server, clock, "a");
  const b = replica(server, clock, "b", { random: () => 0.5 });
  const la = await a.elector.acquire();
  const { box } = campaign(b);
  await clock.advance(30_000);
  assert.equal(rule.hits, 1, "asked to watch once");
  await la.release();
  const at = clock.now();
  await clock.advance(3_200);
  assert.ok(box.at !== undefined && box.at - at > 0 && box.at - at <= 3_200, `at ${box.at}`);
  await box.leadership!.release();
});
