/**
 * One measurement in a fresh process, so that heap figures are clean and every client starts
 * with a cold JIT: `deno run --v8-flags=--expose-gc --allow-all bench/measure.ts '<json>'`.
 * The JSON names the scenario and its parameters; the result is printed as one JSON line
 * prefixed with `RESULT `.
 *
 * @module
 */

import type * as K8s from "@kubernetes/client-node";
import { Api, type KubeObject } from "../api.ts";
import { Client } from "../client.ts";
import { Config } from "../config.ts";
import { Informer } from "../informer.ts";
import { Reflector, stripManagedFields } from "../reflector.ts";
import { prng, SENT_AT_ANNOTATION } from "./fixture.ts";
import process from "node:process";

/** The parameters of one measurement. */
export interface Job {
  scenario: string;
  port?: number;
  ns?: string;
  /** Events (watch, latency, churn) or objects (sync). */
  n?: number;
  /** Expected final state, to check that the client saw everything. */
  lastResourceVersion?: string;
  alive?: number;
  /** Churn: heap sample interval, in events. */
  sampleEvery?: number;
  /** Latency: events to ignore while the JIT warms up. */
  warmup?: number;
  strip?: boolean;
  kubeconfig?: string;
  mode?: "watchList" | "list";
  kind?: "ConfigMap";
  /** Real-cluster pods: the wire format of this library's client. */
  format?: "json" | "protobuf";
  /** The Reflector's store (`ReflectorOptions.store`). */
  store?: "objects" | "compact";
  /** After the sync: measure reads (random `get`s, a full iteration, a reconcile-like loop). */
  reads?: boolean;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  gc();
  gc();
  return Deno.memoryUsage().heapUsed;
}

/** ArrayBuffer memory outside the V8 heap (the compact store's bytes), after GC. */
function external(): number {
  heap();
  return Deno.memoryUsage().external;
}

/**
 * The cost of reading a synced Reflector: `get` of random keys (µs each), one full iteration
 * (ms), and a reconcile-like loop that reads every object once by key and a few of its fields
 * (ms).
 */
function readCosts(reflector: Reflector<KubeObject>): Result {
  const keys = [...reflector.read().keys()];
  const random = prng(42);
  const view = reflector.read();
  let sink = 0;
  const gets = 20_000;
  let t0 = performance.now();
  for (let i = 0; i < gets; i++) {
    const object = view.get(keys[Math.floor(random() * keys.length)]) as
      | PodLike
      | undefined;
    sink += object?.metadata?.name?.length ?? 0;
  }
  const getUs = (performance.now() - t0) * 1000 / gets;
  t0 = performance.now();
  for (const object of view.values()) {
    sink += (object as PodLike).spec?.nodeName?.length ?? 0;
  }
  const iterateMs = performance.now() - t0;
  t0 = performance.now();
  for (const key of keys) {
    const pod = view.get(key) as PodLike | undefined;
    sink += (pod?.spec?.nodeName?.length ?? 0) +
      (pod?.status?.phase?.length ?? 0) +
      (pod?.spec?.containers?.[0]?.image?.length ?? 0);
  }
  const reconcileMs = performance.now() - t0;
  if (sink < 0) console.log(sink);
  return { getUs, iterateMs, reconcileMs };
}

interface PodLike {
  metadata?: { name?: string };
  spec?: { nodeName?: string; containers?: { image?: string }[] };
  status?: { phase?: string };
}

function server(job: Job): string {
  return `http://127.0.0.1:${job.port}`;
}

function podsPath(job: Job): string {
  return `/api/v1/namespaces/${job.ns}/pods`;
}

function client(job: Job): Client {
  // Explicit: the loopback server speaks protobuf only when asked (rows marked protobuf).
  return new Client(Config.fromUrl(server(job)), {
    wireFormat: job.format ?? "json",
  });
}

