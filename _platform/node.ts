/**
 * The Node implementation of the runtime seam. HTTP goes through undici 7 (`Agent`, `ProxyAgent`,
 * `Socks5ProxyAgent` with `connect: { ca, cert, key, … }`) and undici's own `fetch`: Node's
 * built-in `fetch` refuses an Agent from another undici version, and undici 8 does not load on
 * Node 20. undici is imported on the first request, so it loads only on Node.
 *
 * Internal module.
 *
 * @module
 */

import { serveNodeHttps } from "./_node_https.ts";
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
import type { HttpPool, PermissionNeed, Runtime, TransportOptions } from "./types.ts";

type Undici = typeof import("undici");
type Dispatcher = import("undici").Dispatcher;

let undici: Promise<Undici> | undefined;

function loadUndici(): Promise<Undici> {
  undici ??= import("undici").catch((cause) => {
    undici = undefined;
    throw new Error(
      `Cannot load the npm package undici (7.x), which this library uses for HTTP on Node: ` +
        `${cause instanceof Error ? cause.message : String(cause)}. Install it next to the ` +
        `library (npm install undici@7).`,
      { cause },
    );
  });
  return undici;
}

/** undici's TLS connect options (Node's `tls.connect` options). */
interface ConnectOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

function connectOptions(options: TransportOptions): ConnectOptions {
  const connect: ConnectOptions = {};
  // Node's `ca` replaces the system roots; Deno's `caCerts` adds to them. Add, like Deno.
  if (options.certificateAuthority) {
    connect.ca = [...rootCertificates, options.certificateAuthority];
  }
  if (options.clientCertificate) {
    connect.cert = options.clientCertificate.cert;
    connect.key = options.clientCertificate.key;
  }
  if (options.insecureSkipTlsVerify) connect.rejectUnauthorized = false;
  if (options.tlsServerName) connect.servername = options.tlsServerName;
  return connect;
}

function dispatcher(u: Undici, options: TransportOptions): Dispatcher {
  const connect = connectOptions(options);
  // No body timeout: a quiet watch is ended by the library (timeoutSeconds, stall detection,
  // the caller's signal), not by the pool. undici's default (300 s) would cut it.
  const timeouts = { bodyTimeout: 0, headersTimeout: 0 };
  if (!options.proxyUrl) return new u.Agent({ connect, ...timeouts });
  const proxy = new URL(options.proxyUrl);
  if (proxy.protocol === "socks5:" || proxy.protocol === "socks5h:") {
    // requestTls is the TLS to the API server through the tunnel. (undici 7.30 builds its
    // per-origin pools without our timeouts: there undici's 300 s body timeout applies.)
    // (Its type declarations lack requestTls, which its code reads.)
    return new u.Socks5ProxyAgent(options.proxyUrl, { requestTls: connect, ...timeouts } as never);
  }
  return new u.ProxyAgent({ uri: options.proxyUrl, requestTls: connect, ...timeouts });
}

function connect(options: TransportOptions): HttpPool {
  let pool: Dispatcher | undefined;
  let closed = false;
  return {
    async fetch(url, init) {
      const u = await loadUndici();
      if (closed) {
        throw new TypeError(`fetch to ${url.origin} after its connection pool was closed`);
      }
      pool ??= dispatcher(u, options);
      return await u.fetch(url, { ...init, dispatcher: pool } as never) as unknown as Response;
    },
    close() {
      closed = true;
      pool?.close().catch(() => {});
      pool = undefined;
    },
  };
}

function nodeFlag(need: PermissionNeed): string | undefined {
  switch (need.kind) {
    case "read":
      // One flag per path (Node 20.20 and later no longer split a comma-separated list).
      return need.paths.map((p) => `--allow-fs-read=${p}`).join(" ");
    case "run":
      return "--allow-child-process";
    case "env":
    case "net":
      // Node's permission model does not gate environment variables or the network.
      return undefined;
  }
}

/** `--permission`, or `--experimental-permission` on Node 20. */
function permissionFlag(): string {
  return Number(process.versions.node.split(".")[0]) < 22
    ? "--experimental-permission"
    : "--permission";
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}

/**
 * Creates the runtime seam on Node.
 *
 * @returns The runtime.
 */
export function createNodeRuntime(): Runtime {
  return {
    name: "node",
    version: process.versions.node,
    os: process.platform === "win32" ? "windows" : process.platform,
    supports: { insecureSkipTlsVerify: true, tlsServerName: true, socks5Proxy: true },
    env,
    readTextFile,
    run,
    connect,
    serve: serveNodeHttp,
    serveTls: serveNodeHttps,
    connectTcp,
    listenTcp,
    onSignal,
    exit,
    isAddrInUse: (error) => errorCode(error) === "EADDRINUSE",
    isNotFound: (error) => errorCode(error) === "ENOENT",
    isPermissionError: (error) => errorCode(error) === "ERR_ACCESS_DENIED",
    grantedAnyway: () => false,
    isGranted(need) {
      return this.permissionState(need) === "granted";
    },
    permissionState(need) {
      // process.permission exists only under --permission (or --experimental-permission).
      const permission = (process as { permission?: { has(scope: string, ref?: string): boolean } })
        .permission;
      if (!permission || need.kind === "env" || need.kind === "net") return "granted";
      if (need.kind === "run") return permission.has("child") ? "granted" : "denied";
      return need.paths.every((p) => permission.has("fs.read", p)) ? "granted" : "denied";
    },
    canPrompt: () => false,
    permissionDenied: (message, cause) =>
      Object.assign(new Error(message, { cause }), { code: "ERR_ACCESS_DENIED" }),
    flag: nodeFlag,
    permissionError(need, what, cause) {
      const flag = nodeFlag(need);
      const how = flag
        ? `run node again with ${flag} (next to ${permissionFlag()})`
        : "run node without --permission";
      const error = new Error(
        `${capitalize(what)} needs a Node permission that was not granted: ${how}.`,
        { cause },
      );
      return Object.assign(error, { code: "ERR_ACCESS_DENIED" });
    },
    notFoundError: (message) => Object.assign(new Error(message), { code: "ENOENT" }),
  };
}
