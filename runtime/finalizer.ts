/**
 * {@linkcode finalizer}: run a cleanup step before an object is deleted, the Kubernetes way: add
 * a finalizer before the first apply, run the cleanup when the object is being deleted, and
 * remove the finalizer only after the cleanup succeeded.
 *
 * Every change of `metadata.finalizers` is a JSON patch guarded by a `test` operation, so it
 * cannot clobber a finalizer another controller added or removed at the same moment: the guard
 * fails (422), the object is read again and the patch is recomputed.
 *
 * @example In a reconcile
 * ```ts ignore
 * import { finalizer } from "@denokube/kube";
 * const reconcile = (foo: Foo, ctx: ReconcileContext) =>
 *   finalizer(ctx, foos, "clux.dev/cleanup", foo, {
 *     apply: (foo) => applyDeployment(foo, ctx),
 *     cleanup: (foo) => deleteExternalRecord(foo),
 *   });
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Api, KubeObject } from "../api.ts";
import type { Client } from "../client.ts";
import type { ReconcileResult } from "./controller.ts";
import { isConflict, isInvalid, isNotFound } from "../errors.ts";

const log = getLogger(["kube", "controller"]);

/** The two phases of an object under a finalizer. */
export interface FinalizerHandlers<T extends KubeObject> {
  /**
   * The object lives: make the world match it. Runs after the finalizer is in place.
   *
   * @param object The object (with the finalizer).
   * @returns The reconcile result.
   */
  apply(object: T): ReconcileResult | Promise<ReconcileResult>;
  /**
   * The object is being deleted: undo what `apply` did outside the cluster. The finalizer is
   * removed when it returns without `error` or `requeueAfter`; when it throws or asks for a
   * requeue, the finalizer stays and the object with it.
   *
   * @param object The object (with `metadata.deletionTimestamp`).
   * @returns The reconcile result.
   */
  cleanup(object: T): ReconcileResult | Promise<ReconcileResult>;
}

/** The part of a reconcile context {@linkcode finalizer} uses. */
export interface FinalizerContext {
  /** The client that patches the finalizers (a reconcile's `ctx.client`). */
  client: Client;
  /** Aborts the patches. */
  signal?: AbortSignal;
}

/** How often a guarded patch is recomputed after a concurrent change before giving up. */
const MAX_TRIES = 8;

const QUALIFIED =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * Runs `handlers.apply` or `handlers.cleanup` with the finalizer `name` kept in place around
 * them (see the module description).
 *
 * @param ctx The client (and signal): pass the reconcile's `ctx`.
 * @param api The object's resource type.
 * @param name The finalizer, domain-qualified, e.g. `clux.dev/cleanup`.
 * @param object The object as the reconcile got it.
 * @param handlers `apply` and `cleanup`.
 * @returns What the handler returned (`undefined` when the object is being deleted and the
 *   finalizer was already gone).
 * @throws {TypeError} When `name` is not a domain-qualified finalizer name.
 *
 * @example
 * ```ts ignore
 * return await finalizer(ctx, foos, "clux.dev/cleanup", foo, { apply, cleanup });
 * ```
 */
export async function finalizer<T extends KubeObject>(
  ctx: FinalizerContext,
  api: Api<T>,
  name: string,
  object: T,
  handlers: FinalizerHandlers<T>,
): Promise<ReconcileResult> {
  if (typeof name !== "string" || !QUALIFIED.test(name) || name.length > 316) {
    throw new TypeError(
      `Invalid finalizer name ${
        JSON.stringify(name)
      }: use a domain-qualified name such as "example.com/cleanup"`,
    );
  }
  const meta = object.metadata;
  if (!meta?.name) throw new TypeError("finalizer: the object has no metadata.name");
  const has = (meta.finalizers ?? []).includes(name);
  if (meta.deletionTimestamp) {
    if (!has) return undefined;
    const result = await handlers.cleanup(object);
    if (result && (result.error !== undefined || result.requeueAfter !== undefined)) {
      return result;
    }
    await removeFinalizer(ctx, api, name, object);
    return result;
  }
  const current = has ? object : await addFinalizer(ctx, api, name, object);
  if (current === undefined) return undefined; // deleted meanwhile
  if (current.metadata?.deletionTimestamp) {
    // Deleted while the finalizer was being added: never apply to a terminating object; clean
    // up when our finalizer made it in, else there is nothing of ours to undo.
    return await finalizer(ctx, api, name, current, handlers);
  }
  return await handlers.apply(current);
}

/**
 * Adds a finalizer with a guarded JSON patch.
 *
 * @returns The object after the patch (or as found, when it already had it); `undefined` when
 *   the object is gone.
 */
async function addFinalizer<T extends KubeObject>(
  ctx: FinalizerContext,
  api: Api<T>,
  name: string,
  object: T,
): Promise<T | undefined> {
  let current: T = object;
  for (let attempt = 1;; attempt++) {
    const finalizers = current.metadata?.finalizers ?? [];
    if (finalizers.includes(name)) return current;
    if (current.metadata?.deletionTimestamp) return current; // too late to add one
    // With finalizers present, the whole list is the guard; without, the resourceVersion is
    // (a test of a missing path would fail on some servers).
    const patch = finalizers.length > 0
      ? [
        { op: "test", path: "/metadata/finalizers", value: finalizers },
        { op: "add", path: "/metadata/finalizers/-", value: name },
      ]
      : [
        { op: "test", path: "/metadata/resourceVersion", value: current.metadata?.resourceVersion },
        { op: "add", path: "/metadata/finalizers", value: [name] },
      ];
    try {
      const patched = await ctx.client.patch(api, current.metadata!.name!, patch, {
        type: "json",
        namespace: current.metadata?.namespace,
        signal: ctx.signal,
      });
      log.debug("Added finalizer {finalizer} to {object}", {
        finalizer: name,
        object: api.keyOf(current),
      });
      return patched;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      if (!(isInvalid(e) || isConflict(e)) || attempt >= MAX_TRIES) throw e;
      current = await ctx.client.get(api, current.metadata!.name!, {
        namespace: current.metadata?.namespace,
        signal: ctx.signal,
      });
    }
  }
}

/** Removes a finalizer with a guarded JSON patch (test the entry, remove it by index). */
async function removeFinalizer<T extends KubeObject>(
  ctx: FinalizerContext,
  api: Api<T>,
  name: string,
  object: T,
): Promise<void> {
  let current: T = object;
  for (let attempt = 1;; attempt++) {
    const index = (current.metadata?.finalizers ?? []).indexOf(name);
    if (index < 0) return;
    const patch = [
      { op: "test", path: `/metadata/finalizers/${index}`, value: name },
      { op: "remove", path: `/metadata/finalizers/${index}` },
    ];
    try {
      await ctx.client.patch(api, current.metadata!.name!, patch, {
        type: "json",
        namespace: current.metadata?.namespace,
        signal: ctx.signal,
      });
      log.debug("Removed finalizer {finalizer} from {object}", {
        finalizer: name,
        object: api.keyOf(current),
      });
      return;
    } catch (e) {
      if (isNotFound(e)) return;
      if (!(isInvalid(e) || isConflict(e)) || attempt >= MAX_TRIES) throw e;
      try {
        current = await ctx.client.get(api, current.metadata!.name!, {
          namespace: current.metadata?.namespace,
          signal: ctx.signal,
        });
      } catch (e2) {
        if (isNotFound(e2)) return;
        throw e2;
      }
    }
  }
}
