// A small scriptable stub `fetch` for fault injection in the watch, informer and reflector tests.
// Each request takes the next responder of the script; watch requests past the end of the script
// get a stream that stays open (until cancelled or aborted), anything else fails the test.

import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import type { KubeObject } from "../../api.ts";
import { compactRun } from "./_helpers.ts";
import { protobufFetch } from "./_protobuf_wire.ts";

/** What a responder sees of a request. */
export interface StubRequest {
  url: URL;
  method: string;
  query: URLSearchParams;
  watch: boolean;
  signal: AbortSignal | undefined;
}

/** Produces the response to one request (or throws, like a refused connection). */
export type Responder = (request: StubRequest, stub: StubServer) => Response | Promise<Response>;

/** One chunk of a stub stream: text (UTF-8 encoded) or raw bytes. */
export type Chunk = string | Uint8Array;

/** Options of a stub stream. */
export interface StreamOptions {
  /** Keep the stream open after the chunks (until cancelled or aborted). */
  hang?: boolean;
  /** Headers of the response. */
  headers?: Record<string, string>;
}

const encoder = new TextEncoder();

/** A scriptable stub API server. */
export class StubServer {
  /** Every request, in order. */
  readonly requests: StubRequest[] = [];
  /** How many stream bodies were cancelled by the reader. */
  cancelled = 0;
  /** How many stream bodies were errored by an aborted request signal. */
  aborted = 0;
  /** Stream bodies neither finished, cancelled nor aborted. */
  open = 0;
  #script: Responder[] = [];

  /**
   * Appends responders to the script.
   *
   * @param responders In the order of the requests they answer.
   * @returns This stub.
   */
  push(...responders: Responder[]): this {
    this.#script.push(...responders);
    return this;
  }

  /** How many scripted responders are left. */
  get remaining(): number {
    return this.#script.length;
  }

  /** The `fetch` to give to the client. */
  fetch = async (input: Request | URL | string, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const signal = init?.signal ?? undefined;
    const request: StubRequest = {
      url,
      method: init?.method ?? "GET",
      query: url.searchParams,
      watch: url.searchParams.get("watch") === "1" || url.searchParams.get("watch") === "true",
      signal,
    };
    this.requests.push(request);
    signal?.throwIfAborted();
    const responder = this.#script.shift();
    if (responder) return await responder(request, this);
    if (request.watch) return this.stream(request, [], { hang: true });
    throw new Error(`Unscripted request: ${request.method} ${url.pathname}${url.search}`);
  };

  /**
   * A client that talks to this stub.
   *
   * @returns The client.
   */
  client(): Client {
    const config = new Config({
      cluster: {
        server: "https://stub.invalid:6443",
        insecureSkipTlsVerify: false,
        disableCompression: false,
      },
    });
    // With the compact store the answers are protobuf, as the API server's (_protobuf_wire.ts).
    const fetch = compactRun() ? protobufFetch(this.fetch) : this.fetch;
    return new Client(config, { fetch, retryBaseMs: 1, retryMaxMs: 2 });
  }

  /**
   * A 200 response whose body yields the chunks one read at a time, tracked for cancellation.
   *
   * @param request The request (its signal errors the body when it aborts).
   * @param chunks The chunks.
   * @param options Hang after the chunks, headers.
   * @returns The response.
   */
  stream(request: StubRequest, chunks: Chunk[], options: StreamOptions = {}): Response {
    this.open++;
    let finished = false;
    const finish = () => {
      if (finished) return false;
      finished = true;
      this.open--;
      return true;
    };
    const signal = request.signal;
    let onAbort: (() => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        for (const chunk of chunks) {
          controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
        }
        if (!options.hang) {
          controller.close();
          finish();
          return;
        }
        onAbort = () => {
          if (finish()) {
            this.aborted++;
            controller.error(signal!.reason);
          }
        };
        signal?.addEventListener("abort", onAbort, { once: true });
      },
      cancel: () => {
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        if (finish()) this.cancelled++;
      },
    });
    return new Response(body, { status: 200, headers: options.headers });
  }
}

/**
 * Answers with a stream of watch events (objects serialised one per line).
 *
 * @param events Events, or raw chunks (strings or bytes) sent as they are.
 * @param options Hang after the chunks.
 * @returns The responder.
 */
export function events(events: (object | Chunk)[], options: StreamOptions = {}): Responder {
  const chunks = events.map((e) =>
    typeof e === "string" || e instanceof Uint8Array ? e : JSON.stringify(e) + "\n"
  );
  return (request, stub) => stub.stream(request, chunks, options);
}

/**
 * Answers with an HTTP error.
 *
 * @param code The status code.
 * @param body A `Status` object, or plain text.
 * @param headers Response headers.
 * @returns The responder.
 */
export function status(
  code: number,
  body?: object | string,
  headers: Record<string, string> = {},
): Responder {
  return () =>
    new Response(typeof body === "string" ? body : JSON.stringify(body ?? {}), {
      status: code,
      headers,
    });
}

/**
 * Answers with a list.
 *
 * @param items The items.
 * @param resourceVersion The list's resource version.
 * @param next The continue token.
 * @returns The responder.
 */
export function list(items: KubeObject[], resourceVersion: string, next?: string): Responder {
  return () =>
    Response.json({
      kind: "List",
      apiVersion: "v1",
      metadata: { resourceVersion, ...(next ? { continue: next } : {}) },
      items,
    });
}

/**
 * Throws like a refused connection.
 *
 * @returns The responder.
 */
export function refused(): Responder {
  return () =>
    Promise.reject(new TypeError("error sending request: Connection refused (os error 111)"));
}

/**
 * A ConfigMap.
 *
 * @param name Name.
 * @param resourceVersion Resource version.
 * @param namespace Namespace.
 * @returns The object.
 */
export function cm(name: string, resourceVersion: string, namespace = "default"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace, resourceVersion },
  };
}

/**
 * A watch event.
 *
 * @param type The event type.
 * @param object The object.
 * @returns The event.
 */
export function ev(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): object {
  return { type, object };
}

/**
 * A BOOKMARK event.
 *
 * @param resourceVersion Its resource version.
 * @param initialEventsEnd Whether it ends the initial events.
 * @returns The event.
 */
export function bookmark(resourceVersion: string, initialEventsEnd = false): object {
  return {
    type: "BOOKMARK",
    object: {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: {
        resourceVersion,
        ...(initialEventsEnd ? { annotations: { "k8s.io/initial-events-end": "true" } } : {}),
      },
    },
  };
}

/**
 * An ERROR event carrying a `Status`.
 *
 * @param code The code.
 * @param reason The reason.
 * @param message The message.
 * @returns The event.
 */
export function errorEvent(code: number, reason: string, message = reason): object {
  return {
    type: "ERROR",
    object: { kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message },
  };
}

/** Records the delays a loop asked to sleep, and sleeps for none of them. */
export class Sleeps {
  /** The delays, in milliseconds. */
  readonly delays: number[] = [];
  /** The injectable sleep. */
  sleep = (ms: number, signal?: AbortSignal): Promise<void> => {
    this.delays.push(ms);
    signal?.throwIfAborted();
    return Promise.resolve();
  };
}
