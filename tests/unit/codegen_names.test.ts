// The code generator's naming rules: packages → files and namespaces, kinds → builder names.

import assert from "node:assert/strict";
import {
  apiVersionOf,
  camel,
  firstSentence,
  groupCamel,
  moduleNameOf,
  namespaceOf,
  propertyKey,
  qualifiedBuilderName,
  refTarget,
  shortBuilderNames,
  splitDefinitionName,
} from "../../tools/_codegen_names.ts";
import { test } from "../_test.ts";

test("codegen names: definition names split at the last dot", () => {
  assert.deepEqual(splitDefinitionName("io.k8s.api.core.v1.Pod"), {
    pkg: "io.k8s.api.core.v1",
    name: "Pod",
  });
  assert.deepEqual(
    splitDefinitionName("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"),
    { pkg: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1", name: "JSON" },
  );
  assert.throws(() => splitDefinitionName("Pod"), /Unexpected OpenAPI definition name/);
  assert.equal(refTarget("#/components/schemas/io.k8s.api.core.v1.Pod"), "io.k8s.api.core.v1.Pod");
  assert.throws(() => refTarget("#/definitions/Pod"), /Unsupported \$ref/);
});

test("codegen names: one module per Go package", () => {
  const cases: [string, string, string][] = [
    ["io.k8s.api.core.v1", "core_v1", "coreV1"],
    ["io.k8s.api.apps.v1", "apps_v1", "appsV1"],
    ["io.k8s.api.autoscaling.v2", "autoscaling_v2", "autoscalingV2"],
    [
      "io.k8s.api.admissionregistration.v1beta1",
      "admissionregistration_v1beta1",
      "admissionregistrationV1beta1",
    ],
    ["io.k8s.apimachinery.pkg.apis.meta.v1", "meta_v1", "metaV1"],
    [
      "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
      "apiextensions_v1",
      "apiextensionsV1",
    ],
    [
      "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1",
      "apiregistration_v1",
      "apiregistrationV1",
    ],
    ["io.k8s.apimachinery.pkg.api.resource", "apimachinery_resource", "apimachineryResource"],
    ["io.k8s.apimachinery.pkg.util.intstr", "apimachinery_intstr", "apimachineryIntstr"],
    ["io.k8s.apimachinery.pkg.runtime", "apimachinery_runtime", "apimachineryRuntime"],
    ["io.k8s.apimachinery.pkg.version", "apimachinery_version", "apimachineryVersion"],
  ];
  for (const [pkg, module, namespace] of cases) {
    assert.equal(moduleNameOf(pkg), module, pkg);
    assert.equal(namespaceOf(module), namespace, module);
  }
});

test("codegen names: camel case", () => {
  assert.equal(camel("core_v1"), "coreV1");
  assert.equal(camel("flowcontrol.apiserver"), "flowcontrolApiserver");
  assert.equal(camel("cert-manager.io"), "certManagerIo");
  assert.equal(camel("Apps"), "apps");
});

test("codegen names: group-qualified builder names", () => {
  assert.equal(groupCamel(""), "");
  assert.equal(groupCamel("apps"), "apps");
  assert.equal(groupCamel("rbac.authorization.k8s.io"), "rbacAuthorization");
  assert.equal(groupCamel("flowcontrol.apiserver.k8s.io"), "flowcontrolApiserver");
  assert.equal(qualifiedBuilderName("", "v1", "Pod"), "v1Pod");
  assert.equal(qualifiedBuilderName("apps", "v1", "Deployment"), "appsV1Deployment");
  assert.equal(
    qualifiedBuilderName("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    "rbacAuthorizationV1ClusterRole",
  );
  assert.equal(qualifiedBuilderName("events.k8s.io", "v1", "Event"), "eventsV1Event");
  assert.equal(qualifiedBuilderName("batch", "v1", "CronJob"), "batchV1CronJob");
  assert.equal(
    qualifiedBuilderName("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema"),
    "flowcontrolApiserverV1FlowSchema",
  );
  assert.equal(
    qualifiedBuilderName("autoscaling", "v2", "HorizontalPodAutoscaler"),
    "autoscalingV2HorizontalPodAutoscaler",
  );
  assert.equal(
    qualifiedBuilderName("resource.k8s.io", "v1beta2", "DeviceClass"),
    "resourceV1beta2DeviceClass",
  );
});

test("codegen names: short names only when unambiguous, core wins", () => {
  const shorts = shortBuilderNames([
    { group: "", version: "v1", kind: "Event" },
    { group: "events.k8s.io", version: "v1", kind: "Event" },
    { group: "", version: "v1", kind: "Pod" },
    { group: "apps", version: "v1", kind: "Deployment" },
    { group: "autoscaling", version: "v1", kind: "HorizontalPodAutoscaler" },
    { group: "autoscaling", version: "v2", kind: "HorizontalPodAutoscaler" },
    { group: "a.example.com", version: "v1", kind: "Widget" },
    { group: "b.example.com", version: "v1", kind: "Widget" },
  ]);
  assert.deepEqual(Object.fromEntries(shorts), {
    "apps/v1/Deployment": "v1Deployment",
    "autoscaling/v1/HorizontalPodAutoscaler": "v1HorizontalPodAutoscaler",
    "autoscaling/v2/HorizontalPodAutoscaler": "v2HorizontalPodAutoscaler",
  });
});

test("codegen names: apiVersion, first sentence, property keys", () => {
  assert.equal(apiVersionOf("", "v1"), "v1");
  assert.equal(apiVersionOf("apps", "v1"), "apps/v1");
  assert.equal(
    firstSentence(
      "Pod is a collection of containers that can run on a host. This resource is created by clients.",
    ),
    "Pod is a collection of containers that can run on a host.",
  );
  assert.equal(
    firstSentence("A CIDR (e.g. 10.0.0.0/8 or i.e. a range) of addresses. More."),
    "A CIDR (e.g. 10.0.0.0/8 or i.e. a range) of addresses.",
  );
  assert.equal(
    firstSentence("Version 1.2 is\nsplit over lines"),
    "Version 1.2 is split over lines",
  );
  assert.equal(firstSentence("First paragraph\n\nSecond. paragraph"), "First paragraph");
  assert.equal(firstSentence(undefined), "");
  assert.equal(propertyKey("apiVersion"), "apiVersion");
  assert.equal(propertyKey("$ref"), "$ref");
  assert.equal(propertyKey("x-kubernetes-list-type"), '"x-kubernetes-list-type"');
});
