// Internal: what a sharded Manager puts between its Controllers and the caches.
//
// - `Sharding` owns the ShardLeases and one `ShardedSource` per primary resource + selectors,
//   shared by every Controller of the replica on that resource. It turns lease events into
//   cache changes (acquired: start the shard's cache, queue its keys; lost: abort its work, drop
//   its cache) and counts the work in flight per shard, so a hand-over can wait for it.
// - `ShardedSource` is the primary source a sharded Controller sees: the objects of the held
//   shards. On a server that honours KEP-5866 `shardSelector` (a probe list answers with
//   `metadata.shardInfo`), one shared cache per shard range (`acquireSource` with the selector);
//   else one unsharded shared cache, filtered here by the same hash (the log and the
//   `kube_sharding_filter_mode` metric say so). Either way every object is checked against the
//   held shards by its hash, so a server that changes its mind cannot leak another shard's keys.

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import type { Clock } from "../../clock.ts";
import { ApiError, isTransient } from "../../errors.ts";
import type { CacheChange, IndexFunction } from "../../reflector.ts";
import {
  acquireSource,
  type ChangeListener,
  collectionId,
  type SharedSource,
  type SourceSelectors,
} from "../_controller/cache.ts";
import {
  ShardFencedError,
  type ShardGate,
  shardGates,
  type ShardTicket,
} from "../_controller/gate.ts";
import { compareResourceVersions } from "../_controller/resource_version.ts";
import {
  fieldValue,
  fnv1a64,
  type HashRange,
  type ShardField,
  shardOfHash,
  shardRanges,
  shardSelector,
} from "./hash.ts";
import { type ShardHooks, ShardLeases, type ShardLeasesOptions } from "./leases.ts";
import type { Registry } from "../metrics.ts";

const log = getLogger(["kube", "sharding"]);

/** How a sharded source filters: by the server (`shardSelector`) or here, by the same hash. */
export type FilterMode = "server" | "client";

/** The resolved settings of a Manager's sharding. */
export interface ShardingSettings extends Omit<ShardLeasesOptions, "clock"> {
  field: ShardField;
}

/** The abort reason of a reconcile whose shard was lost or handed over. */
export class ShardLostError extends Error {
  constructor(shard: number, reason: string) {
    super(`Shard ${shard} is no longer held by this replica: ${reason}`);
    this.name = "ShardLostError";
  }
}

/** The shard of an object (by the hash of its field). */
export function shardOfObject(
  object: KubeObject,
  field: ShardField,
  ranges: readonly HashRange[],
): number {
  return shardOfHash(fnv1a64(fieldValue(object, field)), ranges);
}

/** The Manager's sharding: leases, per-shard work accounting, shared sharded sources. */
export class Sharding {
  readonly leases: ShardLeases;
  readonly settings: ShardingSettings;
  readonly ranges: HashRange[];
  /** Writes refused by fencing, so far. */
  fencedWrites = 0;
  #client: Client;
  #clock: Clock;
  #abort: (AbortController | undefined)[];
  #inflight: number[];
  #idle = new Map<number, Set<() => void>>();
  #sources = new Map<string, ShardedSource>();
  #shards = new WeakMap<KubeObject, number>();

