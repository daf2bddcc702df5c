// A hostile API server for tests: in front of an honest server (a FakeApiServer), it answers a
// seeded random share of the requests the way a broken proxy, a cut connection or an attacker
// would. Re-exported from mod.ts, where the class is documented.

import { Client, type ClientOptions } from "../client.ts";
import { Config, type Credentials } from "../config.ts";

/**
 * The hostile answers of a {@linkcode HostileApiServer}. Those marked (watch) only answer watch
 * requests (a slowloris or an endless body on a plain GET would wait for the caller's signal,
 * which the client documents: no whole-request timeout).
 */
export type HostileKind =
  /** The honest answer cut at a random byte (a list, an object, a watch stream). */
  | "truncate"
  /** The honest answer with bytes that are not UTF-8 (0xFF, a lone continuation byte). */
  | "invalid-utf8"
  /** `200` with an HTML page (a captive portal, a proxy's error page). */
  | "wrong-content-type"
  /** `200` with random bytes, as JSON or as protobuf. */
  | "random-bytes"
  /** A protobuf Content-Type over a JSON body, or protobuf frames in the middle of JSON lines. */
  | "swap-format"
  /** `302` to the same URL (a redirect loop). */
  | "redirect-loop"
  /** `307` to another origin. */
  | "cross-origin-redirect"
  /** The honest answer with a 1 MiB header and a 64 KiB `Warning`. */
  | "huge-headers"
  /** `429` or `503` with a `Retry-After` of years, negative, an HTTP date in 9999, or garbage. */
  | "retry-after"
  /** `401`, `403` or `500` whose `Status` message, text body and `Warning` echo the request's
   * `Authorization` header. */
  | "echo-credentials"
  /** `500` with a 4 MiB body. */
  | "huge-error-body"
  /** (watch) A line without a newline, forever. */
  | "endless-line"
  /** (watch) A protobuf frame announcing 48 MiB, then bytes forever. */
  | "endless-frame"
  /** (watch) A protobuf frame announcing 4 GiB. */
  | "absurd-length"
  /** (watch) One byte, then nothing: the client's inactivity timeout must end it. */
  | "slowloris";

/** Every {@linkcode HostileKind}. */
export const HOSTILE_KINDS: readonly HostileKind[] = [
  "truncate",
  "invalid-utf8",
  "wrong-content-type",
  "random-bytes",
  "swap-format",
  "redirect-loop",
  "cross-origin-redirect",
  "huge-headers",
  "retry-after",
  "echo-credentials",
  "huge-error-body",
  "endless-line",
  "endless-frame",
  "absurd-length",
  "slowloris",
];

const WATCH_ONLY = new Set<HostileKind>([
  "endless-line",
  "endless-frame",
  "absurd-length",
  "slowloris",
]);

/** What a {@linkcode HostileApiServer} needs of the honest server behind it. */
export interface HonestServer {
  /** Answers a request (FakeApiServer's `fetch`). */
  fetch(input: Request | URL | string, init?: RequestInit): Promise<Response>;
  /** The base URL of the honest server. */
  readonly url: string;
}

/** Options of a {@linkcode HostileApiServer}. */
export interface HostileOptions {
  /** The seed of the random choices (same seed, same requests: same answers). */
  seed: number;
  /** The share of requests answered with hostility, 0 to 1. Default 0.3. */
  rate?: number;
  /** The kinds to choose from. Default every kind. */
  kinds?: readonly HostileKind[];
  /**
   * The most answers of each costly kind (`endless-line`, `endless-frame`, `huge-error-body`)
   * per server: each makes the client read tens of MiB. Default 1.
   */
  maxCostly?: number;
}

const COSTLY = new Set<HostileKind>(["endless-line", "endless-frame", "huge-error-body"]);

const encoder = new TextEncoder();

