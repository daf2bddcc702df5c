/**
 * kube: a Kubernetes client for Deno.
 *
 * - {@linkcode Config} finds the cluster the way kubectl does; {@linkcode Client} talks to it.
 * - {@linkcode Api} builds typed resource descriptors: `Api.v1Pod().within("default")`.
 * - {@linkcode watch}, {@linkcode Informer} and {@linkcode Reflector} follow changes and keep a
 *   cache in sync, recovering from every failure on their own.
 *
 * @example Cache the pods of a namespace
 * ```ts ignore
 * import { Api, Client, Reflector } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const reflector = new Reflector(client, Api.v1Pod().within("default"));
 * await reflector.init();
 * for (const [key, pod] of reflector.read()) console.log(key, pod.status?.phase);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export { type Clock, systemClock } from "./clock.ts";
export * from "./config.ts";
export * from "./client.ts";
export * from "./api.ts";
export * from "./selector.ts";
export {
  type BookmarkWatchEvent,
  type ErrorWatchEvent,
  INITIAL_EVENTS_END_ANNOTATION,
  isObjectEvent,
  MALFORMED_WATCH_EVENT,
  type ObjectWatchEvent,
  watch,
  WATCH_STALLED,
  type WatchEvent,
  type WatchEventType,
  type WatchOptions,
} from "./watch.ts";
export * from "./informer.ts";
export * from "./reflector.ts";
export * from "./custom_resource.ts";
export {
  Action,
  Controller,
  type ControllerBackoff,
  type ControllerOptions,
  type ControllerStats,
  type ErrorDecision,
  type ErrorInfo,
  type ErrorPolicy,
  type Logger,
  type ObjectKey,
  type ObjectRecorder,
  type OutcomeResult,
  ownerReference,
  type Predicate,
  predicates,
  type ReconcileAction,
  type ReconcileContext,
  type ReconcileOutcome,
  type Reconciler,
  type ReconcileResult,
  type RelatedMapper,
  type RelatedOptions,
  type Selectors,
  type SharedCache,
  sharedCache,
  TerminalError,
} from "./controller.ts";
export {
  type EventInit,
  type EventObjectReference,
  EventRecorder,
  type EventRecorderOptions,
  EVENTS_API,
  type KubeEvent,
} from "./events.ts";
export { finalizer, type FinalizerContext, type FinalizerHandlers } from "./finalizer.ts";
export { conditions, type WaitCondition, waitFor, type WaitForOptions } from "./wait.ts";
export * from "./leader_election.ts";
export * from "./metrics.ts";
export * from "./endpoints.ts";
export * from "./manager.ts";
export * from "./generated/mod.ts";
