/**
 * The Bun implementation of the runtime seam: Bun's `fetch` with its `tls` and `proxy` options,
 * and an HTTP server on `node:http` (Bun.serve sends no headers before the first body chunk, so a
 * quiet watch would never answer).
 *
 * Internal module.
 *
 * @module
 */

import process from "node:process";
import { rootCertificates } from "node:tls";
import {
  connectTcp,
  env,
  errorCode,
  exit,
  listenTcp,
  onSignal,
  readTextFile,
  run,
  serveNodeHttp,
} from "./_node_common.ts";
import type {
  HttpPool,
  Runtime,
  ServeHandler,
  TlsServeHandle,
  TlsServeOptions,
  TransportOptions,
} from "./types.ts";

/** The part of the `Bun` global this module uses. */
interface BunGlobal {
  version: string;
  serve(options: {
    hostname: string;
    port: number;
    reusePort: boolean;
    tls: { cert: string; key: string };
    maxRequestBodySize: number;
    idleTimeout: number;
    fetch: (request: Request) => Promise<Response>;
  }): BunServer;
}

interface BunServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}

function bun(): BunGlobal {
  return (globalThis as unknown as { Bun: BunGlobal }).Bun;
}

/**
 * The first Bun whose `fetch` uses each request's own mTLS client certificate: before it, a
 * process kept presenting the first certificate it used for a host (oven-sh/bun#26125).
 */
export const BUN_MTLS_FIX = "1.3.7";

/** The first Bun (measured) whose `fetch` verifies the server against `tls.serverName`. */
export const BUN_SERVER_NAME_FIX = "1.4.0";

/**
 * Compares two `x.y.z` versions.
 *
 * @param a A version.
 * @param b Another version.
 * @returns A negative number when `a < b`, 0 when equal, positive when `a > b`.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map(Number);
  const pb = b.split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

// On a Bun with the mTLS bug: the client certificate first used per origin in this process.
const firstCertificate = new Map<string, string>();

/**
 * Refuses a second, different client certificate (or none after one, or one after none) for the
 * same server on a Bun that would silently keep presenting the first one: measured on Bun 1.3.6,
 * a request with bob's certificate, and one with no certificate at all, both presented alice's.
 *
 * @param version The Bun version.
 * @param origin The server's origin.
 * @param cert The client certificate (PEM) of this request, `""` for none.
 */
export function checkCertificateReuse(version: string, origin: string, cert: string): void {
  if (compareVersions(version, BUN_MTLS_FIX) >= 0) return;
  const first = firstCertificate.get(origin);
  if (first === undefined) {
    firstCertificate.set(origin, cert);
    return;
  }
  if (first !== cert) {
    throw new Error(
      `Bun ${version} cannot switch client certificates for ${origin}: its fetch keeps ` +
        `presenting the first certificate it used for a host (oven-sh/bun#26125), so this ` +
        `request would go out with the wrong identity (for example the previous certificate ` +
        `of a rotating exec plugin). Upgrade Bun to ${BUN_MTLS_FIX} or later (bun upgrade).`,
    );
  }
}

interface BunTls {
  ca?: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  serverName?: string;
}

function connect(options: TransportOptions): HttpPool {
  const tls: BunTls = {};
  // Bun's `ca`, like Node's, replaces the system roots; Deno's `caCerts` adds to them. Add.
  if (options.certificateAuthority) tls.ca = [...rootCertificates, options.certificateAuthority];
  const cert = options.clientCertificate;
  if (cert) {
    tls.cert = cert.cert;
    tls.key = cert.key;
  }
  if (options.insecureSkipTlsVerify) tls.rejectUnauthorized = false;
  if (options.tlsServerName) tls.serverName = options.tlsServerName;
  const extra: Record<string, unknown> = {
    // No idle timeout: a quiet watch is ended by the library (timeoutSeconds, stall detection,
    // the caller's signal), not by Bun's default 5-minute idle timer.
    timeout: false,
  };
  if (Object.keys(tls).length > 0) extra.tls = tls;
  if (options.proxyUrl) {
    const scheme = new URL(options.proxyUrl).protocol;
    if (scheme !== "http:" && scheme !== "https:") {
      throw new TypeError(
        `Bun's fetch supports http:// and https:// proxies only; the kubeconfig's proxy-url ` +
          `is a ${scheme}// proxy. Use an HTTP CONNECT proxy, or run on Deno or Node.`,
      );
    }
    extra.proxy = options.proxyUrl;
  }
  let closed = false;
  return {
    fetch(url, init) {
      if (closed) {
        return Promise.reject(
          new TypeError(`fetch to ${url.origin} after its connection pool was closed`),
        );
      }
      if (url.protocol === "https:") {
        checkCertificateReuse(bun().version, url.origin, cert?.cert ?? "");
      }
      return fetch(url, { ...init, ...extra } as RequestInit);
    },
    close() {
      // Bun pools connections per TLS configuration itself; nothing to close per transport.
      closed = true;
    },
  };
}

