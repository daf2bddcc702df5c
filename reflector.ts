/**
 * {@linkcode Reflector}: an in-memory cache of a collection, kept in sync by watching it, with
 * secondary indexes and a stream of changes.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "./api.ts";
import type { Client } from "./client.ts";
import { ApiError } from "./errors.ts";
import type { BackoffOptions } from "./_backoff.ts";
import {
  DEFAULT_PAGE_SIZE,
  describe,
  listSnapshot,
  randomWatchTimeout,
  RetryPacer,
} from "./_list.ts";
import { watchBatches, type WatchEvent } from "./watch.ts";

const log = getLogger(["kube", "reflector"]);

/** How the reflector fills its cache: see {@linkcode ReflectorOptions.initialSync}. */
export type InitialSync = "auto" | "watchList" | "list";

/** Options of {@linkcode Reflector}. Most exist so that tests can make time pass quickly. */
export interface ReflectorOptions {
  /**
   * How the cache is (re)filled:
   *
   * - `watchList`: one streaming watch with `sendInitialEvents=true`,
   *   `resourceVersionMatch=NotOlderThan` and no resource version (a consistent read), whose
   *   initial ADDED events end at the bookmark annotated `k8s.io/initial-events-end: "true"`;
   *   the same stream then goes on with the changes.
   * - `list`: a paged list (500 per page), then a watch from its resource version.
   * - `auto` (default): `watchList`, falling back to `list` for the life of the reflector when
   *   the server rejects the request (400, 403, 405, 422, 501), or when the stream ends or sends
   *   an ordinary bookmark before the end bookmark (a server too old to know
   *   `sendInitialEvents`).
   */
  initialSync?: InitialSync;
  /** Label selector (same as {@linkcode Reflector.prototype.labels}). */
  labelSelector?: string;
  /** Field selector (same as {@linkcode Reflector.prototype.fields}). */
  fieldSelector?: string;
  /**
   * Server-side timeout of the watch requests of {@linkcode Reflector.prototype.run} and of the
   * initial sync, in seconds. Default: random in [300, 600] for every request.
   */
  watchTimeoutSeconds?: number;
  /** Milliseconds without data after which a watch is considered dead. Default: timeout + 30 s. */
  inactivityTimeoutMs?: number;
  /** Backoff of retries after transient failures. Default 800 ms doubling to 30 s, jittered. */
  backoff?: BackoffOptions;
  /** Waits between retries; replaceable in tests. Must reject with the signal's reason on abort. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Items per page of a list. Default 500. */
  pageSize?: number;
  /**
   * How many events {@linkcode Reflector.prototype.events} keeps when nobody takes them; the
   * oldest are dropped beyond it (with a warning). Default 10 000.
   */
  maxBufferedEvents?: number;
}

/** Options of {@linkcode Reflector.prototype.init}, `poll`, `run` and `changes`. */
export interface ReflectorRunOptions {
  /** Stops the work; the response body is cancelled. */
  signal?: AbortSignal;
}

/** A change of the cache, from {@linkcode Reflector.prototype.changes}. */
export interface CacheChange<T> {
  /** ADDED: a new key; MODIFIED: a new resource version of a cached object; DELETED: gone. */
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** The new object; for DELETED, its final state (or the last cached one after a re-list). */
  object: T;
  /** The object cached before the change (MODIFIED, and DELETED when it was cached). */
  old?: T;
}

/** A function that lists the values under which an object is indexed. */
export type IndexFunction<T> = (object: T) => string[];

/**
 * Removes `metadata.managedFields` (often the largest part of an object) to save memory. Use it
 * with {@linkcode Reflector.prototype.transform}. The object is changed in place.
 *
 * @param object An object.
 * @returns The same object, without managed fields.
 *
 * @example
 * ```ts ignore
 * import { Api, Client, Reflector, stripManagedFields } from "@denokube/kube";
 * await using client = await Client.infer();
 * const pods = new Reflector(client, Api.v1Pod()).transform(stripManagedFields);
 * ```
 */
