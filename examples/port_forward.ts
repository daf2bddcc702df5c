// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/port_forward.ts <pod> [<local-port>:]<pod-port> [-n <namespace>] [--exit-after=<seconds>]
//
// Forwards a local port to a port of a pod, like `kubectl port-forward pod/web 8080:80`: every
// connection to 127.0.0.1:<local-port> is carried to the pod's port over its own WebSocket. A
// local port of 0 (or none) lets the system choose; the line "Forwarding from …" tells which.
// Ctrl-C stops.
//
// Permissions: `--allow-net` can be narrowed to the API server and the local port,
// `--allow-net=<api-host:port>,127.0.0.1:<local-port>`. When $KUBECONFIG points elsewhere, or the
// kubeconfig names certificate files outside ~/.kube, give those paths to `--allow-read`.
//
// Outside this repository, import from "@denokube/kube" (`deno add jsr:@denokube/kube`) instead
// of "../mod.ts".

import { parseArgs } from "node:util";
import { configure, getConsoleSink } from "@logtape/logtape";
import { Client, forwardPort } from "../mod.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  options: {
    namespace: { type: "string", short: "n" },
    "exit-after": { type: "string" },
  },
  allowPositionals: true,
});
const [pod, ports] = positionals;
const match = /^(?:(\d+):)?(\d+)$/.exec(ports ?? "");
if (!pod || !match) {
  console.error("usage: port_forward.ts <pod> [<local-port>:]<pod-port> [-n namespace]");
  Deno.exit(2);
}

// Failed connections are logged by the library (kube.exec, warning): show them.
await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["kube"], lowestLevel: "warning", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const controller = new AbortController();
const stop = () => controller.abort();
Deno.addSignalListener("SIGINT", stop);
const exitAfter = Number(flags["exit-after"] ?? 0);
const timer = exitAfter > 0 ? setTimeout(stop, exitAfter * 1000) : undefined;

await using client = await Client.infer();
const forwarder = await forwardPort(client, pod, {
  port: Number(match[2]),
  localPort: Number(match[1] ?? 0),
  namespace: flags.namespace,
  signal: controller.signal,
});
console.log(`Forwarding from ${forwarder.hostname}:${forwarder.localPort} -> ${match[2]}`);
await forwarder.finished;
Deno.removeSignalListener("SIGINT", stop);
clearTimeout(timer);
console.log("Stopped.");
