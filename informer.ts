/**
 * {@linkcode Informer}: a watch that never ends. It re-watches after the server closes the
 * stream, backs off on transient failures, and re-lists after `410 Expired`, emitting the
 * difference so that no deletion is lost.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "./api.ts";
import type { Client } from "./client.ts";
import type { BackoffOptions } from "./_backoff.ts";
import { DEFAULT_PAGE_SIZE, listSnapshot, randomWatchTimeout, RetryPacer } from "./_list.ts";
import { watchBatches, type WatchEvent } from "./watch.ts";

const log = getLogger(["kube", "informer"]);

/** Options of {@linkcode Informer}. Most exist so that tests can make time pass quickly. */
export interface InformerOptions {
  /**
   * Start from this resource version: deliver only changes made after it (no initial list).
   * After a `410 Expired` the informer re-lists and, knowing nothing yet, emits every object as
   * ADDED.
   */
  resourceVersion?: string;
  /** Label selector (same as {@linkcode Informer.prototype.labels}). */
  labelSelector?: string;
  /** Field selector (same as {@linkcode Informer.prototype.fields}). */
  fieldSelector?: string;
  /**
   * Server-side timeout of each watch request of {@linkcode Informer.prototype.stream}, in
   * seconds. Default: random in [300, 600] for every request, like client-go.
   */
  watchTimeoutSeconds?: number;
  /**
   * Milliseconds without data after which a watch stream is considered dead and retried.
   * Default: the watch's `timeoutSeconds` plus 30 s.
   */
  inactivityTimeoutMs?: number;
  /** Backoff of retries after transient failures. Default 800 ms doubling to 30 s, jittered. */
  backoff?: BackoffOptions;
  /** Waits between retries; replaceable in tests. Must reject with the signal's reason on abort. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Items per page of a (re-)list. Default 500. */
  pageSize?: number;
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
  #client: Client;
  #options: InformerOptions;
  #timeout = 10;
  #labels: string | undefined;
  #fields: string | undefined;
  #rv: string | undefined;
  #known = new Map<string, string>();
  #needList: boolean;
  #queue: WatchEvent<T>[] = [];
  #head = 0;
  #pacer: RetryPacer;
  #busy = false;

  /**
   * Creates an informer. Nothing is requested until `init`, `poll` or iteration.
   *
   * @param client The client.
   * @param api The resource type, narrowed with `.within(ns)` or across all namespaces.
   * @param options Start resource version, selectors, timings.
   */
  constructor(client: Client, api: Api<T>, options: InformerOptions = {}) {
    this.#client = client;
    this.api = api;
    this.#options = options;
    this.#labels = options.labelSelector;
    this.#fields = options.fieldSelector;
    this.#rv = options.resourceVersion || undefined;
    this.#needList = this.#rv === undefined;
    this.#pacer = new RetryPacer(options, log, "Watch");
  }

  /**
   * Sets the server-side timeout of each {@linkcode Informer.prototype.poll} (default 10 s).
   * Iteration uses `watchTimeoutSeconds` (default random 5–10 min) instead.
   *
   * @param seconds Seconds, at least 1.
   * @returns This informer.
   */
  timeout(seconds: number): this {
    if (!(seconds >= 1)) throw new RangeError(`timeout must be at least 1 second, got ${seconds}`);
    this.#timeout = Math.floor(seconds);
    return this;
  }

  /**
   * Watches only objects whose labels match.
   *
   * @param selector A label selector, e.g. `app=web,tier!=db`.
   * @returns This informer.
   */
  labels(selector: string): this {
    this.#labels = selector;
    return this;
  }

  /**
   * Watches only objects whose fields match.
   *
   * @param selector A field selector, e.g. `status.phase=Running`.
   * @returns This informer.
   */
  fields(selector: string): this {
    this.#fields = selector;
    return this;
  }

