// ARCHITECTURE.md's import rules, checked on the real module graph (`deno info --json`) against
// the code map parsed from ARCHITECTURE.md itself: every module has a row, every import is in its
// row's "may import", every import from one layer's folder into another's is in the layer table
// (the client never imports the runtime or testing/, the runtime reaches into the client only
// through its public modules and three stated internals), no import cycles (but the one documented
// type-only edge api.ts ↔ generated/builders.ts); and README naming every logging category.

import assert from "node:assert/strict";
import { test } from "../_test.ts";

const root = new URL("../../", import.meta.url);

/** The package's entry points (deno.json `exports`). */
const ENTRY_POINTS = [
  "mod.ts",
  "runtime/mod.ts",
  "testing/mod.ts",
  "webhook/mod.ts",
  "crdgen/mod.ts",
  "crdgen/cli.ts",
];

/** Local module → the local modules it imports (code or type), paths relative to the root. */
async function graph(): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  for (const entry of ENTRY_POINTS) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root.pathname,
      stdout: "piped",
    }).output();
    const info = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const module of info.modules) {
      if (!module.specifier.startsWith(root.href)) continue;
      const from = module.specifier.slice(root.href.length);
      const deps = edges.get(from) ?? new Set<string>();
      for (const dep of module.dependencies ?? []) {
        for (const side of [dep.code, dep.type]) {
          const to = side?.specifier;
          if (typeof to === "string" && to.startsWith(root.href)) {
            deps.add(to.slice(root.href.length));
          }
        }
      }
      edges.set(from, deps);
    }
  }
  return edges;
}

/** One row of ARCHITECTURE.md's code map. */
interface Row {
  /** A file (`client.ts`) or a folder (`testing/`). */
  module: string;
  /** Files and folders (ending in `/`) it may import. */
  allowed: string[];
  /** "public modules" is in its "may import". */
  publicModules: boolean;
  /** The row is in the "Public modules" table. */
  isPublic: boolean;
}

/**
 * The code map, parsed from ARCHITECTURE.md itself (not a copy): every table row whose first
 * cell is a backticked module, with the backticked names of its last cell.
 */
async function codeMap(): Promise<Row[]> {
  const text = await Deno.readTextFile(new URL("ARCHITECTURE.md", root));
  const rows: Row[] = [];
  let section = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) section = line;
    if (/^### Layers/.test(section)) continue;
    const match = /^\|\s*`([^`]+)`\s*\|.*\|([^|]*)\|\s*$/.exec(line);
    if (!match) continue;
    const cell = match[2];
    rows.push({
      module: match[1],
      allowed: [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]),
      publicModules: /public modules/.test(cell),
      isPublic: /Public modules/.test(section),
    });
  }
  return rows;
}

/** The row of a module: its own, else the row of the closest folder that holds it. */
function rowOf(rows: Row[], module: string): Row | undefined {
  const exact = rows.find((r) => r.module === module);
  if (exact) return exact;
  return rows
    .filter((r) => r.module.endsWith("/") && module.startsWith(r.module))
    .sort((a, b) => b.module.length - a.module.length)[0];
}

/** The layers: which folder a module belongs to. */
type Layer = "client" | "platform" | "runtime" | "testing" | "generated" | "crdgen" | "webhook";

function layerOf(module: string): Layer {
  if (module.startsWith("_platform/")) return "platform";
  if (module.startsWith("runtime/")) return "runtime";
  if (module.startsWith("testing/")) return "testing";
  if (module.startsWith("webhook/")) return "webhook";
  if (module.startsWith("generated/")) return "generated";
  if (module.startsWith("crdgen/")) return "crdgen";
  return "client"; // the root files and _client/
}

/** ARCHITECTURE.md's layer table: what each layer may import from the other layers. */
async function layerRules(rows: Row[]): Promise<Map<Layer, (dep: string) => boolean>> {
  const text = await Deno.readTextFile(new URL("ARCHITECTURE.md", root));
  const section = text.slice(text.indexOf("### Layers"));
  const clientPublic = rows.filter((r) => r.isPublic && layerOf(r.module) === "client");
  const rules = new Map<Layer, (dep: string) => boolean>();
  for (const line of section.split("\n").slice(1)) {
    if (line.startsWith("#")) break;
    const match = /^\|\s*`([a-z]+)`\s*\|.*\|([^|]*)\|\s*$/.exec(line);
    if (!match) continue;
    const cell = match[2];
    const names = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    const publicClient = /the client's public modules/.test(cell);
    rules.set(
      match[1] as Layer,
      (dep) =>
        (publicClient && clientPublic.some((r) => r.module === dep)) ||
        names.some((n) => n === dep || (n.endsWith("/") && dep.startsWith(n))),
    );
  }
  return rules;
}

function allows(row: Row, rows: Row[], dep: string, module: string): boolean {
  // Every module may use the generated types; a module may import its own folder's files.
  if (dep.startsWith("generated/") || dep === module) return true;
  if (row.module.endsWith("/") && dep.startsWith(row.module)) return true;
  if (row.publicModules && rows.some((r) => r.isPublic && r.module === dep)) return true;
  return row.allowed.some((a) => a === dep || (a.endsWith("/") && dep.startsWith(a)));
}

test("architecture: ARCHITECTURE.md's code map has a row for every module of the library", async () => {
  const [edges, rows] = [await graph(), await codeMap()];
  assert.ok(rows.length > 20, `parsed only ${rows.length} rows from ARCHITECTURE.md`);
  const missing = [...edges.keys()].filter((m) => !rowOf(rows, m));
  assert.deepEqual(missing, [], `modules without a row in ARCHITECTURE.md: ${missing.join(", ")}`);
  const stale: string[] = [];
  for (const row of rows) {
    try {
      await Deno.stat(new URL(row.module, root));
    } catch {
      stale.push(row.module);
    }
  }
  assert.deepEqual(stale, [], `rows for modules that do not exist: ${stale.join(", ")}`);
});

test("architecture: each module imports only what ARCHITECTURE.md's code map allows", async () => {
  const [edges, rows] = [await graph(), await codeMap()];
  const violations: string[] = [];
  for (const [module, deps] of edges) {
    const row = rowOf(rows, module);
    if (!row) continue; // reported by the test above
    for (const dep of deps) {
      if (!allows(row, rows, dep, module)) violations.push(`${module} → ${dep}`);
    }
  }
  assert.deepEqual(violations, [], `imports not in "may import":\n${violations.join("\n")}`);
});

test("architecture: README names every logging category the library uses", async () => {
  const edges = await graph();
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const missing = new Set<string>();
  for (const module of edges.keys()) {
    if (module.startsWith("testing/") || module.startsWith("generated/")) continue;
    const text = await Deno.readTextFile(new URL(module, root));
    for (const m of text.matchAll(/getLogger\(\["kube", "([a-z-]+)"/g)) {
      if (!readme.includes(`\`kube.${m[1]}\``)) missing.add(`kube.${m[1]}`);
    }
  }
  assert.deepEqual([...missing], [], "README.md's Logging section should list these categories");
});

