// The zod → Kubernetes structural schema converter, construct by construct.

import assert from "node:assert/strict";
import { z } from "zod";
import {
  convertField,
  convertSchema,
  CustomResourceSchemaError,
  type JSONSchemaProps,
  translatePattern,
} from "../../_client/structural_schema.ts";
import { test } from "../_test.ts";

const conv = (schema: z.ZodType, path = "spec") => convertSchema(schema, path);
const prop = (schema: z.ZodType) => conv(z.object({ f: schema })).properties!.f;

/** Asserts the conversion is refused with a CustomResourceSchemaError at `path` matching `re`. */
function refused(schema: z.ZodType, path: string, re: RegExp): CustomResourceSchemaError {
  let caught: unknown;
  try {
    conv(schema);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CustomResourceSchemaError, `expected a refusal, got ${caught}`);
  assert.equal(caught.path, path);
  assert.ok(caught.message.startsWith(`${path}: `), caught.message);
  assert.match(caught.message, re);
  return caught;
}

/** Walks a schema and checks the structural rules the API server enforces. */
function assertStructural(node: JSONSchemaProps, path = "spec", nested = false): void {
  const n = node as Record<string, unknown>;
  for (const key of ["$ref", "$schema", "definitions", "patternProperties", "uniqueItems"]) {
    assert.ok(!(key in n), `${path}: ${key} is not allowed`);
  }
  assert.notEqual(n.type, "null", `${path}: type null`);
  if (nested) {
    for (const key of ["type", "description", "default", "nullable", "additionalProperties"]) {
      assert.ok(!(key in n), `${path}: ${key} inside a value validation`);
    }
    for (const [k, v] of Object.entries(node.properties ?? {})) {
      assertStructural(v, `${path}.${k}`, true);
    }
    return;
  }
  assert.ok(
    node.type || node["x-kubernetes-int-or-string"] ||
      node["x-kubernetes-preserve-unknown-fields"],
    `${path}: no type`,
  );
  assert.ok(
    !(node.properties && typeof node.additionalProperties === "object"),
    `${path}: properties with additionalProperties`,
  );
  if (node.type === "array") assert.ok(node.items, `${path}: array without items`);
  for (const [k, v] of Object.entries(node.properties ?? {})) assertStructural(v, `${path}.${k}`);
  if (node.items) assertStructural(node.items, `${path}[]`);
  if (typeof node.additionalProperties === "object") {
    assertStructural(node.additionalProperties, `${path}.*`);
  }
  const intOrString = node["x-kubernetes-int-or-string"];
  for (const key of ["anyOf", "allOf", "oneOf"] as const) {
    if (intOrString && key === "anyOf") continue;
    node[key]?.forEach((v, i) => assertStructural(v, `${path}.${key}[${i}]`, true));
  }
}

test("structural schema: objects: properties, required fields, nested objects and arrays", () => {
  const schema = z.object({
    name: z.string(),
    size: z.number().optional(),
    nested: z.object({ items: z.array(z.object({ size: z.int(), tags: z.array(z.string()) })) }),
  });
  const node = conv(schema);
  assert.deepEqual(node, {
    type: "object",
    properties: {
      name: { type: "string" },
      size: { type: "number" },
      nested: {
        type: "object",
        properties: {
          items: {
            type: "array",
            items: {
              type: "object",
              properties: {
                size: { type: "integer" },
                tags: { type: "array", items: { type: "string" } },
              },
              required: ["size", "tags"],
            },
          },
        },
        required: ["items"],
      },
    },
    required: ["name", "nested"],
  });
  assertStructural(node);
});

test("structural schema: objects: an empty object, loose, strict and catchall objects", () => {
  assert.deepEqual(conv(z.object({})), { type: "object" });
  assert.deepEqual(conv(z.looseObject({ a: z.string() })), {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
    properties: { a: { type: "string" } },
    required: ["a"],
  });
  assert.deepEqual(conv(z.object({ a: z.string() }).passthrough()), {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
    properties: { a: { type: "string" } },
    required: ["a"],
  });
  // Kubernetes cannot reject unknown fields (it prunes them): a strict object is a plain one.
  assert.deepEqual(conv(z.strictObject({ a: z.string() })), {
    type: "object",
    properties: { a: { type: "string" } },
    required: ["a"],
  });
  assert.deepEqual(conv(z.object({}).catchall(z.int())), {
    type: "object",
    additionalProperties: { type: "integer" },
  });
  refused(z.object({ a: z.string() }).catchall(z.int()), "spec", /catchall.*z\.record/s);
});

