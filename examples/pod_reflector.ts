// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/pod_reflector.ts [namespace] [--log=info] [--exit-after=<seconds>]
//
// Keeps a cache of the pods of a namespace with a Reflector (`run()` keeps it in sync; `changes()`
// streams what changed) and prints each change, then the cache as a small table after each batch
// of changes. The namespace is the argument, else the one of the kubeconfig context.
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
import { onceAfterBatch, printTable, startExample } from "./_example.ts";

await using example = await startExample({ namespaced: true });
const { client, namespace, signal } = example;

/** The parts of a Pod this example reads. */
interface PodView {
  spec?: { nodeName?: string; containers?: { image?: string }[] };
  status?: { phase?: string };
}

/** Prints rows as columns padded to their widest cell. */

function printCache(cache: ReadonlyMap<string, KubeObject>): void {
  const rows = [["NAME", "PHASE", "NODE", "IMAGE", "RESOURCEVERSION"]];
  for (
    const pod of [...cache.values()].sort((a, b) =>
      a.metadata!.name!.localeCompare(b.metadata!.name!)
    )
  ) {
    const { spec, status } = pod as PodView;
    rows.push([
      pod.metadata?.name ?? "",
      status?.phase ?? "-",
      spec?.nodeName ?? "-",
      spec?.containers?.[0]?.image ?? "-",
      pod.metadata?.resourceVersion ?? "",
    ]);
  }
  console.log(`${cache.size} pod(s) cached in ${namespace}:`);
  printTable(rows);
}

const reflector = new Reflector(client, Api.v1Pod().within(namespace))
  .transform(stripManagedFields); // managedFields are large and of no use here

// Subscribe before run() starts, so that the first sync is reported too (every pod as ADDED).
const changes = reflector.changes({ signal });
const running = reflector.run({ signal });
running.catch(() => {}); // a permanent failure also ends `changes` with the error

using table = onceAfterBatch(() => printCache(reflector.read()));

console.log(`Caching pods in namespace ${namespace} of ${client.config.server} (Ctrl-C to stop)`);
try {
  for await (const change of changes) {
    const { metadata } = change.object;
    const phase = (change.object as PodView).status?.phase ?? "-";
    const was = change.old ? `  (was resourceVersion ${change.old.metadata?.resourceVersion})` : "";
    console.log(
      `${change.type.padEnd(8)} ${metadata?.namespace}/${metadata?.name}  phase=${phase}${was}`,
    );
    table.schedule();
  }
  await running;
  console.log("Stopped.");
} catch (e) {
  console.error(`pod_reflector: ${e instanceof Error ? e.message : e}`);
  Deno.exitCode = 1;
}
