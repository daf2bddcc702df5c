/**
 * {@linkcode LeaderElector}: leader election on a `coordination.k8s.io/v1` Lease, with
 * client-go's semantics and defaults, so that of several replicas of an operator exactly one acts.
 *
 * - A candidate takes the lease when it is free (no holder, or a holder whose record has not
 *   changed for `leaseDurationMs` of the candidate's *own* clock since the candidate first saw that
 *   record). The remote `renewTime` is written for people and other tools but never read for a
 *   decision, so clock skew between replicas is harmless.
 * - The leader renews every `retryPeriodMs`. When no renew has succeeded for `renewDeadlineMs`
 *   (counted from the start of the last successful renew, and enforced by aborting the request in
 *   flight), leadership is lost: {@linkcode Leadership.signal} aborts. Since the deadline is shorter
 *   than the lease duration, a leader cut off from the API server stops before anyone else can
 *   take over.
 * - Every write is an update with the `resourceVersion` that was read (optimistic concurrency),
 *   so two candidates never both win; `leaderTransitions` counts changes of holder.
 * - {@linkcode Leadership.release} writes an empty holder, so that the next candidate leads
 *   within a retry period instead of a lease duration; a candidate that watches the Lease while
 *   it campaigns (`watchRelease`, the default) tries at once when it sees the release, so a
 *   graceful hand-over takes a round trip, not up to a jittered retry period.
 *
 * All timing goes through a {@linkcode Clock}.
 *
 * @example Lead, then hand over on exit
 * ```ts ignore
 * import { Client, LeaderElector } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const elector = new LeaderElector(client, { namespace: "default", name: "foo-operator" });
 * const leadership = await elector.acquire();
 * try {
 *   await doWork(leadership.signal); // aborted when the lease is lost
 * } finally {
 *   await leadership.release();
 * }
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { hostname } from "node:os";
import { Api } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  ApiError,
  isAlreadyExists,
  isConflict,
  isForbidden,
  isNotFound,
  isUnauthorized,
} from "../errors.ts";
import type { Lease, LeaseSpec } from "../generated/coordination_v1.ts";
import { microTime } from "./_microtime.ts";

const log = getLogger(["kube", "leader"]);

/**
 * The default clock of the timing decisions: monotonic (`performance.now()`), so that a step of
 * the wall clock (NTP, a VM resumed) neither expires a lease early nor stretches the renew deadline
 * — Go's `time.Since` in client-go is monotonic too. The timestamps written into the Lease
 * (informative only) use the wall clock.
 */
const monotonicClock: Clock = Object.freeze({
  now: () => performance.timeOrigin + performance.now(),
  sleep: (ms: number, signal?: AbortSignal) => systemClock.sleep(ms, signal),
});

/** Options of {@linkcode LeaderElector}. */
export interface LeaderElectorOptions {
  /** Namespace of the Lease. */
  namespace: string;
  /** Name of the Lease (one per operator). */
  name: string;
  /**
   * This candidate's identity, written as `holderIdentity`. Default: the hostname (the pod name
   * in a cluster) and a random suffix, so that a restarted pod is a new candidate.
   */
  identity?: string;
  /** How long a non-leader waits, after the record last changed, before taking over. Default 15 000 ms. */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it gives up. Default 10 000 ms. */
  renewDeadlineMs?: number;
  /** Interval between attempts (acquire and renew). Default 2 000 ms. */
  retryPeriodMs?: number;
  /**
   * Acquire attempts wait `retryPeriodMs × (1 + jitterFactor × random)`, so that candidates do not
   * retry in lockstep. Default 1.2 (client-go's).
   */
  jitterFactor?: number;
  /**
   * Source of time and timers, for the timing decisions and the timestamps written. Default: a
   * monotonic clock for the decisions (immune to wall-clock steps) and `Date.now()` for the
   * timestamps.
   */
  clock?: Clock;
  /** Random numbers in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
  /**
   * While campaigning, watch the Lease and try at once when its holder releases it (an empty
   * holder) or it is deleted, instead of at the next retry. Default true. Best effort: one watch
   * of one object per campaigning candidate (RBAC: `watch` on the Lease, which a `resourceNames`
   * rule allows); while it fails, the candidate polls as without it (and every retry period it
   * tries to watch again; after a 403 not for the rest of that campaign).
   */
  watchRelease?: boolean;
}

