// The Foo operator's conversion (examples/foo_conversion.ts): the v1 hub's CRD version is the one
// examples/foo.yaml installs (so the webhook's CRD does not change what the operator writes),
// v1alpha1's spec.size is v1's spec.replicas, and what v1alpha1 cannot hold (the conditions,
// spec.replicas missing stays missing) survives a round trip.

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { KubeObject } from "../../api.ts";
import { HUB_ANNOTATION } from "../../webhook/mod.ts";
import { fooConversion, FooV1, FooV1alpha1 } from "../../examples/foo_conversion.ts";
import { readFile } from "node:fs/promises";
import { ROOT_DIR } from "../fixtures/paths.ts";
import { test } from "../_test.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** Drops `format: int64` (zod has no int64 number) and the descriptions the library adds. */
function comparable(node: Json): Json {
  if (Array.isArray(node)) return node.map(comparable);
  if (!node || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "format" && v === "int64") continue;
    if (k === "description") continue;
    out[k] = comparable(v);
  }
  return out;
}

test("Foo conversion: the v1 hub's CRD version is examples/foo.yaml's", async () => {
  const yaml = parseYaml(
    await readFile(`${ROOT_DIR}examples/foo.yaml`, "utf8"),
  ) as Json;
  const fromYaml = yaml.spec.versions[0];
  const generated = FooV1.crd().spec.versions[0] as Json;
  const props = generated.schema.openAPIV3Schema.properties;
  // The library adds apiVersion, kind and metadata; foo.yaml leaves them implicit.
  delete props.apiVersion;
  delete props.kind;
  delete props.metadata;
  assert.deepEqual(comparable(generated.schema), comparable(fromYaml.schema));
  assert.deepEqual(generated.additionalPrinterColumns, fromYaml.additionalPrinterColumns);
  assert.deepEqual(generated.subresources, fromYaml.subresources);
  assert.deepEqual(FooV1.crd().spec.names, yaml.spec.names);
});

test("Foo conversion: the CRD has both versions, v1 stored, and the webhook path", () => {
  const crd = fooConversion.crd({
    clientConfig: { service: { namespace: "foo-system", name: "foo-webhook" } },
  });
  assert.deepEqual(
    crd.spec.versions.map((v) => [v.name, v.served, v.storage]),
    [["v1alpha1", true, false], ["v1", true, true]],
  );
  assert.deepEqual(crd.spec.conversion, {
    strategy: "Webhook",
    webhook: {
      conversionReviewVersions: ["v1"],
      clientConfig: {
        service: {
          namespace: "foo-system",
          name: "foo-webhook",
          path: "/convert-clux-dev-foo",
          port: 443,
        },
      },
    },
  });
});

test("Foo conversion: spec.size ↔ spec.replicas, lossless both ways", () => {
  const metadata = { name: "old", namespace: "demo" };
  const alpha = {
    apiVersion: FooV1alpha1.apiVersion,
    kind: "Foo",
    metadata,
    spec: { name: "old", info: "i", size: 3 },
  } as KubeObject;
  const v1 = fooConversion.convert(alpha, "clux.dev/v1") as Json;
  assert.deepEqual(v1, {
    apiVersion: "clux.dev/v1",
    kind: "Foo",
    metadata,
    spec: { name: "old", info: "i", replicas: 3 },
  });
  assert.deepEqual(fooConversion.convert(v1, FooV1alpha1.apiVersion), {
    ...alpha,
    metadata: { ...metadata, annotations: { [HUB_ANNOTATION]: JSON.stringify({ spec: v1.spec }) } },
  });

  // Stored as v1 with status v1alpha1 lacks; read and written back as v1alpha1: nothing lost.
  const stored = {
    apiVersion: "clux.dev/v1",
    kind: "Foo",
    metadata,
    spec: { name: "web", info: "i" },
    status: {
      replicas: 2,
      readyReplicas: 1,
      observedGeneration: 4,
      conditions: [{ type: "Ready", status: "False", reason: "Progressing" }],
    },
  } as KubeObject;
  const read = fooConversion.convert(stored, FooV1alpha1.apiVersion) as Json;
  assert.deepEqual(read.spec, { name: "web", info: "i" }, "a missing replicas is no size");
  assert.deepEqual(read.status, { replicas: 2, readyReplicas: 1 });
  assert.deepEqual(fooConversion.convert(read, "clux.dev/v1"), stored);
  // A change made through v1alpha1 is kept.
  read.spec.size = 5;
  const changed = fooConversion.convert(read, "clux.dev/v1") as Json;
  assert.equal(changed.spec.replicas, 5);
  assert.deepEqual(changed.status, (stored as Json).status);
});
