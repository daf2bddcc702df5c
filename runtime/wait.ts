/**
 * {@linkcode waitFor}: wait until one object meets a condition (or is gone), watching it rather
 * than polling, with a timeout.
 *
 * @example Wait for a Deployment to be available
 * ```ts ignore
 * import { Api, Client, conditions, waitFor } from "@denokube/kube";
 * await using client = await Client.infer();
 * await waitFor(client, Api.appsV1Deployment().within("default"), "web",
 *   conditions.deploymentAvailable, { timeout: 120_000 });
 * ```
 *
 * @module
 */

import type { Api, KubeObject } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { Reflector } from "../reflector.ts";

/** A condition on an object; `undefined` means the object does not exist. */
export type WaitCondition<T extends KubeObject = KubeObject> = (object: T | undefined) => boolean;

/** Options of {@linkcode waitFor}. */
export interface WaitForOptions {
  /** Milliseconds before giving up with a `TimeoutError` `DOMException` (required: no endless waits). */
  timeout: number;
  /** Aborts the wait (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** The namespace, overriding the Api's. */
  namespace?: string;
  /** The clock of the timeout and of retry pauses. Default: the system clock. */
  clock?: Clock;
}

interface StatusCondition {
  type?: string;
  status?: string;
}

function conditionsOf(object: KubeObject | undefined): StatusCondition[] {
  const status = (object as { status?: { conditions?: unknown } } | undefined)?.status;
  return Array.isArray(status?.conditions) ? status.conditions as StatusCondition[] : [];
}

/**
 * Ready-made conditions for {@linkcode waitFor}.
 *
 * @example
 * ```ts ignore
 * await waitFor(client, pods, "web", conditions.deleted(uid), { timeout: 60_000 });
 * ```
 */
export const conditions: {
  /** The object is gone; with a uid, also when the name now belongs to a new object. */
  deleted(uid?: string): WaitCondition;
  /** `status.conditions` has `type` with `status` (default `"True"`). */
  hasCondition(type: string, status?: string): WaitCondition;
  /** A CustomResourceDefinition is Established. */
  crdEstablished: WaitCondition;
  /** A Pod is Running (or has already Succeeded). */
  podRunning: WaitCondition;
  /** A Job is Complete. */
  jobCompleted: WaitCondition;
  /** A Deployment is Available and its latest generation is rolled out. */
  deploymentAvailable: WaitCondition;
} = {
  deleted(uid?: string): WaitCondition {
    return (object) => object === undefined || (uid !== undefined && object.metadata?.uid !== uid);
  },
  hasCondition(type: string, status = "True"): WaitCondition {
    return (object) => conditionsOf(object).some((c) => c.type === type && c.status === status);
  },
  crdEstablished: (object) =>
    conditionsOf(object).some((c) => c.type === "Established" && c.status === "True"),
  podRunning: (object) => {
    const phase = (object as { status?: { phase?: string } } | undefined)?.status?.phase;
    return phase === "Running" || phase === "Succeeded";
  },
  jobCompleted: (object) =>
    conditionsOf(object).some((c) => c.type === "Complete" && c.status === "True"),
  deploymentAvailable: (object) => {
    if (!object) return false;
    const status = (object as { status?: { observedGeneration?: number } }).status;
    const generation = object.metadata?.generation;
    const current = generation === undefined || (status?.observedGeneration ?? 0) >= generation;
    return current &&
      conditionsOf(object).some((c) => c.type === "Available" && c.status === "True");
  },
};

/**
 * Waits until the object `name` meets `condition`: caches it with a {@linkcode Reflector} of
 * that name only (a field selector), so the library's one watch loop with its retry policy
 * (backoff, `Retry-After`, a re-list after `410 Expired`) follows it; checks the first sync,
 * then every change. The condition sees `undefined` while the object does not exist. A
 * permanent failure (403, 404 of the resource) rejects.
 *
 * @param client The client.
 * @param api The resource type (and namespace).
 * @param name The object's name.
 * @param condition The condition.
 * @param options `timeout` (required), signal, namespace, clock.
 * @returns The object that met the condition (`undefined` when the condition accepts absence).
 * @throws {DOMException} `TimeoutError` when the timeout passes first (its message names the
 *   object and the timeout).
 *
 * @example
 * ```ts ignore
 * await waitFor(client, crds, "foos.clux.dev", conditions.crdEstablished, { timeout: 30_000 });
 * ```
 */
export async function waitFor<T extends KubeObject>(
  client: Client,
  api: Api<T>,
  name: string,
  condition: WaitCondition<T>,
  options: WaitForOptions,
): Promise<T | undefined> {
  const timeout = options?.timeout;
  if (!(typeof timeout === "number" && timeout >= 0)) {
    throw new TypeError("waitFor needs a timeout in milliseconds, e.g. { timeout: 60_000 }");
  }
  const clock = options.clock ?? systemClock;
  const scoped = options.namespace !== undefined ? api.within(options.namespace) : api;
  if (scoped.namespaced && scoped.namespace === undefined) {
    throw new TypeError(`waitFor ${api.kind} ${name}: pass a namespace (.within(ns) or namespace)`);
  }
  const what = `${api.kind} ${scoped.namespace ? `${scoped.namespace}/` : ""}${name}`;
  const deadline = new AbortController();
  const timer = new AbortController();
  clock.sleep(timeout, timer.signal).then(() => {
    deadline.abort(
      new DOMException(`Timed out after ${timeout} ms waiting for ${what}`, "TimeoutError"),
    );
  }, () => {});
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  const key = scoped.namespaced ? `${scoped.namespace}/${name}` : name;
  // The one watch loop (its backoff, Retry-After and relist rules) through a Reflector of just
  // this object: its first sync answers "does it exist now", its changes the rest.
  const reflector = new Reflector(client, scoped, {
    fieldSelector: `metadata.name=${name}`,
    clock,
  });
  const stop = new AbortController();
  const inner = AbortSignal.any([signal, stop.signal]);
  const changes = reflector.changes({ signal: inner });
  const running = reflector.run({ signal: inner });
  running.catch(() => {}); // its permanent failure ends `changes` with the error
  try {
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    aborted.catch(() => {});
    await Promise.race([reflector.ready, aborted]);
    const now = reflector.read().get(key);
    if (condition(now)) return now;
    for await (const change of changes) {
      const object = change.type === "DELETED" ? undefined : change.object;
      if (condition(object)) return object;
    }
    throw signal.reason ?? new Error(`waitFor ${what}: the watch ended`);
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    throw e;
  } finally {
    timer.abort();
    stop.abort();
    await running.catch(() => {});
  }
}
