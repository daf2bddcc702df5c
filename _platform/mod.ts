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

export { nodeSocketToByteStream } from "./_node_common.ts";
export type {
  ByteListener,
  ByteStream,
  HttpPool,
  PermissionNeed,
  ProcessOutput,
  RunOptions,
  Runtime,
  RuntimeName,
  ServeHandle,
  ServeHandler,
  TcpTarget,
  TcpTls,
  TlsServeHandle,
  TlsServeOptions,
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

/** A listening HTTP server (the operator's health and metrics endpoints). */
export interface HttpServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /** Stops accepting, ends the connections, and closes. */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler` on `hostname:port`, with errors that say what to do: the missing permission's
 * flag, or that the port is taken.
 *
 * @param handler Answers each request.
 * @param options Where to listen.
 * @returns The server, once it listens.
 */
export async function serveHttp(
  handler: (request: Request) => Response | Promise<Response>,
  options: { hostname: string; port: number },
): Promise<HttpServer> {
  const rt = runtime();
  try {
    const server = await rt.serve(async (request) => await handler(request), options);
    return { port: server.port, hostname: server.hostname, shutdown: () => server.close() };
  } catch (e) {
    if (rt.isPermissionError(e)) {
      const flag = rt.flag({ kind: "net", hosts: [`${options.hostname}:${options.port}`] });
      throw new TypeError(
        `Serving the health and metrics endpoints needs ${flag ?? "a network permission"}`,
        { cause: e },
      );
    }
    if (rt.isAddrInUse(e)) {
      throw new TypeError(
        `Port ${options.port} on ${options.hostname} is in use: choose another port for the health and metrics endpoints`,
        { cause: e },
      );
    }
    throw e;
  }
}

/**
 * Calls `listener` on SIGTERM and SIGINT (SIGINT only on Windows).
 *
 * @param listener Called with the signal's name.
 * @returns A function that removes the listener.
 */
export function onTerminationSignal(listener: (signal: string) => void): () => void {
  const rt = runtime();
  const signals: ("SIGTERM" | "SIGINT")[] = rt.os === "windows"
    ? ["SIGINT"]
    : ["SIGTERM", "SIGINT"];
  const removers = signals.map((signal) => rt.onSignal(signal, () => listener(signal)));
  return () => removers.forEach((remove) => remove());
}

/**
 * Ends the process at once with an exit code.
 *
 * @param code The exit code.
 */
export function exitNow(code: number): never {
  return runtime().exit(code);
}
