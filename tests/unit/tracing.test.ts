// OpenTelemetry tracing of reconciles and requests, with the SDK registered by the TEST (the
// library only uses @opentelemetry/api): span per reconcile, its requests as children, the trace
// context of the change carried through the work queue, and nothing at all without an SDK. An
// exporter that hangs or fails, behind the SDK's BatchSpanProcessor with a small queue, changes
// nothing of the reconciles; the SDK drops what does not fit and reports the count through `diag`.

import assert from "node:assert/strict";
import { context, diag, DiagLogLevel, trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { Api, Client, Controller } from "../../mod.ts";
import { TRACEPARENT_ANNOTATION } from "../../runtime/_controller/tracing.ts";
import { ControllerHarness, FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

function seed(server: FakeApiServer, name: string, annotations?: Record<string, string>): void {
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "default", ...(annotations ? { annotations } : {}) },
    data: { v: "0" },
  });
}

/** Registers an SDK for the duration of `fn` (and unregisters it, whatever happens). */
function withSdk(exporter: SpanExporter, fn: () => Promise<void>): Promise<void> {
  return withProcessors([new SimpleSpanProcessor(exporter)], fn);
}

/** Registers an SDK with these span processors for the duration of `fn`. */
async function withProcessors(
  spanProcessors: SpanProcessor[],
  fn: () => Promise<void>,
): Promise<void> {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const provider = new BasicTracerProvider({ spanProcessors });
  trace.setGlobalTracerProvider(provider);
  try {
    await fn();
  } finally {
    trace.disable();
    context.disable();
  }
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

test("tracing: a span per reconcile, with its client requests as children", async () => {
  const exporter = new InMemorySpanExporter();
  await withSdk(exporter, async () => {
    await using server = new FakeApiServer();
    seed(server, "a");
    await using h = new ControllerHarness(server);
    h.start(
      new Controller(h.client, configMaps, async (cm, ctx) => {
        if (cm.metadata!.name !== "a") return;
        await ctx.client.get(configMaps, cm.metadata!.name!);
        await ctx.client.apply(configMaps, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `${cm.metadata!.name}-out`, namespace: "default" },
          data: { from: cm.metadata!.name! },
        }, { fieldManager: "test" });
      }, { clock: h.clock }),
    );
    await h.settle();
    await h.stop();
  });
  const spans = exporter.getFinishedSpans();
  const reconciles = spans.filter((s) => s.name === "reconcile configmap-controller");
  // a, then a-out (its output: an added ConfigMap), which does nothing.
  assert.deepEqual(reconciles.map((s) => s.attributes["kube.key"]), ["default/a", "default/a-out"]);
  const [run] = reconciles;
  assert.equal(run.attributes["kube.key"], "default/a");
  assert.equal(run.attributes["kube.reason"], "initial sync");
  assert.equal(run.attributes["kube.attempt"], 1);
  assert.equal(run.attributes["kube.priority"], -100);
  assert.equal(run.attributes["kube.result"], "success");
  assert.equal(parentOf(run), undefined, "a root span: nothing caused it but the start");
  const children = spans.filter((s) => parentOf(s) === run.spanContext().spanId);
  assert.deepEqual(children.map((s) => s.name).sort(), ["GET", "PATCH"]);
  for (const child of children) {
    assert.equal(child.spanContext().traceId, run.spanContext().traceId);
    assert.match(String(child.attributes["url.full"]), /\/namespaces\/default\/configmaps\//);
    assert.equal(child.attributes["http.response.status_code"], child.name === "GET" ? 200 : 201);
  }
  // The watch's own requests (list, watch) are not children of any reconcile.
  const lists = spans.filter((s) => s.name === "GET" && parentOf(s) === undefined);
  assert.ok(lists.length >= 1);
});

test("tracing: the trace context of a change (its traceparent annotation) is the reconcile's parent", async () => {
  const exporter = new InMemorySpanExporter();
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const spanId = "00f067aa0ba902b7";
  await withSdk(exporter, async () => {
    await using server = new FakeApiServer();
    seed(server, "a");
    await using h = new ControllerHarness(server);
    let runs = 0;
    h.start(
      new Controller(h.client, configMaps, () => {
        runs++;
        return runs === 2 ? { error: new Error("boom") } : undefined;
      }, { clock: h.clock, backoff: { initialMs: 100, jitter: 0 } }),
    );
    await h.settle();
    // A writer's change that carries its trace context.
    await h.client.patch(configMaps, "a", {
      metadata: { annotations: { [TRACEPARENT_ANNOTATION]: `00-${traceId}-${spanId}-01` } },
    });
    await h.settle();
    await h.advance(100); // the retry
    await h.stop();
  });
  const runs = exporter.getFinishedSpans().filter((s) => s.name.startsWith("reconcile "));
  assert.equal(runs.length, 3);
  const [, changed, retry] = runs;
  assert.equal(changed.attributes["kube.reason"], "changed");
  assert.equal(changed.spanContext().traceId, traceId);
  assert.equal(parentOf(changed), spanId);
  assert.equal(changed.attributes["kube.result"], "error");
  assert.equal(changed.status.code, 2); // ERROR
  // The retry is linked to the failed run (not its child).
  assert.equal(retry.attributes["kube.reason"], "retry after error");
  assert.equal(retry.attributes["kube.attempt"], 2);
  assert.deepEqual(retry.links.map((l) => l.context.spanId), [changed.spanContext().spanId]);
});

