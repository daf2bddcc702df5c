// Tracing on the real cluster: one reconcile's trace, with its client requests as children and
// the change that caused it as its parent, reaches an OTLP receiver. The SDK and the OTLP/HTTP
// exporter are the test's (the library only uses @opentelemetry/api).
//
// The proof: on the full cluster (controller-manager, scheduler, KWOK nodes), a controller over
// Deployments lists the Pods the cluster made and applies a ConfigMap; its spans go through the
// SDK's BatchSpanProcessor to a real OpenTelemetry Collector (testenv/otelcol, built by
// testenv/build.ts, run here as a child process), and the test reads them back from the
// Collector's debug exporter; examples/trace_tree.ts, pointed at the same Collector by
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, prints its tree and its trace arrives there too. A second,
// faster test on the apiserver-only control plane sends its spans to an OTLP/HTTP JSON endpoint
// served by the test itself.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { Api, Controller, type ReconcileOutcome, sharedCache } from "../../mod.ts";
import { TRACEPARENT_ANNOTATION } from "../../runtime/_controller/tracing.ts";
import { type CollectedSpan, startCollector } from "../../testenv/otelcol.ts";
import { deployment, e2eTest, eventually, uniqueNamespace } from "./_harness.ts";

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

interface PodView {
  metadata?: { name?: string; ownerReferences?: { kind: string }[] };
  status?: { phase?: string };
}

