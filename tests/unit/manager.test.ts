// The Manager: leader-only and every-replica tasks, loss of the lease, shutdown order, grace.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { LeadershipLostError } from "../../runtime/leader_election.ts";
import { Controller } from "../../runtime/controller.ts";
import { Manager, type Runnable } from "../../runtime/manager.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const LEASES = Api.coordinationV1Lease().within("default");

class Link {
  cut = false;
  leaseRequests = 0;
  /** Requests for ConfigMaps (lists and watches: a streaming list is a watch). */
  configMapRequests = 0;
  constructor(readonly server: FakeApiServer) {}
  client(): Client {
    return new Client(this.server.config(), {
      maxRetries: 0,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (url.includes("/leases")) this.leaseRequests++;
        if (url.includes("/configmaps")) this.configMapRequests++;
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

/**
 * A task that logs its start and stop (at virtual times) and takes `stopMs` to stop. With
 * `ignoreSignal`, it does not stop on its signal but only when that promise settles (so that no
 * promise is left pending when the test ends).
 */
function task(
  name: string,
  clock: VirtualClock,
  log: string[],
  stopMs = 0,
  ignoreSignal?: Promise<void>,
): Runnable {
  return {
    name,
    async run(signal) {
      log.push(`${clock.now()} ${name} start`);
      await new Promise<void>((resolve) => {
        if (ignoreSignal) return void ignoreSignal.then(resolve);
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      log.push(`${clock.now()} ${name} aborted`);
      if (stopMs) await clock.sleep(stopMs);
      log.push(`${clock.now()} ${name} stopped`);
    },
  };
}

function manager(
  server: FakeApiServer,
  clock: VirtualClock,
  identity: string,
  extra: { onLost?: "campaign" | "exit"; gracePeriodMs?: number } = {},
) {
  const link = new Link(server);
  const client = link.client();
  const m = new Manager(client, {
    leaderElection: { namespace: "default", name: "op", identity, random: () => 0 },
    clock,
    ...extra,
  });
  return { link, client, m };
}

test("without leader election: leader-only tasks run at once; shutdown stops them before the every-replica ones", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const m = new Manager(server.client(), { clock });
  m.add(task("cache", clock, log), { leaderOnly: false });
  m.add(task("ctrl", clock, log, 1_000));
  const stop = new AbortController();
  const done = m.run(stop.signal);
  await clock.flush();
  assert.equal(m.leading, true);
  stop.abort();
  await clock.advance(1_000);
  await done;
  assert.deepEqual(log, [
    "0 cache start",
    "0 ctrl start",
    "0 ctrl aborted",
    "1000 ctrl stopped",
    "1000 cache aborted",
    "1000 cache stopped",
  ]);
  assert.equal(m.leading, false);
});

test("two managers on one lease: only the leader runs its controllers; a clean stop hands over at once (the standby watches the lease)", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const a = manager(server, clock, "a");
  const b = manager(server, clock, "b");
  a.m.add(task("a-ctrl", clock, log, 500));
  a.m.add(task("a-cache", clock, log), { leaderOnly: false });
  b.m.add(task("b-ctrl", clock, log));
  b.m.add(task("b-cache", clock, log), { leaderOnly: false });
  const stopA = new AbortController();
  const stopB = new AbortController();
  const runA = a.m.run(stopA.signal);
  await clock.flush();
  const runB = b.m.run(stopB.signal);
  await clock.advance(30_000);
  assert.equal(a.m.leading, true);
  assert.equal(b.m.leading, false);
  assert.deepEqual(log, ["0 a-cache start", "0 a-ctrl start", "0 b-cache start"]);
  log.length = 0;

  stopA.abort();
  await clock.advance(500); // a-ctrl drains in 500 ms, then the lease is released
  await runA;
  await clock.flush(); // B saw the release: it tries at once, not at its next retry (32 000)
  assert.equal((await server.client().get(LEASES, "op")).spec?.holderIdentity, "b");
  assert.equal(b.m.leading, true);
  assert.deepEqual(log, [
    "30000 a-ctrl aborted",
    "30500 a-ctrl stopped",
    "30500 a-cache aborted",
    "30500 a-cache stopped",
    "30500 b-ctrl start",
  ]);
  stopB.abort();
  await clock.flush();
  await runB;
});

test("losing the lease aborts the leader-only tasks and waits for them before campaigning again", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const a = manager(server, clock, "a");
  a.m.add(task("ctrl", clock, log, 4_000)); // takes 4 s to stop after its signal aborts
  a.m.add(task("cache", clock, log), { leaderOnly: false });
  const stop = new AbortController();
  const run = a.m.run(stop.signal);
  await clock.flush();
  a.link.cut = true;
  await clock.advance(10_000); // renew deadline: lost
  assert.deepEqual(log, ["0 cache start", "0 ctrl start", "10000 ctrl aborted"]);
  assert.equal(a.m.leading, false, "not the leader from the moment the lease is lost");
  a.link.cut = false;
  const requests = a.link.leaseRequests;
  await clock.advance(3_999);
  assert.equal(a.link.leaseRequests, requests, "no campaign while the old work still runs");
  await clock.advance(1);
  assert.ok(log.includes("14000 ctrl stopped"));
  assert.ok(a.link.leaseRequests > requests, "campaigns again once the work stopped");
  // Nobody else took it: the record is still ours, so A resumes (same transitions).
  await clock.flush();
  assert.equal(a.m.leading, true);
  assert.equal(log.at(-1), "14000 ctrl start");
  assert.ok(!log.includes("10000 cache aborted"), "the every-replica cache kept running");
  stop.abort();
  await clock.advance(4_000);
  await run;
});

test("onLost: exit ends run() with LeadershipLostError after the work stopped", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const a = manager(server, clock, "a", { onLost: "exit" });
  a.m.add(task("ctrl", clock, log, 1_000));
  a.m.add(task("cache", clock, log), { leaderOnly: false });
  const run = a.m.run(new AbortController().signal);
  let settled = undefined as unknown;
  run.catch((e) => settled = e);
  await clock.flush();
  a.link.cut = true;
  await clock.advance(10_500);
  assert.equal(settled === undefined, true);
  await clock.advance(500);
  assert.ok(settled instanceof LeadershipLostError, String(settled));
  assert.deepEqual(log, [
    "0 cache start",
    "0 ctrl start",
    "10000 ctrl aborted",
    "11000 ctrl stopped",
    "11000 cache aborted",
    "11000 cache stopped",
  ]);
});

test("shutdown waits at most the grace period for a stuck task, then lets the lease expire instead of handing it over", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const a = manager(server, clock, "a", { gracePeriodMs: 5_000 });
  let aborted: unknown;
  let unstick!: () => void; // (not Promise.withResolvers: Node 20 has none)
  const unstuck = new Promise<void>((resolve) => unstick = resolve);
  const stuck = task("stuck", clock, log, 0, unstuck);
  let stuckDone: Promise<void> | undefined;
  a.m.add({
    name: "stuck",
    run: (signal) => stuckDone = stuck.run(signal),
    abortInFlight: (reason) => aborted = reason,
  });
  const stop = new AbortController();
  const run = a.m.run(stop.signal);
  await clock.flush();
  stop.abort();
  let done = false;
  run.then(() => done = true);
  await clock.advance(4_999);
  assert.equal(done, false);
  await clock.advance(1);
  assert.equal(done, true);
  assert.match(String(aborted), /grace period/);
  // Still held by "a": a replica that comes now must wait out the lease, not take it at once.
  assert.equal((await server.client().get(LEASES, "op")).spec?.holderIdentity, "a");
  const b = manager(server, clock, "b");
  const stopB = new AbortController();
  const runB = b.m.run(stopB.signal);
  await clock.advance(14_000);
  assert.equal(b.m.leading, false);
  await clock.advance(4_000);
  assert.equal(b.m.leading, true);
  stopB.abort();
  await clock.advance(1_000);
  await runB;
  // The abandoned task was still running all along; let it end so nothing is left pending.
  assert.ok(!log.some((l) => l.endsWith("stuck stopped")), log.join("\n"));
  unstick();
  await stuckDone;
  assert.equal(log.at(-1), `${clock.now()} stuck stopped`);
});

test("release on shutdown is bounded by the renew deadline when the API server is out of reach", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = manager(server, clock, "a");
  a.m.add(task("ctrl", clock, []));
  const stop = new AbortController();
  const run = a.m.run(stop.signal);
  await clock.flush();
  assert.equal(a.m.leading, true);
  a.link.cut = true; // requests hang until aborted
  stop.abort();
  let done = false;
  run.then(() => done = true);
  await clock.advance(9_999);
  assert.equal(done, false);
  await clock.advance(1);
  assert.equal(done, true);
});

