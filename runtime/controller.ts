/**
 * {@linkcode Controller}: the runtime of a Kubernetes controller. It watches a primary resource
 * (and the objects it owns or relates to) through shared caches, and calls your reconcile
 * function for each object that needs it, level-based: keys, not events; never two reconciles of
 * one key at once; per-key backoff after errors; requeues that are never dropped; and a
 * reconcile that never starts from a cache older than its own last write.
 *
 * @example A controller that keeps a ConfigMap per Foo
 * ```ts ignore
 * import { Api, Client, Controller } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const foos = Api.customResource<{ info: string }>("foos").group("clux.dev").version("v1");
 * const controller = new Controller(client, foos, async (foo, ctx) => {
 *   await ctx.client.apply(Api.v1ConfigMap(), {
 *     metadata: {
 *       name: foo.metadata!.name,
 *       namespace: foo.metadata!.namespace,
 *       ownerReferences: [ownerReference(foo)],
 *     },
 *     data: { info: foo.spec.info },
 *   }, { fieldManager: "foo-controller" });
 *   return { requeueAfter: 5 * 60_000 };
 * }).owns(Api.v1ConfigMap());
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => stop.abort());
 * await controller.run(stop.signal);
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Span } from "@opentelemetry/api";
import type { Api, KubeObject } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { ApiError, isForbidden } from "../errors.ts";
import { type EventInit, EventRecorder } from "./events.ts";
import type { CacheChange, IndexFunction } from "../reflector.ts";
import type { OwnerReference } from "../generated/meta_v1.ts";
import { acquireSource, collectionId, type SharedSource } from "./_controller/cache.ts";
import { LOW_PRIORITY, NORMAL_PRIORITY, type RunInfo, WorkQueue } from "./_controller/queue.ts";
import { trackingClient } from "./_controller/tracking.ts";
import { type ShardGate, shardGates, type ShardTicket } from "./_controller/gate.ts";
import { compareResourceVersions } from "./_controller/resource_version.ts";
import {
  changeCause,
  endReconcileSpan,
  runCause,
  startReconcileSpan,
  withSpan,
} from "./_controller/tracing.ts";

const log = getLogger(["kube", "controller"]);

/** How the initial sync and resyncs queue their keys. */
const LOW = { priority: LOW_PRIORITY } as const;
/** How long a stopping controller waits for aborted runs to end before it stops without them. */
const ABORT_WAIT_MS = 1_000;

// ---------------------------------------------------------------------------------------------
// Public types

/** Label and field selectors of a watched collection (each makes its own watch and cache). */
export interface Selectors {
  /** A label selector, e.g. `app=web`. */
  labelSelector?: string;
  /** A field selector, e.g. `spec.nodeName=node-1`. */
  fieldSelector?: string;
  /**
   * How the shared cache keeps its objects: `"objects"` (default) or `"compact"` (objects of
   * built-in kinds kept as their protobuf bytes plus key metadata, decoded when read; a fraction
   * of the memory, a decode per read; see `ReflectorOptions.store`). Each mode is its own cache.
   */
  store?: "objects" | "compact";
}

/** The logger of a reconcile (a LogTape logger with `controller`, `key` and `attempt`). */
export interface Logger {
  /** Logs at debug level; `{name}` placeholders are filled from `properties`. */
  debug(message: string, properties?: Record<string, unknown>): void;
  /** Logs at info level. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Logs at warning level. */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Logs at error level. */
  error(message: string, properties?: Record<string, unknown>): void;
}

/**
 * What a reconcile asks for next: nothing (`undefined` or `{}`: done until something changes), a
 * requeue after `requeueAfter` milliseconds, or, with `error`, a failed run that is retried
 * (after `requeueAfter` when given, else after the per-key backoff).
 */
export interface ReconcileAction {
  /** Reconcile this key again after this many milliseconds (even without a change). */
  requeueAfter?: number;
  /** The run failed: counted and logged as an error, and retried. */
  error?: unknown;
  /**
   * The priority of this key's requeue or retry (higher runs first): see
   * {@linkcode ReconcileContext.priority}. Default: the priority this run waited at, so a
   * requeue or retry keeps its place (a change's is not demoted behind the initial sync, an
   * initial sync's does not jump ahead of changes). Raise it for urgent work, lower it (below
   * {@linkcode Priority.low}) for housekeeping.
   */
  priority?: number;
}

/**
 * The priorities of the work queue (higher runs first; keys of one priority in the order they
 * were queued). Keys queued by the initial sync, by a watch added while running and by
 * {@linkcode Controller.prototype.reconcileAllOn} wait at `low`, behind keys queued by changes,
 * requeues and retries (`normal`); so after a start or a leader change an edit is reconciled
 * within a few reconciles, not after the whole initial wave.
 *
 * @example
 * ```ts
 * import { Priority } from "@denokube/kube";
 * const action = { requeueAfter: 60_000, priority: Priority.low };
 * ```
 */
export const Priority: {
  /** Changes, requeues and retries: 0. */
  readonly normal: number;
  /** The initial sync and resyncs: -100 (as controller-runtime's `LowPriority`). */
  readonly low: number;
} = Object.freeze({ normal: NORMAL_PRIORITY, low: LOW_PRIORITY });

/** The result of a reconcile function. */
export type ReconcileResult = ReconcileAction | void | undefined;

/**
 * Builders for {@linkcode ReconcileAction}s.
 *
 * @example
 * ```ts
 * import { Action } from "@denokube/kube";
 * const next = Action.requeue(30_000); // { requeueAfter: 30000 }
 * ```
 */
export const Action: {
  /** Done until something changes. */
  done(): ReconcileAction;
  /** Reconcile again after `ms` milliseconds. */
  requeue(ms: number): ReconcileAction;
  /** A failure to retry, after `ms` when given (else after the backoff). */
  retry(error: unknown, ms?: number): ReconcileAction;
} = Object.freeze({
  /**
   * Done until something changes.
   *
   * @returns The action.
   */
  done(): ReconcileAction {
    return {};
  },
  /**
   * Reconcile again after a delay.
   *
   * @param ms Milliseconds.
   * @returns The action.
   */
  requeue(ms: number): ReconcileAction {
    return { requeueAfter: ms };
  },
  /**
   * A failure to retry, after `ms` when given (else after the backoff).
   *
   * @param error The failure.
   * @param ms Milliseconds before the retry.
   * @returns The action.
   */
  retry(error: unknown, ms?: number): ReconcileAction {
    return ms === undefined ? { error } : { error, requeueAfter: ms };
  },
});

/**
 * Thrown (or returned as `error`) by a reconcile to say that retrying cannot help until the
 * object changes (an invalid spec, say). The key is not retried until its object changes (or a
 * {@linkcode Controller.prototype.reconcileAllOn} trigger fires).
 *
 * @example
 * ```ts
 * import { TerminalError } from "@denokube/kube";
 * throw new TerminalError("spec.replicas must be at most 10");
 * ```
 */
