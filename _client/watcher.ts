// Internal: the one watch loop of the library, as an explicit state machine. The Informer, the
// Reflector and (next) the Controller are its consumers; it knows nothing about caches.
//
// States:
//   needSync ──sync (watch list, or paged list)──▶ watching(rv) ──watch ends──▶ watching(rv)
//      ▲                                               │
//      └──────────── 410 Expired/Gone (status or ERROR event) ◀────────────────┘
// Transient failures keep the state and schedule a delay (backoff or Retry-After) through the
// shared RetryPacer; permanent ones are thrown.
//
// It yields steps, one per chunk of the wire (one promise per ~16 objects, not per object):
//   init-start              a (re)sync begins: consumers start building their new content aside
//                           (again when the sync restarts: a fallback to a list, an expired
//                           continue token)
//   init-objects(objects)   objects of the new content (a list page, or initial watch events)
//   init-delete(objects)    objects removed during a watch list's initial events (rare)
//   init-done(rv)           the new content is complete at rv: swap it in
//   events(events)          ADDED / MODIFIED / DELETED / BOOKMARK after the sync (never ERROR:
//                           an ERROR event is the loop's failure, handled by the rules above)
// The loop's resource version advances over a batch when the consumer asks for the next step; a
// consumer that stops in the middle of a batch reports how far it got with `advance`.

import type { Logger } from "@logtape/logtape";
import type { Api, KubeObject } from "../api.ts";
import type { Clock } from "../clock.ts";
import { ApiError } from "../errors.ts";
import { DEFAULT_PAGE_SIZE, listAll, type ListFormat } from "./list.ts";
import { type BackoffOptions, describe, randomWatchTimeout, RetryPacer } from "./retry.ts";
import type { Transport } from "./transport.ts";
import {
  type BookmarkWatchEvent,
  type ObjectWatchEvent,
  watchBatches,
  type WatchEvent,
  type WatchFormat,
} from "../watch.ts";

/** How the initial content is fetched: see `ReflectorOptions.initialSync`. */
export type InitialSync = "auto" | "watchList" | "list";

/** An event after the sync. */
export type LiveEvent<T extends KubeObject> = ObjectWatchEvent<T> | BookmarkWatchEvent;

/** One step of the watch loop (see the module comment). */
export type WatcherStep<T extends KubeObject> =
  | { type: "init-start" }
  | { type: "init-objects"; objects: T[] }
  | { type: "init-delete"; objects: T[] }
  | { type: "init-done"; resourceVersion: string }
  | { type: "events"; events: LiveEvent<T>[] };

/**
 * The options every consumer of the watch loop shares (`InformerOptions`, `ReflectorOptions`):
 * selectors, how the content is (re)filled, timeouts, and the pace of retries.
 */
export interface WatchLoopOptions {
  /**
   * How the content is (re)filled:
   *
   * - `watchList`: one streaming watch with `sendInitialEvents=true`,
   *   `resourceVersionMatch=NotOlderThan` and no resource version (a consistent read), whose
   *   initial ADDED events end at the bookmark annotated `k8s.io/initial-events-end: "true"`;
   *   the same stream then goes on with the changes.
   * - `list`: a paged list (`pageSize` per page), then a watch from its resource version.
   * - `auto`: `watchList`, falling back to `list` for good when the server rejects the request
   *   (400, 403, 405, 422, 501), or when the stream ends or sends an ordinary bookmark before the
   *   end bookmark (a server too old to know `sendInitialEvents`).
   *
   * Default: `auto` for the Reflector, `list` for the Informer.
   */
  initialSync?: InitialSync;
  /** Label selector (same as the `labels()` builder). */
  labelSelector?: string;
  /** Field selector (same as the `fields()` builder). */
  fieldSelector?: string;
  /**
   * A KEP-5866 shard selector, e.g.
   * `shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')` (ranges joined
   * with `||`): only objects whose 64-bit FNV-1a hash of the field falls in a range. Needs the
   * `ShardedListAndWatch` feature gate (alpha in Kubernetes 1.36); a server without it ignores the
   * parameter (a list then has no `metadata.shardInfo`).
   */
  shardSelector?: string;
  /**
   * Server-side timeout of each long-running watch request (`run()`, iteration, the initial
   * sync), in seconds. Default: random in [300, 600] for every request, like client-go.
   */
  watchTimeoutSeconds?: number;
  /**
   * Milliseconds without data after which a watch stream is considered dead and retried.
   * Default: the watch's `timeoutSeconds` plus 30 s.
   */
  inactivityTimeoutMs?: number;
  /** Backoff of retries after transient failures. Default 800 ms doubling to 30 s, jittered. */
  backoff?: BackoffOptions;
  /** The clock retries wait on. Default the system clock; tests pass a `VirtualClock`. */
  clock?: Clock;
  /**
   * Test seam, kept for older tests (prefer `clock`): waits between retries instead of
   * `clock.sleep`. Must reject with the signal's reason on abort.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Items per page of a (re)list. Default 500. */
  pageSize?: number;
}

