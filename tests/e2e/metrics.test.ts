// /metrics of a Manager leading on the real API server, checked by Prometheus's own linter:
// `promtool check metrics` runs client_golang's promlint, which testenv/promlint runs the same way
// (built in seconds; the whole promtool took ~7 minutes cold and checked nothing more).

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Manager } from "../../runtime/manager.ts";
import { Registry } from "../../runtime/metrics.ts";
import { ensureTool, PROMLINT } from "../../testenv/build.ts";
import { e2eTest } from "./_harness.ts";

async function check(tool: string, text: string): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(tool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

e2eTest(
  "metrics: promtool check metrics accepts /metrics of a leading Manager",
  async ({ client }) => {
    const tools = [await ensureTool(PROMLINT)];

    const manager = new Manager(client, {
      leaderElection: {
        namespace: "default",
        name: "metrics-e2e",
        leaseDurationMs: 4_000,
        renewDeadlineMs: 3_000,
        retryPeriodMs: 500,
      },
      endpoints: { hostname: "127.0.0.1", port: 0 },
    });
    const pods = manager.cache(Api.v1Pod().within("default"));
    const hooks = new Set<
      (o: { controller: string; result: string; durationMs: number }) => void
    >();
    manager.add({
      name: "foo",
      onOutcome(hook: (o: { controller: string; result: string; durationMs: number }) => void) {
        hooks.add(hook);
        return () => hooks.delete(hook);
      },
      stats: () => ({ queueDepth: 3, inFlight: 1, retries: 2 }),
      run: (signal: AbortSignal) =>
        new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true })),
    });
    const stop = new AbortController();
    const run = manager.run(stop.signal);
    try {
      await pods.ready;
      while (!manager.leading) await new Promise((r) => setTimeout(r, 20));
      for (const [result, ms] of [["success", 12], ["error", 4], ["requeue", 1500]] as const) {
        for (const hook of hooks) hook({ controller: "foo", result, durationMs: ms });
      }
      const base = `http://127.0.0.1:${manager.endpointsPort}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.headers.get("content-type"), Registry.contentType);
      const text = await res.text();
      assert.match(text, /^leader_election_master_status\{name="metrics-e2e"\} 1$/m);
      assert.match(
        text,
        /^controller_runtime_reconcile_total\{controller="foo",result="error"\} 1$/m,
      );
      assert.match(text, /^workqueue_depth\{name="foo"\} 3$/m);
      for (const tool of tools) {
        assert.deepEqual(await check(tool, text), { code: 0, stderr: "" }, `${tool} on:\n${text}`);
        // The checker can fail: a counter without _total and a non-base unit are refused.
        const bad = await check(tool, "# HELP req_ms Requests.\n# TYPE req_ms counter\nreq_ms 1\n");
        assert.equal(bad.code, 3, tool);
        assert.match(bad.stderr, /req_ms counter metrics should have "_total" suffix/);
      }
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      console.log(
        `metrics e2e: checked with ${tools.map((t) => t.split("/").pop()).join(" and ")}`,
      );
    } finally {
      stop.abort();
      await run;
    }
  },
);
