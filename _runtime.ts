// Internal: the runtime-specific pieces of the operator runtime: an HTTP server for the endpoints
// (Deno.serve) and termination signals (Deno.addSignalListener). The Node and Bun runtime layer
// replaces these bodies, keeping the signatures.

/** A listening HTTP server. */
export interface HttpServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /** Stops accepting, lets requests in flight finish, and closes. */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler` on `hostname:port`.
 *
 * @param handler Answers each request.
 * @param options Where to listen.
 * @returns The server, once it listens.
 */
export function serveHttp(
  handler: (request: Request) => Response | Promise<Response>,
  options: { hostname: string; port: number },
): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen(addr) {
          resolve({
            port: addr.port,
            hostname: addr.hostname,
            shutdown: () => server.shutdown(),
          });
        },
        onError(error) {
          return new Response(`internal error: ${error instanceof Error ? error.message : error}`, {
            status: 500,
          });
        },
      }, handler);
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        reject(
          new TypeError(
            `Serving the health and metrics endpoints needs --allow-net=${options.hostname}:${options.port}`,
            { cause: e },
          ),
        );
        return;
      }
      if (e instanceof Deno.errors.AddrInUse) {
        reject(
          new TypeError(
            `Port ${options.port} on ${options.hostname} is in use: choose another port for the health and metrics endpoints`,
            { cause: e },
          ),
        );
        return;
      }
      reject(e);
    }
  });
}

/**
 * Calls `listener` on SIGTERM and SIGINT (SIGINT only on Windows).
 *
 * @param listener Called with the signal's name.
 * @returns A function that removes the listener.
 */
export function onTerminationSignal(listener: (signal: string) => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGTERM", "SIGINT"];
  const handlers = signals.map((signal) => {
    const handler = () => listener(signal);
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  });
  return () => handlers.forEach((remove) => remove());
}

/**
 * Ends the process at once with an exit code.
 *
 * @param code The exit code.
 */
export function exitNow(code: number): never {
  Deno.exit(code);
}