test("structural schema: optional vs required: optional, default, nullish, catch, nonoptional, unknown", () => {
  const node = conv(z.object({
    req: z.string(),
    opt: z.string().optional(),
    def: z.string().default("x"),
    nullish: z.string().nullish(),
    nullable: z.string().nullable(),
    caught: z.string().catch("c"),
    forced: z.string().optional().nonoptional(),
    outerOptional: z.string().nonoptional().optional(),
    anything: z.unknown(),
    undef: z.union([z.string(), z.undefined()]),
  }));
  assert.deepEqual(node.required, ["req", "nullable", "forced"]);
});

test("structural schema: records: additionalProperties, enum keys, unknown values", () => {
  assert.deepEqual(prop(z.record(z.string(), z.string())), {
    type: "object",
    additionalProperties: { type: "string" },
  });
  assert.deepEqual(prop(z.record(z.string(), z.object({ n: z.int() }))), {
    type: "object",
    additionalProperties: {
      type: "object",
      properties: { n: { type: "integer" } },
      required: ["n"],
    },
  });
  assert.deepEqual(prop(z.record(z.string(), z.unknown())), {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
  });
  assert.deepEqual(prop(z.record(z.string(), z.any())), {
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
  });
  assert.deepEqual(prop(z.record(z.enum(["a", "b"]), z.int())), {
    type: "object",
    properties: { a: { type: "integer" }, b: { type: "integer" } },
    required: ["a", "b"],
  });
  assert.deepEqual(prop(z.partialRecord(z.enum(["a", "b"]), z.int())), {
    type: "object",
    properties: { a: { type: "integer" }, b: { type: "integer" } },
  });
  refused(z.object({ m: z.record(z.number(), z.string()) }), "spec.m", /keyed by number/);
});

test("structural schema: unknown and any keep whatever the server is sent", () => {
  assert.deepEqual(prop(z.unknown()), { "x-kubernetes-preserve-unknown-fields": true });
  assert.deepEqual(prop(z.any()), { "x-kubernetes-preserve-unknown-fields": true });
  assertStructural(conv(z.object({ a: z.unknown(), b: z.array(z.any()) })));
});

test("structural schema: enums and literals", () => {
  assert.deepEqual(prop(z.enum(["Always", "Never"])), {
    type: "string",
    enum: ["Always", "Never"],
  });
  enum Level {
    Low = 1,
    High = 2,
  }
  assert.deepEqual(prop(z.enum(Level)), { type: "integer", enum: [1, 2] });
  assert.deepEqual(prop(z.literal("v1")), { type: "string", enum: ["v1"] });
  assert.deepEqual(prop(z.literal([1, 2.5])), { type: "number", enum: [1, 2.5] });
  assert.deepEqual(prop(z.literal(true)), { type: "boolean", enum: [true] });
  assert.deepEqual(prop(z.literal(["a", null])), {
    type: "string",
    nullable: true,
    allOf: [{ enum: ["a"] }],
  });
  refused(z.object({ l: z.literal(["a", 1]) }), "spec.l", /mixes string and number/);
  refused(z.object({ l: z.literal(null) }), "spec.l", /nullable/);
});

test("structural schema: nullable: nullable: true; a nullable enum checks its values in allOf", () => {
  assert.deepEqual(prop(z.string().nullable()), { type: "string", nullable: true });
  assert.deepEqual(prop(z.object({ a: z.int() }).nullable()), {
    type: "object",
    nullable: true,
    properties: { a: { type: "integer" } },
    required: ["a"],
  });
  assert.deepEqual(prop(z.union([z.string(), z.null()])), { type: "string", nullable: true });
  // The API server runs `enum` on null values too (and null never matches), but skips allOf.
  assert.deepEqual(prop(z.enum(["a", "b"]).nullable()), {
    type: "string",
    nullable: true,
    allOf: [{ enum: ["a", "b"] }],
  });
  assertStructural(conv(z.object({ e: z.enum(["a", "b"]).nullable() })));
});