export class TerminalError extends Error {
  /**
   * Creates a terminal error.
   *
   * @param message What is wrong and how to fix it.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TerminalError";
  }
}

/** The object recorder of a reconcile: records events about the object being reconciled. */
export interface ObjectRecorder {
  /**
   * Records an event about the reconciled object (see {@linkcode EventRecorder.prototype.publish});
   * the write is aborted with the reconcile's `ctx.signal`.
   *
   * @param event Type, reason, action, note, related object.
   * @returns Resolves when written (never rejects for API failures).
   */
  publish(event: EventInit): Promise<void>;
}

/** What a reconcile gets besides the object. */
export interface ReconcileContext {
  /** The key: `namespace/name`, or `name` for cluster-scoped kinds. */
  readonly key: string;
  /**
   * Aborted when the controller stops and the grace period is over, or when
   * {@linkcode Controller.prototype.abortInFlight} is called (leadership loss). Pass it on.
   */
  readonly signal: AbortSignal;
  /**
   * Why this run happens: `added`, `changed`, `owned ConfigMap ns/x changed`,
   * `Secret ns/y changed`, `requeue`, `retry after error`, `trigger: …`, `initial sync`.
   */
  readonly reason: string;
  /** Every reason collected while the key waited (the first is {@linkcode ReconcileContext.reason}). */
  readonly reasons: readonly string[];
  /** 1 for the first run after a success; n for the (n-1)th retry after consecutive failures. */
  readonly attempt: number;
  /**
   * The priority this run waited at: {@linkcode Priority.normal} for changes, requeues and
   * retries, {@linkcode Priority.low} for the initial sync and resyncs, or what an earlier run
   * asked for in {@linkcode ReconcileAction.priority}.
   */
  readonly priority: number;
  /** A logger with `controller`, `key` and `attempt` properties. */
  readonly logger: Logger;
  /** Records events about the object. */
  readonly recorder: ObjectRecorder;
  /**
   * The client. Writes through it are remembered, so that the next reconcile of this key waits
   * until the caches have seen them (read your own writes).
   */
  readonly client: Client;
  /** The controller's name. */
  readonly controller: string;
}

/** A reconcile function. */
export type Reconciler<T extends KubeObject> = (
  object: T,
  ctx: ReconcileContext,
) => ReconcileResult | Promise<ReconcileResult>;

/** What the error policy decides: a delay in milliseconds, `"terminal"`, or the default. */
export type ErrorDecision = number | "terminal" | undefined;

/** The facts an error policy sees. */
export interface ErrorInfo {
  /** The key. */
  key: string;
  /** Consecutive failures of this key, this one included (1 = first failure). */
  attempt: number;
  /** The delay the controller would use: the server's Retry-After, else the backoff. */
  defaultDelayMs: number;
}

/** Picks the retry of a failed reconcile: see {@linkcode ControllerOptions.onError}. */
export type ErrorPolicy<T extends KubeObject> = (
  error: unknown,
  object: T,
  info: ErrorInfo,
) => ErrorDecision;

/** Decides whether a change of a watched object should queue its key. */
export type Predicate<T extends KubeObject> = (change: CacheChange<T>) => boolean;

/** Per-key exponential backoff after failures. */
export interface ControllerBackoff {
  /** Delay after the first failure, in milliseconds. Default 250. */
  initialMs?: number;
  /** Largest delay. Default 300 000 (5 minutes). */
  maxMs?: number;
  /** Growth per consecutive failure. Default 2. */
  factor?: number;
  /** Random stretch of each delay: up to `+jitter` of it. Default 0.2. */
  jitter?: number;
  /** Random source in [0, 1) (tests pass a constant). Default `Math.random`. */
  random?: () => number;
}

/** Options of {@linkcode Controller}. */
export interface ControllerOptions<T extends KubeObject> extends Selectors {
  /** Name in logs, outcomes, counters and as the events' reporting controller. Default `<kind>-controller`. */
  name?: string;
  /** How many keys are reconciled at once (never two runs of one key). Default 1. */
  concurrency?: number;
  /**
   * Filters changes of the primary objects: a MODIFIED change queues its key only when every
   * predicate answers true (ADDED and DELETED always do). See {@linkcode predicates}.
   */
  predicates?: readonly Predicate<T>[];
  /** Per-key backoff after failures. Default 250 ms doubling to 5 minutes, +0–20 % jitter. */
  backoff?: ControllerBackoff;
  /**
   * Chooses the delay after a failure (or `"terminal"`): it sees the error, the object and the
   * attempt. Without it (or when it answers `undefined`): a {@linkcode TerminalError} is
   * terminal, an {@linkcode ApiError} with `retryAfterSeconds` (429, 503) waits that long, and
   * anything else waits the backoff.
   */
  onError?: ErrorPolicy<T>;
  /** Optional global limit of reconcile starts per second across all keys. Default: none. */
  rateLimit?: { qps: number; burst: number };
  /** How long a stopping controller lets reconciles in progress finish before aborting their signal. Default 30 000 ms. */
  gracePeriodMs?: number;
  /**
   * Aborts a reconcile's `ctx.signal` after this many milliseconds (with a `TimeoutError`
   * DOMException as its reason) and counts the run as an error, retried after the backoff (as
   * controller-runtime's `ReconciliationTimeout`). A reconcile that ignores its signal is
   * reported by key and still counts as in flight until it returns (its key does not run twice).
   * Default: none.
   */
  reconcileTimeoutMs?: number;
  /**
   * Batches bursts: a key queued by a change runs this many milliseconds after the first change
   * of the burst (later changes within the window join it). Default 0 (at once).
   */
  debounceMs?: number;
  /** Longest wait for the caches to see this key's own last writes before a reconcile. Default 10 000 ms. */
  readYourWritesTimeoutMs?: number;
  /** Clock of every delay (backoff, requeue, grace period). Default: the system clock. */
  clock?: Clock;
  /** The event recorder (default: one reporting as `name`, instance `$POD_NAME` or random). */
  recorder?: EventRecorder;
}

/** Options of {@linkcode Controller.prototype.owns} and {@linkcode Controller.prototype.watches}. */
export interface RelatedOptions<U extends KubeObject> extends Selectors {
  /** Filters the changes of the related objects (MODIFIED only, as for the primary). */
  predicates?: readonly Predicate<U>[];
}

/** A primary object a related object maps to: a key (`ns/name` or `name`) or a name and namespace. */
export type ObjectKey = string | { name: string; namespace?: string };

/** Maps a related object to the keys of the primaries to reconcile. */
export type RelatedMapper<U extends KubeObject> = (object: U) => Iterable<ObjectKey>;

/** The result of one reconcile run. */
export type OutcomeResult = "success" | "requeue" | "error" | "terminal" | "gone" | "aborted";

/** One reconcile run, as reported by {@linkcode Controller.prototype.outcomes}. */
export interface ReconcileOutcome {
  /** The controller's name. */
  controller: string;
  /** The key. */
  key: string;
  /**
   * `success` (done), `requeue` (done, again later), `error` (retried), `terminal` (not retried
   * until the object changes), `gone` (the object no longer exists: nothing ran), `aborted` (the
   * run failed after the controller aborted its signal: shutdown or `abortInFlight`).
   */
  result: OutcomeResult;
  /** Milliseconds the reconcile took (by the controller's clock). */
  durationMs: number;
  /** The attempt (see {@linkcode ReconcileContext.attempt}). */
  attempt: number;
  /** For `error`: the run exceeded `reconcileTimeoutMs` (its signal was aborted). */
  timedOut?: boolean;
  /** The first reason of the run. */
  reason: string;
  /** The failure, for `error`, `terminal` and `aborted`. */
  error?: unknown;
  /** When the key runs again (requeue or retry delay), in milliseconds. */
  requeueAfterMs?: number;
}

/** Counters of a controller, as plain numbers (see {@linkcode Controller.prototype.stats}). */
export interface ControllerStats {
  /** Finished runs by result. */
  reconciles: Record<OutcomeResult, number>;
  /** Keys waiting to run now. */
  queueDepth: number;
  /** Keys waiting for a requeue or retry timer. */
  scheduled: number;
  /** Runs in progress. */
  inFlight: number;
  /** Retries scheduled after failures. */
  retries: number;
  /** Sum of the durations of finished runs, in milliseconds. */
  durationMsTotal: number;
  /** Longest run so far, in milliseconds. */
  durationMsMax: number;
  /** Reconciles that waited for the caches to see their own writes. */
  readYourWritesWaits: number;
  /** Of those, how many gave up after `readYourWritesTimeoutMs`. */
  readYourWritesTimeouts: number;
  /** Runs whose `reconcileTimeoutMs` expired (their signal was aborted). */
  timeouts: number;
}

/**
 * Ready-made predicates for {@linkcode ControllerOptions.predicates}.
 *
 * @example Skip status-only changes
 * ```ts ignore
 * new Controller(client, foos, reconcile, { predicates: [predicates.generationChanged] });
 * ```
 */
export const predicates: {
  /** True when `metadata.generation` changed, or the object started being deleted. */
  generationChanged(change: CacheChange<KubeObject>): boolean;
  /** True when the labels changed. */
  labelsChanged(change: CacheChange<KubeObject>): boolean;
  /** True when the annotations changed. */
  annotationsChanged(change: CacheChange<KubeObject>): boolean;
  /** True when any of the predicates is. */
  anyOf<T extends KubeObject>(...list: Predicate<T>[]): Predicate<T>;
} = Object.freeze({
  /**
   * True when `metadata.generation` changed (a spec change, not a status or metadata one), or
   * when the object started being deleted.
   *
   * @param change The change.
   * @returns Whether to queue.
   */
  generationChanged(change: CacheChange<KubeObject>): boolean {
    const before = change.old?.metadata;
    const after = change.object.metadata;
    if (!before?.deletionTimestamp && after?.deletionTimestamp) return true;
    return before?.generation !== after?.generation;
  },
  /**
   * True when the labels changed.
   *
   * @param change The change.
   * @returns Whether to queue.
   */
  labelsChanged(change: CacheChange<KubeObject>): boolean {
    return !sameRecord(change.old?.metadata?.labels, change.object.metadata?.labels);
  },
  /**
   * True when the annotations changed.
   *
   * @param change The change.
   * @returns Whether to queue.
   */
  annotationsChanged(change: CacheChange<KubeObject>): boolean {
    return !sameRecord(change.old?.metadata?.annotations, change.object.metadata?.annotations);
  },
  /**
   * True when any of the predicates is.
   *
   * @param list Predicates.
   * @returns The combined predicate.
   */
  anyOf<T extends KubeObject>(...list: Predicate<T>[]): Predicate<T> {
    return (change) => list.some((p) => p(change));
  },
});

function sameRecord(
  a: Record<string, string> | undefined,
  b: Record<string, string> | undefined,
): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return ka.length === kb.length && ka.every((k) => a![k] === b?.[k]);
}

