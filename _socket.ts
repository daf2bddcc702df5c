// The runtime seam of the streaming subresources (exec, attach, port-forward): opens one byte
// stream to the API server, directly or through an HTTP(S) CONNECT proxy, with TLS (custom CA,
// client certificate, ALPN `http/1.1` only — the upgrade to WebSocket needs HTTP/1.1).
//
// Everything runtime-specific about sockets is in this file. Deno: `Deno.connect` /
// `Deno.connectTls` when direct; `node:net` + `node:tls` through a proxy, because
// `Deno.startTls` cannot present a client certificate. Node and Bun can supply the same
// `openSocket` with `node:net` / `node:tls` only (`nodeSocketToByteStream` already adapts them).

import type { Duplex } from "node:stream";

/** A bidirectional byte stream: what a WebSocket runs over. */
export interface ByteStream {
  /** Bytes from the peer; ends when the peer closes. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes the connection at once (idempotent). */
  close(): void;
}

/** TLS settings of a connection. */
export interface SocketTls {
  /** PEM certificate authorities to trust besides the system roots. */
  caCerts?: string[];
  /** PEM client certificate (with `key`). */
  cert?: string;
  /** PEM private key of the client certificate. */
  key?: string;
}

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
  if (target.proxyUrl) return await openThroughProxy(target);
  const conn = target.tls
    ? await Deno.connectTls({
      hostname: target.hostname,
      port: target.port,
      caCerts: target.tls.caCerts,
      alpnProtocols: ["http/1.1"],
      ...(target.tls.cert && target.tls.key ? { cert: target.tls.cert, key: target.tls.key } : {}),
    })
    : await Deno.connect({ hostname: target.hostname, port: target.port });
  if (target.signal?.aborted) {
    conn.close();
    target.signal.throwIfAborted();
  }
  return denoConnToByteStream(conn);
};

function denoConnToByteStream(conn: Deno.Conn): ByteStream {
  let closed = false;
  return {
    readable: conn.readable,
    writable: conn.writable,
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed by a finished readable and writable.
      }
    },
  };
}

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
        servername: isIp(target.hostname) ? undefined : target.hostname,
        host: target.hostname,
        ca: target.tls.caCerts?.length ? target.tls.caCerts : undefined,
        cert: target.tls.cert,
        key: target.tls.key,
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
 * Adapts a `node:net` / `node:tls` socket to web streams, with backpressure both ways.
 *
 * @param socket A connected socket.
 * @returns The byte stream.
 */
export function nodeSocketToByteStream(socket: Duplex): ByteStream {
  let done = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Uint8Array) => {
        if (done) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) socket.pause();
      });
      socket.once("end", () => {
        if (done) return;
        done = true;
        controller.close();
      });
      socket.once("close", () => {
        if (done) return;
        done = true;
        controller.close();
      });
      socket.once("error", (e: Error) => {
        if (done) return;
        done = true;
        controller.error(e);
      });
      socket.resume();
    },
    pull() {
      socket.resume();
    },
    cancel() {
      done = true;
      socket.destroy();
    },
  });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise((resolve, reject) => {
        socket.write(chunk, (error?: Error | null) => error ? reject(error) : resolve());
      });
    },
    close() {
      return new Promise((resolve) => socket.end(() => resolve()));
    },
    abort() {
      socket.destroy();
    },
  });
  return { readable, writable, close: () => socket.destroy() };
}

/** A listening loopback socket that yields accepted connections. */
export interface ByteListener extends AsyncIterable<ByteStream> {
  /** The local port (the one chosen by the system when 0 was asked). */
  readonly port: number;
  /** The local address. */
  readonly hostname: string;
  /** Stops listening. */
  close(): void;
}

/**
 * Listens on a local TCP port.
 *
 * @param hostname The local address, e.g. `127.0.0.1`.
 * @param port The port; 0 lets the system choose.
 * @returns The listener.
 */
export function listenSocket(hostname: string, port: number): ByteListener {
  let listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  try {
    listener = Deno.listen({ hostname, port, transport: "tcp" });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
    const flag = port === 0 ? hostname : `${hostname}:${port}`;
    throw new Deno.errors.NotCapable(
      `Cannot listen on ${hostname}:${port} to forward a port: missing network permission. ` +
        `Run again with --allow-net=${flag} (plus the API server's host:port)`,
      { cause: e },
    );
  }
  let closed = false;
  return {
    port: listener.addr.port,
    hostname: listener.addr.hostname,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch (e) {
          if (closed || e instanceof Deno.errors.BadResource) return;
          throw e;
        }
        yield denoConnToByteStream(conn);
      }
    },
  };
}
