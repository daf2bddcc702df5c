// OpenTelemetry tracing of reconciles and requests, with the SDK registered by the TEST (the
// library only uses @opentelemetry/api): span per reconcile, its requests as children, the trace
// context of the change carried through the work queue, and nothing at all without an SDK.

import assert from "node:assert/strict";
import { context, trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
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
async function withSdk(
  exporter: SpanExporter,
  fn: () => Promise<void>,
): Promise<void> {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
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

test("tracing: an exporter that never answers does not slow reconciles", async () => {
  let exports = 0;
  const hanging: SpanExporter = {
    export() {
      exports++; // never calls back
    },
    shutdown: () => Promise.resolve(),
  };
  await withSdk(hanging, async () => {
    await using server = new FakeApiServer();
    for (let i = 0; i < 50; i++) seed(server, `cm-${i}`);
    await using h = new ControllerHarness(server);
    const controller = new Controller(h.client, configMaps, () => {}, { clock: h.clock });
    h.start(controller);
    await h.settle();
    assert.equal(controller.stats().reconciles.success, 50);
    await h.stop();
  });
  assert.ok(exports >= 50);
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
