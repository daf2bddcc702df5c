// deno run --allow-env --allow-read --allow-net --allow-sys examples/foo_operator.ts [namespace] [--log=info] [--exit-after=<s>]
//
// The operator of the seeds, on the Foo custom resource (clux.dev/v1, examples/foo.yaml): for each
// Foo it server-side-applies a Deployment (spec.replicas pods) owned by the Foo, writes the Foo's
// status (replicas, readyReplicas, a Ready condition, observedGeneration), records events, and
// keeps a finalizer so that an external cleanup step runs before the Foo goes away; the garbage
// collector then deletes the Deployment through its owner reference.
//
//   kubectl apply -f examples/foo.yaml
//   deno run ... examples/foo_operator.ts demo
//   kubectl -n demo apply -f examples/crd-baz.yaml; kubectl -n demo get foos,deploy,pods
//   kubectl -n demo events --for foo/baz
//
// What a broken Foo looks like:
// - spec.name that is not a valid label value (e.g. "Bad Name!"): the Deployment's apply is
//   refused (422): a Warning event ApplyFailed, condition Ready=False, and retries with backoff
//   in the logs (attempt 1, 2, 3 … with growing delays) until the Foo is fixed.
// - spec.replicas above 10: a Warning event InvalidSpec and Ready=False; not retried (a terminal
//   error) until the Foo changes.
//
// Outside this repository, import from "@denokube/kube".

import {
  Api,
  ApiError,
  type Client,
  type Clock,
  Controller,
  type CustomObject,
  finalizer,
  ownerReference,
  type ReconcileContext,
  TerminalError,
} from "../mod.ts";

/** The Foo spec of examples/foo.yaml. */
export interface FooSpec {
  /** Names the Deployment's instance label; must be a valid label value. */
  name: string;
  /** Free text. */
  info: string;
  /** Pods of the Deployment (0–10). Default 1. */
  replicas?: number;
}

/** A status condition. */
export interface FooCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** The status the operator writes. */
export interface FooStatus {
  replicas?: number;
  readyReplicas?: number;
  observedGeneration?: number;
  conditions?: FooCondition[];
}

/** A Foo. */
export type Foo = CustomObject<FooSpec, FooStatus>;

/** The Foo resource, all namespaces. */
export const FOOS: Api<Foo> = Api.customResource<FooSpec, FooStatus>("foos").group("clux.dev")
  .version("v1");

/** The finalizer of the external cleanup step. */
export const FINALIZER = "clux.dev/cleanup";
/** The field manager of the operator's writes. */
export const FIELD_MANAGER = "foo-operator";
/** The most replicas a Foo may ask for. */
export const MAX_REPLICAS = 10;

interface DeploymentView {
  metadata?: { name?: string; namespace?: string; generation?: number };
  spec?: { replicas?: number };
  status?: { replicas?: number; readyReplicas?: number; observedGeneration?: number };
}

/** Options of {@link fooOperator}. */
export interface FooOperatorOptions {
  /** Only Foos of this namespace (default: all namespaces). */
  namespace?: string;
  /** The external cleanup step, run once per deleted Foo before its finalizer is removed. */
  cleanup?: (foo: Foo) => Promise<void> | void;
  /** For tests. */
  clock?: Clock;
  /** Per-key backoff (default: the controller's). */
  backoff?: { initialMs?: number; maxMs?: number };
}

/**
 * The Foo operator as a Controller: call `run(signal)` on it.
 *
 * @param client The client.
 * @param options Namespace, cleanup step, clock.
 * @returns The controller (not running yet).
 */
