// deno task demo [--fake] [--follow] [--verbose]      (= deno run --allow-all examples/demo.ts)
//
// The library at work, with nothing to set up: starts an embedded API server, fills a namespace
// with pods and a custom resource, and shows a live view of a Reflector (a cache of the pods) and
// an Informer (the events of the custom resource, Foo) while it creates, changes and deletes
// objects on a schedule.
//
// The API server is the real one (kube-apiserver and etcd, built from source by testenv/build.ts
// and cached in ~/.cache/denokube/testenv; built now when Go is installed, which takes several
// minutes the first time), else the in-memory FakeApiServer of `@denokube/kube/testing`. The first
// lines of the output say which.
//
//   --fake     use the FakeApiServer even when the real API server is available
//   --follow   keep changing objects until Ctrl-C (default: stop after one round, ~25 s)
//   --verbose  show the library's trace-level logs (default: info and above)
//
// Outside this repository, import from "@denokube/kube" and "@denokube/kube/testing".

import { parseArgs } from "node:util";
import { configure, getConsoleSink } from "@logtape/logtape";
import { parse as parseYaml } from "yaml";
import {
  Api,
  type CacheChange,
  Client,
  Config,
  Informer,
  type KubeObject,
  Reflector,
  stripManagedFields,
} from "../mod.ts";
import { FakeApiServer } from "../testing.ts";
import { operatorAct } from "./_demo_operator.ts";
import { ensureBinaries, findBinaries, haveGo } from "../testenv/build.ts";
import { type ControlPlane, startControlPlane } from "../testenv/control_plane.ts";

const { values: flags } = parseArgs({
  // `deno task demo -- --fake` passes the "--" through: drop it.
  args: Deno.args.filter((arg) => arg !== "--"),
  options: {
    fake: { type: "boolean", default: false },
    follow: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
  },
});

await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["kube"], lowestLevel: flags.verbose ? "trace" : "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const NAMESPACE = "demo";
const STEP_MS = 1_800;
const started = Date.now();

/** Seconds since the start, for the live view. */
function clock(): string {
  return `+${((Date.now() - started) / 1000).toFixed(1).padStart(4)}s`;
}

// ---------------------------------------------------------------------------------------------
// The API server

interface Backend {
  client: Client;
  stop(): Promise<void>;
}

async function startReal(): Promise<Backend | string> {
  let binaries = await findBinaries();
  if (!binaries) {
    if (!(await haveGo())) {
      return "kube-apiserver is not built here and Go is not installed to build it";
    }
    console.log(
      "Building kube-apiserver and etcd from source with Go (once; a cold build takes about " +
        "8 minutes, progress below; Ctrl-C and `deno task demo --fake` to skip)…",
    );
    binaries = await ensureBinaries();
  }
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ build: false });
  } catch (e) {
    return `the control plane did not start: ${e instanceof Error ? e.message : e}`;
  }
  console.log(
    `API server: REAL kube-apiserver ${binaries.kubernetesVersion} + etcd ${binaries.etcdVersion}` +
      ` at ${cp.server}, ready in ${(cp.startMs / 1000).toFixed(1)} s` +
      ` (binaries cached in ${binaries.dir})`,
  );
  console.log(
    `            kubectl --kubeconfig ${cp.kubeconfigPath} get pods,foos -n ${NAMESPACE}`,
  );
  const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
  return {
    client,
    async stop() {
      client.close();
      await cp.stop();
    },
  };
}

async function startFake(reason: string): Promise<Backend> {
  const server = new FakeApiServer();
  await server.listen();
  // Through a kubeconfig and a socket, like a real cluster.
  const client = new Client(await Config.fromKubeconfigString(server.kubeconfig()));
  console.log(`API server: FakeApiServer (in memory) at ${server.url} — ${reason}`);
  return {
    client,
    async stop() {
      client.close();
      await server.close();
    },
  };
}

console.log("kube demo: a Reflector and an Informer against an embedded Kubernetes API server");
let backend: Backend;
if (flags.fake) {
  backend = await startFake("chosen with --fake");
} else {
  const real = await startReal();
  backend = typeof real === "string" ? await startFake(`${real}`) : real;
}
const { client } = backend;

// ---------------------------------------------------------------------------------------------
// Ctrl-C

const controller = new AbortController();
const { signal } = controller;
let interrupted = false;
const stop = () => {
  interrupted = true;
  controller.abort();
};
Deno.addSignalListener("SIGINT", stop);
if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);