/**
 * An owner reference pointing at `owner` as its controller (what `owns()` follows), for the
 * `metadata.ownerReferences` of the objects a controller creates.
 *
 * @param owner The owner (needs `apiVersion`, `kind`, `metadata.name` and `metadata.uid`).
 * @param options `blockOwnerDeletion` (default true: foreground deletion waits for the dependent).
 * @returns The reference.
 *
 * @example
 * ```ts ignore
 * metadata: { name: "web", ownerReferences: [ownerReference(foo)] }
 * ```
 */
export function ownerReference(
  owner: KubeObject,
  options: { blockOwnerDeletion?: boolean } = {},
): OwnerReference {
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) {
    throw new TypeError(
      "ownerReference: the owner needs apiVersion, kind, metadata.name and metadata.uid (use the object as read from the API server)",
    );
  }
  return {
    apiVersion,
    kind,
    name,
    uid,
    controller: true,
    blockOwnerDeletion: options.blockOwnerDeletion ?? true,
  };
}

/**
 * A cache of a collection shared in the process: one watch per client, api and selectors,
 * whoever asks (controllers included). Release it when done; the watch stops with the last
 * holder.
 */
export interface SharedCache<T extends KubeObject> extends AsyncDisposable {
  /** Resolves after the first complete sync. */
  readonly ready: Promise<void>;
  /**
   * Rejects when the cache's watch stops for good (a permanent failure such as 403 Forbidden:
   * RBAC does not allow the list or watch), with that error; never resolves.
   */
  readonly failed: Promise<never>;
  /** The objects, keyed `namespace/name` (`name` for cluster-scoped kinds). */
  read(): ReadonlyMap<string, T>;
  /**
   * One object by key.
   *
   * @param key `namespace/name` or `name`.
   * @returns The object or `undefined`.
   */
  get(key: string): T | undefined;
  /**
   * Adds a secondary index (shared by every holder).
   *
   * @param name The index name.
   * @param fn Lists the values an object is indexed under.
   * @returns This cache.
   */
  index(name: string, fn: IndexFunction<T>): SharedCache<T>;
  /**
   * The objects indexed under a value.
   *
   * @param name The index name.
   * @param value The value.
   * @returns The objects.
   */
  byIndex(name: string, value: string): T[];
  /**
   * The resource version the cache is at.
   *
   * @returns The opaque version.
   */
  version(): string;
  /**
   * How often the cache's watch had to list again (after a 410 Expired or a failure that needs
   * it) or to watch again from its resource version (a stream that ended or broke).
   *
   * @returns The counters since the cache started.
   */
  stats(): { relists: number; watchRestarts: number };
  /**
   * Releases this holder.
   *
   * @returns Resolves when released (and the watch stopped, for the last holder).
   */
  release(): Promise<void>;
}

/**
 * The shared cache of a collection (see {@linkcode SharedCache}): the same watch and cache a
 * {@linkcode Controller} of this client uses for the same api and selectors.
 *
 * @param client The client.
 * @param api The resource type (and namespace).
 * @param options Label and field selectors; a clock for the watch's retry delays.
 * @returns A holder of the cache.
 *
 * @example
 * ```ts ignore
 * await using secrets = sharedCache(client, Api.v1Secret().within("apps"));
 * await secrets.ready;
 * console.log(secrets.read().size);
 * ```
 */
export function sharedCache<T extends KubeObject>(
  client: Client,
  api: Api<T>,
  options: Selectors & { clock?: Clock } = {},
): SharedCache<T> {
  const source = acquireSource(client, api, options, options.clock ?? systemClock);
  const cache: SharedCache<T> = {
    ready: source.ready,
    failed: source.failed,
    read: () => source.read(),
    get: (key) => source.get(key),
    index(name, fn) {
      source.index(name, fn);
      return cache;
    },
    byIndex: (name, value) => source.byIndex(name, value),
    version: () => source.version(),
    stats: () => source.stats(),
    release: () => source.release(),
    [Symbol.asyncDispose]: () => source.release(),
  };
  return cache;
}

// ---------------------------------------------------------------------------------------------
// Internals

interface Related {
  api: Api<KubeObject>;
  selectors: Selectors;
  predicates: readonly Predicate<KubeObject>[];
  /** Keys of the primaries an object maps to. */
  map: (object: KubeObject) => string[];
  /** How a change is described in ctx.reason. */
  label: (object: KubeObject) => string;
  source?: SharedSource<KubeObject>;
  /** Unsubscribes from the source's changes. */
  off?: () => void;
  /** Added while the controller ran and not synced yet: its changes queue at low priority. */
  syncing?: boolean;
  /**
   * Added while running: the versions of the objects its first sync queued, so that their
   * ADDED changes (which may arrive after the sync) are not changes. Each entry goes with the
   * object's first change; at most the collection's size.
   */
  initial?: Map<string, string | undefined>;
}

interface KeyState {
  /** Consecutive failures. */
  failures: number;
  /** The primary's resource version a terminal error was recorded at (ours after our writes). */
  terminalRv?: string;
  /** Resource versions the caches must reach before the next run (read your own writes). */
  writes: Map<SharedSource<KubeObject>, string>;
}

