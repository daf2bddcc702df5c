// Mapping of OpenAPI v3 schemas (as served by kube-apiserver) to TypeScript type expressions and
// declarations, with JSDoc. Pure functions, unit-tested in tests/unit/codegen_types.test.ts.

import {
  apiVersionOf,
  type GroupVersionKind,
  propertyKey,
  refTarget,
  splitDefinitionName,
} from "./_codegen_names.ts";

/** The subset of an OpenAPI v3 schema object the generator reads. */
export interface Schema {
  /** Description, becomes JSDoc. */
  description?: string;
  /** JSON type. */
  type?: string;
  /** Format hint, e.g. `int32`, `date-time`, `byte`, `int-or-string`. */
  format?: string;
  /** Reference to a definition, `#/components/schemas/<name>`. */
  $ref?: string;
  /** All of (the apiserver wraps a described `$ref` in a one-element `allOf`). */
  allOf?: Schema[];
  /** One of. */
  oneOf?: Schema[];
  /** Any of. */
  anyOf?: Schema[];
  /** Array items. */
  items?: Schema;
  /** Object properties. */
  properties?: Record<string, Schema>;
  /** Map values. */
  additionalProperties?: Schema | boolean;
  /** Required property names. */
  required?: string[];
  /** Allowed values. */
  enum?: unknown[];
  /** Whether `null` is allowed. */
  nullable?: boolean;
  /** The kinds this definition is served as. */
  "x-kubernetes-group-version-kind"?: GroupVersionKind[];
  /** Integer or string. */
  "x-kubernetes-int-or-string"?: boolean;
  /** Object with arbitrary fields. */
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  /** Anything else. */
  [key: string]: unknown;
}

/** Resolves references while rendering one module. */
export interface TypeContext {
  /**
   * The type expression for a reference to a definition (a local name, or an imported one,
   * recording the import).
   */
  ref(definition: string): string;
}

/** A definition rendered specially instead of from its schema. */
export interface SpecialDefinition {
  /** The type expression. */
  type(ctx: TypeContext): string;
  /** Documentation placed before the schema's description. */
  doc: string;
}

const APIEXTENSIONS = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1";
const META = "io.k8s.apimachinery.pkg.apis.meta.v1";

/**
 * Definitions whose JSON form the generic mapping cannot express (or would express poorly). All
 * keep the wire form: the library never decodes objects into classes.
 */
export const SPECIAL_DEFINITIONS: Readonly<Record<string, SpecialDefinition>> = {
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {
    type: () => "string",
    doc: "Quantity as sent by the server (e.g. `500m`, `1Gi`, `1e3`), kept as a lossless " +
      "string; parse with care.",
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
    type: () => "number | string",
    doc: "An integer or a string (e.g. a port number or name, `25%`), as sent by the server.",
  },
  [`${META}.Time`]: {
    type: () => "string",
    doc: "A timestamp as an RFC 3339 string in UTC with seconds precision, e.g. " +
      "`2024-01-02T03:04:05Z`.",
  },
  [`${META}.MicroTime`]: {
    type: () => "string",
    doc: "A timestamp as an RFC 3339 string with microseconds, e.g. " +
      "`2024-01-02T03:04:05.123456Z`.",
  },
  "io.k8s.apimachinery.pkg.runtime.RawExtension": {
    type: () => "Record<string, unknown>",
    doc: "An embedded object, as sent by the server (usually a complete Kubernetes object).",
  },
  [`${META}.Patch`]: {
    type: () => "Record<string, unknown> | unknown[]",
    doc: "A patch body: a JSON merge patch, strategic merge patch or apply configuration " +
      "object, or a JSON patch array.",
  },
  [`${APIEXTENSIONS}.JSON`]: {
    type: () => "unknown",
    doc: "Any JSON value.",
  },
  [`${APIEXTENSIONS}.JSONSchemaPropsOrArray`]: {
    type: (ctx) => {
      const props = ctx.ref(`${APIEXTENSIONS}.JSONSchemaProps`);
      return `${props} | ${props}[]`;
    },
    doc: "A schema or an array of schemas.",
  },
  [`${APIEXTENSIONS}.JSONSchemaPropsOrBool`]: {
    type: (ctx) => `${ctx.ref(`${APIEXTENSIONS}.JSONSchemaProps`)} | boolean`,
    doc: "A schema or a boolean.",
  },
  [`${APIEXTENSIONS}.JSONSchemaPropsOrStringArray`]: {
    type: (ctx) => `${ctx.ref(`${APIEXTENSIONS}.JSONSchemaProps`)} | string[]`,
    doc: "A schema or an array of strings.",
  },
};