export function fooOperator(client: Client, options: FooOperatorOptions = {}): Controller<Foo> {
  const foos = options.namespace ? FOOS.within(options.namespace) : FOOS;

  async function apply(foo: Foo, ctx: ReconcileContext) {
    const { name, namespace, generation } = foo.metadata!;
    const replicas = foo.spec.replicas ?? 1;
    if (replicas > MAX_REPLICAS) {
      const message =
        `spec.replicas is ${replicas}, more than the ${MAX_REPLICAS} this operator allows: set spec.replicas to 0–${MAX_REPLICAS}`;
      await writeStatus(ctx, foo, { ready: false, reason: "InvalidSpec", message });
      await ctx.recorder.publish({
        type: "Warning",
        reason: "InvalidSpec",
        action: "Validate",
        note: message,
      });
      throw new TerminalError(message);
    }
    let deployment: DeploymentView;
    try {
      deployment = await ctx.client.apply(Api.appsV1Deployment(), {
        metadata: {
          name,
          namespace,
          labels: { "app.kubernetes.io/managed-by": FIELD_MANAGER },
          ownerReferences: [ownerReference(foo)],
        },
        spec: {
          replicas,
          selector: { matchLabels: { "clux.dev/foo": name! } },
          template: {
            metadata: {
              labels: { "clux.dev/foo": name!, "app.kubernetes.io/instance": foo.spec.name },
            },
            spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
          },
        },
      }, { fieldManager: FIELD_MANAGER, force: true, signal: ctx.signal }) as DeploymentView;
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 422) throw e;
      const message = `the Deployment was refused: ${e.details?.causes?.[0]?.message ?? e.message}`;
      await writeStatus(ctx, foo, { ready: false, reason: "ApplyFailed", message });
      await ctx.recorder.publish({
        type: "Warning",
        reason: "ApplyFailed",
        action: "Apply",
        note: message,
      });
      throw e; // retried with backoff until the Foo is fixed
    }
    // The apply answers the whole Deployment, its current status included; owns() brings the
    // Foo back here whenever that status changes.
    const status = deployment.status ?? {};
    const ready = (status.readyReplicas ?? 0) >= replicas;
    const changed = foo.status?.observedGeneration !== generation;
    await writeStatus(ctx, foo, {
      ready,
      reason: ready ? "Available" : "Progressing",
      message: `${status.readyReplicas ?? 0}/${replicas} pods ready`,
      replicas: status.replicas ?? 0,
      readyReplicas: status.readyReplicas ?? 0,
    });
    if (changed) {
      await ctx.recorder.publish({
        reason: "Applied",
        action: "Apply",
        note: `Deployment ${name} applied with ${replicas} replicas`,
      });
    }
  }

  async function cleanup(foo: Foo, ctx: ReconcileContext) {
    await options.cleanup?.(foo);
    await ctx.recorder.publish({
      reason: "CleanedUp",
      action: "Cleanup",
      note: "external cleanup done; removing the finalizer",
    });
    ctx.logger.info("Cleaned up {key}", { key: ctx.key });
  }

  return new Controller(
    client,
    foos,
    (foo, ctx) =>
      finalizer(ctx, FOOS, FINALIZER, foo, {
        apply: (f) => apply(f, ctx),
        cleanup: (f) => cleanup(f, ctx),
      }),
    { name: "foo-operator", clock: options.clock, backoff: options.backoff },
  ).owns(Api.appsV1Deployment());
}

/** Writes the Foo's status (only when it changed): replicas and one Ready condition. */
async function writeStatus(
  ctx: ReconcileContext,
  foo: Foo,
  next: {
    ready: boolean;
    reason: string;
    message: string;
    replicas?: number;
    readyReplicas?: number;
  },
): Promise<void> {
  const generation = foo.metadata?.generation;
  const old = foo.status?.conditions?.find((c) => c.type === "Ready");
  const status = next.ready ? "True" : "False";
  const condition: FooCondition = {
    type: "Ready",
    status,
    reason: next.reason,
    message: next.message,
    observedGeneration: generation,
    lastTransitionTime: old?.status === status && old.lastTransitionTime
      ? old.lastTransitionTime
      : new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  const wanted: FooStatus = {
    replicas: next.replicas ?? foo.status?.replicas,
    readyReplicas: next.readyReplicas ?? foo.status?.readyReplicas,
    observedGeneration: generation,
    conditions: [condition],
  };
  if (JSON.stringify(wanted) === JSON.stringify(pick(foo.status))) return;
  await ctx.client.patchStatus(FOOS, foo.metadata!.name!, { status: wanted }, {
    namespace: foo.metadata!.namespace,
    signal: ctx.signal,
  });
}

function pick(status: FooStatus | undefined): FooStatus {
  return {
    replicas: status?.replicas,
    readyReplicas: status?.readyReplicas,
    observedGeneration: status?.observedGeneration,
    conditions: status?.conditions?.map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      observedGeneration: c.observedGeneration,
      lastTransitionTime: c.lastTransitionTime,
    })),
  };
}

if (import.meta.main) {
  const { startExample } = await import("./_example.ts");
  await using example = await startExample({ namespaced: true });
  const controller = fooOperator(example.client, {
    namespace: example.namespace,
    cleanup: (foo) => console.log(`external cleanup for Foo ${foo.metadata?.name}`),
  });
  console.log(`Reconciling Foos in namespace ${example.namespace} (Ctrl-C to stop)`);
  await controller.run(example.signal);
  console.log("Stopped:", JSON.stringify(controller.stats().reconciles));
}
