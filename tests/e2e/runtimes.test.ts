// The cross-runtime e2e: one real control plane, and the same scenario
// (tests/e2e/_runtimes_scenario.ts: kubeconfig with client certificate and with token,
// create/apply/get/list/delete, a Reflector sync, an Informer seeing a kubectl change, exec plugin
// credentials, insecure-skip-tls-verify, tls-server-name, exec and forwardPort through the apiserver
// to a KWOK node) run on Deno, Node 20/22/24 and Bun, one step each. Node 22/24 and Bun are
// installed from the npm registry on first use (tools/runtimes.ts).
//
// The control plane is etcd + kube-apiserver + KWOK with one node, no scheduler or
// controller-manager: the one target pod is bound to the node by `spec.nodeName`. KWOK runs its
// exec as a local command and forwards its port 80 to a loopback HTTP server started here first
// (KWOK's configuration is fixed at start).

import assert from "node:assert/strict";
import { join } from "node:path";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { e2eRequired } from "../../testenv/build.ts";
import { type ControlPlane, startControlPlane } from "../../testenv/control_plane.ts";
import { eventually, skipReason } from "./_harness.ts";
import { test, type TestContext } from "../_test.ts";
import { ensureRuntimes } from "../../tools/runtimes.ts";
import { bundle } from "../../tools/cross_runtime.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCENARIO = join(ROOT, "tests/e2e/_runtimes_scenario.ts");
/** One level below tests/, like tests/e2e/, so the bundle's relative paths still resolve. */
const BUNDLE_DIR = join(ROOT, "tests/.cross-runtime-e2e");
const EXEC_TOKEN = `cross-exec-${crypto.randomUUID()}`;
/** Where the target pod lives: KWOK runs exec and port-forward for this namespace only. */
const POD_NAMESPACE = "cross-pod";
const POD = "target";

async function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", ...options })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  return text;
}

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster }],
    users: [{ name: "u", user }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u", namespace: "default" } }],
    "current-context": "c",
  });
}

function execCredential(status: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status,
  });
}

/** An exec plugin that prints a prepared ExecCredential: `cat <file>`, a real process on every runtime. */
function execUser(credentialPath: string): Record<string, unknown> {
  return {
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command: "cat",
      args: [credentialPath],
      interactiveMode: "Never",
    },
  };
}

