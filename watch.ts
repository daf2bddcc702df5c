/**
 * {@linkcode watch}: one watch request on a collection, as an async iterator of typed
 * {@linkcode WatchEvent}s parsed from the server's line-delimited JSON stream.
 *
 * `watch` is the raw building block: it ends when the server closes the stream and does not
 * re-connect. {@linkcode Informer} and {@linkcode Reflector} add the recovery rules (re-watch,
 * backoff, re-list after `410 Expired`).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "./api.ts";
import { ApiError, type Status } from "./errors.ts";
import { ChunkReader, LineDecoder } from "./_client/lines.ts";
import { redactText } from "./_client/redact.ts";
import { acceptFor, isProtobuf, PROTOBUF_ACCEPT } from "./_client/protobuf/negotiate.ts";
import {
  decodeWatchEvent,
  decodeWatchEventCompact,
  type RawWatchEvent,
} from "./_client/protobuf/decode.ts";
import { FrameDecoder } from "./_client/protobuf/frames.ts";
import type { Transport } from "./_client/transport.ts";

const log = getLogger(["kube", "watch"]);

/** The annotation the API server puts on the bookmark that ends the initial events of a watch list. */
export const INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end";

/** The `reason` of the {@linkcode ApiError} thrown for a line that is not a watch event. */
export const MALFORMED_WATCH_EVENT = "MalformedWatchEvent";

/** The `reason` of the {@linkcode ApiError} thrown when a watch stream stops sending data. */
export const WATCH_STALLED = "WatchStalled";

/** How long past the server's `timeoutSeconds` a silent stream is tolerated. */
const DEFAULT_INACTIVITY_MARGIN_MS = 30_000;

/** The longest a watch without `timeoutSeconds` may stay silent (plus the margin). */
const DEFAULT_SILENCE_MS = 300_000;

/** How many characters of the start of a bad line an error message shows (redacted): enough to
 * tell an HTML error page or a proxy's text from JSON, too few to carry an object's data. */
const QUOTE_CHARS = 16;

/** The type of a {@linkcode WatchEvent}. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** An object was added, modified or deleted. `object` is its new (or, for DELETED, final) state. */
export interface ObjectWatchEvent<T extends KubeObject> {
  /** What happened. */
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** The object. */
  object: T;
}

/**
 * A progress marker: every change up to `resourceVersion` has been sent. The object carries only
 * `apiVersion`, `kind` and `metadata` (`resourceVersion`, annotations).
 */
export interface BookmarkWatchEvent {
  /** Always `BOOKMARK`. */
  type: "BOOKMARK";
  /** The resource version to resume watching from. */
  resourceVersion: string;
  /**
   * True on the bookmark that ends the initial events of a watch list (`sendInitialEvents`), the
   * one annotated `k8s.io/initial-events-end: "true"`.
   */
  initialEventsEnd: boolean;
  /** The bookmark object as sent (metadata only). */
  object: KubeObject;
}

/**
 * The server reported an error inside the stream (it closes the stream afterwards). Check
 * `error.expired` for `410 Expired`/`Gone`: the resource version is too old and the caller must
 * list again.
 */
export interface ErrorWatchEvent {
  /** Always `ERROR`. */
  type: "ERROR";
  /** The error, built from the `Status`. */
  error: ApiError;
  /** The `Status` object as sent. */
  object: Status;
}

/** One event of a watch stream, discriminated on `type`. */
export type WatchEvent<T extends KubeObject = KubeObject> =
  | ObjectWatchEvent<T>
  | BookmarkWatchEvent
  | ErrorWatchEvent;

/**
 * Tells whether an event is about an object (ADDED, MODIFIED or DELETED), as opposed to a
 * BOOKMARK or an ERROR.
 *
 * @param event A watch event.
 * @returns True for ADDED, MODIFIED and DELETED; `event.object` is then a `T`.
 *
 * @example
 * ```ts ignore
 * import { Api, Client, isObjectEvent, watch } from "@denokube/kube";
 * await using client = await Client.infer();
 * for await (const event of watch(client, Api.v1Pod())) {
 *   if (isObjectEvent(event)) console.log(event.type, event.object.metadata?.name);
 * }
 * ```
 */
