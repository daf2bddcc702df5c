// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/node_reflector.ts [--log=info] [--exit-after=<seconds>]
//
// Keeps a cache of the cluster's nodes with a Reflector driven the seed way: `init()` fills it,
// then each `poll()` round watches for up to 5 seconds and applies the changes, and `events()`
// takes what happened. After each round with changes it prints the events and the cache as a
// small table. Nodes are cluster-scoped, so there is no namespace argument.
//
// Permissions: `--allow-net` can be narrowed to the API server, `--allow-net=<api-host:port>`.
// When $KUBECONFIG points elsewhere, or the kubeconfig names certificate files outside ~/.kube,
// give those paths to `--allow-read` instead (a missing permission is reported with the flag to
// add).
//
// Options: `--log=<level>` sets the level of the library's logs (default `trace`, to show what it
// does; `info` for a quiet run); `--exit-after=<seconds>` stops after that long (for tests).
// Ctrl-C stops cleanly.
//
// Outside this repository, import from "@denokube/kube" (`deno add jsr:@denokube/kube`) instead
// of "../mod.ts".

import { Api, type KubeObject, Reflector, stripManagedFields } from "../mod.ts";
import { printTable, startExample } from "./_example.ts";

await using example = await startExample({ namespaced: false });
const { client, signal } = example;

/** The parts of a Node this example reads. */
interface NodeView {
  spec?: { unschedulable?: boolean };
  status?: {
    conditions?: { type: string; status: string }[];
    nodeInfo?: { kubeletVersion?: string };
  };
}

/** Prints rows as columns padded to their widest cell. */

function printCache(cache: ReadonlyMap<string, KubeObject>): void {
  const rows = [["NAME", "READY", "ROLES", "KUBELET", "RESOURCEVERSION"]];
  for (const [name, node] of [...cache].sort(([a], [b]) => a.localeCompare(b))) {
    const { spec, status } = node as NodeView;
    const ready = status?.conditions?.find((c) => c.type === "Ready")?.status ?? "Unknown";
    const roles = Object.keys(node.metadata?.labels ?? {})
      .filter((label) => label.startsWith("node-role.kubernetes.io/"))
      .map((label) => label.slice("node-role.kubernetes.io/".length));
    rows.push([
      name,
      ready + (spec?.unschedulable ? ",SchedulingDisabled" : ""),
      roles.join(",") || "<none>",
      status?.nodeInfo?.kubeletVersion || "-",
      node.metadata?.resourceVersion ?? "",
    ]);
  }
  console.log(`${cache.size} node(s) cached:`);
  printTable(rows);
}

function printEvents<T extends KubeObject>(reflector: Reflector<T>): boolean {
  const events = reflector.events();
  for (const event of events) {
    if (event.type === "BOOKMARK" || event.type === "ERROR") continue; // never kept
    console.log(`${event.type.padEnd(8)} node ${event.object.metadata?.name}`);
  }
  return events.length > 0;
}

const reflector = new Reflector(client, Api.v1Node())
  .timeout(5) // each poll() watches for at most 5 s
  .transform(stripManagedFields);

console.log(`Caching the nodes of ${client.config.server} (Ctrl-C to stop)`);
try {
  await reflector.init({ signal }); // the first sync reports every node as ADDED
  printEvents(reflector);
  printCache(reflector.read());
  while (!signal.aborted) {
    await reflector.poll({ signal }); // transient failures are logged and retried next round
    if (printEvents(reflector)) printCache(reflector.read());
  }
} catch (e) {
  if (!signal.aborted) { // aborting makes init() and poll() reject with the signal's reason
    console.error(`node_reflector: ${e instanceof Error ? e.message : e}`);
    Deno.exitCode = 1;
  }
}
if (signal.aborted) console.log("Stopped.");
