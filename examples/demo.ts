// deno task demo [--fake] [--follow] [--verbose]      (= deno run --allow-all examples/demo.ts)
//
// The library at work on a whole small cluster, with nothing to set up: it starts a real
// Kubernetes control plane with its controllers, a scheduler and two simulated nodes, and shows a
// live view of a Reflector (a cache of the pods) and an Informer (the events of a custom resource,
// Foo) while it rolls out a Deployment, scales it up and down (its pods go Pending → Running on
// the nodes), changes Foos and deletes owners, whose dependants the garbage collector removes.
//
// The cluster is real: kube-apiserver, etcd, kube-controller-manager and kube-scheduler, and KWOK
// playing the nodes (their kubelets), built from source by testenv/build.ts and cached in
// ~/.cache/denokube/testenv (built now when Go is installed, which takes several minutes the
// first time). Without them it falls back to the in-memory FakeApiServer of
// `@denokube/kube/testing`, which has no controllers: then the demo makes the pods itself and they
// stay Pending. The first lines of the output say which.
//
//   --fake               use the FakeApiServer even when the real cluster is available
//   --kubeconfig=<path>  run on the cluster of that kubeconfig instead of starting one (it makes
//                        namespace demo and CRD foos.clux.dev, and deletes the namespace at the end)
//   --step-ms=<ms>       the pause between changes (default 1800)
//   --follow             keep changing objects until Ctrl-C (default: stop after one round, ~25 s)
//   --verbose            show the library's trace-level logs (default: info and above)
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
  isAlreadyExists,
  type KubeObject,
  Reflector,
  stripManagedFields,
} from "../mod.ts";
import { FakeApiServer } from "../testing/mod.ts";
import { operatorAct } from "./_demo_operator.ts";
import { webhookAct } from "./_demo_webhooks.ts";
import { ensureBinaries, findBinaries, haveGo } from "../testenv/build.ts";
import { type ControlPlane, startControlPlane } from "../testenv/control_plane.ts";

const { values: flags } = parseArgs({
  // `deno task demo -- --fake` passes the "--" through: drop it.
  args: Deno.args.filter((arg) => arg !== "--"),
  options: {
    fake: { type: "boolean", default: false },
    kubeconfig: { type: "string" },
    "step-ms": { type: "string", default: "1800" },
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
const STEP_MS = Number(flags["step-ms"]);
if (!Number.isInteger(STEP_MS) || STEP_MS < 0) {
  throw new RangeError(`--step-ms=${flags["step-ms"]}: give the pause in whole milliseconds`);
}
/** Reset when the cluster is ready: the view's clock does not count the build or the start. */
let started = Date.now();

/** Seconds since the cluster was ready, for the live view. */
function clock(): string {
  return `+${((Date.now() - started) / 1000).toFixed(1).padStart(4)}s`;
}

// ---------------------------------------------------------------------------------------------
// The cluster

interface Backend {
  client: Client;
  /** True for a real cluster (controllers, scheduler, nodes); false for the FakeApiServer. */
  real: boolean;
  /** True when the cluster is the user's (`--kubeconfig`): the demo cleans up after itself. */
  borrowed?: boolean;
  /** The kubeconfig of a real cluster (act 3 runs kubectl with it). */
  kubeconfigPath?: string;
  /** The FakeApiServer, when it is the backend (act 3 registers webhooks in it). */
  fake?: FakeApiServer;
  stop(): Promise<void>;
}

async function useKubeconfig(path: string): Promise<Backend> {
  const client = new Client(await Config.fromKubeconfig({ path }));
  console.log(`Cluster: yours, from ${path}, at ${client.config.server}`);
  return {
    client,
    real: true,
    borrowed: true,
    kubeconfigPath: path,
    stop() {
      client.close();
      return Promise.resolve();
    },
  };
}

async function startReal(): Promise<Backend | string> {
  let binaries = await findBinaries();
  if (!binaries) {
    if (!(await haveGo())) {
      return "the cluster's binaries are not built here and Go is not installed to build them";
    }
    console.log(
      "Building kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok from " +
        "source with Go (once; a cold build takes about 10 minutes, progress below; Ctrl-C and " +
        "`deno task demo --fake` to skip)…",
    );
    binaries = await ensureBinaries();
  }
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ build: false, cluster: "full" });
  } catch (e) {
    return `the cluster did not start: ${e instanceof Error ? e.message : e}`;
  }
  console.log(
    `Cluster: REAL Kubernetes ${binaries.kubernetesVersion} (kube-apiserver, etcd ` +
      `${binaries.etcdVersion}, kube-controller-manager, kube-scheduler) and KWOK ` +
      `${binaries.kwokVersion} playing ${cp.kwok!.nodes.length} nodes ` +
      `(${cp.kwok!.nodes.join(", ")}), at ${cp.server}, ready in ${
        (cp.startMs / 1000).toFixed(1)
      } s`,
  );
  console.log(
    `         kubectl --kubeconfig ${cp.kubeconfigPath} get deploy,pods,foos -n ${NAMESPACE} -o wide`,
  );
  const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
  return {
    client,
    real: true,
    kubeconfigPath: cp.kubeconfigPath,
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
  console.log(
    `API server: FakeApiServer (in memory) at ${server.url} — ${reason}. It has no controllers ` +
      `and no nodes: the demo creates and deletes pods itself, and they stay Pending.`,
  );
  return {
    client,
    real: false,
    fake: server,
    async stop() {
      client.close();
      await server.close();
    },
  };
}

console.log("kube demo: a Reflector and an Informer on a small Kubernetes cluster");
let backend: Backend;
if (flags.fake) {
  backend = await startFake("chosen with --fake");
} else if (flags.kubeconfig) {
  backend = await useKubeconfig(flags.kubeconfig);
} else {
  const real = await startReal();
  backend = typeof real === "string" ? await startFake(`${real}`) : real;
}
const { client } = backend;
started = Date.now();

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
const deployments = Api.appsV1Deployment().within(NAMESPACE);
const configMaps = Api.v1ConfigMap().within(NAMESPACE);
const foos = Api.customResource<FooSpec, FooStatus>("foos").group("clux.dev").version("v1")
  .within(NAMESPACE);
const crds = Api.dynamic({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});

function deployment(name: string, replicas: number): KubeObject {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
      },
    },
  } as KubeObject;
}