/** Waits `ms`, or less when the demo is stopped. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

// ---------------------------------------------------------------------------------------------
// The objects

interface FooSpec {
  name: string;
  info: string;
  replicas?: number;
}
interface FooStatus {
  isBad?: boolean;
}

const pods = Api.v1Pod().within(NAMESPACE);
const foos = Api.customResource<FooSpec, FooStatus>("foos").group("clux.dev").version("v1")
  .within(NAMESPACE);
const crds = Api.dynamic({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});

function pod(name: string, tier: string): KubeObject {
  return {
    metadata: { name, labels: { app: "web", tier } },
    spec: { containers: [{ name: "main", image: "registry.invalid/web:1" }] },
  } as KubeObject;
}

function foo(name: string, info: string, replicas: number) {
  return { metadata: { name }, spec: { name, info, replicas } };
}

interface PodView {
  status?: { phase?: string };
}
const phaseOf = (object: KubeObject) => (object as PodView).status?.phase ?? "-";
const labelsOf = (object: KubeObject) =>
  Object.entries(object.metadata?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",") || "-";

async function setUp(): Promise<void> {
  await client.create(Api.v1Namespace(), { metadata: { name: NAMESPACE } });
  const crd = parseYaml(await Deno.readTextFile(new URL("./foo.yaml", import.meta.url)));
  await client.create(crds, crd);
  // Wait until the CRD is Established and its storage answers (the real server answers 429
  // "storage is (re)initializing" for a moment; the client retries that).
  for (let i = 0; i < 100; i++) {
    const got = await client.get(crds, "foos.clux.dev") as KubeObject & {
      status?: { conditions?: { type: string; status: string }[] };
    };
    if (got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) {
      break;
    }
    await pause(100);
  }
  await client.list(foos);
  const tiers = ["frontend", "frontend", "backend", "backend"];
  for (const [i, tier] of tiers.entries()) await client.create(pods, pod(`web-${i + 1}`, tier));
  await client.create(foos, foo("baz", "the first Foo", 1));
  console.log(
    `Set up: namespace ${NAMESPACE}, pods web-1…web-4, CRD foos.clux.dev (examples/foo.yaml), ` +
      `Foo baz`,
  );
}

// ---------------------------------------------------------------------------------------------
// The live view

function printTable<T extends KubeObject>(reflector: Reflector<T>): void {
  const rows = [["NAME", "PHASE", "LABELS", "RESOURCEVERSION"]];
  const cached = [...reflector.read().values()]
    .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
  for (const object of cached) {
    rows.push([
      object.metadata?.name ?? "",
      phaseOf(object),
      labelsOf(object),
      object.metadata?.resourceVersion ?? "",
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log(
    `         ┌ Reflector cache: ${reflector.read().size} pods in ${NAMESPACE}, ` +
      `at resourceVersion ${reflector.version()}`,
  );
  for (const row of rows) {
    console.log("         │ " + row.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  }
}

function describePodChange<T extends KubeObject>(change: CacheChange<T>): string {
  const { object, old } = change;
  let what = `phase=${phaseOf(object)}`;
  if (old && phaseOf(old) !== phaseOf(object)) what = `phase ${phaseOf(old)} → ${phaseOf(object)}`;
  else if (old && labelsOf(old) !== labelsOf(object)) what += `  labels=${labelsOf(object)}`;
  return `${what}  rv=${object.metadata?.resourceVersion}`;
}

const counts = { pods: 0, foos: 0, actions: 0 };

async function viewPods<T extends KubeObject>(reflector: Reflector<T>): Promise<void> {
  let tableTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    for await (const change of reflector.changes({ signal })) {
      counts.pods++;
      console.log(
        `${clock()}  Reflector  pod ${change.type.padEnd(8)} ${change.object.metadata?.name}  ` +
          describePodChange(change),
      );
      // One table per burst of changes (a sync reports all its changes at once; deleting a pod
      // may first set its deletionTimestamp).
      tableTimer ??= setTimeout(() => {
        tableTimer = undefined;
        printTable(reflector);
      }, 200);
    }
  } finally {
    clearTimeout(tableTimer);
  }
}

async function viewFoos(): Promise<void> {
  const informer = new Informer(client, foos);
  for await (const event of informer.stream({ signal })) {
    if (event.type === "BOOKMARK" || event.type === "ERROR") continue;
    counts.foos++;
    const { metadata, spec, status } = event.object;
    console.log(
      `${clock()}  Informer   foo ${event.type.padEnd(8)} ${metadata?.name}  ` +
        `replicas=${spec?.replicas}  info=${JSON.stringify(spec?.info)}` +
        (status?.isBad !== undefined ? `  status.isBad=${status.isBad}` : "") +
        `  rv=${metadata?.resourceVersion}`,
    );
  }
}

/** One round of changes; round 0 first, then (with --follow) 1, 2, … with fresh names. */
function script(round: number): [string, () => Promise<unknown>][] {
  const n = (i: number) => `web-${round * 10 + i}`;
  const first = round === 0 ? "web-1" : n(1);
  const foo2 = `qux-${round}`;
  const steps: [string, () => Promise<unknown>][] = [];
  if (round > 0) {
    steps.push([
      `create pod ${n(1)}`,
      () => client.create(pods, pod(n(1), "frontend"), { signal }),
    ]);
  }
  steps.push(
    [`create pod ${n(5)}`, () => client.create(pods, pod(n(5), "frontend"), { signal })],
    [
      `set status.phase of ${first} to Running`,
      () => client.patchStatus(pods, first, { status: { phase: "Running" } }, { signal }),
    ],
    [
      `label ${n(5)} tier=canary`,
      () => client.patch(pods, n(5), { metadata: { labels: { tier: "canary" } } }, { signal }),
    ],
    [`create Foo ${foo2}`, () => client.create(foos, foo(foo2, "a second Foo", 1), { signal })],
    [
      `scale Foo baz: spec.replicas=${round + 2}`,
      () => client.patch(foos, "baz", { spec: { replicas: round + 2 } }, { signal }),
    ],
    [
      `set status.isBad of Foo ${foo2}`,
      () => client.patchStatus(foos, foo2, { status: { isBad: round % 2 === 0 } }, { signal }),
    ],
    [
      `set status.phase of ${n(5)} to Running`,
      () => client.patchStatus(pods, n(5), { status: { phase: "Running" } }, { signal }),
    ],
    [`delete pod ${first}`, () => client.delete(pods, first, { gracePeriodSeconds: 0, signal })],
    [
      `set status.phase of ${n(5)} to Succeeded`,
      () => client.patchStatus(pods, n(5), { status: { phase: "Succeeded" } }, { signal }),
    ],
    [`delete Foo ${foo2}`, () => client.delete(foos, foo2, { signal })],
  );
  return steps;
}

