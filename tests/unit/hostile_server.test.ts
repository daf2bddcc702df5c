// Randomized (seeded, reproducible): the Client, watch, Informer, Reflector and Controller talk to
// a HostileApiServer (testing/hostile.ts) that answers a share of their requests with truncations,
// endless lines and frames, absurd lengths, invalid UTF-8, wrong content types, a slowloris,
// redirect loops, swapped formats, huge headers, absurd Retry-After values and echoed
// credentials, while the objects change on the honest server behind it. Then the hostility stops.
// Asserted for every seed:
// - no crash and no unhandled rejection (the test runner fails on one);
// - every failure is an ApiError with a message (never a RangeError, a TypeError, a SyntaxError);
// - every loop recovers: the Reflector's cache and the Informer's replay equal the server's
//   objects, and the Controller reconciles an object created after the calm; or the loop failed
//   with an ApiError that names the problem (a redirect, a refused credential: permanent);
// - memory stays bounded: the client stops reading an endless line or frame at its cap (64 Mi);
// - no secret (the token, its Authorization header) in any error, cause chain or log record
//   (trace level).
//
// Reproduce one seed: SEED=3 deno test -A tests/unit/hostile_server.test.ts; more: SEEDS=50.

import assert from "node:assert/strict";
import process from "node:process";
import { inspect } from "node:util";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Api, type KubeObject } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { Informer } from "../../informer.ts";
import { Reflector } from "../../reflector.ts";
import { watch, type WatchEvent } from "../../watch.ts";
import { Controller } from "../../runtime/controller.ts";
import {
  FakeApiServer,
  HOSTILE_KINDS,
  HostileApiServer,
  type HostileKind,
  VirtualClock,
} from "../../testing/mod.ts";
import { MAX_LINE_CHARS } from "../../_client/lines.ts";
import { test } from "../_test.ts";
import { rng } from "./_helpers.ts";

const TOKEN = "hostile-suite-token-5f3a9c7e1d";
const api = Api.v1ConfigMap().within("default") as Api<KubeObject>;
const fast = {
  backoff: { initialMs: 1, maxMs: 8, resetAfterMs: 1000 },
  watchTimeoutSeconds: 2,
  inactivityTimeoutMs: 150,
  pageSize: 4,
};

interface Totals {
  requests: number;
  hostile: Partial<Record<HostileKind, number>>;
  errors: unknown[];
  namedFailures: string[];
  maxStreamBytes: number;
}

function state(objects: Iterable<KubeObject>): Map<string, string> {
  return new Map([...objects].map((o) => [api.keyOf(o), o.metadata!.resourceVersion!]));
}

