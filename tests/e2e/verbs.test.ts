// Every verb of Client against the real kube-apiserver.

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import type { Status } from "../../errors.ts";
import { ApiError, isAlreadyExists, isConflict, isInvalid, isNotFound } from "../../errors.ts";
import { labelSelector } from "../../selector.ts";
import { e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const configMaps = (ns: string) => Api.v1ConfigMap().within(ns) as unknown as Api<ConfigMap>;

e2eTest("verbs: CRUD, patches, server-side apply, status, scale, paging, discovery", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("verbs");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const cms = configMaps(ns);

  await t.step("create, AlreadyExists, get, replace with a stale resourceVersion", async () => {
    const created = await client.create(cms, { metadata: { name: "a" }, data: { k: "1" } });
    await assert.rejects(client.create(cms, { metadata: { name: "a" } }), isAlreadyExists);
    const replaced = await client.replace(cms, { ...created, data: { k: "2" } });
    assert.equal(replaced.data?.k, "2");
    assert.notEqual(replaced.metadata?.resourceVersion, created.metadata?.resourceVersion);
    // The first version's resourceVersion is stale now: 409 Conflict.
    const error = await client.replace(cms, { ...created, data: { k: "3" } }).catch((e) => e);
    assert.ok(isConflict(error), `expected Conflict, got ${error}`);
    assert.equal((await client.get(cms, "a")).data?.k, "2");
  });

  await t.step("merge, JSON and strategic patches", async () => {
    const merged = await client.patch(cms, "a", { data: { m: "x" } });
    assert.deepEqual(merged.data, { k: "2", m: "x" });
    const jsonPatched = await client.patch(cms, "a", [{ op: "remove", path: "/data/m" }], {
      type: "json",
    });
    assert.deepEqual(jsonPatched.data, { k: "2" });
    const strategic = await client.patch(cms, "a", { metadata: { labels: { s: "1" } } }, {
      type: "strategic",
    });
    assert.equal(strategic.metadata?.labels?.s, "1");
  });

  await t.step(
    "dryRun persists nothing; fieldValidation=Strict rejects unknown fields",
    async () => {
      await client.create(cms, { metadata: { name: "dry" } }, { dryRun: true });
      await assert.rejects(client.get(cms, "dry"), isNotFound);
      const bad = { metadata: { name: "strict" }, bogus: 1 } as ConfigMap;
      const error = await client.create(cms, bad, { fieldValidation: "Strict" }).catch((e) => e);
      assert.ok(error instanceof ApiError && error.status === 400, `got ${error}`);
      assert.match(error.message, /bogus/);
    },
  );

  await t.step(
    "server-side apply: conflict lists fields and managers; force takes over",
    async () => {
      await client.apply(cms, { metadata: { name: "ssa" }, data: { owned: "by-a" } }, {
        fieldManager: "manager-a",
      });
      const error = await client.apply(
        cms,
        { metadata: { name: "ssa" }, data: { owned: "by-b" } },
        {
          fieldManager: "manager-b",
        },
      ).catch((e) => e);
      assert.ok(isConflict(error), `expected a conflict, got ${error}`);
      const causes = error.details?.causes ?? [];
      assert.ok(causes.some((c: { field?: string }) => c.field === ".data.owned"), error.message);
      assert.match(error.message, /manager-a/);
      const forced = await client.apply(
        cms,
        { metadata: { name: "ssa" }, data: { owned: "by-b" } },
        {
          fieldManager: "manager-b",
          force: true,
        },
      );
      assert.equal(forced.data?.owned, "by-b");
      const managers = forced.metadata?.managedFields?.map((m) => m.manager);
      assert.ok(managers?.includes("manager-b"));
      await assert.rejects(
        () => client.apply(cms, { metadata: { name: "ssa" } }, { fieldManager: "" }),
        TypeError,
      );
    },
  );

  await t.step("422 Invalid carries the causes", async () => {
    const error = await client.create(cms, { metadata: { name: "Not_Valid" } }).catch((e) => e);
    assert.ok(isInvalid(error), `got ${error}`);
    assert.ok(
      (error.details?.causes ?? []).some((c: { field?: string }) => c.field === "metadata.name"),
    );
  });

  await t.step("listAll over more than 3 pages, and list paging by hand", async () => {
    for (let i = 0; i < 23; i++) {
      await client.create(cms, { metadata: { name: `page-${i}`, labels: { paged: "yes" } } });
    }
    const pages: number[] = [];
    const names: string[] = [];
    for await (
      const page of client.listAll(cms, {
        pageSize: 5,
        labelSelector: labelSelector({ paged: "yes" }),
      })
    ) {
      assert.equal(page.restart, false);
      pages.push(page.items.length);
      names.push(...page.items.map((i) => i.metadata!.name!));
    }
    assert.deepEqual(pages, [5, 5, 5, 5, 3]);
    assert.equal(new Set(names).size, 23);
    // With a resourceVersion: the server refuses it on continue pages, so only page 1 sends it.
    const rv = (await client.list(cms, { limit: 1 })).metadata.resourceVersion!;
    let pinned = 0;
    for await (
      const page of client.listAll(cms, {
        pageSize: 10,
        labelSelector: "paged=yes",
        resourceVersion: rv,
        resourceVersionMatch: "NotOlderThan",
      })
    ) pinned += page.items.length;
    assert.equal(pinned, 23);
    const first = await client.list(cms, { limit: 10, labelSelector: "paged=yes" });
    assert.equal(first.items.length, 10);
    assert.ok(first.metadata.continue);
    const second = await client.list(cms, {
      limit: 10,
      continue: first.metadata.continue,
      labelSelector: "paged=yes",
    });
    assert.equal(second.items.length, 10);
  });

  await t.step("metadata-only get, list and watch", async () => {
    const meta = await client.getMetadata(cms, "a");
    assert.equal(meta.kind, "PartialObjectMetadata");
    assert.equal((meta as ConfigMap).data, undefined);
    const list = await client.listMetadata(cms, { labelSelector: "paged=yes", limit: 3 });
    assert.equal(list.kind, "PartialObjectMetadataList");
    assert.equal(list.items.length, 3);
    const events = client.watch(cms, { metadataOnly: true, fieldSelector: "metadata.name=a" });
    const first = await events.next();
    await events.return?.();
    assert.equal(first.value?.type, "ADDED");
    const object = first.value?.type === "ADDED" ? first.value.object : undefined;
    assert.equal(object?.kind, "PartialObjectMetadata");
    assert.equal(object?.metadata?.name, "a");
    assert.equal((object as ConfigMap).data, undefined);
  });

  await t.step("status and scale subresources of a Deployment", async () => {
    const deployments = Api.appsV1Deployment().within(ns);
    await client.create(deployments, {
      metadata: { name: "web" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: { containers: [{ name: "web", image: "registry.invalid/web:1" }] },
        },
      },
    } as KubeObject);
    const scale = await client.getScale(deployments, "web");
    assert.equal(scale.spec?.replicas, 1);
    const scaled = await client.patchScale(deployments, "web", { spec: { replicas: 3 } });
    assert.equal(scaled.spec?.replicas, 3);
    const status = await client.patchStatus(deployments, "web", {
      status: { observedGeneration: 7 },
    });
    assert.equal(
      (status as { status?: { observedGeneration?: number } }).status?.observedGeneration,
      7,
    );
    const viaStatus = await client.getStatus(deployments, "web");
    assert.equal(viaStatus.metadata?.name, "web");
    const fromKubectl = await kubectl(
      cp.kubeconfigPath,
      "get",
      "deployment",
      "web",
      "-n",
      ns,
      "-o",
      "jsonpath={.spec.replicas}/{.status.observedGeneration}",
    );
    assert.equal(fromKubectl, "3/7");
  });

  await t.step("delete with preconditions, propagation, deleteCollection", async () => {
    const cm = await client.get(cms, "a");
    const error = await client.delete(cms, "a", { preconditions: { uid: "wrong-uid" } }).catch((
      e,
    ) => e);
    assert.ok(isConflict(error), `got ${error}`);
    const deleted = await client.delete(cms, "a", {
      preconditions: { uid: cm.metadata!.uid! },
      propagationPolicy: "Background",
    });
    assert.equal((deleted as KubeObject).metadata?.name ?? (deleted as Status).details?.name, "a");
    const result = await client.deleteCollection(cms, { labelSelector: "paged=yes" });
    assert.ok(result);
    const left = await client.list(cms, { labelSelector: "paged=yes" });
    assert.equal(left.items.length, 0);
  });

  await t.step("discovery resolves built-in kinds", async () => {
    const { api, resource } = await client.discover("apps/v1", "Deployment");
    assert.equal(api.plural, "deployments");
    assert.equal(api.namespaced, true);
    assert.ok(resource.subresources.includes("scale"));
    assert.ok(resource.verbs.includes("watch"));
    const nodes = await client.discover("v1", "Node");
    assert.equal(nodes.api.namespaced, false);
    await assert.rejects(client.discover("v1", "NoSuchKind"), isNotFound);
  });

  await client.delete(Api.v1Namespace(), ns);
});