export function isObjectEvent<T extends KubeObject>(
  event: WatchEvent<T>,
): event is ObjectWatchEvent<T> {
  return event.type === "ADDED" || event.type === "MODIFIED" || event.type === "DELETED";
}

const PARTIAL_METADATA_ACCEPT =
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/** Options of {@linkcode watch}. */
export interface WatchOptions {
  /**
   * Start after this resource version (opaque string). Unset: the server sends the current
   * objects as ADDED first (or, with `sendInitialEvents`, a consistent snapshot).
   */
  resourceVersion?: string;
  /** Only objects whose labels match, e.g. `app=web,tier!=db`. */
  labelSelector?: string;
  /** Only objects whose fields match, e.g. `metadata.name=web`. */
  fieldSelector?: string;
  /**
   * A KEP-5866 shard selector, e.g.
   * `shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')` (ranges joined
   * with `||`): only objects whose 64-bit FNV-1a hash of the field falls in a range. Needs the
   * `ShardedListAndWatch` feature gate (alpha in Kubernetes 1.36); a server without it ignores the
   * parameter (a list then has no `metadata.shardInfo`).
   */
  shardSelector?: string;
  /** Asks the server to end the stream after this many seconds. */
  timeoutSeconds?: number;
  /** Asks for BOOKMARK events. Default true. */
  allowWatchBookmarks?: boolean;
  /**
   * Asks for a watch list: the current objects as ADDED events, then a BOOKMARK with
   * `initialEventsEnd: true`. Sets `resourceVersionMatch=NotOlderThan` unless given.
   */
  sendInitialEvents?: boolean;
  /** `NotOlderThan` or `Exact`; only meaningful with `sendInitialEvents`. */
  resourceVersionMatch?: string;
  /** Aborts the watch; the iterator then rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Milliseconds without any byte after which the stream is considered dead and the iterator
   * throws an {@linkcode ApiError} (status 0, reason {@linkcode WATCH_STALLED}). Default:
   * `timeoutSeconds` (or 300 s when unset) plus 30 s.
   */
  inactivityTimeoutMs?: number;
  /** Whether the client retries a 429/503 answer to the watch request. Default true. */
  retry?: boolean;
  /**
   * Receive only `apiVersion`, `kind` and `metadata` of each object (`PartialObjectMetadata`):
   * much less to transfer and parse when the rest is not needed.
   */
  metadataOnly?: boolean;
}

/**
 * Watches a collection once: sends `GET <collection>?watch=1` and yields the events of the
 * stream until the server ends it.
 *
 * The body is read chunk by chunk and parsed as line-delimited JSON. A line that is not JSON, or
 * not an event object, or longer than 64 Mi characters, makes the iterator throw an
 * {@linkcode ApiError} with status 0 and reason {@linkcode MALFORMED_WATCH_EVENT} whose message
 * names the problem, the line's length and its first 16 characters (never more of it: a watch of
 * Secrets carries their data; no `cause` either, since V8's `SyntaxError` quotes the text). A
 * stream that sends no byte for longer than the inactivity timeout throws an {@linkcode ApiError}
 * with status 0 and reason {@linkcode WATCH_STALLED}; a broken connection throws an
 * {@linkcode ApiError} with status 0. No whole-request timeout is applied. `ERROR` events are
 * yielded, not thrown.
 *
 * Breaking out of `for await`, calling `return()`, or aborting `signal` cancels the response
 * body and clears the timer.
 *
 * @param client The client (any {@linkcode Transport}).
 * @param api The resource type (and namespace) to watch.
 * @param options Resource version, selectors, timeouts and an abort signal.
 * @returns An async iterator of events.
 *
 * @example Print pod changes in a namespace
 * ```ts ignore
 * import { Api, Client, watch } from "@denokube/kube";
 * await using client = await Client.infer();
 * for await (const event of watch(client, Api.v1Pod().within("default"), { timeoutSeconds: 60 })) {
 *   if (event.type === "ERROR") throw event.error;
 *   if (event.type !== "BOOKMARK") console.log(event.type, event.object.metadata?.name);
 * }
 * ```
 */
