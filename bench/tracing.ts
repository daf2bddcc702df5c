/**
 * The cost of the tracing hooks with no OpenTelemetry SDK registered (the library's default: it
 * only uses `@opentelemetry/api`) and, for comparison, with an SDK that records every span into
 * a no-op processor: `deno run -A bench/tracing.ts`. Prints nanoseconds per request (the
 * transport's span: start, traceparent, end) and per reconcile (the reconcile span: start, run
 * in its context, end), as the median of 7 rounds of 200,000 calls each. Not part of
 * `deno task test`.
 *
 * @module
 */

import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider, NoopSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { endRequestSpan, startRequestSpan, traceparentOf } from "../_client/transport.ts";
import { endReconcileSpan, startReconcileSpan, withSpan } from "../runtime/_controller/tracing.ts";

const N = 200_000;
const url = new URL(
  "https://127.0.0.1:6443/api/v1/namespaces/default/configmaps/a",
);

function request(): void {
  const span = startRequestSpan("0.1.0", "GET", url);
  traceparentOf(span);
  endRequestSpan(span, 200);
}

const run = { reason: "changed", attempt: 1, priority: 0 };
let sink = 0;
function reconcile(): void {
  const traced = startReconcileSpan("bench-controller", "default/a", run, []);
  sink += withSpan(traced, () => 1);
  endReconcileSpan(traced, "success");
}

function nsPerCall(fn: () => void): number {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const started = performance.now();
    for (let i = 0; i < N; i++) fn();
    rounds.push(((performance.now() - started) * 1e6) / N);
  }
  return rounds.sort((a, b) => a - b)[3];
}

const baseline = nsPerCall(() => void sink++);
const noSdk = { request: nsPerCall(request), reconcile: nsPerCall(reconcile) };
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }),
);
const withSdk = {
  request: nsPerCall(request),
  reconcile: nsPerCall(reconcile),
};
trace.disable();
context.disable();

const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(
  " ",
).slice(0, 3);
console.log(
  `| hook | no SDK registered | SDK registered (spans recorded, no-op processor) |`,
);
console.log(`| --- | --- | --- |`);
console.log(
  `| request span (start, traceparent, end) | ${noSdk.request.toFixed(0)} ns | ${
    withSdk.request.toFixed(0)
  } ns |`,
);
console.log(
  `| reconcile span (start, context.with, end) | ${noSdk.reconcile.toFixed(0)} ns | ${
    withSdk.reconcile.toFixed(0)
  } ns |`,
);
console.log(
  `(empty loop ${baseline.toFixed(1)} ns/call; load average ${load.join(" ")})`,
);
