/**
 * Picks the runtime seam for the runtime the library runs on (Deno, Bun or Node), once.
 *
 * Internal module: the library reaches the runtime only through {@linkcode runtime}.
 *
 * @module
 */

import { createBunRuntime } from "./bun.ts";
import { createDenoRuntime } from "./deno.ts";
import { createNodeRuntime } from "./node.ts";
import type { Runtime, RuntimeName } from "./types.ts";

export type {
  HttpPool,
  PermissionNeed,
  ProcessOutput,
  RunOptions,
  Runtime,
  RuntimeName,
  ServeHandle,
  ServeHandler,
  TransportOptions,
  TransportSupport,
} from "./types.ts";

let current: Runtime | undefined;

/**
 * Tells which runtime this is. Deno and Bun both define `process` too, so they are asked first.
 *
 * @returns `deno`, `bun` or `node`.
 * @throws {Error} On a runtime that is none of them (a browser, a worker runtime).
 */
export function detectRuntime(): RuntimeName {
  const g = globalThis as { Deno?: { version?: { deno?: string } }; Bun?: unknown };
  if (typeof g.Deno?.version?.deno === "string") return "deno";
  if (g.Bun !== undefined) return "bun";
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (typeof p?.versions?.node === "string") return "node";
  throw new Error(
    "This Kubernetes client runs on Deno, Node (20 or later) and Bun; this runtime is none of them.",
  );
}

/**
 * The runtime seam of the runtime the library runs on.
 *
 * @returns The runtime.
 */
export function runtime(): Runtime {
  if (current) return current;
  const name = detectRuntime();
  current = name === "deno"
    ? createDenoRuntime()
    : name === "bun"
    ? createBunRuntime()
    : createNodeRuntime();
  return current;
}