/** Width the generated comments are wrapped to (the repository's `deno fmt` line width). */
export const COMMENT_WIDTH = 100;

// A word that must not start a wrapped line: Markdown would read it as a list item, heading,
// quote, table row or (in JSDoc) a tag.
const LINE_START_HAZARD = /^(?:[-*+#>|@=]|\d+[.)]$)/;

/**
 * Word-wraps prose to a width. Lines inside ``` fences, code lines (a tab or four spaces first),
 * table rows are kept as they are; words are never split (URLs stay whole); list items keep their
 * marker and continue indented; no wrapped line starts with a word Markdown would read as a list
 * marker or heading.
 *
 * @param text The text.
 * @param width The maximum line length.
 * @returns The wrapped lines.
 */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of text.split("\n")) {
    const fences = line.split("```").length - 1;
    const code = fenced || fences > 0 || /^(?:\t| {4})/.test(line) || line.startsWith("|");
    if (fences % 2 === 1) fenced = !fenced;
    if (code || line.length <= width) {
      out.push(line);
      continue;
    }
    const marker = /^ {0,3}(?:[-*+]|\d+[.)]) +/.exec(line)?.[0] ?? /^ */.exec(line)![0];
    const continuation = " ".repeat(marker.length);
    const words: string[] = [];
    for (const word of line.slice(marker.length).split(/ +/)) {
      if (word === "") continue;
      if (words.length > 0 && LINE_START_HAZARD.test(word)) words[words.length - 1] += ` ${word}`;
      else words.push(word);
    }
    let current = marker;
    let empty = true;
    for (const word of words) {
      if (empty) {
        current += word;
        empty = false;
      } else if (current.length + 1 + word.length <= width) {
        current += ` ${word}`;
      } else {
        out.push(current);
        current = continuation + word;
      }
    }
    out.push(current);
  }
  return out;
}

/**
 * Formats text as a JSDoc block: `*\/` escaped, a leading `@` on a line escaped, trailing
 * whitespace removed, runs of blank lines collapsed, prose wrapped to {@linkcode COMMENT_WIDTH}.
 *
 * @param text The documentation (may span lines).
 * @param indent Indentation before each line.
 * @param tags Extra lines appended after a blank line, e.g. `@deprecated`.
 * @returns The comment, ending with a newline.
 */
export function jsDoc(text: string, indent = "", tags: string[] = []): string {
  const body = text.replace(/\r\n?/g, "\n").replace(/\*\//g, "*\\/").trim();
  const raw = body === "" ? [] : body.split("\n").map((l) => l.replace(/\s+$/, ""));
  const kept: string[] = [];
  for (const line of raw) {
    if (line === "" && kept[kept.length - 1] === "") continue;
    kept.push(line.replace(/^(\s*)@/, "$1\\@"));
  }
  const lines = wrapText(kept.join("\n"), COMMENT_WIDTH - indent.length - 3);
  if (tags.length > 0) {
    if (lines.length > 0) lines.push("");
    lines.push(...tags);
  }
  if (lines.length === 1 && indent.length + lines[0].length + 7 <= COMMENT_WIDTH) {
    return `${indent}/** ${lines[0]} */\n`;
  }
  return `${indent}/**\n${
    lines.map((l) => (l === "" ? `${indent} *` : `${indent} * ${l}`)).join("\n")
  }\n${indent} */\n`;
}

/** Whether a description marks the field or type as deprecated. */
export function isDeprecated(description: string | undefined): boolean {
  return description !== undefined &&
    /(?:^|[\s.])(?:Deprecated|DEPRECATED):|^Deprecated\./.test(description);
}

/** The reference of a schema that is a bare `$ref` or a one-element `allOf` of one. */
export function referenceOf(schema: Schema): string | undefined {
  if (typeof schema.$ref === "string") return schema.$ref;
  if (schema.allOf && schema.allOf.length === 1 && typeof schema.allOf[0].$ref === "string") {
    return schema.allOf[0].$ref;
  }
  return undefined;
}

function needsParens(type: string): boolean {
  // A union or intersection at the top level (outside braces, brackets and strings).
  let depth = 0;
  let quote = false;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === '"') quote = false;
    } else if (c === '"') quote = true;
    else if (c === "{" || c === "(" || c === "[" || c === "<") depth++;
    else if (c === "}" || c === ")" || c === "]" || c === ">") depth--;
    else if (depth === 0 && (c === "|" || c === "&")) return true;
  }
  return false;
}