export function watch<T extends KubeObject>(
  client: Transport,
  api: Api<T>,
  options: WatchOptions = {},
): AsyncIterableIterator<WatchEvent<T>> {
  return eachEvent(watchBatches(client, api, options));
}

async function* eachEvent<T extends KubeObject>(
  batches: AsyncGenerator<WatchEvent<T>[], void, undefined>,
): AsyncGenerator<WatchEvent<T>, void, undefined> {
  for await (const batch of batches) {
    for (let i = 0; i < batch.length; i++) yield batch[i];
  }
}

/**
 * The query of a watch request.
 *
 * @param options The watch options.
 * @returns Query parameters for {@linkcode Client.prototype.request}.
 */
function watchQuery(options: WatchOptions): Record<string, string | number | undefined> {
  const query: Record<string, string | number | undefined> = {
    watch: "1",
    allowWatchBookmarks: options.allowWatchBookmarks === false ? undefined : "true",
    labelSelector: options.labelSelector || undefined,
    fieldSelector: options.fieldSelector || undefined,
    shardSelector: options.shardSelector || undefined,
    timeoutSeconds: options.timeoutSeconds,
    resourceVersion: options.resourceVersion || undefined,
    resourceVersionMatch: options.resourceVersionMatch,
  };
  if (options.sendInitialEvents) {
    query.sendInitialEvents = "true";
    query.resourceVersionMatch ??= "NotOlderThan";
  }
  return query;
}

/**
 * Internal seam: turns the bytes of a watch body into events. The JSON one splits lines; a
 * protobuf one would read length-prefixed frames. `push` and `end` append the events of the
 * frames they complete to `out` and return the error of the first malformed frame, if any (the
 * events before it are in `out`; the stream ends after them).
 */
export interface WatchDecoder<T extends KubeObject> {
  /** Feeds one chunk of the body. */
  push(chunk: Uint8Array, out: WatchEvent<T>[]): unknown;
  /** Ends the body. */
  end(out: WatchEvent<T>[]): unknown;
}

/** Internal seam: the wire format of a watch: its `Accept` header and its decoder. */
export interface WatchFormat {
  /** The `Accept` header, or undefined for the default (`application/json`). */
  accept(options: WatchOptions): string | undefined;
  /** A decoder for one response body, by the Content-Type the server answered. */
  decoder<T extends KubeObject>(url: string, contentType?: string | null): WatchDecoder<T>;
}

/** The JSON wire format: line-delimited JSON watch events. */
export const jsonWatchFormat: WatchFormat = {
  accept: (options) => options.metadataOnly ? PARTIAL_METADATA_ACCEPT : undefined,
  decoder<T extends KubeObject>(url: string): WatchDecoder<T> {
    const lines = new LineDecoder({ skipBlank: true });
    const batch: string[] = [];
    const decode = (out: WatchEvent<T>[]): unknown => {
      let error: unknown;
      for (let i = 0; i < batch.length; i++) {
        try {
          out.push(parseEvent<T>(batch[i], url));
        } catch (e) {
          error = e;
          break;
        }
      }
      batch.length = 0;
      return error;
    };
    return {
      push(chunk, out) {
        try {
          lines.push(chunk, batch);
        } catch (e) {
          // A line past the limit: the lines before it are delivered, then the error (transient,
          // as every malformed stream: the loop watches again).
          return decode(out) ?? new ApiError({
            status: 0,
            reason: MALFORMED_WATCH_EVENT,
            message: `Malformed watch event from GET ${url}: ${(e as Error).message}`,
            method: "GET",
            url,
          });
        }
        return batch.length === 0 ? undefined : decode(out);
      },
      end(out) {
        lines.end(batch);
        return batch.length === 0 ? undefined : decode(out);
      },
    };
  },
};