test("a crashing task stops the manager, releases the lease, and run() rejects with its error", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const log: string[] = [];
  const a = manager(server, clock, "a");
  a.m.add({
    name: "bad",
    async run() {
      await clock.sleep(1_000);
      throw new Error("reconciler bug");
    },
  });
  a.m.add(task("ctrl", clock, log));
  const run = a.m.run(new AbortController().signal);
  let error: unknown;
  run.catch((e) => error = e);
  await clock.advance(1_000);
  assert.match(String(error), /reconciler bug/);
  assert.deepEqual(log, ["0 ctrl start", "1000 ctrl aborted", "1000 ctrl stopped"]);
  assert.equal((await server.client().get(LEASES, "op")).spec?.holderIdentity, "");
});

test("endpoints: /readyz waits for the shared cache; /metrics shows the leader status", async () => {
  await using server = new FakeApiServer();
  const m = new Manager(server.client(), {
    leaderElection: { namespace: "default", name: "op", identity: "a" },
    endpoints: { hostname: "127.0.0.1", port: 0 },
  });
  const pods = m.cache(Api.v1Pod().within("default"));
  assert.equal(m.cache(Api.v1Pod().within("default")), pods, "one cache per resource");
  let led!: () => void;
  const leading = new Promise<void>((resolve) => led = resolve);
  m.add({
    name: "ctrl",
    run: (signal) => {
      led(); // leader-only: runs once the manager leads
      return new Promise((r) => signal.addEventListener("abort", () => r()));
    },
  });
  const stop = new AbortController();
  const run = m.run(stop.signal);
  await pods.ready;
  await leading;
  assert.equal(m.leading, true);
  const base = `http://127.0.0.1:${m.endpointsPort}`;
  const ready = await fetch(`${base}/readyz?verbose`);
  assert.equal(ready.status, 200);
  assert.match(await ready.text(), /\[\+\]cache v1\/pods@default ok/);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^leader_election_master_status\{name="op"\} 1$/m);
  assert.match(metrics, /^kube_manager_leadership_terms_total 1$/m);
  assert.equal(await (await fetch(`${base}/healthz`)).text(), "ok\n");
  stop.abort();
  await run;
  assert.equal(m.endpointsPort, undefined);
});

