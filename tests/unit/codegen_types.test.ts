// The code generator's schema → TypeScript mapping and JSDoc formatting, on small hand-made
// schemas.

import assert from "node:assert/strict";
import {
  arrayOf,
  isDeprecated,
  jsDoc,
  renderDefinition,
  type Schema,
  tsType,
  type TypeContext,
  wrapText,
} from "../../tools/_codegen_types.ts";
import { test } from "../_test.ts";

const ctx: TypeContext = { ref: (definition) => `Ref<${definition.split(".").pop()}>` };
const type = (schema: Schema) => tsType(schema, ctx);

test("codegen types: scalars, arrays, maps", () => {
  assert.equal(type({ type: "string" }), "string");
  assert.equal(type({ type: "string", format: "byte" }), "string");
  assert.equal(type({ type: "string", format: "date-time" }), "string");
  assert.equal(type({ type: "integer", format: "int64" }), "number");
  assert.equal(type({ type: "number", format: "double" }), "number");
  assert.equal(type({ type: "boolean" }), "boolean");
  assert.equal(type({ type: "array", items: { type: "string" } }), "string[]");
  assert.equal(
    type({ type: "array", items: { type: "array", items: { type: "integer" } } }),
    "number[][]",
  );
  assert.equal(
    type({ type: "object", additionalProperties: { type: "string" } }),
    "Record<string, string>",
  );
  assert.equal(
    type({ type: "object", additionalProperties: { type: "array", items: { type: "string" } } }),
    "Record<string, string[]>",
  );
  assert.equal(type({ type: "object" }), "Record<string, unknown>");
  assert.equal(type({ type: "object", additionalProperties: true }), "Record<string, unknown>");
  assert.equal(type({ description: "anything" }), "unknown");
  assert.equal(type({ type: "string", nullable: true }), "string | null");
});

test("codegen types: references, enums, unions", () => {
  const ref = "#/components/schemas/io.k8s.api.core.v1.PodSpec";
  assert.equal(type({ $ref: ref }), "Ref<PodSpec>");
  assert.equal(type({ description: "The spec.", allOf: [{ $ref: ref }] }), "Ref<PodSpec>");
  assert.equal(type({ type: "array", items: { allOf: [{ $ref: ref }] } }), "Ref<PodSpec>[]");
  assert.equal(
    type({ type: "object", additionalProperties: { $ref: ref } }),
    "Record<string, Ref<PodSpec>>",
  );
  assert.equal(
    type({ type: "string", enum: ["IfNotPresent", "Always", "Never"] }),
    '"IfNotPresent" | "Always" | "Never"',
  );
  assert.equal(
    type({ type: "array", items: { type: "string", enum: ["a", "b"] } }),
    '("a" | "b")[]',
  );
  assert.equal(type({ oneOf: [{ type: "integer" }, { type: "string" }] }), "number | string");
  assert.equal(type({ "x-kubernetes-int-or-string": true }), "number | string");
  assert.equal(
    type({ type: "object", "x-kubernetes-preserve-unknown-fields": true }),
    "Record<string, unknown>",
  );
  assert.equal(arrayOf("A | B"), "(A | B)[]");
  assert.equal(arrayOf('Record<string, "a" | "b">'), 'Record<string, "a" | "b">[]');
  assert.equal(arrayOf('"a|b"'), '"a|b"[]');
});

test("codegen types: inline objects get members with docs and optionality", () => {
  const text = type({
    type: "object",
    required: ["name"],
    properties: {
      name: { type: "string", description: "The name." },
      "x-extra": { type: "integer" },
    },
  });
  assert.equal(
    text,
    "{\n  /** The name. */\n  name: string;\n" +
      "  /** The `x-extra` field (the Kubernetes API schema does not describe it). */\n" +
      '  "x-extra"?: number;\n}',
  );
});

test("codegen types: a kind becomes an interface with literal apiVersion and kind", () => {
  const schema: Schema = {
    description: "Widget is a thing. It does stuff.",
    type: "object",
    required: ["spec", "kind"],
    properties: {
      apiVersion: { type: "string", description: "APIVersion." },
      kind: { type: "string", description: "Kind." },
      metadata: {
        allOf: [{ $ref: "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" }],
      },
      spec: {
        description: "Spec */ with a comment end.",
        $ref: "#/components/schemas/x.v1.WidgetSpec",
      },
      old: { type: "boolean", description: "Deprecated: use spec." },
    },
    "x-kubernetes-group-version-kind": [{ group: "example.com", version: "v1", kind: "Widget" }],
  };
  const text = renderDefinition("x.v1.Widget", schema, ctx);
  assert.equal(
    text,
    [
      "/**",
      " * Widget is a thing. It does stuff.",
      " *",
      " * Served as `apiVersion: example.com/v1`, `kind: Widget`.",
      " */",
      "export interface Widget {",
      "  /** APIVersion. */",
      '  apiVersion?: "example.com/v1";',
      "  /** Kind. */",
      '  kind?: "Widget";',
      "  /**",
      "   * Standard object's metadata. More info:",
      "   * https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
      "   */",
      "  metadata?: Ref<ObjectMeta>;",
      "  /**",
      "   * Deprecated: use spec.",
      "   *",
      "   * @deprecated",
      "   */",
      "  old?: boolean;",
      "  /** Spec *\\/ with a comment end. */",
      "  spec: Ref<WidgetSpec>;",
      "}",
      "",
    ].join("\n"),
  );
});

