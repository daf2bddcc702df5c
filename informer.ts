/**
 * {@linkcode Informer}: a watch that never ends. It re-watches after the server closes the
 * stream, backs off on transient failures, and re-lists after `410 Expired`, emitting the
 * difference so that no deletion is lost.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "./api.ts";
import type { Transport } from "./_client/transport.ts";
import {
  type InitialSync,
  type LiveEvent,
  Watcher,
  type WatcherStep,
  type WatchLoopOptions,
} from "./_client/watcher.ts";
import type { WatchEvent } from "./watch.ts";

const log = getLogger(["kube", "informer"]);

/**
 * Options of {@linkcode Informer}: the shared watch loop options, a start resource version and
 * bookmark delivery.
 */
export interface InformerOptions extends WatchLoopOptions {
  /**
   * Start from this resource version: deliver only changes made after it (no initial list).
   * After a `410 Expired` the informer re-lists and, knowing nothing yet, emits every object as
   * ADDED.
   */
  resourceVersion?: string;
  /**
   * How the informer (re)lists (see {@linkcode WatchLoopOptions.initialSync}). Default `list`:
   * a paged list, then a watch from its resource version.
   */
  initialSync?: InitialSync;
  /** Deliver BOOKMARK events too. Default false: bookmarks only advance the resource version. */
  bookmarks?: boolean;
}

/** Options of {@linkcode Informer.prototype.init}, `poll` and `stream`. */
export interface InformerRunOptions {
  /** Stops the work; the response body is cancelled. */
  signal?: AbortSignal;
}

/**
 * Watches a collection forever and delivers {@linkcode WatchEvent}s.
 *
 * Two ways to use it:
 *
 * - Iterate it (`for await (const event of informer)`, or `informer.stream({ signal })`): it first
 *   delivers the objects that exist as ADDED events (unless {@linkcode Informer.prototype.init}
 *   ran or a `resourceVersion` was given: then only later changes), then every change, forever.
 * - Call {@linkcode Informer.prototype.poll} in a loop: one watch of at most
 *   {@linkcode Informer.prototype.timeout} seconds per call; take the events with
 *   {@linkcode Informer.prototype.pop}.
 *
 * Recovery rules: after the server ends a watch normally, it watches again from the last
 * resource version. Transient failures (network, stall, malformed line, 408, 429, 5xx) are logged
 * and retried after a backoff (800 ms doubling to 30 s with jitter, reset after 2 min of health)
 * or the server's `Retry-After`; they never reach the caller. After `410 Expired`/`Gone` (as an
 * HTTP status or an ERROR event) it re-lists and emits the difference between what it had
 * delivered and the new list: ADDED and MODIFIED for new and changed objects (unchanged ones are
 * not repeated) and DELETED for objects that disappeared meanwhile. The informer keeps only
 * `key → resourceVersion`, so such a DELETED event carries a minimal object: `apiVersion`,
 * `kind` and `metadata` `{ name, namespace, resourceVersion }` (the last resource version
 * delivered). Permanent failures (401, 403, 404, 400, 422, …) end the iteration, or the `poll`,
 * by throwing the {@linkcode ApiError}.
 *
 * ERROR events are never delivered. BOOKMARK events are delivered only with the `bookmarks`
 * option.
 *
 * @typeParam T The object type.
 *
 * @example Print every change to pods in a namespace
 * ```ts ignore
 * import { Api, Client, Informer } from "@denokube/kube";
 * await using client = await Client.infer();
 * const informer = new Informer(client, Api.v1Pod().within("default")).labels("app=web");
 * for await (const event of informer) {
 *   if (event.type !== "BOOKMARK") console.log(event.type, event.object.metadata?.name);
 * }
 * ```
 *
 * @example Seed style: poll and pop
 * ```ts ignore
 * import { Api, Client, Informer } from "@denokube/kube";
 * await using client = await Client.infer();
 * const informer = new Informer(client, Api.v1Pod()).timeout(15);
 * await informer.init();
 * while (true) {
 *   await informer.poll();
 *   for (let event = informer.pop(); event; event = informer.pop()) console.log(event.type);
 * }
 * ```
 */
export class Informer<T extends KubeObject = KubeObject> implements AsyncIterable<WatchEvent<T>> {
  /** The resource type (and namespace) watched. */
  readonly api: Api<T>;
  #options: InformerOptions;
  #watcher: Watcher<T>;
  /** key → resourceVersion of what was delivered. */
  #known = new Map<string, string>();
  /** The content of a relist in progress: its objects in order, and key → resourceVersion. */
  #building: { objects: T[]; keys: Map<string, string> } | undefined;
  #queue: WatchEvent<T>[] = [];
  #head = 0;
  #busy = false;

