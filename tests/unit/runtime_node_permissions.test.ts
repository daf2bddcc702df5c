// Node's permission model (`node --permission`, `--experimental-permission` on Node 20): a missing
// permission is an ERR_ACCESS_DENIED error whose message names the Node flag to add, as Deno's
// name Deno's. Runs from Deno (it starts Node 20, 22 and 24 on a bundled probe script).

import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "../_test.ts";
import { FIXTURES_DIR, ROOT_DIR } from "../fixtures/paths.ts";
import { ensureRuntimes } from "../../tools/runtimes.ts";
import { bundle } from "../../tools/cross_runtime.ts";

interface ProbeResult {
  ok: boolean;
  code?: string;
  message?: string;
  token?: boolean;
}

test("node --permission: missing read and child-process permissions name the Node flag", async (t) => {
  const nodes = (await ensureRuntimes()).filter((r) => r.kind === "node");
  assert.ok(nodes.length > 0, "no Node to test on");
  const dir = await Deno.makeTempDir({ prefix: "denokube-node-permissions-" });
  try {
    await bundle([join(ROOT_DIR, "tests/fixtures/node_permission_probe.ts")], dir);
    const probe = join(dir, "node_permission_probe.js");
    const cert = `${FIXTURES_DIR}kubeconfig/client.crt`;
    const key = `${FIXTURES_DIR}kubeconfig/client.key`;
    const credential = join(dir, "credential.json");
    await Deno.writeTextFile(
      credential,
      JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { token: "probe-token" },
      }),
    );
    const cluster = { name: "c", cluster: { server: "https://127.0.0.1:6443" } };
    const context = { name: "c", context: { cluster: "c", user: "u" } };
    const write = async (name: string, user: Record<string, unknown>) => {
      const path = join(dir, name);
      await Deno.writeTextFile(
        path,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [cluster],
          users: [{ name: "u", user }],
          contexts: [context],
          "current-context": "c",
        }),
      );
      return path;
    };
    const certConfig = await write("cert.json", { "client-certificate": cert, "client-key": key });
    const execConfig = await write("exec.json", {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "cat",
        args: [credential],
        interactiveMode: "Never",
      },
    });
    for (const node of nodes) {
      const major = Number(node.version.slice(1).split(".")[0]);
      const permission = major < 22 ? "--experimental-permission" : "--permission";
      const read = (...paths: string[]) => paths.map((p) => `--allow-fs-read=${p}`);
      const run = async (flags: string[], kubeconfig: string): Promise<ProbeResult> => {
        const out = await new Deno.Command(node.path, {
          args: [permission, ...flags, probe, kubeconfig],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(out.stdout).trim();
        try {
          return JSON.parse(stdout.split("\n").at(-1)!);
        } catch {
          throw new Error(`probe printed ${stdout} ${new TextDecoder().decode(out.stderr)}`);
        }
      };
      await t.step(`${node.name} (${node.version})`, async () => {
        // The kubeconfig itself is not readable.
        let result = await run(read(probe), certConfig);
        assert.equal(result.ok, false);
        assert.equal(result.code, "ERR_ACCESS_DENIED");
        assert.match(result.message!, /needs a Node permission that was not granted/);
        assert.ok(result.message!.includes(`next to ${permission}`), String(result.message));
        assert.ok(
          result.message!.includes(`--allow-fs-read=${certConfig}`),
          String(result.message),
        );
        // The kubeconfig is, the certificate file it names is not.
        result = await run(read(probe, certConfig), certConfig);
        assert.equal(result.code, "ERR_ACCESS_DENIED");
        assert.ok(result.message!.includes(`--allow-fs-read=${cert}`), String(result.message));
        result = await run(read(probe, certConfig, cert, key), certConfig);
        assert.deepEqual(result, { ok: true, token: false });
        // An exec plugin needs --allow-child-process.
        result = await run(read(probe, execConfig), execConfig);
        assert.equal(result.code, "ERR_ACCESS_DENIED");
        assert.match(result.message!, /exec credential plugin "cat".*--allow-child-process/);
        result = await run([...read(probe, execConfig), "--allow-child-process"], execConfig);
        assert.deepEqual(result, { ok: true, token: true });
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
