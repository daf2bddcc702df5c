/**
 * The parts of the runtime seam that Node and Bun share through Node's own modules: environment,
 * file reads, child processes and an HTTP server on `node:http`.
 *
 * Internal module.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import {
  type AddressInfo,
  connect as netConnect,
  createServer as createNetServer,
  type Socket,
} from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect, rootCertificates } from "node:tls";
import process from "node:process";
import type {
  ByteListener,
  ByteStream,
  ProcessOutput,
  RunOptions,
  ServeHandle,
  ServeHandler,
  TcpTarget,
} from "./types.ts";

/**
 * Reads an environment variable.
 *
 * @param name The variable.
 * @returns Its value, or `undefined`.
 */
export function env(name: string): string | undefined {
  return process.env[name];
}

/**
 * Reads a UTF-8 file.
 *
 * @param path The file.
 * @returns Its text.
 */
export function readTextFile(path: string): Promise<string> {
  return readFile(path, "utf8");
}

/**
 * The error code of a Node-style error (`ENOENT`, `ERR_ACCESS_DENIED`, …).
 *
 * @param error Any thrown value.
 * @returns The code, or `undefined`.
 */
export function errorCode(error: unknown): string | undefined {
  if (error === null || typeof error !== "object") return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Runs a program to completion without standard input, capturing its output.
 *
 * @param command The program.
 * @param options Arguments, extra environment, abort signal.
 * @returns The exit status and output.
 */
export function run(command: string, options: RunOptions): Promise<ProcessOutput> {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(command, [...options.args], {
        env: { ...process.env, ...options.env },
        stdio: ["ignore", "pipe", options.stderr === "inherit" ? "inherit" : "pipe"],
        signal: options.signal,
        windowsHide: true,
      });
    } catch (e) {
      reject(e);
      return;
    }
    const stdout: Uint8Array[] = [];
    const stderr: Uint8Array[] = [];
    const max = options.maxStdoutBytes ?? Infinity;
    let kept = 0;
    let overflow = false;
    child.stdout!.on("data", (chunk: Uint8Array) => {
      if (overflow) return;
      if (kept + chunk.length > max) {
        overflow = true;
        stdout.push(chunk.subarray(0, max - kept));
        child.kill("SIGKILL");
        return;
      }
      kept += chunk.length;
      stdout.push(chunk);
    });
    child.stderr?.on("data", (chunk: Uint8Array) => stderr.push(chunk));
    let failed = false;
    child.once("error", (e) => {
      failed = true;
      reject(e);
    });
    child.once("close", (code, signal) => {
      if (failed) return;
      resolve({
        success: code === 0,
        code: code ?? (signal ? 128 : 1),
        signal: signal ?? null,
        stdout: concat(stdout),
        ...(overflow ? { stdoutOverflow: true } : {}),
        stderr: concat(stderr),
      });
    });
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/**
 * Serves HTTP on `node:http`. Headers are flushed as soon as the handler's response is known, so a
 * watch that has no event yet still answers (Bun.serve holds the headers back until the first body
 * chunk). A client that goes away cancels the response body.
 *
 * @param handler Answers requests.
 * @param options The address.
 * @returns The running server.
 */
export function serveNodeHttp(
  handler: ServeHandler,
  options: { hostname: string; port: number },
): Promise<ServeHandle> {
  const server = createServer((req, res) => {
    answer(handler, req, res, `http://${options.hostname}:${port()}`).catch((e) => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(String(e instanceof Error ? e.message : e));
      } else {
        res.destroy(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
  const port = () => (server.address() as AddressInfo | null)?.port ?? options.port;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve({
        port: port(),
        hostname: options.hostname,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function answer(
  handler: ServeHandler,
  req: IncomingMessage,
  res: ServerResponse,
  origin: string,
): Promise<void> {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const method = req.method ?? "GET";
  // The body is a stream the handler reads if it needs it, as Deno.serve gives it: a handler that
  // answers without reading it (a 405, a probe) never holds it in memory; Node discards what is
  // left unread once the response ends.
  const body = method === "GET" || method === "HEAD" ? undefined : lazyBody(req);
  const request = new Request(new URL(req.url ?? "/", origin), {
    method,
    headers,
    body,
    duplex: "half",
  } as RequestInit);
  const response = await handler(request);
  const outHeaders: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    outHeaders[key] = value;
  });
  res.writeHead(response.status, response.statusText, outHeaders);
  res.flushHeaders();
  if (!response.body || method === "HEAD") {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  let gone = false;
  res.once("close", () => {
    if (res.writableFinished) return;
    gone = true;
    reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || gone) break;
      if (!res.write(value)) {
        await new Promise<void>((resume) => {
          const go = () => {
            res.off("drain", go);
            res.off("close", go);
            resume();
          };
          res.on("drain", go);
          res.on("close", go);
        });
      }
    }
  } catch (e) {
    // The body broke (a fault the fake server injected): break the connection, as a real
    // server would, so that the client sees a transport error.
    res.destroy(e instanceof Error ? e : new Error(String(e)));
    return;
  }
  if (!gone) res.end();
}

/** The request body as a byte stream that reads from the socket only when it is read. */
function lazyBody(req: IncomingMessage): ReadableStream<Uint8Array> {
  let chunks: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      chunks ??= req[Symbol.asyncIterator]();
      const { done, value } = await chunks.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  }, { highWaterMark: 0 });
}

/**
 * Calls `listener` when the process receives `signal`.
 *
 * @param signal `SIGTERM` or `SIGINT`.
 * @param listener Called on each delivery.
 * @returns A function that removes the listener.
 */
export function onSignal(signal: "SIGTERM" | "SIGINT", listener: () => void): () => void {
  process.on(signal, listener);
  return () => {
    process.off(signal, listener);
  };
}

/**
 * Ends the process at once.
 *
 * @param code The exit code.
 */
export function exit(code: number): never {
  process.exit(code);
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
        if (socket.destroyed) {
          reject(new Error("The connection is closed: nothing more can be written"));
          return;
        }
        socket.write(chunk, (error?: Error | null) => error ? reject(error) : resolve());
      });
    },
    close() {
      // Not `socket.end(callback)`: on a socket destroyed meanwhile (the peer or the other side
      // of a forwarded connection went away) that callback never runs, and the pipe into this
      // stream would wait forever.
      return new Promise((resolve) => {
        if (socket.destroyed || socket.writableFinished) {
          resolve();
          return;
        }
        const done = () => {
          socket.off("finish", done);
          socket.off("close", done);
          resolve();
        };
        socket.once("finish", done);
        socket.once("close", done);
        socket.end();
      });
    },
    abort() {
      socket.destroy();
    },
  });
  return { readable, writable, close: () => socket.destroy() };
}

