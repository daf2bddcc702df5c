// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/pod_informer.ts [namespace] [--log=info] [--exit-after=<seconds>]
//
// Prints every change to the pods of a namespace, like `kubectl get pods --watch`: one line per
// event with its type, namespace/name and phase. The namespace is the argument, else the one of
// the kubeconfig context.
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

import { Api, Informer, type KubeObject } from "../mod.ts";
import { startExample } from "./_example.ts";

// Ctrl-C (and --exit-after) abort `signal`; the informer then ends its stream quietly.
await using example = await startExample({ namespaced: true });
const { client, namespace, signal } = example;
const pods = Api.v1Pod().within(namespace);

function phaseOf(pod: KubeObject): string {
  return (pod as { status?: { phase?: string } }).status?.phase ?? "-";
}

console.log(`Watching pods in namespace ${namespace} of ${client.config.server} (Ctrl-C to stop)`);
let count = 0;
try {
  // First the pods that exist, as ADDED, then every change, forever (re-watching, backing off
  // and re-listing on its own).
  const informer = new Informer(client, pods);
  for await (const event of informer.stream({ signal })) {
    if (event.type === "BOOKMARK" || event.type === "ERROR") continue; // not delivered by default
    const { metadata } = event.object;
    count++;
    console.log(
      `${event.type.padEnd(8)} ${metadata?.namespace}/${metadata?.name}  phase=${
        phaseOf(event.object)
      }  resourceVersion=${metadata?.resourceVersion}`,
    );
  }
  console.log(`Stopped after ${count} events.`);
} catch (e) {
  console.error(`pod_informer: ${e instanceof Error ? e.message : e}`);
  Deno.exitCode = 1;
}
