/**
 * {@linkcode Manager}: runs an operator's controllers and tasks in production, with one client,
 * one set of caches, one shutdown path, leader election and the health and metrics endpoints.
 *
 * - **Leader-only** tasks (controllers) run only while this replica holds the Lease. When the
 *   lease is lost, their signal aborts and the Manager waits for every one of them to return
 *   *before* it acts on the loss (campaigns again, or ends `run()` with `onLost: "exit"`).
 * - **Every-replica** tasks (caches, webhooks) run from start to stop, so a standby keeps its
 *   caches warm and takes over without a relist.
 * - **Shutdown** (the signal passed to `run()`, e.g. from {@linkcode shutdownSignal}): stop the
 *   leader-only work → wait for it within the grace period → release the lease (the next replica
 *   leads within a retry period; bounded by the renew deadline) → stop the every-replica tasks →
 *   close the endpoints. Work still running after the grace period keeps the lease from being
 *   handed over: renewing stops and the lease expires after its duration instead.
 *
 * @example An operator with leader election, endpoints on :8080, stopped by SIGTERM
 * ```ts ignore
 * import { Client, Manager, shutdownSignal } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const manager = new Manager(client, {
 *   leaderElection: { namespace: "ops", name: "foo-operator" },
 *   endpoints: { port: 8080 },
 * });
 * manager.add(fooController); // anything with run(signal): Promise<void>
 * await manager.run(shutdownSignal());
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { type EndpointsServer, type HealthCheck, serveEndpoints } from "./endpoints.ts";
import {
  LeaderElector,
  type LeaderElectorOptions,
  type Leadership,
  LeadershipLostError,
} from "./leader_election.ts";
import { DEFAULT_BUCKETS, Registry } from "./metrics.ts";
import { Controller, type Selectors, type SharedCache, sharedCache } from "./controller.ts";
import type { ShardingOptions } from "./sharding.ts";
import { registerShardingMetrics, Sharding } from "./_sharding/view.ts";
import { hostname } from "node:os";
import { exitNow, onTerminationSignal } from "../_platform/mod.ts";

const log = getLogger(["kube", "manager"]);

/**
 * What a {@linkcode Manager} runs: a controller, a cache, any loop. `run` must return soon after
 * its signal aborts (finishing or abandoning the work in flight).
 */
export interface Runnable {
  /** A name for logs, metrics and health checks. */
  readonly name?: string;
  /**
   * Runs until `signal` aborts. A rejection (other than the signal's reason) is a crash: the
   * Manager stops and `run()` rejects with it.
   *
   * @param signal Aborts when the task must stop: shutdown, or (for leader-only tasks) loss of
   *   the lease.
   */
  run(signal: AbortSignal): Promise<void>;
  /**
   * Registers this task's metrics in the Manager's registry; called once, by
   * {@linkcode Manager.prototype.add}.
   *
   * @param registry The registry `/metrics` renders.
   */
  registerMetrics?(registry: Registry): void;
  /**
   * Readiness (e.g. caches synced): `true`, or a reason why not. `/readyz` fails until every
   * every-replica task is ready.
   */
  ready?(): true | string;
  /**
   * Called when the lease is lost, right after `run`'s signal aborted: abort the work in progress
   * now (every reconcile's `ctx.signal`), without the grace a shutdown gives.
   *
   * @param reason The {@linkcode LeadershipLostError}.
   */
  abortInFlight?(reason: unknown): void;
}

/** The result of one reconcile, as a controller reports it (issue 12's `ReconcileOutcome`). */
export interface ReconcileReport {
  /** The controller's name. */
  controller: string;
  /** `success`, `requeue`, `error`, `terminal`, `gone` or `aborted`. */
  result: string;
  /** How long the reconcile took, in milliseconds. */
  durationMs: number;
}

/** Queue and worker numbers of a controller (the fields the metrics read of `ControllerStats`). */
export interface ControllerStatsView {
  /** Keys waiting to run now. */
  queueDepth: number;
  /** Runs in progress. */
  inFlight: number;
  /** Retries scheduled after failures, so far. */
  retries: number;
  /** Runs whose reconcile timeout expired, so far (controllers without one leave it out). */
  timeouts?: number;
}