  constructor(client: Client, settings: ShardingSettings, clock: Clock) {
    this.#client = client;
    this.#clock = clock;
    this.settings = settings;
    this.ranges = shardRanges(settings.shards);
    this.#abort = new Array(settings.shards).fill(undefined);
    this.#inflight = new Array(settings.shards).fill(0);
    const hooks: ShardHooks = {
      acquired: (shard) => {
        this.#abort[shard] = new AbortController();
        for (const source of this.#sources.values()) source.addShard(shard);
      },
      drain: (shard, timeoutMs) => this.#drain(shard, timeoutMs),
      lost: (shard, reason) => {
        this.#abort[shard]?.abort(new ShardLostError(shard, reason));
        this.#abort[shard] = undefined;
        for (const source of this.#sources.values()) source.removeShard(shard);
      },
    };
    this.leases = new ShardLeases(client, { ...settings, clock }, hooks);
  }

  /**
   * The shard of an object. Cached objects are never mutated (a change is a new object), so the
   * answer is remembered per object: the hot paths (every change, every queued key) hash once.
   */
  shardOf(object: KubeObject): number {
    let shard = this.#shards.get(object);
    if (shard === undefined) {
      shard = shardOfObject(object, this.settings.field, this.ranges);
      this.#shards.set(object, shard);
    }
    return shard;
  }

  /** The sharded sources (for metrics and readiness). */
  sources(): ShardedSource[] {
    return [...this.#sources.values()];
  }

  /** `true`, or which shard caches have not synced yet. */
  ready(): true | string {
    const waiting: string[] = [];
    for (const source of this.#sources.values()) {
      const missing = source.unsynced();
      if (missing) waiting.push(missing);
    }
    return waiting.length === 0 ? true : waiting.join("; ");
  }

  /** Makes a Controller (before its `run()`) run on the shards this replica holds. */
  attach(controller: object): void {
    shardGates.set(controller, this.gate());
  }

  /** A gate for one Controller (see runtime/_controller/gate.ts). */
  gate(): ShardGate {
    let source: ShardedSource | undefined;
    const group = this.settings.name;
    return {
      primary: <T extends KubeObject>(
        client: Client,
        api: Api<T>,
        selectors: SourceSelectors,
        clock: Clock,
      ): SharedSource<T> => {
        source = this.#acquire(client, api as Api<KubeObject>, selectors, clock);
        return source.handle() as unknown as SharedSource<T>;
      },
      owns: (key) => {
        const object = source?.get(key);
        return object !== undefined && this.leases.accepting(this.shardOf(object));
      },
      enter: (key): ShardTicket | undefined => {
        const object = source?.get(key);
        if (object === undefined) return undefined;
        const shard = this.shardOf(object);
        const abort = this.#abort[shard];
        if (!abort || !this.leases.accepting(shard)) return undefined;
        this.#inflight[shard]++;
        let open = true;
        return {
          signal: abort.signal,
          check: () => {
            if (this.leases.proven(shard) && this.#abort[shard] === abort) return;
            this.fencedWrites++;
            throw new ShardFencedError(key, shard, group);
          },
          exit: () => {
            if (!open) return;
            open = false;
            if (--this.#inflight[shard] === 0) {
              for (const wake of this.#idle.get(shard) ?? []) wake();
            }
          },
        };
      },
    };
  }

  /** Work in flight on a shard now. */
  inflight(shard: number): number {
    return this.#inflight[shard];
  }

  async #drain(shard: number, timeoutMs: number): Promise<boolean> {
    if (this.#inflight[shard] === 0) return true;
    const timer = new AbortController();
    let wake!: () => void;
    const idle = new Promise<boolean>((resolve) => wake = () => resolve(true));
    let waiters = this.#idle.get(shard);
    if (!waiters) this.#idle.set(shard, waiters = new Set());
    waiters.add(wake);
    try {
      return await Promise.race([
        idle,
        this.#clock.sleep(timeoutMs, timer.signal).then(() => false, () => false),
      ]);
    } finally {
      timer.abort();
      waiters.delete(wake);
    }
  }

  #acquire(
    client: Client,
    api: Api<KubeObject>,
    selectors: SourceSelectors,
    clock: Clock,
  ): ShardedSource {
    const id = collectionId(api, selectors);
    let source = this.#sources.get(id);
    if (!source || source.closed) {
      source = new ShardedSource(this, client, api, selectors, clock, () => {
        if (this.#sources.get(id) === source) this.#sources.delete(id);
      });
      this.#sources.set(id, source);
      for (const shard of this.leases.held()) source.addShard(shard);
    }
    return source;
  }
}

/** The objects of the held shards of one resource (see the module comment). */
export class ShardedSource {
  readonly api: Api<KubeObject>;
  readonly description: string;
  mode: FilterMode | undefined;
  closed = false;
  #sharding: Sharding;
  #client: Client;
  #selectors: SourceSelectors;
  #clock: Clock;
  #onClose: () => void;
  #refs = 0;
  #held = new Set<number>();
  #members = new Map<number, { source: SharedSource<KubeObject>; off: () => void }>();
  #synced = new Set<number>();
  #full: SharedSource<KubeObject> | undefined;
  #listeners = new Set<ChangeListener<KubeObject>>();
  #indexes: [string, IndexFunction<KubeObject>][] = [];
  #stop = new AbortController();
  #ready: Promise<void>;
  #failed: Promise<never>;
  #fail!: (e: unknown) => void;
  #waiters = new Set<() => void>();

  constructor(
    sharding: Sharding,
    client: Client,
    api: Api<KubeObject>,
    selectors: SourceSelectors,
    clock: Clock,
    onClose: () => void,
  ) {
    this.#sharding = sharding;
    this.#client = client;
    this.api = api;
    this.#selectors = selectors;
    this.#clock = clock;
    this.#onClose = onClose;
    const resource = api.group ? `${api.plural}.${api.group}` : api.plural;
    this.description = `${resource}${api.namespace ? ` in namespace ${api.namespace}` : ""} (${
      [selectors.labelSelector, selectors.fieldSelector].filter(Boolean).join(", ") ||
      "all"
    }, shards of ${sharding.settings.name})`;
    this.#failed = new Promise<never>((_, reject) => this.#fail = reject);
    this.#failed.catch(() => {});
    this.#ready = this.#start();
    this.#ready.catch(() => {});
  }

  /** The resource, for logs and metrics. */
  get resource(): string {
    return this.api.group ? `${this.api.plural}.${this.api.group}` : this.api.plural;
  }

  /** Decides the mode (probe), then starts the caches of the shards held. */
  async #start(): Promise<void> {
    const settings = this.#sharding.settings;
    const selector = shardSelector(settings.field, [this.#sharding.ranges[0]]);
    for (let attempt = 1;; attempt++) {
      this.#stop.signal.throwIfAborted();
      try {
        const list = await this.#client.list(this.api, {
          limit: 1,
          labelSelector: this.#selectors.labelSelector,
          fieldSelector: this.#selectors.fieldSelector,
          shardSelector: selector,
          signal: this.#stop.signal,
        });
        const echoed = (list.metadata as { shardInfo?: { selector?: string } } | undefined)
          ?.shardInfo?.selector;
        this.mode = echoed ? "server" : "client";
        break;
      } catch (e) {
        if (this.#stop.signal.aborted) throw e;
        if (e instanceof ApiError && e.status === 400) {
          // The gate is on but the selector was refused: a bug of ours; the hash still works.
          log.error("The API server refused the shard selector {selector} on {resource}: {error}", {
            selector,
            resource: this.resource,
            error: e.message,
          });
          this.mode = "client";
          break;
        }
        if (!(e instanceof ApiError) || !(isTransient(e) || e.status === 0)) {
          this.#fail(e);
          throw e;
        }
        log.warn(
          "Probe of shardSelector support on {resource} failed (attempt {attempt}): {error}",
          {
            resource: this.resource,
            attempt,
            error: e.message,
          },
        );
        await this.#clock.sleep(Math.min(30_000, 500 * 2 ** attempt), this.#stop.signal);
      }
    }
    if (this.mode === "server") {
      log.info(
        "{resource}: the API server filters by shard (KEP-5866 shardSelector): one cache per held shard",
        {
          resource: this.resource,
        },
      );
      for (const shard of this.#held) this.#addMember(shard);
      return;
    }
    log.warn(
      "{resource}: the API server ignores shardSelector (no metadata.shardInfo: the ShardedListAndWatch feature gate is off, or the server is older than 1.36); filtering by the hash here, over one unsharded watch: every replica receives every object",
      { resource: this.resource },
    );
    const full = acquireSource(this.#client, this.api, this.#selectors, this.#clock);
    this.#full = full;
    for (const [name, fn] of this.#indexes) full.index(name, fn);
    const fresh = full.version() === "";
    full.subscribe((change) => this.#forward(change));
    full.failed.catch((e) => this.#fail(e));
    await Promise.race([full.ready, full.failed]);
    for (const shard of this.#held) {
      if (fresh) this.#synced.add(shard); // its first sync came as ADDED changes
      else this.#emitShard(shard);
    }
  }

  addShard(shard: number): void {
    if (this.#held.has(shard)) return;
    this.#held.add(shard);
    if (this.mode === "server") this.#addMember(shard);
    else if (this.mode === "client" && this.#full) {
      // The unsharded cache holds the shard's objects already: queue their keys once synced.
      const full = this.#full;
      full.ready.then(() => {
        if (this.#held.has(shard) && this.#full === full) this.#emitShard(shard);
      }, () => {});
    }
    // Before the probe ends, #start picks the held shards up.
  }

  removeShard(shard: number): void {
    if (!this.#held.delete(shard)) return;
    this.#synced.delete(shard);
    const member = this.#members.get(shard);
    if (!member) return;
    this.#members.delete(shard);
    member.off();
    member.source.release().catch(() => {});
  }

  #addMember(shard: number): void {
    if (this.closed || this.#members.has(shard)) return;
    const settings = this.#sharding.settings;
    const source = acquireSource(this.#client, this.api, {
      ...this.#selectors,
      shardSelector: shardSelector(settings.field, [this.#sharding.ranges[shard]]),
    }, this.#clock);
    for (const [name, fn] of this.#indexes) source.index(name, fn);
    // A cache not synced yet reports its first sync as ADDED changes to this subscription; one
    // another holder synced before (or a relist of ours) does not: queue its keys at ready.
    const fresh = source.version() === "";
    // A member answers for its own shard only (also should the server not filter).
    const off = source.subscribe((change) => this.#forward(change, shard));
    this.#members.set(shard, { source, off });
    source.failed.catch((e) => {
      if (this.#members.get(shard)?.source === source) this.#fail(e);
    });
    source.ready.then(() => {
      if (this.#members.get(shard)?.source !== source) return;
      if (fresh) {
        this.#synced.add(shard);
        for (const wake of this.#waiters) wake();
      } else this.#emitShard(shard);
    }, () => {});
  }

  /** Announces the objects of a newly held shard as ADDED (the controller queues their keys). */
  #emitShard(shard: number): void {
    this.#synced.add(shard);
    const objects: KubeObject[] = [];
    for (const object of this.#objects()) {
      if (this.#sharding.shardOf(object) === shard) objects.push(object);
    }
    for (const object of objects) this.#emit({ type: "ADDED", object });
    for (const wake of this.#waiters) wake();
  }

  #forward(change: CacheChange<KubeObject>, member?: number): void {
    const shard = this.#sharding.shardOf(change.object);
    if (!this.#held.has(shard) || (member !== undefined && shard !== member)) return;
    this.#emit(change);
    for (const wake of this.#waiters) wake();
  }

  #emit(change: CacheChange<KubeObject>): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (e) {
        log.error("A change listener of {source} threw: {error}", {
          source: this.description,
          error: e,
        });
      }
    }
  }

  /** The caches with the shard each answers for (`undefined`: the unsharded one, any held). */
  #caches(): [SharedSource<KubeObject>, number | undefined][] {
    if (this.#full) return [[this.#full, undefined]];
    return [...this.#members].map(([shard, { source }]) => [source, shard]);
  }

  /** Whether an object of a cache is one of the held shards' (and that cache's own shard). */
  #mine(object: KubeObject, member: number | undefined): boolean {
    const shard = this.#sharding.shardOf(object);
    return this.#held.has(shard) && (member === undefined || shard === member);
  }

  /** Every object of the held shards (each once). */
  *#objects(): Iterable<KubeObject> {
    for (const [source, member] of this.#caches()) {
      for (const object of source.read().values()) if (this.#mine(object, member)) yield object;
    }
  }

  get(key: string): KubeObject | undefined {
    for (const [source, member] of this.#caches()) {
      const object = source.get(key);
      if (object && this.#mine(object, member)) return object;
    }
    return undefined;
  }

  read(): Map<string, KubeObject> {
    const out = new Map<string, KubeObject>();
    for (const [source, member] of this.#caches()) {
      for (const [key, object] of source.read()) {
        if (this.#mine(object, member)) out.set(key, object);
      }
    }
    return out;
  }

  /** Cached objects per held shard (the `kube_sharding_keys` metric). */
  keysPerShard(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const shard of this.#held) counts.set(shard, 0);
    for (const object of this.#objects()) {
      const shard = this.#sharding.shardOf(object);
      if (counts.has(shard)) counts.set(shard, counts.get(shard)! + 1);
    }
    return counts;
  }

  /** `undefined` when every held shard's cache has synced, else what is missing. */
  unsynced(): string | undefined {
    if (this.mode === undefined) return `${this.resource}: probing shardSelector support`;
    const missing = [...this.#held].filter((s) => !this.#synced.has(s)).sort((a, b) => a - b);
    return missing.length ? `${this.resource}: shards ${missing.join(", ")} not synced` : undefined;
  }

  #version(): string {
    let best = "";
    const sources = this.#full ? [this.#full] : [...this.#members.values()].map((m) => m.source);
    for (const source of sources) {
      const v = source.version();
      const cmp = compareResourceVersions(v, best);
      if (best === "" || (cmp !== undefined && cmp > 0)) best = v;
    }
    return best;
  }

  /** A holder's view, as `acquireSource` gives (released by the controller). */
  handle(): SharedSource<KubeObject> {
    this.#refs++;
    const own = new Set<ChangeListener<KubeObject>>();
    let released = false;
    return {
      api: this.api,
      description: this.description,
      selective: false,
      ready: this.#ready,
      failed: this.#failed,
      read: () => this.read(),
      get: (key) => this.get(key),
      byIndex: (name, value) => {
        const out: KubeObject[] = [];
        for (const [source, member] of this.#caches()) {
          for (const o of source.byIndex(name, value)) if (this.#mine(o, member)) out.push(o);
        }
        return out;
      },
      index: (name, fn) => {
        this.#indexes.push([name, fn]);
        this.#full?.index(name, fn);
        for (const { source } of this.#members.values()) source.index(name, fn);
      },
      version: () => this.#version(),
      subscribe: (listener) => {
        this.#listeners.add(listener);
        own.add(listener);
        return () => {
          this.#listeners.delete(listener);
          own.delete(listener);
        };
      },
      // With one cache per shard, a write is seen by the cache of its object's shard; this
      // answers when any held shard's cache has reached `rv` (the caches of one resource share
      // the server's watch cache, so they advance together).
      waitForVersion: async (rv, timeoutMs, signal) => {
        const caughtUp = () => {
          const cmp = compareResourceVersions(this.#version(), rv);
          return cmp !== undefined && cmp >= 0;
        };
        if (compareResourceVersions(this.#version() || "1", rv) === undefined) return false;
        if (caughtUp()) return true;
        if (timeoutMs <= 0) return false;
        return await new Promise<boolean>((resolve) => {
          const timer = new AbortController();
          const done = (value: boolean) => {
            this.#waiters.delete(wake);
            signal.removeEventListener("abort", onAbort);
            timer.abort();
            resolve(value);
          };
          const wake = () => caughtUp() && done(true);
          const onAbort = () => done(false);
          this.#waiters.add(wake);
          signal.addEventListener("abort", onAbort, { once: true });
          this.#clock.sleep(timeoutMs, timer.signal).then(() => done(false), () => {});
        });
      },
      stats: () => {
        const total = { relists: 0, watchRestarts: 0 };
        const sources = this.#full
          ? [this.#full]
          : [...this.#members.values()].map((m) => m.source);
        for (const source of sources) {
          const s = source.stats();
          total.relists += s.relists;
          total.watchRestarts += s.watchRestarts;
        }
        return total;
      },
      release: async () => {
        if (released) return;
        released = true;
        for (const listener of own) this.#listeners.delete(listener);
        if (--this.#refs > 0) return;
        await this.#close();
      },
    };
  }

  async #close(): Promise<void> {
    this.closed = true;
    this.#onClose();
    this.#stop.abort();
    await this.#ready.catch(() => {});
    const releasing = [...this.#members.values()].map(({ source, off }) => {
      off();
      return source.release();
    });
    this.#members.clear();
    if (this.#full) releasing.push(this.#full.release());
    this.#full = undefined;
    await Promise.all(releasing);
  }
}

/**
 * Registers the sharding metrics: shards held and their fair share, members, hand-overs, cached
 * objects per shard, the filtering mode per resource, fenced writes.
 */
export function registerShardingMetrics(registry: Registry, sharding: Sharding): void {
  const group = sharding.settings.name;
  const held = registry.gauge({
    name: "kube_sharding_shards_held",
    help: "Shards whose lease this replica holds now.",
    labelNames: ["group"],
  });
  const share = registry.gauge({
    name: "kube_sharding_shards_share",
    help: "This replica's fair share of the shards (shards / live members).",
    labelNames: ["group"],
  });
  const members = registry.gauge({
    name: "kube_sharding_members",
    help: "Live replicas this replica counted at its last lease round.",
    labelNames: ["group"],
  });
  const handovers = registry.counter({
    name: "kube_sharding_handovers_total",
    help:
      "Shard lease changes of this replica: acquired, released (after drain), lost (renew deadline or taken), abandoned (work did not stop; left to expire).",
    labelNames: ["group", "event"],
  });
  const keys = registry.gauge({
    name: "kube_sharding_keys",
    help: "Cached primary objects per held shard.",
    labelNames: ["group", "resource", "shard"],
  });
  const mode = registry.gauge({
    name: "kube_sharding_filter_mode",
    help:
      "1 for how a sharded cache is filtered: server (KEP-5866 shardSelector) or client (the server ignores it: one unsharded watch, hashed here).",
    labelNames: ["group", "resource", "mode"],
  });
  const fenced = registry.counter({
    name: "kube_sharding_fenced_writes_total",
    help: "Writes through ctx.client refused because the key's shard was no longer proven held.",
    labelNames: ["group"],
  });
  const stats = sharding.leases.stats;
  for (const event of ["acquired", "released", "lost", "abandoned"] as const) {
    handovers.inc({ group, event }, 0);
  }
  fenced.inc({ group }, 0);
  registry.onCollect(() => {
    held.set({ group }, sharding.leases.held().length);
    share.set({ group }, sharding.leases.share());
    members.set({ group }, sharding.leases.members().length);
    for (const event of ["acquired", "released", "lost", "abandoned"] as const) {
      handovers.inc({ group, event }, Math.max(0, stats[event] - handovers.get({ group, event })));
    }
    fenced.inc({ group }, Math.max(0, sharding.fencedWrites - fenced.get({ group })));
    keys.reset();
    for (const source of sharding.sources()) {
      const resource = source.resource;
      for (const [shard, count] of source.keysPerShard()) {
        keys.set({ group, resource, shard: String(shard) }, count);
      }
      for (const m of ["server", "client"] as const) {
        mode.set({ group, resource, mode: m }, source.mode === m ? 1 : 0);
      }
    }
  });
}
