// A local WebSocket server that speaks the Kubernetes channel protocol, for the exec, attach and
// port-forward unit tests. Each connection runs a handler with the upgrade request; the frames it
// sends are the ones the API server sends (see exec.test.ts for where they come from).
//
// It is written on node:net / node:tls with its own HTTP head parsing and WebSocket framing (the
// server side: unmasked frames out, masked frames in), so the same tests run on Deno, Node and
// Bun, and the library's WebSocket client is checked against an independent implementation.
// `RawServer` is the same listener without HTTP, for fault injection (half frames, silence).

import { createHash } from "node:crypto";
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Server,
  type Socket,
} from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";

/** What a handler sees of one upgraded connection. */
export interface StubSocket {
  /** The upgrade request. */
  request: Request;
  /** The subprotocol the stub chose. */
  protocol: string;
  /** Sends one binary message: the channel byte then the payload. */
  send(channel: number, payload: string | Uint8Array): void;
  /** Sends raw bytes as one message. */
  sendRaw(bytes: Uint8Array): void;
  /** The next message from the client (undefined once it closed). */
  next(): Promise<Uint8Array | undefined>;
  /** Closes the WebSocket with a close frame. */
  close(code?: number): void;
}

/** Options of a stub connection. */
export type StubHandler = (socket: StubSocket) => Promise<void> | void;

/** A stub answer: a handler, or an HTTP refusal. */
export type StubAnswer = StubHandler | Response | {
  /** Chooses a subprotocol from the offered ones. */
  protocol: string;
  handler: StubHandler;
};

/** TLS settings of a stub that serves HTTPS. */
export interface StubTls {
  /** The server certificate (PEM). */
  cert: string;
  /** Its key (PEM). */
  key: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * The `Sec-WebSocket-Accept` value for a key (RFC 6455 §4.2.2).
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @returns The accept value.
 */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** One server-to-client frame: FIN, the opcode, no mask. */
export function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = new Uint8Array(head + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame[2] = n >> 8;
    frame[3] = n & 0xff;
  } else {
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(n));
  }
  frame.set(payload, head);
  return frame;
}

/**
 * The head of a server's 101 answer to a WebSocket upgrade.
 *
 * @param key The client's `Sec-WebSocket-Key`.
 * @param protocol The subprotocol chosen.
 * @returns The head, ending with the blank line.
 */
