// Smoke test against the real control plane: create a namespace; create, get, list and delete a
// Pod with this library's Client, once authenticated by client certificate and once by bearer
// token; kubectl, an independent client, sees the same objects through the generated kubeconfig.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { isForbidden, isNotFound } from "../../errors.ts";
import { e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";

function pod(name: string, namespace: string) {
  return {
    metadata: { name, namespace, labels: { app: "smoke" } },
    spec: { containers: [{ name: "main", image: "registry.invalid/smoke:1" }] },
  };
}

e2eTest("smoke: namespace and pod CRUD by client certificate and by token", async ({ cp, t }) => {
  for (
    const [auth, path] of [
      ["client certificate", cp.kubeconfigPath],
      ["bearer token", cp.tokenKubeconfigPath],
    ] as const
  ) {
    await t.step(`authenticated by ${auth}`, async () => {
      await using client = new Client(await Config.fromKubeconfig({ path }));
      const ns = uniqueNamespace("smoke");
      await client.create(Api.v1Namespace(), { metadata: { name: ns } });
      const pods = Api.v1Pod().within(ns);

      const created = await client.create(pods, pod("web-1", ns));
      assert.equal(created.metadata?.name, "web-1");
      assert.equal(typeof created.metadata?.resourceVersion, "string");
      await client.create(pods, pod("web-2", ns));

      const got = await client.get(pods, "web-1");
      assert.equal(got.metadata?.uid, created.metadata?.uid);

      const list = await client.list(pods, { labelSelector: "app=smoke" });
      assert.deepEqual(list.items.map((p) => p.metadata?.name).sort(), ["web-1", "web-2"]);
      assert.equal(list.items[0].kind, "Pod");

      // kubectl reads the same objects through the generated kubeconfig.
      const names = await kubectl(path, "get", "pods", "-n", ns, "-o", "name");
      assert.deepEqual(names.trim().split("\n").sort(), ["pod/web-1", "pod/web-2"]);

      await client.delete(pods, "web-1", { gracePeriodSeconds: 0 });
      await assert.rejects(client.get(pods, "web-1"), isNotFound);
      const after = await kubectl(path, "get", "pods", "-n", ns, "-o", "name");
      assert.deepEqual(after.trim().split("\n"), ["pod/web-2"]);

      await client.delete(Api.v1Namespace(), ns);
    });
  }

  await t.step("an unprivileged token user gets a 403 ApiError", async () => {
    await using viewer = new Client(await Config.fromKubeconfig({ path: cp.viewerKubeconfigPath }));
    const error = await viewer.list(Api.v1Pod().within("default")).catch((e) => e);
    assert.ok(isForbidden(error), `expected 403, got ${error}`);
    assert.equal(error.status, 403);
    assert.match(error.message, /viewer/);
  });
});
