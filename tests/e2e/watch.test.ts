// Watch, Informer and Reflector against the real kube-apiserver: churn of 500 pods with an
// apiserver restart and an etcd compaction (forcing a 410) in the middle; kubectl changes seen by
// the Informer; WatchList and paged-list initial syncs agree.

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { isExpired } from "../../errors.ts";
import { Informer } from "../../informer.ts";
import { Reflector } from "../../reflector.ts";
import type { WatchEvent } from "../../watch.ts";
import { e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";

const fastRetries = { backoff: { initialMs: 50, maxMs: 500 } };

function pod(name: string, generation = 0): KubeObject {
  return {
    metadata: { name, labels: { app: "churn", gen: String(generation) } },
    spec: { containers: [{ name: "main", image: "registry.invalid/churn:1" }] },
  } as KubeObject;
}

/** Runs `fn` over 0..n-1 with at most `concurrency` at a time. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** The server's objects as key → resourceVersion, from a fresh list. */
async function serverState(client: Client, api: Api<KubeObject>): Promise<Map<string, string>> {
  const list = await client.list(api);
  return new Map(list.items.map((o) => [api.keyOf(o), o.metadata!.resourceVersion!]));
}

function cacheState<T extends KubeObject>(reflector: Reflector<T>): Map<string, string> {
  return new Map([...reflector.read()].map(([k, o]) => [k, o.metadata!.resourceVersion!]));
}

/** Waits until `check` is true, polling; fails with `describe()` after `ms`. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  describe: () => string,
  ms = 60_000,
) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

e2eTest("reflector: 500 pods of churn across an apiserver restart and an etcd compaction", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("churn");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const pods = Api.v1Pod().within(ns);
  const reflector = new Reflector(client, pods, { ...fastRetries, watchTimeoutSeconds: 30 });
  const controller = new AbortController();
  const running = reflector.run({ signal: controller.signal }).catch((e) => e);
  try {
    await reflector.ready;
    await t.step("create 500 pods", async () => {
      await pool(500, 16, (i) => client.create(pods, pod(`p-${i}`)));
    });
    const oldVersion = reflector.version();
    await t.step("update 200, delete 150", async () => {
      await pool(
        200,
        16,
        (i) => client.patch(pods, `p-${i}`, { metadata: { labels: { gen: "1" } } }),
      );
      await pool(150, 16, (i) => client.delete(pods, `p-${300 + i}`, { gracePeriodSeconds: 0 }));
    });
    await t.step("etcd compaction + apiserver restart, with changes while it is down", async () => {
      const revision = await cp.compact();
      assert.match(revision, /^\d+$/);
      await cp.restartApiServer();
      // The old resource version is now too old: a watch from it is told 410.
      const stale = client.watch(pods, { resourceVersion: oldVersion, timeoutSeconds: 5 });
      const first = await stale.next().catch((e) => e);
      await stale.return?.();
      const expired = isExpired(first) ||
        (first.value?.type === "ERROR" && first.value.error.expired);
      assert.ok(
        expired,
        `expected a 410 for a compacted resource version, got ${JSON.stringify(first)}`,
      );
      await pool(50, 16, (i) => client.delete(pods, `p-${450 + i}`, { gracePeriodSeconds: 0 }));
      await pool(20, 8, (i) => client.create(pods, pod(`after-${i}`)));
      await pool(
        30,
        8,
        (i) => client.patch(pods, `p-${200 + i}`, { metadata: { labels: { gen: "2" } } }),
      );
    });
    await t.step("the cache equals a fresh list (keys and resourceVersions)", async () => {
      let expected = await serverState(client, pods);
      await eventually(async () => {
        expected = await serverState(client, pods);
        const actual = cacheState(reflector);
        return actual.size === expected.size &&
          [...expected].every(([k, rv]) => actual.get(k) === rv);
      }, () => `cache has ${reflector.read().size} objects, server ${expected.size}`);
      assert.equal(expected.size, 500 - 150 - 50 + 20);
      assert.equal(reflector.get("after-3", ns)?.metadata?.name, "after-3");
      assert.equal(reflector.get("p-310", ns), undefined);
      assert.equal(reflector.byIndex("namespace", ns).length, 320);
    });
  } finally {
    controller.abort();
    await running;
  }
});

e2eTest("informer: sees a kubectl change; WatchList and paged list give the same map", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("inf");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const cms = Api.v1ConfigMap().within(ns);
  for (let i = 0; i < 30; i++) {
    await client.create(
      cms,
      { metadata: { name: `cm-${i}` }, data: { i: String(i) } } as KubeObject,
    );
  }

  await t.step("poll(): kubectl edits and deletes are queued as events", async () => {
    const informer = new Informer(client, cms).timeout(2);
    await informer.init();
    const before = informer.version();
    await kubectl(cp.kubeconfigPath, "-n", ns, "label", "configmap", "cm-1", "touched=yes");
    await kubectl(cp.kubeconfigPath, "-n", ns, "delete", "configmap", "cm-2");
    const events: WatchEvent<KubeObject>[] = [];
    await eventually(async () => {
      await informer.poll();
      for (let ev = informer.pop(); ev; ev = informer.pop()) events.push(ev);
      return events.some((e) => e.type === "DELETED");
    }, () => `events so far: ${events.map((e) => e.type).join(",")}`);
    const modified = events.find((e) => e.type === "MODIFIED");
    assert.ok(modified && modified.type === "MODIFIED");
    assert.equal(modified.object.metadata?.name, "cm-1");
    assert.equal(modified.object.metadata?.labels?.touched, "yes");
    const deleted = events.find((e) => e.type === "DELETED");
    assert.equal(deleted?.type === "DELETED" && deleted.object.metadata?.name, "cm-2");
    assert.notEqual(informer.version(), before);
  });

  await t.step("for await: existing objects arrive as ADDED, then live changes", async () => {
    const controller = new AbortController();
    const seen = new Set<string>();
    let sawLive = false;
    for await (const ev of new Informer(client, cms).stream({ signal: controller.signal })) {
      if (ev.type === "ADDED") seen.add(ev.object.metadata!.name!);
      if (seen.size === 29 && !sawLive) {
        sawLive = true;
        await kubectl(cp.kubeconfigPath, "-n", ns, "annotate", "configmap", "cm-5", "live=1");
      }
      if (ev.type === "MODIFIED" && ev.object.metadata?.name === "cm-5") break;
    }
    controller.abort();
    assert.equal(seen.size, 29);
  });

  await t.step("WatchList and paged-list initial syncs give the same map", async () => {
    const viaWatchList = new Reflector(client, cms, { initialSync: "watchList" });
    const viaList = new Reflector(client, cms, { initialSync: "list", pageSize: 7 });
    await viaWatchList.init();
    await viaList.init();
    assert.equal(viaList.read().size, 29);
    assert.deepEqual(cacheState(viaWatchList), cacheState(viaList));
    assert.deepEqual(cacheState(viaList), await serverState(client, cms));
  });
});