test("a shared cache that is forbidden stops the manager with the API's reason instead of staying unready", async () => {
  await using server = new FakeApiServer();
  server.inject({
    on: ["list", "watch"],
    resource: "pods",
    times: Infinity,
    fault: {
      status: 403,
      message:
        'pods is forbidden: User "op" cannot list resource "pods" in the namespace "default"',
    },
  });
  const clock = new VirtualClock();
  const m = new Manager(server.client(), { clock });
  m.cache(Api.v1Pod().within("default"));
  m.add(task("ctrl", clock, []));
  const stop = new AbortController();
  let error: unknown = "still running";
  const outcome = m.run(stop.signal).then(() => error = "resolved", (e) => error = e);
  await clock.advance(1_000);
  stop.abort(); // ends the run when the failure did not (then the assertions below fail)
  await clock.advance(1_000);
  await outcome;
  assert.ok(error instanceof Error, String(error));
  assert.match(error.message, /cannot list resource "pods"/);
});

/** A stand-in with the members of issue 12's Controller that the Manager instruments. */
function fakeController(clock: VirtualClock) {
  const hooks = new Set<(o: { controller: string; result: string; durationMs: number }) => void>();
  const stats = { queueDepth: 0, inFlight: 0, retries: 0 };
  const aborted: unknown[] = [];
  return {
    name: "foo",
    hooks,
    statsNow: stats,
    aborted,
    onOutcome(hook: (o: { controller: string; result: string; durationMs: number }) => void) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
    stats: () => ({ ...stats }),
    abortInFlight(reason: unknown) {
      aborted.push(reason);
    },
    async run(signal: AbortSignal) {
      await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
      await clock.sleep(0);
    },
    emit(result: string, durationMs: number) {
      for (const hook of hooks) hook({ controller: "foo", result, durationMs });
    },
  };
}

