// Checks that the library reaches its runtime only through the runtime seam (_platform/):
// `Deno.*` only in _platform/deno.ts, `Bun.*` only in _platform/bun.ts, the npm package undici only
// in _platform/node.ts. Comments (JSDoc examples included) are not code and are not checked.
// Part of `deno task test`.
//
//   deno run --allow-read tools/check_runtime_seam.ts

import { join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

/** Folders that are not the library (not published). */
const NOT_LIBRARY = new Set([
  ".git",
  ".ci",
  "tests",
  "bench",
  "testenv",
  "tools",
  "examples",
  "node_modules",
  "fixtures",
]);

const RULES: { pattern: RegExp; allowed: string; what: string }[] = [
  { pattern: /\bDeno\s*\./, allowed: "_platform/deno.ts", what: "Deno.*" },
  { pattern: /\bBun\s*\./, allowed: "_platform/bun.ts", what: "Bun.*" },
  { pattern: /["']undici["']/, allowed: "_platform/node.ts", what: "undici" },
];

/**
 * Blanks out comments and keeps strings and code (line numbers stay right).
 *
 * @param source TypeScript source.
 * @returns The source without comments.
 */
export function stripComments(source: string): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      i += 2;
      while (i < source.length && !(source[i] === "*" && source[i + 1] === "/")) {
        if (source[i] === "\n") out += "\n";
        i++;
      }
      i += 2;
    } else if (c === '"' || c === "'" || c === "`") {
      const quote = c;
      out += c;
      i++;
      while (i < source.length && source[i] !== quote) {
        if (source[i] === "\\") {
          out += source[i++];
        }
        out += source[i++];
      }
      out += source[i++] ?? "";
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

async function* libraryFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      if (NOT_LIBRARY.has(entry.name) || entry.name.startsWith(".")) continue;
      yield* libraryFiles(path);
    } else if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      yield path;
    }
  }
}

/**
 * Finds every use of a runtime API outside its implementation.
 *
 * @returns One line per violation: `file:line: Deno.* outside _platform/deno.ts`.
 */
export async function violations(): Promise<string[]> {
  const found: string[] = [];
  for await (const path of libraryFiles(ROOT)) {
    const file = relative(ROOT, path);
    const code = stripComments(await Deno.readTextFile(path)).split("\n");
    for (const rule of RULES) {
      if (file === rule.allowed) continue;
      code.forEach((line, i) => {
        if (rule.pattern.test(line)) {
          found.push(`${file}:${i + 1}: ${rule.what} outside ${rule.allowed}: ${line.trim()}`);
        }
      });
    }
  }
  return found.sort();
}

if (import.meta.main) {
  const found = await violations();
  if (found.length > 0) {
    console.error(
      `The library must reach the runtime through _platform/ (runtime()), not directly:\n  ${
        found.join("\n  ")
      }`,
    );
    Deno.exit(1);
  }
  console.log("runtime seam: no Deno.*, Bun.* or undici outside _platform/");
}