/**
 * The array type of an element type, parenthesized when needed (`(A | B)[]`).
 *
 * @param element The element type.
 * @returns The array type.
 */
export function arrayOf(element: string): string {
  return needsParens(element) ? `(${element})[]` : `${element}[]`;
}

function union(types: string[]): string {
  const unique = [...new Set(types)];
  if (unique.includes("unknown")) return "unknown";
  return unique.join(" | ");
}

/**
 * The TypeScript type of a schema.
 *
 * - `$ref` (bare or in a one-element `allOf`) → the referenced type via `ctx`
 * - `oneOf`/`anyOf` → union; a larger `allOf` → intersection
 * - `x-kubernetes-int-or-string` → `number | string`
 * - `enum` → union of the literal values
 * - `string` (any format), `integer`/`number`, `boolean` → `string`, `number`, `boolean`
 * - `array` → `T[]`
 * - `object` with `properties` → an inline object type; with `additionalProperties` →
 *   `Record<string, T>`; otherwise `Record<string, unknown>`
 * - no type → `unknown`; `nullable` adds `| null`
 *
 * @param schema The schema.
 * @param ctx Resolves references.
 * @param indent Indentation of the line the type starts on (for inline object types).
 * @returns The type expression.
 */
export function tsType(schema: Schema, ctx: TypeContext, indent = ""): string {
  const base = baseType(schema, ctx, indent);
  return schema.nullable === true && base !== "unknown" ? `${base} | null` : base;
}

function baseType(schema: Schema, ctx: TypeContext, indent: string): string {
  const ref = referenceOf(schema);
  if (ref !== undefined) return ctx.ref(refTarget(ref));
  if (schema.allOf && schema.allOf.length > 0) {
    const parts = schema.allOf.map((s) => tsType(s, ctx, indent));
    return [...new Set(parts)].map((p) => (needsParens(p) ? `(${p})` : p)).join(" & ");
  }
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives && alternatives.length > 0 && schema.properties === undefined) {
    return union(alternatives.map((s) => tsType(s, ctx, indent)));
  }
  if (schema["x-kubernetes-int-or-string"] === true || schema.format === "int-or-string") {
    return "number | string";
  }
  if (Array.isArray(schema.enum) && schema.enum.length > 0) {
    const literals = schema.enum.filter((v) =>
      typeof v === "string" || typeof v === "number" || typeof v === "boolean" || v === null
    );
    if (literals.length === schema.enum.length) {
      return union([...new Set(literals)].map((v) => JSON.stringify(v)));
    }
  }
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return arrayOf(schema.items ? tsType(schema.items, ctx, indent) : "unknown");
    case "object":
    case undefined: {
      const hasProps = schema.properties !== undefined &&
        Object.keys(schema.properties).length > 0;
      if (hasProps) {
        const extra = schema.additionalProperties === undefined ||
            schema.additionalProperties === false
          ? undefined
          : "unknown";
        return `{\n${
          renderMembers(schema, ctx, `${indent}  `, { indexSignature: extra })
        }${indent}}`;
      }
      const extra = schema.additionalProperties;
      if (extra !== undefined && extra !== true && extra !== false) {
        return `Record<string, ${tsType(extra, ctx, indent)}>`;
      }
      if (extra === false) return "Record<string, never>";
      if (
        schema.type === "object" || extra === true ||
        schema["x-kubernetes-preserve-unknown-fields"] === true
      ) {
        return "Record<string, unknown>";
      }
      return "unknown";
    }
    default:
      return "unknown";
  }
}

/** Options of {@linkcode renderMembers}. */
export interface MemberOptions {
  /** Literal types for properties, e.g. `{ apiVersion: '"v1"', kind: '"Pod"' }`; always optional. */
  literals?: Record<string, string>;
  /** Add `[key: string]: <type>` after the properties. */
  indexSignature?: string;
}

/**
 * Documentation for a property the schema leaves undescribed.
 *
 * @param name The property name.
 * @param schema The property schema.
 * @returns A sentence.
 */
