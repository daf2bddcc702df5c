/**
 * {@linkcode Reflector}: an in-memory cache of a collection, kept in sync by watching it, with
 * secondary indexes and a stream of changes.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "./api.ts";
import {
  type CacheChange,
  diffContent,
  type IndexFunction,
  Store,
  UNCHANGED,
} from "./_client/store.ts";
import type { Transport } from "./_client/transport.ts";
import { compactable, CompactCodec, CompactObject } from "./_client/compact.ts";
import { compactListFormat } from "./_client/list.ts";
import {
  type LiveEvent,
  Watcher,
  type WatcherOptions,
  type WatcherStep,
  type WatchLoopOptions,
} from "./_client/watcher.ts";
import { compactWatchFormat, type WatchEvent } from "./watch.ts";

export type { CacheChange, IndexFunction } from "./_client/store.ts";
export type { InitialSync, WatchLoopOptions } from "./_client/watcher.ts";

const log = getLogger(["kube", "reflector"]);

/** Options of {@linkcode Reflector}: the shared watch loop options and the event buffer. */
export interface ReflectorOptions extends WatchLoopOptions {
  /**
   * How many events {@linkcode Reflector.prototype.events} keeps when nobody takes them; the
   * oldest are dropped beyond it (with a warning). Default 10 000.
   */
  maxBufferedEvents?: number;
  /**
   * How the cache keeps its objects:
   * - `"objects"` (the default): decoded, as plain objects.
   * - `"compact"`: objects of built-in kinds read as protobuf (the client's default wire format)
   *   are kept as the bytes they came in, with only their key metadata decoded (name, namespace,
   *   uid, resourceVersion, generation, labels, ownerReferences, deletionTimestamp); a sync
   *   decodes only that. Reads (`get`, `read()`, `byIndex`, changes, events) decode the object
   *   (deep-equal to what `"objects"` gives); a small cache keeps the most recently read ones.
   *   It takes a fraction of the memory, and reading an object costs a decode. The
   *   {@linkcode Reflector.prototype.transform} runs on every decode instead of once; with
   *   {@linkcode stripManagedFields} as the transform, the managed fields are dropped from the
   *   kept bytes. Objects that come as JSON (custom resources, a JSON client) are kept as
   *   objects.
   */
  store?: "objects" | "compact";
  /**
   * With `store: "compact"`: how many recently read objects stay decoded (default 256; 0 for
   * none). Reading one of them again gives the same object.
   */
  decodedCacheSize?: number;
}