/** What a candidate last saw of the Lease. */
export interface LeaderElectionRecord {
  /** The holder, `""` when nobody holds the lease. */
  holderIdentity: string;
  /** The lease duration the holder announced, in seconds. */
  leaseDurationSeconds: number;
  /** How many times the holder changed. */
  leaderTransitions: number;
  /** When the holder acquired the lease (the holder's clock; informative only). */
  acquireTime?: string;
  /** When the holder last renewed (the holder's clock; informative only). */
  renewTime?: string;
}

/** One term of leadership, from {@linkcode LeaderElector.prototype.acquire}. */
export interface Leadership {
  /** The leader's identity. */
  readonly identity: string;
  /** The Lease's `leaderTransitions` for this term: a fencing number for what the leader writes. */
  readonly transitions: number;
  /** Aborts when leadership ends: lost (renew deadline passed, or taken over) or released. */
  readonly signal: AbortSignal;
  /** Resolves when leadership has ended, with the reason. */
  readonly ended: Promise<string>;
  /**
   * Stops renewing and hands the lease over (empty holder) when this candidate still holds it.
   * Call it only after the work that needed leadership has stopped. Safe to call twice.
   *
   * @returns Resolves when the lease is released (or was already lost).
   */
  release(): Promise<void>;
  /**
   * Stops renewing without writing the lease, so that it expires on its own after its duration:
   * for a leader whose work did not stop in time (handing the lease over at once would let the
   * next leader act next to it). Ends leadership. Safe to call twice, and after `release()`.
   *
   * @returns Resolves when renewing has stopped.
   */
  abandon(): Promise<void>;
}

/**
 * A candidate for leadership on one Lease. See the module documentation for the semantics.
 *
 * @example
 * ```ts ignore
 * const elector = new LeaderElector(client, { namespace: "ops", name: "foo-operator" });
 * for (;;) {
 *   const leadership = await elector.acquire(stop.signal);
 *   await runControllers(AbortSignal.any([leadership.signal, stop.signal]));
 *   if (stop.signal.aborted) { await leadership.release(); break; }
 * }
 * ```
 */
export class LeaderElector {
  /** This candidate's identity (`holderIdentity` when it leads). */
  readonly identity: string;
  /** The Lease's namespace. */
  readonly namespace: string;
  /** The Lease's name. */
  readonly name: string;
  /** Lease duration in milliseconds. */
  readonly leaseDurationMs: number;
  /** Renew deadline in milliseconds. */
  readonly renewDeadlineMs: number;
  /** Retry period in milliseconds. */
  readonly retryPeriodMs: number;
  #client: Client;
  #api = Api.coordinationV1Lease();
  #jitter: number;
  #clock: Clock;
  #stamp: () => number;
  #lastWritten: Lease | undefined;
  #random: () => number;
  #watchRelease: boolean;
  #observed: LeaderElectionRecord | undefined;
  #observedVersion: string | undefined;
  #observedAt = 0;
  #leading: LeadershipTerm | undefined;
  #listeners = new Set<(leader: string) => void>();

