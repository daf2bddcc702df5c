// Internal: converts zod v4 schemas into Kubernetes *structural* OpenAPI v3 schemas, the dialect
// a CustomResourceDefinition's `openAPIV3Schema` must be written in:
//
// - every node has a `type`, or `x-kubernetes-int-or-string` / `x-kubernetes-preserve-unknown-fields`;
// - no `$ref`, `$schema`, `definitions`, `patternProperties`, tuples, `uniqueItems`, `type: null`;
// - `properties` and a schema-valued `additionalProperties` never on the same node;
// - nullability is `nullable: true`, exclusive bounds are OpenAPI 3.0 booleans;
// - `anyOf`/`allOf`/`oneOf`/`not` hold only value validations (no `type`, `description`,
//   `default`, `nullable`, `additionalProperties`), except the int-or-string `anyOf` pattern;
// - `pattern` must compile as a Go (RE2) regular expression.
//
// The walk reads zod's own definitions (`schema._zod.def`), so every refusal can name the schema
// path it happened at, e.g. `spec.items[].size`.

import { z } from "zod";

/**
 * A Kubernetes `JSONSchemaProps` (apiextensions.k8s.io/v1), restricted to what a structural schema
 * may contain.
 */
export interface JSONSchemaProps {
  /** `object`, `array`, `string`, `integer`, `number` or `boolean`. */
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  /** A format Kubernetes validates, e.g. `date-time`, `email`, `int32`. */
  format?: string;
  /** Human-readable documentation, shown by `kubectl explain`. */
  description?: string;
  /** Whether `null` is accepted (and kept) for this field. */
  nullable?: boolean;
  /** The value the API server fills in when the field is absent. */
  default?: unknown;
  /** The allowed values. */
  enum?: unknown[];
  /** Lower bound of a number. */
  minimum?: number;
  /** Whether {@linkcode JSONSchemaProps.minimum} is exclusive (OpenAPI 3.0 style). */
  exclusiveMinimum?: boolean;
  /** Upper bound of a number. */
  maximum?: number;
  /** Whether {@linkcode JSONSchemaProps.maximum} is exclusive (OpenAPI 3.0 style). */
  exclusiveMaximum?: boolean;
  /** The number must be a multiple of this. */
  multipleOf?: number;
  /** Minimum string length. */
  minLength?: number;
  /** Maximum string length. */
  maxLength?: number;
  /** A regular expression (Go RE2 syntax) the string must match. */
  pattern?: string;
  /** Minimum array length. */
  minItems?: number;
  /** Maximum array length. */
  maxItems?: number;
  /** Minimum number of fields of an object. */
  minProperties?: number;
  /** Maximum number of fields of an object. */
  maxProperties?: number;
  /** The schema of every array element. */
  items?: JSONSchemaProps;
  /** The fields of an object. */
  properties?: Record<string, JSONSchemaProps>;
  /** The fields that must be present. */
  required?: string[];
  /** The schema of every value of a map (never together with `properties`). */
  additionalProperties?: JSONSchemaProps | boolean;
  /** Value validations that must all hold. */
  allOf?: JSONSchemaProps[];
  /** Value validations of which at least one must hold. */
  anyOf?: JSONSchemaProps[];
  /** Value validations of which exactly one must hold. */
  oneOf?: JSONSchemaProps[];
  /** A value validation that must not hold. */
  not?: JSONSchemaProps;
  /** Keep fields the schema does not specify instead of pruning them. */
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  /** The value is an integer or a string (like `IntOrString` ports). */
  "x-kubernetes-int-or-string"?: boolean;
  /** The object is a complete Kubernetes object with `apiVersion`, `kind` and `metadata`. */
  "x-kubernetes-embedded-resource"?: boolean;
  /** How server-side apply merges the list: `atomic`, `set` or `map`. */
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  /** The keys identifying an element of a `map` list. */
  "x-kubernetes-list-map-keys"?: string[];
  /** How server-side apply merges the object: `granular` or `atomic`. */
  "x-kubernetes-map-type"?: "granular" | "atomic";
  /** CEL validation rules. */
  "x-kubernetes-validations"?: {
    rule: string;
    message?: string;
    messageExpression?: string;
    reason?: string;
    fieldPath?: string;
    optionalOldSelf?: boolean;
  }[];
}

/**
 * Thrown when a zod schema cannot be expressed as a Kubernetes structural schema. `path` names
 * the place in the schema, e.g. `spec.items[].size` (`[]` is "every element", `.*` "every map
 * value").
 */
export class CustomResourceSchemaError extends TypeError {
  /** Where in the schema the problem is, e.g. `spec.items[].size`. */
  readonly path: string;

  /**
   * Creates the error.
   *
   * @param path The schema path.
   * @param message What is wrong and how to fix it (without the path).
   */
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "CustomResourceSchemaError";
    this.path = path;
  }
}

// deno-lint-ignore no-explicit-any
type Def = any;
type Schema = z.core.$ZodType;

