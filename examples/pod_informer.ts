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

import { parseArgs } from "node:util";
import { configure, getConsoleSink, isLogLevel } from "@logtape/logtape";
import { Api, Client, Informer, type KubeObject } from "../mod.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  options: { log: { type: "string", default: "trace" }, "exit-after": { type: "string" } },
  allowPositionals: true,
});
if (!isLogLevel(flags.log)) throw new TypeError(`--log: unknown level ${flags.log}`);

// The library logs under ["kube", …] and never configures logging: the program does.
await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["kube"], lowestLevel: flags.log, sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

await using client = await Client.infer();
const namespace = positionals[0] ?? client.namespace;
const pods = Api.v1Pod().within(namespace);

// Ctrl-C (and --exit-after) abort the controller; the informer then ends its stream quietly.
const controller = new AbortController();
const stop = () => controller.abort();
Deno.addSignalListener("SIGINT", stop);
const exitAfter = Number(flags["exit-after"] ?? 0);
const timer = exitAfter > 0 ? setTimeout(stop, exitAfter * 1000) : undefined;

function phaseOf(pod: KubeObject): string {
  return (pod as { status?: { phase?: string } }).status?.phase ?? "-";
}

console.log(`Watching pods in namespace ${namespace} of ${client.config.server} (Ctrl-C to stop)`);
let count = 0;
try {
  // First the pods that exist, as ADDED, then every change, forever (re-watching, backing off
  // and re-listing on its own).
  const informer = new Informer(client, pods);
  for await (const event of informer.stream({ signal: controller.signal })) {
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
} finally {
  Deno.removeSignalListener("SIGINT", stop);
  clearTimeout(timer);
}