  /**
   * Creates an informer. Nothing is requested until `init`, `poll` or iteration.
   *
   * @param client The client.
   * @param api The resource type, narrowed with `.within(ns)` or across all namespaces.
   * @param options Start resource version, selectors, timings.
   */
  constructor(client: Transport, api: Api<T>, options: InformerOptions = {}) {
    this.api = api;
    this.#options = options;
    this.#watcher = new Watcher(
      client,
      api,
      { ...options, initialSync: options.initialSync ?? "list" },
      log,
      "Watch",
    );
  }

  /**
   * Sets the server-side timeout of each {@linkcode Informer.prototype.poll} (default 10 s).
   * Iteration uses `watchTimeoutSeconds` (default random 5–10 min) instead.
   *
   * @param seconds Seconds, at least 1.
   * @returns This informer.
   */
  timeout(seconds: number): this {
    this.#watcher.setPollTimeout(seconds);
    return this;
  }

  /**
   * Watches only objects whose labels match.
   *
   * @param selector A label selector, e.g. `app=web,tier!=db`.
   * @returns This informer.
   */
  labels(selector: string): this {
    this.#watcher.labelSelector = selector;
    return this;
  }

  /**
   * Watches only objects whose fields match.
   *
   * @param selector A field selector, e.g. `status.phase=Running`.
   * @returns This informer.
   */
  fields(selector: string): this {
    this.#watcher.fieldSelector = selector;
    return this;
  }

  /**
   * The resource version the next watch starts from (opaque; `""` before the first list).
   *
   * @returns The resource version.
   */
  version(): string {
    return this.#watcher.resourceVersion ?? "";
  }

  /**
   * Takes the oldest queued event.
   *
   * @returns The event, or `undefined` when the queue is empty.
   */
  pop(): WatchEvent<T> | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const event = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined as unknown as WatchEvent<T>;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return event;
  }

  /**
   * Lists the collection to learn its current resource version and which objects exist, without
   * queueing them: afterwards only changes are delivered. Transient failures are thrown here.
   *
   * @param options An abort signal.
   * @returns Resolves when the list is complete.
   */
  async init(options: InformerRunOptions = {}): Promise<void> {
    this.#enter();
    try {
      for await (const step of this.#watcher.sync(options.signal)) this.#step(step, false);
    } finally {
      this.#building = undefined;
      this.#busy = false;
    }
  }

  /**
   * Runs one round: a list first if needed (queueing the objects as ADDED, or after a 410 the
   * difference), then one watch of at most {@linkcode Informer.prototype.timeout} seconds whose
   * events are queued for {@linkcode Informer.prototype.pop}.
   *
   * A transient failure is logged and resolves normally; the next `poll` first waits the backoff
   * delay (or `Retry-After`). A permanent failure rejects with the {@linkcode ApiError}; aborting
   * rejects with the signal's reason.
   *
   * @param options An abort signal.
   * @returns Resolves when the round is over.
   */
  async poll(options: InformerRunOptions = {}): Promise<void> {
    this.#enter();
    try {
      for await (const step of this.#watcher.poll(options.signal)) {
        if (step.type !== "events") {
          this.#step(step, true);
          continue;
        }
        const events = step.events;
        for (let i = 0; i < events.length; i++) {
          const event = this.#apply(events[i]);
          if (event) this.#queue.push(event);
        }
      }
    } finally {
      this.#building = undefined;
      this.#busy = false;
    }
  }

  /**
   * Delivers events forever: queued events first, then (when needed) the listed objects as
   * ADDED, then every change. Ends quietly when `signal` aborts; throws only permanent failures.
   *
   * @param options An abort signal.
   * @returns An async iterator of events.
   */
  stream(options: InformerRunOptions = {}): AsyncIterableIterator<WatchEvent<T>> {
    return this.#stream(options.signal);
  }

  /**
   * Same as {@linkcode Informer.prototype.stream} without a signal: break out of the loop to
   * stop.
   *
   * @returns An async iterator of events.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<WatchEvent<T>> {
    return this.#stream(undefined);
  }

  async *#stream(signal: AbortSignal | undefined): AsyncGenerator<WatchEvent<T>, void, undefined> {
    this.#enter();
    let batch: LiveEvent<T>[] | undefined;
    let delivered = 0;
    try {
      for (let event = this.pop(); event; event = this.pop()) yield event;
      if (signal?.aborted) return;
      for await (const step of this.#watcher.run(signal)) {
        if (step.type !== "events") {
          this.#step(step, true);
          for (let event = this.pop(); event; event = this.pop()) yield event;
          continue;
        }
        batch = step.events;
        for (delivered = 0; delivered < batch.length;) {
          const event = this.#apply(batch[delivered++]);
          if (event) yield event;
        }
        batch = undefined;
      }
    } finally {
      // Left in the middle of a batch: the next watch resumes after the last delivered event.
      if (batch !== undefined) {
        this.#watcher.advance(batch, delivered);
      }
      this.#building = undefined;
      this.#busy = false;
    }
  }

  #enter(): void {
    if (this.#busy) {
      throw new TypeError(
        "This Informer is already running (a poll, init or iteration is in progress)",
      );
    }
    this.#busy = true;
  }

  /** Updates the key index for one watch event; returns it when it is to be delivered. */
  #apply(event: LiveEvent<T>): WatchEvent<T> | undefined {
    if (event.type === "BOOKMARK") return this.#options.bookmarks ? event : undefined;
    const key = this.api.keyOf(event.object);
    if (event.type === "DELETED") this.#known.delete(key);
    else this.#known.set(key, event.object.metadata?.resourceVersion ?? "");
    return event;
  }

  /** Follows a sync; at its end, queues the difference with what was delivered when `emit`. */
  #step(step: WatcherStep<T>, emit: boolean): void {
    switch (step.type) {
      case "init-start":
        this.#building = { objects: [], keys: new Map() };
        return;
      case "init-objects": {
        const building = this.#building!;
        const api = this.api;
        for (const object of step.objects) {
          const key = api.keyOf(object);
          if (building.keys.has(key)) {
            building.objects[building.objects.findIndex((o) => api.keyOf(o) === key)] = object;
          } else building.objects.push(object);
          building.keys.set(key, object.metadata?.resourceVersion ?? "");
        }
        return;
      }
      case "init-delete": {
        const building = this.#building!;
        for (const object of step.objects) {
          const key = this.api.keyOf(object);
          if (!building.keys.delete(key)) continue;
          building.objects.splice(
            building.objects.findIndex((o) => this.api.keyOf(o) === key),
            1,
          );
        }
        return;
      }
      case "init-done":
        this.#relisted(step.resourceVersion, emit);
        return;
      case "events":
        for (const event of step.events) {
          const delivered = this.#apply(event);
          if (delivered) this.#queue.push(delivered);
        }
        return;
    }
  }

  #relisted(resourceVersion: string, emit: boolean): void {
    const { objects, keys: after } = this.#building ?? { objects: [], keys: new Map() };
    this.#building = undefined;
    const before = this.#known;
    const api = this.api;
    let added = 0, modified = 0, deleted = 0;
    if (emit) {
      for (const object of objects) {
        const old = before.get(api.keyOf(object));
        if (old === undefined) {
          this.#queue.push({ type: "ADDED", object });
          added++;
        } else if (old !== (object.metadata?.resourceVersion ?? "")) {
          this.#queue.push({ type: "MODIFIED", object });
          modified++;
        }
      }
      for (const [key, rv] of before) {
        if (after.has(key)) continue;
        this.#queue.push({ type: "DELETED", object: tombstone(api, key, rv) });
        deleted++;
      }
    }
    this.#known = after;
    log.debug(
      "Listed {count} objects of {path} at resourceVersion {resourceVersion} " +
        "({added} added, {modified} modified, {deleted} deleted)",
      {
        path: api.collectionPath(),
        count: objects.length,
        resourceVersion,
        added,
        modified,
        deleted,
      },
    );
  }
}

/**
 * The minimal object of a DELETED event synthesised after a re-list.
 *
 * @param api The resource type.
 * @param key `namespace/name` or `name`.
 * @param resourceVersion The last resource version delivered.
 * @returns An object with `apiVersion`, `kind` and `metadata` only.
 */
function tombstone<T extends KubeObject>(api: Api<T>, key: string, resourceVersion: string): T {
  const slash = key.indexOf("/");
  const metadata = slash === -1
    ? { name: key, resourceVersion }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1), resourceVersion };
  return { apiVersion: api.apiVersion, kind: api.kind, metadata } as T;
}

export type { BackoffOptions } from "./_client/retry.ts";
export type { InitialSync, WatchLoopOptions } from "./_client/watcher.ts";
