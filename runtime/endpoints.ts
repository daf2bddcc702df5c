/**
 * The health and metrics endpoints an operator serves so that Kubernetes can probe it and
 * Prometheus can scrape it: `/healthz` (liveness: the loops are alive), `/readyz` (readiness:
 * caches synced) and `/metrics` (a {@linkcode Registry} in the Prometheus text format).
 *
 * Checks answer like the API server's own: `200 ok`, or `500` listing the failed checks;
 * `?verbose` lists every check.
 *
 * @example Serve on port 8080
 * ```ts ignore
 * import { Registry, serveEndpoints } from "@denokube/kube";
 *
 * const registry = new Registry();
 * await using endpoints = await serveEndpoints({
 *   port: 8080,
 *   registry,
 *   readyz: { caches: () => reflector.synced || "caches not synced yet" },
 * });
 * ```
 *
 * @module
 */

import { Registry } from "./metrics.ts";
import { type HttpServer, serveHttp } from "../_platform/mod.ts";
import { redactText } from "../_client/redact.ts";

/** A health check: `true` when healthy, otherwise a short reason. */
export type HealthCheck = () => true | string;

/** Options of {@linkcode endpointsHandler}. */
export interface EndpointsHandlerOptions {
  /** What `/metrics` renders. Default: an empty registry. */
  registry?: Registry;
  /** Liveness checks, by name. Default none (always ok). */
  healthz?: Record<string, HealthCheck>;
  /** Readiness checks, by name. Default none (always ok). */
  readyz?: Record<string, HealthCheck>;
}

/** Options of {@linkcode serveEndpoints}. */
export interface EndpointsOptions extends EndpointsHandlerOptions {
  /** The port; `0` picks a free one. Default 8080. */
  port?: number;
  /**
   * The address to listen on. Default `0.0.0.0`: the kubelet probes the pod IP and Prometheus
   * scrapes it, so loopback would leave the pod unready. The answers carry no secrets (check
   * reasons are redacted) and no request body is read; restrict who reaches the port with a
   * NetworkPolicy, or pass `127.0.0.1` outside a pod.
   */
  hostname?: string;
}

/** The running endpoints server from {@linkcode serveEndpoints}. */
export interface EndpointsServer extends AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /** Stops the server. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * A `fetch`-style handler for `/healthz`, `/readyz` and `/metrics`: mount it in your own server,
 * or use {@linkcode serveEndpoints}.
 *
 * @param options The registry and the checks.
 * @returns The handler; other paths answer 404.
 *
 * @example
 * ```ts
 * import { endpointsHandler } from "@denokube/kube";
 * const handler = endpointsHandler({ readyz: { caches: () => "not synced" } });
 * const res = await handler(new Request("http://localhost/readyz"));
 * console.log(res.status); // 500
 * ```
 */
export function endpointsHandler(
  options: EndpointsHandlerOptions = {},
): (request: Request) => Response {
  const registry = options.registry ?? new Registry();
  return (request: Request): Response => {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { Allow: "GET, HEAD" } });
    }
    switch (url.pathname) {
      case "/metrics":
        // A failed collector's message is user text: masked like every answer of these endpoints.
        return new Response(registry.expose().replace(/^# collector failed: .*$/gm, redactText), {
          headers: { "Content-Type": Registry.contentType },
        });
      case "/healthz":
      case "/livez":
        return checkResponse(options.healthz ?? {}, url.searchParams.has("verbose"));
      case "/readyz":
        return checkResponse(options.readyz ?? {}, url.searchParams.has("verbose"));
      default:
        return new Response("not found: try /healthz, /readyz or /metrics\n", { status: 404 });
    }
  };
}

function checkResponse(checks: Record<string, HealthCheck>, verbose: boolean): Response {
  const lines: string[] = [];
  let failed = false;
  for (const [name, check] of Object.entries(checks)) {
    let result: true | string;
    try {
      result = check();
    } catch (e) {
      result = `check threw: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (result === true) {
      lines.push(`[+]${name} ok`);
    } else {
      failed = true;
      // The reason is text from elsewhere (an error message): never a credential in the answer.
      lines.push(`[-]${name} failed: ${redactText(String(result))}`);
    }
  }
  const headers = { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" };
  if (failed) {
    return new Response(`${lines.join("\n")}\ncheck failed\n`, { status: 500, headers });
  }
  return new Response(verbose ? `${lines.join("\n")}\nok\n` : "ok\n", { headers });
}

/**
 * Serves {@linkcode endpointsHandler} on a port.
 *
 * @param options Port, address, registry and checks.
 * @returns The server, once it listens.
 * @throws {TypeError} Without `--allow-net` for the address, or when the port is in use.
 */
export async function serveEndpoints(options: EndpointsOptions = {}): Promise<EndpointsServer> {
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`serveEndpoints: port must be an integer 0–65535, got ${port}`);
  }
  const server: HttpServer = await serveHttp(endpointsHandler(options), { hostname, port });
  let closed: Promise<void> | undefined;
  const close = () => closed ??= server.shutdown();
  return {
    port: server.port,
    hostname: server.hostname,
    close,
    [Symbol.asyncDispose]: close,
  };
}
