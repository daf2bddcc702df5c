// Runs the unit tests on Node 20, 22, 24 and Bun: the same test files `deno test` runs, bundled
// to JavaScript by `deno bundle` (Node 20 cannot strip types, and the npm: specifiers of the
// import map mean nothing to Node), then run with `node --test` and `bun test`.
//
//   deno run -A tools/cross_runtime.ts                       # every runtime, every unit test
//   deno run -A tools/cross_runtime.ts --runtimes=node24,bun tests/unit/watch_parse.test.ts
//
// Test files that test Deno itself (its permission flags) or the Deno-only tools are left out;
// DENO_ONLY lists them with the reason.

import { basename, join, relative } from "node:path";
import { ensureRuntimes, type RuntimeBinary } from "./runtimes.ts";

/** Unit test files that only make sense on Deno, and why. */
export const DENO_ONLY: Record<string, string> = {
  "config_permissions.test.ts": "tests Deno's permission flags (--allow-read, --allow-env, …)",
  "runtime_node_permissions.test.ts": "starts Node under --permission from Deno",
  "architecture.test.ts": "reads the module graph with deno info",
  "codegen_emit.test.ts": "tests tools/codegen.ts, a Deno-only development tool",
  "codegen_names.test.ts": "tests tools/codegen.ts, a Deno-only development tool",
  "codegen_types.test.ts": "tests tools/codegen.ts, a Deno-only development tool",
  "crdgen.test.ts": "imports the TypeScript modules it generates (Node and Bun cannot run .ts)",
  "crdgen_real.test.ts": "runs go mod download and deno fmt/lint/check on the generated modules",
};

const ROOT = new URL("..", import.meta.url).pathname;

/** Where the bundles go (git-ignored, excluded from fmt/lint/test in deno.json). */
export const BUNDLE_DIR = "tests/.cross-runtime";

/** The result of one runtime's run. */
export interface RunResult {
  runtime: RuntimeBinary;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  ok: boolean;
}

async function unitTestFiles(): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, "tests/unit"))) {
    if (entry.isFile && entry.name.endsWith(".test.ts") && !(entry.name in DENO_ONLY)) {
      files.push(join(ROOT, "tests/unit", entry.name));
    }
  }
  return files.sort();
}

/** esbuild lowers what Node 20 and 22 cannot parse in the tests (`using`, `await using`). */
const ESBUILD = "npm:esbuild@0.25.12";

/**
 * Bundles test files (or scripts) into one directory of standalone `.js` files that Node 20 can
 * run: `deno bundle` resolves the import map and npm packages and strips the types; esbuild then
 * lowers `await using` (the library itself has none; the tests do) to Node 20's syntax.
 *
 * @param files The entry points.
 * @param outdir Where to write them.
 */
export async function bundle(files: readonly string[], outdir: string): Promise<void> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno ${args[0]} failed:\n${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const raw = `${outdir}/.raw`;
  await run(["bundle", "--quiet", "--platform", "deno", "--outdir", raw, ...files]);
  const outputs = files.map((f) => basename(f).replace(/\.ts$/, ".js"));
  await run([
    "run",
    "-A",
    "--no-lock",
    ESBUILD,
    ...outputs.map((f) => join(raw, f)),
    "--target=node20",
    "--format=esm",
    `--outdir=${outdir}`,
    "--log-level=warning",
  ]);
  await Deno.remove(raw, { recursive: true });
}

function count(text: string, re: RegExp): number {
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

async function runOn(runtime: RuntimeBinary, dir: string, files: string[]): Promise<RunResult> {
  const started = performance.now();
  const args = runtime.kind === "bun"
    ? ["test", "--timeout=60000", ...files.map((f) => `./${f}`)]
    // A test that hangs fails after 60 s (as on bun) instead of holding CI until its deadline.
    : ["--test", "--test-reporter=spec", "--test-concurrency=1", "--test-timeout=60000", ...files];
  const child = new Deno.Command(runtime.path, {
    args,
    cwd: dir,
    env: { NO_COLOR: "1", FORCE_COLOR: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [out, status] = await Promise.all([
    Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]),
    child.status,
  ]);
  const text = `${out[0]}\n${out[1]}`;
  const ms = Math.round(performance.now() - started);
  const result: RunResult = runtime.kind === "bun"
    ? {
      runtime,
      passed: count(text, /^\s*(\d+) pass$/m),
      failed: count(text, /^\s*(\d+) fail$/m),
      skipped: count(text, /^\s*(\d+) skip$/m),
      ms,
      ok: status.success,
    }
    : {
      runtime,
      passed: count(text, /^[ℹ#] pass (\d+)$/m),
      failed: count(text, /^[ℹ#] fail (\d+)$/m) + count(text, /^[ℹ#] cancelled (\d+)$/m),
      skipped: count(text, /^[ℹ#] skipped (\d+)$/m),
      ms,
      ok: status.success,
    };
  if (!result.ok || result.failed > 0 || Deno.env.get("CROSS_RUNTIME_VERBOSE")) {
    // Only the failures: node's spec reporter repeats them at the end under "failing tests";
    // for bun, everything but the passing lines.
    const lines = text.split("\n");
    const at = lines.findIndex((l) => /failing tests:/.test(l));
    const keep = runtime.kind === "node"
      ? lines.slice(at >= 0 ? at : Math.max(0, lines.length - 150))
      : lines.filter((l) => !/^\(pass\)/.test(l));
    console.log(
      keep.slice(0, 400).map((l) => l.length > 300 ? `${l.slice(0, 300)}…` : l).join("\n"),
    );
  }
  return result;
}

if (import.meta.main) {
  const runtimesArg = Deno.args.find((a) => a.startsWith("--runtimes="));
  const only = runtimesArg ? runtimesArg.slice("--runtimes=".length).split(",") : [];
  const explicit = Deno.args.filter((a) => !a.startsWith("--"));
  const files = explicit.length > 0
    ? explicit.map((f) => join(Deno.cwd(), f))
    : await unitTestFiles();
  const runtimes = await ensureRuntimes(only);
  // One level below tests/, like tests/unit/: relative paths from import.meta.url (which in a
  // bundle is the bundle's own URL) still find tests/fixtures/ and the repository root.
  const dir = join(ROOT, BUNDLE_DIR);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  try {
    const started = performance.now();
    await bundle(files, dir);
    const bundled = files.map((f) => basename(f).replace(/\.ts$/, ".js"));
    console.log(
      `cross-runtime: bundled ${files.length} test files in ${
        Math.round(performance.now() - started)
      } ms (${relative(ROOT, join(ROOT, "tests/unit"))}, without ${
        Object.keys(DENO_ONLY).length
      } Deno-only files)`,
    );
    let failures = 0;
    const lines: string[] = [];
    for (const runtime of runtimes) {
      const r = await runOn(runtime, dir, bundled);
      if (!r.ok || r.failed > 0 || r.passed === 0) failures++;
      lines.push(
        `${r.runtime.name} (${r.runtime.version}): ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped in ${
          (r.ms / 1000).toFixed(1)
        } s`,
      );
      console.log(`cross-runtime: ${lines.at(-1)}`);
    }
    console.log(`cross-runtime summary:\n  ${lines.join("\n  ")}`);
    if (failures > 0) Deno.exitCode = 1;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
