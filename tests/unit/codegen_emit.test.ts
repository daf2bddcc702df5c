// The code generator end to end on small hand-made OpenAPI documents: merging, resources,
// builders, cross-module imports and the root re-exports.

import assert from "node:assert/strict";
import {
  collectResources,
  generate,
  mergeSchemas,
  type OpenApiDocument,
  planExports,
} from "../../tools/_codegen_emit.ts";
import { test } from "../_test.ts";

const META = "io.k8s.apimachinery.pkg.apis.meta.v1";
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const gvk = (group: string, version: string, kind: string) => ({ group, version, kind });

function kind(pkg: string, name: string, group: string, version: string) {
  return {
    [`${pkg}.${name}`]: {
      description: `${name} is a test kind. It has a second sentence.`,
      type: "object",
      properties: {
        apiVersion: { type: "string", description: "APIVersion." },
        kind: { type: "string", description: "Kind." },
        metadata: { allOf: [ref(`${META}.ObjectMeta`)], default: {} },
        spec: { type: "object", additionalProperties: { type: "string" }, description: "Spec." },
      },
      "x-kubernetes-group-version-kind": [gvk(group, version, name)],
    },
    [`${pkg}.${name}List`]: {
      description: `${name}List is a list.`,
      type: "object",
      required: ["items"],
      properties: {
        items: { type: "array", items: { allOf: [ref(`${pkg}.${name}`)] }, description: "Items." },
        metadata: { allOf: [ref(`${META}.ListMeta`)] },
      },
      "x-kubernetes-group-version-kind": [gvk(group, version, `${name}List`)],
    },
  };
}

function listPath(group: string, version: string, kindName: string, listRef: string) {
  return {
    get: {
      "x-kubernetes-action": "list",
      "x-kubernetes-group-version-kind": gvk(group, version, kindName),
      responses: { "200": { content: { "application/json": { schema: ref(listRef) } } } },
    },
  };
}

const meta = {
  [`${META}.ObjectMeta`]: {
    description: "ObjectMeta is metadata.",
    type: "object",
    properties: { name: { type: "string", description: "Name." } },
  },
  [`${META}.ListMeta`]: {
    description: "ListMeta is list metadata.",
    type: "object",
    properties: { continue: { type: "string", description: "Continue." } },
  },
  [`${META}.Status`]: {
    description: "Status is a result.",
    type: "object",
    properties: { message: { type: "string", description: "Message." } },
    "x-kubernetes-group-version-kind": [gvk("", "v1", "Status")],
  },
};

const core: OpenApiDocument = {
  paths: {
    "/api/v1/pods": listPath("", "v1", "Pod", "io.k8s.api.core.v1.PodList"),
    "/api/v1/namespaces/{namespace}/pods": listPath("", "v1", "Pod", "io.k8s.api.core.v1.PodList"),
    "/api/v1/watch/pods": listPath("", "v1", "Pod", "io.k8s.api.core.v1.PodList"),
    "/api/v1/nodes": listPath("", "v1", "Node", "io.k8s.api.core.v1.NodeList"),
    "/api/v1/namespaces/{namespace}/events": listPath(
      "",
      "v1",
      "Event",
      "io.k8s.api.core.v1.EventList",
    ),
    "/api/v1/namespaces/{namespace}/pods/{name}/status": {
      get: {
        "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": gvk("", "v1", "Pod"),
      },
    },
  },
  components: {
    schemas: {
      ...meta,
      ...kind("io.k8s.api.core.v1", "Pod", "", "v1"),
      ...kind("io.k8s.api.core.v1", "Node", "", "v1"),
      ...kind("io.k8s.api.core.v1", "Event", "", "v1"),
    },
  },
};

const events: OpenApiDocument = {
  paths: {
    "/apis/events.k8s.io/v1/namespaces/{namespace}/events": listPath(
      "events.k8s.io",
      "v1",
      "Event",
      "io.k8s.api.events.v1.EventList",
    ),
  },
  components: {
    schemas: {
      ...meta,
      [`${META}.Status`]: {
        ...meta[`${META}.Status`],
        "x-kubernetes-group-version-kind": [gvk("events.k8s.io", "v1", "Status")],
      },
      ...kind("io.k8s.api.events.v1", "Event", "events.k8s.io", "v1"),
    },
  },
};

const apps: OpenApiDocument = {
  paths: {
    "/apis/apps/v1/deployments": listPath(
      "apps",
      "v1",
      "Deployment",
      "io.k8s.api.apps.v1.DeploymentList",
    ),
    "/apis/apps/v1/namespaces/{namespace}/deployments": listPath(
      "apps",
      "v1",
      "Deployment",
      "io.k8s.api.apps.v1.DeploymentList",
    ),
  },
  components: { schemas: { ...meta, ...kind("io.k8s.api.apps.v1", "Deployment", "apps", "v1") } },
};

test("codegen emit: merging unites the kinds of shared definitions", () => {
  const schemas = mergeSchemas([core, events, apps]);
  assert.deepEqual(schemas.get(`${META}.Status`)?.["x-kubernetes-group-version-kind"], [
    gvk("", "v1", "Status"),
    gvk("events.k8s.io", "v1", "Status"),
  ]);
  assert.deepEqual([...schemas.keys()], [...schemas.keys()].sort());
  const conflicting: OpenApiDocument = {
    components: { schemas: { [`${META}.ListMeta`]: { type: "string" } } },
  };
  assert.throws(() => mergeSchemas([core, conflicting]), /ListMeta differs/);
});