e2eTest(
  "tracing: on the full cluster, a Deployment reconcile's trace reaches a real OpenTelemetry Collector",
  async ({ client, cp }) => {
    await using collector = await startCollector();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    // As a program would: batched export over OTLP/HTTP, to the Collector.
    const provider = new BasicTracerProvider({
      spanProcessors: [
        new BatchSpanProcessor(new OTLPTraceExporter({ url: collector.tracesUrl }), {
          scheduledDelayMillis: 100,
        }),
      ],
    });
    trace.setGlobalTracerProvider(provider);
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    try {
      const ns = uniqueNamespace("tracing-full");
      await client.create(Api.v1Namespace(), { metadata: { name: ns } });
      const deployments = Api.appsV1Deployment().within(ns);
      const pods = Api.v1Pod().within(ns);
      const configMaps = Api.v1ConfigMap().within(ns);
      const replicas = 2;
      let sawAll = false;
      // Reconciles every change of the Deployment (its status, as the controller-manager moves
      // it): lists its Pods (made by the ReplicaSet controller, bound by the scheduler, run by
      // KWOK), records on its own span how many run, and applies a summary ConfigMap.
      const controller = new Controller(client, deployments, async (d, ctx) => {
        const name = d.metadata!.name!;
        const list = await ctx.client.list(pods, { labelSelector: `app=${name}` });
        const runningPods = (list.items as PodView[]).filter((p) =>
          p.status?.phase === "Running" &&
          p.metadata?.ownerReferences?.some((o) => o.kind === "ReplicaSet")
        ).map((p) => p.metadata!.name!).sort();
        trace.getActiveSpan()?.setAttribute("e2e.pods.running", runningPods.length);
        await ctx.client.apply(configMaps, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `${name}-pods`, namespace: ns },
          data: { running: runningPods.join(",") },
        }, { fieldManager: "e2e-tracing" });
        if (runningPods.length === replicas) sawAll = true;
      }, { name: "traced-deployments" });
      running = controller.run(stop.signal);

      // The writer's change, made in its own span (its request a child of it), carries that
      // span's context on the object.
      const edit = trace.getTracer("e2e").startSpan("e2e create web");
      const sc = edit.spanContext();
      const web = deployment("web", replicas, "registry.invalid/web:1");
      web.metadata!.annotations = { [TRACEPARENT_ANNOTATION]: `00-${sc.traceId}-${sc.spanId}-01` };
      await context.with(
        trace.setSpan(context.active(), edit),
        () => client.create(deployments, web),
      );
      edit.end();
      await eventually("a reconcile saw the Deployment's pods running", () => {
        assert.ok(sawAll);
      }, 60_000);
      await provider.forceFlush();

      const key = `${ns}/web`;
      let runs: CollectedSpan[] = [];
      await eventually("the reconcile span that saw the pods reached the Collector", () => {
        runs = collector.spans().filter((s) =>
          s.name === "reconcile traced-deployments" && s.attributes["kube.key"] === key &&
          s.attributes["e2e.pods.running"] === String(replicas)
        );
        assert.ok(runs.length > 0);
      }, 15_000);
      const spans = collector.spans();
      for (const run of runs) {
        assert.equal(run.kind, "Internal");
        assert.equal(run.scope.split(" ")[0], "@denokube/kube", "the library's tracer");
        assert.equal(run.traceId, sc.traceId, "the reconcile joins the trace of the change");
        assert.equal(run.parentId, sc.spanId, "the change's span is its parent");
        assert.equal(run.attributes["kube.controller"], "traced-deployments");
        assert.equal(run.attributes["kube.result"], "success");
        const children = spans.filter((s) => s.parentId === run.id);
        assert.deepEqual(children.map((s) => s.name).sort(), ["GET", "PATCH"]);
        for (const child of children) {
          assert.equal(child.kind, "Client");
          assert.equal(child.traceId, sc.traceId);
          const url = child.attributes["url.full"];
          if (child.name === "GET") {
            assert.match(
              url,
              new RegExp(`/api/v1/namespaces/${ns}/pods\\?.*labelSelector=app%3Dweb`),
            );
            assert.equal(child.attributes["http.response.status_code"], "200");
          } else {
            assert.match(url, new RegExp(`/api/v1/namespaces/${ns}/configmaps/web-pods`));
            assert.ok(["200", "201"].includes(child.attributes["http.response.status_code"]));
          }
        }
      }
      // The change's own span and its request made it too: the whole tree is in the Collector.
      const root = spans.find((s) => s.id === sc.spanId);
      assert.ok(root, "the edit span reached the Collector");
      assert.equal(root.name, "e2e create web");
      assert.equal(root.parentId, "");
      const post = spans.filter((s) => s.parentId === sc.spanId && s.name === "POST");
      assert.equal(post.length, 1);
      assert.match(post[0].attributes["url.full"], new RegExp(`/namespaces/${ns}/deployments`));
      assert.equal(post[0].attributes["http.response.status_code"], "201");

      // examples/trace_tree.ts, pointed at the Collector by the standard OTLP variable: it prints
      // the tree, and the same trace reaches the Collector.
      const example = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-env", "--allow-read", "--allow-net", "examples/trace_tree.ts", ns],
        cwd: new URL("../../", import.meta.url),
        env: {
          KUBECONFIG: cp.kubeconfigPath,
          NO_COLOR: "1",
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector.tracesUrl,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const printed = new TextDecoder().decode(example.stdout);
      assert.equal(example.code, 0, `${printed}\n${new TextDecoder().decode(example.stderr)}`);
      assert.match(printed, /^edit trace-demo\n└─ reconcile trace-demo-controller {2}key=/m);
      await eventually("the example's trace reached the Collector", () => {
        const all = collector.spans();
        const edits = all.filter((s) => s.name === "edit trace-demo");
        assert.equal(edits.length, 1);
        const reconcile = all.find((s) =>
          s.parentId === edits[0].id && s.name === "reconcile trace-demo-controller"
        );
        assert.ok(reconcile);
        assert.deepEqual(
          all.filter((s) => s.parentId === reconcile.id).map((s) => s.name).sort(),
          ["GET", "PATCH"],
        );
      }, 15_000);
      await client.delete(Api.v1Namespace(), ns);
    } catch (e) {
      console.error(`Collector log:\n${collector.log()}`);
      throw e;
    } finally {
      stop.abort();
      await running?.catch(() => {});
      await provider.shutdown().catch(() => {});
      trace.disable();
      context.disable();
    }
  },
  { cluster: "full" },
);
