// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/pod_exec.ts <pod> [-c <container>] [-n <namespace>] [-i] -- <command> [args…]
//
// Runs a command in a pod, like `kubectl exec`: its stdout and stderr go to yours, `-i` sends
// your stdin to it, and this program exits with the command's exit code.
//
// Permissions: `--allow-net` can be narrowed to the API server, `--allow-net=<api-host:port>`.
// When $KUBECONFIG points elsewhere, or the kubeconfig names certificate files outside ~/.kube,
// give those paths to `--allow-read` instead (a missing permission is reported with the flag to
// add). No unstable flag is needed: the WebSocket is the library's own, over Deno.connect +
// Deno.startTls.
//
// Outside this repository, import from "@denokube/kube" (`deno add jsr:@denokube/kube`) instead
// of "../mod.ts".

import { parseArgs } from "node:util";
import { ApiError, Client, exec } from "../mod.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  options: {
    container: { type: "string", short: "c" },
    namespace: { type: "string", short: "n" },
    stdin: { type: "boolean", short: "i", default: false },
  },
  allowPositionals: true,
});
const [pod, ...command] = positionals;
if (!pod || command.length === 0) {
  console.error("usage: pod_exec.ts <pod> [-c container] [-n namespace] [-i] -- <command> [args…]");
  Deno.exit(2);
}

await using client = await Client.infer();
try {
  await using session = await exec(client, pod, command, {
    namespace: flags.namespace,
    container: flags.container,
    stdin: flags.stdin,
  });
  const copying = [
    session.stdout!.pipeTo(Deno.stdout.writable, { preventClose: true }),
    session.stderr!.pipeTo(Deno.stderr.writable, { preventClose: true }),
  ];
  // stdin is copied in the background: a command may end without reading all of it.
  if (session.stdin) Deno.stdin.readable.pipeTo(session.stdin).catch(() => {});
  const [{ exitCode }] = await Promise.all([session.result, ...copying]);
  Deno.exitCode = exitCode;
} catch (e) {
  if (!(e instanceof ApiError)) throw e;
  console.error(`error: ${e.message}`);
  Deno.exitCode = 1;
}