/** Settings of a {@linkcode Watcher}: the shared options plus the internal seams. */
export interface WatcherOptions extends WatchLoopOptions {
  /** Start watching from here, without an initial sync. */
  resourceVersion?: string;
  /** The wire format of the watch requests. Default: by the client's wire format. */
  format?: WatchFormat;
  /** The wire format of the list requests. Default: by the client's wire format. */
  listFormat?: ListFormat;
}

/** The watch loop of one collection (see the module comment). */
export class Watcher<T extends KubeObject> {
  readonly api: Api<T>;
  /** Label selector; may change until the first request. */
  labelSelector: string | undefined;
  /** Field selector; may change until the first request. */
  fieldSelector: string | undefined;
  /** Rounds of {@linkcode Watcher.prototype.run}: full syncs, and watches resumed from the resourceVersion. */
  readonly counts = { syncs: 0, watches: 0 };
  #client: Transport;
  #options: WatcherOptions;
  #log: Logger;
  #pacer: RetryPacer;
  #format: WatchFormat | undefined;
  #rv: string | undefined;
  #needSync: boolean;
  #pollTimeout = 10;
  #watchListUnsupported = false;
  /** Events (not ERRORs) received since the last completed sync; undefined before the first. */
  #sinceSync: number | undefined;
  /** Relists in a row with nothing learned in between. */
  #expiredStreak = 0;

  /**
   * @param client The transport.
   * @param api The collection.
   * @param options Sync mode, selectors, timings.
   * @param logger The consumer's logger (log lines keep their category).
   * @param what `Watch` or `Sync`, for log lines.
   */
  constructor(
    client: Transport,
    api: Api<T>,
    options: WatcherOptions,
    logger: Logger,
    what: string,
  ) {
    this.#client = client;
    this.api = api;
    this.#options = options;
    this.#log = logger;
    this.#pacer = new RetryPacer(options, logger, what);
    this.#format = options.format; // undefined: by the client's wire format
    this.labelSelector = options.labelSelector;
    this.fieldSelector = options.fieldSelector;
    this.#rv = options.resourceVersion || undefined;
    this.#needSync = this.#rv === undefined;
  }

  /** The resource version the next watch starts from (undefined before the first sync). */
  get resourceVersion(): string | undefined {
    return this.#rv;
  }

  /**
   * Sets the server-side timeout of each {@linkcode Watcher.prototype.poll} round (the
   * consumers' `timeout()` builder).
   *
   * @param seconds Seconds, at least 1.
   */
  setPollTimeout(seconds: number): void {
    if (!(seconds >= 1)) throw new RangeError(`timeout must be at least 1 second, got ${seconds}`);
    this.#pollTimeout = Math.floor(seconds);
  }

  /** Whether the next round starts with a (re)sync. */
  get needsSync(): boolean {
    return this.#needSync;
  }

  /**
   * Advances the resource version over the first `count` events of a batch. The loop does it
   * itself for whole batches; a consumer that stops in the middle calls it.
   */
  advance(events: readonly LiveEvent<T>[], count = events.length): void {
    for (let i = 0; i < count; i++) {
      const event = events[i];
      const rv = event.type === "BOOKMARK"
        ? event.resourceVersion
        : event.object.metadata?.resourceVersion;
      if (rv) this.#rv = rv;
    }
  }