test("controllers are instrumented with controller-runtime's metric names", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const m = new Manager(server.client(), { clock });
  const foo = fakeController(clock);
  m.add(foo);
  foo.emit("success", 20);
  foo.emit("success", 700);
  foo.emit("error", 3);
  foo.statsNow.queueDepth = 5;
  foo.statsNow.inFlight = 2;
  foo.statsNow.retries = 4;
  let text = m.registry.expose();
  assert.match(
    text,
    /^controller_runtime_reconcile_total\{controller="foo",result="success"\} 2$/m,
  );
  assert.match(
    text,
    /^controller_runtime_reconcile_total\{controller="foo",result="terminal"\} 0$/m,
  );
  assert.match(text, /^controller_runtime_reconcile_errors_total\{controller="foo"\} 1$/m);
  assert.match(
    text,
    /^controller_runtime_reconcile_time_seconds_bucket\{controller="foo",le="0\.025"\} 2$/m,
  );
  assert.match(text, /^controller_runtime_reconcile_time_seconds_count\{controller="foo"\} 3$/m);
  assert.match(text, /^controller_runtime_reconcile_time_seconds_sum\{controller="foo"\} 0\.723$/m);
  assert.match(text, /^workqueue_depth\{name="foo"\} 5$/m);
  assert.match(text, /^controller_runtime_active_workers\{controller="foo"\} 2$/m);
  assert.match(text, /^workqueue_retries_total\{name="foo"\} 4$/m);
  foo.statsNow.retries = 6;
  text = m.registry.expose();
  assert.match(text, /^workqueue_retries_total\{name="foo"\} 6$/m);
  assert.match(text, /^leader_election_master_status\{name=""\} 0$/m);
});

test("on loss of the lease, abortInFlight is called at once (no grace) before the work is waited for", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = manager(server, clock, "a");
  const foo = fakeController(clock);
  a.m.add(foo);
  const stop = new AbortController();
  const run = a.m.run(stop.signal);
  await clock.flush();
  a.link.cut = true;
  await clock.advance(9_999);
  assert.equal(foo.aborted.length, 0);
  await clock.advance(1);
  assert.equal(foo.aborted.length, 1);
  assert.ok(foo.aborted[0] instanceof LeadershipLostError);
  a.link.cut = false;
  stop.abort();
  await clock.advance(1_000);
  await run;
});

test("shared caches report watch restarts and relists", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const m = new Manager(server.client(), { clock });
  const cms = m.cache(Api.v1ConfigMap().within("default"));
  const metric = (name: string) =>
    Number(
      m.registry.expose().match(
        new RegExp(`^${name}\\{resource="v1/configmaps@default"\\} (\\d+)$`, "m"),
      )?.[1],
    );
  assert.equal(metric("kube_reflector_relists_total"), 0);
  assert.equal(metric("kube_reflector_watch_restarts_total"), 0);
  // The initial sync's stream ends after its bookmark: the cache watches again from its
  // resourceVersion (a restart), which gets 410 Expired: the cache lists again (a relist).
  server.inject({ on: "watch", after: 1, fault: "close" });
  server.inject({ on: "watch", fault: { expire: true } });
  const stop = new AbortController();
  const run = m.run(stop.signal);
  await cms.ready;
  for (let i = 0; i < 60 && metric("kube_reflector_relists_total") === 0; i++) {
    await clock.advance(1_000);
  }
  assert.equal(metric("kube_reflector_watch_restarts_total"), 1);
  assert.equal(metric("kube_reflector_relists_total"), 1);
  stop.abort();
  await clock.flush();
  await run;
});

