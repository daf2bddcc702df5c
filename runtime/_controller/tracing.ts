// Internal: the OpenTelemetry span of each reconcile, through `@opentelemetry/api` only (the
// library never registers an SDK; with none registered this is the API's no-op tracer).
//
// "The change that caused it": a watch event carries no trace context, so the controller reads
// the W3C trace context a writer left on the object it changed, in the annotation
// `TRACEPARENT_ANNOTATION` (`00-<trace id>-<span id>-<flags>`, as the `traceparent` header). A
// key queued by such a change carries that context through the work queue; its reconcile span
// is a child of it (the first cause), and further causes merged while the key waited become
// links. A requeue or retry carries the span of the run that asked for it, as a link (a retry is
// not a child of the failed run: its own trace would grow without end). The reconcile runs with
// its span active, so the requests of `ctx.client` are its children when the program registered
// a context manager (every OpenTelemetry SDK for Node, Deno and Bun does). Ending a span only
// hands it to the SDK's processor: no reconcile waits on an export (a batch processor bounds its
// queue and counts what it drops; tests/unit/tracing.test.ts). tests/e2e/tracing.test.ts proves,
// within `deno task test`, that a full-cluster reconcile's spans reach a real OpenTelemetry
// Collector (testenv/otelcol).

import {
  type Context,
  context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import type { KubeObject } from "../../api.ts";
import { kubeTracer, tracingEnabled, VERSION } from "../../_client/transport.ts";

/** The annotation a writer sets to have the reconcile its change causes join its trace. */
export const TRACEPARENT_ANNOTATION = "denokube.dev/traceparent";

/** A queued key's cause: a span context, as the parent of its run's span or as a link. */
export interface TraceCause {
  span: SpanContext;
  /** A change's context (a parent); else a link (a requeue's or retry's previous run). */
  parent: boolean;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Parses a W3C `traceparent` value (version 00).
 *
 * @returns The remote span context, or `undefined` when the value is not a valid one.
 */
export function parseTraceparent(value: unknown): SpanContext | undefined {
  if (typeof value !== "string" || value.length !== 55) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const span: SpanContext = {
    traceId: m[1],
    spanId: m[2],
    traceFlags: parseInt(m[3], 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return trace.isSpanContextValid(span) ? span : undefined;
}

/** The cause a change of `object` carries (its annotation), if any (none without an SDK). */
export function changeCause(object: KubeObject | undefined): TraceCause | undefined {
  if (!tracingEnabled()) return undefined;
  const value = object?.metadata?.annotations?.[TRACEPARENT_ANNOTATION];
  if (value === undefined) return undefined;
  const span = parseTraceparent(value);
  return span ? { span, parent: true } : undefined;
}

/** The cause a requeue or retry of a run carries: its span, as a link. */
export function runCause(span: Span | undefined): TraceCause | undefined {
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  return trace.isSpanContextValid(sc) ? { span: sc, parent: false } : undefined;
}

/** The span of one reconcile and the context to run it in (none without an SDK). */
export interface ReconcileSpan {
  span: Span | undefined;
  context: Context | undefined;
}

const UNTRACED: ReconcileSpan = Object.freeze({ span: undefined, context: undefined });

/** Starts the span of a reconcile run. */
export function startReconcileSpan(
  controller: string,
  key: string,
  run: { reason: string; attempt: number; priority: number },
  causes: readonly unknown[],
): ReconcileSpan {
  if (!tracingEnabled()) return UNTRACED;
  let parent: SpanContext | undefined;
  const links: Link[] = [];
  for (const c of causes as (TraceCause | undefined)[]) {
    if (!c?.span) continue;
    if (c.parent && parent === undefined) parent = c.span;
    else links.push({ context: c.span });
  }
  const base = parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
  const span = kubeTracer(VERSION).startSpan(`reconcile ${controller}`, {
    kind: SpanKind.INTERNAL,
    links,
    root: parent === undefined,
  }, base);
  if (span.isRecording()) {
    span.setAttributes({
      "kube.controller": controller,
      "kube.key": key,
      "kube.reason": run.reason,
      "kube.attempt": run.attempt,
      "kube.priority": run.priority,
    });
  }
  return { span, context: trace.setSpan(base, span) };
}

/** Runs `fn` with the reconcile's span active (a no-op without a context manager). */
export function withSpan<R>(run: ReconcileSpan, fn: () => R): R {
  return run.context === undefined ? fn() : context.with(run.context, fn);
}

/** Ends a reconcile span with its outcome. */
export function endReconcileSpan(
  run: ReconcileSpan,
  result: string,
  error?: string,
  timedOut = false,
): void {
  const span = run.span;
  if (span === undefined) return;
  if (span.isRecording()) {
    span.setAttribute("kube.result", result);
    if (timedOut) span.setAttribute("kube.timed_out", true);
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  }
  span.end();
}