/**
 * The protobuf wire format (client-go's default): `Accept: application/vnd.kubernetes.protobuf,
 * application/json`; a `…protobuf;stream=watch` answer is read as length-prefixed frames of
 * WatchEvents (bytes → frames → events), a JSON answer as JSON lines.
 */
export const protobufWatchFormat: WatchFormat = protobufFormat(decodeWatchEvent);

/**
 * Internal seam: the protobuf wire format of the compact store. The objects of ADDED, MODIFIED
 * and DELETED events are `CompactObject`s (`_client/protobuf/decode.ts`: the object's bytes and
 * a decoded metadata header) instead of plain objects; a JSON answer is read as JSON lines.
 */
export const compactProtobufWatchFormat: WatchFormat = compactWatchFormat(() => false);

/**
 * Internal seam: {@linkcode compactProtobufWatchFormat} that drops `metadata.managedFields` from
 * the kept bytes when `strip()` answers true (asked once per response).
 *
 * @param strip Whether to strip, e.g. while the Reflector's transform is `stripManagedFields`.
 * @returns The format.
 */
export function compactWatchFormat(strip: () => boolean): WatchFormat {
  return {
    accept: (options) => options.metadataOnly ? PARTIAL_METADATA_ACCEPT : PROTOBUF_ACCEPT,
    decoder: <T extends KubeObject>(url: string, contentType?: string | null) => {
      const stripping = strip();
      return protobufDecoder<T>(
        stripping ? (frame) => decodeWatchEventCompact(frame, true) : decodeWatchEventCompact,
        url,
        contentType,
      );
    },
  };
}

function protobufFormat(decodeFrame: (frame: Uint8Array) => RawWatchEvent): WatchFormat {
  return {
    accept: (options) => options.metadataOnly ? PARTIAL_METADATA_ACCEPT : PROTOBUF_ACCEPT,
    decoder: <T extends KubeObject>(url: string, contentType?: string | null) =>
      protobufDecoder<T>(decodeFrame, url, contentType),
  };
}

function protobufDecoder<T extends KubeObject>(
  decodeFrame: (frame: Uint8Array) => RawWatchEvent,
  url: string,
  contentType?: string | null,
): WatchDecoder<T> {
  if (!isProtobuf(contentType ?? null)) return jsonWatchFormat.decoder<T>(url);
  const frames = new FrameDecoder();
  const batch: Uint8Array[] = [];
  const decode = (out: WatchEvent<T>[]): unknown => {
    let error: unknown;
    for (let i = 0; i < batch.length; i++) {
      try {
        out.push(protobufEvent<T>(batch[i], url, decodeFrame));
      } catch (e) {
        error = e;
        break;
      }
    }
    batch.length = 0;
    return error;
  };
  const framing = (e: unknown): ApiError =>
    new ApiError({
      status: 0,
      reason: MALFORMED_WATCH_EVENT,
      message: `Malformed watch event from GET ${url}: ${(e as Error).message}`,
      method: "GET",
      url,
      cause: e,
    });
  return {
    push(chunk, out) {
      try {
        frames.push(chunk, batch);
      } catch (e) {
        const error = decode(out);
        return error ?? framing(e);
      }
      return batch.length === 0 ? undefined : decode(out);
    },
    end(_out) {
      try {
        frames.end();
      } catch (e) {
        return framing(e);
      }
      return undefined;
    },
  };
}

/**
 * The format a watch of `api` uses on `client`: protobuf when the client's wire format is
 * protobuf and the kind has a protobuf encoding (not for metadata-only watches), else JSON.
 */
function formatFor(client: Transport, api: Api<KubeObject>, options: WatchOptions): WatchFormat {
  if (options.metadataOnly) return jsonWatchFormat;
  return acceptFor(client.wireFormat, api.apiVersion, api.kind) === undefined
    ? jsonWatchFormat
    : protobufWatchFormat;
}