test("with the real Controller: losing the lease aborts the reconcile's ctx.signal, and the Manager campaigns only after it returned", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const a = manager(server, clock, "a");
  const log: string[] = [];
  const controller = new Controller(
    a.client,
    Api.v1ConfigMap().within("default"),
    async (object, ctx) => {
      log.push(`${clock.now()} reconcile ${object.metadata?.name}`);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      log.push(`${clock.now()} ctx.signal aborted`);
      await clock.sleep(2_000); // cleaning up after the abort takes a while
      log.push(`${clock.now()} reconcile returned`);
      throw ctx.signal.reason; // what code that passes the signal on ends with
    },
    { name: "cm", clock },
  );
  a.m.cache(Api.v1ConfigMap().within("default")); // warm on every replica, shared with it
  a.m.add(controller);
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "x", namespace: "default" },
  });
  const stop = new AbortController();
  const run = a.m.run(stop.signal);
  for (let i = 0; i < 20 && !log.length; i++) await clock.advance(10);
  assert.match(log[0], /reconcile x$/);
  a.link.cut = true; // the lease was taken at 0: the renew deadline is 10 000
  await clock.advance(10_000 - clock.now() - 1);
  assert.equal(log.length, 1, `still leading just before the renew deadline: ${log}`);
  await clock.advance(1);
  assert.deepEqual(log.slice(1), ["10000 ctx.signal aborted"]);
  a.link.cut = false;
  const requests = a.link.leaseRequests;
  await clock.advance(1_999);
  assert.equal(a.link.leaseRequests, requests, "no campaign while the reconcile still runs");
  await clock.advance(1);
  assert.ok(log.includes("12000 reconcile returned"));
  for (let i = 0; i < 20 && a.link.leaseRequests === requests; i++) await clock.advance(10);
  assert.ok(a.link.leaseRequests > requests, "campaigns again after the reconcile returned");
  assert.match(
    a.m.registry.expose(),
    /^controller_runtime_reconcile_total\{controller="cm",result="aborted"\} 1$/m,
  );
  stop.abort();
  for (
    let i = 0;
    i < 100 && !(await Promise.race([run.then(() => true), Promise.resolve(false)]));
    i++
  ) {
    await clock.advance(1_000);
  }
  await run;
});

test("a warm standby (manager.cache) that takes over reconciles every object from its cache at once, with no new list", async () => {
  await using server = new FakeApiServer();
  const clock = new VirtualClock();
  const cms = Api.v1ConfigMap().within("default");
  for (const name of ["x", "y", "z"]) {
    server.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" } });
  }
  const replicas = ["a", "b"].map((identity) => {
    const r = manager(server, clock, identity);
    const log: string[] = [];
    const cache = r.m.cache(cms); // warm on every replica
    r.m.add({
      name: "acquired",
      run: async (signal) => {
        log.push(`${clock.now()} acquired`);
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      },
    });
    r.m.add(
      new Controller(r.client, cms, (object) => {
        log.push(`${clock.now()} reconcile ${object.metadata?.name}`);
        return Promise.resolve();
      }, { name: "cm", clock }),
    );
    return { ...r, log, cache, stop: new AbortController() };
  });
  const [a, b] = replicas;
  const runA = a.m.run(a.stop.signal);
  for (let i = 0; i < 50 && a.log.length < 4; i++) await clock.advance(10);
  assert.equal(a.log.length, 4, `A leads and reconciles all three: ${a.log}`);
  const runB = b.m.run(b.stop.signal);
  let synced = false;
  b.cache.ready.then(() => synced = true);
  for (let i = 0; i < 50 && !synced; i++) await clock.advance(10);
  assert.ok(synced, "B's cache synced while A leads");
  await clock.advance(5_000);
  assert.equal(b.log.length, 0, `the standby does not reconcile: ${b.log}`);
  const requests = b.link.configMapRequests;
  assert.ok(requests >= 1, "the standby's warm cache lists and watches");
  a.stop.abort(); // graceful: A releases the lease
  await runA;
  for (let i = 0; i < 100 && b.log.length < 4; i++) await clock.advance(100);
  const [acquired, ...reconciles] = b.log;
  assert.match(acquired, / acquired$/);
  const at = Number(acquired.split(" ")[0]);
  assert.deepEqual(
    reconciles.toSorted(),
    ["x", "y", "z"].map((name) => `${at} reconcile ${name}`),
    "every object reconciled at the acquire, from the warm cache",
  );
  assert.equal(b.link.configMapRequests, requests, "no new list or watch on takeover");
  b.stop.abort();
  await runB;
});
