// The setup the examples share: their options, logging, the client, the namespace and stopping
// on Ctrl-C. Not an example itself; outside this repository, copy what you need of it.

import { parseArgs } from "node:util";
import { configure, getConsoleSink, isLogLevel } from "@logtape/logtape";
import { Client } from "../mod.ts";

/** What {@link startExample} sets up; disposing it stops the timer, Ctrl-C handling and client. */
export interface Example extends AsyncDisposable {
  /** The client of the kubeconfig (`Client.infer()`). */
  client: Client;
  /** The namespace argument, else the namespace of the kubeconfig context. */
  namespace: string;
  /** Aborted on Ctrl-C (SIGINT) or after `--exit-after=<seconds>`. */
  signal: AbortSignal;
}

/**
 * Sets up an example: parses `--log=<level>` (default `trace`) and `--exit-after=<seconds>` (and,
 * when `namespaced`, an optional namespace argument; otherwise any argument is an error),
 * configures LogTape to print the library's logs (category ["kube"]) to the console, and infers
 * the client from the kubeconfig. Use it with `await using`, so that the Ctrl-C listener, the
 * `--exit-after` timer and the client are released when the example ends.
 */
export async function startExample(options: { namespaced: boolean }): Promise<Example> {
  const { values: flags, positionals } = parseArgs({
    args: Deno.args,
    options: { log: { type: "string", default: "trace" }, "exit-after": { type: "string" } },
    allowPositionals: options.namespaced,
  });
  if (!isLogLevel(flags.log)) throw new TypeError(`--log: unknown level ${flags.log}`);

  // The library logs under ["kube", …] and never configures logging: the program does.
  await configure({
    sinks: { console: getConsoleSink() },
    loggers: [
      { category: ["kube"], lowestLevel: flags.log, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });

  // A kubeconfig that cannot be used (a missing permission, a bad field, an unreachable file)
  // is one clear message naming what to fix, not a stack trace.
  const client = await Client.infer().catch((e) => exitWithError(e));
  const namespace = positionals[0] ?? client.namespace;

  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGINT", stop);
  const exitAfter = Number(flags["exit-after"] ?? 0);
  const timer = exitAfter > 0 ? setTimeout(stop, exitAfter * 1000) : undefined;

  return {
    client,
    namespace,
    signal: controller.signal,
    async [Symbol.asyncDispose]() {
      Deno.removeSignalListener("SIGINT", stop);
      clearTimeout(timer);
      await client[Symbol.asyncDispose]();
    },
  };
}

/** The name of the running example, e.g. `pod_informer`. */
export function exampleName(): string {
  return Deno.mainModule.replace(/^.*\//, "").replace(/\.ts$/, "");
}

/**
 * Prints an error as one line, `<example>: <message>` (the message of an `ApiError` or a
 * permission error already says what failed and how to fix it), and exits with status 1.
 */
export function exitWithError(e: unknown): never {
  console.error(`${exampleName()}: ${e instanceof Error ? e.message : String(e)}`);
  Deno.exit(1);
}

/** Prints rows as a table with aligned columns (the first row is the header). */
export function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) {
    console.log("  " + row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
  }
}

/**
 * Runs `fn` once on the next turn of the event loop however often `schedule()` is called before
 * it: a sync reports its changes all at once, and the table is printed once per batch.
 */
export function onceAfterBatch(fn: () => void): { schedule(): void } & Disposable {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    schedule() {
      timer ??= setTimeout(() => {
        timer = undefined;
        fn();
      }, 0);
    },
    [Symbol.dispose]() {
      clearTimeout(timer);
    },
  };
}