test("structural schema: defaults: the outermost default, JSON only", () => {
  assert.deepEqual(prop(z.int().default(3)), { type: "integer", default: 3 });
  assert.deepEqual(prop(z.array(z.string()).default(() => ["a"])), {
    type: "array",
    default: ["a"],
    items: { type: "string" },
  });
  assert.deepEqual(prop(z.object({ a: z.int().default(1) }).default({ a: 1 })), {
    type: "object",
    default: { a: 1 },
    properties: { a: { type: "integer", default: 1 } },
  });
  assert.deepEqual(prop(z.string().prefault("p")), { type: "string", default: "p" });
  assert.deepEqual(prop(z.string().default("inner").optional()), {
    type: "string",
    default: "inner",
  });
  const node = conv(z.object({ d: z.string().default("x") }));
  assert.equal(node.required, undefined);
  refused(
    z.object({ when: z.custom<Date>((v) => v instanceof Date).default(new Date(0)) }),
    "spec.when",
    /z\.custom/,
  );
  refused(
    z.object({ m: z.record(z.string(), z.unknown()).default(new Map() as never) }),
    "spec.m",
    /not plain JSON.*Map/,
  );
});

test("structural schema: descriptions from .describe() and .meta(), outermost first", () => {
  assert.deepEqual(prop(z.string().describe("The image.")), {
    description: "The image.",
    type: "string",
  });
  assert.equal(prop(z.string().describe("inner").optional()).description, "inner");
  assert.equal(
    prop(z.string().describe("inner").optional().describe("outer")).description,
    "outer",
  );
  assert.equal(prop(z.int().meta({ description: "via meta" })).description, "via meta");
  const node = conv(z.object({ a: z.string() }).describe("The spec."));
  assert.equal(node.description, "The spec.");
});

test("structural schema: x-kubernetes-* extensions from .meta() are copied", () => {
  const node = prop(
    z.array(z.object({ name: z.string(), port: z.int() })).meta({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      "x-kubernetes-validations": [{ rule: "self.size() < 10", message: "too many" }],
      title: "not copied",
    }),
  );
  assert.equal(node["x-kubernetes-list-type"], "map");
  assert.deepEqual(node["x-kubernetes-list-map-keys"], ["name"]);
  assert.deepEqual(node["x-kubernetes-validations"], [{
    rule: "self.size() < 10",
    message: "too many",
  }]);
  assert.equal((node as Record<string, unknown>).title, undefined);
});

test("structural schema: string constraints and formats", () => {
  assert.deepEqual(prop(z.string().min(1).max(63).regex(/^[a-z]+$/)), {
    type: "string",
    minLength: 1,
    maxLength: 63,
    pattern: "^[a-z]+$",
  });
  assert.deepEqual(prop(z.string().length(4)), { type: "string", minLength: 4, maxLength: 4 });
  assert.deepEqual(prop(z.string().min(2).min(5).max(9).max(7)), {
    type: "string",
    minLength: 5,
    maxLength: 7,
  });
  // Several patterns must all match: allOf.
  assert.deepEqual(prop(z.string().startsWith("a").endsWith("z")), {
    type: "string",
    allOf: [{ pattern: "^a.*" }, { pattern: ".*z$" }],
  });
  const formats: [z.ZodType, string][] = [
    [z.email(), "email"],
    [z.url(), "uri"],
    [z.uuid(), "uuid"],
    [z.uuidv4(), "uuid4"],
    [z.guid(), "uuid"],
    [z.ipv4(), "ipv4"],
    [z.ipv6(), "ipv6"],
    [z.cidrv4(), "cidr"],
    [z.cidrv6(), "cidr"],
    [z.mac(), "mac"],
    [z.iso.datetime(), "date-time"],
    [z.iso.datetime({ offset: true }), "date-time"],
    [z.iso.date(), "date"],
    [z.base64(), "byte"],
    [z.hostname(), "hostname"],
    [z.string().email(), "email"],
  ];
  for (const [schema, format] of formats) {
    assert.equal(prop(schema).format, format, format);
    assert.equal(prop(schema).pattern, undefined, `${format}: no pattern alongside the format`);
  }
  // Formats Kubernetes does not know: their pattern when RE2 can run it, else nothing.
  assert.deepEqual(prop(z.cuid()), { type: "string", pattern: "^[cC][0-9a-z]{6,}$" });
  assert.deepEqual(prop(z.iso.datetime({ local: true })).format, undefined);
  assert.deepEqual(prop(z.iso.duration()), { type: "string" }); // lookaheads: zod only
  assert.deepEqual(prop(z.string().regex(/^ab$/i)), { type: "string", pattern: "(?i)^ab$" });
});

