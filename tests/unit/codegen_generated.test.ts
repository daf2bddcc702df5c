// The checked-in generated code: builder names follow the naming rules, descriptors are
// consistent, and the types are precise (compile-time checks).

import assert from "node:assert/strict";
import { Api, ApiBuilders, type KubeObject } from "../../api.ts";
import type * as generated from "../../generated/mod.ts";
import type { appsV1, autoscalingV2, coreV1, eventsV1 } from "../../generated/mod.ts";
import { qualifiedBuilderName, shortBuilderName } from "../../tools/_codegen_names.ts";
import { test } from "../_test.ts";

function builders(): Map<string, Api> {
  const table = ApiBuilders as unknown as Record<string, unknown>;
  const out = new Map<string, Api>();
  for (const name of Object.getOwnPropertyNames(ApiBuilders).sort()) {
    if (typeof table[name] === "function" && /^[a-z]+[0-9A-Z]/.test(name)) {
      out.set(name, (table[name] as () => Api)());
    }
  }
  return out;
}

test("codegen generated: builder names follow the naming rules", () => {
  const all = builders();
  assert.ok(all.size > 60);
  const qualified = new Set<string>();
  for (const [name, api] of all) {
    const q = qualifiedBuilderName(api.group, api.version, api.kind);
    assert.ok(
      name === q || name === shortBuilderName(api.version, api.kind),
      `${name} is neither ${q} nor the short form`,
    );
    assert.ok(all.has(q), `${name} has no qualified builder ${q}`);
    assert.match(api.plural, /^[a-z0-9]+$/);
    qualified.add(q);
  }
  for (
    const name of [
      "v1Pod",
      "v1Node",
      "v1Namespace",
      "v1ConfigMap",
      "v1Event",
      "appsV1Deployment",
      "v1Deployment",
      "batchV1CronJob",
      "rbacAuthorizationV1ClusterRole",
      "eventsV1Event",
      "autoscalingV2HorizontalPodAutoscaler",
      "v2HorizontalPodAutoscaler",
      "flowcontrolApiserverV1FlowSchema",
      "apiextensionsV1CustomResourceDefinition",
      "apiregistrationV1APIService",
    ]
  ) {
    assert.ok(all.has(name), `missing builder ${name}`);
  }
  assert.equal(all.get("v1Event")!.group, "");
  assert.equal(all.get("eventsV1Event")!.group, "events.k8s.io");
  assert.equal(all.get("v1Deployment")!.group, "apps");
  assert.deepEqual(Api.v1Pod().descriptor(), {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    namespaced: true,
  });
  assert.equal(Api.v1Node().namespaced, false);
  assert.equal(
    Api.rbacAuthorizationV1ClusterRole().collectionPath(),
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
  );
  assert.equal(
    Api.appsV1Deployment().within("web").collectionPath(),
    "/apis/apps/v1/namespaces/web/deployments",
  );
});

test("codegen generated: types are precise", () => {
  // Compile-time checks: these assignments only type-check with the generated types.
  const pods: Api<generated.Pod> = Api.v1Pod();
  const deployments: Api<appsV1.Deployment> = Api.v1Deployment();
  const hpa: Api<autoscalingV2.HorizontalPodAutoscaler> = Api.v2HorizontalPodAutoscaler();
  const events: Api<eventsV1.Event> = Api.eventsV1Event();
  const coreEvents: Api<coreV1.Event> = Api.v1Event();
  const pod: generated.Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web", labels: { app: "web" } },
    spec: {
      containers: [{
        name: "web",
        image: "nginx",
        imagePullPolicy: "IfNotPresent",
        ports: [{ containerPort: 80 }],
        resources: { limits: { cpu: "500m", memory: "1Gi" } },
      }],
    },
  };
  const object: KubeObject = pod;
  // @ts-expect-error: kind is a literal type
  const wrongKind: generated.Pod = { kind: "Service" };
  // @ts-expect-error: misspelled fields are errors (no index signature)
  const typo: generated.Pod = { metadata: { nmae: "x" } };
  const port: generated.ServicePort = { port: 80, targetPort: "http" };
  const quantity: generated.Quantity = "100m";
  const intOrString: generated.IntOrString[] = [1, "25%"];
  const time: generated.Time = "2024-01-02T03:04:05Z";
  const aliased: generated.EventsV1Event = {
    eventTime: time,
    reportingController: "x",
  } as generated.EventsV1Event;
  assert.ok(pods && deployments && hpa && events && coreEvents && object && wrongKind && typo);
  assert.ok(port && quantity && intOrString && aliased);
});
