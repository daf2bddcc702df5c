// A small RFC 6455 WebSocket client over a ByteStream (see _client/socket.ts).
//
// Why not the global WebSocket: Deno's WebSocket offers `h2` in TLS ALPN whatever the HttpClient
// says, and kube-apiserver then picks HTTP/2, where an HTTP/1.1 Upgrade is impossible ("HTTP/2 not
// supported by this client"); and the WHATWG API hides the status and body of a refused handshake,
// so a 403 or 404 `Status` could not become a clear ApiError. This client sends the upgrade itself,
// hands back a refused handshake's status and body, and reads frames only when the consumer pulls
// (backpressure end to end).

import type { ByteStream } from "./socket.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HEAD = 64 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
/** Largest message accepted from the server. */
export const MAX_MESSAGE = 64 * 1024 * 1024;

/** The upgrade request. */
export interface UpgradeRequest {
  /** Path and query, e.g. `/api/v1/namespaces/default/pods/web/exec?command=ls`. */
  path: string;
  /** The `Host` header (`host:port`). */
  host: string;
  /** Extra headers (authorization, user agent, impersonation). */
  headers: Headers;
  /** Subprotocols in order of preference. */
  protocols: string[];
}

/** A refused upgrade: the HTTP answer the server gave instead of `101 Switching Protocols`. */
export interface RefusedUpgrade {
  /** The HTTP status code. */
  status: number;
  /** The reason phrase. */
  statusText: string;
  /** The response headers. */
  headers: Headers;
  /** The response body as text (at most 64 KiB). */
  body: string;
}

/** The close code and reason the peer sent (1005 when it sent none, 1006 when the socket ended). */
export interface CloseInfo {
  /** The close code. */
  code: number;
  /** The close reason. */
  reason: string;
}

/**
 * Performs the opening handshake on `socket`. On success the socket belongs to the returned
 * connection; on a refusal (any status but 101) the socket is closed and the answer returned.
 *
 * @param socket A connected byte stream.
 * @param request Path, host, headers and subprotocols.
 * @returns The connection, or the refusal.
 */
