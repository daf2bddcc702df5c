// Internal: the shard leases of one sharded Manager. Each replica holds a member Lease (so the
// others count it) and some of the `<name>-shard-<i>` Leases; every retry period it lists the
// group's Leases once, renews what it holds, and moves towards its fair share:
//
//   live members M (member Leases whose record changed within their duration, by this replica's
//   own clock, plus itself), sorted by identity; member j's share is ⌊N/M⌋, plus one for j < N mod M.
//   - more than the share: drain the extra shards (no new work, wait for the work in flight),
//     then release them (empty holder), so that another replica takes them within a retry period;
//   - fewer: take free shards (no holder, or a holder whose record has not changed for its
//     duration by this replica's clock: a dead replica's shard).
//
// Fencing: a shard counts as held only until `start of its last successful write +
// renewDeadlineMs` (the same rule as LeaderElector): another replica waits a whole lease duration
// (> renew deadline) after it last saw the record change before taking it, so a replica that
// cannot renew (cut off, frozen) stops acting on the shard before anyone else can start. A
// watchdog enforces the deadline even while a request hangs.

import { getLogger } from "@logtape/logtape";
import { Api } from "../../api.ts";
import type { Client } from "../../client.ts";
import type { Clock } from "../../clock.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../errors.ts";
import type { Lease } from "../../generated/coordination_v1.ts";
import { microTime } from "../_microtime.ts";
import { fnv1a64 } from "./hash.ts";

const log = getLogger(["kube", "sharding"]);

/** Label naming the shard group of a Lease. */
export const GROUP_LABEL = "sharding.denokube.dev/group";
/** Label telling a shard Lease (`shard`) from a member Lease (`member`). */
export const ROLE_LABEL = "sharding.denokube.dev/role";

/** Settings of {@linkcode ShardLeases}. */
export interface ShardLeasesOptions {
  namespace: string;
  name: string;
  shards: number;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** How long a hand-over waits for the shard's work in flight before abandoning the lease. */
  drainTimeoutMs: number;
  clock: Clock;
}

/** What the leases tell the controllers. */
export interface ShardHooks {
  /** The shard is held now: start its cache and queue its keys. */
  acquired(shard: number): void;
  /**
   * The shard is being handed over: start no new work on it; resolve `true` once its work in
   * flight has finished, `false` after `timeoutMs`.
   */
  drain(shard: number, timeoutMs: number): Promise<boolean>;
  /** The shard is not held any more (released, lost, abandoned): abort its work, drop its cache. */
  lost(shard: number, reason: string): void;
}

/** Counters of the hand-overs (for metrics). */
export interface ShardLeaseStats {
  acquired: number;
  released: number;
  lost: number;
  abandoned: number;
}

interface ShardState {
  mine: boolean;
  draining: boolean;
  /** The shard is held (for fencing) until this time of the clock. */
  provenUntil: number;
  /** The last version of the Lease written by this replica. */
  written?: Lease;
}

interface Observation {
  version: string | undefined;
  holder: string;
  durationMs: number;
  at: number;
}

/** The shard leases of one replica (see the module comment). */
export class ShardLeases {
  readonly options: ShardLeasesOptions;
  readonly stats: ShardLeaseStats = { acquired: 0, released: 0, lost: 0, abandoned: 0 };
  #client: Client;
  #api: Api<Lease>;
  #hooks: ShardHooks;
  #states: ShardState[];
  #observed = new Map<string, Observation>();
  #member: Lease | undefined;
  #memberName: string;
  #members: string[] = [];
  #stopping = false;
  #wake: (() => void) | undefined;
  #handovers = new Set<Promise<void>>();
  /** Lease rounds done; the first one only announces this member. */
  #rounds = 0;