export function stripManagedFields<T extends KubeObject>(object: T): T {
  if (object.metadata && "managedFields" in object.metadata) delete object.metadata.managedFields;
  return object;
}

interface Subscriber<T> {
  queue: CacheChange<T>[];
  wake: (() => void) | undefined;
  closed: boolean;
  error: unknown;
}

interface IndexData<T> {
  fn: IndexFunction<T>;
  /** value → keys */
  entries: Map<string, Set<string>>;
  /** The values never change while the key stays the same (the namespace index). */
  fixed?: boolean;
}

/**
 * A cache of the objects of a collection, keyed `namespace/name` (`name` for cluster-scoped
 * kinds), kept in sync with the server.
 *
 * Fill it once with {@linkcode Reflector.prototype.init} and apply changes with
 * {@linkcode Reflector.prototype.poll} (seed style), or keep it in sync forever with
 * {@linkcode Reflector.prototype.run}, which follows the {@linkcode Informer}'s recovery rules:
 * re-watch after a normal close, backoff (or `Retry-After`) on transient failures, re-sync after
 * `410 Expired`, and throw permanent failures (401, 403, 404, 400, 422).
 *
 * A (re)sync builds the new map aside and swaps it in at once, with its indexes: readers never
 * see half a list. It reports the difference with the previous content as changes (ADDED,
 * MODIFIED for a new resource version, DELETED; unchanged objects are not repeated), both in
 * {@linkcode Reflector.prototype.events} and {@linkcode Reflector.prototype.changes}. The first
 * sync therefore reports every object as ADDED.
 *
 * @typeParam T The object type.
 *
 * @example Keep a cache of pods and read it
 * ```ts ignore
 * import { Api, Client, Reflector, stripManagedFields } from "@denokube/kube";
 * await using client = await Client.infer();
 * const pods = new Reflector(client, Api.v1Pod()).transform(stripManagedFields);
 * const controller = new AbortController();
 * const running = pods.run({ signal: controller.signal });
 * await pods.ready;
 * console.log(pods.read().size, pods.byIndex("namespace", "kube-system").length);
 * controller.abort();
 * await running;
 * ```
 */
export class Reflector<T extends KubeObject = KubeObject> {
  /** The resource type (and namespace) cached. */
  readonly api: Api<T>;
  /** Resolves after the first complete sync; rejects if `run` fails permanently before it. */
  readonly ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  #isReady = false;
  #client: Client;
  #options: ReflectorOptions;
  #timeout = 10;
  #labels: string | undefined;
  #fields: string | undefined;
  #transform: ((object: T) => T) | undefined;
  #cache = new Map<string, T>();
  #view: ReadonlyMap<string, T>;
  #indexes = new Map<string, IndexData<T>>();
  #rv: string | undefined;
  #needSync = true;
  #watchListUnsupported = false;
  #events: WatchEvent<T>[] = [];
  // Events are kept for `events()` only in the seed style (init/poll) or once `events()` was
  // called: a program that only runs the cache and reads it must not keep replaced objects alive.
  #keepEvents = false;
  #eventsTaken = false;
  #dropped = 0;
  #subscribers = new Set<Subscriber<T>>();
  #stats = { syncs: 0, watches: 0 };
  #pacer: RetryPacer;
  #busy = false;

