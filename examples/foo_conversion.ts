// The Foo operator's conversion webhook (examples/foo_operator.ts): Foo has an older version,
// v1alpha1, whose spec called the number of pods `size` (v1: `replicas`) and whose status only
// had `replicas` and `readyReplicas` (v1 adds `observedGeneration` and `conditions`). v1 is the
// hub and the storage version; a Foo written or read as v1alpha1 goes through the conversion, and
// what v1alpha1 cannot hold (the conditions, say) is kept in an annotation so that a round trip
// v1 → v1alpha1 → v1 is lossless. Served by the WebhookServer beside the admission webhooks
// (act 3 of `deno task demo`, examples/deploy/foo_operator.ts with WEBHOOK_SERVICE set), which
// then applies the two-version CRD with `conversion.strategy: Webhook` and its CA bundle. Without
// the webhooks the CRD stays examples/foo.yaml: v1 only, no conversion.
//
// Outside this repository, import from "@denokube/kube" and "@denokube/kube/webhook".

import { z } from "zod";
import { type CustomResource, defineCustomResource } from "../custom_resource.ts";
import { type Conversion, defineConversion } from "../webhook/mod.ts";

const foo = {
  group: "clux.dev",
  kind: "Foo",
  plural: "foos",
  namespaced: true,
  shortNames: ["f"],
};

const condition = z.object({
  type: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  message: z.string().optional(),
  observedGeneration: z.int().optional(),
  lastTransitionTime: z.iso.datetime().optional(),
});

const v1Spec = z.object({
  name: z.string(),
  info: z.string(),
  replicas: z.int32().min(0).optional(),
});
const v1Status = z.object({
  isBad: z.boolean().optional(),
  observedReplicas: z.int32().optional(),
  replicas: z.int32().optional(),
  readyReplicas: z.int32().optional(),
  observedGeneration: z.int().optional(),
  conditions: z.array(condition).meta({
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
  }).optional(),
});

/** Foo `clux.dev/v1`, the hub and storage version: the schema of examples/foo.yaml. */
export const FooV1: CustomResource<
  z.output<typeof v1Spec>,
  z.output<typeof v1Status>
> = defineCustomResource({
  ...foo,
  version: "v1",
  spec: v1Spec,
  status: v1Status,
  printerColumns: [
    { name: "Name", type: "string", jsonPath: ".spec.name" },
    { name: "Info", type: "string", jsonPath: ".spec.info" },
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Ready", type: "integer", jsonPath: ".status.readyReplicas" },
  ],
});

const v1alpha1Spec = z.object({
  name: z.string(),
  info: z.string(),
  size: z.int32().min(0).optional(),
});
const v1alpha1Status = z.object({
  replicas: z.int32().optional(),
  readyReplicas: z.int32().optional(),
});

/** Foo `clux.dev/v1alpha1`: `spec.size` for v1's `spec.replicas`, a smaller status. */
export const FooV1alpha1: CustomResource<
  z.output<typeof v1alpha1Spec>,
  z.output<typeof v1alpha1Status>
> = defineCustomResource({
  ...foo,
  version: "v1alpha1",
  spec: v1alpha1Spec,
  status: v1alpha1Status,
  printerColumns: [
    { name: "Name", type: "string", jsonPath: ".spec.name" },
    { name: "Info", type: "string", jsonPath: ".spec.info" },
    { name: "Size", type: "integer", jsonPath: ".spec.size" },
    { name: "Ready", type: "integer", jsonPath: ".status.readyReplicas" },
  ],
});

/** Copies the fields that are not `undefined` (a missing field stays missing after conversion). */
function defined<T extends Record<string, unknown>>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The Foo conversion, v1alpha1 ↔ v1 through the hub v1: `spec.size` ↔ `spec.replicas`, the
 * status fields both versions have, the rest kept in the hub annotation.
 */
export const fooConversion: Conversion<typeof FooV1> = defineConversion({
  hub: FooV1,
  spokes: [{
    version: FooV1alpha1,
    toHub: (o) =>
      defined({
        spec: defined({ name: o.spec.name, info: o.spec.info, replicas: o.spec.size }),
        status: o.status &&
          defined({ replicas: o.status.replicas, readyReplicas: o.status.readyReplicas }),
      }),
    fromHub: (o) =>
      defined({
        spec: defined({ name: o.spec.name, info: o.spec.info, size: o.spec.replicas }),
        status: o.status &&
          defined({ replicas: o.status.replicas, readyReplicas: o.status.readyReplicas }),
      }),
  }],
});