function check(what: string, got: unknown, want: unknown): void {
  if (want !== undefined && got !== want) {
    throw new Error(
      `${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
    );
  }
}

/** client-node is loaded only by its own scenarios, so it weighs on no other heap or start. */
let k8s: typeof K8s;

async function kubeConfig(job: Job): Promise<K8s.KubeConfig> {
  k8s = await import("@kubernetes/client-node");
  const dir = await Deno.makeTempDir({ prefix: "kube-bench-" });
  const path = `${dir}/kubeconfig.yaml`;
  await Deno.writeTextFile(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: bench",
      "  cluster:",
      `    server: ${server(job)}`,
      "    insecure-skip-tls-verify: true",
      "users:",
      "- name: bench",
      "  user:",
      "    token: bench",
      "contexts:",
      "- name: bench",
      "  context:",
      "    cluster: bench",
      "    user: bench",
      "current-context: bench",
      "",
    ].join("\n"),
  );
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  await Deno.remove(dir, { recursive: true });
  return kc;
}

// ---------------------------------------------------------------------------------------------
// Watch throughput: the same stream of n events, ending when the server closes it.

type Result = Record<string, unknown>;

/** (a) The floor: fetch, decode, split lines, JSON.parse; nothing else. */
async function watchRaw(job: Job): Promise<Result> {
  const start = performance.now();
  const response = await fetch(
    `${server(job)}${podsPath(job)}?watch=1&resourceVersion=1&allowWatchBookmarks=true`,
  );
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let carry = "";
  let events = 0;
  let bytes = 0;
  let last: { object: { metadata: { resourceVersion: string } } } | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    const text = carry + decoder.decode(value, { stream: true });
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf("\n", start)) !== -1) {
      last = JSON.parse(text.slice(start, nl));
      events++;
      start = nl + 1;
    }
    carry = text.slice(start);
  }
  const ms = performance.now() - start;
  check("events", events, job.n);
  check(
    "last resourceVersion",
    last?.object.metadata.resourceVersion,
    job.lastResourceVersion,
  );
  return { ms, events, bytes };
}

/** (b) `client.watch`. */
async function watchClient(job: Job): Promise<Result> {
  const kube = client(job);
  const start = performance.now();
  let events = 0;
  let rv = "";
  for await (
    const event of kube.watch(Api.v1Pod().within(job.ns!), {
      resourceVersion: "1",
      timeoutSeconds: 3600,
    })
  ) {
    events++;
    if (event.type !== "ERROR") {
      rv = event.object.metadata?.resourceVersion ?? rv;
    }
  }
  const ms = performance.now() - start;
  kube.close();
  check("events", events, job.n);
  check("last resourceVersion", rv, job.lastResourceVersion);
  return { ms, events };
}

/** (c) `Informer`, iterated until it delivered n events. */
async function watchInformer(job: Job): Promise<Result> {
  const kube = client(job);
  const controller = new AbortController();
  const informer = new Informer(kube, Api.v1Pod().within(job.ns!), {
    resourceVersion: "1",
    watchTimeoutSeconds: 3600,
  });
  const start = performance.now();
  let events = 0;
  let rv = "";
  for await (const event of informer.stream({ signal: controller.signal })) {
    if (event.type !== "BOOKMARK" && event.type !== "ERROR") {
      rv = event.object.metadata?.resourceVersion ?? rv;
    }
    if (++events === job.n) break;
  }
  const ms = performance.now() - start;
  controller.abort();
  kube.close();
  check("last resourceVersion", rv, job.lastResourceVersion);
  return { ms, events };
}

/**
 * Runs a reflector the way a program that only reads the cache does (`run()`, no `events()`),
 * from after `init()` until `n` events went through `transform` (the last one is applied right
 * after). Returns the milliseconds.
 */
async function runUntil<T extends KubeObject>(
  reflector: Reflector<T>,
  n: number,
  options: {
    /** Applied to every object, listed or watched. */
    prepare?: (object: T) => T;
    /** Called for each watched object with its count. */
    onObject?: (object: T, seen: number) => void;
    /** Called after `init()`, before the watch. */
    onReady?: () => void;
  } = {},
): Promise<number> {
  const { prepare = (o: T) => o, onObject = () => {}, onReady = () => {} } = options;
  const all = Promise.withResolvers<void>();
  let seen = -1;
  reflector.transform((listedOrWatched) => {
    const object = prepare(listedOrWatched);
    if (seen < 0) return object; // the initial list
    onObject(object, ++seen);
    if (seen === n) all.resolve();
    return object;
  });
  await reflector.init();
  onReady();
  seen = 0;
  const controller = new AbortController();
  const start = performance.now();
  const running = reflector.run({ signal: controller.signal });
  await all.promise;
  const ms = performance.now() - start;
  controller.abort();
  await running;
  return ms;
}

/** (d) `Reflector`: an (empty) list, then the watch applied to the cache by `run()`. */
async function watchReflector(job: Job): Promise<Result> {
  const kube = client(job);
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: "list",
    watchTimeoutSeconds: 3600,
  });
  const ms = await runUntil(reflector, job.n!);
  kube.close();
  check("last resourceVersion", reflector.version(), job.lastResourceVersion);
  check("cached objects", reflector.read().size, job.alive);
  return { ms, events: job.n };
}

/** (e) `@kubernetes/client-node`'s `Watch`. */
async function watchClientNode(job: Job): Promise<Result> {
  const kc = await kubeConfig(job);
  const watcher = new k8s.Watch(kc);
  const start = performance.now();
  let events = 0;
  let rv = "";
  await new Promise<void>((resolve, reject) => {
    watcher.watch(
      podsPath(job),
      { resourceVersion: "1", allowWatchBookmarks: true },
      (_type: string, object: { metadata?: { resourceVersion?: string } }) => {
        events++;
        rv = object.metadata?.resourceVersion ?? rv;
      },
      (error: unknown) => (error ? reject(error) : resolve()),
    ).catch(reject);
  });
  const ms = performance.now() - start;
  check("events", events, job.n);
  check("last resourceVersion", rv, job.lastResourceVersion);
  return { ms, events };
}

// ---------------------------------------------------------------------------------------------
// Initial sync: time to a complete cache, and the heap it holds.

async function syncRaw(job: Job): Promise<Result> {
  const base = heap();
  const start = performance.now();
  const cache = new Map<
    string,
    { metadata: { name: string; namespace: string } }
  >();
  let token = "";
  do {
    const query = `limit=500${token ? `&continue=${encodeURIComponent(token)}` : ""}`;
    const response = await fetch(`${server(job)}${podsPath(job)}?${query}`);
    const list = JSON.parse(await response.text());
    for (const item of list.items) {
      cache.set(`${item.metadata.namespace}/${item.metadata.name}`, item);
    }
    token = list.metadata.continue ?? "";
  } while (token);
  const ms = performance.now() - start;
  const held = heap() - base;
  check("cached objects", cache.size, job.n);
  return { ms, heap: held, objects: cache.size };
}

async function syncReflector(job: Job): Promise<Result> {
  const kube = client(job);
  const base = heap();
  const ext0 = external();
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: "list",
    watchTimeoutSeconds: 3600,
    store: job.store,
  });
  if (job.strip) reflector.transform(stripManagedFields);
  const controller = new AbortController();
  const start = performance.now();
  const running = reflector.run({ signal: controller.signal });
  await reflector.ready;
  const ms = performance.now() - start;
  controller.abort();
  await running;
  const held = heap() - base;
  const ext = external() - ext0;
  check("cached objects", reflector.read().size, job.n);
  const reads = job.reads ? readCosts(reflector as Reflector<KubeObject>) : {};
  kube.close();
  return {
    ms,
    heap: held,
    external: ext,
    objects: reflector.read().size,
    ...reads,
  };
}

async function syncClientNode(job: Job): Promise<Result> {
  const kc = await kubeConfig(job);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const base = heap();
  // client-node's ListWatch lists once through listFn; page it like the others (500 per page).
  const listFn = async () => {
    const items: K8s.V1Pod[] = [];
    let token: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await core.listNamespacedPod({
        namespace: job.ns!,
        limit: 500,
        _continue: token,
      });
      for (const item of page.items) items.push(item);
      token = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion;
    } while (token);
    return { metadata: { resourceVersion }, items } as K8s.V1PodList;
  };
  const informer = k8s.makeInformer(kc, podsPath(job), listFn);
  informer.on("error", () => {});
  const start = performance.now();
  await informer.start();
  const ms = performance.now() - start;
  await informer.stop();
  const held = heap() - base;
  const objects = informer.list().length;
  check("cached objects", objects, job.n);
  return { ms, heap: held, objects };
}

// ---------------------------------------------------------------------------------------------
// Latency: a paced stream; each event carries its send time.

async function latency(job: Job): Promise<Result> {
  // Clock offset between this process and the server: the min-RTT sample of a few round trips.
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 30; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const serverNow = Number(
      await (await fetch(`${server(job)}/clock`)).text(),
    );
    const t1 = performance.timeOrigin + performance.now();
    if (t1 - t0 < best.rtt) {
      best = { rtt: t1 - t0, offset: serverNow - (t0 + t1) / 2 };
    }
  }
  const kube = client(job);
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: "list",
    watchTimeoutSeconds: 3600,
  });
  const controller = new AbortController();
  const changes = reflector.changes({ signal: controller.signal });
  const running = reflector.run({ signal: controller.signal });
  const samples: number[] = [];
  let seen = 0;
  for await (const change of changes) {
    const arrived = performance.timeOrigin + performance.now();
    const sent = Number(
      change.object.metadata?.annotations?.[SENT_AT_ANNOTATION],
    );
    if (++seen > (job.warmup ?? 0)) {
      samples.push(arrived - (sent - best.offset));
    }
    if (seen === job.n) break;
  }
  controller.abort();
  await running;
  kube.close();
  samples.sort((a, b) => a - b);
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  return {
    p50: q(0.5),
    p99: q(0.99),
    max: samples[samples.length - 1],
    samples: samples.length,
    clockOffsetMs: best.offset,
    clockRttMs: best.rtt,
  };
}

// ---------------------------------------------------------------------------------------------
// Steady state: a long churn of MODIFIED events over a full cache; heap after GC every k events.

async function churn(job: Job): Promise<Result> {
  if (job.store === "compact") return await churnCompact(job);
  const kube = client(job);
  let events = 0;
  const samples: number[] = [];
  const every = job.sampleEvery!;
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: "list",
    watchTimeoutSeconds: 3600,
  });
  let ready = 0;
  const ms = await runUntil(reflector, job.n!, {
    prepare: stripManagedFields,
    onObject: (_object, seen) => {
      events = seen;
      if (seen % every === 0) samples.push(heap());
    },
    onReady: () => ready = heap(),
  });
  kube.close();
  check("events", events, job.n);
  check("cached objects", reflector.read().size, job.alive);
  return {
    ms,
    events,
    ready,
    first: samples[0],
    last: samples[samples.length - 1],
    max: Math.max(...samples),
    min: Math.min(...samples),
    samples,
  };
}

/**
 * The churn over the compact store: the transform runs on reads there, so the events are counted
 * from `changes()` (nothing reads the objects; the changes are lazy and never decoded).
 */
async function churnCompact(job: Job): Promise<Result> {
  const kube = client(job);
  const samples: number[] = [];
  const every = job.sampleEvery!;
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: "list",
    watchTimeoutSeconds: 3600,
    store: "compact",
  }).transform(stripManagedFields);
  await reflector.init();
  const ready = heap() + external();
  const controller = new AbortController();
  const changes = reflector.changes({ signal: controller.signal });
  const start = performance.now();
  const running = reflector.run({ signal: controller.signal });
  let events = 0;
  for await (const _change of changes) {
    if (++events % every === 0) samples.push(heap() + external());
    if (events === job.n) break;
  }
  const ms = performance.now() - start;
  controller.abort();
  await running;
  kube.close();
  check("events", events, job.n);
  check("cached objects", reflector.read().size, job.alive);
  return {
    ms,
    events,
    ready,
    first: samples[0],
    last: samples[samples.length - 1],
    max: Math.max(...samples),
    min: Math.min(...samples),
    samples,
  };
}

// ---------------------------------------------------------------------------------------------
// Real control plane: WatchList vs paged list for the same objects.

async function clusterSync(job: Job): Promise<Result> {
  const kube = new Client(
    await Config.fromKubeconfig({ path: job.kubeconfig! }),
  );
  const base = heap();
  const reflector = new Reflector(kube, Api.v1ConfigMap().within(job.ns!), {
    initialSync: job.mode,
    watchTimeoutSeconds: 3600,
  });
  if (job.strip) reflector.transform(stripManagedFields);
  const controller = new AbortController();
  const start = performance.now();
  const running = reflector.run({ signal: controller.signal });
  await reflector.ready;
  const ms = performance.now() - start;
  controller.abort();
  await running;
  const held = heap() - base;
  const objects = reflector.read().size;
  check("cached objects", objects, job.n);
  kube.close();
  return { ms, heap: held, objects };
}

/** Peak resident set size of this process so far (VmHWM), in bytes. */
async function peakRss(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status").catch(() => "");
  return Number(status.match(/^VmHWM:\s*(\d+)\s*kB/m)?.[1] ?? 0) * 1024;
}

/** User + system CPU of this process, in milliseconds. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Real control plane, pods: a Reflector (WatchList or paged list, JSON or protobuf) until ready.
 * Reports time, client CPU, heap per object and peak RSS, like bench/clientgo does for client-go.
 */
async function clusterPods(job: Job): Promise<Result> {
  const kube = new Client(
    await Config.fromKubeconfig({ path: job.kubeconfig! }),
    {
      wireFormat: job.format ?? "json",
    },
  );
  const base = heap();
  const ext0 = external();
  const cpu0 = cpuMs();
  const reflector = new Reflector(kube, Api.v1Pod().within(job.ns!), {
    initialSync: job.mode,
    watchTimeoutSeconds: 3600,
    store: job.store,
  });
  if (job.strip) reflector.transform(stripManagedFields);
  const controller = new AbortController();
  const start = performance.now();
  const running = reflector.run({ signal: controller.signal });
  await reflector.ready;
  const ms = performance.now() - start;
  const cpu = cpuMs() - cpu0;
  const rss = await peakRss();
  controller.abort();
  await running;
  const held = heap() - base;
  const ext = external() - ext0;
  const objects = reflector.read().size;
  check("cached objects", objects, job.n);
  const reads = job.reads ? readCosts(reflector as Reflector<KubeObject>) : {};
  kube.close();
  return {
    ms,
    cpuMs: cpu,
    heap: held,
    external: ext,
    objects,
    peakRss: rss,
    ...reads,
  };
}

/** Real control plane, pods: client-node's informer (its ListWatch lists in one request). */
async function clusterPodsClientNode(job: Job): Promise<Result> {
  k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(job.kubeconfig!);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const base = heap();
  const cpu0 = cpuMs();
  const path = `/api/v1/namespaces/${job.ns}/pods`;
  const informer = k8s.makeInformer(
    kc,
    path,
    () => core.listNamespacedPod({ namespace: job.ns! }),
  );
  informer.on("error", () => {});
  const start = performance.now();
  await informer.start();
  const ms = performance.now() - start;
  const cpu = cpuMs() - cpu0;
  const rss = await peakRss();
  await informer.stop();
  const held = heap() - base;
  const objects = informer.list().length;
  check("cached objects", objects, job.n);
  return { ms, cpuMs: cpu, heap: held, objects, peakRss: rss };
}

const SCENARIOS: Record<string, (job: Job) => Promise<Result>> = {
  "cluster-pods": clusterPods,
  "cluster-pods-client-node": clusterPodsClientNode,
  "watch-raw": watchRaw,
  "watch-client": watchClient,
  "watch-informer": watchInformer,
  "watch-reflector": watchReflector,
  "watch-client-node": watchClientNode,
  "sync-raw": syncRaw,
  "sync-reflector": syncReflector,
  "sync-client-node": syncClientNode,
  latency,
  churn,
  "cluster-sync": clusterSync,
};

if (import.meta.main) {
  const job = JSON.parse(Deno.args[0]) as Job;
  const run = SCENARIOS[job.scenario];
  if (!run) throw new Error(`unknown scenario ${job.scenario}`);
  const result = await run(job);
  console.log(`RESULT ${JSON.stringify(result)}`);
  // client-node may leave sockets or timers behind; the measurement is done.
  Deno.exit(0);
}