/** A pod the demo makes itself (FakeApiServer only: there are no controllers there). */
function pod(name: string): KubeObject {
  return {
    metadata: { name, labels: { app: "web" } },
    spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
  } as KubeObject;
}

function foo(name: string, info: string, replicas: number) {
  return { metadata: { name }, spec: { name, info, replicas } };
}

interface PodView {
  spec?: { nodeName?: string };
  status?: { phase?: string };
}
const phaseOf = (object: KubeObject) => (object as PodView).status?.phase ?? "-";
const nodeOf = (object: KubeObject) => (object as PodView).spec?.nodeName ?? "-";

/** Whether the demo made its namespace (then it may delete it). */
let madeNamespace = false;

async function setUp(): Promise<void> {
  try {
    await client.create(Api.v1Namespace(), { metadata: { name: NAMESPACE } });
    madeNamespace = true;
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    throw new Error(
      `namespace ${NAMESPACE} exists already (from an earlier demo?): delete it first, ` +
        `kubectl delete namespace ${NAMESPACE}`,
    );
  }
  const crd = parseYaml(await Deno.readTextFile(new URL("./foo.yaml", import.meta.url)));
  try {
    await client.create(crds, crd);
  } catch (e) {
    if (!isAlreadyExists(e)) throw e; // a cluster that has the CRD already: use it
  }
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
  await client.create(foos, foo("baz", "the first Foo", 1));
  console.log(`Set up: namespace ${NAMESPACE}, CRD foos.clux.dev (examples/foo.yaml), Foo baz`);
}

// ---------------------------------------------------------------------------------------------
// The live view