/**
 * The watch itself, yielding the events of each chunk of the body together: one promise per
 * chunk (~16 pods in 64 KiB) instead of one per event. The watch loop (`_client/watcher.ts`) uses it
 * directly; {@linkcode watch} yields the events one by one. Each batch is a fresh array.
 *
 * @param client The transport.
 * @param api The resource type (and namespace) to watch.
 * @param options As for {@linkcode watch}.
 * @param format The wire format (default JSON lines).
 * @returns The batches, in order; a malformed line ends it after the events before it.
 */
export async function* watchBatches<T extends KubeObject>(
  client: Transport,
  api: Api<T>,
  options: WatchOptions,
  format: WatchFormat = formatFor(client, api as Api<KubeObject>, options),
): AsyncGenerator<WatchEvent<T>[], void, undefined> {
  const userSignal = options.signal;
  userSignal?.throwIfAborted();
  const path = api.collectionPath();
  const limitMs = options.inactivityTimeoutMs ??
    (options.timeoutSeconds ?? DEFAULT_SILENCE_MS / 1000) * 1000 + DEFAULT_INACTIVITY_MARGIN_MS;

  const controller = new AbortController();
  let reader: ChunkReader | undefined;
  let failure: unknown;
  let url = path;
  const stop = (reason: unknown) => {
    if (failure === undefined) failure = reason;
    controller.abort(reason);
    reader?.cancel(reason).catch(() => {});
  };
  const onAbort = () => stop(userSignal!.reason);
  userSignal?.addEventListener("abort", onAbort, { once: true });

  // One timer for the whole stream. Silence counts only while the watch waits for the server
  // (the request, then each read), not while the consumer handles an event. When the timer fires
  // early it re-arms for the remaining time, so a read only stores a timestamp.
  let waitingSince = performance.now();
  let waiting = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(() => {
      const silent = waiting ? performance.now() - waitingSince : 0;
      if (silent < limitMs) {
        arm(limitMs - silent);
        return;
      }
      timer = undefined;
      const seconds = Math.round(silent / 100) / 10;
      log.debug("Watch of {path} stalled: no data for {seconds} s", { path, seconds });
      stop(
        new ApiError({
          status: 0,
          reason: WATCH_STALLED,
          message: `watch stalled: no data for ${seconds} s (GET ${url})`,
          method: "GET",
          url,
        }),
      );
    }, ms);
  };
  arm(limitMs);

  try {
    let response: Response;
    try {
      response = await client.request({
        path,
        query: watchQuery(options),
        accept: format.accept(options),
        signal: controller.signal,
        retry: options.retry,
      });
    } catch (e) {
      throw failure ?? e;
    }
    url = response.url || path;
    if (!response.body) return;
    // One reused buffer for every read: the decoders copy what they keep (see ChunkReader).
    reader = new ChunkReader(response.body);
    if (failure !== undefined) throw failure;
    log.debug("Watching {path} from resourceVersion {resourceVersion}", {
      path,
      resourceVersion: options.resourceVersion ?? "",
    });

    const decoder = format.decoder<T>(url, response.headers.get("content-type"));
    for (;;) {
      let chunk: Uint8Array | undefined;
      try {
        waitingSince = performance.now();
        waiting = true;
        chunk = await reader.read();
        waiting = false;
      } catch (cause) {
        if (failure !== undefined) throw failure;
        throw new ApiError({
          status: 0,
          message: `The watch stream broke (GET ${url}): ${
            cause instanceof Error ? cause.message : String(cause)
          }`,
          method: "GET",
          url,
          cause,
        });
      }
      if (failure !== undefined) throw failure;
      const events: WatchEvent<T>[] = [];
      const malformed = chunk === undefined ? decoder.end(events) : decoder.push(chunk, events);
      // The events before a malformed line are delivered, then the error.
      if (events.length > 0) yield events;
      if (malformed !== undefined) throw malformed;
      if (chunk === undefined) return;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    userSignal?.removeEventListener("abort", onAbort);
    if (reader) {
      // Cancelling a finished stream is a no-op; for an unfinished one it releases the connection.
      await reader.cancel().catch(() => {});
    }
  }
}

