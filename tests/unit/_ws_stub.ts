// A local WebSocket server that speaks the Kubernetes channel protocol, for the exec, attach and
// port-forward unit tests. Each connection runs a handler with the upgrade request; the frames it
// sends are the ones the API server sends (see exec.test.ts for where they come from).

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

const encoder = new TextEncoder();

/** The stub server. */
export class WsStub implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #answers: StubAnswer[] = [];
  /** Every upgrade request (URL and a copy of the headers), in order. */
  readonly requests: { url: string; headers: Headers }[] = [];
  readonly #handlers = new Set<Promise<void>>();
  /** Errors thrown by handlers (asserted empty by tests). */
  readonly errors: unknown[] = [];

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
  }

  /** The server's URL. */
  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The port. */
  get port(): number {
    return this.#server.addr.port;
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

  #handle(request: Request): Response {
    this.requests.push({ url: request.url, headers: new Headers(request.headers) });
    const answer = this.#answers.shift();
    if (!answer) return new Response("unscripted", { status: 500 });
    if (answer instanceof Response) return answer;
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) =>
      p.trim()
    );
    const protocol = typeof answer === "function" ? offered[0] : answer.protocol;
    const handler = typeof answer === "function" ? answer : answer.handler;
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
    socket.binaryType = "arraybuffer";
    const queue: (Uint8Array | undefined)[] = [];
    const waiting: ((value: Uint8Array | undefined) => void)[] = [];
    let ended = false;
    const push = (value: Uint8Array | undefined) => {
      if (value === undefined) ended = true;
      const resolve = waiting.shift();
      if (resolve) resolve(value);
      else queue.push(value);
    };
    socket.onmessage = (event) => {
      push(
        event.data instanceof ArrayBuffer
          ? new Uint8Array(event.data)
          : encoder.encode(String(event.data)),
      );
    };
    socket.onclose = () => push(undefined);
    socket.onerror = () => {};
    const opened = new Promise<void>((resolve) => socket.onopen = () => resolve());
    const stub: StubSocket = {
      request,
      protocol,
      send(channel, payload) {
        const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
        const message = new Uint8Array(bytes.length + 1);
        message[0] = channel;
        message.set(bytes, 1);
        socket.send(message);
      },
      sendRaw(bytes) {
        socket.send(bytes);
      },
      next() {
        if (queue.length) return Promise.resolve(queue.shift());
        if (ended) return Promise.resolve(undefined);
        return new Promise((resolve) => waiting.push(resolve));
      },
      close(code = 1000) {
        if (socket.readyState === WebSocket.OPEN) socket.close(code);
      },
    };
    const task = (async () => {
      await opened;
      try {
        await handler(stub);
      } catch (e) {
        this.errors.push(e);
      }
      stub.close();
      // Wait for the close handshake so that no resource outlives the test.
      while (await stub.next() !== undefined) { /* drain */ }
    })();
    this.#handlers.add(task);
    return response;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.settle();
    await this.#server.shutdown();
  }
}

/** A Kubernetes `Status` as JSON. */
export function statusJson(status: Record<string, unknown>): string {
  return JSON.stringify({ metadata: {}, ...status });
}
