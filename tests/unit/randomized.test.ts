// Randomized: for each seed, random creates/updates/deletes on the FakeApiServer with faults
// injected at random points (stream close, stall, malformed and truncated lines, 410 in both
// forms, 429/500/503, refused connections, compaction, expired continue tokens). After the faults
// stop and the stream settles, the Reflector's map must equal the server's objects exactly (same
// keys, same resourceVersions) and the Informer's delivered events must replay to the same state.
//
// Reproduce one seed: SEED=123 deno test --allow-all tests/unit/randomized.test.ts
// More seeds: SEEDS=1000 …; library debug logs and the event trace: DEBUG=1

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import { Informer } from "../../informer.ts";
import { Reflector } from "../../reflector.ts";
import type { WatchEvent } from "../../watch.ts";
import { FakeApiServer, type Fault } from "../../testing/mod.ts";
import { test } from "../_test.ts";
import process from "node:process";
import { rng } from "./_helpers.ts";

const WATCH_FAULTS: Fault[] = [
  "close",
  "stall",
  "malformed-line",
  "truncate",
  "bookmark-only",
  { expire: "Expired" },
  { expire: "Gone" },
  { expire: true, http: true },
  { status: 500 },
  { status: 503 },
  { status: 429, retryAfter: 0, body: "slow down" },
  "reset",
];
const LIST_FAULTS: Fault[] = [{ status: 503 }, { status: 500 }, "reset", {
  status: 429,
  retryAfter: 0,
}];

const fast = {
  backoff: { initialMs: 1, maxMs: 8, resetAfterMs: 1000 },
  watchTimeoutSeconds: 2,
  inactivityTimeoutMs: 150,
  pageSize: 3,
};

function state(objects: Iterable<KubeObject>, api: Api<KubeObject>): Map<string, string> {
  return new Map([...objects].map((o) => [api.keyOf(o), o.metadata!.resourceVersion!]));
}

function diff(expected: Map<string, string>, actual: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, rv] of expected) {
    if (actual.get(k) !== rv) lines.push(`${k}: expected rv ${rv}, got ${actual.get(k)}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) lines.push(`${k}: should not exist`);
  return lines.slice(0, 10).join("; ");
}

const DEBUG = process.env.DEBUG === "1";
let faultHits = 0;
let relistsForced = 0;

async function runSeed(seed: number): Promise<string | undefined> {
  const random = rng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  await using server = new FakeApiServer({
    historySize: 20 + Math.floor(random() * 40),
    bookmarkIntervalMs: 50,
  });
  const client = server.client({ retryBaseMs: 1, retryMaxMs: 5 });
  const api = Api.v1ConfigMap().within("default") as Api<KubeObject>;
  for (let i = 0; i < Math.floor(random() * 8); i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `seed-${i}`, namespace: "default" },
    });
  }

  const handles: { hits: number }[] = [];
  const inject = (rule: Parameters<typeof server.inject>[0]) => {
    if (DEBUG) console.error("inject", JSON.stringify(rule));
    return server.inject(rule);
  };
  // Streams end every few events, so each new watch request meets the faults queued meanwhile.
  const cycle = rng(seed ^ 0x5bd1e995);
  handles.push(server.inject({
    on: (request) => request.verb === "watch" && cycle() < 0.6,
    after: 1 + Math.floor(random() * 3),
    times: Infinity,
    fault: "close",
  }));
  const controller = new AbortController();
  const reflector = new Reflector(client, api, {
    ...fast,
    initialSync: pick(["auto", "list", "watchList"] as const),
  });
  const replay = new Map<string, string>();
  const informerDone = (async () => {
    for await (const ev of new Informer(client, api, fast).stream({ signal: controller.signal })) {
      if (DEBUG) {
        console.error(
          "informer",
          ev.type,
          ev.type === "BOOKMARK"
            ? ev.resourceVersion
            : `${ev.object.metadata?.name} ${ev.object.metadata?.resourceVersion}`,
        );
      }
      apply(replay, api, ev);
    }
  })();
  const reflectorDone = reflector.run({ signal: controller.signal });
  try {
    const names: string[] = [];
    let next = 0;
    const ops = 15 + Math.floor(random() * 30);
    for (let op = 0; op < ops; op++) {
      const r = random();
      if (r < 0.25) {
        handles.push(
          server.inject({
            on: "watch",
            after: Math.floor(random() * 4),
            fault: pick(WATCH_FAULTS),
          }),
        );
      } else if (r < 0.3) {
        handles.push(
          inject({ on: "list", after: Math.floor(random() * 2), fault: pick(LIST_FAULTS) }),
        );
      } else if (r < 0.34) {
        server.compact();
        relistsForced++;
      } else if (r < 0.37) {
        server.expireContinueTokens();
      }
      const kind = names.length === 0 ? 0 : random();
      if (kind < 0.45) {
        const name = `cm-${next++}`;
        await client.create(api, { metadata: { name }, data: { v: "0" } } as KubeObject);
        names.push(name);
      } else if (kind < 0.8) {
        await client.patch(api, pick(names), { data: { v: String(op) } });
      } else {
        const i = Math.floor(random() * names.length);
        await client.delete(api, names[i]);
        names.splice(i, 1);
      }
      if (random() < 0.3) await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
    }
    server.clearFaults();
    // Settle: a write after the faults makes every healthy watcher catch up to the final state.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const expected = state(server.objects("ConfigMap"), api);
      const cache = state(reflector.read().values(), api);
      if (diff(expected, cache) === "" && diff(expected, replay) === "") return undefined;
      if (Date.now() > deadline) {
        return `reflector: ${diff(expected, cache) || "ok"} | informer replay: ${
          diff(expected, replay) || "ok"
        }`;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    faultHits += handles.reduce((n, h) => n + h.hits, 0);
    controller.abort();
    await reflectorDone.catch(() => {});
    await informerDone.catch(() => {});
  }
}

function apply(replay: Map<string, string>, api: Api<KubeObject>, ev: WatchEvent<KubeObject>) {
  if (ev.type === "ADDED" || ev.type === "MODIFIED") {
    replay.set(api.keyOf(ev.object), ev.object.metadata!.resourceVersion!);
  } else if (ev.type === "DELETED") {
    replay.delete(api.keyOf(ev.object));
  }
}

if (DEBUG) {
  const { configure, getConsoleSink } = await import("@logtape/logtape");
  await configure({
    sinks: { c: getConsoleSink() },
    loggers: [{ category: ["kube"], lowestLevel: "debug", sinks: ["c"] }, {
      category: ["logtape", "meta"],
      lowestLevel: "error",
      sinks: [],
    }],
  });
}

test("randomized: faults at random points never leave the cache or the event replay wrong", async () => {
  const only = process.env.SEED;
  const count = Number(process.env.SEEDS ?? "200");
  const seeds = only !== undefined
    ? [Number(only)]
    : Array.from({ length: count }, (_, i) => i + 1);
  const failures: string[] = [];
  for (const seed of seeds) {
    const problem = await runSeed(seed);
    if (problem) {
      failures.push(`seed ${seed}: ${problem}`);
      console.error(`randomized: seed ${seed} FAILED (reproduce with SEED=${seed}): ${problem}`);
    }
  }
  console.error(
    `randomized: ${seeds.length} seeds, ${failures.length} failed; ${faultHits} faults hit, ${relistsForced} compactions`,
  );
  // The faults really happened: otherwise this test proves nothing.
  assert.ok(faultHits > seeds.length, `only ${faultHits} injected faults were hit`);
  assert.deepEqual(failures, []);
});