export function switchingProtocols(key: string, protocol: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`;
}

/** A connection of a {@linkcode RawServer}: buffered reads, awaited writes. */
export class RawConn {
  readonly #socket: Socket;
  #buffer = new Uint8Array(0);
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      const joined = new Uint8Array(this.#buffer.length + chunk.length);
      joined.set(this.#buffer);
      joined.set(chunk, this.#buffer.length);
      this.#buffer = joined;
      this.#wake?.();
    });
    const end = () => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  async #until(ready: () => boolean): Promise<boolean> {
    while (!ready()) {
      if (this.#ended) return false;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    return true;
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @returns The bytes; throws when the connection ends first.
   */
  async readN(n: number): Promise<Uint8Array> {
    if (!await this.#until(() => this.#buffer.length >= n)) throw new Error("closed");
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  /**
   * Reads an HTTP head, up to and without the blank line.
   *
   * @returns The head, or `undefined` when the connection ended first.
   */
  async readHead(): Promise<string | undefined> {
    let at = -1;
    const find = () => {
      for (let i = 3; i < this.#buffer.length; i++) {
        if (
          this.#buffer[i - 3] === 13 && this.#buffer[i - 2] === 10 &&
          this.#buffer[i - 1] === 13 && this.#buffer[i] === 10
        ) {
          at = i + 1;
          return true;
        }
      }
      return false;
    };
    if (!await this.#until(find)) return undefined;
    const head = decoder.decode(this.#buffer.subarray(0, at - 4));
    this.#buffer = this.#buffer.slice(at);
    return head;
  }

  /** Resolves once the peer has closed (or the connection broke). */
  async ended(): Promise<void> {
    await this.#until(() => false);
  }

  /** Writes bytes (or text) and waits until they are handed to the system. */
  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.write(
        typeof bytes === "string" ? encoder.encode(bytes) : bytes,
        () => resolve(),
      );
    });
  }

  /** Ends the connection (after what was written). */
  close(): void {
    this.#socket.end();
    this.#socket.destroySoon?.();
  }

  /** Breaks the connection at once. */
  destroy(): void {
    this.#socket.destroy();
  }
}

/**
 * A loopback TCP (or TLS) listener for tests: `accept()` hands out connections in order.
 * Runtime-neutral (node:net / node:tls).
 */
export class RawServer implements AsyncDisposable {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #pending: RawConn[] = [];
  readonly #waiting: ((conn: RawConn) => void)[] = [];
  /** Called for each connection instead of queueing it for `accept()`. */
  onConnection: ((conn: RawConn) => void) | undefined;

  private constructor(tls?: StubTls) {
    const take = (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      socket.on("error", () => {});
      const conn = new RawConn(socket);
      if (this.onConnection) return this.onConnection(conn);
      const waiter = this.#waiting.shift();
      if (waiter) waiter(conn);
      else this.#pending.push(conn);
    };
    this.#server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key }, take)
      : createTcpServer(take);
    this.#server.on("tlsClientError", () => {});
  }

  /**
   * Starts listening on 127.0.0.1 and a free port.
   *
   * @param tls Serve TLS with this certificate.
   * @returns The listening server.
   */
  static async start(tls?: StubTls): Promise<RawServer> {
    const server = new RawServer(tls);
    await new Promise<void>((resolve, reject) => {
      server.#server.once("error", reject);
      server.#server.listen(0, "127.0.0.1", () => resolve());
    });
    return server;
  }

  /** The port. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The next connection. */
  accept(): Promise<RawConn> {
    const conn = this.#pending.shift();
    if (conn) return Promise.resolve(conn);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Stops listening and breaks every connection. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The stub server. */
export class WsStub implements AsyncDisposable {
  readonly #raw: RawServer;
  readonly #tls: boolean;
  readonly #answers: StubAnswer[] = [];
  /** Every upgrade request (URL and a copy of the headers), in order. */
  readonly requests: { url: string; headers: Headers }[] = [];
  readonly #handlers = new Set<Promise<void>>();
  /** Errors thrown by handlers (asserted empty by tests). */
  readonly errors: unknown[] = [];

  private constructor(raw: RawServer, tls: boolean) {
    this.#raw = raw;
    this.#tls = tls;
    raw.onConnection = (conn) => {
      const task = this.#serve(conn).catch((e) => {
        this.errors.push(e);
      }).finally(() => conn.close());
      this.#handlers.add(task);
    };
  }

  /**
   * Starts a stub on 127.0.0.1 and a free port.
   *
   * @param tls Serve `https` with this certificate.
   * @returns The running stub.
   */
  static async start(tls?: StubTls): Promise<WsStub> {
    return new WsStub(await RawServer.start(tls), tls !== undefined);
  }

  /** The server's URL. */
  get url(): string {
    return `${this.#tls ? "https" : "http"}://127.0.0.1:${this.#raw.port}`;
  }

  /** The port. */
  get port(): number {
    return this.#raw.port;
  }

  /**
   * Queues the answers for the next connections.
   *
   * @param answers In order.
   * @returns This stub.
   */
  push(...answers: StubAnswer[]): this {
    this.#answers.push(...answers);
    return this;
  }

  /**
   * A client with a bearer token for this stub.
   *
   * @returns The client.
   */
  client(): Client {
    return new Client(Config.fromUrl(this.url, { credentials: { token: "stub-token" } }));
  }

  /** Waits for the handlers of every connection so far. */
  async settle(): Promise<void> {
    await Promise.all([...this.#handlers]);
  }

  async #serve(conn: RawConn): Promise<void> {
    const head = await conn.readHead();
    if (head === undefined) return;
    const [requestLine, ...lines] = head.split("\r\n");
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const target = requestLine.split(" ")[1] ?? "/";
    const request = new Request(new URL(target, this.url), { headers });
    this.requests.push({ url: request.url, headers: new Headers(headers) });
    const answer = this.#answers.shift();
    if (!answer || answer instanceof Response) {
      const response = answer ?? new Response("unscripted", { status: 500 });
      const body = new Uint8Array(await response.arrayBuffer());
      let out = `HTTP/1.1 ${response.status} ${response.statusText || "Refused"}\r\n`;
      response.headers.forEach((value, key) => {
        if (key !== "content-length") out += `${key}: ${value}\r\n`;
      });
      out += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
      await conn.write(out);
      await conn.write(body);
      return;
    }
    const offered = (headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    const protocol = typeof answer === "function" ? offered[0] : answer.protocol;
    const handler = typeof answer === "function" ? answer : answer.handler;
    await conn.write(switchingProtocols(headers.get("sec-websocket-key") ?? "", protocol));
    const queue: (Uint8Array | undefined)[] = [];
    const waiting: ((value: Uint8Array | undefined) => void)[] = [];
    let ended = false;
    let closeSent = false;
    const push = (value: Uint8Array | undefined) => {
      if (ended) return;
      if (value === undefined) ended = true;
      const resolve = waiting.shift();
      if (resolve) resolve(value);
      else queue.push(value);
    };
    const sendFrame = (opcode: number, payload: Uint8Array) => {
      if (!closeSent) conn.write(serverFrame(opcode, payload));
    };
    // The client's frames: masked; a close is answered (unless we sent ours) and ends the stream.
    const reading = (async () => {
      let fragments: Uint8Array[] = [];
      try {
        for (;;) {
          const [b0, b1] = await conn.readN(2);
          let length = b1 & 0x7f;
          if (length === 126) {
            const ext = await conn.readN(2);
            length = (ext[0] << 8) | ext[1];
          } else if (length === 127) {
            length = Number(new DataView((await conn.readN(8)).buffer).getBigUint64(0));
          }
          if ((b1 & 0x80) === 0) throw new Error("a client frame without a mask");
          const mask = await conn.readN(4);
          const payload = await conn.readN(length);
          for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
          const opcode = b0 & 0x0f;
          if (opcode === 0x8) {
            if (!closeSent) {
              sendFrame(0x8, payload.subarray(0, 2));
              closeSent = true;
            }
            break;
          }
          if (opcode === 0x9) {
            sendFrame(0xa, payload);
            continue;
          }
          if (opcode === 0xa) continue;
          fragments.push(payload);
          if (b0 & 0x80) {
            const total = fragments.reduce((n, f) => n + f.length, 0);
            const message = new Uint8Array(total);
            let at = 0;
            for (const f of fragments) {
              message.set(f, at);
              at += f.length;
            }
            fragments = [];
            push(message);
          }
        }
      } catch {
        // The connection ended.
      }
      push(undefined);
    })();
    const stub: StubSocket = {
      request,
      protocol,
      send(channel, payload) {
        const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
        const message = new Uint8Array(bytes.length + 1);
        message[0] = channel;
        message.set(bytes, 1);
        sendFrame(0x2, message);
      },
      sendRaw(bytes) {
        sendFrame(0x2, bytes);
      },
      next() {
        if (queue.length) return Promise.resolve(queue.shift());
        if (ended) return Promise.resolve(undefined);
        return new Promise((resolve) => waiting.push(resolve));
      },
      close(code = 1000) {
        if (closeSent) return;
        sendFrame(0x8, new Uint8Array([code >> 8, code & 0xff]));
        closeSent = true;
      },
    };
    try {
      await handler(stub);
    } catch (e) {
      this.errors.push(e);
    }
    stub.close();
    // Wait for the client's close frame (or its end) so that no resource outlives the test.
    await reading;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.settle();
    await this.#raw.close();
  }
}

/** A Kubernetes `Status` as JSON. */
export function statusJson(status: Record<string, unknown>): string {
  return JSON.stringify({ metadata: {}, ...status });
}
