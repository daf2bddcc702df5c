/**
 * The real-control-plane helpers of `deno task bench` (full runs only): seeding realistic pods,
 * building the client-go program (`bench/clientgo`, from the Go module cache, like testenv), and
 * measuring the CPU the kube-apiserver process spends serving each run.
 *
 * @module
 */

import { Client } from "../client.ts";
import { Config } from "../config.ts";
import { Api } from "../api.ts";
import { makePod } from "./fixture.ts";

const here = new URL(".", import.meta.url);

/** What a seeded namespace holds. */
export interface Seeded {
  /** Milliseconds the creates and status updates took. */
  ms: number;
  /** Average JSON size of a listed pod, with managedFields. */
  json: number;
  /** The same without managedFields. */
  stripped: number;
}

/**
 * A fixture pod as a client would create it: metadata and spec of `makePod`, without the fields
 * the server owns, and valid for the apiserver's admission (no service account token volume).
 */
function creatable(index: number): { body: Record<string, unknown>; status: unknown } {
  const pod = makePod(index, { resourceVersion: 1 }) as {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown> & {
      containers: { volumeMounts: { name: string }[] }[];
      volumes: { name: string; projected?: { sources: Record<string, unknown>[] } }[];
    };
    status: Record<string, unknown>;
  };
  const { name, labels, annotations, ownerReferences, generateName } = pod.metadata;
  const spec = structuredClone(pod.spec);
  delete spec.serviceAccountName;
  spec.containers[0].volumeMounts[1].name = "kube-api-access";
  for (const v of spec.volumes) {
    if (v.projected) {
      v.projected.sources = v.projected.sources.filter((s) => !s.serviceAccountToken);
    }
  }
  const status = structuredClone(pod.status);
  delete status.qosClass;
  return {
    body: { metadata: { name, labels, annotations, ownerReferences, generateName }, spec },
    status,
  };
}

/**
 * Creates `n` realistic pods in `ns` (32 at a time), each followed by a status update as a
 * kubelet would make (so that each pod has two managedFields entries and ~4 KB of JSON).
 *
 * @param kubeconfigPath The control plane's admin kubeconfig.
 * @param ns The namespace (created).
 * @param n How many pods.
 * @returns Timing and the average JSON sizes.
 */
export async function seedPods(kubeconfigPath: string, ns: string, n: number): Promise<Seeded> {
  await using client = new Client(await Config.fromKubeconfig({ path: kubeconfigPath }), {
    userAgent: "kubelet/bench",
  });
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const pods = Api.v1Pod().within(ns);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const { body, status } = creatable(i);
      const created = await client.create(pods, body as never);
      await client.patchStatus(pods, created.metadata!.name!, { status } as never, {
        type: "merge",
      });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const ms = performance.now() - started;
  let json = 0, stripped = 0, count = 0;
  for await (const chunk of client.listAll(pods)) {
    for (const item of chunk.items) {
      const { apiVersion: _a, kind: _k, ...rest } = item as Record<string, unknown>;
      json += JSON.stringify(rest).length;
      delete (rest.metadata as { managedFields?: unknown }).managedFields;
      stripped += JSON.stringify(rest).length;
      count++;
    }
  }
  if (count !== n) throw new Error(`seeded ${count} pods, expected ${n}`);
  return { ms, json: json / count, stripped: stripped / count };
}

/**
 * Builds the Go program in `bench/<name>/` into `~/.cache/denokube/bench/<name>-<digest>` (once
 * per version of its go.mod, go.sum and main.go).
 *
 * @param name The program's folder under bench/, e.g. `clientgo`.
 * @returns The binary's path, or the reason it cannot be built here.
 */
export async function buildBenchProgram(name: string): Promise<string | { missing: string }> {
  const dir = new URL(`${name}/`, here);
  let digest = "";
  for (const file of ["go.mod", "go.sum", "main.go"]) {
    const bytes = await Deno.readFile(new URL(file, dir));
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    digest += [...hash.slice(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  const cache = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/denokube/bench`;
  const bin = `${cache}/${name}-${digest}`;
  try {
    await Deno.stat(bin);
    return bin;
  } catch {
    // Build it.
  }
  await Deno.mkdir(cache, { recursive: true });
  try {
    const out = await new Deno.Command("go", {
      args: ["build", "-o", `${bin}.tmp`, "."],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return { missing: `go build failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}` };
    }
  } catch {
    return { missing: "Go is not installed" };
  }
  await Deno.rename(`${bin}.tmp`, bin);
  return bin;
}

/**
 * Builds bench/clientgo into the cache (once per version of its sources).
 *
 * @returns The binary's path, or the reason it cannot be built here.
 */
export function buildClientGo(): Promise<string | { missing: string }> {
  return buildBenchProgram("clientgo");
}

/**
 * Runs the client-go program once.
 *
 * @param bin Its path.
 * @param args Its flags.
 * @returns The parsed `RESULT` line.
 */
export async function runClientGo(bin: string, args: string[]): Promise<Record<string, number>> {
  const out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("RESULT "));
  if (!out.success || !line) {
    throw new Error(
      `clientgo ${args.join(" ")} failed (exit ${out.code}):\n${text}\n${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  return JSON.parse(line.slice("RESULT ".length));
}

/**
 * The pid of the kube-apiserver of a control plane (its command line names the control plane's
 * directory), found in /proc.
 *
 * @param dir The control plane's directory.
 * @returns The pid, or undefined.
 */
export async function apiServerPid(dir: string): Promise<number | undefined> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (cmdline.includes("kube-apiserver") && cmdline.includes(dir)) return Number(entry.name);
  }
  return undefined;
}

/**
 * User + system CPU a process has used, in milliseconds (from /proc/<pid>/stat; 100 ticks/s).
 *
 * @param pid The process.
 * @returns The milliseconds, or NaN when it cannot be read.
 */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3, utime 14, stime 15 (1-based) → indexes 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
