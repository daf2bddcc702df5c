// Internal: the hook through which a sharded Manager steers a Controller (runtime/sharding.ts
// implements it). The Controller knows nothing of leases: it asks the gate for its primary source
// (the objects of the shards this replica holds), whether a key is this replica's to queue, and
// for a ticket before each run; the ticket's signal aborts when the shard is lost, and `check()`
// refuses a write once the shard can no longer be proven held (fencing).

import type { Api, KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import type { Clock } from "../../clock.ts";
import type { SharedSource, SourceSelectors } from "./cache.ts";

/** The gate of each sharded Controller, set by the Manager before `run()`. */
export const shardGates: WeakMap<object, ShardGate> = new WeakMap();

/** Work on one key of a held shard, from the start of a run to its end. */
export interface ShardTicket {
  /** Aborts when the shard is lost (renew deadline passed, taken over, abandoned). */
  readonly signal: AbortSignal;
  /** Throws a {@linkcode ShardFencedError} when the shard can no longer be proven held. */
  check(): void;
  /** Ends the run (a hand-over waits for every ticket of its shard to end). */
  exit(): void;
}

/** What a Controller asks of the sharding. */
export interface ShardGate {
  /** The primary source: the objects of the held shards; released as any source. */
  primary<T extends KubeObject>(
    client: Client,
    api: Api<T>,
    selectors: SourceSelectors,
    clock: Clock,
  ): SharedSource<T>;
  /** Whether a change of `key` should queue it here (its shard is held and accepting). */
  owns(key: string): boolean;
  /** A ticket to run `key` now, or `undefined` when it is not this replica's (any more). */
  enter(key: string): ShardTicket | undefined;
}

/**
 * A write through a reconcile's `ctx.client` after this replica stopped being able to prove it
 * holds the key's shard (its lease renew deadline passed, or the shard was handed over): the
 * request was not sent, since another replica may own the key now.
 */
export class ShardFencedError extends Error {
  /** The key of the reconcile. */
  readonly key: string;
  /** The shard of the key. */
  readonly shard: number;
  /**
   * Creates the error.
   *
   * @param key The key of the reconcile.
   * @param shard The shard.
   * @param group The shard group (the Leases' name prefix).
   */
  constructor(key: string, shard: number, group: string) {
    super(
      `Write refused (fenced): the reconcile of ${key} can no longer prove that this replica holds shard ${shard} of ${group} (its lease was not renewed within the renew deadline, or it was handed over); another replica may own the key now`,
    );
    this.name = "ShardFencedError";
    this.key = key;
    this.shard = shard;
  }
}
