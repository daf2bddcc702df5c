/**
 * `deno task cluster`: starts a real control plane for a person, prints the kubeconfig path and a
 * kubectl line to try, and stops cleanly on Ctrl-C.
 *
 * @module
 */

import { startControlPlane } from "./control_plane.ts";

const controlPlane = await startControlPlane();
const { binaries } = controlPlane;
console.log(
  `Kubernetes ${binaries.kubernetesVersion} (etcd ${binaries.etcdVersion}) is ready at ${controlPlane.server} (started in ${
    (controlPlane.startMs / 1000).toFixed(1)
  } s)

  kubeconfig (client certificate): ${controlPlane.kubeconfigPath}
  kubeconfig (bearer token):       ${controlPlane.tokenKubeconfigPath}

Try:
  kubectl --kubeconfig ${controlPlane.kubeconfigPath} get namespaces
  KUBECONFIG=${controlPlane.kubeconfigPath} deno run --allow-all examples/pod_informer.ts

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