  /**
   * Creates a reflector. Nothing is requested until `init`, `poll` or `run`.
   *
   * @param client The client.
   * @param api The resource type, narrowed with `.within(ns)` or across all namespaces.
   * @param options Initial sync mode, selectors, timings.
   */
  constructor(client: Client, api: Api<T>, options: ReflectorOptions = {}) {
    this.#client = client;
    this.api = api;
    this.#options = options;
    this.#labels = options.labelSelector;
    this.#fields = options.fieldSelector;
    this.#pacer = new RetryPacer(options, log, "Sync");
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // nobody has to await it
    this.#view = new CacheView(() => this.#cache);
    this.#indexes.set("namespace", {
      fn: (object) => object.metadata?.namespace ? [object.metadata.namespace] : [],
      entries: new Map(),
      // The namespace is part of the key: a MODIFIED object cannot move.
      fixed: true,
    });
  }

  /**
   * Sets the server-side timeout of each {@linkcode Reflector.prototype.poll} (default 10 s).
   *
   * @param seconds Seconds, at least 1.
   * @returns This reflector.
   */
  timeout(seconds: number): this {
    if (!(seconds >= 1)) throw new RangeError(`timeout must be at least 1 second, got ${seconds}`);
    this.#timeout = Math.floor(seconds);
    return this;
  }

  /**
   * Caches only objects whose labels match.
   *
   * @param selector A label selector, e.g. `app=web`.
   * @returns This reflector.
   */
  labels(selector: string): this {
    this.#labels = selector;
    return this;
  }

  /**
   * Caches only objects whose fields match.
   *
   * @param selector A field selector, e.g. `spec.nodeName=node-1`.
   * @returns This reflector.
   */
  fields(selector: string): this {
    this.#fields = selector;
    return this;
  }

  /**
   * Transforms every object before it is cached (and reported), e.g.
   * {@linkcode stripManagedFields}. Set it before the first sync.
   *
   * @param fn Returns the object to cache; may change its argument in place.
   * @returns This reflector.
   */
  transform(fn: (object: T) => T): this {
    this.#transform = fn;
    return this;
  }

  /**
   * Adds a secondary index, queried with {@linkcode Reflector.prototype.byIndex}. An index named
   * `namespace` is built in.
   *
   * @param name The index name.
   * @param fn Lists the values an object is indexed under.
   * @returns This reflector.
   */
  index(name: string, fn: IndexFunction<T>): this {
    const data: IndexData<T> = { fn, entries: new Map() };
    for (const [key, object] of this.#cache) addToIndex(data, key, object);
    this.#indexes.set(name, data);
    return this;
  }

  /**
   * The resource version the cache is at (opaque; `""` before the first sync).
   *
   * @returns The resource version.
   */
  version(): string {
    return this.#rv ?? "";
  }

  /**
   * The cache: a read-only live view keyed `namespace/name` (`name` for cluster-scoped kinds).
   * A re-sync replaces its content at once; an iteration that started before keeps seeing the
   * previous, complete content.
   *
   * @returns The view.
   */
  read(): ReadonlyMap<string, T> {
    return this.#view;
  }

  /**
   * One cached object.
   *
   * @param name The object's name.
   * @param namespace Its namespace (default: the Api's namespace) for namespaced kinds.
   * @returns The object, or `undefined`.
   */
  get(name: string, namespace?: string): T | undefined {
    if (!this.api.namespaced) return this.#cache.get(name);
    const ns = namespace ?? this.api.namespace;
    if (ns === undefined) {
      throw new TypeError(`${this.api.kind} is namespaced: pass the namespace of ${name}`);
    }
    return this.#cache.get(`${ns}/${name}`);
  }

  /**
   * The cached objects indexed under a value.
   *
   * @param name The index name, e.g. `namespace`.
   * @param value The value, e.g. `kube-system`.
   * @returns The objects (a new array).
   */
  byIndex(name: string, value: string): T[] {
    const data = this.#indexes.get(name);
    if (!data) {
      throw new TypeError(
        `No index ${JSON.stringify(name)}: add it with .index(name, fn); known: ${
          [...this.#indexes.keys()].join(", ")
        }`,
      );
    }
    const keys = data.entries.get(value);
    const out: T[] = [];
    if (!keys) return out;
    for (const key of keys) {
      const object = this.#cache.get(key);
      if (object !== undefined) out.push(object);
    }
    return out;
  }

  /**
   * Takes the events applied since the last call: watch events, and for each (re)sync the
   * difference it made (see the class description). Bookmarks are not kept.
   *
   * Events are buffered in the seed style (`init()` / `poll()`), and under `run()` only once
   * `events()` has been called: a program that only reads the cache keeps no replaced objects.
   *
   * @returns The events, oldest first.
   */
  events(): WatchEvent<T>[] {
    this.#eventsTaken = true;
    this.#keepEvents = true;
    const events = this.#events;
    this.#events = [];
    this.#dropped = 0;
    return events;
  }

  /**
   * Streams the changes of the cache from now on, each delivered after the cache holds it. Ends
   * when `signal` aborts, when the loop breaks, or when {@linkcode Reflector.prototype.run}
   * stops; throws when `run` fails permanently. Changes wait in memory for a slow consumer.
   *
   * @param options An abort signal.
   * @returns An async iterator of changes.
   */
  changes(options: ReflectorRunOptions = {}): AsyncIterableIterator<CacheChange<T>> {
    const subscriber: Subscriber<T> = {
      queue: [],
      wake: undefined,
      closed: false,
      error: undefined,
    };
    this.#subscribers.add(subscriber);
    return this.#changes(subscriber, options.signal);
  }

  async *#changes(
    subscriber: Subscriber<T>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<CacheChange<T>, void, undefined> {
    const onAbort = () => {
      subscriber.closed = true;
      subscriber.wake?.();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const queue = subscriber.queue;
        if (queue.length > 0) {
          subscriber.queue = [];
          for (let i = 0; i < queue.length; i++) yield queue[i];
          continue;
        }
        if (subscriber.error !== undefined) throw subscriber.error;
        if (subscriber.closed || signal?.aborted) return;
        await new Promise<void>((resolve) => subscriber.wake = resolve);
        subscriber.wake = undefined;
      }
    } finally {
      this.#subscribers.delete(subscriber);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Fills the cache (a full sync), without watching further. Failures are thrown.
   *
   * @param options An abort signal.
   * @returns Resolves when the cache holds a complete snapshot.
   */
  async init(options: ReflectorRunOptions = {}): Promise<void> {
    this.#enter();
    this.#keepEvents = true;
    try {
      await this.#sync(options.signal, this.#syncTimeout(), false);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Runs one round: a sync if needed, then one watch of at most
   * {@linkcode Reflector.prototype.timeout} seconds applied to the cache.
   *
   * A transient failure is logged and resolves normally; the next `poll` first waits the backoff
   * delay. After a 410 it re-syncs in the same call. Permanent failures reject with the
   * {@linkcode ApiError}; aborting rejects with the signal's reason.
   *
   * @param options An abort signal.
   * @returns Resolves when the round is over.
   */
  async poll(options: ReflectorRunOptions = {}): Promise<void> {
    this.#enter();
    this.#keepEvents = true;
    const signal = options.signal;
    try {
      await this.#pacer.wait(signal);
      try {
        if (this.#needSync) await this.#sync(signal, this.#syncTimeout(), false);
        await this.#watchRound(signal, this.#timeout);
      } catch (e) {
        if (this.#recover(e, signal) !== "resync") return;
        try {
          await this.#sync(signal, this.#syncTimeout(), false);
        } catch (e2) {
          this.#recover(e2, signal);
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Keeps the cache in sync until `signal` aborts (then resolves). Transient failures are logged
   * and retried; a permanent failure rejects (and ends {@linkcode Reflector.prototype.changes}
   * iterators with it).
   *
   * @param options An abort signal.
   * @returns Resolves when aborted.
   */
  async run(options: ReflectorRunOptions = {}): Promise<void> {
    this.#enter();
    // While run() keeps the cache, events are buffered only for a caller of events().
    this.#keepEvents = this.#eventsTaken;
    if (!this.#eventsTaken) this.#events = [];
    const signal = options.signal;
    try {
      for (;;) {
        if (signal?.aborted) return;
        try {
          await this.#pacer.wait(signal);
          const timeout = this.#options.watchTimeoutSeconds ?? randomWatchTimeout();
          if (this.#needSync) this.#stats.syncs++;
          else this.#stats.watches++;
          const received = this.#needSync
            ? await this.#sync(signal, timeout, true)
            : await this.#watchRound(signal, timeout);
          if (received === 0) this.#pacer.idle(this.api.collectionPath());
        } catch (e) {
          if (signal?.aborted) return;
          try {
            this.#recover(e, signal);
          } catch (fatal) {
            for (const subscriber of this.#subscribers) {
              subscriber.error = fatal;
              subscriber.wake?.();
            }
            if (!this.#isReady) this.#rejectReady(fatal);
            throw fatal;
          }
        }
      }
    } finally {
      this.#busy = false;
      if (signal?.aborted) {
        for (const subscriber of this.#subscribers) {
          subscriber.closed = true;
          subscriber.wake?.();
        }
      }
    }
  }

  /**
   * Counters of {@linkcode Reflector.prototype.run}, for metrics.
   *
   * @returns `relists`: full syncs after the first one (after a 410 or a failure that needs one);
   *   `watchRestarts`: watch requests that resumed from the cached resourceVersion (a stream
   *   that ended or broke).
   */
  stats(): { relists: number; watchRestarts: number } {
    return {
      relists: Math.max(0, this.#stats.syncs - 1),
      watchRestarts: this.#stats.watches,
    };
  }

  #enter(): void {
    if (this.#busy) {
      throw new TypeError("This Reflector is already running (init, poll or run in progress)");
    }
    this.#busy = true;
  }

  #syncTimeout(): number {
    return this.#options.watchTimeoutSeconds ?? randomWatchTimeout();
  }

  #recover(error: unknown, signal: AbortSignal | undefined): "resync" | "retry" {
    const decision = this.#pacer.decide(error, signal, this.api.collectionPath(), this.#rv);
    if (decision === "relist") {
      this.#needSync = true;
      return "resync";
    }
    return "retry";
  }

  #watchOptions(signal: AbortSignal | undefined, timeoutSeconds: number) {
    return {
      labelSelector: this.#labels,
      fieldSelector: this.#fields,
      timeoutSeconds,
      allowWatchBookmarks: true,
      inactivityTimeoutMs: this.#options.inactivityTimeoutMs,
      signal,
      retry: false,
    };
  }

  async #watchRound(signal: AbortSignal | undefined, timeoutSeconds: number): Promise<number> {
    let received = 0;
    const batches = watchBatches(this.#client, this.api, {
      ...this.#watchOptions(signal, timeoutSeconds),
      resourceVersion: this.#rv,
    });
    for await (const batch of batches) {
      for (const event of batch) {
        received++;
        this.#apply(event);
      }
    }
    return received;
  }

  /**
   * Fills a new map and swaps it in. With a watch list and `keepWatching`, goes on applying the
   * stream's later events until it ends.
   *
   * @returns How many events (or lists) were received.
   */
  async #sync(
    signal: AbortSignal | undefined,
    timeoutSeconds: number,
    keepWatching: boolean,
  ): Promise<number> {
    const mode = this.#options.initialSync ?? "auto";
    if (mode === "list" || (mode === "auto" && this.#watchListUnsupported)) {
      await this.#listSync(signal);
      return 1;
    }
    const path = this.api.collectionPath();
    let building: Map<string, T> | undefined = new Map();
    let received = 0;
    let why = "the stream ended before the initial-events-end bookmark";
    try {
      const batches = watchBatches(this.#client, this.api, {
        ...this.#watchOptions(signal, timeoutSeconds),
        sendInitialEvents: true,
        resourceVersionMatch: "NotOlderThan",
      });
      stream: for await (const batch of batches) {
        for (const event of batch) {
          received++;
          if (!building) {
            this.#apply(event);
            continue;
          }
          switch (event.type) {
            case "ADDED":
            case "MODIFIED":
              building.set(this.api.keyOf(event.object), this.#prepare(event.object));
              break;
            case "DELETED":
              building.delete(this.api.keyOf(event.object));
              break;
            case "BOOKMARK":
              if (event.initialEventsEnd) {
                this.#swap(building, event.resourceVersion);
                building = undefined;
                if (!keepWatching) return received;
              } else if (mode === "auto") {
                why = "the server sent an ordinary bookmark before the initial-events-end bookmark";
                break stream;
              }
              break;
            case "ERROR":
              throw event.error;
          }
        }
      }
    } catch (e) {
      if (
        building && mode === "auto" && !signal?.aborted && e instanceof ApiError &&
        (e.status === 400 || e.status === 403 || e.status === 405 || e.status === 422 ||
          e.status === 501)
      ) {
        this.#watchListUnsupported = true;
        log.info("The server refused a watch list of {path} ({error}): using list and watch", {
          path,
          error: describe(e),
        });
        await this.#listSync(signal);
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
      log.info("Watch list of {path} unsupported ({why}): using list and watch", { path, why });
      await this.#listSync(signal);
      return 1;
    }
    return received;
  }

  async #listSync(signal: AbortSignal | undefined): Promise<void> {
    const snapshot = await listSnapshot(this.#client, this.api, {
      labelSelector: this.#labels,
      fieldSelector: this.#fields,
      pageSize: this.#options.pageSize ?? DEFAULT_PAGE_SIZE,
      signal,
    });
    const map = new Map<string, T>();
    for (const object of snapshot.items) map.set(this.api.keyOf(object), this.#prepare(object));
    this.#swap(map, snapshot.resourceVersion);
  }

  #prepare(object: T): T {
    return this.#transform ? this.#transform(object) : object;
  }

  /** Replaces the cache and its indexes at once, and reports the difference. */
  #swap(next: Map<string, T>, resourceVersion: string): void {
    const previous = this.#cache;
    const changes: CacheChange<T>[] = [];
    if (this.#reporting()) this.#diff(previous, next, changes);
    const indexes = new Map<string, IndexData<T>>();
    for (const [name, data] of this.#indexes) {
      const fresh: IndexData<T> = { fn: data.fn, entries: new Map(), fixed: data.fixed };
      for (const [key, object] of next) addToIndex(fresh, key, object);
      indexes.set(name, fresh);
    }
    // The swap itself: nothing can observe the state between these assignments.
    this.#cache = next;
    this.#indexes = indexes;
    this.#rv = resourceVersion;
    this.#needSync = false;
    log.debug("Synced {count} objects of {path} at resourceVersion {resourceVersion}", {
      path: this.api.collectionPath(),
      count: next.size,
      resourceVersion,
      changes: changes.length,
    });
    for (const change of changes) this.#report(change);
    if (!this.#isReady) {
      this.#isReady = true;
      this.#resolveReady();
    }
  }

  /** The changes from one map to the next: ADDED, MODIFIED (new resourceVersion), DELETED. */
  #diff(previous: Map<string, T>, next: Map<string, T>, changes: CacheChange<T>[]): void {
    for (const [key, object] of next) {
      const old = previous.get(key);
      if (old === undefined) changes.push({ type: "ADDED", object });
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
        changes.push({ type: "MODIFIED", object, old });
      }
    }
    for (const [key, old] of previous) {
      if (!next.has(key)) changes.push({ type: "DELETED", object: old, old });
    }
  }

  /** Applies one watch event to the cache. */
  #apply(event: WatchEvent<T>): void {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const object = this.#prepare(event.object);
        const key = this.api.keyOf(object);
        const rv = object.metadata?.resourceVersion;
        if (rv) this.#rv = rv;
        const old = this.#cache.get(key);
        if (old !== undefined && rv !== undefined && old.metadata?.resourceVersion === rv) return;
        this.#cache.set(key, object);
        for (const data of this.#indexes.values()) {
          if (old === undefined) addToIndex(data, key, object);
          else if (!data.fixed) reindex(data, key, old, object);
        }
        if (this.#reporting()) {
          this.#report(
            old === undefined ? { type: "ADDED", object } : { type: "MODIFIED", object, old },
            event.type,
          );
        }
        return;
      }
      case "DELETED": {
        const object = this.#prepare(event.object);
        const key = this.api.keyOf(object);
        const rv = object.metadata?.resourceVersion;
        if (rv) this.#rv = rv;
        const old = this.#cache.get(key);
        if (old !== undefined) {
          this.#cache.delete(key);
          for (const data of this.#indexes.values()) removeFromIndex(data, key, old);
        }
        if (this.#reporting()) {
          this.#report(
            old === undefined ? { type: "DELETED", object } : {
              type: "DELETED",
              object,
              old,
            },
          );
        }
        return;
      }
      case "BOOKMARK":
        if (event.resourceVersion) this.#rv = event.resourceVersion;
        return;
      case "ERROR":
        throw event.error;
    }
  }

  /** Whether anybody takes changes: `events()` or a `changes()` subscriber. */
  #reporting(): boolean {
    return this.#keepEvents || this.#subscribers.size > 0;
  }

  /** Records a change for `events()` and the `changes()` subscribers. */
  #report(change: CacheChange<T>, eventType: CacheChange<T>["type"] = change.type): void {
    for (const subscriber of this.#subscribers) {
      subscriber.queue.push(change);
      subscriber.wake?.();
    }
    if (!this.#keepEvents) return;
    const events = this.#events;
    events.push({ type: eventType, object: change.object });
    const max = this.#options.maxBufferedEvents ?? 10_000;
    if (events.length > max + (max >> 2)) {
      const drop = events.length - max;
      events.splice(0, drop);
      if (this.#dropped === 0) {
        log.warn(
          "Dropped the oldest of {count} events of {path} nobody took: call events() or use changes()",
          { path: this.api.collectionPath(), count: drop + max },
        );
      }
      this.#dropped += drop;
    }
  }
}