async function act(): Promise<void> {
  for (let round = 0; round === 0 || flags.follow; round++) {
    for (const [what, action] of script(round)) {
      await pause(STEP_MS);
      if (signal.aborted) return;
      counts.actions++;
      console.log(`${clock()}  ─── ${what}`);
      await action();
    }
  }
  await pause(STEP_MS); // let the last events arrive
}

// ---------------------------------------------------------------------------------------------

let failed = false;
try {
  await setUp();
  console.log(
    `Live view: a Reflector caches the pods of ${NAMESPACE} (table after each change), an ` +
      `Informer follows the Foos; a change every ${STEP_MS / 1000} s. ` +
      (flags.follow ? "Ctrl-C to stop." : "Stops after one round (--follow: until Ctrl-C)."),
  );
  const reflector = new Reflector(client, pods).transform(stripManagedFields);
  const viewingPods = viewPods(reflector);
  const running = reflector.run({ signal });
  const viewingFoos = viewFoos();
  const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
  await Promise.race([reflector.ready, aborted]);
  await act();
  controller.abort();
  await Promise.all([running, viewingPods, viewingFoos]);
  const seen = `${counts.actions} changes made, ${counts.pods} pod changes seen by the ` +
    `Reflector, ${counts.foos} Foo events by the Informer`;
  const elapsed = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (interrupted) {
    // Ctrl-C in a terminal also reaches kube-apiserver and etcd: do not ask them anything more.
    console.log(`Interrupted after ${elapsed}: ${seen}.`);
  } else {
    // The cache must equal what the server holds now.
    const list = await client.list(pods, { signal: AbortSignal.timeout(10_000) });
    const server = list.items.map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`);
    const cache = [...reflector.read().values()]
      .map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`);
    const same = server.sort().join() === cache.sort().join();
    console.log(
      `Done in ${elapsed}: ${seen}; the cache ${same ? "equals" : "DIFFERS FROM"} a fresh ` +
        `list (${list.items.length} pods).`,
    );
    if (!same) failed = true;
    // Act 2: the Foo operator (examples/_demo_operator.ts).
    if (!failed && !(await operatorAct(client, NAMESPACE, clock))) failed = true;
  }
} catch (e) {
  if (interrupted) {
    console.log(`Interrupted: ${counts.actions} changes made.`);
  } else {
    failed = true;
    console.error(`demo failed: ${e instanceof Error ? e.stack : e}`);
  }
} finally {
  controller.abort();
  Deno.removeSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", stop);
  console.log("Stopping the API server…");
  await backend.stop();
  console.log("Stopped.");
}
if (failed) Deno.exit(1);
