// The runtime seam of the streaming subresources (exec, attach, port-forward): opens one byte
// stream to the API server, directly or through an HTTP(S) CONNECT proxy, with TLS (custom CA,
// client certificate, ALPN `http/1.1` only — the upgrade to WebSocket needs HTTP/1.1).
//
// Direct connections and listeners come from the runtime seam (`runtime().connectTcp` /
// `listenTcp`): on Deno `Deno.connect` + `setNoDelay` + `Deno.startTls` (`Deno.connectTls` when a
// client certificate is sent), `node:net` / `node:tls` on Node and Bun. Through a proxy it is
// `node:net` + `node:tls` on every runtime, because `Deno.startTls` cannot present a client
// certificate.

import type { Duplex } from "node:stream";
import {
  type ByteListener,
  type ByteStream,
  nodeSocketToByteStream,
  runtime,
  type TcpTls,
} from "../_platform/mod.ts";

export type { ByteListener, ByteStream } from "../_platform/mod.ts";

/**
 * TLS settings of a connection: CA, client certificate, and (on Node and Bun)
 * `insecure-skip-tls-verify` and `tls-server-name`.
 */
export type SocketTls = TcpTls;

/** Where to connect. */
export interface SocketTarget {
  /** Host name or IP address of the server. */
  hostname: string;
  /** TCP port. */
  port: number;
  /** TLS settings; plain TCP when undefined. */
  tls?: SocketTls;
  /** An `http://` or `https://` proxy URL to tunnel through with CONNECT. */
  proxyUrl?: string;
  /** Aborts connecting. */
  signal?: AbortSignal;
}

/** Opens a byte stream to a server: the function the streaming code depends on. */
export type SocketOpener = (target: SocketTarget) => Promise<ByteStream>;

/**
 * Opens a byte stream to `target`, with TLS and through a proxy as configured.
 *
 * @param target Host, port, TLS settings, proxy.
 * @returns The connected stream.
 */
export const openSocket: SocketOpener = async (target) => {
  target.signal?.throwIfAborted();
  const rt = runtime();
  if (target.tls) {
    // As on fetch: skipping verification only where the runtime can do it per client (Node,
    // Bun); on Deno the handshake then fails and the caller's error names the Deno flag.
    // (A tls-server-name other than the host never reaches here on Deno: the config refuses it.)
    const insecure = target.tls.insecureSkipTlsVerify === true &&
      rt.supports.insecureSkipTlsVerify;
    const { insecureSkipTlsVerify: _, ...rest } = target.tls;
    target = { ...target, tls: insecure ? { ...rest, insecureSkipTlsVerify: true } : rest };
  }
  if (target.proxyUrl) return await openThroughProxy(target);
  const conn = await rt.connectTcp({
    hostname: target.hostname,
    port: target.port,
    tls: target.tls,
  });
  if (target.signal?.aborted) {
    conn.close();
    target.signal.throwIfAborted();
  }
  return conn;
};

async function openThroughProxy(target: SocketTarget): Promise<ByteStream> {
  const proxy = new URL(target.proxyUrl!);
  if (proxy.protocol !== "http:" && proxy.protocol !== "https:") {
    throw new TypeError(
      `The proxy ${proxy.protocol}//${proxy.host} cannot carry exec, attach or port-forward: ` +
        "only http:// and https:// (CONNECT) proxies are supported for these streams",
    );
  }
  const net = await import("node:net");
  const tls = await import("node:tls");
  const proxyPort = Number(proxy.port || (proxy.protocol === "https:" ? 443 : 80));
  const proxyHost = proxy.hostname.replace(/^\[|\]$/g, "");
  let socket: Duplex = proxy.protocol === "https:"
    ? tls.connect({ host: proxyHost, port: proxyPort, servername: proxyHost })
    : net.connect({ host: proxyHost, port: proxyPort });
  try {
    await once(socket, proxy.protocol === "https:" ? "secureConnect" : "connect", target.signal);
    const authority = `${
      target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname
    }:${target.port}`;
    let request = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
    if (proxy.username) {
      const basic = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
      request += `Proxy-Authorization: Basic ${btoa(basic)}\r\n`;
    }
    socket.write(request + "\r\n");
    const head = await readHead(socket, target.signal);
    const statusLine = head.split("\r\n", 1)[0];
    const code = Number(statusLine.split(" ")[1]);
    if (code !== 200) {
      throw new Error(
        `The proxy ${proxy.protocol}//${proxy.host} refused to tunnel to ${authority}: ${statusLine}`,
      );
    }
    if (target.tls) {
      const secure = tls.connect({
        socket,
        servername: target.tls.serverName ?? (isIp(target.hostname) ? undefined : target.hostname),
        host: target.hostname,
        ca: target.tls.caCerts?.length ? target.tls.caCerts : undefined,
        cert: target.tls.cert,
        key: target.tls.key,
        rejectUnauthorized: !target.tls.insecureSkipTlsVerify,
        ALPNProtocols: ["http/1.1"],
      });
      socket = secure;
      await once(secure, "secureConnect", target.signal);
    }
    return nodeSocketToByteStream(socket);
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}

function once(socket: Duplex, event: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      socket.off(event, onEvent);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onAbort = () => {
      cleanup();
      reject(signal!.reason);
    };
    socket.once(event, onEvent);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Reads an HTTP response head (up to the blank line) from a proxy, keeping any extra bytes. */
function readHead(socket: Duplex, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let head = new Uint8Array(0);
    const cleanup = () => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
      signal?.removeEventListener("abort", onAbort);
    };
    const onData = (chunk: Uint8Array) => {
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      head = joined;
      for (let i = 3; i < head.length; i++) {
        if (head[i - 3] === 13 && head[i - 2] === 10 && head[i - 1] === 13 && head[i] === 10) {
          cleanup();
          socket.pause();
          // Bytes after the blank line belong to the tunnel (the TLS handshake): give them back.
          if (i + 1 < head.length) socket.unshift(head.subarray(i + 1));
          resolve(String.fromCharCode(...head.subarray(0, i - 3)));
          return;
        }
      }
      if (head.length > 16_384) {
        cleanup();
        reject(new Error("The proxy sent a response head larger than 16 KiB"));
      }
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error("The proxy closed the connection before answering CONNECT"));
    };
    const onAbort = () => {
      cleanup();
      reject(signal!.reason);
    };
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("end", onEnd);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Listens on a local TCP port.
 *
 * @param hostname The local address, e.g. `127.0.0.1`.
 * @param port The port; 0 lets the system choose.
 * @returns The listener, once it listens. An address in use is an `Error` naming it (the
 *   runtime's error as `cause`); a missing Deno permission names the `--allow-net` flag.
 */
export async function listenSocket(hostname: string, port: number): Promise<ByteListener> {
  const rt = runtime();
  try {
    return await rt.listenTcp(hostname, port);
  } catch (e) {
    if (rt.isAddrInUse(e)) {
      throw new Error(
        `Cannot listen on ${hostname}:${port} to forward a port: the address is already in use. ` +
          `Choose another local port, or 0 to let the system pick a free one`,
        { cause: e },
      );
    }
    if (!rt.isPermissionError(e)) throw e;
    const flag = rt.flag({ kind: "net", hosts: [port === 0 ? hostname : `${hostname}:${port}`] });
    throw rt.permissionDenied(
      `Cannot listen on ${hostname}:${port} to forward a port: missing network permission. ` +
        `Run again with ${flag} (plus the API server's host:port)`,
      e,
    );
  }
}
