// The Prometheus registry, its text exposition, and the health/metrics endpoints.

import assert from "node:assert/strict";
import { Counter, Registry } from "../../runtime/metrics.ts";
import { endpointsHandler, serveEndpoints } from "../../runtime/endpoints.ts";
import { test } from "../_test.ts";

test("counters, gauges and histograms render in the text exposition format 0.0.4", () => {
  const registry = new Registry();
  const reconciles = registry.counter({
    name: "reconcile_total",
    help: "Reconciles by controller and result.",
    labelNames: ["controller", "result"],
  });
  reconciles.inc({ controller: "foo", result: "success" });
  reconciles.inc({ controller: "foo", result: "success" }, 2);
  reconciles.inc({ result: "error", controller: "foo" });
  const depth = registry.gauge({
    name: "queue_depth",
    help: "Items queued.",
    labelNames: ["name"],
  });
  depth.set({ name: 'we"ird\\na\nme' }, 4);
  const time = registry.histogram({
    name: "reconcile_time_seconds",
    help: "Reconcile duration\nin seconds.",
    labelNames: ["controller"],
    buckets: [0.1, 1],
  });
  time.observe({ controller: "foo" }, 0.05);
  time.observe({ controller: "foo" }, 0.5);
  time.observe({ controller: "foo" }, 3);
  assert.equal(
    registry.expose(),
    [
      "# HELP reconcile_total Reconciles by controller and result.",
      "# TYPE reconcile_total counter",
      'reconcile_total{controller="foo",result="success"} 3',
      'reconcile_total{controller="foo",result="error"} 1',
      "# HELP queue_depth Items queued.",
      "# TYPE queue_depth gauge",
      'queue_depth{name="we\\"ird\\\\na\\nme"} 4',
      "# HELP reconcile_time_seconds Reconcile duration\\nin seconds.",
      "# TYPE reconcile_time_seconds histogram",
      'reconcile_time_seconds_bucket{controller="foo",le="0.1"} 1',
      'reconcile_time_seconds_bucket{controller="foo",le="1"} 2',
      'reconcile_time_seconds_bucket{controller="foo",le="+Inf"} 3',
      'reconcile_time_seconds_sum{controller="foo"} 3.55',
      'reconcile_time_seconds_count{controller="foo"} 3',
      "",
    ].join("\n"),
  );
  assert.equal(reconciles.get({ controller: "foo", result: "success" }), 3);
  assert.deepEqual(time.get({ controller: "foo" }), { count: 3, sum: 3.55 });
});

test("reads do not create series; collectors run at exposition", () => {
  const registry = new Registry();
  const c = registry.counter({ name: "x_total", help: "X.", labelNames: ["a"] });
  assert.equal(c.get({ a: "1" }), 0);
  assert.equal(registry.expose(), "# HELP x_total X.\n# TYPE x_total counter\n");
  const g = registry.gauge({ name: "leader", help: "Leading." });
  let leading = false;
  registry.onCollect(() => g.set(undefined, leading ? 1 : 0));
  assert.match(registry.expose(), /^leader 0$/m);
  leading = true;
  assert.match(registry.expose(), /^leader 1$/m);
  registry.onCollect(() => {
    throw new Error("broken\ncollector");
  });
  assert.match(registry.expose(), /^# collector failed: broken\\ncollector$/m);
});

test("bad names, labels and values are refused with what to fix", () => {
  const registry = new Registry();
  assert.throws(() => registry.counter({ name: "1x", help: "h" }), /Invalid metric name "1x"/);
  assert.throws(() => registry.counter({ name: "x", help: "" }), /needs a help text/);
  assert.throws(
    () => registry.counter({ name: "x", help: "h", labelNames: ["__a"] }),
    /invalid label name "__a"/,
  );
  assert.throws(
    () => registry.histogram({ name: "h", help: "h", labelNames: ["le"] }),
    /reserved by the le label/,
  );
  assert.throws(
    () => registry.histogram({ name: "h", help: "h", buckets: [1, 1] }),
    /strictly increasing/,
  );
  const c = registry.counter({ name: "c_total", help: "h", labelNames: ["a"] });
  assert.equal(registry.counter({ name: "c_total", help: "h", labelNames: ["a"] }), c);
  assert.throws(() => registry.gauge({ name: "c_total", help: "h" }), /already registered/);
  assert.throws(() => c.inc({ a: "1" }, -1), /can only go up/);
  assert.throws(() => c.inc({ b: "1" }), /takes the labels \[a\], got \[b\]/);
  assert.throws(() => c.inc(), /takes the labels \[a\], got \[\]/);
  assert.ok(c instanceof Counter);
});

test("endpoints: /healthz, /readyz (verbose), /metrics, 404 and 405", async () => {
  const registry = new Registry();
  registry.counter({ name: "hits_total", help: "Hits." }).inc();
  let synced: true | string = "caches not synced";
  const handler = endpointsHandler({
    registry,
    healthz: { loops: () => true },
    readyz: { caches: () => synced, leader: () => true },
  });
  const get = async (path: string, method = "GET") => {
    const res = await handler(new Request(`http://x${path}`, { method }));
    return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
  };
  assert.deepEqual(await get("/healthz"), {
    status: 200,
    text: "ok\n",
    type: "text/plain; charset=utf-8",
  });
  const notReady = await get("/readyz");
  assert.equal(notReady.status, 500);
  assert.equal(notReady.text, "[-]caches failed: caches not synced\n[+]leader ok\ncheck failed\n");
  synced = true;
  assert.equal((await get("/readyz")).status, 200);
  assert.equal((await get("/readyz?verbose")).text, "[+]caches ok\n[+]leader ok\nok\n");
  const metrics = await get("/metrics");
  assert.equal(metrics.type, "text/plain; version=0.0.4; charset=utf-8");
  assert.match(metrics.text, /^hits_total 1$/m);
  assert.equal((await get("/nope")).status, 404);
  assert.equal((await get("/metrics", "POST")).status, 405);
});

test("serveEndpoints listens on a loopback port and closes cleanly", async () => {
  await using server = await serveEndpoints({ hostname: "127.0.0.1", port: 0 });
  assert.ok(server.port > 0);
  const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  assert.equal(await res.text(), "ok\n");
  await server.close();
  await server.close();
  await assert.rejects(() => serveEndpoints({ port: 70_000 }), /port must be an integer/);
});