async function scenario(cp: ControlPlane, t: TestContext): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denokube-runtimes-" });
  try {
    // A client certificate for the exec plugin, signed by the control plane's CA.
    await run("openssl", [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "exec.key",
      "-out",
      "exec.csr",
      "-subj",
      "/O=system:masters/CN=cross-exec-cert",
    ], { cwd: dir });
    await Deno.writeTextFile(join(dir, "exec.ext"), "extendedKeyUsage=clientAuth\n");
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      "exec.csr",
      "-CA",
      cp.caPath,
      "-CAkey",
      cp.caKeyPath,
      "-CAcreateserial",
      "-out",
      "exec.crt",
      "-days",
      "1",
      "-extfile",
      "exec.ext",
    ], { cwd: dir });
    const cluster = { server: cp.server, "certificate-authority": cp.caPath };
    const files: Record<string, string> = {
      "exec-token.json": execCredential({ token: EXEC_TOKEN }),
      "exec-cert.json": execCredential({
        clientCertificateData: await Deno.readTextFile(join(dir, "exec.crt")),
        clientKeyData: await Deno.readTextFile(join(dir, "exec.key")),
      }),
    };
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    const kubeconfigs: Record<string, string> = {
      KUBE_X_EXEC: kubeconfig(cluster, execUser(join(dir, "exec-token.json"))),
      KUBE_X_EXEC_CERT: kubeconfig(cluster, execUser(join(dir, "exec-cert.json"))),
      KUBE_X_INSECURE: kubeconfig(
        { server: cp.server, "insecure-skip-tls-verify": true },
        { token: cp.token },
      ),
      // The serving certificate names 127.0.0.1 and localhost: verify against the name.
      KUBE_X_SERVER_NAME: kubeconfig(
        { ...cluster, "tls-server-name": "localhost" },
        { token: cp.token },
      ),
      KUBE_X_WRONG_NAME: kubeconfig(
        { ...cluster, "tls-server-name": "apiserver.invalid" },
        { token: cp.token },
      ),
    };
    const env: Record<string, string> = {
      KUBE_X_CERT: cp.kubeconfigPath,
      KUBE_X_TOKEN: cp.tokenKubeconfigPath,
      KUBE_X_POD: `${POD_NAMESPACE}/${POD}`,
      NO_COLOR: "1",
    };
    for (const [name, text] of Object.entries(kubeconfigs)) {
      const path = join(dir, `${name.toLowerCase()}.json`);
      await Deno.writeTextFile(path, text);
      env[name] = path;
    }

    const runtimes = await ensureRuntimes();
    await Deno.remove(BUNDLE_DIR, { recursive: true }).catch(() => {});
    await bundle([SCENARIO], BUNDLE_DIR);
    const bundled = join(BUNDLE_DIR, "_runtimes_scenario.js");
    const runs = [
      {
        name: "deno",
        version: Deno.version.deno,
        cmd: Deno.execPath(),
        args: ["run", "-A", SCENARIO],
      },
      ...runtimes.map((r) => ({ name: r.name, version: r.version, cmd: r.path, args: [bundled] })),
    ];
    for (const r of runs) {
      await t.step(`${r.name} (${r.version})`, async () => {
        const started = performance.now();
        const out = await new Deno.Command(r.cmd, {
          args: r.args,
          env: { ...env, KUBE_X_NAMESPACE: `cross-${r.name}-${crypto.randomUUID().slice(0, 6)}` },
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        console.log(`${text.trim()}\n${r.name}: ${Math.round(performance.now() - started)} ms`);
        assert.ok(out.success, `the scenario failed on ${r.name}`);
        assert.match(text, /scenario passed on (deno|node|bun)/);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(BUNDLE_DIR, { recursive: true }).catch(() => {});
  }
}

/** The pod's port 80: a loopback HTTP server that names the path it was asked for. */
function startTarget() {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const body = `hello from ${new URL(request.url).pathname}\n`;
    return new Response(body, { headers: { "x-target": "loopback" } });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

test({
  name: "e2e: runtimes: the same scenario on Deno, Node 20/22/24 and Bun",
  ignore: skipReason !== undefined && !e2eRequired(),
  async fn(t) {
    if (skipReason !== undefined) throw new Error(`real-cluster tests required but: ${skipReason}`);
    const target = startTarget();
    try {
      await using cp = await startControlPlane({
        extraTokens: [{ token: EXEC_TOKEN, user: "cross-exec-token", groups: ["system:masters"] }],
        kwok: {
          nodes: 1,
          exec: [{ namespace: POD_NAMESPACE, pods: [POD] }],
          portForward: [{
            namespace: POD_NAMESPACE,
            pods: [POD],
            ports: [80],
            target: { address: "127.0.0.1", port: target.port },
          }],
        },
      });
      try {
        await using client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
        await client.create(Api.v1Namespace(), { metadata: { name: POD_NAMESPACE } });
        const pods = Api.v1Pod().within(POD_NAMESPACE);
        // Bound by name: there is no scheduler (and the node keeps its not-ready taint).
        await client.create(pods, {
          metadata: { name: POD },
          spec: {
            nodeName: "kwok-node-0",
            containers: [{ name: "main", image: "registry.invalid/target:1" }],
          },
        });
        await eventually(`${POD} runs`, async () => {
          assert.equal((await client.get(pods, POD)).status?.phase, "Running");
        });
        await scenario(cp, t);
        await cp.assertHealthy();
      } catch (e) {
        console.error(await cp.logs(20));
        throw e;
      }
    } finally {
      await target.close();
    }
  },
});