function addToIndex<T>(data: IndexData<T>, key: string, object: T): void {
  for (const value of data.fn(object)) {
    let keys = data.entries.get(value);
    if (!keys) data.entries.set(value, keys = new Set());
    keys.add(key);
  }
}

/** Moves a key from the old object's index values to the new one's, touching only differences. */
function reindex<T>(data: IndexData<T>, key: string, old: T, object: T): void {
  const before = data.fn(old);
  const after = data.fn(object);
  if (before.length === after.length && before.every((v, i) => v === after[i])) return;
  for (const value of before) {
    if (after.includes(value)) continue;
    const keys = data.entries.get(value);
    if (!keys) continue;
    keys.delete(key);
    if (keys.size === 0) data.entries.delete(value);
  }
  for (const value of after) {
    if (before.includes(value)) continue;
    let keys = data.entries.get(value);
    if (!keys) data.entries.set(value, keys = new Set());
    keys.add(key);
  }
}

function removeFromIndex<T>(data: IndexData<T>, key: string, object: T): void {
  for (const value of data.fn(object)) {
    const keys = data.entries.get(value);
    if (!keys) continue;
    keys.delete(key);
    if (keys.size === 0) data.entries.delete(value);
  }
}

/** A read-only view of whichever map is current. */
class CacheView<T> implements ReadonlyMap<string, T> {
  #current: () => Map<string, T>;

  constructor(current: () => Map<string, T>) {
    this.#current = current;
  }

  get size(): number {
    return this.#current().size;
  }

  get(key: string): T | undefined {
    return this.#current().get(key);
  }

  has(key: string): boolean {
    return this.#current().has(key);
  }

  forEach(fn: (value: T, key: string, map: ReadonlyMap<string, T>) => void, thisArg?: unknown) {
    for (const [key, value] of this.#current()) fn.call(thisArg, value, key, this);
  }

  entries(): MapIterator<[string, T]> {
    return this.#current().entries();
  }

  keys(): MapIterator<string> {
    return this.#current().keys();
  }

  values(): MapIterator<T> {
    return this.#current().values();
  }

  [Symbol.iterator](): MapIterator<[string, T]> {
    return this.#current()[Symbol.iterator]();
  }
}

export type { BackoffOptions } from "./_backoff.ts";
