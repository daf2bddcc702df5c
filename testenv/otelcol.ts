/**
 * Runs the OpenTelemetry Collector built from testenv/otelcol (the OTLP receiver and the debug
 * exporter only) as a child process on loopback, and reads back the spans it received from the
 * debug exporter's detailed dump on its stdout. Test infrastructure only: the library never
 * configures an SDK or a Collector.
 *
 * @module
 */

import { ensureTool, OTELCOL } from "./build.ts";

/** One span as the Collector's debug exporter printed it. */
export interface CollectedSpan {
  /** Trace ID (32 hex digits). */
  traceId: string;
  /** Parent span ID (16 hex digits), or `""` for a root span. */
  parentId: string;
  /** Span ID (16 hex digits). */
  id: string;
  /** The span's name. */
  name: string;
  /** The kind as the Collector names it: `Internal`, `Client`, `Server`, … */
  kind: string;
  /** Attributes, as printed: `Str(x)` is `"x"`, `Int(200)` is `"200"`, `Bool(true)` is `"true"`. */
  attributes: Record<string, string>;
  /** The resource's attributes (e.g. `service.name`), likewise. */
  resource: Record<string, string>;
  /** The instrumentation scope: name and version, e.g. `@denokube/kube 0.1.0`. */
  scope: string;
}

/** A running Collector. */
export interface Collector extends AsyncDisposable {
  /** The OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:43123/v1/traces`. */
  tracesUrl: string;
  /** Every span received so far, parsed from the debug exporter's output. */
  spans(): CollectedSpan[];
  /** The Collector's own log (stderr), for a failure message. */
  log(): string;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

const SPAN_FIELD = /^ {4}([A-Za-z ]+?)\s*: ?(.*)$/;
const ATTRIBUTE = /^ {5}-> ([^:]+): (\w+)\((.*)\)$/;

/**
 * Parses the detailed dump of the debug exporter (`use_internal_logger: false`, so on stdout
 * without log prefixes): `ResourceSpans #i`, `Resource attributes:`, `InstrumentationScope n v`,
 * `Span #j` followed by its indented fields, then `Attributes:` and its `->` lines (a span's
 * `Events:` and `Links:` sections follow and are skipped).
 *
 * @param text The Collector's stdout.
 * @returns The spans, in the order printed.
 */
export function parseDebugSpans(text: string): CollectedSpan[] {
  const spans: CollectedSpan[] = [];
  let resource: Record<string, string> = {};
  let scope = "";
  let span: CollectedSpan | undefined;
  let section: "resource" | "attributes" | "other" = "other";
  for (const line of text.split("\n")) {
    if (line.startsWith("ResourceSpans #")) {
      resource = {};
      span = undefined;
      section = "other";
    } else if (line === "Resource attributes:") {
      section = "resource";
    } else if (line.startsWith("InstrumentationScope ")) {
      scope = line.slice("InstrumentationScope ".length).trim();
      section = "other";
    } else if (line.startsWith("Span #")) {
      span = {
        traceId: "",
        parentId: "",
        id: "",
        name: "",
        kind: "",
        attributes: {},
        resource,
        scope,
      };
      spans.push(span);
      section = "other";
    } else if (line === "Attributes:") {
      section = span ? "attributes" : "other";
    } else if (ATTRIBUTE.test(line)) {
      const [, key, , value] = ATTRIBUTE.exec(line)!;
      if (section === "resource") resource[key] = value;
      else if (section === "attributes" && span) span.attributes[key] = value;
    } else if (span && section === "other" && SPAN_FIELD.test(line)) {
      const [, field, value] = SPAN_FIELD.exec(line)!;
      if (field === "Trace ID") span.traceId = value.trim();
      else if (field === "Parent ID") span.parentId = value.trim();
      else if (field === "ID") span.id = value.trim();
      else if (field === "Name") span.name = value.trim();
      else if (field === "Kind") span.kind = value.trim();
    } else {
      section = "other";
    }
  }
  return spans;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The Collector's configuration: OTLP over HTTP on `127.0.0.1:<port>` into the debug exporter
 * (detailed, straight to stdout); its own telemetry quiet: logs at `warn`, metrics off (no
 * Prometheus endpoint, so no port to clash with).
 */
function config(port: number): string {
  return `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${port}
exporters:
  debug:
    verbosity: detailed
    use_internal_logger: false
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`;
}

/**
 * Starts the Collector (building it first if needed: minutes when cold) and waits until its OTLP
 * port accepts connections.
 *
 * @returns The running Collector; stop it (or `await using`) when done.
 */
export async function startCollector(): Promise<Collector> {
  const binary = await ensureTool(OTELCOL);
  const dir = await Deno.makeTempDir({ prefix: "denokube-otelcol-" });
  let stdout = "";
  let stderr = "";
  let child: Deno.ChildProcess | undefined;
  const readers: Promise<void>[] = [];
  let exited = false;
  const read = async (stream: ReadableStream<Uint8Array>, into: (s: string) => void) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) into(chunk);
  };
  const stop = async () => {
    if (child && !exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child?.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5_000);
      await child.status;
      clearTimeout(timer);
    }
    await Promise.allSettled(readers);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const port = freePort();
    await Deno.writeTextFile(`${dir}/config.yaml`, config(port));
    child = new Deno.Command(binary, {
      args: [`--config=file:${dir}/config.yaml`],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    child.status.then(() => exited = true);
    readers.push(read(child.stdout, (s) => stdout += s));
    readers.push(read(child.stderr, (s) => stderr = (stderr + s).slice(-20_000)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        break;
      } catch {
        if (exited) throw new Error(`the Collector exited at start:\n${stderr}`);
        if (Date.now() > deadline) {
          throw new Error(`the Collector did not listen on ${port} within 30 s:\n${stderr}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    return {
      tracesUrl: `http://127.0.0.1:${port}/v1/traces`,
      spans: () => parseDebugSpans(stdout),
      log: () => stderr,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
