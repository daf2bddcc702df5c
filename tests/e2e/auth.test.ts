// Authentication against the real apiserver by an exec plugin, including recovery from a 401
// with a stale exec credential (the plugin is re-run once).

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { isUnauthorized } from "../../errors.ts";
import { e2eTest } from "./_harness.ts";

const plugin = new URL("../fixtures/exec_plugin.ts", import.meta.url).pathname;

function execKubeconfig(server: string, caPath: string, args: string[]): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, "certificate-authority": caPath } }],
    users: [{
      name: "exec-user",
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: Deno.execPath(),
          args: ["run", "--allow-env", "--allow-read", "--allow-write", plugin, ...args],
          interactiveMode: "Never",
          installHint: "install the fixture",
        },
      },
    }],
    contexts: [{ name: "c", context: { cluster: "c", user: "exec-user" } }],
    "current-context": "c",
  });
}

e2eTest("auth: exec plugin token; a 401 with a stale credential re-runs the plugin once", async (
  { cp, t },
) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("a stale token (run 1) gets 401, the re-run (run 2) is accepted", async () => {
      const countFile = `${dir}/count`;
      const path = `${dir}/kubeconfig`;
      await Deno.writeTextFile(
        path,
        execKubeconfig(cp.server, cp.caPath, [
          "--token=exec-token",
          `--count-file=${countFile}`,
          "--expires-in-ms=3600000",
        ]),
      );
      await using client = new Client(await Config.fromKubeconfig({ path }));
      const list = await client.list(Api.v1Namespace());
      assert.ok(list.items.some((n) => n.metadata?.name === "default"));
      assert.equal((await Deno.readTextFile(countFile)).trim().split("\n").length, 2);
      // Cached until expiry: more requests do not run the plugin again.
      await client.list(Api.v1Namespace());
      assert.equal((await Deno.readTextFile(countFile)).trim().split("\n").length, 2);
    });

    await t.step("a token that stays invalid ends in a 401 ApiError after one re-run", async () => {
      const countFile = `${dir}/count-bad`;
      const path = `${dir}/kubeconfig-bad`;
      await Deno.writeTextFile(
        path,
        execKubeconfig(cp.server, cp.caPath, ["--token=never-valid", `--count-file=${countFile}`]),
      );
      await using client = new Client(await Config.fromKubeconfig({ path }));
      const error = await client.list(Api.v1Namespace()).catch((e) => e);
      assert.ok(isUnauthorized(error), `expected 401, got ${error}`);
      assert.equal((await Deno.readTextFile(countFile)).trim().split("\n").length, 2);
      assert.ok(!String(error.message).includes("never-valid"), "the token leaked into the error");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}, { extraTokens: [{ token: "exec-token-2", user: "exec-user", groups: ["system:masters"] }] });
