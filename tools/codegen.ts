/**
 * The code generator: starts the test control plane (a real kube-apiserver, see testenv/), reads
 * its OpenAPI v3 documents and writes generated/: one module of TypeScript types per Go package
 * of definitions, `builders.ts` (the static `Api` builders) and `mod.ts` (re-exports for the
 * package root), formatted with `deno fmt`.
 *
 * - `deno task codegen` (`deno run --allow-all tools/codegen.ts`): regenerate generated/.
 * - `deno run --allow-all tools/codegen.ts --check`: regenerate in memory and exit 1 with a
 *   summary when a file under generated/ would change. Without the control plane binaries it
 *   checks only `protobuf.ts`, prints a skip line for the rest and exits 0, unless `CI=true` or
 *   `KUBE_E2E=require`.
 *
 * `generated/protobuf.ts` (the protobuf decoder's tables) comes from the `generated.proto` files
 * and Go struct tags of the k8s.io/api and k8s.io/apimachinery versions testenv/apiserver/go.mod
 * pins, read from the Go module cache (`tools/_codegen_protobuf.ts`).
 *
 * @module
 */

import { e2eRequired, findBinaries } from "../testenv/build.ts";
import { type ControlPlane, startControlPlane } from "../testenv/control_plane.ts";
import { generate, type GeneratedFiles, type OpenApiDocument } from "./_codegen_emit.ts";
import { compareStrings } from "./_codegen_types.ts";
import { findProtoModules, generateProtobuf } from "./_codegen_protobuf.ts";

const ROOT = new URL("../", import.meta.url);
const GENERATED = new URL("../generated/", import.meta.url);

/** The documents a server serves under `/openapi/v3`, and its version. */
export interface FetchedOpenApi {
  /** The documents, sorted by their key in the index (`api/v1`, `apis/apps/v1`, …). */
  documents: OpenApiDocument[];
  /** The keys of the documents, in the same order. */
  keys: string[];
  /** `gitVersion` from `/version`, e.g. `v1.36.3`. */
  kubernetesVersion: string;
}

/**
 * Reads the OpenAPI v3 index of a control plane and every document it lists.
 *
 * @param cp The running control plane.
 * @returns The documents and the server version.
 */