/**
 * The error of a malformed line: what is wrong, the line's length and its first characters
 * (redacted). Never the rest of the line, and no `cause`: V8's `SyntaxError` message quotes the
 * text around the failure, which for a watch of Secrets is their data.
 */
function malformed(line: string, url: string, why: string): ApiError {
  const start = redactText(line.slice(0, QUOTE_CHARS));
  const quoted = `${JSON.stringify(start)}${line.length > QUOTE_CHARS ? "…" : ""}`;
  return new ApiError({
    status: 0,
    reason: MALFORMED_WATCH_EVENT,
    message: `Malformed watch event from GET ${url}: ${why} (a line of ${line.length} ` +
      `characters starting ${quoted})`,
    method: "GET",
    url,
  });
}

/**
 * Parses one line of a watch stream into an event.
 *
 * @param line The line.
 * @param url The request URL, for messages.
 * @returns The event.
 */
function parseEvent<T extends KubeObject>(line: string, url: string): WatchEvent<T> {
  let raw: { type?: unknown; object?: unknown };
  try {
    raw = JSON.parse(line);
  } catch (e) {
    // Only the position of V8's message: its quote of the text is data.
    const at = /at position (\d+)/.exec((e as Error).message)?.[1];
    throw malformed(line, url, at === undefined ? "not JSON" : `not JSON at character ${at}`);
  }
  if (raw === null || typeof raw !== "object" || typeof raw.object !== "object" || !raw.object) {
    throw malformed(line, url, "not a watch event object ({type, object})");
  }
  const event = typedEvent<T>(raw, url);
  if (event === undefined) {
    throw malformed(line, url, `unknown event type ${JSON.stringify(raw.type)}`);
  }
  return event;
}

/**
 * Decodes one protobuf frame into an event.
 *
 * @param frame The frame (a metav1.WatchEvent).
 * @param url The request URL, for messages.
 * @param decodeFrame Decodes the frame.
 * @returns The event.
 */
function protobufEvent<T extends KubeObject>(
  frame: Uint8Array,
  url: string,
  decodeFrame: (frame: Uint8Array) => RawWatchEvent,
): WatchEvent<T> {
  let raw: { type: string; object: unknown };
  try {
    raw = decodeFrame(frame);
  } catch (cause) {
    throw new ApiError({
      status: 0,
      reason: MALFORMED_WATCH_EVENT,
      message: `Malformed watch event from GET ${url}: ${(cause as Error).message}`,
      method: "GET",
      url,
      cause,
    });
  }
  const event = typedEvent<T>(raw, url);
  if (event === undefined) {
    throw new ApiError({
      status: 0,
      reason: MALFORMED_WATCH_EVENT,
      message: `Malformed watch event from GET ${url}: unknown event type ${
        JSON.stringify(raw.type)
      } (a protobuf frame of ${frame.length} bytes)`,
      method: "GET",
      url,
    });
  }
  return event;
}

/** The typed event of a decoded `{type, object}`, or undefined for an unknown type. */
function typedEvent<T extends KubeObject>(
  raw: { type?: unknown; object?: unknown },
  url: string,
): WatchEvent<T> | undefined {
  switch (raw.type) {
    case "ADDED":
    case "MODIFIED":
    case "DELETED":
      return raw as ObjectWatchEvent<T>;
    case "BOOKMARK": {
      const object = raw.object as KubeObject;
      const meta = object.metadata;
      return {
        type: "BOOKMARK",
        resourceVersion: meta?.resourceVersion ?? "",
        initialEventsEnd: meta?.annotations?.[INITIAL_EVENTS_END_ANNOTATION] === "true",
        object,
      };
    }
    case "ERROR": {
      const status = raw.object as Status;
      const quoted = typeof status?.message === "string"
        ? { ...status, message: redactText(status.message) }
        : status;
      return {
        type: "ERROR",
        error: ApiError.fromStatus(quoted, { method: "GET", url }),
        object: status,
      };
    }
    default:
      return undefined;
  }
}
