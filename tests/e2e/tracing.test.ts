// Tracing on the real kube-apiserver: one reconcile's trace, with its client requests as
// children and the change that caused it as its parent, reaches an OTLP receiver. The SDK and
// the OTLP/HTTP exporter are the test's (the library only uses @opentelemetry/api); the
// receiver is an OTLP/HTTP JSON endpoint served by the test (see the note in tracing.ts of the
// runtime: an OpenTelemetry Collector build is not part of `deno task test`).

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { Api, Controller, type ReconcileOutcome, sharedCache } from "../../mod.ts";
import { TRACEPARENT_ANNOTATION } from "../../runtime/_controller/tracing.ts";
import { e2eTest, eventually, uniqueNamespace } from "./_harness.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** An OTLP/HTTP receiver (JSON encoding) on loopback: collects the spans it is sent. */
async function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      for (const rs of body.resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attr = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.intValue;
};

e2eTest(
  "tracing: a reconcile's trace with its client requests reaches the OTLP receiver",
  async ({ client }) => {
    const receiver = await otlpReceiver();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: receiver.url }))],
    });
    trace.setGlobalTracerProvider(provider);
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    try {
      const ns = uniqueNamespace("tracing");
      await client.create(Api.v1Namespace(), { metadata: { name: ns } });
      const configMaps = Api.v1ConfigMap().within(ns);
      const outcomes: ReconcileOutcome[] = [];
      const controller = new Controller(client, configMaps, async (cm, ctx) => {
        if (cm.metadata!.name !== "traced") return;
        await ctx.client.get(configMaps, "traced");
        await ctx.client.apply(configMaps, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "traced-out", namespace: ns },
          data: { from: "traced" },
        }, { fieldManager: "e2e-tracing" });
      }, { name: "traced-controller" });
      controller.onOutcome((o) => outcomes.push(o));
      running = controller.run(stop.signal);
      // Its cache (shared): synced before the change, so that the change is a change.
      const cache = sharedCache(client, configMaps);
      await cache.ready;
      await cache.release();

      // The writer's change, made in its own span, carries that span's context on the object.
      const edit = trace.getTracer("e2e").startSpan("e2e edit");
      const sc = edit.spanContext();
      await client.create(configMaps, {
        metadata: {
          name: "traced",
          annotations: { [TRACEPARENT_ANNOTATION]: `00-${sc.traceId}-${sc.spanId}-01` },
        },
        data: { v: "1" },
      });
      edit.end();
      await eventually("the reconcile of traced succeeded", () => {
        assert.ok(outcomes.some((o) => o.key === `${ns}/traced` && o.result === "success"));
      });
      await provider.forceFlush();

      let run: OtlpSpan | undefined;
      await eventually("the reconcile span reached the receiver", () => {
        run = receiver.spans.find((s) =>
          s.name === "reconcile traced-controller" && attr(s, "kube.key") === `${ns}/traced`
        );
        assert.ok(run);
      }, 10_000);
      assert.ok(run);
      const runSpanId = run.spanId;
      assert.equal(run.traceId, sc.traceId, "the reconcile joins the trace of the change");
      assert.equal(run.parentSpanId, sc.spanId);
      // "added"; "initial sync" if the cache listed it first (its cause is carried either way).
      assert.ok(["added", "initial sync"].includes(String(attr(run, "kube.reason"))));
      assert.equal(attr(run, "kube.result"), "success");
      const children = receiver.spans.filter((s) => s.parentSpanId === runSpanId);
      assert.deepEqual(children.map((s) => s.name).sort(), ["GET", "PATCH"]);
      for (const child of children) {
        assert.equal(child.traceId, sc.traceId);
        assert.equal(child.kind, 3, "SPAN_KIND_CLIENT");
        assert.equal(
          String(attr(child, "http.response.status_code")),
          child.name === "GET" ? "200" : "201",
        );
        assert.match(String(attr(child, "url.full")), new RegExp(`/namespaces/${ns}/configmaps/`));
      }
    } finally {
      stop.abort();
      await running?.catch(() => {});
      await provider.shutdown();
      trace.disable();
      context.disable();
      await receiver.close();
    }
  },
);