/**
 * A controller whose outcomes and queue the Manager exports as metrics (the `Controller` of this
 * library has these members). {@linkcode Manager.prototype.add} instruments any task that has
 * them, with the metric names of controller-runtime so that existing dashboards work:
 * `controller_runtime_reconcile_total{controller,result}`,
 * `controller_runtime_reconcile_errors_total{controller}`,
 * `controller_runtime_reconcile_time_seconds{controller}` (histogram),
 * `controller_runtime_active_workers{controller}`,
 * `controller_runtime_reconcile_timeouts_total{controller}`, `workqueue_depth{name}` and
 * `workqueue_retries_total{name}`.
 */
export interface InstrumentedController {
  /** The controller's name (the `controller` label). */
  readonly name: string;
  /**
   * Subscribes to reconcile outcomes.
   *
   * @param hook Called once per finished reconcile.
   * @returns A function that unsubscribes.
   */
  onOutcome(hook: (outcome: ReconcileReport) => void): () => void;
  /**
   * The controller's counters now.
   *
   * @returns Queue depth, runs in progress, retries so far.
   */
  stats(): ControllerStatsView;
}

/** Reconcile durations: 5 ms to 60 s, like controller-runtime's buckets. */
const RECONCILE_BUCKETS = [...DEFAULT_BUCKETS, 15, 30, 60];

function isInstrumented(task: unknown): task is InstrumentedController {
  const t = task as Partial<InstrumentedController>;
  return typeof t?.onOutcome === "function" && typeof t?.stats === "function" &&
    typeof t?.name === "string";
}

/** Registers the controller metrics for one controller; returns the unsubscribe. */
function instrument(registry: Registry, controller: InstrumentedController): () => void {
  const total = registry.counter({
    name: "controller_runtime_reconcile_total",
    help: "Reconciles by controller and result.",
    labelNames: ["controller", "result"],
  });
  const errors = registry.counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Reconciles that failed (and are retried), by controller.",
    labelNames: ["controller"],
  });
  const time = registry.histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "How long reconciles took, by controller.",
    labelNames: ["controller"],
    buckets: RECONCILE_BUCKETS,
  });
  const workers = registry.gauge({
    name: "controller_runtime_active_workers",
    help: "Reconciles in progress, by controller.",
    labelNames: ["controller"],
  });
  const depth = registry.gauge({
    name: "workqueue_depth",
    help: "Keys waiting to be reconciled now, by controller.",
    labelNames: ["name"],
  });
  const retries = registry.counter({
    name: "workqueue_retries_total",
    help: "Retries scheduled after failed reconciles, by controller.",
    labelNames: ["name"],
  });
  const timeouts = registry.counter({
    name: "controller_runtime_reconcile_timeouts_total",
    help: "Reconciles whose reconcile timeout expired (their signal was aborted), by controller.",
    labelNames: ["controller"],
  });
  const name = controller.name;
  timeouts.inc({ controller: name }, 0);
  for (const result of ["success", "requeue", "error", "terminal", "gone", "aborted"]) {
    total.inc({ controller: name, result }, 0);
  }
  errors.inc({ controller: name }, 0);
  const off = controller.onOutcome((outcome) => {
    total.inc({ controller: name, result: outcome.result });
    if (outcome.result === "error") errors.inc({ controller: name });
    time.observe({ controller: name }, Math.max(0, outcome.durationMs) / 1000);
  });
  const offCollect = registry.onCollect(() => {
    const stats = controller.stats();
    workers.set({ controller: name }, stats.inFlight);
    depth.set({ name }, stats.queueDepth);
    const seen = retries.get({ name });
    retries.inc({ name }, Math.max(0, stats.retries - seen));
    const expired = stats.timeouts ?? 0;
    timeouts.inc({ controller: name }, Math.max(0, expired - timeouts.get({ controller: name })));
  });
  return () => {
    off();
    offCollect();
  };
}

/** Options of {@linkcode Manager.prototype.add}. */
export interface AddOptions {
  /** Run only while leading (default true), or on every replica from start to stop. */
  leaderOnly?: boolean;
  /**
   * With the Manager's `sharding`: run this {@linkcode Controller} on every replica, each on the
   * shards it holds (default true for a Controller; `false` keeps it leader-only).
   */
  sharded?: boolean;
}

