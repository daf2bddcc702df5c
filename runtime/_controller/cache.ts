// Internal: the one place where the controller runtime touches the watch/cache layer.
//
// Today it builds on the public Reflector (its store, indexes and `changes()` stream). When the
// `_watcher` state machine and the store module of the architecture issue land, only this file
// changes: the rest of the controller sees `SharedSource` (read, get, byIndex, version,
// subscribe, waitForVersion, ready, failed).
//
// One source per Client and per api + selectors: every controller and every user of
// `sharedCache()` in the process asking for the same collection shares one watch and one cache.
// The source runs while somebody holds it (reference counted) and stops with the last release.

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import type { Clock } from "../../clock.ts";
import { type CacheChange, type IndexFunction, Reflector } from "../../reflector.ts";
import { compareResourceVersions } from "./resource_version.ts";
import { baseClient } from "./tracking.ts";

const log = getLogger(["kube", "controller"]);

/** Selectors that make a different collection (and so a different watch). */
export interface SourceSelectors {
  labelSelector?: string;
  fieldSelector?: string;
  /** A KEP-5866 shard selector (one cache per shard range). */
  shardSelector?: string;
  /** The Reflector's store mode (each mode is its own source). */
  store?: "objects" | "compact";
}

/** A listener of cache changes, called synchronously after the cache holds the change. */
export type ChangeListener<T> = (change: CacheChange<T>) => void;

/** What the controller runtime needs of a cache. */
export interface SharedSource<T extends KubeObject> {
  readonly api: Api<T>;
  /** `group/resource (namespace) selectors`, for log lines and errors. */
  readonly description: string;
  /** Whether a label or field selector narrows it (a write may never show up in it). */
  readonly selective: boolean;
  readonly ready: Promise<void>;
  /** Rejects when the watch fails permanently (403, 404, …); never resolves otherwise. */
  readonly failed: Promise<never>;
  read(): ReadonlyMap<string, T>;
  get(key: string): T | undefined;
  byIndex(name: string, value: string): T[];
  index(name: string, fn: IndexFunction<T>): void;
  version(): string;
  subscribe(listener: ChangeListener<T>): () => void;
  /**
   * Waits until the cache has seen `rv` (a comparable resource version of this resource type),
   * at most `timeoutMs`. Answers `true` when it has, `false` on timeout or when the versions are
   * not comparable.
   */
  waitForVersion(rv: string, timeoutMs: number, signal: AbortSignal): Promise<boolean>;
  /** Relists and watch restarts of the underlying Reflector (for metrics). */
  stats(): { relists: number; watchRestarts: number };
  release(): Promise<void>;
}

interface Entry {
  id: string;
  refs: number;
  reflector: Reflector<KubeObject>;
  listeners: Set<ChangeListener<KubeObject>>;
  versionWaiters: Set<() => void>;
  stop: AbortController;
  running: Promise<void>;
  failed: Promise<never>;
  description: string;
  selective: boolean;
  dead: boolean;
  /** The clock of the first holder: paces retries and read-your-writes waits. */
  clock: Clock;
}

const registries = new WeakMap<Client, Map<string, Entry>>();

/**
 * The identity of a watched collection: resource, namespace, label and field selectors (what a
 * controller's related watch or a sharded view is keyed by).
 */
export function collectionId(
  api: Api<KubeObject>,
  selectors: { labelSelector?: string; fieldSelector?: string },
): string {
  return JSON.stringify([
    api.group,
    api.version,
    api.plural,
    api.namespace ?? "",
    selectors.labelSelector ?? "",
    selectors.fieldSelector ?? "",
  ]);
}

/** The identity of a shared source: its collection, shard selector and store mode. */
function sourceId(api: Api<KubeObject>, selectors: SourceSelectors): string {
  return JSON.stringify([
    collectionId(api, selectors),
    selectors.shardSelector ?? "",
    selectors.store === "compact" ? "compact" : "",
  ]);
}

function describeSource(api: Api<KubeObject>, selectors: SourceSelectors): string {
  const resource = api.group ? `${api.plural}.${api.group}` : api.plural;
  const where = api.namespaced
    ? api.namespace ? ` in namespace ${api.namespace}` : " in all namespaces"
    : "";
  const sel = [selectors.labelSelector, selectors.fieldSelector, selectors.shardSelector].filter(
    Boolean,
  ).join(", ");
  return `${resource}${where}${sel ? ` (${sel})` : ""}`;
}

/**
 * Acquires the shared source of a collection, starting its watch when it is the first holder.
 *
 * @param clock Paces the watch's retries (the Reflector's backoff sleeps on it).
 */