  /**
   * Creates a candidate. Nothing happens until {@linkcode LeaderElector.prototype.acquire}.
   *
   * @param client The client to reach the API server with.
   * @param options The Lease, the identity and the timings.
   * @throws {RangeError} When the timings are inconsistent (client-go's rules: lease duration >
   *   renew deadline > jitter × retry period).
   */
  constructor(client: Client, options: LeaderElectorOptions) {
    this.#client = client;
    this.namespace = options.namespace;
    this.name = options.name;
    this.#api.itemPath(options.name, options.namespace); // validates both
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.#jitter = options.jitterFactor ?? 1.2;
    this.#clock = options.clock ?? monotonicClock;
    const stampClock = options.clock ?? systemClock;
    this.#stamp = () => stampClock.now();
    this.#random = options.random ?? Math.random;
    this.#watchRelease = options.watchRelease ?? true;
    for (
      const [key, value] of Object.entries({
        leaseDurationMs: this.leaseDurationMs,
        renewDeadlineMs: this.renewDeadlineMs,
        retryPeriodMs: this.retryPeriodMs,
      })
    ) {
      if (!(value > 0) || !Number.isFinite(value)) {
        throw new RangeError(`LeaderElector: ${key} must be a positive number, got ${value}`);
      }
    }
    if (this.leaseDurationMs % 1000 !== 0) {
      throw new RangeError(
        `LeaderElector: leaseDurationMs must be whole seconds (the Lease stores seconds), got ${this.leaseDurationMs}`,
      );
    }
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new RangeError(
        `LeaderElector: leaseDurationMs (${this.leaseDurationMs}) must be greater than renewDeadlineMs (${this.renewDeadlineMs}), or a cut-off leader could still act after another took over`,
      );
    }
    if (!(this.#jitter >= 0)) {
      throw new RangeError(`LeaderElector: jitterFactor must be ≥ 0, got ${this.#jitter}`);
    }
    if (this.renewDeadlineMs <= this.retryPeriodMs * Math.max(1, this.#jitter)) {
      throw new RangeError(
        `LeaderElector: renewDeadlineMs (${this.renewDeadlineMs}) must be greater than retryPeriodMs × jitterFactor (${
          this.retryPeriodMs * Math.max(1, this.#jitter)
        })`,
      );
    }
    this.identity = options.identity ?? defaultIdentity();
    if (!this.identity) throw new TypeError("LeaderElector: identity must not be empty");
  }

  /** Whether this candidate leads now. */
  get isLeader(): boolean {
    return this.#leading !== undefined && !this.#leading.signal.aborted;
  }

  /** The holder this candidate last saw (`""` for none, `undefined` before the first read). */
  get observedLeader(): string | undefined {
    return this.#observed?.holderIdentity;
  }

  /** The record this candidate last saw, if any. */
  get observedRecord(): LeaderElectionRecord | undefined {
    return this.#observed ? { ...this.#observed } : undefined;
  }

  /**
   * Calls `listener` with the new holder (`""` for none) whenever the observed holder changes.
   *
   * @param listener The callback.
   * @returns A function that removes the listener.
   */
  onLeaderChange(listener: (leader: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Campaigns until this candidate leads: tries at once, then every retry period (jittered).
   * Errors reaching the API server are logged and retried; 401 and 403 (no permission on the
   * Lease) reject at once, naming what to grant.
   *
   * @param signal Stops campaigning; the promise then rejects with the signal's reason.
   * @returns The leadership term; its `signal` aborts when it ends.
   * @throws {TypeError} When this candidate already leads.
   */
  async acquire(signal?: AbortSignal): Promise<Leadership> {
    if (this.isLeader) {
      throw new TypeError(`LeaderElector ${this.identity} already leads ${this.#where()}`);
    }
    log.info("{identity} campaigning for lease {lease}", {
      identity: this.identity,
      lease: this.#where(),
    });
    // Ends the release watch when acquire() returns or throws.
    const campaign = new AbortController();
    const onAbort = () => campaign.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const wake = { controller: new AbortController() };
    try {
      return await this.#campaign(signal, wake, () => {
        // After the first attempt failed: a candidate that leads at once never watches.
        if (this.#watchRelease) this.#watchForRelease(campaign.signal, wake);
      });
    } finally {
      signal?.removeEventListener("abort", onAbort);
      campaign.abort();
    }
  }

  async #campaign(
    signal: AbortSignal | undefined,
    wake: { controller: AbortController },
    onFirstMiss: () => void,
  ): Promise<Leadership> {
    for (let attempt = 0;; attempt++) {
      signal?.throwIfAborted();
      const started = this.#clock.now();
      const won = await this.#tryAcquireOrRenew(signal, false).catch((e) => {
        if (signal?.aborted) throw signal.reason;
        if (isForbidden(e) || isUnauthorized(e)) {
          // RBAC will not change by retrying: say once what is missing.
          throw new ApiError({
            status: e.status,
            reason: e.reason,
            message: `LeaderElector ${this.identity} may not use lease ${this.#where()}: ` +
              `${e.message}. Grant get, create and update on leases (coordination.k8s.io) in ` +
              `namespace ${this.namespace} to this identity.`,
            method: e.method,
            url: e.url,
            cause: e,
          });
        }
        log.warn("{identity} could not reach lease {lease}: {error}", {
          identity: this.identity,
          lease: this.#where(),
          error: e instanceof Error ? e.message : String(e),
        });
        return false;
      });
      if (won) {
        const term: LeadershipTerm = new LeadershipTerm({
          identity: this.identity,
          transitions: this.#observed!.leaderTransitions,
          clock: this.#clock,
          retryPeriodMs: this.retryPeriodMs,
          renewDeadlineMs: this.renewDeadlineMs,
          renew: (signal) => this.#tryAcquireOrRenew(signal, true),
          release: (signal) => this.#releaseLease(signal),
          observedLeader: () => this.observedLeader ?? "",
          ended: (reason) => {
            if (this.#leading === term) this.#leading = undefined;
            log.info("{identity} no longer leads lease {lease}: {reason}", {
              identity: this.identity,
              lease: this.#where(),
              reason,
            });
          },
        });
        this.#leading = term;
        log.info("{identity} leads lease {lease} (transition {transitions})", {
          identity: this.identity,
          lease: this.#where(),
          transitions: term.transitions,
        });
        term.start(started);
        return term;
      }
      if (attempt === 0) onFirstMiss();
      const wait = this.retryPeriodMs * (1 + this.#jitter * this.#random());
      // The release watch ends the wait early (also when it saw a release during the attempt).
      const woken = wake.controller.signal;
      try {
        await this.#clock.sleep(wait, signal ? AbortSignal.any([signal, woken]) : woken);
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (!woken.aborted) throw e;
      }
      if (woken.aborted) wake.controller = new AbortController();
    }
  }

  /**
   * Watches the Lease while campaigning and wakes the campaign when the holder is empty or the
   * Lease is gone. Never throws: a failed watch is retried every retry period until `stop`.
   */
  async #watchForRelease(
    stop: AbortSignal,
    wake: { controller: AbortController },
  ): Promise<void> {
    const api = this.#api.within(this.namespace);
    while (!stop.aborted) {
      try {
        const events = this.#client.watch(api, {
          fieldSelector: `metadata.name=${this.name}`,
          allowWatchBookmarks: false,
          timeoutSeconds: 300,
          signal: stop,
        });
        for await (const event of events) {
          if (event.type === "ERROR") break; // 410 Gone and the like: watch again
          if (event.type === "BOOKMARK") continue;
          const holder = event.object.spec?.holderIdentity ?? "";
          if (event.type === "DELETED" || holder === "") wake.controller.abort();
        }
      } catch (e) {
        if (stop.aborted) return;
        if (isForbidden(e) || isUnauthorized(e)) {
          // RBAC will not change by retrying: poll for this campaign, and say so once.
          log.info(
            "{identity} may not watch lease {lease} (grant watch to hand over at once): polling",
            {
              identity: this.identity,
              lease: this.#where(),
            },
          );
          return;
        }
        log.debug("{identity}: watch of lease {lease} failed, polling: {error}", {
          identity: this.identity,
          lease: this.#where(),
          error: e instanceof Error ? e.message : String(e),
        });
      }
      await this.#clock.sleep(this.retryPeriodMs, stop).catch(() => {});
    }
  }

  /** Writes an empty holder when this candidate still holds the lease. */
  async #releaseLease(signal: AbortSignal): Promise<void> {
    const lease = await this.#client.get(this.#api, this.name, {
      namespace: this.namespace,
      signal,
    });
    this.#observe(lease);
    if (lease.spec?.holderIdentity !== this.identity) return;
    const now = microTime(this.#stamp());
    const released: Lease = {
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: lease.spec?.leaseTransitions ?? 0,
      },
    };
    const stored = await this.#client.replace(this.#api, released, {
      namespace: this.namespace,
      signal,
    });
    this.#wrote(stored);
    log.info("{identity} released lease {lease}", {
      identity: this.identity,
      lease: this.#where(),
    });
  }

  // --- the election step ----------------------------------------------------------------------

  async #tryAcquireOrRenew(signal: AbortSignal | undefined, renewing: boolean): Promise<boolean> {
    const now = () => this.#clock.now();
    const stamp = () => this.#stamp();
    // Fast path of a renew: update the object we wrote last, with its resourceVersion. It succeeds
    // only when nobody wrote since; a conflict falls back to reading who holds the lease now.
    const last = this.#lastWritten;
    if (renewing && last?.spec?.holderIdentity === this.identity) {
      try {
        const stored = await this.#client.replace(this.#api, {
          ...last,
          spec: this.#spec(last.spec, stamp(), last.spec.leaseTransitions ?? 0),
        }, { namespace: this.namespace, signal });
        this.#wrote(stored);
        return true;
      } catch (e) {
        if (!isConflict(e)) throw e;
      }
    }
    let lease: Lease;
    try {
      lease = await this.#client.get(this.#api, this.name, { namespace: this.namespace, signal });
    } catch (e) {
      if (!isNotFound(e) || renewing) throw e;
      const created = await this.#client.create(this.#api, {
        metadata: { name: this.name, namespace: this.namespace },
        spec: this.#spec(undefined, stamp(), 0),
      }, { namespace: this.namespace, signal }).catch((e) => {
        if (isAlreadyExists(e)) return undefined; // another candidate was faster
        throw e;
      });
      if (!created) return false;
      this.#wrote(created);
      return true;
    }
    this.#observe(lease);
    const record = this.#observed!;
    const mine = record.holderIdentity === this.identity;
    if (renewing && !mine) {
      // Someone else holds it: they saw our record expire. Never fight back while leading.
      return false;
    }
    if (record.holderIdentity !== "" && !mine) {
      const validMs = record.leaseDurationSeconds * 1000;
      if (this.#observedAt + validMs > now()) return false;
      log.info("{identity}: lease {lease} of {holder} expired (unchanged for {ms} ms)", {
        identity: this.identity,
        lease: this.#where(),
        holder: record.holderIdentity,
        ms: now() - this.#observedAt,
      });
    }
    const next: Lease = {
      ...lease,
      spec: mine
        ? this.#spec(lease.spec, stamp(), record.leaderTransitions)
        : this.#spec(undefined, stamp(), record.leaderTransitions + 1),
    };
    try {
      const stored = await this.#client.replace(this.#api, next, {
        namespace: this.namespace,
        signal,
      });
      this.#wrote(stored);
      return true;
    } catch (e) {
      // Conflict: someone wrote since our read (another candidate won, or the holder renewed).
      if (isConflict(e)) return false;
      throw e;
    }
  }

  /** The record to write; `acquireTime` is kept when `current` is this candidate's own term. */
  #spec(current: LeaseSpec | undefined, nowMs: number, transitions: number): LeaseSpec {
    const now = microTime(nowMs);
    return {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseDurationMs / 1000,
      acquireTime: current?.acquireTime ?? now,
      renewTime: now,
      leaseTransitions: transitions,
    };
  }

  /** Records an object we wrote (the base of the next renew) and observes it. */
  #wrote(lease: Lease): void {
    this.#lastWritten = lease.spec?.holderIdentity === this.identity ? lease : undefined;
    this.#observe(lease);
  }

  /** Records what we read, and when we first saw this version of it (our clock). */
  #observe(lease: Lease): void {
    const spec = lease.spec ?? {};
    const record: LeaderElectionRecord = {
      holderIdentity: spec.holderIdentity ?? "",
      leaseDurationSeconds: spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000,
      leaderTransitions: spec.leaseTransitions ?? 0,
      acquireTime: spec.acquireTime,
      renewTime: spec.renewTime,
    };
    const version = lease.metadata?.resourceVersion;
    // Any write changes the resourceVersion (compared for equality only: it is opaque); the
    // record is compared too for servers or fakes that keep it.
    const changed = this.#observed === undefined || version !== this.#observedVersion ||
      !sameRecord(record, this.#observed);
    if (!changed) return;
    const before = this.#observed?.holderIdentity;
    this.#observed = record;
    this.#observedVersion = version;
    this.#observedAt = this.#clock.now();
    if (before !== record.holderIdentity) {
      for (const listener of this.#listeners) {
        try {
          listener(record.holderIdentity);
        } catch (e) {
          log.error("onLeaderChange listener threw: {error}", { error: String(e) });
        }
      }
    }
  }

  #where(): string {
    return `${this.namespace}/${this.name}`;
  }
}