test("tracing: without an SDK nothing is traced and no traceparent header is sent", async () => {
  await using server = new FakeApiServer();
  seed(server, "a");
  const headers: (string | null)[] = [];
  const fetch = (input: Request | URL | string, init?: RequestInit) => {
    headers.push(new Headers(init?.headers).get("traceparent"));
    return server.fetch(input, init);
  };
  await using client = new Client(server.config(), { fetch });
  await client.get(configMaps, "a");
  assert.deepEqual(headers, [null]);
});

test("tracing: with an SDK every request carries its span's traceparent", async () => {
  const exporter = new InMemorySpanExporter();
  await using server = new FakeApiServer();
  seed(server, "a");
  const headers: (string | null)[] = [];
  const fetch = (input: Request | URL | string, init?: RequestInit) => {
    headers.push(new Headers(init?.headers).get("traceparent"));
    return server.fetch(input, init);
  };
  await using client = new Client(server.config(), { fetch });
  await withSdk(exporter, async () => {
    await client.get(configMaps, "a");
    await assert.rejects(client.get(configMaps, "missing"));
  });
  const [ok, missing] = exporter.getFinishedSpans();
  assert.equal(headers[0], `00-${ok.spanContext().traceId}-${ok.spanContext().spanId}-01`);
  assert.equal(missing.attributes["http.response.status_code"], 404);
  assert.equal(missing.attributes["error.type"], "NotFound");
  assert.equal(missing.status.code, 2);
});

