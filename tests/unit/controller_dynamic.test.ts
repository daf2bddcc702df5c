// Watches added and removed while a controller runs (controller-runtime #935, #2983), on the
// FakeApiServer and the virtual clock.

import assert from "node:assert/strict";
import { Api, Controller, type KubeObject, sharedCache } from "../../mod.ts";
import { sourceCount } from "../../runtime/_controller/cache.ts";
import { ControllerHarness, FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");
const secrets = Api.v1Secret().within("default");

function seed(server: FakeApiServer, kind: "ConfigMap" | "Secret", name: string): void {
  server.seed({
    apiVersion: "v1",
    kind,
    metadata: { name, namespace: "default" },
    data: kind === "ConfigMap" ? { v: "0" } : { k: "dg==" },
  });
}

/** Secret `s-x` maps to ConfigMap `x`. */
const bySecret = (secret: KubeObject) => [{
  name: secret.metadata!.name!.replace(/^s-/, ""),
  namespace: secret.metadata!.namespace,
}];

test("controller: watches() while running follows the collection; its first sync queues at low priority", async () => {
  await using server = new FakeApiServer();
  for (const name of ["a", "b"]) seed(server, "ConfigMap", name);
  seed(server, "Secret", "s-b");
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  const controller = new Controller(h.client, configMaps, (cm, ctx) => {
    runs.push(`${cm.metadata!.name}:${ctx.reason}:${ctx.priority}`);
  }, { clock: h.clock });
  h.start(controller);
  await h.settle();
  assert.deepEqual(runs.splice(0), ["a:initial sync:-100", "b:initial sync:-100"]);
  assert.equal(sourceCount(h.client), 1);

  controller.watches(secrets, bySecret);
  await h.settle();
  assert.equal(sourceCount(h.client), 2);
  assert.deepEqual(runs.splice(0), ["b:watch added: Secret:-100"]);

  seed(server, "Secret", "s-a");
  await h.settle();
  assert.deepEqual(runs.splice(0), ["a:Secret default/s-a changed:0"]);
});

test("controller: unwatch() stops following and releases the cache when the last holder leaves", async () => {
  await using server = new FakeApiServer();
  seed(server, "ConfigMap", "a");
  seed(server, "Secret", "s-a");
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  const controller = new Controller(h.client, configMaps, (cm, ctx) => {
    runs.push(`${cm.metadata!.name}:${ctx.reason}`);
  }, { clock: h.clock }).watches(secrets, bySecret);
  h.start(controller);
  await h.settle();
  assert.equal(sourceCount(h.client), 2);
  const watchesBefore = server.openWatches;

  // Another holder of the Secrets cache: unwatch must not stop it.
  const shared = sharedCache(h.client, secrets, { clock: h.clock });
  await shared.ready;
  assert.equal(
    await controller.unwatch(Api.v1Secret()),
    1,
    "matched through the primary's namespace",
  );
  await h.settle();
  assert.equal(sourceCount(h.client), 2, "still held by sharedCache");
  runs.length = 0;
  await h.client.patch(secrets, "s-a", { metadata: { labels: { x: "1" } } });
  await h.settle();
  assert.deepEqual(runs, [], "no longer followed");

  await shared.release();
  await h.settle();
  assert.equal(sourceCount(h.client), 1, "the last holder left: the watch stopped");
  assert.equal(server.openWatches, watchesBefore - 1);
  assert.equal(await controller.unwatch(secrets), 0);

  // Added again: followed again.
  controller.watches(secrets, bySecret);
  await h.settle();
  runs.length = 0;
  await h.client.patch(secrets, "s-a", { metadata: { labels: { x: "2" } } });
  await h.settle();
  assert.deepEqual(runs, ["a:Secret default/s-a changed"]);
});

test("controller: a watch added while running that cannot list is removed; the controller goes on", async () => {
  await using server = new FakeApiServer();
  seed(server, "ConfigMap", "a");
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  const controller = new Controller(h.client, configMaps, (cm, ctx) => {
    runs.push(`${cm.metadata!.name}:${ctx.reason}`);
  }, { clock: h.clock });
  const done = h.start(controller);
  let ended = false;
  done.finally(() => ended = true).catch(() => {});
  await h.settle();
  server.inject({
    on: ["list", "watch"],
    resource: "secrets",
    times: Infinity,
    fault: { status: 403 },
  });
  controller.watches(secrets, bySecret);
  await h.settle();
  assert.equal(sourceCount(h.client), 1, "the failed watch was released");
  assert.equal(ended, false);
  await h.client.patch(configMaps, "a", { data: { v: "1" } });
  await h.settle();
  assert.deepEqual(runs.at(-1), "a:changed");
  assert.equal(await controller.unwatch(secrets), 0, "already removed");
});

test("controller: a watch removed with unwatch() whose shared cache later fails does not stop the controller", async () => {
  await using server = new FakeApiServer();
  seed(server, "ConfigMap", "a");
  seed(server, "Secret", "s-a");
  // The first Secrets watch ends after three events (its initial ADDED and bookmark, then the
  // first patch below), so that its cache reconnects into the 403s.
  server.inject({ on: "watch", resource: "secrets", after: 3, times: 1, fault: "close" });
  await using h = new ControllerHarness(server);
  const runs: string[] = [];
  const controller = new Controller(h.client, configMaps, (cm, ctx) => {
    runs.push(`${cm.metadata!.name}:${ctx.reason}`);
  }, { clock: h.clock }).watches(secrets, bySecret);
  const done = h.start(controller);
  let ended: unknown = false;
  done.then(() => ended = "resolved", (e) => ended = e);
  await h.settle();
  // Another holder keeps the Secrets cache (and its watch) alive after unwatch().
  const shared = sharedCache(h.client, secrets, { clock: h.clock });
  await shared.ready;
  assert.equal(await controller.unwatch(secrets), 1);
  await h.settle();
  assert.equal(sourceCount(h.client), 2, "still held by sharedCache");

  // The Secrets cache now fails permanently: its watch ends and every new request is forbidden.
  const forbidden = server.inject({
    on: ["list", "watch"],
    resource: "secrets",
    times: Infinity,
    fault: { status: 403 },
  });
  let cacheFailed = false;
  shared.failed.catch(() => cacheFailed = true);
  await h.client.patch(secrets, "s-a", { metadata: { labels: { x: "1" } } });
  await h.client.patch(secrets, "s-a", { metadata: { labels: { x: "2" } } });
  await h.advance(60_000);
  assert.ok(forbidden.hits > 0, "the cache reconnected and was refused");
  assert.ok(cacheFailed, "the shared Secrets cache failed");
  assert.equal(ended, false, "the controller did not stop with a watch it no longer has");
  await h.client.patch(configMaps, "a", { data: { v: "1" } });
  await h.settle();
  assert.equal(runs.at(-1), "a:changed");
  await shared.release();
});