  constructor(client: Client, options: ShardLeasesOptions, hooks: ShardHooks) {
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = options;
    for (
      const [key, value] of Object.entries({ leaseDurationMs, renewDeadlineMs, retryPeriodMs })
    ) {
      if (!(value > 0) || !Number.isFinite(value)) {
        throw new RangeError(`sharding: ${key} must be a positive number, got ${value}`);
      }
    }
    if (leaseDurationMs % 1000 !== 0) {
      throw new RangeError(
        `sharding: leaseDurationMs must be whole seconds (the Lease stores seconds), got ${leaseDurationMs}`,
      );
    }
    if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
      throw new RangeError(
        `sharding: need leaseDurationMs (${leaseDurationMs}) > renewDeadlineMs (${renewDeadlineMs}) > retryPeriodMs (${retryPeriodMs}), or a replica cut off from the API server could act on a shard after another took it`,
      );
    }
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(options.name) || options.name.length > 40) {
      throw new TypeError(
        `sharding: name ${
          JSON.stringify(options.name)
        } must be a DNS label of at most 40 characters (it names the Leases <name>-shard-<i>)`,
      );
    }
    this.#client = client;
    this.options = options;
    this.#api = Api.coordinationV1Lease().within(options.namespace);
    this.#hooks = hooks;
    this.#states = Array.from({ length: options.shards }, () => ({
      mine: false,
      draining: false,
      provenUntil: 0,
    }));
    this.#memberName = `${options.name}-member-${fnv1a64(options.identity).slice(0, 12)}`;
  }

  /** The name of a shard's Lease. */
  leaseName(shard: number): string {
    return `${this.options.name}-shard-${shard}`;
  }

  /**
   * Whether this replica may still act on the shard: it holds the lease and its last renew
   * started less than the renew deadline ago.
   */
  proven(shard: number): boolean {
    const state = this.#states[shard];
    return state !== undefined && state.mine && this.options.clock.now() < state.provenUntil;
  }

  /** Whether new work on the shard may start: proven and not being handed over. */
  accepting(shard: number): boolean {
    return this.proven(shard) && !this.#states[shard].draining;
  }

  /** The shards held now (draining ones included). */
  held(): number[] {
    const out: number[] = [];
    this.#states.forEach((s, i) => s.mine && out.push(i));
    return out;
  }

  /** The live members this replica counted at its last step, sorted. */
  members(): readonly string[] {
    return this.#members;
  }

  /** This replica's share at its last step. */
  share(): number {
    return shareOf(this.options.shards, this.#members, this.options.identity);
  }

  /**
   * Runs until `signal` aborts, then hands every shard over (drain, release) and releases the
   * member lease. Never rejects for API failures (they are logged and retried).
   */
  async run(signal: AbortSignal): Promise<void> {
    const clock = this.options.clock;
    const watchdog = new AbortController();
    const watching = this.#watchdog(watchdog.signal);
    const onAbort = () => {
      this.#stopping = true;
      this.#wake?.();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      for (;;) {
        if (this.#stopping) {
          // Leave the group first: the others' share grows now, so they take each shard as soon
          // as it is released instead of one round after the last one.
          if (this.#member) await this.#releaseMember();
          for (const shard of this.held()) this.#handOver(shard, "shutdown");
          if (this.held().length === 0) break;
        }
        await this.#step();
        if (this.#stopping && this.held().length === 0) break;
        const pause = new AbortController();
        this.#wake = () => pause.abort();
        await clock.sleep(this.options.retryPeriodMs, pause.signal).catch(() => {});
        this.#wake = undefined;
      }
      await Promise.all(this.#handovers);
      await this.#releaseMember();
    } finally {
      signal.removeEventListener("abort", onAbort);
      watchdog.abort();
      await watching;
    }
  }

  /** Enforces the renew deadline of every held shard, even while a request hangs. */
  async #watchdog(signal: AbortSignal): Promise<void> {
    const clock = this.options.clock;
    while (!signal.aborted) {
      const now = clock.now();
      let next = now + this.options.retryPeriodMs;
      this.#states.forEach((state, shard) => {
        if (!state.mine) return;
        if (now >= state.provenUntil) {
          this.#lose(shard, `no successful renew for ${this.options.renewDeadlineMs} ms`);
        } else next = Math.min(next, state.provenUntil);
      });
      await clock.sleep(Math.max(1, next - now), signal).catch(() => {});
    }
  }

  #lose(shard: number, reason: string): void {
    const state = this.#states[shard];
    if (!state.mine) return;
    state.mine = false;
    state.draining = false;
    state.written = undefined;
    this.stats.lost++;
    log.warn("{identity} lost shard {shard} of {group}: {reason}", {
      identity: this.options.identity,
      shard,
      group: this.options.name,
      reason,
    });
    this.#notifyLost(shard, `lost: ${reason}`);
  }

  #notifyLost(shard: number, reason: string): void {
    try {
      this.#hooks.lost(shard, reason);
    } catch (e) {
      log.error("A shard hook threw: {error}", { error: String(e) });
    }
  }

  /** Drains a shard, then releases its lease (or abandons it when the work does not stop). */
  #handOver(shard: number, why: string): void {
    const state = this.#states[shard];
    if (!state.mine || state.draining) return;
    state.draining = true;
    log.info("{identity} hands shard {shard} of {group} over ({why}): draining", {
      identity: this.options.identity,
      shard,
      group: this.options.name,
      why,
    });
    const handover = (async () => {
      let drained = false;
      try {
        drained = await this.#hooks.drain(shard, this.options.drainTimeoutMs);
      } catch (e) {
        log.error("Draining shard {shard} failed: {error}", { shard, error: String(e) });
      }
      if (!state.mine) return; // lost meanwhile
      const written = state.written;
      // Fence first: from here on nothing of this replica acts on the shard.
      state.mine = false;
      state.draining = false;
      state.written = undefined;
      if (!drained) {
        this.stats.abandoned++;
        log.error(
          "{identity}: work on shard {shard} still runs after {ms} ms: not releasing its lease (it expires instead)",
          { identity: this.options.identity, shard, ms: this.options.drainTimeoutMs },
        );
        this.#notifyLost(shard, "abandoned: the work did not stop in time");
        return;
      }
      this.#notifyLost(shard, "released");
      if (!written) return;
      const timeout = this.#timeout(this.options.renewDeadlineMs);
      try {
        const now = microTime(this.options.clock.now());
        await this.#client.replace(this.#api, {
          ...written,
          spec: {
            ...written.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            renewTime: now,
          },
        }, { signal: timeout.signal });
        this.stats.released++;
        log.info("{identity} released shard {shard} of {group}", {
          identity: this.options.identity,
          shard,
          group: this.options.name,
        });
      } catch (e) {
        // A conflict means a renew raced this write: the lease then expires on its own.
        this.stats.abandoned++;
        log.warn("{identity} could not release shard {shard} (it expires on its own): {error}", {
          identity: this.options.identity,
          shard,
          error: e instanceof Error ? e.message : String(e),
        });
      } finally {
        timeout.done();
      }
    })();
    this.#handovers.add(handover);
    handover.finally(() => {
      this.#handovers.delete(handover);
      if (this.#stopping) this.#wake?.(); // the last hand-over of a shutdown ends the loop now
    });
  }

  /** One round: member lease, one list, renewals, rebalance. Logs and swallows API failures. */
  async #step(): Promise<void> {
    const o = this.options;
    const timeout = this.#timeout(o.renewDeadlineMs);
    const signal = timeout.signal;
    try {
      if (!this.#stopping) await this.#renewMember(signal);
      const list = await this.#client.list(this.#api, {
        labelSelector: `${GROUP_LABEL}=${o.name}`,
        signal,
      });
      const now = o.clock.now();
      const leases = new Map<string, Lease>();
      for (const lease of list.items) {
        const name = lease.metadata?.name ?? "";
        leases.set(name, lease);
        this.#observe(name, lease, now);
      }
      this.#members = this.#liveMembers(leases, now);
      await this.#collectMembers(leases, now, signal);
      const share = this.share();
      // Renew what we hold; a shard someone else holds now is lost.
      await Promise.all(
        this.held().map(async (shard) => {
          const lease = leases.get(this.leaseName(shard));
          const holder = lease?.spec?.holderIdentity ?? "";
          if (!lease || holder !== o.identity) {
            this.#lose(shard, `the lease is held by ${holder || "nobody"} now`);
            return;
          }
          await this.#write(shard, lease, false, signal);
        }),
      );
      if (this.#stopping) return;
      // The first round only announces this member: replicas started together (a rollout) see
      // each other before taking shards, instead of one taking all and handing most over.
      if (this.#rounds++ === 0 && this.#members.length === 1) {
        const others = [...leases.values()].some((l) =>
          l.metadata?.labels?.[ROLE_LABEL] === "member" && l.spec?.holderIdentity !== o.identity
        );
        if (!others) return;
      }
      // Hand extra shards over (the highest numbers first), or take free ones.
      const held = this.held().filter((s) => !this.#states[s].draining);
      if (held.length > share) {
        for (const shard of held.slice(share).reverse()) this.#handOver(shard, "rebalance");
        return;
      }
      let missing = share - this.held().length;
      if (missing <= 0) return;
      // Start looking at this member's own part of the ring, so replicas race less for a shard.
      const index = Math.max(0, this.#members.indexOf(o.identity));
      const offset = Math.floor(index * o.shards / Math.max(1, this.#members.length));
      for (let k = 0; k < o.shards && missing > 0; k++) {
        const shard = (offset + k) % o.shards;
        if (this.#states[shard].mine) continue;
        const name = this.leaseName(shard);
        const lease = leases.get(name);
        if (lease && !this.#free(name, lease, now)) continue;
        if (await this.#write(shard, lease, true, signal)) missing--;
      }
    } catch (e) {
      log.warn("{identity}: shard lease round of {group} failed: {error}", {
        identity: o.identity,
        group: o.name,
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      timeout.done();
    }
  }

  /** A signal that aborts after `ms` of the clock; `done()` clears its timer. */
  #timeout(ms: number): { signal: AbortSignal; done(): void } {
    const controller = new AbortController();
    const cancel = new AbortController();
    this.options.clock.sleep(ms, cancel.signal).then(
      () => controller.abort(new Error(`no answer within ${ms} ms`)),
      () => {},
    );
    return { signal: controller.signal, done: () => cancel.abort() };
  }

  #observe(name: string, lease: Lease, now: number): void {
    const version = lease.metadata?.resourceVersion;
    const seen = this.#observed.get(name);
    if (seen && seen.version === version) return;
    this.#observed.set(name, {
      version,
      holder: lease.spec?.holderIdentity ?? "",
      durationMs: (lease.spec?.leaseDurationSeconds ?? this.options.leaseDurationMs / 1000) * 1000,
      at: now,
    });
  }

  /** A lease nobody holds, or whose holder has not written for its duration (our clock). */
  #free(name: string, lease: Lease, now: number): boolean {
    const holder = lease.spec?.holderIdentity ?? "";
    if (holder === "" || holder === this.options.identity) return true;
    const seen = this.#observed.get(name);
    return seen !== undefined && seen.at + seen.durationMs <= now;
  }

  #liveMembers(leases: Map<string, Lease>, now: number): string[] {
    const live = new Set<string>();
    if (!this.#stopping) live.add(this.options.identity);
    for (const [name, lease] of leases) {
      if (lease.metadata?.labels?.[ROLE_LABEL] !== "member") continue;
      const holder = lease.spec?.holderIdentity ?? "";
      if (!holder || this.#free(name, lease, now)) continue;
      live.add(holder);
    }
    return [...live].sort();
  }

  /**
   * Deletes the member Leases of replicas that left (empty holder) or died (unchanged for two
   * lease durations), so that the group's list stays as small as its live replicas. The delete
   * carries the resourceVersion read: a replica that renewed meanwhile keeps its Lease.
   */
  async #collectMembers(leases: Map<string, Lease>, now: number, signal: AbortSignal) {
    for (const [name, lease] of leases) {
      if (lease.metadata?.labels?.[ROLE_LABEL] !== "member" || name === this.#memberName) continue;
      const seen = this.#observed.get(name);
      if (!seen) continue;
      const gone = seen.holder === "" ||
        seen.at + 2 * Math.max(seen.durationMs, this.options.leaseDurationMs) <= now;
      if (!gone) continue;
      await this.#client.delete(this.#api, name, {
        preconditions: { resourceVersion: lease.metadata?.resourceVersion },
        signal,
      }).catch(() => {}); // another replica was faster, or it renewed: either is fine
      this.#observed.delete(name);
    }
  }

  /** Takes (`acquire`) or renews a shard lease; true on success. */
  async #write(
    shard: number,
    lease: Lease | undefined,
    acquire: boolean,
    signal: AbortSignal,
  ): Promise<boolean> {
    const o = this.options;
    const state = this.#states[shard];
    const started = o.clock.now();
    const stamp = microTime(started);
    const name = this.leaseName(shard);
    const mine = lease?.spec?.holderIdentity === o.identity;
    const transitions = (lease?.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const spec = {
      holderIdentity: o.identity,
      leaseDurationSeconds: o.leaseDurationMs / 1000,
      acquireTime: mine ? lease?.spec?.acquireTime ?? stamp : stamp,
      renewTime: stamp,
      leaseTransitions: lease ? transitions : 0,
    };
    let stored: Lease;
    try {
      stored = lease
        ? await this.#client.replace(this.#api, { ...lease, spec }, { signal })
        : await this.#client.create(this.#api, {
          metadata: { name, labels: { [GROUP_LABEL]: o.name, [ROLE_LABEL]: "shard" } },
          spec,
        }, { signal });
    } catch (e) {
      if (isConflict(e) || isAlreadyExists(e) || isNotFound(e)) {
        // Someone wrote since our list: another replica took it, or (renewing) it was taken.
        if (!acquire) this.#lose(shard, "another replica wrote its lease");
        return false;
      }
      throw e;
    }
    this.#observe(name, stored, o.clock.now());
    if (acquire) {
      // Lost meanwhile (stopping) or taken: only a fresh acquire starts a term.
      state.mine = true;
      state.draining = false;
      state.provenUntil = started + o.renewDeadlineMs;
      state.written = stored;
      this.stats.acquired++;
      log.info("{identity} holds shard {shard} of {group} now", {
        identity: o.identity,
        shard,
        group: o.name,
      });
      try {
        this.#hooks.acquired(shard);
      } catch (e) {
        log.error("A shard hook threw: {error}", { error: String(e) });
      }
    } else if (state.mine) {
      state.provenUntil = started + o.renewDeadlineMs;
      state.written = stored;
    }
    return true;
  }

  async #renewMember(signal: AbortSignal): Promise<void> {
    const o = this.options;
    const stamp = microTime(o.clock.now());
    const spec = {
      holderIdentity: o.identity,
      leaseDurationSeconds: o.leaseDurationMs / 1000,
      renewTime: stamp,
    };
    const current = this.#member;
    try {
      this.#member = current
        ? await this.#client.replace(
          this.#api,
          { ...current, spec: { ...current.spec, ...spec } },
          {
            signal,
          },
        )
        : await this.#client.create(this.#api, {
          metadata: {
            name: this.#memberName,
            labels: { [GROUP_LABEL]: o.name, [ROLE_LABEL]: "member" },
          },
          spec: { ...spec, acquireTime: stamp },
        }, { signal });
    } catch (e) {
      if (!isConflict(e) && !isAlreadyExists(e) && !isNotFound(e)) throw e;
      // A stale copy (or a lease left by an earlier process of this identity): read it again.
      this.#member = undefined;
      const read = await this.#client.get(this.#api, this.#memberName, { signal }).catch(
        (e2) => {
          if (isNotFound(e2)) return undefined;
          throw e2;
        },
      );
      if (read) {
        this.#member = await this.#client.replace(this.#api, {
          ...read,
          spec: { ...read.spec, ...spec },
        }, { signal });
      }
    }
  }

  /** Leaves the group: an empty holder on the member lease, so that the others rebalance now. */
  async #releaseMember(): Promise<void> {
    const current = this.#member;
    if (!current) return;
    const timeout = this.#timeout(this.options.renewDeadlineMs);
    try {
      await this.#client.replace(this.#api, {
        ...current,
        spec: { ...current.spec, holderIdentity: "", leaseDurationSeconds: 1 },
      }, { signal: timeout.signal });
    } catch (e) {
      log.warn("{identity} could not release its member lease (it expires): {error}", {
        identity: this.options.identity,
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      timeout.done();
    }
    this.#member = undefined;
  }
}

/** A member's share of `shards` among sorted `members`: ⌊N/M⌋, plus one for the first N mod M. */
export function shareOf(shards: number, members: readonly string[], identity: string): number {
  const m = members.length;
  if (m === 0) return shards;
  const index = members.indexOf(identity);
  if (index < 0) return 0;
  return Math.floor(shards / m) + (index < shards % m ? 1 : 0);
}
