// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/node_informer.ts [--log=info] [--exit-after=<seconds>]
//
// Follows the cluster's nodes with an Informer and makes API calls from its event handler: each
// time a node is added or changes, it prints the node's readiness and taints, and lists the pods
// scheduled on it (a pod list with the field selector `spec.nodeName=<node>`). Nodes are
// cluster-scoped, so there is no namespace argument.
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

import { Api, fieldSelector, Informer, type KubeObject } from "../mod.ts";
import { startExample } from "./_example.ts";

await using example = await startExample({ namespaced: false });
const { client, signal } = example;

/** The parts of a Node this example reads. */
interface NodeView {
  spec?: { unschedulable?: boolean; taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

function describeNode(node: KubeObject): string {
  const { spec, status } = node as NodeView;
  const ready = status?.conditions?.find((c) => c.type === "Ready")?.status ?? "Unknown";
  const taints = (spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).join(",") || "none";
  const cordoned = spec?.unschedulable ? "  (cordoned)" : "";
  return `ready=${ready}  taints=${taints}${cordoned}`;
}

/** An API call made from the event handler: the pods bound to the node, in every namespace. */
async function podsOn(nodeName: string, signal: AbortSignal): Promise<string[]> {
  const list = await client.list(Api.v1Pod(), {
    fieldSelector: fieldSelector({ "spec.nodeName": nodeName }),
    signal,
  });
  return list.items.map((pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`);
}

console.log(`Watching nodes of ${client.config.server} (Ctrl-C to stop)`);
try {
  const informer = new Informer(client, Api.v1Node());
  for await (const event of informer.stream({ signal })) {
    if (event.type === "BOOKMARK" || event.type === "ERROR") continue;
    const name = event.object.metadata?.name ?? "";
    if (event.type === "DELETED") {
      console.log(`DELETED  node ${name}`);
      continue;
    }
    console.log(`${event.type.padEnd(8)} node ${name}  ${describeNode(event.object)}`);
    const pods = await podsOn(name, signal);
    console.log(`         ${pods.length} pod(s) on ${name}: ${pods.join(", ") || "-"}`);
  }
  console.log("Stopped.");
} catch (e) {
  if (!signal.aborted) {
    console.error(`node_informer: ${e instanceof Error ? e.message : e}`);
    Deno.exitCode = 1;
  } else {
    console.log("Stopped.");
  }
}