/** What the wrappers around a base schema say about the field. */
interface Field {
  node: JSONSchemaProps;
  /** The field may be absent (optional, has a default, or accepts anything). */
  optional: boolean;
}

const def = (schema: Schema): Def => schema._zod.def;

const TYPE_NAMES: Record<string, string> = {
  bigint: "z.bigint()",
  symbol: "z.symbol()",
  undefined: "z.undefined()",
  void: "z.void()",
  never: "z.never()",
  date: "z.date()",
  map: "z.map()",
  set: "z.set()",
  tuple: "z.tuple()",
  function: "z.function()",
  promise: "z.promise()",
  custom: "z.custom() / z.instanceof()",
  nan: "z.nan()",
  file: "z.file()",
  transform: "z.transform()",
  success: "z.success()",
};

const REFUSAL_FIXES: Record<string, string> = {
  bigint: "JSON has no bigint: use z.int() (or z.string() for numbers beyond 2^53).",
  date: "JSON has no dates: use z.iso.datetime() (a string with format date-time).",
  map: "use z.record(z.string(), valueSchema).",
  set: "use z.array(itemSchema); Kubernetes forbids uniqueItems, but " +
    '.meta({ "x-kubernetes-list-type": "set" }) makes the server keep the elements unique.',
  tuple: "structural schemas have one schema for all array elements: use z.array(...) or an " +
    "object with named fields.",
  undefined: "a field that is always absent has no schema: remove it, or make it .optional().",
  void: "a field that is always absent has no schema: remove it, or make it .optional().",
  never: "a field that can never be valid has no schema: remove it.",
};

/** Kubernetes string formats (apiextensions-apiserver, all versions) that zod formats map to. */
const K8S_FORMATS: Record<string, string> = {
  email: "email",
  url: "uri",
  guid: "uuid",
  uuid: "uuid",
  ipv4: "ipv4",
  ipv6: "ipv6",
  cidrv4: "cidr",
  cidrv6: "cidr",
  mac: "mac",
  date: "date",
  datetime: "date-time",
  base64: "byte",
  hostname: "hostname",
};

/**
 * OpenAPI keywords zod has no method for, copied from `.meta()` (as `@denokube/kube/crdgen`
 * writes them): value validations (`allOf`, `anyOf`, `oneOf`, `not`), object sizes, and a
 * `format` or `pattern` the zod schema does not imply (e.g. `int64`, `cidr`, an RE2-only
 * pattern), and the `default` of a field that stays required.
 */
const META_KEYWORDS = new Set([
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "minProperties",
  "maxProperties",
  "format",
  "pattern",
  "default",
]);

function addKeywords(node: JSONSchemaProps, keywords: Record<string, unknown>, path: string) {
  const target = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(keywords)) {
    if (key === "allOf" || key === "anyOf" || key === "oneOf") {
      if (!Array.isArray(value) || value.some((v) => !v || typeof v !== "object")) {
        throw new CustomResourceSchemaError(
          path,
          `.meta({ ${key} }) must be an array of value validations, e.g. [{ required: ["a"] }]`,
        );
      }
      const own = (target[key] ?? []) as unknown[];
      const added = (value as unknown[]).filter((v) => !own.some((o) => deepEqual(o, v)));
      target[key] = structuredClone([...own, ...added]);
    } else if (key === "default") {
      if (!("default" in target)) target.default = jsonValue(value, path);
    } else if (key === "format" || key === "pattern") {
      if (typeof value !== "string") {
        throw new CustomResourceSchemaError(path, `.meta({ ${key} }) must be a string`);
      }
      target[key] ??= value;
    } else if (key === "not") {
      if (!value || typeof value !== "object" || Array.isArray(value)) {
        throw new CustomResourceSchemaError(path, ".meta({ not }) must be a value validation");
      }
      target.not = structuredClone(value);
    } else {
      if (!Number.isInteger(value) || (value as number) < 0) {
        throw new CustomResourceSchemaError(
          path,
          `.meta({ ${key} }) must be a non-negative integer`,
        );
      }
      target[key] = value;
    }
  }
}

/** Zod formats whose pattern the user wrote (so an unsupported pattern is an error, not a skip). */
const USER_PATTERN_FORMATS = new Set([
  "regex",
  "starts_with",
  "ends_with",
  "includes",
  "lowercase",
  "uppercase",
]);

/**
 * Converts a zod schema into a Kubernetes structural schema node.
 *
 * @param schema The zod schema.
 * @param path The schema path used in error messages, e.g. `spec`.
 * @returns The node; `optional` says whether the field may be absent.
 * @throws {CustomResourceSchemaError} When a construct cannot be expressed.
 */
export function convertField(schema: unknown, path: string): Field {
  return new Converter().field(schema as Schema, path);
}