export async function upgradeWebSocket(
  socket: ByteStream,
  request: UpgradeRequest,
): Promise<WebSocketConnection | RefusedUpgrade> {
  const reader = new ByteReader(socket.readable.getReader());
  const writer = socket.writable.getWriter();
  try {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    let head = `GET ${request.path} HTTP/1.1\r\nHost: ${request.host}\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
      `Sec-WebSocket-Version: 13\r\n`;
    if (request.protocols.length) {
      head += `Sec-WebSocket-Protocol: ${request.protocols.join(", ")}\r\n`;
    }
    for (const [name, value] of request.headers) {
      if (/[\r\n]/.test(value)) throw new TypeError(`The header ${name} contains a line break`);
      head += `${name}: ${value}\r\n`;
    }
    await writer.write(new TextEncoder().encode(head + "\r\n"));
    const response = await reader.readHead();
    if (response === undefined) {
      throw new Error("The server closed the connection before answering the WebSocket upgrade");
    }
    if (response.status !== 101) {
      const body = await reader.readBody(response.headers);
      await closeQuietly(socket, reader, writer);
      return { ...response, body };
    }
    const expected = await acceptKey(key);
    if (response.headers.get("sec-websocket-accept") !== expected) {
      throw new Error(
        "The server answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept",
      );
    }
    const protocol = response.headers.get("sec-websocket-protocol") ?? "";
    if (protocol && !request.protocols.includes(protocol)) {
      throw new Error(`The server chose the subprotocol ${protocol}, which was not offered`);
    }
    return new WebSocketConnection(socket, reader, writer, protocol);
  } catch (e) {
    await closeQuietly(socket, reader, writer);
    throw e;
  }
}

async function closeQuietly(
  socket: ByteStream,
  reader: ByteReader,
  writer: WritableStreamDefaultWriter<Uint8Array>,
): Promise<void> {
  socket.close();
  await reader.cancel();
  await writer.abort().catch(() => {});
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * An open WebSocket. Messages are read only as {@linkcode WebSocketConnection.messages} is pulled;
 * {@linkcode WebSocketConnection.send} resolves once the bytes are handed to the socket.
 */
export class WebSocketConnection {
  /** The subprotocol the server chose (empty when it chose none). */
  readonly protocol: string;
  /** The data messages (binary and text payloads as bytes); ends when the peer closes. */
  readonly messages: ReadableStream<Uint8Array>;
  /** Resolves with the peer's close code once the connection is closed. */
  readonly closed: Promise<CloseInfo>;
  #socket: ByteStream;
  #reader: ByteReader;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #closeSent = false;
  #finished = false;
  #resolveClosed: (info: CloseInfo) => void;

  constructor(
    socket: ByteStream,
    reader: ByteReader,
    writer: WritableStreamDefaultWriter<Uint8Array>,
    protocol: string,
  ) {
    this.#socket = socket;
    this.#reader = reader;
    this.#writer = writer;
    this.protocol = protocol;
    // Not Promise.withResolvers: Node 20 does not have it.
    let resolveClosed!: (info: CloseInfo) => void;
    this.closed = new Promise<CloseInfo>((resolve) => resolveClosed = resolve);
    this.#resolveClosed = resolveClosed;
    this.messages = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const message = await this.#nextMessage();
          if (message) controller.enqueue(message);
          else controller.close();
        } catch (e) {
          if (this.#finished) controller.close();
          else {
            this.#finish({ code: 1006, reason: "" });
            controller.error(e);
          }
        }
      },
      cancel: () => {
        this.#finish({ code: 1006, reason: "" });
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Sends one binary message.
   *
   * @param data The payload.
   */
  async send(data: Uint8Array): Promise<void> {
    if (this.#closeSent || this.#finished) {
      throw new Error("The WebSocket is closed: nothing more can be sent");
    }
    await this.#writer.write(encodeFrame(0x2, data));
  }

  /**
   * Sends a close frame (once) and closes the socket.
   *
   * @param code The close code. Default 1000 (normal closure).
   */
  async close(code = 1000): Promise<void> {
    if (!this.#closeSent && !this.#finished) {
      this.#closeSent = true;
      const payload = new Uint8Array([code >> 8, code & 0xff]);
      await this.#writer.write(encodeFrame(0x8, payload)).catch(() => {});
    }
    this.#finish({ code: 1005, reason: "" });
  }

  #finish(info: CloseInfo): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#socket.close();
    this.#reader.cancel();
    this.#writer.abort().catch(() => {});
    this.#resolveClosed(info);
  }

  /** Reads frames until one data message is complete; undefined once the peer closed. */
  async #nextMessage(): Promise<Uint8Array | undefined> {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      if (this.#finished) return undefined;
      const frame = await this.#reader.readFrame();
      if (frame === undefined) {
        this.#finish({ code: 1006, reason: "" });
        if (parts.length) throw new Error("The WebSocket ended in the middle of a message");
        return undefined;
      }
      if (frame.opcode === 0x8) {
        const code = frame.payload.length >= 2 ? (frame.payload[0] << 8) | frame.payload[1] : 1005;
        const reason = new TextDecoder().decode(frame.payload.subarray(2));
        if (!this.#closeSent) {
          this.#closeSent = true;
          await this.#writer.write(encodeFrame(0x8, frame.payload.subarray(0, 2))).catch(() => {});
        }
        this.#finish({ code, reason });
        return undefined;
      }
      if (frame.opcode === 0x9) {
        if (!this.#closeSent) {
          await this.#writer.write(encodeFrame(0xa, frame.payload)).catch(() => {});
        }
        continue;
      }
      if (frame.opcode === 0xa) continue;
      if (frame.opcode !== 0x0 && frame.opcode !== 0x1 && frame.opcode !== 0x2) {
        throw new Error(
          `The server sent a WebSocket frame with the unknown opcode ${frame.opcode}`,
        );
      }
      size += frame.payload.length;
      if (size > MAX_MESSAGE) {
        throw new Error(`The server sent a WebSocket message larger than ${MAX_MESSAGE} bytes`);
      }
      parts.push(frame.payload);
      if (frame.fin) return parts.length === 1 ? parts[0] : concat(parts, size);
    }
  }
}

/**
 * Encodes one masked client frame.
 *
 * @param opcode The frame opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
 * @param payload The payload.
 * @returns The frame bytes.
 */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(headerLength + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, headerLength);
  const offset = headerLength + 4;
  for (let i = 0; i < length; i++) frame[offset + i] = payload[i] ^ mask[i & 3];
  return frame;
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** Reads exact byte counts, HTTP heads and WebSocket frames from a stream reader. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #length = 0;
  #cancelled = false;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    await this.#reader.cancel().catch(() => {});
  }

  /** Buffers at least `n` bytes; false at the end of the stream. */
  async #ensure(n: number): Promise<boolean> {
    while (this.#length < n) {
      const { done, value } = await this.#reader.read();
      if (done) return false;
      if (value.length === 0) continue;
      this.#chunks.push(value);
      this.#length += value.length;
    }
    return true;
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let offset = 0;
      while (offset < n) {
        const chunk = this.#chunks[0];
        const count = Math.min(chunk.length, n - offset);
        out.set(chunk.subarray(0, count), offset);
        offset += count;
        if (count === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(count);
      }
    }
    this.#length -= n;
    return out;
  }

  async readExact(n: number): Promise<Uint8Array | undefined> {
    if (n === 0) return new Uint8Array(0);
    return await this.#ensure(n) ? this.#take(n) : undefined;
  }

  /** Reads a response head; undefined when the stream ends before any byte. */
  async readHead(): Promise<Omit<RefusedUpgrade, "body"> | undefined> {
    // Byte-wise up to the blank line, so that frame bytes after it stay untouched.
    const head: number[] = [];
    for (;;) {
      const byte = await this.readExact(1);
      if (!byte) {
        if (head.length === 0) return undefined;
        throw new Error("The server closed the connection in the middle of its response head");
      }
      head.push(byte[0]);
      const n = head.length;
      if (
        n >= 4 && head[n - 1] === 0x0a && head[n - 2] === 0x0d && head[n - 3] === 0x0a &&
        head[n - 4] === 0x0d
      ) {
        return parseHead(String.fromCharCode(...head.slice(0, n - 4)));
      }
      if (n > MAX_HEAD) throw new Error("The server sent a response head over 64 KiB");
    }
  }

  /** Reads a (non-101) response body: Content-Length, chunked, or up to the end (64 KiB max). */
  async readBody(headers: Headers): Promise<string> {
    const decoder = new TextDecoder();
    const length = headers.get("content-length");
    if (length !== null) {
      const n = Math.min(Number(length), MAX_ERROR_BODY);
      if (!(await this.#ensure(n))) return decoder.decode(this.#take(this.#length));
      return decoder.decode(this.#take(n));
    }
    if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
      // The server chooses the chunk sizes: read at most what is left of the 64 KiB, never a
      // whole chunk of a size it announced (a chunk of 2 GiB must not be buffered first).
      let body = "";
      let left = MAX_ERROR_BODY;
      for (;;) {
        const line = await this.#readLine();
        if (line === undefined) return body;
        const size = parseInt(line, 16);
        if (!(size > 0)) return body;
        const take = Math.min(size, left);
        const chunk = await this.readExact(take);
        if (!chunk) return body + decoder.decode(this.#take(this.#length));
        body += decoder.decode(chunk, { stream: true });
        left -= take;
        if (left === 0) return body;
        await this.#readLine();
      }
    }
    let body = "";
    while (body.length < MAX_ERROR_BODY && await this.#ensure(1)) {
      body += decoder.decode(this.#take(this.#length));
    }
    return body;
  }

  async #readLine(): Promise<string | undefined> {
    let line = "";
    for (;;) {
      const byte = await this.readExact(1);
      if (!byte) return undefined;
      if (byte[0] === 0x0a) return line.replace(/\r$/, "");
      // A chunk-size line is a few hex digits (and rare extensions): a longer one is not HTTP.
      if (line.length >= 1024) return undefined;
      line += String.fromCharCode(byte[0]);
      if (line.length > 1024) return line;
    }
  }

  /** Reads one frame; undefined at a clean end of the stream between frames. */
  async readFrame(): Promise<Frame | undefined> {
    const header = await this.readExact(2);
    if (!header) return undefined;
    const fin = (header[0] & 0x80) !== 0;
    const opcode = header[0] & 0x0f;
    const masked = (header[1] & 0x80) !== 0;
    let length = header[1] & 0x7f;
    if (length === 126) {
      const ext = await this.#need(2);
      length = (ext[0] << 8) | ext[1];
    } else if (length === 127) {
      const ext = await this.#need(8);
      const big = new DataView(ext.buffer, ext.byteOffset, 8).getBigUint64(0);
      if (big > BigInt(MAX_MESSAGE)) {
        throw new Error(`The server sent a WebSocket frame larger than ${MAX_MESSAGE} bytes`);
      }
      length = Number(big);
    }
    const mask = masked ? await this.#need(4) : undefined;
    const payload = await this.#need(length);
    if (mask) {
      // Servers must not mask; unmask anyway rather than fail.
      const copy = new Uint8Array(payload);
      for (let i = 0; i < copy.length; i++) copy[i] ^= mask[i & 3];
      return { fin, opcode, payload: copy };
    }
    return { fin, opcode, payload };
  }

  async #need(n: number): Promise<Uint8Array> {
    const bytes = await this.readExact(n);
    if (!bytes) throw new Error("The WebSocket connection ended in the middle of a frame");
    return bytes;
  }
}

function parseHead(text: string): Omit<RefusedUpgrade, "body"> {
  const [statusLine, ...lines] = text.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
  if (!match) {
    throw new Error(
      `The server did not answer the WebSocket upgrade with HTTP/1.1: ${
        JSON.stringify(statusLine.slice(0, 100))
      }`,
    );
  }
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(match[1]), statusText: match[2], headers };
}