  /**
   * Forever: sync when needed, watch, re-watch, recover. Returns when `signal` aborts; throws
   * permanent failures (after logging them).
   *
   * @param signal Stops the loop.
   * @returns The steps.
   */
  async *run(signal: AbortSignal | undefined): AsyncGenerator<WatcherStep<T>, void, undefined> {
    for (;;) {
      if (signal?.aborted) return;
      try {
        await this.#pacer.wait(signal);
        const timeout = this.#options.watchTimeoutSeconds ?? randomWatchTimeout();
        if (this.#needSync) this.counts.syncs++;
        else this.counts.watches++;
        const received = this.#needSync
          ? yield* this.#sync(signal, timeout, true)
          : yield* this.#watch(signal, timeout);
        if (received === 0) this.#pacer.idle(this.api.collectionPath());
      } catch (e) {
        if (signal?.aborted) return;
        this.#recover(e, signal);
      }
    }
  }

  /**
   * One round: waits a pending retry delay, syncs when needed (stopping at the end of the
   * initial content), then watches once for `timeoutSeconds`. A transient failure ends the round
   * quietly (the next round waits the delay); after a 410 it syncs again within the round.
   * Permanent failures and aborts are thrown.
   *
   * @param signal Stops the round.
   * @param timeoutSeconds The watch's server-side timeout (default: {@linkcode
   *   Watcher.prototype.setPollTimeout}, 10 s).
   * @returns The steps.
   */
  async *poll(
    signal: AbortSignal | undefined,
    timeoutSeconds: number = this.#pollTimeout,
  ): AsyncGenerator<WatcherStep<T>, void, undefined> {
    await this.#pacer.wait(signal);
    try {
      if (this.#needSync) yield* this.#sync(signal, this.#syncTimeout(), false);
      yield* this.#watch(signal, timeoutSeconds);
    } catch (e) {
      // A relist paced by the backoff (see #recover) waits for the next round.
      if (this.#recover(e, signal) !== "relist" || this.#pacer.pending) return;
      try {
        yield* this.#sync(signal, this.#syncTimeout(), false);
      } catch (e2) {
        this.#recover(e2, signal);
      }
    }
  }

  /**
   * A sync only (no recovery: failures are thrown), ending at init-done.
   *
   * @param signal Stops the sync.
   * @returns The steps.
   */
  async *sync(signal: AbortSignal | undefined): AsyncGenerator<WatcherStep<T>, void, undefined> {
    yield* this.#sync(signal, this.#syncTimeout(), false);
  }

  #syncTimeout(): number {
    return this.#options.watchTimeoutSeconds ?? randomWatchTimeout();
  }

  #recover(error: unknown, signal: AbortSignal | undefined): "relist" | "retry" {
    const decision = this.#pacer.decide(error, signal, this.api.collectionPath(), this.#rv);
    if (decision === "relist") {
      this.#needSync = true;
      // The first expiry relists at once. Expired again with nothing learned since that relist
      // (a server answering 410 to every watch): pace the next LIST by the backoff.
      this.#expiredStreak = this.#sinceSync === 0 ? this.#expiredStreak + 1 : 1;
      if (this.#expiredStreak > 1) this.#pacer.relistTooSoon(this.api.collectionPath());
    }
    return decision;
  }

  #batches(signal: AbortSignal | undefined, timeoutSeconds: number, watchList: boolean) {
    return watchBatches(this.#client, this.api, {
      labelSelector: this.labelSelector,
      fieldSelector: this.fieldSelector,
      shardSelector: this.#options.shardSelector,
      timeoutSeconds,
      allowWatchBookmarks: true,
      inactivityTimeoutMs: this.#options.inactivityTimeoutMs,
      signal,
      retry: false,
      ...(watchList
        ? { sendInitialEvents: true, resourceVersionMatch: "NotOlderThan" }
        : { resourceVersion: this.#rv }),
    }, this.#format);
  }

  /** One watch from the current resource version. Returns how many events arrived. */
  async *#watch(
    signal: AbortSignal | undefined,
    timeoutSeconds: number,
  ): AsyncGenerator<WatcherStep<T>, number, undefined> {
    let received = 0;
    for await (const batch of this.#batches(signal, timeoutSeconds, false)) {
      received += batch.length;
      const error = this.#cutAtError(batch);
      const events = batch as LiveEvent<T>[];
      if (this.#sinceSync !== undefined) this.#sinceSync += events.length;
      if (events.length > 0) {
        yield { type: "events", events };
        this.advance(events);
      }
      if (error) throw error;
    }
    return received;
  }

  /**
   * Cuts a batch of live events at its first ERROR event (in place) and returns that error: the
   * events before it are delivered, then the error is the loop's failure. A plain function, not
   * a generator: the hot path creates no generator per chunk.
   */
  #cutAtError(batch: WatchEvent<T>[]): ApiError | undefined {
    for (let i = 0; i < batch.length; i++) {
      const event = batch[i];
      if (event.type === "ERROR") {
        batch.length = i;
        return event.error;
      }
    }
    return undefined;
  }

  /**
   * Fills new content (watch list or list). With a watch list and `keepWatching`, goes on with
   * the same stream's later events until it ends. Returns how many events (or lists) arrived.
   */
  async *#sync(
    signal: AbortSignal | undefined,
    timeoutSeconds: number,
    keepWatching: boolean,
  ): AsyncGenerator<WatcherStep<T>, number, undefined> {
    const mode = this.#options.initialSync ?? "auto";
    if (mode === "list" || (mode === "auto" && this.#watchListUnsupported)) {
      yield* this.#list(signal);
      return 1;
    }
    const path = this.api.collectionPath();
    let building = true;
    let received = 0;
    let why = "the stream ended before the initial-events-end bookmark";
    yield { type: "init-start" };
    try {
      stream: for await (const batch of this.#batches(signal, timeoutSeconds, true)) {
        received += batch.length;
        if (!building) {
          const error = this.#cutAtError(batch);
          const events = batch as LiveEvent<T>[];
          this.#sinceSync! += events.length;
          if (events.length > 0) {
            yield { type: "events", events };
            this.advance(events);
          }
          if (error) throw error;
          continue;
        }
        let objects: T[] = [];
        for (let i = 0; i < batch.length; i++) {
          const event = batch[i];
          if (!building) {
            // The rest of the batch after the end bookmark: live events.
            const rest = batch.slice(i);
            const error = this.#cutAtError(rest);
            const events = rest as LiveEvent<T>[];
            this.#sinceSync! += events.length;
            if (events.length > 0) {
              yield { type: "events", events };
              this.advance(events);
            }
            if (error) throw error;
            break;
          }
          switch (event.type) {
            case "ADDED":
            case "MODIFIED":
              objects.push(event.object);
              break;
            case "DELETED":
              if (objects.length > 0) {
                yield { type: "init-objects", objects };
                objects = [];
              }
              yield { type: "init-delete", objects: [event.object] };
              break;
            case "BOOKMARK":
              if (event.initialEventsEnd) {
                if (objects.length > 0) {
                  yield { type: "init-objects", objects };
                  objects = [];
                }
                this.#rv = event.resourceVersion;
                this.#needSync = false;
                this.#sinceSync = 0;
                building = false;
                yield { type: "init-done", resourceVersion: event.resourceVersion };
                if (!keepWatching) return received;
              } else if (mode === "auto") {
                why = "the server sent an ordinary bookmark before the initial-events-end bookmark";
                break stream;
              }
              break;
            case "ERROR":
              if (objects.length > 0) yield { type: "init-objects", objects };
              throw event.error;
          }
        }
        if (objects.length > 0) yield { type: "init-objects", objects };
      }
    } catch (e) {
      if (
        building && mode === "auto" && !signal?.aborted && e instanceof ApiError &&
        (e.status === 400 || e.status === 403 || e.status === 405 || e.status === 422 ||
          e.status === 501)
      ) {
        this.#watchListUnsupported = true;
        this.#log.info(
          "The server refused a watch list of {path} ({error}): using list and watch",
          { path, error: describe(e) },
        );
        yield* this.#list(signal);
        return 1;
      }
      throw e;
    }
    if (building) {
      if (mode !== "auto") {
        throw new ApiError({
          status: 0,
          message: `The watch list of ${path} was incomplete: ${why}`,
        });
      }
      this.#watchListUnsupported = true;
      this.#log.info("Watch list of {path} unsupported ({why}): using list and watch", {
        path,
        why,
      });
      yield* this.#list(signal);
      return 1;
    }
    return received;
  }

  /** A paged list: init-start, its pages (init-start again on a restart), init-done. */
  async *#list(signal: AbortSignal | undefined): AsyncGenerator<WatcherStep<T>, void, undefined> {
    yield { type: "init-start" };
    let resourceVersion = "";
    let first = true;
    for await (
      const chunk of listAll(this.#client, this.api, {
        labelSelector: this.labelSelector,
        fieldSelector: this.fieldSelector,
        shardSelector: this.#options.shardSelector,
        pageSize: this.#options.pageSize ?? DEFAULT_PAGE_SIZE,
        signal,
      }, this.#options.listFormat) // undefined: by the client's wire format
    ) {
      if (chunk.restart && !first) yield { type: "init-start" };
      first = false;
      resourceVersion = chunk.resourceVersion;
      if (chunk.items.length > 0) yield { type: "init-objects", objects: chunk.items };
    }
    this.#rv = resourceVersion;
    this.#needSync = false;
    this.#sinceSync = 0;
    yield { type: "init-done", resourceVersion };
  }
}
