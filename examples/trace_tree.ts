// deno run --allow-env --allow-read=$HOME/.kube --allow-net examples/trace_tree.ts [namespace] [--log=info]
//
// Traces one reconcile and prints its trace as a tree. The program registers an OpenTelemetry
// SDK (the library never does: it only uses @opentelemetry/api) with a context manager and an
// in-memory exporter, runs a controller over the namespace's ConfigMaps, creates the ConfigMap
// `trace-demo` from inside a span `edit trace-demo` with that span's W3C context in the
// annotation `denokube.dev/traceparent`, and, once the reconcile it causes has finished, prints:
//
//   edit trace-demo
//   └─ reconcile trace-demo-controller  key=<ns>/trace-demo reason=added result=success
//      ├─ GET  …/configmaps/trace-demo  200
//      └─ PATCH …/configmaps/trace-demo-out  201
//
// (reason=initial sync when the ConfigMap was created before the controller's cache had synced.)
// It deletes both ConfigMaps at the end. With OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or
// OTEL_EXPORTER_OTLP_ENDPOINT) set, e.g. to an OpenTelemetry Collector's
// http://localhost:4318/v1/traces, the same spans also go there over OTLP/HTTP, through the SDK's
// BatchSpanProcessor (bounded queue; an unreachable endpoint delays nothing of the reconcile), and
// on to your tracing backend (Jaeger, Tempo, …).
//
// Outside this repository, import from "@denokube/kube" (`deno add jsr:@denokube/kube`) instead
// of "../mod.ts", and the SDK packages from npm.

import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { Api, Controller } from "../mod.ts";
import { startExample } from "./_example.ts";

await using example = await startExample({ namespaced: true });
const { client, namespace } = example;

const exporter = new InMemorySpanExporter();
const spanProcessors: SpanProcessor[] = [new SimpleSpanProcessor(exporter)];
// The exporter reads the endpoint from these variables itself.
if (
  Deno.env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || Deno.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
) {
  spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
}
const provider = new BasicTracerProvider({ spanProcessors });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);

const configMaps = Api.v1ConfigMap().within(namespace);
let done!: () => void;
const reconciled = new Promise<void>((resolve) => done = resolve);
const controller = new Controller(client, configMaps, async (cm, ctx) => {
  if (cm.metadata!.name !== "trace-demo") return;
  await ctx.client.get(configMaps, "trace-demo");
  await ctx.client.apply(configMaps, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "trace-demo-out", namespace },
    data: { from: "trace-demo" },
  }, { fieldManager: "trace-demo" });
}, { name: "trace-demo-controller" });
controller.onOutcome((o) => {
  if (o.key === `${namespace}/trace-demo`) done();
});
const stop = new AbortController();
const running = controller.run(stop.signal);

const edit = trace.getTracer("example").startSpan("edit trace-demo");
const sc = edit.spanContext();
await client.apply(configMaps, {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: {
    name: "trace-demo",
    namespace,
    annotations: { "denokube.dev/traceparent": `00-${sc.traceId}-${sc.spanId}-01` },
  },
  data: { v: String(Date.now()) },
}, { fieldManager: "trace-demo" });
edit.end();
let timer: ReturnType<typeof setTimeout> | undefined;
await Promise.race([reconciled, new Promise((resolve) => timer = setTimeout(resolve, 30_000))]);
clearTimeout(timer); // else the process lingers until it fires
stop.abort();
await running;
await client.delete(configMaps, "trace-demo").catch(() => {});
await client.delete(configMaps, "trace-demo-out").catch(() => {});

// The tree of the edit's trace.
const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === sc.traceId);
const children = (id: string) => spans.filter((s) => s.parentSpanContext?.spanId === id);
const describe = (s: ReadableSpan) => {
  const a = s.attributes;
  if (a["kube.key"]) {
    return `${s.name}  key=${a["kube.key"]} reason=${a["kube.reason"]} result=${a["kube.result"]}`;
  }
  if (a["url.full"]) {
    return `${s.name.padEnd(5)} ${String(a["url.full"]).replace(/^https?:\/\/[^/]+/, "")}  ${
      a["http.response.status_code"] ?? ""
    }`;
  }
  return s.name;
};
const print = (s: ReadableSpan, prefix: string, last: boolean, root: boolean) => {
  console.log(root ? describe(s) : `${prefix}${last ? "└─ " : "├─ "}${describe(s)}`);
  const kids = children(s.spanContext().spanId);
  const next = root ? "" : prefix + (last ? "   " : "│  ");
  kids.forEach((k, i) => print(k, next, i === kids.length - 1, false));
};
const [rootSpan] = spans.filter((s) => s.spanContext().spanId === sc.spanId);
if (rootSpan) print(rootSpan, "", true, true);
else console.log("no trace recorded (did the reconcile run?)");
// Sends what is still queued for OTLP (a failed export is the SDK's diag message, not ours).
await provider.shutdown().catch(() => {});
trace.disable();
context.disable();