/** Options of {@linkcode Manager}. */
export interface ManagerOptions {
  /**
   * Leader election on a Lease (namespace, name and optionally the timings and identity), or
   * `false` to lead at once and always (a single replica). Default `false`.
   */
  leaderElection?: Omit<LeaderElectorOptions, "clock"> | false;
  /**
   * What to do when the lease is lost, once every leader-only task has stopped: campaign again
   * (default), or `"exit"`: stop everything and make `run()` reject with a
   * {@linkcode LeadershipLostError}, so that the process ends and is restarted.
   */
  onLost?: "campaign" | "exit";
  /** How long shutdown waits for tasks to return, per stage. Default 30 000 ms. */
  gracePeriodMs?: number;
  /** Serve `/healthz`, `/readyz` and `/metrics` (port, address), or `false` (default). */
  endpoints?: { port?: number; hostname?: string } | false;
  /** The registry to add the Manager's and the tasks' metrics to. Default: a new one. */
  registry?: Registry;
  /** Source of time. Default {@linkcode systemClock}. */
  clock?: Clock;
  /**
   * Shard the controllers over every replica on Leases (see {@linkcode ShardingOptions} and the
   * README's "Scaling out"): each {@linkcode Controller} added runs on every replica, on the
   * objects of the shards that replica holds. Default: off (one leader does everything).
   */
  sharding?: ShardingOptions;
}

interface Entry {
  runnable: Runnable;
  name: string;
  leaderOnly: boolean;
}

/** Tells whether `e` is the reason of the signal (a normal stop), not a crash. */
function isStop(e: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (e === signal.reason || e instanceof LeadershipLostError ||
    (e instanceof DOMException && e.name === "AbortError"));
}

/**
 * Runs controllers and tasks with leader election, shared caches, one shutdown path and the
 * health and metrics endpoints. See the module documentation.
 *
 * @example
 * ```ts ignore
 * const manager = new Manager(client, { leaderElection: { namespace: "ops", name: "foo" } });
 * const pods = manager.cache(Api.v1Pod().within("ops")); // warm on every replica
 * manager.add({ name: "foo", run: (signal) => reconcileLoop(pods, signal) });
 * await manager.run(shutdownSignal());
 * ```
 */
export class Manager {
  /** The client every task shares. */
  readonly client: Client;
  /** The registry `/metrics` renders. */
  readonly registry: Registry;
  /** The candidate, when leader election is on. */
  readonly elector: LeaderElector | undefined;
  #entries: Entry[] = [];
  #caches = new Map<string, SharedCache<KubeObject>>();
  #clock: Clock;
  #graceMs: number;
  #onLost: "campaign" | "exit";
  #endpointsOptions: ManagerOptions["endpoints"];
  #endpoints: EndpointsServer | undefined;
  #running = false;
  #leading = false;
  #leadership: Leadership | undefined;
  #crashed: string | undefined;
  #terms = 0;
  #leaseName: string;
  #sharding: Sharding | undefined;