/**
 * Converts a zod schema into a Kubernetes structural schema.
 *
 * @param schema The zod schema.
 * @param path The schema path used in error messages, e.g. `spec`.
 * @returns The schema node.
 * @throws {CustomResourceSchemaError} When a construct cannot be expressed.
 */
export function convertSchema(schema: unknown, path: string): JSONSchemaProps {
  return convertField(schema, path).node;
}

class Converter {
  // Schemas being converted on the current path: meeting one again means recursion.
  #active = new Set<Schema>();

  field(schema: Schema, path: string): Field {
    if (!schema || typeof schema !== "object" || !("_zod" in schema)) {
      throw new CustomResourceSchemaError(
        path,
        `expected a zod schema, got ${
          describeValue(schema)
        }. Pass a zod v4 schema, e.g. z.object({ ... })`,
      );
    }
    let description: string | undefined;
    const extensions: Record<string, unknown> = {};
    const keywords: Record<string, unknown> = {};
    // The outermost of optional/default/prefault/catch/nonoptional decides whether the field
    // may be absent.
    let presence: "optional" | "required" | undefined;
    let nullable = false;
    let hasDefault = false;
    let defaultValue: unknown;
    const entered: Schema[] = [];
    let current = schema;
    try {
      // Peel the wrappers, outermost first: the outermost description and default win.
      for (;;) {
        const meta = z.globalRegistry.get(current) as Record<string, unknown> | undefined;
        if (meta) {
          if (description === undefined && typeof meta.description === "string") {
            description = meta.description;
          }
          for (const [key, value] of Object.entries(meta)) {
            if (key.startsWith("x-kubernetes-") && !(key in extensions)) extensions[key] = value;
            if (META_KEYWORDS.has(key) && !(key in keywords)) keywords[key] = value;
          }
        }
        const d = def(current);
        if (d.type === "optional" || d.type === "catch") {
          presence ??= "optional";
        } else if (d.type === "nullable") {
          nullable = true;
        } else if (d.type === "default" || d.type === "prefault") {
          if (!hasDefault) {
            hasDefault = true;
            defaultValue = d.defaultValue;
          }
          presence ??= "optional";
        } else if (d.type === "nonoptional") {
          presence ??= "required";
        } else if (d.type !== "readonly" && d.type !== "pipe" && d.type !== "lazy") {
          break;
        }
        // Step inside.
        if (d.type === "lazy" || d.type === "pipe") {
          if (this.#active.has(current)) throw recursion(path);
          this.#active.add(current);
          entered.push(current);
        }
        current = d.type === "lazy" ? d.getter() : d.type === "pipe"
          // The server stores what zod parses *from*: the pipe's input, unless the input is a
          // bare transform (z.preprocess), which accepts anything and hands it to the output.
          ? (def(d.in).type === "transform" ? d.out : d.in)
          : d.innerType;
      }
      const base = this.#base(current, path);
      const node = base.node;
      if (base.nullable) nullable = true;
      if (nullable) {
        node.nullable = true;
        if (node.enum) {
          // The API server checks `enum` even on null values, and null never matches (not even
          // when listed), while it skips allOf/anyOf for null: so a nullable enum moves its
          // values into allOf.
          const values = node.enum.filter((v) => v !== null);
          delete node.enum;
          node.allOf = [{ enum: values }, ...(node.allOf ?? [])];
        }
      }
      if (description !== undefined) node.description = description;
      if (hasDefault && defaultValue !== undefined) node.default = jsonValue(defaultValue, path);
      Object.assign(node, extensions);
      addKeywords(node, keywords, path);
      return {
        node: ordered(node),
        optional: (presence ?? (base.optional ? "optional" : "required")) === "optional",
      };
    } finally {
      for (const s of entered) this.#active.delete(s);
    }
  }

  #base(schema: Schema, path: string): Field & { nullable?: boolean } {
    const d = def(schema);
    switch (d.type) {
      case "string":
        return { node: stringNode(schema, path), optional: false };
      case "number":
        return { node: numberNode(schema, path), optional: false };
      case "boolean":
        return { node: { type: "boolean" }, optional: false };
      case "unknown":
      case "any":
        return { node: { "x-kubernetes-preserve-unknown-fields": true }, optional: true };
      case "enum":
        return { node: enumNode(enumValues(d.entries), path, "z.enum()"), optional: false };
      case "literal": {
        const values = d.values as unknown[];
        const nonNull = values.filter((v) => v !== null && v !== undefined);
        if (nonNull.length === 0) {
          throw new CustomResourceSchemaError(
            path,
            "z.literal(null) alone has no type in a structural schema: make another field " +
              ".nullable() instead",
          );
        }
        return {
          node: enumNode(nonNull, path, "z.literal()"),
          optional: values.includes(undefined),
          nullable: values.includes(null),
        };
      }
      case "template_literal": {
        const pattern = schema._zod.pattern as RegExp | undefined;
        const node: JSONSchemaProps = { type: "string" };
        const translated = pattern && translatePattern(pattern);
        if (translated && typeof translated === "string") node.pattern = translated;
        return { node, optional: false };
      }
      case "array":
        return { node: this.#array(schema, path), optional: false };
      case "object":
        return { node: this.#object(schema, path), optional: false };
      case "record":
        return { node: this.#record(schema, path), optional: false };
      case "union":
        return this.#union(schema, path);
      case "intersection":
        return { node: this.#intersection(schema, path), optional: false };
      default: {
        const name = TYPE_NAMES[d.type] ?? `a zod "${d.type}" schema`;
        const fix = REFUSAL_FIXES[d.type] ??
          "use a JSON type (string, number, boolean, object, array, record, enum), or z.unknown() " +
            "to let the server keep any value (x-kubernetes-preserve-unknown-fields).";
        throw new CustomResourceSchemaError(
          path,
          `${name} cannot be expressed in a Kubernetes structural schema: ${fix}`,
        );
      }
    }
  }

  #array(schema: Schema, path: string): JSONSchemaProps {
    const d = def(schema);
    const node: JSONSchemaProps = { type: "array", items: this.field(d.element, `${path}[]`).node };
    const { min, max } = lengthBounds(schema);
    if (min !== undefined) node.minItems = min;
    if (max !== undefined) node.maxItems = max;
    return node;
  }

  #object(schema: Schema, path: string): JSONSchemaProps {
    if (this.#active.has(schema)) throw recursion(path);
    this.#active.add(schema);
    try {
      const d = def(schema);
      const shape = d.shape as Record<string, Schema>;
      const properties: Record<string, JSONSchemaProps> = {};
      const required: string[] = [];
      for (const key of Object.keys(shape)) {
        const f = this.field(shape[key], childPath(path, key));
        properties[key] = f.node;
        if (!f.optional) required.push(key);
      }
      const node: JSONSchemaProps = { type: "object" };
      const catchall = d.catchall as Schema | undefined;
      const catchallType = catchall ? def(catchall).type : undefined;
      if (catchallType === "unknown" || catchallType === "any") {
        node["x-kubernetes-preserve-unknown-fields"] = true;
      } else if (catchall && catchallType !== "never") {
        // z.object({}).catchall(X) is a map; with fields it would need properties and
        // additionalProperties together, which Kubernetes forbids.
        if (Object.keys(properties).length > 0) {
          throw new CustomResourceSchemaError(
            path,
            "an object with both fields and .catchall(schema) cannot be expressed: Kubernetes " +
              "forbids properties together with additionalProperties. Move the extra keys into " +
              "a z.record(z.string(), schema) field, or use z.looseObject({...}) to keep " +
              "unknown fields as they are.",
          );
        }
        node.additionalProperties = this.field(catchall, `${path}.*`).node;
        return node;
      }
      if (Object.keys(properties).length > 0) node.properties = properties;
      if (required.length > 0) node.required = required;
      return node;
    } finally {
      this.#active.delete(schema);
    }
  }

  #record(schema: Schema, path: string): JSONSchemaProps {
    const d = def(schema);
    const keys = recordKeys(d.keyType, path);
    if (keys) {
      // A record over an enum has exactly those keys: an object.
      const properties: Record<string, JSONSchemaProps> = {};
      const required: string[] = [];
      for (const key of keys) {
        const f = this.field(d.valueType, childPath(path, key));
        properties[key] = f.node;
        if (!d.partial && !f.optional) required.push(key);
      }
      const node: JSONSchemaProps = { type: "object", properties };
      if (required.length > 0) node.required = required;
      return node;
    }
    const valueType = def(d.valueType).type;
    if (valueType === "unknown" || valueType === "any") {
      return { type: "object", "x-kubernetes-preserve-unknown-fields": true };
    }
    return { type: "object", additionalProperties: this.field(d.valueType, `${path}.*`).node };
  }

  #union(schema: Schema, path: string): Field & { nullable?: boolean } {
    const d = def(schema);
    let nullable = false;
    let optional = false;
    const options: JSONSchemaProps[] = [];
    const optionPaths: string[] = [];
    const all = d.options as Schema[];
    all.forEach((option, i) => {
      const t = def(option).type;
      if (t === "null") nullable = true;
      else if (t === "undefined" || t === "void") optional = true;
      else {
        const p = all.length > 1 ? `${path} (union option ${i + 1})` : path;
        const f = this.field(option, p);
        if (f.optional) optional = true;
        if (f.node.nullable) nullable = true;
        const node = { ...f.node };
        delete node.nullable;
        if (node.enum) node.enum = node.enum.filter((v) => v !== null);
        options.push(node);
        optionPaths.push(p);
      }
    });
    if (options.length === 0) {
      throw new CustomResourceSchemaError(
        path,
        "a union of only null/undefined has no type in a structural schema: remove the field",
      );
    }
    return { node: mergeUnion(options, path), optional, nullable };
  }

  #intersection(schema: Schema, path: string): JSONSchemaProps {
    const d = def(schema);
    const left = this.field(d.left, path).node;
    const right = this.field(d.right, path).node;
    if (left.type !== "object" || right.type !== "object") {
      if (deepEqual(stripDocs(left), stripDocs(right))) return left;
      throw new CustomResourceSchemaError(
        path,
        `an intersection of ${typeName(left)} and ${typeName(right)} cannot be expressed: only ` +
          "intersections of objects are supported. Use one schema (or .extend()) instead.",
      );
    }
    if (left.additionalProperties || right.additionalProperties) {
      throw new CustomResourceSchemaError(
        path,
        "an intersection with a record/map cannot be expressed: Kubernetes forbids properties " +
          "together with additionalProperties",
      );
    }
    const properties = { ...left.properties };
    for (const [key, value] of Object.entries(right.properties ?? {})) {
      const existing = properties[key];
      if (existing && !deepEqual(stripDocs(existing), stripDocs(value))) {
        throw new CustomResourceSchemaError(
          childPath(path, key),
          "the two sides of the intersection give this field different schemas " +
            `(${typeName(existing)} and ${typeName(value)}): give it one schema`,
        );
      }
      properties[key] = existing ?? value;
    }
    const node: JSONSchemaProps = { type: "object" };
    if (Object.keys(properties).length > 0) node.properties = properties;
    const required = [...new Set([...(left.required ?? []), ...(right.required ?? [])])];
    if (required.length > 0) node.required = required;
    if (
      left["x-kubernetes-preserve-unknown-fields"] || right["x-kubernetes-preserve-unknown-fields"]
    ) {
      node["x-kubernetes-preserve-unknown-fields"] = true;
    }
    return node;
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars

function stringNode(schema: Schema, path: string): JSONSchemaProps {
  const node: JSONSchemaProps = { type: "string" };
  const { min, max } = lengthBounds(schema);
  if (min !== undefined) node.minLength = min;
  if (max !== undefined) node.maxLength = max;
  const patterns: string[] = [];
  for (const check of checksOf(schema)) {
    const c = check._zod.def as Def;
    if (c.check !== "string_format") continue;
    const format = c.format as string;
    const k8sFormat = kubernetesFormat(c);
    if (k8sFormat) {
      node.format = k8sFormat;
      continue;
    }
    if (!(c.pattern instanceof RegExp)) continue;
    const translated = translatePattern(c.pattern);
    if (typeof translated === "string") {
      if (!patterns.includes(translated)) patterns.push(translated);
    } else if (USER_PATTERN_FORMATS.has(format)) {
      throw new CustomResourceSchemaError(
        path,
        `the pattern ${c.pattern} ${translated.reason}, which Kubernetes (Go RE2 regular ` +
          "expressions) does not support. Rewrite the pattern without it, or check it with " +
          ".refine() (enforced by .parse() only, not by the API server)",
      );
    }
    // A zod built-in format whose pattern RE2 cannot run: enforced by zod (.parse()) only.
  }
  if (patterns.length === 1) node.pattern = patterns[0];
  else if (patterns.length > 1) node.allOf = patterns.map((pattern) => ({ pattern }));
  return node;
}

function kubernetesFormat(c: Def): string | undefined {
  const format = c.format as string;
  if (format === "uuid" && typeof c.version === "string") {
    return { v3: "uuid3", v4: "uuid4", v5: "uuid5" }[c.version as string] ?? "uuid";
  }
  if (format === "datetime" && (c.local || c.precision === -1)) {
    // Without seconds or without an offset, the value is not an RFC 3339 date-time.
    return undefined;
  }
  if (format === "url" && (c.hostname || c.protocol)) {
    return undefined;
  }
  return K8S_FORMATS[format];
}

interface Bound {
  value: number;
  exclusive: boolean;
}

function numberNode(schema: Schema, path: string): JSONSchemaProps {
  let integer = false;
  let format: string | undefined;
  let min: Bound | undefined;
  let max: Bound | undefined;
  const multiples: number[] = [];
  const tighterMin = (b: Bound) => {
    if (!min || b.value > min.value || (b.value === min.value && b.exclusive)) min = b;
  };
  const tighterMax = (b: Bound) => {
    if (!max || b.value < max.value || (b.value === max.value && b.exclusive)) max = b;
  };
  for (const check of checksOf(schema)) {
    const c = check._zod.def as Def;
    switch (c.check) {
      case "greater_than":
        tighterMin({ value: Number(c.value), exclusive: !c.inclusive });
        break;
      case "less_than":
        tighterMax({ value: Number(c.value), exclusive: !c.inclusive });
        break;
      case "multiple_of":
        if (!Number.isFinite(c.value) || c.value === 0) {
          throw new CustomResourceSchemaError(
            path,
            `.multipleOf(${c.value}) cannot be expressed: use a positive number`,
          );
        }
        multiples.push(Math.abs(c.value));
        break;
      case "number_format":
        switch (c.format) {
          case "safeint":
            integer = true;
            break;
          case "int32":
            integer = true;
            format = "int32";
            break;
          case "uint32":
            integer = true;
            format = "int64";
            tighterMin({ value: 0, exclusive: false });
            tighterMax({ value: 4294967295, exclusive: false });
            break;
          case "float32":
            format = "float";
            break;
          case "float64":
            format = "double";
            break;
        }
        break;
    }
  }
  const node: JSONSchemaProps = { type: integer ? "integer" : "number" };
  if (format && (integer ? format.startsWith("int") : !format.startsWith("int"))) {
    node.format = format;
  }
  const lower = min as Bound | undefined;
  const upper = max as Bound | undefined;
  if (lower) {
    node.minimum = lower.value;
    if (lower.exclusive) node.exclusiveMinimum = true;
  }
  if (upper) {
    node.maximum = upper.value;
    if (upper.exclusive) node.exclusiveMaximum = true;
  }
  if (multiples.length > 0) {
    const [first, ...rest] = [...new Set(multiples)];
    node.multipleOf = first;
    if (rest.length > 0) node.allOf = rest.map((multipleOf) => ({ multipleOf }));
  }
  return node;
}

function enumNode(values: unknown[], path: string, what: string): JSONSchemaProps {
  const kinds = new Set(values.map(jsonType));
  if (kinds.size !== 1) {
    throw new CustomResourceSchemaError(
      path,
      `${what} mixes ${[...kinds].join(" and ")} values, but a structural schema field has one ` +
        "type: use values of one type",
    );
  }
  const kind = [...kinds][0];
  if (kind !== "string" && kind !== "number" && kind !== "boolean") {
    throw new CustomResourceSchemaError(
      path,
      `${what} with ${kind} values cannot be expressed: use string, number or boolean values`,
    );
  }
  const type = kind === "number"
    ? (values.every((v) => Number.isInteger(v)) ? "integer" : "number")
    : kind;
  return { type, enum: [...values] };
}

function enumValues(entries: Record<string, unknown>): unknown[] {
  // TypeScript numeric enums map names to numbers and numbers back to names: keep the numbers.
  const numeric = Object.values(entries).filter((v) => typeof v === "number");
  return Object.entries(entries)
    .filter(([key]) => !numeric.includes(Number(key)))
    .map(([, value]) => value);
}

function recordKeys(keyType: Schema, path: string): string[] | undefined {
  const d = def(keyType);
  switch (d.type) {
    case "string":
      return undefined;
    case "enum": {
      const values = enumValues(d.entries);
      if (values.every((v) => typeof v === "string")) return values as string[];
      break;
    }
    case "literal":
      if ((d.values as unknown[]).every((v) => typeof v === "string")) return d.values;
      break;
    case "pipe":
      return recordKeys(d.in, path);
  }
  throw new CustomResourceSchemaError(
    path,
    `a record keyed by ${d.type} cannot be expressed: JSON object keys are strings. Use ` +
      "z.record(z.string(), valueSchema) or z.record(z.enum([...]), valueSchema)",
  );
}

// ---------------------------------------------------------------------------------------------
// Unions

function mergeUnion(options: JSONSchemaProps[], path: string): JSONSchemaProps {
  if (options.length === 1) return options[0];
  // Integers are numbers: a union of both is a number.
  const types = new Set(options.map((o) => o.type === "integer" ? "number" : typeName(o)));
  const first = options[0];
  if (options.every((o) => deepEqual(stripDocs(o), stripDocs(first)))) return first;
  if (options.some((o) => o["x-kubernetes-preserve-unknown-fields"] && !o.type)) {
    // z.unknown() in a union accepts anything already.
    return { "x-kubernetes-preserve-unknown-fields": true };
  }
  if (types.size === 2 && types.has("string") && types.has("number")) {
    return intOrString(options, path);
  }
  if (types.size !== 1) {
    throw new CustomResourceSchemaError(
      path,
      `a union of ${
        [...new Set(options.map(typeName))].join(" and ")
      } cannot be expressed in a Kubernetes structural ` +
        "schema (every field has one type). Use one type, z.union([z.int(), z.string()]) for " +
        "an int-or-string field, or z.unknown() to let the server keep any value " +
        "(x-kubernetes-preserve-unknown-fields)",
    );
  }
  const type = [...types][0];
  if (type === "object") return mergeObjects(options, path);
  if (type === "array") {
    throw new CustomResourceSchemaError(
      path,
      "a union of different array schemas cannot be expressed: use one z.array(itemSchema) " +
        "(the element may itself be an enum or a union of objects)",
    );
  }
  // Scalars of one type: merge enums, otherwise anyOf of the value validations.
  const rests = options.map((o) => {
    const rest = stripDocs(o);
    delete rest.type;
    return rest;
  });
  const merged: JSONSchemaProps = { type: first.type };
  if (first.type === "integer" || first.type === "number") {
    merged.type = options.some((o) => o.type === "number") ? "number" : "integer";
  }
  if (rests.some((r) => Object.keys(r).length === 0)) return merged; // one option accepts all
  if (rests.every((r) => Object.keys(r).length === 1 && r.enum)) {
    merged.enum = [...new Set(rests.flatMap((r) => r.enum ?? []))];
    return merged;
  }
  merged.anyOf = rests;
  return merged;
}

function intOrString(options: JSONSchemaProps[], path: string): JSONSchemaProps {
  const node: JSONSchemaProps = {
    "x-kubernetes-int-or-string": true,
    anyOf: [{ type: "integer" }, { type: "string" }],
  };
  // Number keywords only apply to numbers and string keywords only to strings, so the
  // constraints of both options can sit on the node itself.
  const seen = new Map<string, string>();
  for (const option of options) {
    const rest = stripDocs(option);
    const type = rest.type;
    delete rest.type;
    if (type !== "string") delete rest.format; // int32/int64/double: not for strings
    if (rest.enum) {
      throw new CustomResourceSchemaError(
        path,
        "an int-or-string union with literal/enum options cannot be expressed: use " +
          "z.union([z.int(), z.string()]) and check the values with .refine()",
      );
    }
    if (rest.anyOf || rest.allOf) {
      throw new CustomResourceSchemaError(
        path,
        "an int-or-string union whose options are themselves unions or carry several patterns " +
          "cannot be expressed: simplify the options",
      );
    }
    for (const [key, value] of Object.entries(rest)) {
      if (seen.has(key)) {
        throw new CustomResourceSchemaError(
          path,
          `an int-or-string union with "${key}" on several options cannot be expressed`,
        );
      }
      seen.set(key, String(type));
      (node as Record<string, unknown>)[key] = value;
    }
  }
  return node;
}

function mergeObjects(options: JSONSchemaProps[], path: string): JSONSchemaProps {
  const node: JSONSchemaProps = { type: "object" };
  if (options.some((o) => o.additionalProperties !== undefined)) {
    throw new CustomResourceSchemaError(
      path,
      "a union of records/maps with other objects cannot be expressed: Kubernetes forbids " +
        "properties together with additionalProperties. Use one record schema",
    );
  }
  const properties: Record<string, JSONSchemaProps> = {};
  for (let i = 0; i < options.length; i++) {
    for (const [key, value] of Object.entries(options[i].properties ?? {})) {
      const existing = properties[key];
      if (!existing) {
        properties[key] = structuredClone(value);
        continue;
      }
      const a = stripDocs(existing);
      const b = stripDocs(value);
      delete a.enum;
      delete b.enum;
      if (!deepEqual(a, b)) {
        throw new CustomResourceSchemaError(
          childPath(path, key),
          `the union's options give this field different schemas (${typeName(existing)} and ` +
            `${typeName(value)} in option ${i + 1}): give it one schema in every option, or ` +
            "use different field names",
        );
      }
      if (existing.enum || value.enum) {
        // A discriminator: the merged field accepts every option's values.
        existing.enum = existing.enum && value.enum
          ? [...new Set([...existing.enum, ...value.enum])]
          : undefined;
        if (!existing.enum) delete existing.enum;
      }
    }
  }
  if (Object.keys(properties).length > 0) node.properties = properties;
  const required = (options[0].required ?? []).filter((key) =>
    options.every((o) => o.required?.includes(key))
  );
  if (required.length > 0) node.required = required;
  if (options.some((o) => o["x-kubernetes-preserve-unknown-fields"])) {
    node["x-kubernetes-preserve-unknown-fields"] = true;
  }
  // What tells the options apart, as value validations: each option's required fields and the
  // enum values of its discriminators.
  const branches = options.map((o) => {
    const branch: JSONSchemaProps = {};
    const own = (o.required ?? []).filter((key) => !required.includes(key));
    if (own.length > 0) branch.required = own;
    const narrowed: Record<string, JSONSchemaProps> = {};
    for (const [key, value] of Object.entries(o.properties ?? {})) {
      const merged = properties[key];
      if (value.enum && !deepEqual(value.enum, merged.enum)) narrowed[key] = { enum: value.enum };
    }
    if (Object.keys(narrowed).length > 0) branch.properties = narrowed;
    return branch;
  });
  if (branches.every((b) => Object.keys(b).length > 0)) node.anyOf = branches;
  return node;
}

// ---------------------------------------------------------------------------------------------
// Regular expressions: JavaScript → Go RE2

/**
 * Rewrites a JavaScript regular expression for Go's RE2, or says why it cannot be.
 *
 * @param regex The regular expression.
 * @returns The RE2 source, or `{ reason }` naming the unsupported feature.
 */
export function translatePattern(regex: RegExp): string | { reason: string } {
  const src = regex.source;
  let out = "";
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === "\\") {
      const next = src[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return { reason: "uses a backreference" };
      if (next === "u") {
        const braced = /^\\u\{([0-9a-fA-F]+)\}/.exec(src.slice(i));
        const plain = /^\\u([0-9a-fA-F]{4})/.exec(src.slice(i));
        const m = braced ?? plain;
        if (!m) return { reason: "uses an invalid \\u escape" };
        out += `\\x{${m[1]}}`;
        i += m[0].length - 1;
        continue;
      }
      if (next === "c") return { reason: "uses a \\c control escape" };
      if (next === "0") {
        out += "\\x00";
        i++;
        continue;
      }
      if (next === "p" || next === "P") {
        const m = /^\\[pP]\{([A-Za-z_]+)\}/.exec(src.slice(i));
        if (!m || m[1].length > 2) {
          return { reason: "uses a Unicode property escape RE2 may not know" };
        }
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
      if (next === "b" && inClass) return { reason: "uses [\\b]" };
      out += ch + next;
      i++;
      continue;
    }
    if (inClass) {
      if (ch === "]") inClass = false;
      out += ch;
      continue;
    }
    if (ch === "[") {
      if (src.startsWith("[^]", i)) return { reason: "uses [^]" };
      inClass = true;
      out += ch;
      // A leading ] is literal in RE2 but closes an empty class in JavaScript.
      if (src[i + 1] === "]") return { reason: "uses an empty character class" };
      continue;
    }
    if (ch === "(" && src[i + 1] === "?") {
      const rest = src.slice(i + 2);
      if (/^(=|!|<=|<!)/.test(rest)) return { reason: "uses a lookahead or lookbehind" };
      if (rest.startsWith("<")) {
        out += "(?P<";
        i += 2;
        continue;
      }
    }
    out += ch;
  }
  const flags = [...regex.flags].filter((f) => "ims".includes(f)).join("");
  return flags ? `(?${flags})${out}` : out;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function checksOf(schema: Schema): z.core.$ZodCheck[] {
  const checks = (def(schema).checks ?? []) as z.core.$ZodCheck[];
  // A format schema (z.email(), z.int()) is its own first check.
  return schema._zod.traits.has("$ZodCheck")
    ? [schema as unknown as z.core.$ZodCheck, ...checks]
    : checks;
}

function lengthBounds(schema: Schema): { min?: number; max?: number } {
  let min: number | undefined;
  let max: number | undefined;
  for (const check of checksOf(schema)) {
    const c = check._zod.def as Def;
    if (c.check === "min_length" && (min === undefined || c.minimum > min)) min = c.minimum;
    if (c.check === "max_length" && (max === undefined || c.maximum < max)) max = c.maximum;
    if (c.check === "length_equals") {
      if (min === undefined || c.length > min) min = c.length;
      if (max === undefined || c.length < max) max = c.length;
    }
  }
  return { min, max };
}

function recursion(path: string): CustomResourceSchemaError {
  return new CustomResourceSchemaError(
    path,
    "a recursive schema cannot be expressed: structural schemas have no $ref. Cut the " +
      "recursion at some depth, or use z.unknown() (x-kubernetes-preserve-unknown-fields) " +
      "for the recursive part",
  );
}

function jsonValue(value: unknown, path: string): unknown {
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(value));
  } catch {
    copy = undefined;
  }
  if (!deepEqual(copy, value)) {
    throw new CustomResourceSchemaError(
      path,
      `the .default() value is not plain JSON (got ${describeValue(value)}): use strings, ` +
        "numbers, booleans, null, arrays and plain objects",
    );
  }
  return copy;
}

/**
 * The path of an object's field, e.g. `spec.size` or `spec.labels["app.kubernetes.io/name"]`.
 *
 * @param parent The parent path.
 * @param key The field name.
 * @returns The child path.
 */
export function childPath(parent: string, key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function typeName(node: JSONSchemaProps): string {
  if (node["x-kubernetes-int-or-string"]) return "int-or-string";
  if (node.type) return node.type;
  return node["x-kubernetes-preserve-unknown-fields"] ? "unknown" : "untyped";
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  if (typeof value === "object") return `a ${value.constructor?.name ?? "object"}`;
  return typeof value;
}

function stripDocs(node: JSONSchemaProps): JSONSchemaProps {
  const copy = structuredClone(node);
  delete copy.description;
  delete copy.default;
  return copy;
}

/**
 * Structural equality of JSON values.
 *
 * @param a A value.
 * @param b Another value.
 * @returns Whether they are equal.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b, k) &&
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

const KEY_ORDER = [
  "description",
  "type",
  "format",
  "nullable",
  "default",
  "enum",
];

// Puts the keys in a readable order (description and type first), like kubectl shows them.
function ordered(node: JSONSchemaProps): JSONSchemaProps {
  const out: Record<string, unknown> = {};
  for (const key of KEY_ORDER) if (key in node) out[key] = (node as Record<string, unknown>)[key];
  for (const [key, value] of Object.entries(node)) if (!(key in out)) out[key] = value;
  return out as JSONSchemaProps;
}
