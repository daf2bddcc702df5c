/**
 * `deno task cluster`: starts a whole small cluster for a person (kube-apiserver, etcd,
 * kube-controller-manager, kube-scheduler, and KWOK playing 2 nodes), prints the kubeconfig path
 * and kubectl lines to try, and stops cleanly on Ctrl-C. `--apiserver-only` starts just
 * kube-apiserver and etcd; `--nodes=<n>` sets the number of nodes.
 *
 * @module
 */

import { parseArgs } from "node:util";

import { startControlPlane } from "./control_plane.ts";

const { values: flags } = parseArgs({
  args: Deno.args.filter((arg) => arg !== "--"),
  options: { "apiserver-only": { type: "boolean", default: false }, nodes: { type: "string" } },
});
const nodes = Number(flags.nodes ?? 2);
if (!Number.isInteger(nodes) || nodes < 1) {
  throw new RangeError(`--nodes=${flags.nodes}: give a whole number of nodes, at least 1`);
}
const full = !flags["apiserver-only"];
const controlPlane = await startControlPlane(
  full ? { cluster: "full", kwok: { nodes } } : { cluster: "apiserver" },
);
const { binaries } = controlPlane;
const kubeconfig = controlPlane.kubeconfigPath;
console.log(
  `Kubernetes ${binaries.kubernetesVersion} is ready at ${controlPlane.server} (started in ${
    (controlPlane.startMs / 1000).toFixed(1)
  } s): ${controlPlane.components.join(", ")}${
    full
      ? `; KWOK ${binaries.kwokVersion} plays the nodes ${controlPlane.kwok!.nodes.join(", ")}`
      : ""
  }

  kubeconfig (client certificate): ${kubeconfig}
  kubeconfig (bearer token):       ${controlPlane.tokenKubeconfigPath}

Try:
  kubectl --kubeconfig ${kubeconfig} get nodes,namespaces
${
    full
      ? `  kubectl --kubeconfig ${kubeconfig} create deployment web --image=registry.invalid/web --replicas=3
  kubectl --kubeconfig ${kubeconfig} get pods -o wide
`
      : ""
  }  KUBECONFIG=${kubeconfig} deno run --allow-all examples/pod_informer.ts

Logs are in ${controlPlane.dir}. Press Ctrl-C to stop.`,
);

const stopped = Promise.withResolvers<void>();
const onSignal = () => stopped.resolve();
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);
await stopped.promise;
Deno.removeSignalListener("SIGINT", onSignal);
Deno.removeSignalListener("SIGTERM", onSignal);
console.log("\nStopping the control plane…");
await controlPlane.stop();
console.log("Stopped; the temporary directory is removed.");
