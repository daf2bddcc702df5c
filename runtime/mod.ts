/**
 * The operator runtime of kube: what runs a controller in production, on top of the client in
 * `@denokube/kube`.
 *
 * - {@linkcode Controller}: a level-based work queue with per-key backoff, shared caches, owned and
 *   related objects, read-your-own-writes and graceful shutdown; {@linkcode finalizer} and
 *   {@linkcode EventRecorder} for what a reconcile does around it.
 * - {@linkcode Manager}: leader election on a Lease ({@linkcode LeaderElector}), every-replica and
 *   leader-only tasks, `/healthz`, `/readyz` and `/metrics` ({@linkcode serveEndpoints},
 *   {@linkcode Registry}), signals and shutdown order.
 * - {@linkcode waitFor} and {@linkcode conditions}: wait until an object satisfies a condition.
 *
 * Everything here is also exported by `@denokube/kube` itself; import from
 * `@denokube/kube/runtime` to make the layer visible in your code.
 *
 * @example Reconcile ConfigMaps
 * ```ts ignore
 * import { Api, Client } from "@denokube/kube";
 * import { Action, Controller } from "@denokube/kube/runtime";
 *
 * await using client = await Client.infer();
 * const controller = new Controller(client, Api.v1ConfigMap().within("default"), async (cm) => {
 *   console.log("reconciling", cm.metadata?.name);
 *   return Action.await();
 * });
 * await controller.run();
 * ```
 *
 * @module
 */
// Every public name of the operator runtime, by name (see mod.ts for why).
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
  Priority,
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
export {
  type LeaderElectionRecord,
  LeaderElector,
  type LeaderElectorOptions,
  type Leadership,
  LeadershipLostError,
} from "./leader_election.ts";
export {
  Counter,
  DEFAULT_BUCKETS,
  Gauge,
  Histogram,
  type HistogramOptions,
  type HistogramSeries,
  type Labels,
  Metric,
  type MetricOptions,
  Registry,
} from "./metrics.ts";
export {
  endpointsHandler,
  type EndpointsHandlerOptions,
  type EndpointsOptions,
  type EndpointsServer,
  type HealthCheck,
  serveEndpoints,
} from "./endpoints.ts";
export {
  type AddOptions,
  type ControllerStatsView,
  type InstrumentedController,
  Manager,
  type ManagerOptions,
  type ReconcileReport,
  type Runnable,
  shutdownSignal,
} from "./manager.ts";
export {
  type ShardBy,
  ShardFencedError,
  type ShardingOptions,
  shardOf,
  shardSelectorOf,
} from "./sharding.ts";