interface TermHooks {
  identity: string;
  transitions: number;
  clock: Clock;
  retryPeriodMs: number;
  renewDeadlineMs: number;
  /** One renew: true when renewed, false when another holder took over; throws on failure. */
  renew(signal: AbortSignal): Promise<boolean>;
  release(signal: AbortSignal): Promise<void>;
  observedLeader(): string;
  ended(reason: string): void;
}

class LeadershipTerm implements Leadership {
  readonly identity: string;
  readonly transitions: number;
  readonly ended: Promise<string>;
  #hooks: TermHooks;
  #controller = new AbortController();
  #stopRenewing = new AbortController();
  #resolveEnded!: (reason: string) => void;
  #loop: Promise<void> = Promise.resolve();
  #released: Promise<void> | undefined;

  constructor(hooks: TermHooks) {
    this.#hooks = hooks;
    this.identity = hooks.identity;
    this.transitions = hooks.transitions;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  start(lastRenewStart: number): void {
    this.#loop = this.#renewLoop(lastRenewStart);
  }

  #end(reason: string): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(new LeadershipLostError(reason));
    this.#hooks.ended(reason);
    this.#resolveEnded(reason);
  }

  async #renewLoop(lastRenewStart: number): Promise<void> {
    const elector = this.#hooks;
    const clock = elector.clock;
    const stop = this.#stopRenewing.signal;
    try {
      for (;;) {
        await clock.sleep(elector.retryPeriodMs, stop);
        // Retry until the deadline; the request in flight is aborted when the deadline passes.
        for (;;) {
          const deadline = lastRenewStart + elector.renewDeadlineMs;
          const started = clock.now();
          if (started >= deadline) {
            this.#end(`no successful renew for ${elector.renewDeadlineMs} ms (renew deadline)`);
            return;
          }
          const timeout = new AbortController();
          const timer = clock.sleep(deadline - started, AbortSignal.any([stop, timeout.signal]))
            .then(() => timeout.abort(new Error("renew deadline passed")), () => {});
          let outcome: "renewed" | "taken" | "failed";
          let error = "";
          try {
            outcome = await elector.renew(AbortSignal.any([stop, timeout.signal]))
              ? "renewed"
              : "taken";
          } catch (e) {
            outcome = "failed";
            error = e instanceof Error ? e.message : String(e);
          } finally {
            timeout.abort();
            await timer;
          }
          if (stop.aborted) return;
          if (outcome === "renewed") {
            lastRenewStart = started;
            break;
          }
          if (outcome === "taken") {
            this.#end(`the lease is held by ${elector.observedLeader() || "nobody"} now`);
            return;
          }
          log.warn("{identity} failed to renew lease: {error}", {
            identity: this.identity,
            error,
          });
          const left = lastRenewStart + elector.renewDeadlineMs - clock.now();
          if (left <= 0) continue;
          await clock.sleep(Math.min(elector.retryPeriodMs, left), stop);
        }
      }
    } catch (e) {
      if (!stop.aborted) throw e;
    }
  }

  release(): Promise<void> {
    this.#released ??= (async () => {
      this.#stopRenewing.abort();
      await this.#loop;
      if (this.signal.aborted) return; // lost or abandoned before: never write a lease we do not hold
      // Bounded: an API server out of reach at shutdown must not hang it (the lease then expires).
      const deadline = new AbortController();
      const timer = this.#hooks.clock.sleep(this.#hooks.renewDeadlineMs, deadline.signal)
        .then(() => deadline.abort(new Error("release deadline passed")), () => {});
      try {
        await this.#hooks.release(deadline.signal);
      } catch (e) {
        log.warn("{identity} could not release the lease (it expires on its own): {error}", {
          identity: this.identity,
          error: e instanceof Error ? e.message : String(e),
        });
      } finally {
        deadline.abort();
        await timer;
        this.#end("released");
      }
    })();
    return this.#released;
  }

  abandon(): Promise<void> {
    this.#released ??= (async () => {
      this.#stopRenewing.abort();
      await this.#loop;
      this.#end("abandoned: renewing stopped, the lease expires on its own");
    })();
    return this.#released;
  }
}

/** The abort reason of {@linkcode Leadership.signal}: why leadership ended. */
export class LeadershipLostError extends Error {
  /**
   * Creates the error.
   *
   * @param reason Why leadership ended.
   */
  constructor(reason: string) {
    super(`Leadership ended: ${reason}`);
    this.name = "LeadershipLostError";
  }
}

function sameRecord(a: LeaderElectionRecord, b: LeaderElectionRecord): boolean {
  return a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.leaderTransitions === b.leaderTransitions && a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime;
}

function defaultIdentity(): string {
  let host: string;
  try {
    host = hostname();
  } catch (e) {
    throw new TypeError(
      "LeaderElector needs the hostname for its default identity: run with --allow-sys=hostname, or pass `identity` (e.g. the pod name)",
      { cause: e },
    );
  }
  const suffix = Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${host}_${suffix}`;
}
