/**
 * Sharded controllers: scale one controller past one leader. With the `sharding` option of
 * {@linkcode Manager}, every replica runs the controllers, each on its share of the objects:
 *
 * - The hash space of `metadata.uid` (or `metadata.namespace`) is cut into `shards` equal ranges
 *   (KEP-5866: 64-bit FNV-1a, the same hash as the API server's `shardSelector`). Each shard has
 *   a Lease `<name>-shard-<i>`; each replica a member Lease. Every retry period a replica lists
 *   the group's Leases once, renews what it holds and moves towards its fair share
 *   (shards / live replicas): extra shards are drained (no new reconcile starts, the running
 *   ones finish) and released, so a joining replica gets its share within a few retry periods;
 *   a dead replica's shards are taken once their Lease has not changed for its duration.
 * - Never two replicas on one key: a shard is released only after its reconciles finished (or,
 *   when they do not stop within `drainTimeoutMs`, aborted and the Lease left to expire); a
 *   replica stops acting on a shard as soon as it cannot prove it holds it (renew deadline
 *   passed): the reconciles' `ctx.signal` aborts and their writes through `ctx.client` are
 *   refused with a {@linkcode ShardFencedError}, not sent.
 * - Caches: on a server with the `ShardedListAndWatch` feature gate (Kubernetes 1.36, alpha) the
 *   primary resource is watched once per held shard, with `shardSelector`, so a replica receives
 *   only its share. Without it (detected by a probe list: no `metadata.shardInfo` in the answer),
 *   one unsharded watch and the same hash here; a warning and the `kube_sharding_filter_mode`
 *   metric say so. Owned and related objects (`owns()`, `watches()`) keep one unsharded cache
 *   each, shared by the replica's controllers: a change maps to its primary's key, which is
 *   queued only when the primary's shard is held here.
 *
 * @example Three replicas of a controller, each reconciling a third of the objects
 * ```ts ignore
 * import { Api, Client, Controller, Manager, shutdownSignal } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const manager = new Manager(client, {
 *   sharding: { namespace: "ops", name: "foo-operator", shards: 12 },
 *   endpoints: { port: 8080 },
 * });
 * manager.add(new Controller(client, foos, reconcile).owns(Api.v1ConfigMap()));
 * await manager.run(shutdownSignal());
 * ```
 *
 * @module
 */

import type { KubeObject } from "../api.ts";
import { fnv1a64, shardOfHash, shardRanges, shardSelector } from "./_sharding/hash.ts";

export { ShardFencedError } from "./_controller/gate.ts";

/** The field whose hash picks an object's shard. */
export type ShardBy = "uid" | "namespace";

/** Options of sharding (the `sharding` option of {@linkcode Manager}). */
export interface ShardingOptions {
  /** Namespace of the Leases. */
  namespace: string;
  /**
   * Name of the shard group: the Leases are `<name>-shard-<i>` and `<name>-member-<hash>` (a DNS
   * label of at most 40 characters).
   */
  name: string;
  /**
   * How many shards (1–4096). More shards than replicas lets the work spread evenly and move in
   * small pieces; each held shard costs one Lease write per retry period and, with the feature
   * gate, one watch per primary resource. Several per replica at the largest scale you plan,
   * e.g. 12 or 16.
   */
  shards: number;
  /**
   * Hash `metadata.uid` (default: objects spread evenly) or `metadata.namespace` (every object of
   * a namespace in one shard: for reconciles that read their namespace's other objects).
   */
  by?: ShardBy;
  /** This replica's identity. Default: the leader election identity, else hostname + random. */
  identity?: string;
  /** How long a Lease is valid after its holder last wrote it. Default 15 000 ms. */
  leaseDurationMs?: number;
  /** How long a holder may fail to renew before it stops acting on the shard. Default 10 000 ms. */
  renewDeadlineMs?: number;
  /** Interval of the lease rounds (one list, the renewals). Default 2 000 ms. */
  retryPeriodMs?: number;
  /**
   * How long a hand-over waits for the shard's reconciles to finish before it aborts them and
   * leaves the Lease to expire. Default: the Manager's `gracePeriodMs`.
   */
  drainTimeoutMs?: number;
}

/**
 * The shard of an object among `shards` (what the leases and the API server's `shardSelector`
 * use), e.g. to tell which replica reconciles it.
 *
 * @param object The object (its `metadata.uid` or `metadata.namespace`).
 * @param shards The number of shards.
 * @param by The hashed field. Default `uid`.
 * @returns The shard, from 0 to `shards - 1`.
 *
 * @example
 * ```ts
 * import { shardOf } from "@denokube/kube/runtime";
 * const shard = shardOf({ metadata: { uid: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6" } }, 12);
 * ```
 */
export function shardOf(object: KubeObject, shards: number, by: ShardBy = "uid"): number {
  const meta = object.metadata;
  const value = (by === "uid" ? meta?.uid : meta?.namespace) ?? "";
  return shardOfHash(fnv1a64(value), shardRanges(shards));
}

/**
 * The KEP-5866 `shardSelector` of some shards of `shards`, for a list or watch of those shards
 * only (`client.list(api, { shardSelector })`, `watch(client, api, { shardSelector })`).
 *
 * @param shardList The shards, each from 0 to `shards - 1`.
 * @param shards The number of shards.
 * @param by The hashed field. Default `uid`.
 * @returns The selector, ranges joined with `||`.
 * @throws {RangeError} When a shard is out of range or none is given.
 *
 * @example
 * ```ts
 * import { shardSelectorOf } from "@denokube/kube/runtime";
 * const selector = shardSelectorOf([0], 2);
 * // "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"
 * ```
 */
export function shardSelectorOf(shardList: number[], shards: number, by: ShardBy = "uid"): string {
  const ranges = shardRanges(shards);
  for (const s of shardList) {
    if (!Number.isInteger(s) || s < 0 || s >= shards) {
      throw new RangeError(`shardSelectorOf: shard ${s} is not in 0..${shards - 1}`);
    }
  }
  return shardSelector(
    by === "uid" ? "object.metadata.uid" : "object.metadata.namespace",
    shardList.map((s) => ranges[s]),
  );
}