/** A small seeded PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stream that calls `pull` for each chunk until it returns undefined or is cancelled. */
function pulled(
  pull: () => Uint8Array | undefined | Promise<Uint8Array | undefined>,
  onCancel?: () => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = await pull();
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
    cancel() {
      onCancel?.();
    },
  }, { highWaterMark: 0 });
}

/**
 * A hostile API server for tests. It stands in front of an honest server (a
 * `FakeApiServer`) and answers a seeded random share of the requests with one of the
 * {@linkcode HostileKind}s: truncations at any byte, endless lines and frames, absurd lengths,
 * invalid UTF-8, wrong content types, a slowloris, redirect loops, JSON and protobuf swapped
 * mid-stream, huge headers, `Retry-After` of years or negative, and answers that echo the
 * credentials back. The rest is answered honestly. {@linkcode HostileApiServer.prototype.calm}
 * stops the hostility, so that a test can check that every loop recovers.
 *
 * @example A Reflector must survive it
 * ```ts
 * import { Api, Reflector } from "@denokube/kube";
 * import { FakeApiServer, HostileApiServer } from "@denokube/kube/testing";
 *
 * await using server = new FakeApiServer();
 * const hostile = new HostileApiServer(server, { seed: 7 });
 * const client = hostile.client({ maxRetries: 1 });
 * const reflector = new Reflector(client, Api.v1ConfigMap().within("default"), {
 *   inactivityTimeoutMs: 500,
 * });
 * const stop = new AbortController();
 * const run = reflector.run(stop.signal).catch((e) => e);
 * await new Promise((r) => setTimeout(r, 200));
 * hostile.calm();
 * stop.abort();
 * await run;
 * console.log(hostile.answered); // e.g. { truncate: 1, "retry-after": 2 }
 * ```
 */
export class HostileApiServer {
  #honest: HonestServer;
  #random: () => number;
  #rate: number;
  #kinds: readonly HostileKind[];
  #maxCostly: number;
  #calm = false;
  #answered: Partial<Record<HostileKind, number>> = {};
  #requests = 0;
  #streamBytes: number[] = [];

  /**
   * Creates a hostile server in front of `honest`.
   *
   * @param honest The honest server (a `FakeApiServer`).
   * @param options The seed, the rate and the kinds.
   */
  constructor(honest: HonestServer, options: HostileOptions) {
    this.#honest = honest;
    this.#random = prng(options.seed);
    this.#rate = options.rate ?? 0.3;
    this.#kinds = options.kinds ?? HOSTILE_KINDS;
    this.#maxCostly = options.maxCostly ?? 1;
    this.fetch = this.fetch.bind(this);
  }

  /** How many requests it was asked. */
  get requests(): number {
    return this.#requests;
  }