  /**
   * The resource version the next watch starts from (opaque; `""` before the first list).
   *
   * @returns The resource version.
   */
  version(): string {
    return this.#rv ?? "";
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
      await this.#relist(options.signal, false);
    } finally {
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
    const signal = options.signal;
    try {
      await this.#pacer.wait(signal);
      try {
        if (this.#needList) await this.#relist(signal, true);
        for await (const batch of this.#watch(this.#timeout, signal)) {
          for (const raw of batch) {
            const event = this.#apply(raw);
            if (event) this.#queue.push(event);
          }
        }
      } catch (e) {
        if (this.#recover(e, signal) !== "relist") return;
        try {
          await this.#relist(signal, true);
        } catch (e2) {
          this.#recover(e2, signal);
        }
      }
    } finally {
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
    try {
      for (;;) {
        for (let event = this.pop(); event; event = this.pop()) yield event;
        if (signal?.aborted) return;
        try {
          await this.#pacer.wait(signal);
          if (this.#needList) {
            await this.#relist(signal, true);
            continue;
          }
          const timeout = this.#options.watchTimeoutSeconds ?? randomWatchTimeout();
          let received = 0;
          for await (const batch of this.#watch(timeout, signal)) {
            for (const raw of batch) {
              received++;
              const event = this.#apply(raw);
              if (event) yield event;
            }
          }
          if (received === 0) this.#pacer.idle(this.api.collectionPath());
        } catch (e) {
          if (signal?.aborted) return;
          this.#recover(e, signal);
        }
      }
    } finally {
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

  #watch(timeoutSeconds: number, signal: AbortSignal | undefined) {
    return watchBatches(this.#client, this.api, {
      resourceVersion: this.#rv,
      labelSelector: this.#labels,
      fieldSelector: this.#fields,
      timeoutSeconds,
      allowWatchBookmarks: true,
      inactivityTimeoutMs: this.#options.inactivityTimeoutMs,
      signal,
      retry: false,
    });
  }

  /**
   * Decides what to do after a failure: rethrows aborts and permanent failures, marks a re-list,
   * or schedules a retry.
   */
  #recover(error: unknown, signal: AbortSignal | undefined): "relist" | "retry" {
    const decision = this.#pacer.decide(error, signal, this.api.collectionPath(), this.#rv);
    if (decision === "relist") this.#needList = true;
    return decision;
  }

  /** Updates the resource version and the key index for one watch event. */
  #apply(event: WatchEvent<T>): WatchEvent<T> | undefined {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const rv = event.object.metadata?.resourceVersion;
        const key = this.api.keyOf(event.object);
        if (event.type === "DELETED") this.#known.delete(key);
        else this.#known.set(key, rv ?? "");
        if (rv) this.#rv = rv;
        return event;
      }
      case "BOOKMARK":
        if (event.resourceVersion) this.#rv = event.resourceVersion;
        return this.#options.bookmarks ? event : undefined;
      case "ERROR":
        throw event.error;
    }
  }

  /** Lists everything, and queues the difference with what was delivered when `emit`. */
  async #relist(signal: AbortSignal | undefined, emit: boolean): Promise<void> {
    const snapshot = await listSnapshot(this.#client, this.api, {
      labelSelector: this.#labels,
      fieldSelector: this.#fields,
      pageSize: this.#options.pageSize ?? DEFAULT_PAGE_SIZE,
      signal,
    });
    const before = this.#known;
    const after = new Map<string, string>();
    const api = this.api;
    let added = 0, modified = 0, deleted = 0;
    for (const object of snapshot.items) {
      const key = api.keyOf(object);
      const rv = object.metadata?.resourceVersion ?? "";
      after.set(key, rv);
      if (!emit) continue;
      const old = before.get(key);
      if (old === undefined) {
        this.#queue.push({ type: "ADDED", object });
        added++;
      } else if (old !== rv) {
        this.#queue.push({ type: "MODIFIED", object });
        modified++;
      }
    }
    if (emit) {
      for (const [key, rv] of before) {
        if (after.has(key)) continue;
        this.#queue.push({ type: "DELETED", object: tombstone(api, key, rv) });
        deleted++;
      }
    }
    this.#known = after;
    this.#rv = snapshot.resourceVersion;
    this.#needList = false;
    log.debug(
      "Listed {count} objects of {path} at resourceVersion {resourceVersion} " +
        "({added} added, {modified} modified, {deleted} deleted)",
      {
        path: api.collectionPath(),
        count: snapshot.items.length,
        resourceVersion: snapshot.resourceVersion,
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

export type { BackoffOptions } from "./_backoff.ts";
