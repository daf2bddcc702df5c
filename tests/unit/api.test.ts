// Path building for every scope, and the TypeErrors for invalid use.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { fieldSelector, labelSelector } from "../../selector.ts";
import { test } from "../_test.ts";

test("Api: core namespaced, all namespaces, item and subresource paths", () => {
  const all = Api.v1Pod();
  assert.equal(all.collectionPath(), "/api/v1/pods");
  const pods = all.within("team-a");
  assert.equal(pods.collectionPath(), "/api/v1/namespaces/team-a/pods");
  assert.equal(pods.itemPath("web"), "/api/v1/namespaces/team-a/pods/web");
  assert.equal(pods.subresourcePath("web", "status"), "/api/v1/namespaces/team-a/pods/web/status");
  assert.equal(all.itemPath("web", "b"), "/api/v1/namespaces/b/pods/web");
  // Immutable: within() returned a new descriptor.
  assert.equal(all.namespace, undefined);
  assert.equal(pods.allNamespaces().collectionPath(), "/api/v1/pods");
  assert.equal(pods.apiVersion, "v1");
});

test("Api: group resources and cluster-scoped kinds", () => {
  const deployments = Api.appsV1Deployment().within("prod");
  assert.equal(deployments.collectionPath(), "/apis/apps/v1/namespaces/prod/deployments");
  assert.equal(
    deployments.subresourcePath("web", "scale"),
    "/apis/apps/v1/namespaces/prod/deployments/web/scale",
  );
  assert.equal(deployments.apiVersion, "apps/v1");
  const nodes = Api.v1Node();
  assert.equal(nodes.collectionPath(), "/api/v1/nodes");
  assert.equal(nodes.itemPath("node-1"), "/api/v1/nodes/node-1");
  assert.equal(nodes.keyOf({ metadata: { name: "node-1" } }), "node-1");
  assert.equal(deployments.keyOf({ metadata: { name: "web", namespace: "prod" } }), "prod/web");
});

test("Api: invalid use fails before any request with a TypeError", () => {
  assert.throws(() => Api.v1Node().within("default"), /Node is cluster-scoped/);
  assert.throws(() => Api.v1Pod().within("Bad_NS"), /Invalid namespace "Bad_NS"/);
  assert.throws(() => Api.v1Pod().within("a".repeat(64)), TypeError);
  assert.throws(() => Api.v1Pod().itemPath("web"), /namespaced: call \.within/);
  assert.throws(() => Api.v1Pod().within("a").itemPath("../etc"), /Invalid Pod name/);
  assert.throws(() => Api.v1Pod().within("a").itemPath(""), TypeError);
  assert.throws(() => Api.v1Node().itemPath("n", "ns"), /cluster-scoped: do not pass a namespace/);
  assert.throws(
    () => Api.v1Pod().within("a").subresourcePath("p", "st/atus"),
    /Invalid subresource/,
  );
  // Names with ':' are valid for some kinds (RBAC), so they are allowed in paths.
  assert.equal(
    Api.dynamic({
      group: "rbac.authorization.k8s.io",
      version: "v1",
      kind: "ClusterRole",
      plural: "clusterroles",
      namespaced: false,
    })
      .itemPath("system:controller:x"),
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:x",
  );
  // "#" and "?" are valid in such names and must not end the path.
  const roles = Api.dynamic({
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    namespaced: false,
  });
  assert.equal(
    roles.itemPath("a#b?c d"),
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/a%23b%3Fc%20d",
  );
  assert.equal(
    roles.subresourcePath("a#b", "status"),
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/a%23b/status",
  );
});

test("Api.customResource: seed-style builder", () => {
  const foos = Api.customResource<{ name: string }, { ok: boolean }>("foos").group("clux.dev")
    .version("v1").within("dev");
  assert.equal(foos.collectionPath(), "/apis/clux.dev/v1/namespaces/dev/foos");
  assert.equal(foos.kind, "Foo");
  assert.equal(foos.apiVersion, "clux.dev/v1");
  const cluster = Api.customResource("bars").group("x.io").version("v2", {
    kind: "Bar",
    namespaced: false,
  });
  assert.equal(cluster.collectionPath(), "/apis/x.io/v2/bars");
  assert.throws(() => Api.customResource("Foos"), /Invalid plural/);
  assert.throws(() => Api.customResource("foos").version("v1"), /needs \.group/);
});

test("selectors: shorthand, LabelSelector objects, validation and escaping", () => {
  assert.equal(
    labelSelector({
      tier: ["web", "edge"],
      app: "shop",
      canary: true,
      legacy: false,
      env: { not: "dev" },
      zone: { notIn: ["b", "a"] },
    }),
    "app=shop,canary,env!=dev,!legacy,tier in (edge,web),zone notin (a,b)",
  );
  assert.equal(
    labelSelector({
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "example.com/role", operator: "In", values: ["db"] }, {
        key: "x",
        operator: "DoesNotExist",
      }],
    }),
    "app=web,example.com/role in (db),!x",
  );
  assert.throws(() => labelSelector({ "bad key!": "x" }), /Invalid label key "bad key!"/);
  assert.throws(
    () => labelSelector({ app: "has space" }),
    /Invalid value "has space" for label "app"/,
  );
  assert.throws(() => labelSelector({ app: [] }), /needs at least one value/);
  assert.equal(
    fieldSelector({ "status.phase": { not: "Running" }, "metadata.name": "a,b=c" }),
    "metadata.name=a\\,b\\=c,status.phase!=Running",
  );
  assert.throws(() => fieldSelector({ "spec nodeName": "x" }), /Invalid field/);
  // The server knows only the escapes \\, \, and \=: "!" stays as it is.
  assert.equal(fieldSelector({ "metadata.name": "a!b\\c" }), "metadata.name=a!b\\\\c");
});