test("structural schema: patterns are translated to RE2, or refused when RE2 cannot run them", () => {
  assert.equal(translatePattern(/\u00e9\u{1F600}/u), "\\x{00e9}\\x{1F600}");
  assert.equal(translatePattern(/(?<year>\d{4})/), "(?P<year>\\d{4})");
  assert.equal(translatePattern(/a\0b/), "a\\x00b");
  assert.equal(translatePattern(/\p{L}+/u), "\\p{L}+");
  assert.equal(translatePattern(/^a$/ms), "(?ms)^a$");
  assert.deepEqual(translatePattern(/a(?!b)/), { reason: "uses a lookahead or lookbehind" });
  assert.deepEqual(translatePattern(/(?<=a)b/), { reason: "uses a lookahead or lookbehind" });
  assert.deepEqual(translatePattern(/(a)\1/), { reason: "uses a backreference" });
  assert.deepEqual(translatePattern(/\p{Extended_Pictographic}/u), {
    reason: "uses a Unicode property escape RE2 may not know",
  });
  const e = refused(
    z.object({ items: z.array(z.object({ name: z.string().regex(/^(?!-)[a-z-]+$/) })) }),
    "spec.items[].name",
    /lookahead.*RE2.*\.refine\(\)/s,
  );
  assert.match(e.message, /\/\^\(\?!-\)\[a-z-\]\+\$\//);
});

test("structural schema: number constraints: bounds, exclusive bounds (OpenAPI 3.0 booleans), formats", () => {
  assert.deepEqual(prop(z.number().min(1).max(10)), { type: "number", minimum: 1, maximum: 10 });
  assert.deepEqual(prop(z.number().gt(0).lt(1)), {
    type: "number",
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 1,
    exclusiveMaximum: true,
  });
  assert.deepEqual(prop(z.number().positive()), {
    type: "number",
    minimum: 0,
    exclusiveMinimum: true,
  });
  assert.deepEqual(prop(z.number().nonnegative()), { type: "number", minimum: 0 });
  // The tighter bound wins.
  assert.deepEqual(prop(z.number().min(5).gt(5).min(2)), {
    type: "number",
    minimum: 5,
    exclusiveMinimum: true,
  });
  assert.deepEqual(prop(z.number().multipleOf(5)), { type: "number", multipleOf: 5 });
  assert.deepEqual(prop(z.number().multipleOf(2).multipleOf(3)), {
    type: "number",
    multipleOf: 2,
    allOf: [{ multipleOf: 3 }],
  });
  assert.deepEqual(prop(z.int()), { type: "integer" });
  assert.deepEqual(prop(z.number().int().min(0)), { type: "integer", minimum: 0 });
  assert.deepEqual(prop(z.int32()), { type: "integer", format: "int32" });
  assert.deepEqual(prop(z.uint32()), {
    type: "integer",
    format: "int64",
    minimum: 0,
    maximum: 4294967295,
  });
  assert.deepEqual(prop(z.float32()), { type: "number", format: "float" });
  assert.deepEqual(prop(z.float64()), { type: "number", format: "double" });
  assert.deepEqual(prop(z.boolean()), { type: "boolean" });
  assert.deepEqual(prop(z.array(z.string()).min(1).max(3)), {
    type: "array",
    minItems: 1,
    maxItems: 3,
    items: { type: "string" },
  });
});

test("structural schema: int-or-string: number | string unions, with each side's constraints", () => {
  const expected = {
    "x-kubernetes-int-or-string": true,
    anyOf: [{ type: "integer" }, { type: "string" }],
  };
  assert.deepEqual(prop(z.union([z.int(), z.string()])), expected);
  assert.deepEqual(prop(z.union([z.string(), z.number()])), expected);
  assert.deepEqual(prop(z.union([z.int().min(1).max(65535), z.string().regex(/^[a-z]+$/)])), {
    ...expected,
    minimum: 1,
    maximum: 65535,
    pattern: "^[a-z]+$",
  });
  assert.deepEqual(prop(z.union([z.int(), z.string()]).nullable().describe("A port.")), {
    description: "A port.",
    nullable: true,
    ...expected,
  });
  assertStructural(conv(z.object({ port: z.union([z.int().min(1), z.string().min(1)]) })));
  refused(z.object({ p: z.union([z.literal(80), z.string()]) }), "spec.p", /int-or-string/);
});

test("structural schema: unions of one scalar type: merged enums or anyOf value validations", () => {
  assert.deepEqual(prop(z.union([z.literal("a"), z.literal("b"), z.enum(["c", "a"])])), {
    type: "string",
    enum: ["a", "b", "c"],
  });
  assert.deepEqual(prop(z.union([z.email(), z.ipv4()])), {
    type: "string",
    anyOf: [{ format: "email" }, { format: "ipv4" }],
  });
  assert.deepEqual(prop(z.union([z.string().min(3), z.string()])), { type: "string" });
  assert.deepEqual(prop(z.union([z.int(), z.number()])), { type: "number" });
  assert.deepEqual(prop(z.union([z.string(), z.string()])), { type: "string" });
  assert.deepEqual(prop(z.union([z.unknown(), z.string()])), {
    "x-kubernetes-preserve-unknown-fields": true,
  });
  assertStructural(conv(z.object({ a: z.union([z.email(), z.ipv4()]) })));
});

test("structural schema: unions of objects: merged fields, common required, anyOf per option", () => {
  const source = z.discriminatedUnion("type", [
    z.object({ type: z.literal("git"), url: z.string(), ref: z.string().optional() }),
    z.object({ type: z.literal("s3"), bucket: z.string() }),
  ]);
  const node = prop(source);
  assert.deepEqual(node, {
    type: "object",
    properties: {
      type: { type: "string", enum: ["git", "s3"] },
      url: { type: "string" },
      ref: { type: "string" },
      bucket: { type: "string" },
    },
    required: ["type"],
    anyOf: [
      { required: ["url"], properties: { type: { enum: ["git"] } } },
      { required: ["bucket"], properties: { type: { enum: ["s3"] } } },
    ],
  });
  assertStructural(conv(z.object({ source })));
  // An option without its own requirements accepts everything: no anyOf.
  assert.equal(prop(z.union([z.object({ a: z.string() }), z.object({})])).anyOf, undefined);
  refused(
    z.object({ s: z.union([z.object({ a: z.string() }), z.object({ a: z.int() })]) }),
    "spec.s.a",
    /different schemas \(string and integer in option 2\)/,
  );
});

test("structural schema: intersections of objects merge", () => {
  assert.deepEqual(prop(z.object({ a: z.string() }).and(z.object({ b: z.int().optional() }))), {
    type: "object",
    properties: { a: { type: "string" }, b: { type: "integer" } },
    required: ["a"],
  });
  refused(z.object({ i: z.string().and(z.int()) }), "spec.i", /intersection of string and integer/);
});

test("structural schema: incompatible unions are refused with the path and the fix", () => {
  const e = refused(
    z.object({ items: z.array(z.object({ size: z.union([z.string(), z.boolean()]) })) }),
    "spec.items[].size",
    /union of string and boolean.*one type.*int-or-string.*z\.unknown\(\)/s,
  );
  assert.ok(e instanceof TypeError);
  refused(
    z.object({ a: z.union([z.array(z.string()), z.array(z.int())]) }),
    "spec.a",
    /different array schemas/,
  );
  refused(z.object({ a: z.union([z.object({}), z.string()]) }), "spec.a", /object and string/);
  refused(
    z.object({ m: z.record(z.string(), z.union([z.boolean(), z.int()])) }),
    "spec.m.*",
    /boolean and integer/,
  );
  refused(
    z.object({ "app.kubernetes.io/x": z.union([z.boolean(), z.string()]) }),
    'spec["app.kubernetes.io/x"]',
    /boolean and string/,
  );
});

test("structural schema: constructs JSON cannot carry are refused with a fix", () => {
  refused(z.object({ when: z.date() }), "spec.when", /z\.date\(\).*z\.iso\.datetime\(\)/);
  refused(z.object({ n: z.bigint() }), "spec.n", /z\.bigint\(\).*z\.int\(\)/);
  refused(z.object({ m: z.map(z.string(), z.string()) }), "spec.m", /z\.record/);
  refused(z.object({ s: z.set(z.string()) }), "spec.s", /x-kubernetes-list-type/);
  refused(z.object({ t: z.tuple([z.string(), z.int()]) }), "spec.t", /z\.tuple\(\).*z\.array/);
  refused(z.object({ u: z.undefined() }), "spec.u", /always absent/);
  refused(z.object({ s: z.symbol() }), "spec.s", /z\.symbol\(\)/);
  refused(z.object({ n: z.nan() }), "spec.n", /z\.nan\(\)/);
});

test("structural schema: recursive schemas are refused instead of looping", () => {
  const Node: z.ZodType = z.lazy(() => z.object({ name: z.string(), children: z.array(Node) }));
  refused(z.object({ tree: Node }), "spec.tree.children[]", /recursive.*z\.unknown\(\)/s);
  const Category = z.object({
    name: z.string(),
    get sub() {
      return z.array(Category).optional();
    },
  });
  refused(z.object({ c: Category }), "spec.c.sub[]", /recursive/);
  // The same schema used twice side by side is not recursion.
  const Port = z.object({ port: z.int() });
  assert.ok(conv(z.object({ a: Port, b: Port, c: z.array(Port) })));
});

test("structural schema: pipes, transforms, readonly and lazy use the input side", () => {
  assert.deepEqual(prop(z.string().transform((s) => s.length)), { type: "string" });
  assert.deepEqual(prop(z.preprocess((v) => String(v), z.string().min(1))), {
    type: "string",
    minLength: 1,
  });
  assert.deepEqual(prop(z.int().readonly()), { type: "integer" });
  assert.deepEqual(prop(z.lazy(() => z.boolean())), { type: "boolean" });
  assert.deepEqual(prop(z.templateLiteral(["v", z.int()])).type, "string");
});

test("structural schema: convertField reports whether the root may be absent; non-zod input is refused", () => {
  assert.equal(convertField(z.object({}), "spec").optional, false);
  assert.equal(convertField(z.object({}).optional(), "spec").optional, true);
  assert.throws(
    () => convertField({ type: "object" }, "spec"),
    /spec: expected a zod schema, got a Object/,
  );
});

test("structural schema: a realistic spec is structural end to end", () => {
  const spec = z.object({
    replicas: z.int().min(0).max(100).default(1).describe("Desired replicas."),
    image: z.string().min(1),
    ports: z.array(z.object({
      name: z.string().regex(/^[a-z][a-z0-9-]*$/).max(15),
      port: z.union([z.int().min(1).max(65535), z.string()]),
      protocol: z.enum(["TCP", "UDP"]).default("TCP"),
    })).meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
    env: z.record(z.string(), z.string()).optional(),
    resources: z.record(z.string(), z.unknown()).optional(),
    schedule: z.object({ cron: z.string(), timezone: z.string().nullable() }).optional(),
    source: z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("git"), url: z.url() }),
      z.object({ kind: z.literal("image"), ref: z.string() }),
    ]),
  });
  assertStructural(conv(spec));
});