test("codegen types: a kind served in several groups keeps string apiVersion", () => {
  const text = renderDefinition("m.v1.DeleteOptions", {
    description: "DeleteOptions.",
    type: "object",
    properties: { apiVersion: { type: "string", description: "A." } },
    "x-kubernetes-group-version-kind": [
      { group: "", version: "v1", kind: "DeleteOptions" },
      { group: "apps", version: "v1", kind: "DeleteOptions" },
    ],
  }, ctx);
  assert.match(text, /apiVersion\?: string;/);
  assert.doesNotMatch(text, /Served as/);
});

test("codegen types: special definitions stay lossless", () => {
  const quantity = renderDefinition("io.k8s.apimachinery.pkg.api.resource.Quantity", {
    description: "Quantity is a fixed-point representation of a number.",
  }, ctx);
  assert.match(quantity, /Quantity as sent by the server .* kept as a lossless string; parse with/);
  assert.match(quantity, /export type Quantity = string;\n$/);
  const intstr = renderDefinition("io.k8s.apimachinery.pkg.util.intstr.IntOrString", {
    format: "int-or-string",
    oneOf: [{ type: "integer" }, { type: "string" }],
  }, ctx);
  assert.match(intstr, /export type IntOrString = number \| string;/);
  const time = renderDefinition("io.k8s.apimachinery.pkg.apis.meta.v1.Time", {
    type: "string",
    format: "date-time",
  }, ctx);
  assert.match(time, /RFC 3339/);
  assert.match(time, /export type Time = string;/);
  const orBool = renderDefinition(
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    {},
    ctx,
  );
  assert.match(orBool, /export type JSONSchemaPropsOrBool = Ref<JSONSchemaProps> \| boolean;/);
  const raw = renderDefinition("io.k8s.apimachinery.pkg.runtime.RawExtension", {
    type: "object",
  }, ctx);
  assert.match(raw, /export type RawExtension = Record<string, unknown>;/);
  const empty = renderDefinition("x.v1.Empty", { description: "Nothing.", type: "object" }, ctx);
  assert.equal(empty, "/** Nothing. */\nexport type Empty = Record<string, unknown>;\n");
});

test("codegen types: JSDoc escaping and wrapping", () => {
  assert.equal(jsDoc("One line."), "/** One line. */\n");
  assert.equal(jsDoc("a */ b"), "/** a *\\/ b */\n");
  assert.equal(jsDoc("@internal starts a line", "  "), "  /** \\@internal starts a line */\n");
  assert.equal(jsDoc("A.\n\n\n\nB.  "), "/**\n * A.\n *\n * B.\n */\n");
  assert.equal(jsDoc("Text.", "", ["@returns X."]), "/**\n * Text.\n *\n * @returns X.\n */\n");
  const long = "word ".repeat(40).trim();
  for (const line of jsDoc(long, "  ").split("\n")) assert.ok(line.length <= 100, line);
});

test("codegen types: wrapping keeps code, URLs and list markers intact", () => {
  const url = "https://example.com/" + "x".repeat(120);
  assert.deepEqual(wrapText(`see ${url} now`, 40), ["see", url, "now"]);
  assert.deepEqual(wrapText("aaaa bbbb - cccc", 10), ["aaaa", "bbbb -", "cccc"]);
  assert.deepEqual(wrapText("aaaa bbbb # cccc", 6), ["aaaa", "bbbb #", "cccc"]);
  assert.deepEqual(wrapText(" - item one two three", 12), [" - item one", "   two three"]);
  const code = "\t" + "x ".repeat(40);
  assert.deepEqual(wrapText(code, 20), [code]);
  const fenced = "```\n" + "y ".repeat(30) + "\n```";
  assert.deepEqual(wrapText(fenced, 20), fenced.split("\n"));
  assert.deepEqual(wrapText("1 2 3", 20), ["1 2 3"]);
});

test("codegen types: deprecation markers", () => {
  assert.ok(isDeprecated("Deprecated: use X."));
  assert.ok(isDeprecated("Foo. Deprecated: use X."));
  assert.ok(isDeprecated("DEPRECATED: GitRepo is deprecated."));
  assert.ok(isDeprecated("Deprecated. Not all kubelets set this."));
  assert.ok(!isDeprecated("deprecated indicates this version is deprecated."));
  assert.ok(!isDeprecated(undefined));
});