test("codegen emit: resources from list paths", () => {
  const docs = [core, events, apps];
  const resources = collectResources(docs, mergeSchemas(docs));
  assert.deepEqual(
    resources.map((r) => [r.group, r.version, r.kind, r.plural, r.namespaced, r.definition]),
    [
      ["", "v1", "Event", "events", true, "io.k8s.api.core.v1.Event"],
      ["", "v1", "Node", "nodes", false, "io.k8s.api.core.v1.Node"],
      ["", "v1", "Pod", "pods", true, "io.k8s.api.core.v1.Pod"],
      ["apps", "v1", "Deployment", "deployments", true, "io.k8s.api.apps.v1.Deployment"],
      ["events.k8s.io", "v1", "Event", "events", true, "io.k8s.api.events.v1.Event"],
    ],
  );
});

test("codegen emit: root exports, aliases for clashing and reserved names", () => {
  const schemas = mergeSchemas([core, events, apps]);
  const plan = planExports(schemas.keys(), new Set(["Status"]));
  assert.equal(plan.byName.get("Event"), "io.k8s.api.core.v1.Event");
  assert.equal(plan.byName.get("Deployment"), "io.k8s.api.apps.v1.Deployment");
  assert.equal(plan.byName.has("Status"), false);
  assert.deepEqual(Object.fromEntries(plan.aliases), {
    EventsV1Event: "io.k8s.api.events.v1.Event",
    EventsV1EventList: "io.k8s.api.events.v1.EventList",
    MetaV1Status: `${META}.Status`,
  });
});

test("codegen emit: generated files", () => {
  const { files, stats } = generate([core, events, apps], {
    kubernetesVersion: "v9.9.9",
    reservedNames: ["Status"],
  });
  assert.deepEqual([...files.keys()], [
    "apps_v1.ts",
    "builders.ts",
    "core_v1.ts",
    "events_v1.ts",
    "meta_v1.ts",
    "mod.ts",
  ]);
  assert.equal(stats.resources, 5);
  assert.equal(stats.builders, 6); // + v1Deployment
  for (const text of files.values()) {
    assert.match(
      text,
      /^\/\/ Generated by `deno task codegen`.*\n\/\/ Kubernetes v9\.9\.9\. Do not edit/,
    );
  }
  const coreV1 = files.get("core_v1.ts")!;
  assert.match(coreV1, /import type \{ ListMeta, ObjectMeta \} from "\.\/meta_v1\.ts";/);
  assert.match(coreV1, /export interface Pod \{/);
  assert.match(coreV1, /apiVersion\?: "v1";/);
  assert.match(coreV1, /kind\?: "Pod";/);
  assert.match(coreV1, /items: Pod\[\];/);
  assert.match(coreV1, /spec\?: Record<string, string>;/);
  assert.match(files.get("events_v1.ts")!, /apiVersion\?: "events\.k8s\.io\/v1";/);

  const builders = files.get("builders.ts")!;
  assert.match(builders, /import type \{ Api \} from "\.\.\/api\.ts";/);
  assert.match(builders, /import \{ makeApi \} from "\.\.\/_client\/api_factory\.ts";/);
  assert.match(builders, /import type \* as eventsV1 from "\.\/events_v1\.ts";/);
  assert.match(builders, /export class ApiBuilders \{/);
  assert.match(
    builders,
    /static v1Pod\(\): Api<coreV1\.Pod> \{\n {4}return makeApi\(\{ group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true \}\);/,
  );
  assert.match(builders, /static v1Node\(\): Api<coreV1\.Node> \{[^}]*namespaced: false/);
  assert.match(builders, /static v1Event\(\): Api<coreV1\.Event>/);
  assert.match(builders, /static eventsV1Event\(\): Api<eventsV1\.Event>/);
  assert.match(builders, /static appsV1Deployment\(\): Api<appsV1\.Deployment>/);
  assert.match(builders, /static v1Deployment\(\): Api<appsV1\.Deployment>/);
  assert.match(builders, /Pod is a test kind\.\n/);
  assert.match(
    builders,
    /Group `""` \(core\), version `v1`, kind `Pod`, plural `pods`, namespaced/,
  );
  assert.match(builders, /@returns The descriptor/);

  const index = files.get("mod.ts")!;
  assert.match(index, /export type \{ Deployment, DeploymentList \} from "\.\/apps_v1\.ts";/);
  assert.match(
    index,
    /export type \{ Event as EventsV1Event, EventList as EventsV1EventList \} from "\.\/events_v1\.ts";/,
  );
  assert.match(index, /Status as MetaV1Status/);
  assert.match(
    index,
    /\/\*\* The types of the Go package `io\.k8s\.api\.core\.v1`[^\n]*\*\/\nexport type \* as coreV1 from "\.\/core_v1\.ts";/,
  );
  assert.match(index, /export type \* as metaV1 from "\.\/meta_v1\.ts";/);
});

test("codegen emit: deterministic", () => {
  const a = generate([core, events, apps], { kubernetesVersion: "v1", reservedNames: [] });
  const b = generate([apps, events, core], { kubernetesVersion: "v1", reservedNames: [] });
  assert.deepEqual([...a.files.entries()], [...b.files.entries()]);
});

test("codegen emit: an import that clashes with a local name is aliased", () => {
  const doc: OpenApiDocument = {
    components: {
      schemas: {
        ...meta,
        "io.k8s.api.foo.v1.Status": {
          description: "Foo's own status.",
          type: "object",
          properties: { last: { allOf: [ref(`${META}.Status`)], description: "Last result." } },
        },
      },
    },
  };
  const { files } = generate([doc], { kubernetesVersion: "v1" });
  const foo = files.get("foo_v1.ts")!;
  assert.match(foo, /import type \{ Status as MetaV1Status \} from "\.\/meta_v1\.ts";/);
  assert.match(foo, /last\?: MetaV1Status;/);
  assert.match(foo, /export interface Status \{/);
});
