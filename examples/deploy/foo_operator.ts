// deno run --allow-net --allow-env --allow-read --allow-sys=hostname examples/deploy/foo_operator.ts
//
// The Foo operator as it runs in a cluster (examples/deploy/foo-operator.yaml): a Manager with
// leader election on the Lease `foo-operator` in its own namespace, the health and metrics
// endpoints on :8080, a Foo cache warm on every replica, and a leader-only reconciler that sets
// `status.observedReplicas` of each Foo (foos.clux.dev/v1, examples/foo.yaml) and records an
// Event. SIGTERM hands the lease over at once.
//
// Environment: POD_NAME (the identity; default hostname + random suffix), POD_NAMESPACE (the
// Lease's namespace; default the client's), METRICS_PORT (default 8080), METRICS_ADDRESS (default
// 0.0.0.0), WATCH_NAMESPACE (only Foos of this namespace; default all).
//
// Outside this repository, import from "@denokube/kube" instead of "../../mod.ts".

import { configure, getConsoleSink, getJsonLinesFormatter } from "@logtape/logtape";
import { Api, Client, isConflict, isNotFound, Manager, shutdownSignal } from "../../mod.ts";

interface FooSpec {
  name: string;
  info: string;
  replicas?: number;
}
interface FooStatus {
  isBad?: boolean;
  observedReplicas?: number;
}

await configure({
  sinks: { console: getConsoleSink({ formatter: getJsonLinesFormatter() }) },
  loggers: [
    { category: ["kube"], lowestLevel: "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const env = (name: string) => Deno.env.get(name) || undefined;
const client = await Client.infer();
const watchNamespace = env("WATCH_NAMESPACE");
const foos = Api.customResource<FooSpec, FooStatus>("foos").group("clux.dev").version("v1");
const scope = watchNamespace ? foos.within(watchNamespace) : foos;
const events = Api.eventsV1Event();

const manager = new Manager(client, {
  leaderElection: {
    namespace: env("POD_NAMESPACE") ?? client.namespace,
    name: "foo-operator",
    identity: env("POD_NAME"),
  },
  endpoints: { port: Number(env("METRICS_PORT") ?? 8080), hostname: env("METRICS_ADDRESS") },
});
const cache = manager.cache(scope);

async function reconcile(key: string, signal: AbortSignal): Promise<void> {
  const [namespace, name] = key.split("/");
  const foo = cache.get(name, namespace);
  if (!foo) return;
  const want = foo.spec.replicas ?? 1;
  if (foo.status?.observedReplicas === want) return;
  try {
    await client.patchStatus(foos.within(namespace), name, {
      status: { observedReplicas: want, isBad: foo.spec.info === "bad" },
    }, { signal });
  } catch (e) {
    if (isNotFound(e) || isConflict(e)) return; // gone, or changed: the next change retries
    throw e;
  }
  const now = new Date().toISOString().replace(/Z$/, "000Z");
  await client.create(events.within(namespace), {
    metadata: { generateName: `${name}-` },
    eventTime: now,
    reportingController: "clux.dev/foo-operator",
    reportingInstance: manager.leadership?.identity ?? "foo-operator",
    action: "Reconcile",
    reason: "ObservedReplicas",
    note: `observed ${want} replicas`,
    type: "Normal",
    regarding: {
      apiVersion: "clux.dev/v1",
      kind: "Foo",
      name,
      namespace,
      uid: foo.metadata?.uid,
    },
  }, { signal });
}

manager.add({
  name: "foo",
  async run(signal) {
    await cache.ready;
    const changes = cache.changes({ signal });
    for (const key of cache.read().keys()) await reconcile(key, signal).catch(report);
    for await (const change of changes) {
      if (change.type === "DELETED") continue;
      await reconcile(foos.keyOf(change.object), signal).catch(report);
    }
  },
});

function report(e: unknown): void {
  if (e instanceof DOMException && e.name === "AbortError") return;
  console.error(JSON.stringify({ level: "error", message: `reconcile failed: ${e}` }));
}

await manager.run(shutdownSignal());
client.close();