/**
 * Opens a direct TCP or TLS connection with `node:net` / `node:tls`.
 *
 * @param target Host, port, TLS settings.
 * @returns The connected stream.
 */
export function connectTcp(target: TcpTarget): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const tls = target.tls;
    const ip = /^[\d.]+$/.test(target.hostname) || target.hostname.includes(":");
    const socket: Duplex = tls
      ? tlsConnect({
        host: target.hostname,
        port: target.port,
        // tls-server-name is both the SNI name and the name the certificate is checked against.
        servername: tls.serverName ?? (ip ? undefined : target.hostname),
        // Node's `ca` replaces the system roots; add to them, as Deno does.
        ca: tls.caCerts?.length ? [...rootCertificates, ...tls.caCerts] : undefined,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecureSkipTlsVerify,
        ALPNProtocols: ["http/1.1"],
      })
      : netConnect({ host: target.hostname, port: target.port });
    const onError = (e: Error) => reject(e);
    socket.once("error", onError);
    socket.once(tls ? "secureConnect" : "connect", () => {
      socket.off("error", onError);
      // No Nagle: the streams write small frames (a request after the TLS Finished, a close
      // frame, stdin lines); waiting for the peer's delayed ACK costs ~40 ms each (measured on
      // Node 20, whose sockets keep Nagle on by default).
      (socket as Duplex & { setNoDelay?(noDelay: boolean): void }).setNoDelay?.(true);
      resolve(nodeSocketToByteStream(socket));
    });
  });
}

/**
 * Listens on a local TCP port with `node:net`. Connections are queued until the iterator asks for
 * them, paused (no byte is read before the stream is), and closed when the listener closes first.
 *
 * @param hostname The local address.
 * @param port The port; 0 lets the system choose.
 * @returns The listener, once it listens.
 */
export function listenTcp(hostname: string, port: number): Promise<ByteListener> {
  const server = createNetServer({ pauseOnConnect: true });
  const queue: Socket[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  let failure: Error | undefined;
  server.on("connection", (socket: Socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    queue.push(socket);
    wake?.();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: hostname, port, exclusive: true }, () => {
      server.off("error", reject);
      // A failure after listening (rare: e.g. EMFILE on accept) ends the iteration with it.
      server.on("error", (e: Error) => {
        failure = e;
        wake?.();
      });
      const address = server.address() as AddressInfo;
      resolve({
        port: address.port,
        hostname: address.address,
        close() {
          if (closed) return;
          closed = true;
          server.close();
          for (const socket of queue.splice(0)) socket.destroy();
          wake?.();
        },
        async *[Symbol.asyncIterator]() {
          for (;;) {
            while (queue.length === 0 && !closed && !failure) {
              await new Promise<void>((resume) => wake = resume);
              wake = undefined;
            }
            if (closed) return;
            const socket = queue.shift();
            if (socket) {
              yield nodeSocketToByteStream(socket);
              continue;
            }
            throw failure;
          }
        },
      });
    });
  });
}
