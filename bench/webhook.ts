// The webhook benchmark: requests/s and p50/p99 of a validating webhook under keep-alive HTTPS
// load on 16 and 64 connections, our WebhookServer (on Deno) side by side with controller-runtime v0.25.3's webhook server (bench/webhookgo,
// built from the Go module proxy into ~/.cache/denokube, never inside `deno task test`) with the
// same handler, the same certificate and the same Go load generator, alternated in one run.
//
//   deno run -A bench/webhook.ts [--runs 3] [--seconds 5] [--runtimes deno,node24,bun]
//   (bench/run.ts runs it as its webhook section; with --smoke only our server is started and
//   answers one review, without Go)

import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { generateCertificates } from "../webhook/mod.ts";

const here = new URL(".", import.meta.url);
const root = new URL("..", here);

/** One load run's figures (from webhookgo load). */
interface Load {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  denied: number;
}

/** Options of {@linkcode webhookSection}. */
export interface WebhookBenchOptions {
  smoke: boolean;
  runs: number;
  seconds: number;
  runtimes: string[];
  log: (message: string) => void;
}

async function hashOf(paths: URL[]): Promise<string> {
  const data = new TextEncoder().encode(
    (await Promise.all(paths.map((p) => readFile(p, "utf8")))).join("\0"),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Builds bench/webhookgo once per source digest into the shared cache. */
async function buildGo(log: (m: string) => void): Promise<string> {
  const dir = new URL("webhookgo/", here);
  const digest = await hashOf([
    new URL("go.mod", dir),
    new URL("go.sum", dir),
    new URL("main.go", dir),
  ]);
  const out = join(
    homedir(),
    ".cache",
    "denokube",
    "bench",
    `webhookgo_${digest}`,
  );
  if (await stat(out).then(() => true, () => false)) return out;
  log(`building bench/webhookgo (controller-runtime v0.25.3) into ${out}…`);
  const started = Date.now();
  const r = await new Deno.Command("go", {
    args: ["build", "-o", out, "."],
    cwd: dir.pathname,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) throw new Error("go build of bench/webhookgo failed");
  log(`built webhookgo in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return out;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Running {
  port: number;
  stop(): Promise<void>;
}

/** Starts a server process and waits for its "listening" line. */
async function start(command: string, args: string[]): Promise<Running> {
  const child = new Deno.Command(command, {
    args,
    cwd: root.pathname,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 120_000);
  while (!seen.includes("listening")) {
    const { value, done } = await reader.read();
    if (done) {
      clearTimeout(deadline);
      const err = await new Response(child.stderr).text();
      throw new Error(
        `${command} ${args.join(" ")} ended before listening: ${seen}${err}`,
      );
    }
    seen += value;
  }
  clearTimeout(deadline);
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  const errors = new Response(child.stderr).text();
  return {
    port: Number(args.at(-2)),
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
      await errors;
    },
  };
}

function review(): string {
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "0b5c1f4e-9d9a-4c43-9b6a-2f1f3b7d6a11",
      kind: { group: "example.com", version: "v1", kind: "Foo" },
      resource: { group: "example.com", version: "v1", resource: "foos" },
      requestKind: { group: "example.com", version: "v1", kind: "Foo" },
      requestResource: {
        group: "example.com",
        version: "v1",
        resource: "foos",
      },
      name: "bench",
      namespace: "default",
      operation: "CREATE",
      userInfo: {
        username: "kubernetes-admin",
        groups: ["system:masters", "system:authenticated"],
      },
      object: {
        apiVersion: "example.com/v1",
        kind: "Foo",
        metadata: {
          name: "bench",
          namespace: "default",
          labels: { app: "bench", "app.kubernetes.io/part-of": "denokube" },
          annotations: { "example.com/owner": "team-a" },
        },
        spec: {
          replicas: 12,
          image: "nginx:1.27",
          ports: [80, 443],
          env: { A: "1", B: "2" },
        },
      },
      oldObject: null,
      dryRun: false,
      options: {
        apiVersion: "meta.k8s.io/v1",
        kind: "CreateOptions",
        fieldManager: "kubectl",
      },
    },
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

/**
 * Runs the benchmark and returns its RESULTS.md section.
 *
 * @param options Smoke, runs, seconds per load, runtimes, log.
 * @returns The section's lines and the target rows.
 */
export async function webhookSection(
  options: WebhookBenchOptions,
): Promise<
  {
    lines: string[];
    targets: { target: string; value: string; met: boolean }[];
  }
> {
  const { log } = options;
  const dir = await mkdtemp(join(tmpdir(), "kube-webhook-bench-"));
  try {
    const g = await generateCertificates({
      ipAddresses: ["127.0.0.1"],
      validityMs: 24 * 3600_000,
    });
    await writeFile(join(dir, "tls.crt"), g.cert);
    await writeFile(join(dir, "tls.key"), g.key);
    await writeFile(join(dir, "ca.crt"), g.caCert);
    await writeFile(join(dir, "review.json"), review());
    const ours = (port: number) =>
      start(Deno.execPath(), [
        "run",
        "--allow-all",
        new URL("webhook_server.ts", here).pathname,
        String(port),
        dir,
      ]);
    if (options.smoke) {
      const s = await ours(freePort());
      try {
        const client = Deno.createHttpClient({ caCerts: [g.caCert] });
        const r = await fetch(`https://127.0.0.1:${s.port}/validate`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: review(),
          client,
        });
        const answer = await r.json();
        client.close();
        if (answer.response?.allowed !== false) {
          throw new Error(
            `webhook smoke: unexpected answer ${JSON.stringify(answer)}`,
          );
        }
      } finally {
        await s.stop();
      }
      return {
        lines: [
          "## 7. Webhooks",
          "",
          "(smoke run: the server answered a review)",
        ],
        targets: [],
      };
    }
    const go = await buildGo(log);
    type Side = { label: string; start: (port: number) => Promise<Running> };
    const sides: Side[] = [];
    for (const rt of options.runtimes) {
      if (rt === "deno") {
        sides.push({ label: `kube on Deno ${Deno.version.deno}`, start: ours });
      }
    }
    sides.push({
      label: "controller-runtime v0.25.3 (Go)",
      start: (port) => start(go, ["serve", "-port", String(port), "-certdir", dir]),
    });
    const conns = [16, 64];
    const results = new Map<string, Load[]>();
    const loads: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      for (const side of run % 2 === 0 ? sides : [...sides].reverse()) {
        const port = freePort();
        const s = await side.start(port);
        try {
          for (const c of conns) {
            loads.push(
              Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]),
            );
            const out = await new Deno.Command(go, {
              args: [
                "load",
                "-url",
                `https://127.0.0.1:${port}/validate`,
                "-ca",
                join(dir, "ca.crt"),
                "-conns",
                String(c),
                "-seconds",
                String(options.seconds),
                "-body",
                join(dir, "review.json"),
              ],
              stdout: "piped",
              stderr: "inherit",
            }).output();
            const load: Load = JSON.parse(new TextDecoder().decode(out.stdout));
            if (load.errors > 0 || load.denied !== load.requests) {
              throw new Error(
                `${side.label}: ${load.errors} errors, ${load.denied}/${load.requests} denied`,
              );
            }
            const key = `${side.label}\0${c}`;
            results.set(key, [...(results.get(key) ?? []), load]);
            log(
              `webhook ${side.label} ${c} conns: ${load.rps.toFixed(0)} req/s, p50 ${
                load.p50Ms.toFixed(2)
              } ms, p99 ${load.p99Ms.toFixed(2)} ms`,
            );
          }
        } finally {
          await s.stop();
        }
      }
    }
    const lines = [
      "## 7. Webhooks",
      "",
      `A validating admission webhook (the same handler: parse the object, refuse spec.replicas > 10; ` +
      `every request is refused) under keep-alive HTTPS/1.1 load from one Go load generator ` +
      `(\`bench/webhookgo load\`), ${options.seconds} s per point, medians of ${options.runs} ` +
      `alternated runs. Load average during the runs: ${Math.min(...loads).toFixed(1)}–${
        Math.max(...loads).toFixed(1)
      } on ${navigator.hardwareConcurrency} shared cores (the load generator runs on the same cores, ` +
      `so both sides are understated).`,
      "",
      "| server | connections | requests/s | p50 ms | p99 ms |",
      "| --- | --- | --- | --- | --- |",
    ];
    const targets: { target: string; value: string; met: boolean }[] = [];
    for (const c of conns) {
      const row = (side: Side) => {
        const rs = results.get(`${side.label}\0${c}`) ?? [];
        return {
          rps: median(rs.map((r) => r.rps)),
          p50: median(rs.map((r) => r.p50Ms)),
          p99: median(rs.map((r) => r.p99Ms)),
        };
      };
      for (const side of sides) {
        const r = row(side);
        lines.push(
          `| ${side.label} | ${c} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${
            r.p99.toFixed(2)
          } |`,
        );
      }
      const us = row(sides[0]);
      const peer = row(sides[sides.length - 1]);
      targets.push({
        target: `webhook throughput ≥ controller-runtime's at ${c} connections, p99 no worse`,
        value: `${(us.rps / peer.rps).toFixed(2)}× req/s, p99 ${us.p99.toFixed(2)} vs ${
          peer.p99.toFixed(2)
        } ms`,
        met: us.rps >= peer.rps && us.p99 <= peer.p99,
      });
    }
    return { lines, targets };
  } finally {
    await rm(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const { lines, targets } = await webhookSection({
    smoke: args.includes("--smoke"),
    runs: Number(flag("--runs") ?? 3),
    seconds: Number(flag("--seconds") ?? 5),
    runtimes: (flag("--runtimes") ?? "deno").split(","),
    log: (m) => console.error(m),
  });
  console.log(lines.join("\n"));
  for (const t of targets) {
    console.log(`- ${t.met ? "met" : "NOT met"}: ${t.target}: ${t.value}`);
  }
}