/** Counts the spans that ended (whatever the other processors do with them). */
function endedCounter(): SpanProcessor & { ended: number } {
  return {
    ended: 0,
    onStart() {},
    onEnd() {
      this.ended++;
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

/**
 * The sum of the SDK's drop reports ("Dropped N spans because maxQueueSize reached", a `diag`
 * warning), read through a diag logger the TEST registers, as README "Tracing" shows a program
 * doing. The library registers none.
 */
function dropCounter(): { dropped: number; errors: number; queueFull: number } & Disposable {
  const counts = { dropped: 0, errors: 0, queueFull: 0 };
  const ignore = () => {};
  diag.setLogger({
    error: () => counts.errors++,
    warn(message: string) {
      const m = /^Dropped (\d+) spans because maxQueueSize reached/.exec(message);
      if (m) counts.dropped += Number(m[1]);
    },
    info: ignore,
    debug(message: string) {
      if (message.startsWith("maxQueueSize reached")) counts.queueFull++;
    },
    verbose: ignore,
  }, { logLevel: DiagLogLevel.DEBUG, suppressOverrideMessage: true });
  return Object.assign(counts, { [Symbol.dispose]: () => diag.disable() });
}

const MANY = 200;

/** What MANY reconciles did, through the harness: outcomes, counters, requests, virtual time. */
async function manyReconciles(
  more?: (h: ControllerHarness) => Promise<void>,
): Promise<Record<string, unknown>> {
  await using server = new FakeApiServer();
  for (let i = 0; i < MANY; i++) seed(server, `cm-${i}`);
  await using h = new ControllerHarness(server);
  const controller = new Controller(h.client, configMaps, async (cm, ctx) => {
    await ctx.client.get(configMaps, cm.metadata!.name!);
  }, { clock: h.clock });
  h.start(controller);
  await h.settle();
  const seen = {
    outcomes: h.outcomes.map((o) => `${o.key} ${o.result} ${o.reason} ${o.attempt}`).sort(),
    reconciles: controller.stats().reconciles,
    requests: h.requests.length,
    virtualMs: h.clock.now(),
  };
  await more?.(h);
  await h.stop();
  return seen;
}

test("tracing: an exporter that never answers changes nothing of the reconciles; the batch queue stays bounded and drops are counted", async () => {
  const untraced = await manyReconciles();
  assert.equal((untraced.reconciles as { success: number }).success, MANY);

  // Never calls back, until the test releases it (so that no export timer outlives the test).
  const pending: ((result: { code: number }) => void)[] = [];
  let handed = 0;
  const hanging: SpanExporter = {
    export(spans, done) {
      handed += spans.length;
      pending.push(done);
    },
    shutdown: () => Promise.resolve(),
  };
  const release = () => pending.splice(0).forEach((done) => done({ code: 1 })); // FAILED
  const maxQueueSize = 16;
  const maxExportBatchSize = 8;
  const batch = new BatchSpanProcessor(hanging, {
    maxQueueSize,
    maxExportBatchSize,
    // Neither fires during the test: the batch is sent when full, the export is released.
    scheduledDelayMillis: 3_600_000,
    exportTimeoutMillis: 3_600_000,
  });
  const counter = endedCounter();
  using drops = dropCounter();
  let traced: Record<string, unknown> = {};
  let endedWhileHung = 0;
  let handedWhileHung = 0;
  await withProcessors([batch, counter], async () => {
    traced = await manyReconciles(async (h) => {
      endedWhileHung = counter.ended;
      handedWhileHung = handed;
      assert.equal(pending.length, 1, "one export in flight, never answered");
      // Released: the export fails, the queue drains, and the next span that fits reports how
      // many did not.
      release();
      await h.client.patch(configMaps, "cm-0", { data: { v: "1" } });
      await h.settle();
      release();
    });
    // Shutdown exports what is queued (to the exporter, which still never answers by itself).
    const down = batch.shutdown();
    for (let i = 0; i < 10 && pending.length === 0; i++) await Promise.resolve();
    release();
    // The SDK rejects a flush whose export failed: the program's shutdown sees it, no reconcile.
    await assert.rejects(down, /span export failed/);
  });
  // Exactly as without tracing: every reconcile, its outcome, its requests, no virtual time.
  assert.deepEqual(traced, untraced);
  // Every reconcile and request made a span; the exporter got one batch; the queue held
  // maxQueueSize more; the rest were dropped, and the SDK reported exactly that many.
  assert.ok(endedWhileHung >= 2 * MANY, `${endedWhileHung} spans ended`);
  assert.equal(handedWhileHung, maxExportBatchSize);
  assert.ok(drops.queueFull >= 1);
  assert.equal(drops.dropped, endedWhileHung - maxExportBatchSize - maxQueueSize);
});

test("tracing: an exporter that always fails changes nothing of the reconciles", async () => {
  const untraced = await manyReconciles();
  let handed = 0;
  const failing: SpanExporter = {
    export(spans, done) {
      handed += spans.length;
      done({ code: 1, error: new Error("collector unreachable") }); // FAILED
    },
    shutdown: () => Promise.resolve(),
  };
  const throwing: SpanExporter = {
    export() {
      throw new Error("exporter bug");
    },
    shutdown: () => Promise.resolve(),
  };
  for (const exporter of [failing, throwing]) {
    const batch = new BatchSpanProcessor(exporter, {
      maxQueueSize: 16,
      maxExportBatchSize: 8,
      scheduledDelayMillis: 3_600_000,
      // The SDK keeps an export's timeout timer when the exporter throws: a short one, so that
      // it does not keep Node alive after the tests.
      exportTimeoutMillis: 1,
    });
    using drops = dropCounter();
    let traced: Record<string, unknown> = {};
    await withProcessors([batch], async () => {
      traced = await manyReconciles();
      await batch.shutdown().catch(() => {}); // rejects: its last export failed as well
    });
    assert.deepEqual(traced, untraced);
    // Each failed export is reported to diag (the SDK's global error handler), never thrown.
    assert.ok(drops.errors >= 1);
  }
  assert.ok(handed >= 2 * MANY, `${handed} spans handed to the failing exporter`);
});

test("tracing: an object's traceparent annotation is the parent of its initial-sync reconcile too", async () => {
  const exporter = new InMemorySpanExporter();
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const spanId = "b7ad6b7169203331";
  await withSdk(exporter, async () => {
    await using server = new FakeApiServer();
    seed(server, "a", { [TRACEPARENT_ANNOTATION]: `00-${traceId}-${spanId}-01` });
    seed(server, "b", { [TRACEPARENT_ANNOTATION]: "not a traceparent" });
    await using h = new ControllerHarness(server);
    h.start(new Controller(h.client, configMaps, () => {}, { clock: h.clock }));
    await h.settle();
    await h.stop();
  });
  const runs = exporter.getFinishedSpans().filter((s) => s.name.startsWith("reconcile "));
  const a = runs.find((s) => s.attributes["kube.key"] === "default/a")!;
  const b = runs.find((s) => s.attributes["kube.key"] === "default/b")!;
  assert.equal(a.spanContext().traceId, traceId);
  assert.equal(parentOf(a), spanId);
  assert.equal(parentOf(b), undefined, "an invalid value is ignored");
  assert.notEqual(b.spanContext().traceId, traceId);
});