/** Options of {@linkcode Reflector.prototype.init}, `poll`, `run` and `changes`. */
export interface ReflectorRunOptions {
  /** Stops the work; the response body is cancelled. */
  signal?: AbortSignal;
}

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
  #options: ReflectorOptions;
  #transform: ((object: T) => T) | undefined;
  /** The compact store's codec; undefined when objects are stored as they are. */
  #codec: CompactCodec<T> | undefined;
  #view: ReadonlyMap<string, T>;
  #watcher: Watcher<T>;
  #store = new Store<T>();
  /** The content of a sync in progress. */
  #building: Map<string, T> | undefined;
  #events: WatchEvent<T>[] = [];
  // Events are kept for `events()` only in the seed style (init/poll) or once `events()` was
  // called: a program that only runs the cache and reads it must not keep replaced objects alive.
  #keepEvents = false;
  #eventsTaken = false;
  #dropped = 0;
  #subscribers = new Set<Subscriber<T>>();
  #busy = false;

  /**
   * Creates a reflector. Nothing is requested until `init`, `poll` or `run`.
   *
   * @param client The client.
   * @param api The resource type, narrowed with `.within(ns)` or across all namespaces.
   * @param options Initial sync mode, selectors, timings.
   */
  constructor(client: Transport, api: Api<T>, options: ReflectorOptions = {}) {
    this.api = api;
    this.#options = options;
    let loopOptions: WatcherOptions = options;
    if (options.store === "compact" && compactable(client.wireFormat, api.apiVersion, api.kind)) {
      this.#codec = new CompactCodec<T>(undefined, options.decodedCacheSize);
      loopOptions = {
        ...options,
        // With stripManagedFields as the transform, the managed fields are dropped from the bytes.
        format: compactWatchFormat(() => this.#transform === stripManagedFields),
        listFormat: compactListFormat(() => this.#transform === stripManagedFields),
      };
    }
    this.#view = this.#codec ? this.#codec.view(this.#store.view) : this.#store.view;
    this.#watcher = new Watcher(client, api, loopOptions, log, "Sync");
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // nobody has to await it
  }

  /**
   * Sets the server-side timeout of each {@linkcode Reflector.prototype.poll} (default 10 s).
   *
   * @param seconds Seconds, at least 1.
   * @returns This reflector.
   */
  timeout(seconds: number): this {
    this.#watcher.setPollTimeout(seconds);
    return this;
  }

  /**
   * Caches only objects whose labels match.
   *
   * @param selector A label selector, e.g. `app=web`.
   * @returns This reflector.
   */
  labels(selector: string): this {
    this.#watcher.labelSelector = selector;
    return this;
  }

  /**
   * Caches only objects whose fields match.
   *
   * @param selector A field selector, e.g. `spec.nodeName=node-1`.
   * @returns This reflector.
   */
  fields(selector: string): this {
    this.#watcher.fieldSelector = selector;
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
    if (this.#codec) this.#codec.transform = fn;
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
    this.#store.addIndex(name, this.#codec ? this.#codec.index(fn, this.#keyOf) : fn);
    return this;
  }

  /**
   * The resource version the cache is at (opaque; `""` before the first sync).
   *
   * @returns The resource version.
   */
  version(): string {
    return this.#watcher.resourceVersion ?? "";
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
    if (!this.api.namespaced) return this.#view.get(name);
    const ns = namespace ?? this.api.namespace;
    if (ns === undefined) {
      throw new TypeError(`${this.api.kind} is namespaced: pass the namespace of ${name}`);
    }
    return this.#view.get(`${ns}/${name}`);
  }

  /**
   * The cached objects indexed under a value.
   *
   * @param name The index name, e.g. `namespace`.
   * @param value The value, e.g. `kube-system`.
   * @returns The objects (a new array).
   */
  byIndex(name: string, value: string): T[] {
    const entries = this.#store.byIndex(name, value);
    const codec = this.#codec;
    if (codec === undefined) return entries;
    const out: T[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      const object = codec.tryDecode(this.#keyOf(entry), entry);
      if (object !== undefined) out.push(object);
    }
    return out;
  }

  /** The key of a stored entry (a compact one has the header's name and namespace). */
  #keyOf = (entry: T): string => this.api.keyOf(entry);

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
      for await (const step of this.#watcher.sync(options.signal)) this.#step(step);
    } finally {
      this.#building = undefined;
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
    try {
      for await (const step of this.#watcher.poll(options.signal)) {
        this.#step(step);
      }
    } finally {
      this.#building = undefined;
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
      for await (const step of this.#watcher.run(signal)) this.#step(step);
    } catch (fatal) {
      for (const subscriber of this.#subscribers) {
        subscriber.error = fatal;
        subscriber.wake?.();
      }
      if (!this.#isReady) this.#rejectReady(fatal);
      throw fatal;
    } finally {
      this.#building = undefined;
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
    const counts = this.#watcher.counts;
    return { relists: Math.max(0, counts.syncs - 1), watchRestarts: counts.watches };
  }

  #enter(): void {
    if (this.#busy) {
      throw new TypeError("This Reflector is already running (init, poll or run in progress)");
    }
    this.#busy = true;
  }

  /** Applies one step of the watch loop. */
  #step(step: WatcherStep<T>): void {
    switch (step.type) {
      case "events": {
        const events = step.events;
        for (let i = 0; i < events.length; i++) this.#apply(events[i]);
        return;
      }
      case "init-start":
        this.#building = new Map();
        return;
      case "init-objects": {
        const building = this.#building!;
        const api = this.api;
        const objects = step.objects;
        for (let i = 0; i < objects.length; i++) {
          const object = this.#prepare(objects[i]);
          building.set(api.keyOf(object), object);
        }
        return;
      }
      case "init-delete":
        for (const object of step.objects) this.#building!.delete(this.api.keyOf(object));
        return;
      case "init-done":
        this.#swap(this.#building ?? new Map(), step.resourceVersion);
        this.#building = undefined;
        return;
    }
  }

  #prepare(object: T): T {
    // A compact entry is transformed when it is decoded.
    if (this.#codec !== undefined && object instanceof CompactObject) return object;
    return this.#transform ? this.#transform(object) : object;
  }

  /** Replaces the cache and its indexes at once, and reports the difference. */
  #swap(next: Map<string, T>, resourceVersion: string): void {
    const previous = this.#store.replace(next);
    const changes: CacheChange<T>[] = [];
    if (this.#reporting()) diffContent(previous, next, changes);
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

  /** Applies one watch event to the cache. */
  #apply(event: LiveEvent<T>): void {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED": {
        const object = this.#prepare(event.object);
        const old = this.#store.upsert(this.api.keyOf(object), object);
        if (old === UNCHANGED || !this.#reporting()) return;
        this.#report(
          old === undefined ? { type: "ADDED", object } : { type: "MODIFIED", object, old },
          event.type,
        );
        return;
      }
      case "DELETED": {
        const object = this.#prepare(event.object);
        const old = this.#store.remove(this.api.keyOf(object));
        if (!this.#reporting()) return;
        this.#report(
          old === undefined ? { type: "DELETED", object } : { type: "DELETED", object, old },
        );
        return;
      }
      case "BOOKMARK":
        return;
    }
  }

  /** Whether anybody takes changes: `events()` or a `changes()` subscriber. */
  #reporting(): boolean {
    return this.#keepEvents || this.#subscribers.size > 0;
  }

  /** Records a change for `events()` and the `changes()` subscribers. */
  #report(change: CacheChange<T>, eventType: CacheChange<T>["type"] = change.type): void {
    const codec = this.#codec;
    const entry = change.object;
    const key = codec === undefined ? "" : this.#keyOf(entry);
    if (codec !== undefined && this.#subscribers.size > 0) change = codec.change(change, key);
    for (const subscriber of this.#subscribers) {
      subscriber.queue.push(change);
      subscriber.wake?.();
    }
    if (!this.#keepEvents) return;
    const events = this.#events;
    events.push(
      codec === undefined
        ? { type: eventType, object: entry }
        : codec.event<WatchEvent<T> & { object: T }>(eventType, entry, key),
    );
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

export type { BackoffOptions } from "./_client/retry.ts";
