// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/deployment_reflector.ts [namespace] [--log=info] [--exit-after=<seconds>]
//
// Keeps a cache of the Deployments (apps/v1) of a namespace with a Reflector, with a secondary
// index by container image, and prints each change and then the cache as a small table, like
// `kubectl get deployments --watch`. The namespace is the argument, else the one of the
// kubeconfig context.
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

/** The parts of a Deployment this example reads. */
interface DeploymentView {
  spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
  status?: { readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number };
}

function imagesOf(deployment: KubeObject): string[] {
  const containers = (deployment as DeploymentView).spec?.template?.spec?.containers ?? [];
  return containers.map((c) => c.image ?? "");
}

/** Prints rows as columns padded to their widest cell. */

const reflector = new Reflector(client, Api.appsV1Deployment().within(namespace))
  .transform(stripManagedFields)
  .index("image", imagesOf); // query with reflector.byIndex("image", "nginx:1.27")

function printCache(): void {
  const cache = reflector.read();
  const rows = [["NAME", "READY", "UP-TO-DATE", "IMAGES", "RESOURCEVERSION"]];
  for (const [, deployment] of [...cache].sort(([a], [b]) => a.localeCompare(b))) {
    const { spec, status } = deployment as DeploymentView;
    rows.push([
      deployment.metadata?.name ?? "",
      `${status?.readyReplicas ?? 0}/${spec?.replicas ?? 1}`,
      String(status?.updatedReplicas ?? 0),
      imagesOf(deployment).join(","),
      deployment.metadata?.resourceVersion ?? "",
    ]);
  }
  console.log(`${cache.size} deployment(s) cached in ${namespace}:`);
  printTable(rows);
}

// Subscribe before run() starts, so that the first sync is reported too (each one as ADDED).
const changes = reflector.changes({ signal });
const running = reflector.run({ signal });
running.catch(() => {}); // a permanent failure also ends `changes` with the error

using table = onceAfterBatch(() => printCache());

console.log(
  `Caching deployments in namespace ${namespace} of ${client.config.server} (Ctrl-C to stop)`,
);
try {
  for await (const change of changes) {
    const name = `${change.object.metadata?.namespace}/${change.object.metadata?.name}`;
    let detail = `images=${imagesOf(change.object).join(",")}`;
    if (change.type === "MODIFIED" && change.old) {
      const before = (change.old as DeploymentView).spec?.replicas;
      const after = (change.object as DeploymentView).spec?.replicas;
      if (before !== after) detail += `  replicas ${before} → ${after}`;
      const shared = reflector.byIndex("image", imagesOf(change.object)[0] ?? "").length;
      detail += `  (${shared} deployment(s) run this image)`;
    }
    console.log(`${change.type.padEnd(8)} ${name}  ${detail}`);
    table.schedule();
  }
  await running;
  console.log("Stopped.");
} catch (e) {
  console.error(`deployment_reflector: ${e instanceof Error ? e.message : e}`);
  Deno.exitCode = 1;
}