/**
 * Serves HTTPS on `Bun.serve`. Bun cannot swap a listening server's certificate (neither
 * `reload({ tls })` nor `node:https`'s `setSecureContext`/`SNICallback` change what new handshakes
 * present, measured on Bun 1.4.5), so a new certificate starts a second server on the same port
 * (`reusePort`), and the old one drains (see below) before it stops.
 *
 * @param handler Answers requests.
 * @param options Address, certificate, limits and timeouts.
 * @returns The running server.
 */
/** How long a replaced server keeps answering (with `Connection: close`) before it stops. */
const DRAIN_MS = 2_000;

function serveTls(handler: ServeHandler, options: TlsServeOptions): Promise<TlsServeHandle> {
  // A replaced server drains before it stops (closing a kept-alive connection just as a client
  // reuses it gives that client EOF, and a POST is not retried): for DRAIN_MS it keeps answering,
  // with `Connection: close`, so busy connections end after their next request; then it stops
  // (no new connections with the old certificate; idle ones close, which clients see before
  // reusing them).
  const start = (cert: string, key: string, port: number, draining: { on: boolean }) =>
    bun().serve({
      hostname: options.hostname,
      port,
      reusePort: true,
      tls: { cert, key },
      // Bun answers a larger body 413 with no text itself; the handler checks the exact limit
      // and says why, for bodies up to 64 KiB over.
      maxRequestBodySize: options.maxBodyBytes + 65_536,
      // Bun's idle timeout is in seconds, at most 255.
      idleTimeout: Math.max(1, Math.min(255, Math.ceil(options.idleTimeoutMs / 1000))),
      fetch: async (request) => {
        const response = await handler(request);
        if (draining.on) response.headers.set("connection", "close");
        return response;
      },
    });
  let draining = { on: false };
  let server = start(options.cert, options.key, options.port, draining);
  const port = server.port;
  const retiring = new Set<{ server: BunServer; timer: ReturnType<typeof setTimeout> }>();
  return Promise.resolve({
    port,
    hostname: options.hostname,
    setCertificate(cert: string, key: string): Promise<void> {
      const nextDraining = { on: false };
      const next = start(cert, key, port, nextDraining);
      const old = server;
      draining.on = true;
      draining = nextDraining;
      server = next;
      const entry = {
        server: old,
        timer: setTimeout(() => {
          retiring.delete(entry);
          old.stop(false).catch(() => {});
        }, Math.min(DRAIN_MS, options.idleTimeoutMs)),
      };
      retiring.add(entry);
      return Promise.resolve();
    },
    async close() {
      for (const r of retiring) {
        clearTimeout(r.timer);
        await r.server.stop(true);
      }
      retiring.clear();
      await server.stop(true);
    },
  });
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}

/**
 * Creates the runtime seam on Bun.
 *
 * @returns The runtime.
 */
export function createBunRuntime(): Runtime {
  return {
    name: "bun",
    version: bun().version,
    os: process.platform === "win32" ? "windows" : process.platform,
    supports: {
      insecureSkipTlsVerify: true,
      // Measured: Bun 1.3.7's fetch does not verify against tls.serverName; 1.4.0 does.
      tlsServerName: compareVersions(bun().version, BUN_SERVER_NAME_FIX) >= 0,
      socks5Proxy: false,
    },
    env,
    readTextFile,
    run,
    connect,
    serve: serveNodeHttp,
    serveTls,
    connectTcp,
    listenTcp,
    onSignal,
    exit,
    isAddrInUse: (error) => errorCode(error) === "EADDRINUSE",
    isNotFound: (error) => errorCode(error) === "ENOENT",
    // Bun has no permission model.
    isPermissionError: () => false,
    grantedAnyway: () => false,
    isGranted: () => true,
    permissionState: () => "granted",
    canPrompt: () => false,
    permissionDenied: (message, cause) => new Error(message, { cause }),
    flag: () => undefined,
    permissionError: (_need, what, cause) =>
      new Error(`${capitalize(what)} was refused.`, { cause }),
    notFoundError: (message) => Object.assign(new Error(message), { code: "ENOENT" }),
  };
}