export function acquireSource<T extends KubeObject>(
  client: Client,
  api: Api<T>,
  selectors: SourceSelectors,
  clock: Clock,
): SharedSource<T> {
  // A reconcile's ctx.client shares the caches of the client behind it.
  client = baseClient(client);
  let registry = registries.get(client);
  if (!registry) registries.set(client, registry = new Map());
  const id = sourceId(api as Api<KubeObject>, selectors);
  let entry = registry.get(id);
  if (!entry || entry.dead) {
    entry = startEntry(client, api as Api<KubeObject>, selectors, clock, id, registry);
    registry.set(id, entry);
  }
  entry.refs++;
  return handle(entry, registry) as unknown as SharedSource<T>;
}

/** How many sources run for a client (for tests and counters). */
export function sourceCount(client: Client): number {
  return registries.get(baseClient(client))?.size ?? 0;
}

function startEntry(
  client: Client,
  api: Api<KubeObject>,
  selectors: SourceSelectors,
  clock: Clock,
  id: string,
  registry: Map<string, Entry>,
): Entry {
  const reflector = new Reflector(client, api, {
    labelSelector: selectors.labelSelector,
    fieldSelector: selectors.fieldSelector,
    shardSelector: selectors.shardSelector,
    store: selectors.store,
    clock,
  });
  const stop = new AbortController();
  const listeners = new Set<ChangeListener<KubeObject>>();
  const versionWaiters = new Set<() => void>();
  const description = describeSource(api, selectors);
  let fail!: (error: unknown) => void;
  const failed = new Promise<never>((_, reject) => fail = reject);
  failed.catch(() => {});
  const entry: Entry = {
    id,
    refs: 0,
    reflector,
    listeners,
    versionWaiters,
    stop,
    running: Promise.resolve(),
    failed,
    description,
    selective: Boolean(selectors.labelSelector || selectors.fieldSelector),
    dead: false,
    clock,
  };
  // The change stream first, so that it sees the first sync.
  const changes = reflector.changes({ signal: stop.signal });
  const pumping = (async () => {
    for await (const change of changes) {
      for (const listener of listeners) {
        try {
          listener(change);
        } catch (e) {
          log.error("A change listener of {source} threw: {error}", {
            source: description,
            error: e,
          });
        }
      }
      for (const wake of versionWaiters) wake();
    }
  })();
  const running = reflector.run({ signal: stop.signal });
  entry.running = Promise.allSettled([running, pumping]).then(([run]) => {
    if (run.status === "rejected" && !stop.signal.aborted) {
      entry.dead = true;
      if (registry.get(id) === entry) registry.delete(id);
      fail(run.reason);
      for (const wake of versionWaiters) wake();
    }
  });
  return entry;
}

function handle(entry: Entry, registry: Map<string, Entry>): SharedSource<KubeObject> {
  const reflector = entry.reflector;
  const api = reflector.api;
  let released = false;
  const own = new Set<ChangeListener<KubeObject>>();
  return {
    api,
    description: entry.description,
    selective: entry.selective,
    ready: reflector.ready,
    failed: entry.failed,
    read: () => reflector.read(),
    get: (key) => reflector.read().get(key),
    byIndex: (name, value) => reflector.byIndex(name, value),
    index: (name, fn) => {
      reflector.index(name, fn);
    },
    version: () => reflector.version(),
    stats: () => reflector.stats(),
    subscribe(listener) {
      entry.listeners.add(listener);
      own.add(listener);
      return () => {
        entry.listeners.delete(listener);
        own.delete(listener);
      };
    },
    async waitForVersion(rv, timeoutMs, signal) {
      const caughtUp = () => {
        const cmp = compareResourceVersions(reflector.version(), rv);
        return cmp !== undefined && cmp >= 0;
      };
      if (compareResourceVersions(reflector.version() || "1", rv) === undefined) return false;
      if (caughtUp()) return true;
      if (entry.dead || timeoutMs <= 0) return false;
      return await new Promise<boolean>((resolve) => {
        const timer = new AbortController();
        const done = (value: boolean) => {
          entry.versionWaiters.delete(wake);
          signal.removeEventListener("abort", onAbort);
          timer.abort();
          resolve(value);
        };
        const wake = () => {
          if (caughtUp()) done(true);
          else if (entry.dead) done(false);
        };
        const onAbort = () => done(false);
        entry.versionWaiters.add(wake);
        signal.addEventListener("abort", onAbort, { once: true });
        entry.clock.sleep(timeoutMs, timer.signal).then(() => done(false), () => {});
      });
    },
    async release() {
      if (released) return;
      released = true;
      for (const listener of own) entry.listeners.delete(listener);
      own.clear();
      entry.refs--;
      if (entry.refs > 0) return;
      if (registry.get(entry.id) === entry) registry.delete(entry.id);
      entry.dead = true;
      entry.stop.abort();
      await entry.running;
    },
  };
}