function printTable<T extends KubeObject>(reflector: Reflector<T>): void {
  const rows = [["NAME", "PHASE", "NODE", "RESOURCEVERSION"]];
  const cached = [...reflector.read().values()]
    .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
  for (const object of cached) {
    rows.push([
      object.metadata?.name ?? "",
      phaseOf(object) + (object.metadata?.deletionTimestamp ? " (terminating)" : ""),
      nodeOf(object),
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
  if (old && nodeOf(old) !== nodeOf(object)) what += `  scheduled on ${nodeOf(object)}`;
  else if (nodeOf(object) !== "-") what += `  node=${nodeOf(object)}`;
  if (object.metadata?.deletionTimestamp && !old?.metadata?.deletionTimestamp) {
    what += "  terminating";
  }
  return `${what}  rv=${object.metadata?.resourceVersion}`;
}

const counts = { pods: 0, foos: 0, actions: 0, running: 0 };

async function viewPods<T extends KubeObject>(reflector: Reflector<T>): Promise<void> {
  let tableTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    for await (const change of reflector.changes({ signal })) {
      counts.pods++;
      if (change.old && phaseOf(change.old) === "Pending" && phaseOf(change.object) === "Running") {
        counts.running++;
      }
      console.log(
        `${clock()}  Reflector  pod ${change.type.padEnd(8)} ${change.object.metadata?.name}  ` +
          describePodChange(change),
      );
      // One table per burst of changes (a rollout changes several pods at once).
      tableTimer ??= setTimeout(() => {
        tableTimer = undefined;
        printTable(reflector);
      }, 300);
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

/** Waits (up to 30 s) until the garbage collector has deleted a ConfigMap, and says so. */
async function collected(name: string, owner: string): Promise<void> {
  for (let i = 0; i < 300 && !signal.aborted; i++) {
    const list = await client.list(configMaps, { signal });
    if (!list.items.some((cm) => cm.metadata?.name === name)) {
      console.log(
        `${clock()}  ─── the garbage collector deleted ConfigMap ${name}: its owner ${owner} is gone`,
      );
      return;
    }
    await pause(100);
  }
  throw new Error(`ConfigMap ${name} was not garbage-collected after its owner ${owner} went`);
}

/** Waits (up to 30 s) until the pods labelled `app=<app>` are gone (deleted, not terminating). */
async function podsGone(app: string): Promise<void> {
  for (let i = 0; i < 300 && !signal.aborted; i++) {
    const list = await client.list(pods, { labelSelector: `app=${app}`, signal });
    if (list.items.length === 0) {
      console.log(`${clock()}  ─── the pods of ${app} are gone`);
      return;
    }
    await pause(100);
  }
  if (!signal.aborted) throw new Error(`the pods of ${app} were not deleted after 30 s`);
}

/**
 * Whether the Reflector's cache equals a fresh list, waiting (up to 10 s) for it to catch up: it
 * follows the server through a watch, so a list can be ahead of it by the events in flight.
 */
async function cacheMatchesServer<T extends KubeObject>(
  reflector: Reflector<T>,
): Promise<{ same: boolean; count: number }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const list = await client.list(pods, { signal: AbortSignal.timeout(10_000) });
    const server = list.items.map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`);
    const cache = [...reflector.read().values()]
      .map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`);
    const same = server.sort().join() === cache.sort().join();
    if (same || Date.now() > deadline) return { same, count: list.items.length };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

type Step = [string, () => Promise<unknown>];

/** One round on the real cluster; round 0 first, then (with --follow) 1, 2, … with fresh names. */
function clusterScript(round: number): Step[] {
  const web = round === 0 ? "web" : `web-${round}`;
  const foo2 = `qux-${round}`;
  const settings = `${web}-settings`;
  const scale = (replicas: number) => () =>
    client.patchScale(deployments, web, { spec: { replicas } }, { signal });
  return [
    [
      `create Deployment ${web} (2 replicas): the controller-manager makes its pods, the ` +
      `scheduler places them, the nodes run them`,
      () => client.create(deployments, deployment(web, 2), { signal }),
    ],
    [`create Foo ${foo2}`, () => client.create(foos, foo(foo2, "a second Foo", 1), { signal })],
    [`scale Deployment ${web} up to 4`, scale(4)],
    [
      `scale Foo baz: spec.replicas=${round + 2}`,
      () => client.patch(foos, "baz", { spec: { replicas: round + 2 } }, { signal }),
    ],
    [
      `create ConfigMap ${settings}, owned by Deployment ${web} (an ownerReference)`,
      async () => {
        const owner = await client.get(deployments, web, { signal });
        await client.create(configMaps, {
          metadata: {
            name: settings,
            ownerReferences: [{
              apiVersion: "apps/v1",
              kind: "Deployment",
              name: web,
              uid: owner.metadata!.uid!,
            }],
          },
          data: { greeting: "hello" },
        }, { signal });
      },
    ],
    [
      `set status.isBad of Foo ${foo2}`,
      () => client.patchStatus(foos, foo2, { status: { isBad: round % 2 === 0 } }, { signal }),
    ],
    [`scale Deployment ${web} down to 1`, scale(1)],
    [`delete Foo ${foo2}`, () => client.delete(foos, foo2, { signal })],
    [
      `delete Deployment ${web}: the garbage collector removes what it owns (its ReplicaSet, ` +
      `whose pods go next, and ConfigMap ${settings})`,
      async () => {
        await client.delete(deployments, web, { propagationPolicy: "Background", signal });
        await collected(settings, `Deployment ${web}`);
        await podsGone(web);
      },
    ],
  ];
}

/** One round on the FakeApiServer: no controllers, so the demo makes and deletes pods itself. */
function fakeScript(round: number): Step[] {
  const n = (i: number) => `web-${round * 10 + i}`;
  const foo2 = `qux-${round}`;
  return [
    [`create pod ${n(1)}`, () => client.create(pods, pod(n(1)), { signal })],
    [`create pod ${n(2)}`, () => client.create(pods, pod(n(2)), { signal })],
    [`create Foo ${foo2}`, () => client.create(foos, foo(foo2, "a second Foo", 1), { signal })],
    [
      `scale Foo baz: spec.replicas=${round + 2}`,
      () => client.patch(foos, "baz", { spec: { replicas: round + 2 } }, { signal }),
    ],
    [
      `set status.isBad of Foo ${foo2}`,
      () => client.patchStatus(foos, foo2, { status: { isBad: round % 2 === 0 } }, { signal }),
    ],
    [`delete pod ${n(1)}`, () => client.delete(pods, n(1), { gracePeriodSeconds: 0, signal })],
    [`delete Foo ${foo2}`, () => client.delete(foos, foo2, { signal })],
    [`delete pod ${n(2)}`, () => client.delete(pods, n(2), { gracePeriodSeconds: 0, signal })],
  ];
}

async function act(): Promise<void> {
  const script = backend.real ? clusterScript : fakeScript;
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
    `Live view: a Reflector caches the pods of ${NAMESPACE} (a table after each burst of ` +
      `changes), an Informer follows the Foos; a change every ${STEP_MS / 1000} s. ` +
      (flags.follow ? "Ctrl-C to stop." : "Stops after one round (--follow: until Ctrl-C)."),
  );
  const reflector = new Reflector(client, pods).transform(stripManagedFields);
  const viewingPods = viewPods(reflector);
  const running = reflector.run({ signal });
  const viewingFoos = viewFoos();
  const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
  await Promise.race([reflector.ready, aborted]);
  await act();
  // Compared while the Reflector still runs, so that it can catch up with the events in flight.
  const compared = interrupted ? undefined : await cacheMatchesServer(reflector);
  controller.abort();
  await Promise.all([running, viewingPods, viewingFoos]);
  const seen = `${counts.actions} changes made, ${counts.pods} pod changes seen by the ` +
    `Reflector (${counts.running} pods went Pending → Running), ${counts.foos} Foo events by the ` +
    `Informer`;
  const elapsed = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (interrupted) {
    // Ctrl-C in a terminal also reaches kube-apiserver and etcd: do not ask them anything more.
    console.log(`Interrupted after ${elapsed}: ${seen}.`);
  } else {
    // The cache must equal what the server holds now.
    const { same, count } = compared!;
    console.log(
      `Done in ${elapsed}: ${seen}; the cache ${same ? "equals" : "DIFFERS FROM"} a fresh ` +
        `list (${count} pods).`,
    );
    if (!same) failed = true;
    if (backend.real && counts.running === 0) {
      console.log("No pod was seen going Pending → Running: the nodes did not run pods.");
      failed = true;
    }
    // Act 2: the Foo operator (examples/_demo_operator.ts).
    if (!failed && !(await operatorAct(client, NAMESPACE, clock))) failed = true;
    // Act 3: the Foo operator's admission webhooks (examples/_demo_webhooks.ts).
    if (!failed && !(await webhookAct(client, NAMESPACE, clock, backend))) failed = true;
  }
} catch (e) {
  if (interrupted) {
    console.log(`Interrupted: ${counts.actions} changes made.`);
  } else {
    failed = true;
    console.error(`demo failed: ${e instanceof Error ? e.message : e}`);
  }
} finally {
  controller.abort();
  Deno.removeSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", stop);
  if (backend.borrowed && madeNamespace && !interrupted) {
    // Not our cluster: leave it as it was (the CRD stays; the namespace and all in it go).
    await client.delete(Api.v1Namespace(), NAMESPACE, { signal: AbortSignal.timeout(10_000) })
      .then(() => console.log(`Deleted namespace ${NAMESPACE}.`))
      .catch((e) => console.error(`Could not delete namespace ${NAMESPACE}: ${e}`));
  }
  console.log(
    backend.borrowed
      ? "Done with your cluster."
      : backend.real
      ? "Stopping the cluster…"
      : "Stopping the API server…",
  );
  await backend.stop();
  console.log("Stopped.");
}
if (failed) Deno.exit(1);