test("architecture: no import cycles but the documented api.ts ↔ generated/builders.ts", async () => {
  const edges = await graph();
  const cycles: string[] = [];
  // Depth-first search for back edges.
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...stack.slice(stack.indexOf(next)), next].join(" → "));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  const allowed = "api.ts → generated/builders.ts → api.ts";
  assert.deepEqual(cycles.filter((c) => c !== allowed), []);
});

test("architecture: imports across layers follow ARCHITECTURE.md's layer table", async () => {
  const [edges, rows] = [await graph(), await codeMap()];
  const rules = await layerRules(rows);
  assert.deepEqual(
    [...rules.keys()].sort(),
    ["client", "crdgen", "generated", "platform", "runtime", "testing", "webhook"],
    "ARCHITECTURE.md's layer table should have a row per layer",
  );
  const violations: string[] = [];
  for (const [module, deps] of edges) {
    const from = layerOf(module);
    for (const dep of deps) {
      if (layerOf(dep) === from) continue;
      // The package's entry re-exports the runtime by name, so that no earlier import breaks.
      if (module === "mod.ts" && dep === "runtime/mod.ts") continue;
      if (!rules.get(from)!(dep)) violations.push(`${module} (${from}) → ${dep} (${layerOf(dep)})`);
    }
  }
  assert.deepEqual(
    violations,
    [],
    `imports across layers not in the layer table:\n${violations.join("\n")}`,
  );
});

test("architecture: the library never imports testing/; the client never imports the runtime", async () => {
  const edges = await graph();
  for (const [module, deps] of edges) {
    const layer = layerOf(module);
    if (layer === "testing") continue;
    const into = [...deps].filter((d) => layerOf(d) === "testing");
    assert.deepEqual(into, [], `${module} imports the fake server ${into.join(", ")}`);
    if (layer === "client" || layer === "platform") {
      const up = [...deps].filter((d) => layerOf(d) === "runtime" && module !== "mod.ts");
      assert.deepEqual(
        up,
        [],
        `${module} (the client) imports the operator runtime ${up.join(", ")}`,
      );
    }
  }
});

test("architecture: the root holds the entry point, the client's public modules and folders", async () => {
  const rows = await codeMap();
  const files: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    if (entry.isFile && entry.name.endsWith(".ts")) files.push(entry.name);
  }
  const publicClient = rows.filter((r) => r.isPublic && layerOf(r.module) === "client")
    .map((r) => r.module);
  assert.deepEqual(
    files.sort(),
    publicClient.sort(),
    "root .ts files should be the client's public modules",
  );
  assert.ok(files.length <= 15, `${files.length} .ts files at the root`);
});