export function fallbackPropertyDoc(name: string, schema: Schema): string {
  const ref = referenceOf(schema);
  if (ref?.endsWith(".ObjectMeta")) {
    return "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
  }
  if (ref?.endsWith(".ListMeta")) {
    return "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
  }
  return `The \`${name}\` field (the Kubernetes API schema does not describe it).`;
}

/**
 * The members of an object type: each property with its JSDoc, `?` unless required (properties
 * with a literal type are always optional).
 *
 * @param schema An object schema with `properties`.
 * @param ctx Resolves references.
 * @param indent Indentation of each member.
 * @param options Literal types and an index signature.
 * @returns The member lines, each ending with a newline.
 */
export function renderMembers(
  schema: Schema,
  ctx: TypeContext,
  indent: string,
  options: MemberOptions = {},
): string {
  const required = new Set(schema.required ?? []);
  const names = Object.keys(schema.properties ?? {}).sort(compareStrings);
  let out = "";
  for (const name of names) {
    const prop = schema.properties![name];
    const literal = options.literals?.[name];
    const type = literal ?? tsType(prop, ctx, indent);
    const optional = literal !== undefined || !required.has(name);
    const description = prop.description ?? fallbackPropertyDoc(name, prop);
    out += jsDoc(description, indent, isDeprecated(prop.description) ? ["@deprecated"] : []);
    out += `${indent}${propertyKey(name)}${optional ? "?" : ""}: ${type};\n`;
  }
  if (options.indexSignature !== undefined) {
    out += `${indent}/** Fields not described by the schema. */\n`;
    out += `${indent}[key: string]: ${options.indexSignature};\n`;
  }
  return out;
}

/**
 * Code-unit order, as used for every sorted list in the output (locale-independent).
 *
 * @param a A string.
 * @param b A string.
 * @returns Negative, zero or positive.
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The single kind a definition is served as, or `undefined` when it has none or several (e.g.
 * `DeleteOptions`, which every group serves).
 *
 * @param schema The definition.
 * @returns The group, version and kind.
 */
export function singleKind(schema: Schema): GroupVersionKind | undefined {
  const gvks = schema["x-kubernetes-group-version-kind"];
  return Array.isArray(gvks) && gvks.length === 1 ? gvks[0] : undefined;
}

/**
 * The declaration of one definition: an `interface` for an object with properties, otherwise a
 * `type` alias, with the description (and the served kind) as JSDoc. A definition served as a
 * single kind gets literal `apiVersion` and `kind` property types.
 *
 * @param definition The full definition name, e.g. `io.k8s.api.core.v1.Pod`.
 * @param schema Its schema.
 * @param ctx Resolves references.
 * @returns The declaration, ending with a newline.
 */
export function renderDefinition(definition: string, schema: Schema, ctx: TypeContext): string {
  const { name } = splitDefinitionName(definition);
  const special = SPECIAL_DEFINITIONS[definition];
  const description = schema.description?.trim() ?? "";
  const deprecated = isDeprecated(description) ? ["@deprecated"] : [];
  if (special) {
    const doc = description ? `${special.doc}\n\n${description}` : special.doc;
    return `${jsDoc(doc, "", deprecated)}export type ${name} = ${special.type(ctx)};\n`;
  }
  const gvk = singleKind(schema);
  let doc = description || `The \`${name}\` type (the Kubernetes API schema does not describe it).`;
  if (gvk) {
    doc += `\n\nServed as \`apiVersion: ${
      apiVersionOf(gvk.group, gvk.version)
    }\`, \`kind: ${gvk.kind}\`.`;
  }
  const properties = schema.properties ?? {};
  if (
    Object.keys(properties).length > 0 && (schema.type === "object" || schema.type === undefined)
  ) {
    const literals: Record<string, string> = {};
    if (gvk && properties.apiVersion && properties.kind) {
      literals.apiVersion = JSON.stringify(apiVersionOf(gvk.group, gvk.version));
      literals.kind = JSON.stringify(gvk.kind);
    }
    const extra = schema.additionalProperties;
    const index = extra === undefined || extra === false ? undefined : "unknown";
    return `${jsDoc(doc, "", deprecated)}export interface ${name} {\n${
      renderMembers(schema, ctx, "  ", { literals, indexSignature: index })
    }}\n`;
  }
  return `${jsDoc(doc, "", deprecated)}export type ${name} = ${tsType(schema, ctx)};\n`;
}