  /**
   * Creates a manager; nothing runs before {@linkcode Manager.prototype.run}.
   *
   * @param client The client the tasks share.
   * @param options Leader election, endpoints, grace period, registry.
   */
  constructor(client: Client, options: ManagerOptions = {}) {
    this.client = client;
    this.registry = options.registry ?? new Registry();
    this.#clock = options.clock ?? systemClock;
    this.#graceMs = options.gracePeriodMs ?? 30_000;
    this.#onLost = options.onLost ?? "campaign";
    this.#endpointsOptions = options.endpoints ?? false;
    this.elector = options.leaderElection
      ? new LeaderElector(client, { ...options.leaderElection, clock: this.#clock })
      : undefined;
    this.#leaseName = options.leaderElection ? options.leaderElection.name : "";
    const status = this.registry.gauge({
      name: "leader_election_master_status",
      help: "1 while this replica leads the lease, else 0.",
      labelNames: ["name"],
    });
    const terms = this.registry.counter({
      name: "kube_manager_leadership_terms_total",
      help: "Leadership terms this replica started.",
    });
    this.registry.onCollect(() => {
      status.set({ name: this.#leaseName }, this.#leading ? 1 : 0);
      terms.inc(undefined, this.#terms - terms.get());
    });
    if (options.sharding) this.#startSharding(options.sharding);
  }

  /** Creates the sharding and its every-replica task (leases, readiness per shard cache). */
  #startSharding(options: ShardingOptions): void {
    const sharding = new Sharding(this.client, {
      namespace: options.namespace,
      name: options.name,
      shards: options.shards,
      field: options.by === "namespace" ? "object.metadata.namespace" : "object.metadata.uid",
      identity: options.identity ?? this.elector?.identity ?? shardIdentity(),
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
      drainTimeoutMs: options.drainTimeoutMs ?? this.#graceMs,
    }, this.#clock);
    this.#sharding = sharding;
    registerShardingMetrics(this.registry, sharding);
    this.add({
      name: `sharding ${options.name}`,
      run: (signal) => sharding.leases.run(signal),
      ready: () => sharding.ready(),
    }, { leaderOnly: false });
  }

  /** Whether this replica leads now (always true without leader election, while running). */
  get leading(): boolean {
    return this.#leading;
  }

  /**
   * The current leadership term (identity and `transitions`, a fencing number to stamp on what
   * the leader writes), while leading with leader election.
   */
  get leadership(): Leadership | undefined {
    return this.#leading ? this.#leadership : undefined;
  }

  /**
   * Adds a task.
   *
   * @param runnable The task; a controller with `onOutcome` and `stats` is also instrumented.
   * @param options Leader-only (default) or every replica.
   * @returns This manager.
   * @throws {TypeError} When the manager runs already.
   */
  add(runnable: Runnable & Partial<InstrumentedController>, options: AddOptions = {}): this {
    if (this.#running) throw new TypeError("Manager.add: add tasks before run()");
    if (typeof runnable?.run !== "function") {
      throw new TypeError("Manager.add: a task needs a run(signal) method");
    }
    const name = runnable.name ?? `task-${this.#entries.length + 1}`;
    runnable.registerMetrics?.(this.registry);
    if (isInstrumented(runnable)) instrument(this.registry, runnable);
    let leaderOnly = options.leaderOnly ?? true;
    if (this.#sharding && runnable instanceof Controller && options.sharded !== false) {
      // Every replica runs it, on its shards; the sharding task stops after it has drained.
      this.#sharding.attach(runnable);
      leaderOnly = false;
    }
    this.#entries.push({ runnable, name, leaderOnly });
    return this;
  }

  /**
   * Keeps the shared cache of a resource warm on every replica: the same watch and cache (one per
   * client, resource, namespace and selectors) that a {@linkcode Controller} of this client uses,
   * so that a standby that takes over starts reconciling without a new list. It syncs from now
   * until `run()` has stopped everything; `/readyz` waits for its first sync.
   *
   * Cost: each standby holds the whole cache in memory and keeps one watch open per resource.
   *
   * @param api The resource (and namespace).
   * @param selectors Label and field selectors (must match the controller's to share its cache).
   * @returns The cache; read it with `read()`, `get()`, `byIndex()`.
   */
  cache<T extends KubeObject>(api: Api<T>, selectors: Selectors = {}): SharedCache<T> {
    const key = `${api.apiVersion}/${api.plural}@${api.namespace ?? ""}${
      selectors.labelSelector ? `?l=${selectors.labelSelector}` : ""
    }${selectors.fieldSelector ? `?f=${selectors.fieldSelector}` : ""}`;
    const existing = this.#caches.get(key);
    if (existing) return existing as unknown as SharedCache<T>;
    const cache = sharedCache(this.client, api, { ...selectors, clock: this.#clock });
    let synced = false;
    cache.ready.then(() => synced = true, () => {});
    this.#caches.set(key, cache as unknown as SharedCache<KubeObject>);
    const labels = { resource: key };
    const relists = this.registry.counter({
      name: "kube_reflector_relists_total",
      help: "Full re-lists of a shared cache after its first sync (410 Expired, failures).",
      labelNames: ["resource"],
    });
    const restarts = this.registry.counter({
      name: "kube_reflector_watch_restarts_total",
      help: "Watch requests of a shared cache that resumed from its resourceVersion.",
      labelNames: ["resource"],
    });
    relists.inc(labels, 0);
    restarts.inc(labels, 0);
    this.registry.onCollect(() => {
      const stats = cache.stats();
      relists.inc(labels, Math.max(0, stats.relists - relists.get(labels)));
      restarts.inc(labels, Math.max(0, stats.watchRestarts - restarts.get(labels)));
    });
    this.add({
      name: `cache ${key}`,
      async run(signal) {
        try {
          // A cache that fails for good (e.g. 403: RBAC does not allow the list or watch) stops
          // the manager with that error, instead of leaving /readyz red with no reason given.
          await Promise.race([
            new Promise<void>((resolve) => {
              if (signal.aborted) resolve();
              else signal.addEventListener("abort", () => resolve(), { once: true });
            }),
            cache.failed,
          ]);
        } finally {
          await cache.release();
        }
      },
      ready: () => synced || "not synced yet",
    }, { leaderOnly: false });
    return cache;
  }

  /**
   * Runs every task until `signal` aborts, then shuts down in order (see the module docs).
   *
   * @param signal Stops the manager (e.g. {@linkcode shutdownSignal}).
   * @returns Resolves after a clean shutdown.
   * @throws {LeadershipLostError} With `onLost: "exit"`, after the lease was lost and everything
   *   stopped.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new TypeError("Manager.run: already running");
    this.#running = true;
    const stop = new AbortController();
    const onStop = () => stop.abort(signal.reason);
    if (signal.aborted) onStop();
    else signal.addEventListener("abort", onStop, { once: true });
    let failure: unknown;
    const fail = (name: string, e: unknown) => {
      failure ??= e;
      // /healthz names the task and the kind of failure, never the message (a server's or a
      // user's text may carry a credential); the log has the message.
      this.#crashed ??= `${name} (${crashKind(e)})`;
      log.error("Task {name} crashed, stopping the manager: {error}", {
        name,
        error: e instanceof Error ? e.message : String(e),
      });
      stop.abort(e);
    };
    try {
      await this.#serve();
      // Every-replica tasks stop last: after the leader-only work drained and the lease is released.
      const sharedStop = new AbortController();
      const shared = this.#start(
        this.#entries.filter((e) => !e.leaderOnly),
        sharedStop.signal,
        fail,
      );
      try {
        failure = await this.#leadLoop(stop.signal, fail) ?? failure;
      } finally {
        stop.abort();
        sharedStop.abort();
        await this.#drain(shared, "every-replica");
      }
    } finally {
      signal.removeEventListener("abort", onStop);
      await this.#endpoints?.close();
      this.#endpoints = undefined;
      this.#running = false;
    }
    if (failure !== undefined) throw failure;
  }

  /** Campaigns, runs the leader-only tasks while leading, repeats; returns a failure to report. */
  async #leadLoop(
    stop: AbortSignal,
    fail: (name: string, e: unknown) => void,
  ): Promise<unknown> {
    const leaderOnly = this.#entries.filter((e) => e.leaderOnly);
    while (!stop.aborted) {
      let leadership: Leadership | undefined;
      if (this.elector) {
        try {
          leadership = await this.elector.acquire(stop);
        } catch (e) {
          if (stop.aborted) return undefined;
          throw e;
        }
      }
      this.#leadership = leadership;
      this.#leading = true;
      this.#terms++;
      const term = leadership ? AbortSignal.any([stop, leadership.signal]) : stop;
      log.info("Leading (lease transition {transitions}): starting {count} leader-only tasks", {
        transitions: leadership?.transitions ?? "none, no leader election",
        count: leaderOnly.length,
      });
      const running = this.#start(leaderOnly, term, fail);
      await new Promise<void>((resolve) => {
        if (term.aborted) resolve();
        else term.addEventListener("abort", () => resolve(), { once: true });
      });
      const lost = leadership?.signal.aborted === true && !stop.aborted;
      if (lost) {
        this.#leading = false; // not the leader any more, even while the work stops
        for (const { runnable } of leaderOnly) {
          try {
            runnable.abortInFlight?.(leadership!.signal.reason);
          } catch (e) {
            log.error("abortInFlight of {name} threw: {error}", {
              name: runnable.name ?? "task",
              error: String(e),
            });
          }
        }
      }
      if (lost) {
        log.warn("Lost the lease: waiting for {count} leader-only tasks to stop", {
          count: leaderOnly.length,
        });
        // Never act on the loss while work of the old term still runs: wait without a bound.
        await Promise.all(running.map((r) => r.done));
      } else if (!await this.#drain(running, "leader-only")) {
        // Work of this term still runs: abort what can be aborted, and do not hand the lease over
        // (the next leader would act next to it); it expires after its duration instead.
        for (const { runnable } of leaderOnly) {
          try {
            runnable.abortInFlight?.(new Error("shutdown grace period passed"));
          } catch (e) {
            log.error("abortInFlight of {name} threw: {error}", {
              name: runnable.name ?? "task",
              error: String(e),
            });
          }
        }
        this.#leading = false;
        if (leadership) {
          log.error(
            "Not releasing the lease while leader-only work still runs: it expires instead",
          );
          await leadership.abandon();
        }
        return undefined;
      }
      this.#leading = false;
      if (!lost) {
        await leadership?.release();
        return undefined;
      }
      if (this.#onLost === "exit") {
        return leadership!.signal.reason;
      }
      log.info("All leader-only tasks stopped; campaigning again");
    }
    return undefined;
  }

  #start(
    entries: Entry[],
    signal: AbortSignal,
    fail: (name: string, e: unknown) => void,
  ): { name: string; done: Promise<void> }[] {
    return entries.map(({ runnable, name }) => ({
      name,
      done: (async () => {
        try {
          await runnable.run(signal);
          if (!signal.aborted) {
            log.warn("Task {name} returned before it was asked to stop", { name });
          }
        } catch (e) {
          if (isStop(e, signal)) return;
          fail(name, e);
        }
      })(),
    }));
  }

  /** Waits for the tasks within the grace period; false (and logged) when some still run after it. */
  async #drain(running: { name: string; done: Promise<void> }[], what: string): Promise<boolean> {
    if (running.length === 0) return true;
    const pending = new Set(running.map((r) => r.name));
    const all = Promise.all(running.map((r) => r.done.finally(() => pending.delete(r.name))));
    const timer = new AbortController();
    const timedOut = this.#clock.sleep(this.#graceMs, timer.signal).then(() => true, () => false);
    const late = await Promise.race([all.then(() => false), timedOut]);
    timer.abort();
    if (late) {
      log.error(
        "{what} tasks still running after the {ms} ms grace period, abandoned: {names}",
        { what, ms: this.#graceMs, names: [...pending].join(", ") },
      );
    }
    return !late;
  }

  async #serve(): Promise<void> {
    const options = this.#endpointsOptions;
    if (!options) return;
    const healthz: Record<string, HealthCheck> = {
      manager: () => this.#crashed ? `a task crashed: ${this.#crashed}` : true,
    };
    const readyz: Record<string, HealthCheck> = {};
    for (const entry of this.#entries) {
      if (entry.leaderOnly || !entry.runnable.ready) continue;
      const ready = entry.runnable.ready.bind(entry.runnable);
      readyz[entry.name] = ready;
    }
    if (this.elector) {
      const elector = this.elector;
      readyz["leader-election"] = () =>
        elector.observedLeader !== undefined || this.#leading || "lease not read yet";
    }
    this.#endpoints = await serveEndpoints({
      ...options,
      registry: this.registry,
      healthz,
      readyz,
    });
    log.info("Serving /healthz, /readyz and /metrics on {hostname}:{port}", {
      hostname: this.#endpoints.hostname,
      port: this.#endpoints.port,
    });
  }

  /** The port the endpoints listen on, while running with `endpoints`. */
  get endpointsPort(): number | undefined {
    return this.#endpoints?.port;
  }
}

/**
 * A signal that aborts on SIGTERM or SIGINT, for {@linkcode Manager.prototype.run}. A second
 * signal ends the process at once with exit code 1 (when the graceful shutdown hangs).
 *
 * @returns The signal.
 *
 * @example
 * ```ts ignore
 * await manager.run(shutdownSignal());
 * ```
 */
export function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  const remove = onTerminationSignal((name) => {
    if (controller.signal.aborted) {
      log.error("Second {signal}: exiting now", { signal: name });
      exitNow(1);
    }
    log.info("{signal}: shutting down", { signal: name });
    controller.abort(new Error(`${name} received`));
  });
  // Keep listening for the second signal; removed only when the process ends.
  void remove;
  return controller.signal;
}

/** What /healthz says of a crashed task's error: its class, and an ApiError's status and reason. */
function crashKind(e: unknown): string {
  if (!(e instanceof Error)) return typeof e;
  const { status, reason } = e as { status?: unknown; reason?: unknown };
  if (typeof status !== "number") return e.name;
  return `${e.name} ${status}${typeof reason === "string" && reason ? ` ${reason}` : ""}`;
}

/** The default identity of a sharded replica: the hostname (the pod name) and a random suffix. */
function shardIdentity(): string {
  let host = "replica";
  try {
    host = hostname();
  } catch {
    // No --allow-sys=hostname: the random suffix alone keeps replicas apart.
  }
  return `${host}_${crypto.randomUUID().slice(0, 8)}`;
}