function diff(expected: Map<string, string>, actual: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, rv] of expected) {
    if (actual.get(k) !== rv) lines.push(`${k}: expected rv ${rv}, got ${actual.get(k)}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) lines.push(`${k}: should not exist`);
  return lines.slice(0, 5).join("; ");
}

/** The ApiError of a failure: the error, or the one its cause chain holds (a Controller's). */
function apiErrorOf(e: unknown): ApiError | undefined {
  for (let c = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    if (c instanceof ApiError) return c;
  }
  return undefined;
}

/** An ApiError (or an error caused by one) with a message: a failure that names its problem. */
function named(e: unknown): string | undefined {
  const api = apiErrorOf(e);
  if (!api) return `not an ApiError: ${inspect(e)}`;
  if (!api.message || api.message.length < 10) {
    return `an ApiError without a message: ${inspect(e)}`;
  }
  return undefined;
}

async function runSeed(seed: number, totals: Totals): Promise<string[]> {
  const problems: string[] = [];
  const random = rng(seed);
  await using server = new FakeApiServer({ bookmarkIntervalMs: 50 });
  for (let i = 0; i < 4; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `seed-${i}`, namespace: "default" },
    });
  }
  const honest = server.client();
  const hostile = new HostileApiServer(server, { seed, rate: 0.35 });
  // The Controller's shared cache has the default inactivity timeout (minutes): no slowloris.
  const hostileForController = new HostileApiServer(server, {
    seed: seed ^ 0x9e3779b9,
    rate: 0.35,
    kinds: HOSTILE_KINDS.filter((k) => k !== "slowloris"),
  });
  // Retry-After of years is capped (60 s) on a virtual clock that runs ahead when anything waits.
  const clock = new VirtualClock(Date.now());
  let ticking = true;
  const ticker = (async () => {
    while (ticking) {
      await new Promise((r) => setTimeout(r, 1));
      if (clock.pending > 0) await clock.tick();
    }
  })();
  const clientOptions = { maxRetries: 2, retryBaseMs: 1, retryMaxMs: 5, clock };
  const client = hostile.client(clientOptions, { token: TOKEN });
  const controllerClient = hostileForController.client(clientOptions, { token: TOKEN });
  const stop = new AbortController();

  const reflector = new Reflector(client, api, { ...fast, clock });
  const reflectorRun = reflector.run({ signal: stop.signal }).then(
    () => undefined,
    (e) => e,
  );
  const replay = new Map<string, string>();
  const informerRun = (async () => {
    for await (
      const ev of new Informer(client, api, { ...fast, clock }).stream({ signal: stop.signal })
    ) apply(replay, ev);
  })().then(() => undefined, (e) => e);
  const reconciled = new Set<string>();
  const controller = new Controller(controllerClient, api, (cm) => {
    reconciled.add(cm.metadata!.name!);
    return Promise.resolve(undefined);
  }, { clock, backoff: { initialMs: 1, maxMs: 10 } });
  const controllerRun = controller.run(stop.signal).then(() => undefined, (e) => e);

  try {
    // Plain verbs and one raw watch, through the hostile server, while the objects change.
    const names = ["seed-0", "seed-1", "seed-2", "seed-3"];
    for (let op = 0; op < 16; op++) {
      const r = random();
      const name = names[Math.floor(random() * names.length)];
      const attempt = r < 0.3
        ? client.get(api, name)
        : r < 0.55
        ? client.list(api)
        : r < 0.7
        ? client.patch(api, name, { data: { op: String(op) } })
        : r < 0.8
        ? (async () => {
          for await (
            const _ of watch(client, api, { inactivityTimeoutMs: 150, timeoutSeconds: 1 })
          ) {
            if (random() < 0.2) break;
          }
        })()
        : honest.patch(api, name, { data: { honest: String(op) } });
      try {
        await attempt;
      } catch (e) {
        totals.errors.push(e);
        const problem = named(e);
        if (problem) problems.push(`op ${op}: ${problem}`);
      }
      if (random() < 0.3) {
        const created = `cm-${seed}-${op}`;
        await honest.create(api, { metadata: { name: created } } as KubeObject);
        names.push(created);
      }
      await new Promise((r) => setTimeout(r, Math.floor(random() * 10)));
    }

    hostile.calm();
    hostileForController.calm();
    const final = `final-${seed}`;
    await honest.create(api, { metadata: { name: final } } as KubeObject);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const expected = state(server.objects("ConfigMap"));
      // A loop that failed for good (with a named error, checked below) is not waited for.
      const ended = async (run: Promise<unknown>) =>
        await Promise.race([
          run.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 0)),
        ]);
      const reflectorOk = await ended(reflectorRun) ||
        diff(expected, state(reflector.read().values())) === "";
      const informerOk = await ended(informerRun) || diff(expected, replay) === "";
      const controllerOk = await ended(controllerRun) || reconciled.has(final);
      if (reflectorOk && informerOk && controllerOk) break;
      if (Date.now() > deadline) {
        problems.push(
          `did not recover: reflector ${
            reflectorOk ? "ok" : diff(expected, state(reflector.read().values()))
          } | informer ${informerOk ? "ok" : diff(expected, replay)} | controller ${
            controllerOk ? "ok" : "never reconciled the object created after the calm"
          }`,
        );
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    stop.abort();
    for (
      const [what, run] of [
        ["reflector", reflectorRun],
        ["informer", informerRun],
        ["controller", controllerRun],
      ] as const
    ) {
      const e = await run;
      if (e === undefined || stop.signal.reason === e) continue;
      if (e instanceof DOMException && e.name === "AbortError") continue;
      totals.errors.push(e);
      const problem = named(e);
      if (problem) problems.push(`${what}: ${problem}`);
      else totals.namedFailures.push(`${what}: ${apiErrorOf(e)!.reason || apiErrorOf(e)!.status}`);
    }
    ticking = false;
    await ticker;
    client.close();
    controllerClient.close();
    totals.requests += hostile.requests + hostileForController.requests;
    for (const h of [hostile, hostileForController]) {
      for (const [k, n] of Object.entries(h.answered)) {
        totals.hostile[k as HostileKind] = (totals.hostile[k as HostileKind] ?? 0) + n;
      }
      totals.maxStreamBytes = Math.max(totals.maxStreamBytes, h.maxStreamBytes);
    }
  }
  return problems;
}

function apply(replay: Map<string, string>, ev: WatchEvent<KubeObject>) {
  if (ev.type === "ADDED" || ev.type === "MODIFIED") {
    replay.set(api.keyOf(ev.object), ev.object.metadata!.resourceVersion!);
  } else if (ev.type === "DELETED") {
    replay.delete(api.keyOf(ev.object));
  }
}

test("hostile server: no crash, every loop recovers or names its failure, bounded reads, no secret anywhere", async () => {
  const only = process.env.SEED;
  const count = Number(process.env.SEEDS ?? "8");
  const seeds = only !== undefined
    ? [Number(only)]
    : Array.from({ length: count }, (_, i) => i + 1);
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["kube"], lowestLevel: "trace", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  const totals: Totals = {
    requests: 0,
    hostile: {},
    errors: [],
    namedFailures: [],
    maxStreamBytes: 0,
  };
  const failures: string[] = [];
  const baseline = process.memoryUsage();
  let peak = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.external - baseline.heapUsed - baseline.external);
  }, 5);
  const started = Date.now();
  try {
    for (const seed of seeds) {
      const problems = await runSeed(seed, totals);
      for (const p of problems) failures.push(`seed ${seed}: ${p}`);
    }
  } finally {
    clearInterval(sampler);
    await reset();
  }
  const hostileAnswers = Object.values(totals.hostile).reduce((a, b) => a + (b ?? 0), 0);
  console.error(
    `hostile server: ${seeds.length} seeds in ${Date.now() - started} ms, ${totals.requests} ` +
      `requests, ${hostileAnswers} hostile answers ${JSON.stringify(totals.hostile)}; ` +
      `${totals.errors.length} errors, all named: ${failures.length === 0}; loops that failed ` +
      `for good with a named error: ${totals.namedFailures.length} ` +
      `(${[...new Set(totals.namedFailures)].join(", ")}); most bytes read of one hostile ` +
      `stream ${(totals.maxStreamBytes / 1048576).toFixed(1)} MiB; peak heap+external over ` +
      `the start ${(peak / 1048576).toFixed(0)} MiB; ${records.length} log records`,
  );
  assert.deepEqual(failures, []);
  // The hostility really happened, of many kinds.
  assert.ok(hostileAnswers >= seeds.length * 3, `only ${hostileAnswers} hostile answers`);
  // Bounded: an endless line or frame is read up to the cap and a read chunk, never further.
  assert.ok(totals.maxStreamBytes <= MAX_LINE_CHARS + 2 * 1024 * 1024, `${totals.maxStreamBytes}`);
  // No secret: in any error (message, cause chain, stack) or log record.
  const text = inspect(totals.errors, { depth: 12 }) +
    JSON.stringify(records.map((r) => [r.message, r.properties]));
  for (const secret of [TOKEN, TOKEN.slice(0, 12), `Bearer ${TOKEN.slice(0, 6)}`]) {
    assert.ok(!text.includes(secret), `a log record or error contains ${secret.slice(0, 8)}…`);
  }
});