export async function fetchOpenApi(cp: ControlPlane): Promise<FetchedOpenApi> {
  const client = Deno.createHttpClient({ caCerts: [cp.caPem] });
  try {
    const get = async (path: string): Promise<unknown> => {
      const res = await fetch(new URL(path, cp.server), {
        client,
        headers: { Authorization: `Bearer ${cp.token}`, Accept: "application/json" },
      });
      if (!res.ok) {
        throw new Error(`GET ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
      }
      return await res.json();
    };
    const index = await get("/openapi/v3") as {
      paths?: Record<string, { serverRelativeURL?: string }>;
    };
    const keys = Object.keys(index.paths ?? {}).sort(compareStrings);
    if (keys.length === 0) throw new Error("GET /openapi/v3 listed no documents");
    const documents = await Promise.all(keys.map((key) => {
      const url = index.paths![key].serverRelativeURL ?? `/openapi/v3/${key}`;
      return get(url) as Promise<OpenApiDocument>;
    }));
    const version = await get("/version") as { gitVersion?: string };
    return {
      documents,
      keys,
      kubernetesVersion: version.gitVersion ?? cp.binaries.kubernetesVersion,
    };
  } finally {
    client.close();
  }
}

async function denoJson(args: string[], what: string): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${what} failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * The names the package root exports from hand-written modules (those `mod.ts` re-exports from
 * outside generated/), read with `deno doc --json`. Generated types never take these names.
 *
 * @returns The names.
 */
export async function reservedNames(): Promise<Set<string>> {
  const mod = await Deno.readTextFile(new URL("mod.ts", ROOT));
  const files = [...mod.matchAll(/^\s*export\s[^;]*?\bfrom\s+["'](\.\/[^"']+)["']/gm)]
    .map((m) => m[1])
    .filter((spec) => !spec.startsWith("./generated/"));
  const names = new Set<string>();
  if (files.length === 0) return names;
  const doc = await denoJson(["doc", "--json", ...files], "deno doc --json") as {
    nodes?: Record<string, { symbols?: DocSymbol[] }>;
  };
  if (!doc.nodes || typeof doc.nodes !== "object") {
    throw new Error("Unexpected output of deno doc --json (no nodes)");
  }
  for (const node of Object.values(doc.nodes)) {
    for (const symbol of node.symbols ?? []) {
      const local = (symbol.declarations ?? []).some((d) =>
        !(d.location?.filename ?? "").includes("/generated/")
      );
      if (local) names.add(symbol.name);
    }
  }
  return names;
}

interface DocSymbol {
  name: string;
  declarations?: { location?: { filename?: string } }[];
}

/**
 * Formats TypeScript sources with `deno fmt`, using the `fmt` options of deno.json (line width,
 * indentation, quotes, semicolons), in a temporary directory.
 *
 * @param files File name → content.
 * @returns File name → formatted content.
 */
export async function formatSources(files: Map<string, string>): Promise<Map<string, string>> {
  let fmt: Record<string, unknown> = {};
  try {
    const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
    fmt = (config.fmt ?? {}) as Record<string, unknown>;
  } catch {
    // Defaults.
  }
  const flags = ["--no-config", "--quiet"];
  if (typeof fmt.lineWidth === "number") flags.push(`--line-width=${fmt.lineWidth}`);
  if (typeof fmt.indentWidth === "number") flags.push(`--indent-width=${fmt.indentWidth}`);
  if (fmt.useTabs === true) flags.push("--use-tabs");
  if (fmt.singleQuote === true) flags.push("--single-quote");
  if (fmt.semiColons === false) flags.push("--no-semicolons");
  const dir = await Deno.makeTempDir({ prefix: "denokube-codegen-" });
  try {
    for (const [name, text] of files) await Deno.writeTextFile(`${dir}/${name}`, text);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["fmt", ...flags, dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno fmt failed:\n${new TextDecoder().decode(out.stderr).slice(-3000)}`);
    }
    const formatted = new Map<string, string>();
    for (const name of files.keys()) {
      formatted.set(name, await Deno.readTextFile(`${dir}/${name}`));
    }
    return formatted;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readGenerated(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  try {
    for await (const entry of Deno.readDir(GENERATED)) {
      if (entry.isFile) {
        files.set(entry.name, await Deno.readTextFile(new URL(entry.name, GENERATED)));
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return files;
}

/**
 * Summarizes how `next` differs from `current`: one line per added, removed or changed file,
 * with the number of lines only in one side, and the first differing line.
 *
 * @param current File name → content now on disk.
 * @param next File name → content the generator produces.
 * @returns The summary lines; empty when nothing differs.
 */
export function diffSummary(current: Map<string, string>, next: Map<string, string>): string[] {
  const names = [...new Set([...current.keys(), ...next.keys()])].sort(compareStrings);
  const lines: string[] = [];
  for (const name of names) {
    const a = current.get(name);
    const b = next.get(name);
    if (a === b) continue;
    if (a === undefined) {
      lines.push(`generated/${name}: would be created (${b!.split("\n").length} lines)`);
      continue;
    }
    if (b === undefined) {
      lines.push(`generated/${name}: would be removed (not generated any more)`);
      continue;
    }
    const la = a.split("\n");
    const lb = b.split("\n");
    const pool = new Map<string, number>();
    for (const l of la) pool.set(l, (pool.get(l) ?? 0) + 1);
    let added = 0;
    for (const l of lb) {
      const n = pool.get(l) ?? 0;
      if (n > 0) pool.set(l, n - 1);
      else added++;
    }
    const removed = [...pool.values()].reduce((s, n) => s + n, 0);
    let first = 0;
    while (first < la.length && first < lb.length && la[first] === lb[first]) first++;
    lines.push(
      `generated/${name}: would change (+${added} -${removed} lines, first at line ${first + 1}: ` +
        `${JSON.stringify((lb[first] ?? "").trim().slice(0, 80))})`,
    );
  }
  return lines;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Generates `protobuf.ts` from the pinned Go modules.
 *
 * @returns The unformatted source and a summary, or the reason it cannot be generated here.
 */
async function protobufFile(): Promise<{ source: string; summary: string } | { missing: string }> {
  const modules = await findProtoModules(new URL("testenv/apiserver/go.mod", ROOT));
  if ("missing" in modules) return modules;
  const tables = await generateProtobuf(modules);
  const s = tables.stats;
  return {
    source: tables.source,
    summary: `protobuf: ${s.messages} messages of ${s.packages} packages (${s.kinds} group ` +
      `versions), ${s.fields} fields`,
  };
}

async function regenerate(build: boolean): Promise<{ result: GeneratedFiles; timings: string }> {
  const t0 = performance.now();
  const reservedPromise = reservedNames();
  reservedPromise.catch(() => {}); // Awaited below; avoid an unhandled rejection meanwhile.
  const cp = await startControlPlane({ build });
  const t1 = performance.now();
  let fetched: FetchedOpenApi;
  try {
    fetched = await fetchOpenApi(cp);
  } finally {
    await cp.stop();
  }
  const t2 = performance.now();
  const result = generate(fetched.documents, {
    kubernetesVersion: fetched.kubernetesVersion,
    reservedNames: await reservedPromise,
  });
  const proto = await protobufFile();
  if ("missing" in proto) {
    throw new Error(`cannot generate generated/protobuf.ts: ${proto.missing}`);
  }
  result.files.set("protobuf.ts", proto.source);
  result.files = await formatSources(result.files);
  const t3 = performance.now();
  return {
    result,
    timings: `control plane ${seconds(t1 - t0)}, fetch ${fetched.keys.length} documents ${
      seconds(t2 - t1)
    }, generate + format ${seconds(t3 - t2)}`,
  };
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`Usage: deno run --allow-all tools/codegen.ts [--check] (unknown: ${unknown})`);
    return 2;
  }
  const started = performance.now();
  if (check && (await findBinaries()) === undefined) {
    const reason = "kube-apiserver and etcd are not built (deno run -A testenv/build.ts needs Go)";
    if (e2eRequired()) {
      console.error(`codegen --check: FAILED: ${reason}`);
      return 1;
    }
    const proto = await protobufFile();
    if ("missing" in proto) {
      console.error(`codegen --check: skipped: ${reason}; ${proto.missing}`);
      return 0;
    }
    const formatted = await formatSources(new Map([["protobuf.ts", proto.source]]));
    const current = await readGenerated();
    const only = new Map([["protobuf.ts", current.get("protobuf.ts") ?? ""]]);
    const summary = diffSummary(only, formatted);
    if (summary.length > 0) {
      console.error(`codegen --check: generated/ is out of date (run deno task codegen):`);
      for (const line of summary) console.error(`  ${line}`);
      return 1;
    }
    console.error(`codegen --check: protobuf.ts is up to date; the rest skipped: ${reason}`);
    return 0;
  }
  const { result, timings } = await regenerate(!check);
  const current = await readGenerated();
  const summary = diffSummary(current, result.files);
  const s = result.stats;
  const counts = `${s.modules} modules, ${s.types} types (${s.kinds} kinds), ${s.resources} ` +
    `resources, ${s.builders} builders`;
  const total = seconds(performance.now() - started);
  if (check) {
    if (summary.length > 0) {
      console.error(`codegen --check: generated/ is out of date (run deno task codegen):`);
      for (const line of summary) console.error(`  ${line}`);
      return 1;
    }
    console.error(`codegen --check: generated/ is up to date (${counts}; ${total}: ${timings})`);
    return 0;
  }
  await Deno.mkdir(GENERATED, { recursive: true });
  let written = 0;
  let removed = 0;
  for (const [name, text] of result.files) {
    if (current.get(name) === text) continue;
    await Deno.writeTextFile(new URL(name, GENERATED), text);
    written++;
  }
  for (const name of current.keys()) {
    if (!result.files.has(name)) {
      await Deno.remove(new URL(name, GENERATED));
      removed++;
    }
  }
  console.error(
    `codegen: ${counts}; wrote ${written}, removed ${removed}, unchanged ${
      result.files.size - written
    } files in ${total} (${timings})`,
  );
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