  /** How many hostile answers of each kind it gave. */
  get answered(): Readonly<Partial<Record<HostileKind, number>>> {
    return { ...this.#answered };
  }

  /** The most bytes the client read of one hostile stream before it gave up on it. */
  get maxStreamBytes(): number {
    return this.#streamBytes.reduce((a, b) => Math.max(a, b), 0);
  }

  /** Stops the hostility: every later request is answered honestly. */
  calm(): void {
    this.#calm = true;
  }

  /**
   * A {@linkcode Client} that talks to this server, with `credentials` (to check that none of
   * them leaks).
   *
   * @param options Client options (`fetch` is this server's).
   * @param credentials The credentials the client sends.
   * @returns The client.
   */
  client(options: ClientOptions = {}, credentials: Credentials = {}): Client {
    const config = new Config({
      cluster: {
        server: this.#honest.url,
        insecureSkipTlsVerify: false,
        disableCompression: false,
      },
      namespace: "default",
      credentials,
    });
    return new Client(config, { ...options, fetch: this.fetch });
  }

  /**
   * A `fetch`-compatible function: the honest answer, or a hostile one.
   *
   * @param input The URL or request.
   * @param init The request options.
   * @returns The response.
   */
  async fetch(input: Request | URL | string, init?: RequestInit): Promise<Response> {
    this.#requests++;
    const url = new URL(input instanceof Request ? input.url : String(input));
    const watch = url.searchParams.get("watch") === "1" || url.searchParams.get("watch") === "true";
    const kind = this.#pick(watch);
    if (kind === undefined) return await this.#honest.fetch(input, init);
    this.#answered[kind] = (this.#answered[kind] ?? 0) + 1;
    const headers = new Headers(init?.headers);
    return await this.#answer(kind, url, watch, headers, input, init);
  }

  #pick(watch: boolean): HostileKind | undefined {
    if (this.#calm || this.#random() >= this.#rate) return undefined;
    const kinds = this.#kinds.filter((k) =>
      (watch || !WATCH_ONLY.has(k)) &&
      !(COSTLY.has(k) && (this.#answered[k] ?? 0) >= this.#maxCostly)
    );
    if (kinds.length === 0) return undefined;
    // Watches are few next to other requests: half of their hostile answers are the kinds only a
    // stream can have.
    const streamKinds = kinds.filter((k) => WATCH_ONLY.has(k));
    const from = watch && streamKinds.length > 0 && this.#random() < 0.5 ? streamKinds : kinds;
    return from[Math.floor(this.#random() * from.length)];
  }

  #int(max: number): number {
    return Math.floor(this.#random() * max);
  }

  /** Counts what the client reads of a hostile stream. */
  #counted(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const index = this.#streamBytes.push(0) - 1;
    const reader = stream.getReader();
    return pulled(async () => {
      const { done, value } = await reader.read();
      if (done) return undefined;
      this.#streamBytes[index] += value.length;
      return value;
    }, () => void reader.cancel().catch(() => {}));
  }

  async #answer(
    kind: HostileKind,
    url: URL,
    watch: boolean,
    headers: Headers,
    input: Request | URL | string,
    init: RequestInit | undefined,
  ): Promise<Response> {
    const json = { "content-type": "application/json" };
    const protobufStream = {
      "content-type": "application/vnd.kubernetes.protobuf;stream=watch",
    };
    switch (kind) {
      case "truncate":
      case "invalid-utf8":
      case "swap-format":
      case "huge-headers":
        return await this.#distort(kind, watch, input, init);
      case "wrong-content-type":
        return new Response("<html><body><h1>502 Bad Gateway</h1></body></html>\n", {
          status: 200,
          headers: { "content-type": "text/html" },
        });
      case "random-bytes": {
        const bytes = new Uint8Array(this.#int(8192));
        for (let i = 0; i < bytes.length; i++) bytes[i] = this.#int(256);
        const type = this.#random() < 0.5
          ? (watch ? protobufStream["content-type"] : "application/vnd.kubernetes.protobuf")
          : "application/json";
        return new Response(bytes, { status: 200, headers: { "content-type": type } });
      }
      case "redirect-loop":
        return new Response(null, { status: 302, headers: { location: url.href } });
      case "cross-origin-redirect":
        return new Response(null, {
          status: 307,
          headers: { location: `http://attacker.invalid${url.pathname}${url.search}` },
        });
      case "retry-after": {
        const values = ["99999999999", "-5", "Fri, 31 Dec 9999 23:59:59 GMT", "NaN", "1e400", "0"];
        return new Response("slow down", {
          status: this.#random() < 0.5 ? 429 : 503,
          headers: { "retry-after": values[this.#int(values.length)] },
        });
      }
      case "echo-credentials": {
        const auth = headers.get("authorization") ?? "(none)";
        const code = [401, 403, 500][this.#int(3)];
        const warning = `299 - "rejected ${auth}"`;
        if (this.#random() < 0.5) {
          return new Response(`credentials ${auth} refused`, {
            status: code,
            headers: { "content-type": "text/plain", warning },
          });
        }
        const status = {
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          code,
          reason: code === 500 ? "InternalError" : code === 401 ? "Unauthorized" : "Forbidden",
          message: `the credentials ${auth} were refused`,
        };
        return new Response(JSON.stringify(status), {
          status: code,
          headers: { ...json, warning },
        });
      }
      case "huge-error-body": {
        const chunk = encoder.encode("E".repeat(64 * 1024));
        let left = 64;
        return new Response(
          this.#counted(pulled(() => left-- > 0 ? chunk : undefined)),
          { status: 500, headers: { "content-type": "text/plain" } },
        );
      }
      case "endless-line": {
        const chunk = encoder.encode("x".repeat(1024 * 1024));
        return new Response(this.#counted(pulled(() => chunk)), { status: 200, headers: json });
      }
      case "endless-frame": {
        const size = 48 * 1024 * 1024;
        const header = new Uint8Array([size >>> 24, (size >>> 16) & 255, (size >>> 8) & 255, 0]);
        const chunk = new Uint8Array(1024 * 1024).fill(0x0a);
        let first = true;
        return new Response(
          this.#counted(pulled(() => {
            if (!first) return chunk;
            first = false;
            return header;
          })),
          { status: 200, headers: protobufStream },
        );
      }
      case "absurd-length":
        return new Response(new Uint8Array([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]), {
          status: 200,
          headers: protobufStream,
        });
      case "slowloris": {
        let sent = false;
        let wake: (() => void) | undefined;
        const signal = init?.signal ?? undefined;
        return new Response(
          pulled(async () => {
            if (!sent) {
              sent = true;
              return encoder.encode("{");
            }
            // Nothing more, ever: until the client cancels the body or aborts.
            await new Promise<void>((resolve) => {
              wake = resolve;
              signal?.addEventListener("abort", () => resolve(), { once: true });
            });
            return undefined;
          }, () => wake?.()),
          { status: 200, headers: json },
        );
      }
    }
  }

  /** The honest answer, distorted. */
  async #distort(
    kind: HostileKind,
    watch: boolean,
    input: Request | URL | string,
    init: RequestInit | undefined,
  ): Promise<Response> {
    const honest = await this.#honest.fetch(input, init);
    const headers = new Headers(honest.headers);
    if (kind === "huge-headers") {
      headers.set("x-junk", "j".repeat(1024 * 1024));
      headers.set("warning", `299 - "${"w".repeat(64 * 1024)}"`);
      return new Response(honest.body, { status: honest.status, headers });
    }
    if (kind === "swap-format" && !watch) {
      headers.set("content-type", "application/vnd.kubernetes.protobuf");
      return new Response(honest.body, { status: honest.status, headers });
    }
    if (!honest.body) return honest;
    const reader = honest.body.getReader();
    let budget = kind === "truncate" ? this.#int(watch ? 4096 : 2048) : Infinity;
    let chunks = 0;
    const corrupt = (chunk: Uint8Array): Uint8Array => {
      const copy = chunk.slice();
      for (let i = 0; i < 3; i++) copy[this.#int(copy.length)] = this.#random() < 0.5 ? 0xff : 0x80;
      return copy;
    };
    // A protobuf frame (4-byte length, then bytes) where a JSON line should be.
    const frame = new Uint8Array([0, 0, 0, 6, 0x6b, 0x38, 0x73, 0, 0x0a, 0x00, 0x0a]);
    const body = pulled(async () => {
      if (budget <= 0) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      const { done, value } = await reader.read();
      if (done) return undefined;
      chunks++;
      let out: Uint8Array = value;
      if (out.length > budget) out = out.subarray(0, budget);
      budget -= out.length;
      if (kind === "invalid-utf8" && chunks === 1 && out.length > 0) out = corrupt(out);
      if (kind === "swap-format" && chunks === 2) {
        const mixed = new Uint8Array(frame.length + out.length);
        mixed.set(frame);
        mixed.set(out, frame.length);
        out = mixed;
      }
      return out;
    }, () => void reader.cancel().catch(() => {}));
    if (kind === "swap-format") headers.set("content-type", "application/json");
    return new Response(body, { status: honest.status, headers });
  }
}