function groupOf(apiVersion: string | undefined): string {
  if (!apiVersion) return "";
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

function toKey(ref: ObjectKey, namespaced: boolean): string | undefined {
  if (typeof ref === "string") return ref || undefined;
  if (!ref?.name) return undefined;
  return namespaced && ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * A controller: reconciles each object of a primary resource whenever it, an object it owns, a
 * related object, or a global trigger changes, with the guarantees of the module description.
 *
 * Defaults, compared with controller-runtime (Go): per-key backoff 250 ms doubling to 5 min
 * with up to 20 % jitter (controller-runtime: 5 ms doubling to 1000 s, no jitter): the first
 * retries of a conflict should wait for the cache to catch up rather than hammer the server, and
 * a key that failed for a while (a dependency that was down) is retried within 5 minutes, not
 * 16. No global rate limit by default (controller-runtime: 10/s, burst 100): the server's API
 * Priority and Fairness and the client's 429 handling protect it; set `rateLimit` for a
 * bucket. `concurrency` 1, as `MaxConcurrentReconciles`. Grace period 30 s, as the manager's
 * `GracefulShutdownTimeout`.
 *
 * @typeParam T The primary object type.
 */
export class Controller<T extends KubeObject> {
  /** The name in logs, outcomes and counters, and the events' reporting controller. */
  readonly name: string;
  /** The primary resource type. */
  readonly api: Api<T>;
  /** The event recorder of the reconciles. */
  readonly recorder: EventRecorder;
  #client: Client;
  #reconcile: Reconciler<T>;
  #options: ControllerOptions<T>;
  #clock: Clock;
  #related: Related[] = [];
  #triggers: AsyncIterable<unknown>[] = [];
  #keys = new Map<string, KeyState>();
  #queue: WorkQueue | undefined;
  #primary: SharedSource<T> | undefined;
  #running = false;
  #stopping = false;
  /** The abort controller of each run in progress, with its key. */
  #inFlight = new Map<AbortController, string>();
  #hooks = new Set<(outcome: ReconcileOutcome) => void>();
  #stats: ControllerStats = {
    reconciles: { success: 0, requeue: 0, error: 0, terminal: 0, gone: 0, aborted: 0 },
    queueDepth: 0,
    scheduled: 0,
    inFlight: 0,
    retries: 0,
    durationMsTotal: 0,
    durationMsMax: 0,
    readYourWritesWaits: 0,
    readYourWritesTimeouts: 0,
    timeouts: 0,
  };
  #warnedOpaque = false;
  #started = false;
  /** Resource versions the running reconcile of a key wrote to its own object. */
  #runWrites = new Map<string, Set<string>>();
  /** Keys whose own-write echo arrived while they ran. */
  #echoes = new Set<string>();
  /** Keys queued by the start from a cache that was already synced, with their versions. */
  #initial = new Map<string, string | undefined>();
  /** The sharding of a sharded Manager (runtime/sharding.ts), while running. */
  #gate: ShardGate | undefined;

  /**
   * Creates a controller. Nothing is watched until {@linkcode Controller.prototype.run}.
   *
   * @param client The client (its shared caches are used).
   * @param api The primary resource, narrowed with `.within(ns)` or across all namespaces.
   * @param reconcile Called with the cached object and a {@linkcode ReconcileContext}.
   * @param options Name, concurrency, selectors, predicates, backoff, error policy, clock, …
   */
  constructor(
    client: Client,
    api: Api<T>,
    reconcile: Reconciler<T>,
    options: ControllerOptions<T> = {},
  ) {
    if (typeof reconcile !== "function") {
      throw new TypeError("Controller needs a reconcile function (object, ctx) => action");
    }
    this.#client = client;
    this.api = api;
    this.#reconcile = reconcile;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.name = options.name ?? `${api.kind.toLowerCase()}-controller`;
    this.recorder = options.recorder ??
      new EventRecorder(client, { reportingController: this.name, clock: this.#clock });
    const concurrency = options.concurrency ?? 1;
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
      throw new RangeError(
        `Controller ${this.name}: concurrency must be an integer ≥ 1, got ${concurrency}`,
      );
    }
    const timeout = options.reconcileTimeoutMs;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout > 0)) {
      throw new RangeError(
        `Controller ${this.name}: reconcileTimeoutMs must be a number of milliseconds > 0 (or left out for none), got ${timeout}`,
      );
    }
  }

  /**
   * Reconciles the owner of every object of `api` whose controller owner reference points at a
   * primary (same group and kind; other owners are ignored). May be called while the controller
   * runs (see {@linkcode Controller.prototype.watches}).
   *
   * @param api The owned resource (narrowed to the primary's namespace when it has none).
   * @param options Selectors and predicates for the owned objects.
   * @returns This controller.
   */
  owns<U extends KubeObject>(api: Api<U>, options: RelatedOptions<U> = {}): this {
    const primary = this.api;
    const scoped = this.#scope(api);
    this.#addRelated({
      api: scoped as Api<KubeObject>,
      selectors: options,
      predicates: (options.predicates ?? []) as Predicate<KubeObject>[],
      map: (object) => {
        const keys: string[] = [];
        for (const ref of object.metadata?.ownerReferences ?? []) {
          if (ref.controller !== true) continue;
          if (ref.kind !== primary.kind || groupOf(ref.apiVersion) !== primary.group) continue;
          const ns = object.metadata?.namespace;
          if (primary.namespaced) {
            if (!ns) continue;
            if (primary.namespace !== undefined && ns !== primary.namespace) continue;
            keys.push(`${ns}/${ref.name}`);
          } else {
            keys.push(ref.name);
          }
        }
        return keys;
      },
      label: (object) => `owned ${api.kind} ${scoped.keyOf(object)} changed`,
    });
    return this;
  }

  /**
   * Reconciles the primaries a related object maps to, for objects that are not owned (a
   * Secret a Foo names, say). The mapper may read a {@linkcode sharedCache}'s index.
   *
   * May be called while the controller runs: the watch starts at once (or joins the shared cache
   * of the collection), and once it has synced every primary one of its objects maps to is
   * queued at {@linkcode Priority.low} (reason `watch added: <Kind>`). A watch added while
   * running that fails for good (403 Forbidden, an unknown resource) is logged and removed; the
   * controller goes on. Remove it with {@linkcode Controller.prototype.unwatch}.
   *
   * @param api The related resource.
   * @param map Maps an object (its old and new state both) to primary keys.
   * @param options Selectors and predicates.
   * @returns This controller.
   */
  watches<U extends KubeObject>(
    api: Api<U>,
    map: RelatedMapper<U>,
    options: RelatedOptions<U> = {},
  ): this {
    const namespaced = this.api.namespaced;
    this.#addRelated({
      api: api as Api<KubeObject>,
      selectors: options,
      predicates: (options.predicates ?? []) as Predicate<KubeObject>[],
      map: (object) => {
        const keys: string[] = [];
        for (const ref of map(object as U)) {
          const key = toKey(ref, namespaced);
          if (key !== undefined) keys.push(key);
        }
        return keys;
      },
      label: (object) => `${api.kind} ${api.keyOf(object)} changed`,
    });
    return this;
  }

  /**
   * Stops following a collection added with {@linkcode Controller.prototype.owns} or
   * {@linkcode Controller.prototype.watches} (same resource, namespace and selectors), while the
   * controller runs or before. Its shared cache is released: the watch stops when no other
   * controller or {@linkcode sharedCache} holds it.
   *
   * @param api The resource given to `owns` or `watches`.
   * @param selectors The selectors given with it.
   * @returns How many registrations were removed (0 when none matched).
   *
   * @example
   * ```ts ignore
   * controller.watches(Api.v1Secret(), (s) => [s.metadata!.name!]);
   * // … later, while it runs:
   * await controller.unwatch(Api.v1Secret());
   * ```
   */
  async unwatch<U extends KubeObject>(api: Api<U>, selectors: Selectors = {}): Promise<number> {
    const wanted = new Set([
      collectionId(api as Api<KubeObject>, selectors),
      collectionId(this.#scope(api) as Api<KubeObject>, selectors),
    ]);
    const removed = this.#related.filter((r) => wanted.has(collectionId(r.api, r.selectors)));
    if (removed.length === 0) return 0;
    this.#related = this.#related.filter((r) => !removed.includes(r));
    await Promise.all(removed.map((r) => this.#detach(r)));
    log.info("Controller {controller} stopped watching {resource}", {
      controller: this.name,
      resource: api.plural,
    });
    return removed.length;
  }

  /**
   * Reconciles every cached primary each time the iterable yields (a configuration reload, a
   * timer). Keys stopped by a terminal error run again too.
   *
   * @param trigger Any async iterable; its values name the trigger in `ctx.reason`.
   * @returns This controller.
   */
  reconcileAllOn(trigger: AsyncIterable<unknown>): this {
    if (this.#running) throw new TypeError("reconcileAllOn() must be called before run()");
    this.#triggers.push(trigger);
    return this;
  }

  /**
   * Subscribes to outcomes synchronously (for metrics): called after every run.
   *
   * @param hook Called with each outcome; exceptions are logged and ignored.
   * @returns A function that unsubscribes.
   */
  onOutcome(hook: (outcome: ReconcileOutcome) => void): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  /**
   * The outcomes of the runs from now on, as an async iterable (buffered for a slow reader).
   *
   * @param options Ends the iteration when the signal aborts.
   * @returns The outcomes.
   */
  async *outcomes(options: { signal?: AbortSignal } = {}): AsyncGenerator<ReconcileOutcome> {
    const queue: ReconcileOutcome[] = [];
    let wake: (() => void) | undefined;
    const off = this.onOutcome((outcome) => {
      queue.push(outcome);
      wake?.();
    });
    const signal = options.signal;
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (signal?.aborted) return;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
    } finally {
      off();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The counters, as plain numbers (a fresh object each call).
   *
   * @returns The counters.
   */
  stats(): ControllerStats {
    const s = this.#stats;
    return {
      ...s,
      reconciles: { ...s.reconciles },
      queueDepth: this.#queue?.depth ?? 0,
      scheduled: this.#queue?.scheduled ?? 0,
      inFlight: this.#inFlight.size,
    };
  }

  /**
   * Aborts the `ctx.signal` of every reconcile running now (leadership lost, say); the
   * controller goes on. A run that fails after it counts as `aborted` (not as an error) and, when
   * the controller is not stopping, its key runs again.
   *
   * @param reason The abort reason.
   */
  abortInFlight(reason: unknown = new DOMException("Reconciles aborted", "AbortError")): void {
    for (const controller of this.#inFlight.keys()) controller.abort(reason);
  }

  /**
   * Runs the controller until `signal` aborts: waits for every cache to sync, then reconciles.
   * On abort it stops taking work, lets reconciles in progress finish within `gracePeriodMs`,
   * then aborts their `ctx.signal` and waits for them, stops the watches and resolves.
   *
   * @param signal Stops the controller.
   * @returns Resolves after a clean drain; rejects when a watch fails permanently (a 403
   *   Forbidden, say: the message names the resource and the verbs to grant).
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (this.#running) throw new TypeError(`Controller ${this.name} is already running`);
    this.#running = true;
    this.#stopping = false;
    const options = this.#options;
    const queue = new WorkQueue({
      clock: this.#clock,
      concurrency: options.concurrency ?? 1,
      rateLimit: options.rateLimit,
      paused: true,
      worker: (key, reasons, info) => this.#process(key, reasons, info),
    });
    this.#queue = queue;
    const sources: SharedSource<KubeObject>[] = [];
    const unsubscribe: (() => void)[] = [];
    const stopTriggers = new AbortController();
    let failure: unknown;
    try {
      this.#gate = shardGates.get(this);
      const primary = this.#gate
        ? this.#gate.primary(this.#client, this.api, options, this.#clock)
        : acquireSource(this.#client, this.api, options, this.#clock);
      this.#primary = primary;
      sources.push(primary as SharedSource<KubeObject>);
      unsubscribe.push(primary.subscribe((change) => this.#onPrimary(change)));
      for (const related of this.#related) sources.push(this.#attach(related));
      const stopped = new Promise<"stopped">((resolve) => {
        if (signal?.aborted) resolve("stopped");
        signal?.addEventListener("abort", () => resolve("stopped"), { once: true });
      });
      const failed = Promise.race(
        sources.map((s) =>
          s.failed.catch((e) =>
            // A watch removed with unwatch() no longer stops the controller.
            s === this.#primary || this.#related.some((r) => r.source === s)
              ? Promise.reject({ source: s, error: e })
              : new Promise<never>(() => {})
          )
        ),
      );
      failed.catch(() => {});
      // A permanent failure before the first sync rejects `ready` too: `failed` reports it.
      const synced = Promise.all(
        sources.map((s) => s.ready.catch(() => new Promise<never>(() => {}))),
      ).then(() => "synced" as const);
      const first = await Promise.race([synced, stopped, failed]);
      if (first === "synced") {
        // The first sync's ADDED changes may arrive after these runs: they are not changes.
        for (const [key, object] of primary.read()) {
          this.#initial.set(key, object.metadata?.resourceVersion);
          queue.add(key, "initial sync", { ...LOW, cause: changeCause(object) });
        }
        this.#started = true;
        queue.resume();
        log.info("Controller {controller} started: {count} {kind} objects in {source}", {
          controller: this.name,
          count: primary.read().size,
          kind: this.api.kind,
          source: primary.description,
        });
        for (const trigger of this.#triggers) this.#follow(trigger, stopTriggers.signal);
        await Promise.race([stopped, failed]);
      }
    } catch (e) {
      const { source, error } = e as { source?: SharedSource<KubeObject>; error?: unknown };
      failure = source ? this.#watchFailure(source, error) : e;
    } finally {
      this.#stopping = true;
      stopTriggers.abort();
      queue.stop();
      await this.#drain(queue);
      for (const off of unsubscribe) off();
      await Promise.all([
        this.#primary?.release(),
        ...this.#related.map((related) => this.#detach(related)),
      ]);
      this.#primary = undefined;
      this.#gate = undefined;
      this.#keys.clear();
      this.#initial.clear();
      this.#started = false;
      this.#running = false;
      log.info("Controller {controller} stopped", { controller: this.name });
    }
    if (failure !== undefined) throw failure;
  }

  // -------------------------------------------------------------------------------------------

  #scope<U extends KubeObject>(api: Api<U>): Api<U> {
    if (api.namespaced && api.namespace === undefined && this.api.namespace !== undefined) {
      return api.within(this.api.namespace);
    }
    return api;
  }

  #addRelated(related: Related): void {
    this.#related.push(related);
    if (this.#primary !== undefined && !this.#stopping) this.#startDynamic(related);
  }

  /** Acquires the related collection's shared source and follows its changes. */
  #attach(related: Related): SharedSource<KubeObject> {
    const source = acquireSource(this.#client, related.api, related.selectors, this.#clock);
    related.source = source;
    related.off = source.subscribe((change) => this.#onRelated(related, change));
    return source;
  }

  /** Stops following a related collection and releases its source. */
  async #detach(related: Related): Promise<void> {
    const source = related.source;
    related.off?.();
    related.off = undefined;
    related.source = undefined;
    related.syncing = false;
    related.initial = undefined;
    if (!source) return;
    // No reconcile waits for a cache it no longer holds.
    for (const state of this.#keys.values()) state.writes.delete(source);
    await source.release();
  }

  /** A watch added while running: attach, then queue what it maps to once it has synced. */
  #startDynamic(related: Related): void {
    const source = this.#attach(related);
    related.syncing = true;
    source.failed.catch((error) => {
      if (related.source !== source) return;
      this.#watchFailure(source, error, true); // logs it
      this.#related = this.#related.filter((r) => r !== related);
      this.#detach(related);
    });
    source.ready.then(() => {
      const queue = this.#queue;
      if (related.source !== source || !queue || this.#stopping) return;
      related.syncing = false;
      const reason = `watch added: ${related.api.kind}`;
      const initial = related.initial = new Map();
      for (const [id, object] of source.read()) {
        initial.set(id, object.metadata?.resourceVersion);
        for (const key of related.map(object)) {
          if (this.#keys.get(key)?.terminalRv !== undefined) continue;
          queue.add(key, reason, LOW);
        }
      }
    }, () => {});
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) this.#keys.set(key, state = { failures: 0, writes: new Map() });
    return state;
  }

  #onPrimary(change: CacheChange<T>): void {
    const queue = this.#queue;
    if (!queue || this.#stopping) return;
    const key = this.api.keyOf(change.object);
    if (this.#gate && change.type !== "DELETED" && !this.#gate.owns(key)) return;
    if (this.#initial.size > 0 && this.#initial.has(key)) {
      const rv = this.#initial.get(key);
      this.#initial.delete(key);
      if (
        change.type === "ADDED" && rv !== undefined &&
        rv === change.object.metadata?.resourceVersion
      ) {
        return;
      }
    }
    if (change.type === "MODIFIED") {
      for (const p of this.#options.predicates ?? []) if (!p(change)) return;
    }
    if (change.type === "MODIFIED") {
      const own = this.#runWrites.get(key);
      const rv = change.object.metadata?.resourceVersion;
      if (own !== undefined && rv !== undefined && own.has(rv)) {
        this.#echoes.add(key);
        return;
      }
    }
    const state = this.#keys.get(key);
    if (
      change.type === "MODIFIED" && state !== undefined && state.failures > 0 &&
      queue.hasRetry(key) &&
      state.writes.get(this.#primary as SharedSource<KubeObject>) ===
        change.object.metadata?.resourceVersion
    ) {
      // The echo of the failed run's own write (a status condition, say) while its retry waits:
      // not a reason to skip the backoff.
      return;
    }
    if (state?.terminalRv !== undefined && change.type !== "DELETED") {
      const rv = change.object.metadata?.resourceVersion;
      const cmp = compareResourceVersions(rv, state.terminalRv);
      // Not changed since the terminal error (our own writes included): stay stopped.
      if (rv === state.terminalRv || (cmp !== undefined && cmp <= 0)) return;
      state.terminalRv = undefined;
      state.failures = 0;
    }
    if (!this.#started) {
      queue.add(key, "initial sync", { ...LOW, cause: changeCause(change.object) });
      return;
    }
    this.#enqueue(
      key,
      change.type === "ADDED" ? "added" : change.type === "DELETED" ? "deleted" : "changed",
      change.object,
    );
  }

  /** Queues a key for a change of `object`: at once, or after the debounce window. */
  #enqueue(key: string, reason: string, object: KubeObject): void {
    const options = { cause: changeCause(object) };
    const debounce = this.#options.debounceMs ?? 0;
    if (debounce > 0 && !this.#queue!.isRunning(key)) {
      this.#queue!.addAfter(key, reason, debounce, "requeue", options);
    } else {
      this.#queue!.add(key, reason, options);
    }
  }

  #onRelated(related: Related, change: CacheChange<KubeObject>): void {
    const queue = this.#queue;
    if (!queue || this.#stopping) return;
    const initial = related.initial;
    if (initial !== undefined && initial.size > 0) {
      const id = related.api.keyOf(change.object);
      if (initial.has(id)) {
        const rv = initial.get(id);
        initial.delete(id);
        if (change.type === "ADDED" && rv === change.object.metadata?.resourceVersion) return;
      }
    }
    if (change.type === "MODIFIED") {
      for (const p of related.predicates) if (!p(change)) return;
    }
    const keys = new Set(related.map(change.object));
    if (change.old) { for (const key of related.map(change.old)) keys.add(key); }
    if (keys.size === 0) return;
    const reason = related.label(change.object);
    for (const key of keys) {
      if (this.#keys.get(key)?.terminalRv !== undefined) continue;
      if (this.#gate && !this.#gate.owns(key)) continue; // another replica's shard
      if (this.#started && !related.syncing) this.#enqueue(key, reason, change.object);
      else queue.add(key, reason, LOW);
    }
  }

  async #follow(trigger: AsyncIterable<unknown>, signal: AbortSignal): Promise<void> {
    const iterator = trigger[Symbol.asyncIterator]();
    const aborted = new Promise<IteratorResult<unknown>>((resolve) => {
      signal.addEventListener("abort", () => resolve({ done: true, value: undefined }), {
        once: true,
      });
    });
    try {
      for (;;) {
        const next = await Promise.race([iterator.next(), aborted]);
        if (next.done || signal.aborted) break;
        const reason = `trigger: ${String(next.value).slice(0, 80)}`;
        const primary = this.#primary;
        if (!primary || !this.#queue) break;
        for (const key of primary.read().keys()) {
          const state = this.#keys.get(key);
          if (state) {
            state.terminalRv = undefined;
          }
          this.#queue.add(key, reason, LOW);
        }
      }
    } catch (e) {
      log.error("The reconcileAllOn trigger of {controller} failed: {error}", {
        controller: this.name,
        error: describeError(e),
      });
    } finally {
      // Do not wait: a generator blocked in its own await finishes when it next resumes.
      iterator.return?.()?.catch?.(() => {});
    }
  }

  #watchFailure(source: SharedSource<KubeObject>, error: unknown, added = false): Error {
    const api = source.api;
    const resource = api.group ? `${api.plural}.${api.group}` : api.plural;
    const scope = api.namespaced
      ? api.namespace ? `in namespace ${api.namespace}` : "across all namespaces"
      : "(cluster-scoped)";
    const text = describeError(error);
    const hint = isForbidden(error)
      ? ` Grant the controller the verbs list and watch on ${resource} ${scope} (RBAC: a Role or ClusterRole rule with apiGroups: ["${api.group}"], resources: ["${api.plural}"], verbs: ["get", "list", "watch"]).`
      : "";
    const message = added
      ? `Controller ${this.name} removed the watch of ${source.description} added while it ran (it goes on without it): cannot list/watch: ${text}.${hint}`
      : `Controller ${this.name} stopped: cannot list/watch ${source.description}: ${text}.${hint}`;
    log.error("{message}", { controller: this.name, message, resource, verb: "watch" });
    return new Error(message, { cause: error });
  }

  async #drain(queue: WorkQueue): Promise<void> {
    if (queue.inFlight === 0) return;
    const grace = this.#options.gracePeriodMs ?? 30_000;
    const timer = new AbortController();
    const timedOut = this.#clock.sleep(grace, timer.signal).then(() => true, () => false);
    const finished = await Promise.race([queue.idle().then(() => false), timedOut]);
    timer.abort();
    if (finished) {
      log.warn(
        "Controller {controller}: {count} reconciles still running after the {grace} ms grace period: aborting them",
        { controller: this.name, count: queue.inFlight, grace },
      );
      this.abortInFlight(new DOMException("The controller is stopping", "AbortError"));
      // A reconcile that ignores its signal must not hold the shutdown: wait a moment, then go.
      const wait = new AbortController();
      const ended = await Promise.race([
        queue.idle().then(() => true),
        this.#clock.sleep(ABORT_WAIT_MS, wait.signal).then(() => false, () => false),
      ]);
      wait.abort();
      if (!ended) {
        log.error(
          "Controller {controller}: reconciles of {keys} ignore their aborted signal; stopping without them",
          { controller: this.name, keys: [...this.#inFlight.values()] },
        );
      }
    }
  }

  /** One run of one key: the worker of the queue. Never rejects. */
  async #process(key: string, reasons: string[], info: RunInfo): Promise<void> {
    const queue = this.#queue!;
    const primary = this.#primary!;
    const state = this.#state(key);
    const reason = reasons[0] ?? "requeue";
    const attempt = state.failures + 1;
    const priority = info.priority;
    const abort = new AbortController();
    let ticket: ShardTicket | undefined;
    let offShard: (() => void) | undefined;
    if (this.#gate) {
      ticket = this.#gate.enter(key);
      if (!ticket) {
        // Not this replica's key (any more): the replica holding its shard reconciles it.
        this.#keys.delete(key);
        queue.forget(key);
        return;
      }
      const shardSignal = ticket.signal;
      const onLost = () => abort.abort(shardSignal.reason);
      if (shardSignal.aborted) onLost();
      else {
        shardSignal.addEventListener("abort", onLost, { once: true });
        offShard = () => shardSignal.removeEventListener("abort", onLost);
      }
    }
    this.#inFlight.set(abort, key);
    const traced = startReconcileSpan(this.name, key, { reason, attempt, priority }, info.causes);
    let outcome: ReconcileOutcome | undefined;
    try {
      await this.#awaitOwnWrites(key, state, abort.signal);
      const object = primary.get(key);
      if (object === undefined) {
        // Deleted (or never there): nothing to reconcile, nothing to retry.
        this.#keys.delete(key);
        queue.forget(key);
        outcome = this.#emit({ key, result: "gone", durationMs: 0, attempt, reason });
        return;
      }
      if (state.terminalRv !== undefined && !reasons.some((r) => r.startsWith("trigger: "))) {
        return; // queued before its terminal error was recorded
      }
      const logger = log.with({ controller: this.name, key, attempt });
      const written: { api: Api<KubeObject>; object: KubeObject }[] = [];
      const ownWrites = new Set<string>();
      this.#runWrites.set(key, ownWrites);
      const ctx: ReconcileContext = {
        key,
        signal: abort.signal,
        reason,
        reasons,
        attempt,
        priority,
        logger,
        controller: this.name,
        recorder: {
          publish: (event) => this.recorder.publish(object, event, { signal: abort.signal }),
        },
        client: trackingClient(this.#client, (api, result) => {
          written.push({ api, object: result });
          const rv = result.metadata?.resourceVersion;
          if (
            rv && api.group === this.api.group && api.plural === this.api.plural &&
            this.api.keyOf(result) === key
          ) {
            ownWrites.add(rv);
          }
        }, ticket && (() => ticket!.check())),
      };
      const started = this.#clock.now();
      const deadline = this.#deadline(key, abort, logger);
      let result: ReconcileResult;
      let error: unknown;
      let threw = false;
      try {
        result = await withSpan(traced, () => this.#reconcile(object, ctx));
      } catch (e) {
        error = e;
        threw = true;
      } finally {
        deadline.stop();
      }
      const durationMs = this.#clock.now() - started;
      if (deadline.expired) {
        // Counted as an error whatever it answered: it may not have finished its work.
        if (!threw) error = abort.signal.reason;
        threw = true;
        result = undefined;
        if (durationMs > this.#options.reconcileTimeoutMs! + ABORT_WAIT_MS) {
          logger.warn(
            "Reconcile of {key} ended {late} ms after its timeout: it ignored its aborted signal",
            { key, late: Math.round(durationMs - this.#options.reconcileTimeoutMs!) },
          );
        }
      }
      this.#rememberWrites(key, state, written);
      if (!threw && result !== undefined && (typeof result !== "object" || result === null)) {
        error = new TypeError(
          `The reconcile of ${this.name} returned ${
            JSON.stringify(result)
          }: return undefined, { requeueAfter: ms } or { error }`,
        );
        threw = true;
      }
      const action: ReconcileAction = threw ? { error } : (result ?? {}) as ReconcileAction;
      const failed = threw || action.error !== undefined;
      this.#runWrites.delete(key);
      // The echo of this run's own write to its object: after a success it queues the key as
      // any change would; after a failure the retry (with its backoff) covers it.
      if (this.#echoes.delete(key) && !failed) queue.add(key, "changed");
      // The echo may also have come before the write's answer (the run was marked to run again):
      // when the cache holds nothing newer than this failed run's own write, the retry covers it.
      const cachedRv = primary.get(key)?.metadata?.resourceVersion;
      if (failed && cachedRv !== undefined && ownWrites.has(cachedRv)) queue.clearDirty(key);
      outcome = this.#settle(key, object, state, action, failed, {
        attempt,
        reason,
        durationMs,
        aborted: abort.signal.aborted && !deadline.expired,
        timedOut: deadline.expired,
        priority,
        span: traced.span,
        logger,
        written,
      });
    } catch (e) {
      // A bug of the controller itself (never of the reconcile): log it, keep going.
      log.error("Controller {controller}: internal error while processing {key}: {error}", {
        controller: this.name,
        key,
        error: e,
      });
    } finally {
      endReconcileSpan(
        traced,
        outcome?.result ?? "skipped",
        outcome?.error !== undefined ? describeError(outcome.error) : undefined,
        outcome?.timedOut,
      );
      this.#inFlight.delete(abort);
      this.#runWrites.delete(key);
      this.#echoes.delete(key);
      offShard?.();
      ticket?.exit();
    }
  }

  #settle(
    key: string,
    object: T,
    state: KeyState,
    action: ReconcileAction,
    failed: boolean,
    run: {
      attempt: number;
      reason: string;
      durationMs: number;
      aborted: boolean;
      timedOut: boolean;
      priority: number;
      span: Span | undefined;
      logger: Logger;
      written: { api: Api<KubeObject>; object: KubeObject }[];
    },
  ): ReconcileOutcome {
    const queue = this.#queue!;
    const { attempt, reason, durationMs, logger } = run;
    let priority = run.priority;
    if (action.priority !== undefined) {
      if (typeof action.priority === "number" && Number.isFinite(action.priority)) {
        priority = action.priority;
      } else {
        logger.warn("Ignoring priority {priority}: it must be a finite number", {
          priority: action.priority,
        });
      }
    }
    const next = { priority, cause: runCause(run.span) };
    const requeueAfter = action.requeueAfter;
    if (requeueAfter !== undefined && !(requeueAfter >= 0)) {
      logger.warn("Ignoring requeueAfter {requeueAfter}: it must be a number of milliseconds ≥ 0", {
        requeueAfter,
      });
    }
    const explicit = requeueAfter !== undefined && requeueAfter >= 0 ? requeueAfter : undefined;
    if (!failed) {
      state.failures = 0;
      if (state.writes.size === 0) this.#keys.delete(key);
      queue.cancelRetry(key);
      if (explicit !== undefined) queue.addAfter(key, "requeue", explicit, "requeue", next);
      return this.#emit({
        key,
        result: explicit !== undefined ? "requeue" : "success",
        durationMs,
        attempt,
        reason,
        requeueAfterMs: explicit,
      });
    }
    const error = action.error;
    if (run.aborted) {
      // Aborted by the controller (shutdown, or abortInFlight on a leadership loss): not a
      // failure of the reconcile. A controller that goes on runs the key again.
      logger.info("Reconcile of {key} ended after the controller aborted it: {error}", {
        key,
        error: describeError(error),
      });
      const outcome = this.#emit({ key, result: "aborted", durationMs, attempt, reason, error });
      if (!this.#stopping) queue.add(key, "aborted run", next);
      return outcome;
    }
    state.failures++;
    const retryAfter = error instanceof ApiError && error.retryAfterSeconds !== undefined
      ? error.retryAfterSeconds * 1000
      : undefined;
    const defaultDelayMs = retryAfter ?? this.#backoff(state.failures);
    let decision: ErrorDecision = error instanceof TerminalError ? "terminal" : undefined;
    if (this.#options.onError) {
      try {
        decision = this.#options.onError(error, object, { key, attempt, defaultDelayMs }) ??
          decision;
      } catch (e) {
        logger.error("The onError policy of {controller} threw: {error}; using the default", {
          controller: this.name,
          error: e,
        });
      }
    }
    if (decision === "terminal") {
      // Stopped until the object changes: remember its version after our own writes.
      let rv = object.metadata?.resourceVersion;
      for (const w of run.written) {
        if (
          w.api.group === this.api.group && w.api.plural === this.api.plural &&
          this.api.keyOf(w.object) === key
        ) {
          const wrv = w.object.metadata?.resourceVersion;
          const cmp = compareResourceVersions(wrv, rv);
          if (wrv && (cmp === undefined || cmp > 0)) rv = wrv;
        }
      }
      state.terminalRv = rv ?? "";
      queue.cancelRetry(key);
      logger.warn(
        "Reconcile of {key} failed with a terminal error (attempt {attempt}): {error}; not retried until the object changes",
        { key, attempt, error: describeError(error) },
      );
      return this.#emit({ key, result: "terminal", durationMs, attempt, reason, error });
    }
    const delay = explicit ??
      (typeof decision === "number" && decision >= 0 ? decision : defaultDelayMs);
    this.#stats.retries++;
    queue.addAfter(
      key,
      run.timedOut ? "retry after timeout" : "retry after error",
      delay,
      "retry",
      next,
    );
    const bug = !(error instanceof ApiError);
    logger[bug ? "error" : "warn"](
      "Reconcile of {key} failed (attempt {attempt}): {error}; retrying in {delayMs} ms",
      {
        key,
        attempt,
        delayMs: Math.round(delay),
        error: bug ? error : describeError(error),
      },
    );
    return this.#emit({
      key,
      result: "error",
      durationMs,
      attempt,
      reason,
      error,
      requeueAfterMs: delay,
      ...(run.timedOut ? { timedOut: true } : {}),
    });
  }

  /** Arms the reconcile timeout of one run: aborts its signal when it expires. */
  #deadline(
    key: string,
    abort: AbortController,
    logger: Logger,
  ): { readonly expired: boolean; stop(): void } {
    const timeoutMs = this.#options.reconcileTimeoutMs;
    const state = { expired: false, stop: () => {} };
    if (timeoutMs === undefined) return state;
    const timer = new AbortController();
    state.stop = () => timer.abort();
    this.#clock.sleep(timeoutMs, timer.signal).then(() => {
      if (abort.signal.aborted) return;
      state.expired = true;
      this.#stats.timeouts++;
      logger.warn(
        "Reconcile of {key} timed out after {timeoutMs} ms: its signal is aborted, the run counts as an error",
        { key, timeoutMs },
      );
      abort.abort(
        new DOMException(
          `The reconcile of ${key} by ${this.name} exceeded reconcileTimeoutMs (${timeoutMs} ms)`,
          "TimeoutError",
        ),
      );
    }, () => {});
    return state;
  }

  #backoff(failures: number): number {
    const b = this.#options.backoff ?? {};
    const initial = b.initialMs ?? 250;
    const max = b.maxMs ?? 300_000;
    const factor = b.factor ?? 2;
    const jitter = b.jitter ?? 0.2;
    const random = b.random ?? Math.random;
    const base = Math.min(max, initial * Math.pow(factor, failures - 1));
    return Math.round(base * (1 + jitter * random()));
  }

  /** Read your own writes, step 1: after a run, remember what it wrote per cache. */
  #rememberWrites(
    key: string,
    state: KeyState,
    written: { api: Api<KubeObject>; object: KubeObject }[],
  ): void {
    if (written.length === 0) return;
    const sources: SharedSource<KubeObject>[] = [this.#primary as SharedSource<KubeObject>];
    for (const related of this.#related) if (related.source) sources.push(related.source);
    for (const { api, object } of written) {
      const rv = object.metadata?.resourceVersion;
      if (!rv) continue;
      const ns = object.metadata?.namespace;
      for (const source of sources) {
        const sapi = source.api;
        if (sapi.group !== api.group || sapi.plural !== api.plural) continue;
        if (sapi.namespace !== undefined && sapi.namespace !== ns) continue;
        // A selector may keep the written object out of the cache for good: waiting for it
        // would stall the next run until the timeout.
        if (source.selective) continue;
        const cmp = compareResourceVersions(rv, state.writes.get(source));
        if (cmp === undefined && !this.#warnedOpaque && !/^[1-9][0-9]*$/.test(rv)) {
          this.#warnedOpaque = true;
          log.info(
            "Resource versions of {resource} are not comparable integers ({rv}): reconciles cannot wait for their own writes",
            { resource: source.description, rv },
          );
        }
        if (cmp === undefined || cmp > 0) state.writes.set(source, rv);
      }
    }
    if (state.writes.size > 0) this.#keys.set(key, state);
  }

  /** Read your own writes, step 2: before a run, wait until the caches have seen them. */
  async #awaitOwnWrites(key: string, state: KeyState, signal: AbortSignal): Promise<void> {
    if (state.writes.size === 0) return;
    const timeout = this.#options.readYourWritesTimeoutMs ?? 10_000;
    const started = this.#clock.now();
    let waited = false;
    for (const [source, rv] of state.writes) {
      const cmp = compareResourceVersions(source.version(), rv);
      if (cmp !== undefined && cmp >= 0) continue;
      if (cmp === undefined) continue;
      waited = true;
      const left = Math.max(0, timeout - (this.#clock.now() - started));
      const ok = await source.waitForVersion(rv, left, signal);
      if (!ok && !signal.aborted) {
        this.#stats.readYourWritesTimeouts++;
        log.warn(
          "Reconcile of {key}: the cache of {source} has not seen resourceVersion {rv} written by the previous run after {timeout} ms; going on with it",
          { controller: this.name, key, source: source.description, rv, timeout },
        );
      }
    }
    if (waited) this.#stats.readYourWritesWaits++;
    state.writes.clear();
  }

  #emit(partial: Omit<ReconcileOutcome, "controller">): ReconcileOutcome {
    const outcome: ReconcileOutcome = { controller: this.name, ...partial };
    const s = this.#stats;
    s.reconciles[outcome.result]++;
    if (outcome.result !== "gone") {
      s.durationMsTotal += outcome.durationMs;
      if (outcome.durationMs > s.durationMsMax) s.durationMsMax = outcome.durationMs;
    }
    for (const hook of this.#hooks) {
      try {
        hook(outcome);
      } catch (e) {
        log.error("An outcome hook of {controller} threw: {error}", {
          controller: this.name,
          error: e,
        });
      }
    }
    return outcome;
  }
}
