// Internal: one CustomResourceDefinition → one TypeScript module (zod schemas, written-out
// interfaces with the descriptions as JSDoc, and a `defineCustomResource` constant per served
// version). The walk is over the structural schema; every node becomes a zod expression and a
// TypeScript type, and whatever cannot be represented becomes `unknown` with a warning that
// names the JSON path.

import { CHECKED_FORMATS } from "./validations.ts";
import type {
  CustomResourceDefinition,
  CustomResourceDefinitionVersion,
  JSONSchemaProps,
} from "../custom_resource.ts";

/** A problem found while generating, that did not stop the generation. */
export interface CrdgenWarning {
  /** Where the CRD came from: a file path, a URL or `cluster`. */
  source: string;
  /** The CRD's name, e.g. `httproutes.gateway.networking.k8s.io`. */
  crd: string;
  /** The version, e.g. `v1`, when the problem is in one version's schema. */
  version?: string;
  /** The JSON path in the schema, e.g. `.spec.rules[*].matches`. */
  path?: string;
  /** What is wrong and what the generated code does about it. */
  message: string;
}

/** Options of the code generator. */
export interface EmitOptions {
  /** The module generated code imports `defineCustomResource` from. Default `@denokube/kube`. */
  kubeImport?: string;
  /** The module generated code imports `valueValidations` from. Default `@denokube/kube/crdgen`. */
  crdgenImport?: string;
  /** The module generated code imports `z` from. Default `zod`. */
  zodImport?: string;
  /**
   * Whether the zod schemas carry the descriptions (`.meta({ description })`), so that
   * `.crd()` of the generated constant has them too. Default true; false halves the size of
   * well-documented CRDs (the interfaces keep the descriptions as JSDoc).
   */
  descriptions?: boolean;
}

const KNOWN_EXTENSIONS = new Set([
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
]);

const HANDLED = new Set([
  "type",
  "format",
  "description",
  "nullable",
  "default",
  "enum",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "items",
  "properties",
  "required",
  "additionalProperties",
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "minProperties",
  "maxProperties",
  "example",
  "externalDocs",
  "title",
]);

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const RESERVED = new Set([
  "z",
  "ZodType",
  "CustomResource",
  "CustomObject",
  "defineCustomResource",
  "valueValidations",
]);

/** A TypeScript module generated from one CRD. */
export interface EmittedModule {
  /** The file name, e.g. `httproutes.gateway.networking.k8s.io.ts`. */
  fileName: string;
  /** The CRD's name. */
  crd: string;
  /** The kind. */
  kind: string;
  /** The exported name of the preferred version's constant, e.g. `HTTPRoute`. */
  exportName: string;
  /** The module's source. */
  code: string;
}

interface Names {
  object: string;
  spec: string;
  status: string;
  specSchema: string;
  statusSchema: string;
}

interface Expr {
  zod: string;
  ts: string;
}

/**
 * Generates the module of one CRD.
 *
 * @param crd The definition (apiextensions.k8s.io/v1).
 * @param source Where it came from, for warnings.
 * @param options Import specifiers and description handling.
 * @param warnings Collects the warnings.
 * @returns The module.
 */
export function emitModule(
  crd: CustomResourceDefinition,
  source: string,
  options: EmitOptions,
  warnings: CrdgenWarning[],
): EmittedModule {
  return new ModuleEmitter(crd, source, options, warnings).emit();
}

class ModuleEmitter {
  #crd: CustomResourceDefinition;
  #name: string;
  #source: string;
  #options: Required<EmitOptions>;
  #warnings: CrdgenWarning[];
  #version = "";
  #used = new Set<string>(RESERVED);
  #interfaces: string[] = [];
  #needsValidations = false;
  // The spec/status names reserved up front, which their root interfaces take as they are.
  #rootNames = new Set<string>();
  #withStatus = new Set<string>();
  #optionalSpec = new Set<string>();
  // The warnings of each JSON path (by version), repeated in the field's JSDoc.
  #atPath = new Map<string, string[]>();
  #clean = new WeakSet<object>();

  constructor(
    crd: CustomResourceDefinition,
    source: string,
    options: EmitOptions,
    warnings: CrdgenWarning[],
  ) {
    this.#crd = crd;
    this.#name = crd.metadata?.name ?? `${crd.spec.names.plural}.${crd.spec.group}`;
    this.#source = source;
    this.#options = {
      kubeImport: options.kubeImport ?? "@denokube/kube",
      crdgenImport: options.crdgenImport ?? "@denokube/kube/crdgen",
      zodImport: options.zodImport ?? "zod",
      descriptions: options.descriptions ?? true,
    };
    this.#warnings = warnings;
  }

  #warn(message: string, path?: string): void {
    const w: CrdgenWarning = { source: this.#source, crd: this.#name, message };
    if (this.#version) w.version = this.#version;
    if (path !== undefined) {
      w.path = path;
      const key = `${this.#version}|${path}`;
      this.#atPath.set(key, [...(this.#atPath.get(key) ?? []), message]);
    }
    this.#warnings.push(w);
  }

  #unique(name: string): string {
    let candidate = name;
    for (let i = 2; this.#used.has(candidate); i++) candidate = `${name}${i}`;
    this.#used.add(candidate);
    return candidate;
  }

  emit(): EmittedModule {
    const { spec } = this.#crd;
    const kind = spec.names.kind;
    const served = spec.versions.filter((v) => v.served);
    const preferred = served.find((v) => v.storage) ?? served[0];
    const pascalKind = pascal(kind);
    const baseName = this.#unique(pascalKind);
    // Reserve every top-level name first, so nested names never take them.
    const top = new Map<string, Names>();
    for (const v of served) {
      const object = this.#unique(`${pascalKind}${pascal(v.name)}`);
      const names: Names = {
        object,
        spec: this.#unique(`${object}Spec`),
        status: this.#unique(`${object}Status`),
        specSchema: this.#unique(`${object}SpecSchema`),
        statusSchema: this.#unique(`${object}StatusSchema`),
      };
      top.set(v.name, names);
      this.#rootNames.add(names.spec).add(names.status);
    }
    const aliasSpec = this.#unique(`${pascalKind}Spec`);
    const aliasStatus = this.#unique(`${pascalKind}Status`);

    const body: string[] = [];
    for (const v of spec.versions) {
      if (!v.served) {
        body.push(`// Version ${v.name} is not served: nothing is generated for it.\n`);
        continue;
      }
      this.#version = v.name;
      body.push(this.#emitVersion(v, top.get(v.name)!));
    }
    this.#version = "";
    if (preferred) {
      const t = top.get(preferred.name)!;
      const hasStatus = this.#withStatus.has(preferred.name);
      const why = preferred.storage ? "the storage version" : "the first served version";
      body.push(
        `/** ${kind} in ${preferred.name}, ${why}: the same as {@linkcode ${t.object}}. */\n` +
          `export const ${baseName}: CustomResource<${t.spec}${
            this.#optionalSpec.has(preferred.name) ? " | undefined" : ""
          }, ${hasStatus ? t.status : "never"}> = ${t.object};\n` +
          `/** A ${kind} object in ${preferred.name}, ${why}. */\n` +
          `export type ${baseName} = ${t.object};\n` +
          `/** The spec of {@linkcode ${baseName}}. */\n` +
          `export type ${aliasSpec} = ${t.spec};\n` +
          (hasStatus
            ? `/** The status of {@linkcode ${baseName}}. */\nexport type ${aliasStatus} = ${t.status};\n`
            : ""),
      );
    } else {
      this.#warn("no version is served: the module exports nothing");
    }

    const imports = [
      `import { z } from ${JSON.stringify(this.#options.zodImport)};`,
      `import type { ZodType } from ${JSON.stringify(this.#options.zodImport)};`,
      `import {\n  type CustomObject,\n  type CustomResource,\n  defineCustomResource,\n} from ${
        JSON.stringify(this.#options.kubeImport)
      };`,
    ];
    if (this.#needsValidations) {
      imports.push(
        `import { valueValidations } from ${JSON.stringify(this.#options.crdgenImport)};`,
      );
    }
    const header =
      `// Code generated by @denokube/kube/crdgen from the CustomResourceDefinition\n` +
      `// ${this.#name}. DO NOT EDIT: generate it again instead.\n\n` +
      `/**\n * ${kind} (${spec.group}, ${
        spec.scope === "Namespaced" ? "namespaced" : "cluster-scoped"
      }): zod schemas, types and\n * {@linkcode CustomResource} constants for its served versions (${
        served.map((v) => v.name).join(", ") || "none"
      }). The zod schemas are\n * \`.specSchema\` and \`.statusSchema\` of the constants; \`.parse(object)\` validates with them.\n *\n * @module\n */\n\n`;
    const code = header + imports.join("\n") + "\n\n" + body.join("\n") + "\n" +
      this.#interfaces.join("\n");
    return {
      fileName: `${this.#name}.ts`,
      crd: this.#name,
      kind,
      exportName: baseName,
      code: code.replace(/\n{3,}/g, "\n\n").replace(/\n+$/, "\n"),
    };
  }

  #emitVersion(v: CustomResourceDefinitionVersion, names: Names): string {
    const { spec: crdSpec } = this.#crd;
    const rawRoot = v.schema?.openAPIV3Schema;
    const root = rawRoot ? this.#sane(rawRoot, ".") : undefined;
    const props: Record<string, JSONSchemaProps> = {};
    for (const [key, value] of Object.entries(root?.properties ?? {})) {
      props[key] = value && typeof value === "object" && !Array.isArray(value)
        ? this.#sane(value, `.${key}`)
        : value;
    }
    const out: string[] = [];
    let specExpr: Expr;
    let specOptional = false;
    let statusExpr: Expr | undefined;
    if (!root) {
      this.#warn(
        "the version has no schema (openAPIV3Schema): spec is typed unknown. Add a structural " +
          "schema to the CRD",
        ".",
      );
      specExpr = { zod: "z.unknown()", ts: "unknown" };
    } else {
      this.#checkKeys(root, ".");
      for (const key of Object.keys(props)) {
        if (!["apiVersion", "kind", "metadata", "spec", "status"].includes(key)) {
          this.#warn(
            `the top-level field ${key} is not typed: the generated constant types spec and ` +
              "status only (read it as obj[" + JSON.stringify(key) + "])",
            `.${key}`,
          );
        }
      }
      if (props.metadata?.properties) {
        this.#warn(
          "constraints on metadata fields are not generated (the API server checks them)",
          ".metadata",
        );
      }
      if (props.spec) {
        specExpr = this.#node(props.spec, ".spec", names.spec);
        specOptional = !(root.required ?? []).includes("spec");
      } else {
        if (!root["x-kubernetes-preserve-unknown-fields"]) {
          this.#warn("the schema has no spec: spec is typed unknown", ".spec");
        }
        specExpr = { zod: "z.unknown()", ts: "unknown" };
      }
      if (props.status) {
        statusExpr = this.#node(props.status, ".status", names.status);
        this.#withStatus.add(v.name);
      }
    }
    const label = `${crdSpec.names.kind} ${v.name}`;
    const specSchema = props.spec;
    // The schemas are module-private (the constant's .specSchema/.statusSchema give them); the
    // annotation makes the type checker prove that the interfaces match what zod parses.
    out.push(
      `// The zod schema of ${label}'s spec.
` +
        `const ${names.specSchema}: ZodType<${names.spec}> = ${specExpr.zod};
`,
    );
    this.#typeAlias(
      names.spec,
      specExpr.ts,
      [specSchema?.description ?? `The spec of ${label}.`, ...this.#notes(specSchema)].join("\n\n"),
    );
    if (statusExpr) {
      const statusSchema = props.status;
      out.push(
        `// The zod schema of ${label}'s status.
` +
          `const ${names.statusSchema}: ZodType<${names.status}> = ${statusExpr.zod};
`,
      );
      this.#typeAlias(
        names.status,
        statusExpr.ts,
        [statusSchema?.description ?? `The status of ${label}.`, ...this.#notes(statusSchema)]
          .join("\n\n"),
      );
    }
    if (specOptional) this.#optionalSpec.add(v.name);
    const specType = specOptional ? `${names.spec} | undefined` : names.spec;
    const statusType = statusExpr ? names.status : "never";
    const fields: string[] = [
      `group: ${JSON.stringify(crdSpec.group)}`,
      `version: ${JSON.stringify(v.name)}`,
      `kind: ${JSON.stringify(crdSpec.names.kind)}`,
      `plural: ${JSON.stringify(crdSpec.names.plural)}`,
    ];
    if (crdSpec.names.singular) fields.push(`singular: ${JSON.stringify(crdSpec.names.singular)}`);
    if (crdSpec.names.listKind) fields.push(`listKind: ${JSON.stringify(crdSpec.names.listKind)}`);
    fields.push(`namespaced: ${crdSpec.scope !== "Cluster"}`);
    if (crdSpec.names.shortNames?.length) {
      fields.push(`shortNames: ${JSON.stringify(crdSpec.names.shortNames)}`);
    }
    if (crdSpec.names.categories?.length) {
      fields.push(`categories: ${JSON.stringify(crdSpec.names.categories)}`);
    }
    fields.push(`spec: ${names.specSchema}${specOptional ? ".optional()" : ""}`);
    if (statusExpr) fields.push(`status: ${names.statusSchema}`);
    if (statusExpr && !v.subresources?.status) {
      this.#warn(
        "the CRD has a status field but no status subresource; the generated constant's .crd() " +
          "enables the subresource (reads and writes of objects are not affected)",
        ".status",
      );
    }
    if (!statusExpr && v.subresources?.status) {
      this.#warn(
        "the status subresource is enabled but the schema has no status field: .crd() of the " +
          "generated constant omits the subresource",
        ".status",
      );
    }
    if (v.additionalPrinterColumns?.length) {
      fields.push(`printerColumns: ${literal(v.additionalPrinterColumns)}`);
    }
    if (v.subresources?.scale) fields.push(`scale: ${literal(v.subresources.scale)}`);
    if (v.selectableFields?.length) {
      fields.push(`selectableFields: ${literal(v.selectableFields.map((f) => f.jsonPath))}`);
    }
    const doc = [
      `${crdSpec.names.kind} ${v.name} (${crdSpec.group}): a typed {@linkcode CustomResource} ` +
      "for every client verb, `Reflector`, `Controller` and `client.apply`; `.parse()` validates " +
      "objects read from the server with the generated schemas.",
    ];
    if (v.deprecated) {
      doc.push(`@deprecated ${v.deprecationWarning ?? `${crdSpec.group}/${v.name} is deprecated`}`);
    }
    out.push(
      jsdoc(doc.join("\n\n"), "") +
        `export const ${names.object}: CustomResource<${specType}, ${statusType}> =\n` +
        `  defineCustomResource({\n${fields.map((f) => `    ${f},\n`).join("")}  });\n`,
    );
    out.push(
      `/** A ${crdSpec.names.kind} object in ${v.name}. */\n` +
        `export type ${names.object} = CustomObject<${specType}, ${statusType}>;\n`,
    );
    return out.join("\n");
  }

  #typeAlias(name: string, ts: string, description: string): void {
    if (ts === name) return; // an interface of that name was emitted
    this.#interfaces.push(jsdoc(description, "") + `export type ${name} = ${ts};\n`);
  }

  /** Notes for the JSDoc: default, format, CEL rules, value validations. */
  #notes(s: JSONSchemaProps | undefined): string[] {
    if (!s || typeof s !== "object") return [];
    const notes: string[] = [];
    if (s.default !== undefined) notes.push(`Default: \`${JSON.stringify(s.default)}\``);
    if (s["x-kubernetes-int-or-string"] && s.pattern && /\[KMGTPE\]i/.test(s.pattern)) {
      notes.push("A quantity, e.g. `500m`, `1Gi` or `2`.");
    }
    const rules = s["x-kubernetes-validations"];
    if (rules?.length) {
      notes.push(
        "Validation rules (CEL, checked by the API server):\n" +
          rules.map((r) =>
            `- \`${r.rule}\`${
              r.message ? `: ${r.message}` : r.messageExpression ? `: ${r.messageExpression}` : ""
            }`
          ).join("\n"),
      );
    }
    return notes;
  }

  #checkKeys(s: JSONSchemaProps, path: string): void {
    for (const key of Object.keys(s)) {
      if (HANDLED.has(key) || KNOWN_EXTENSIONS.has(key)) continue;
      if (key.startsWith("x-kubernetes-")) {
        this.#warn(
          `unknown extension ${key}: copied into the schema's .meta() as it is, not checked by ` +
            "the generated schema. Check its spelling, or ignore this warning for an extension " +
            "newer than this generator",
          path,
        );
      } else {
        this.#warn(
          `the keyword ${key} is not allowed in a structural schema and is ignored (the API ` +
            "server would refuse or drop it)",
          path,
        );
      }
    }
  }

  /** A schema node → zod expression (without optional/default) and TypeScript type. */
  #node(raw: JSONSchemaProps, path: string, name: string, metaDefault = false): Expr {
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
      this.#warn("the schema node is not an object: typed unknown", path);
      return { zod: "z.unknown()", ts: "unknown" };
    }
    this.#checkKeys(raw, path);
    const s = this.#sane(raw, path);
    const meta: Record<string, unknown> = {};
    const validations: Record<string, unknown> = {};
    if (this.#options.descriptions && s.description !== undefined) {
      meta.description = s.description;
    }
    if (metaDefault) meta.default = s.default;
    let expr: Expr;
    let skipAnyOf = false;
    const preserve = s["x-kubernetes-preserve-unknown-fields"] === true;
    if (s["x-kubernetes-int-or-string"]) {
      expr = this.#intOrString(s, meta);
      skipAnyOf = isIntOrStringAnyOf(s.anyOf);
    } else if (s.enum !== undefined && s.type !== "object" && s.type !== "array") {
      expr = this.#enum(s, path, meta);
    } else {
      switch (s.type) {
        case "string":
          expr = this.#string(s, path, meta, validations);
          break;
        case "integer":
        case "number":
          expr = this.#number(s, meta);
          break;
        case "boolean":
          expr = { zod: "z.boolean()", ts: "boolean" };
          break;
        case "array": {
          let item: Expr;
          if (!s.items) {
            this.#warn(
              "an array without items is not structural: its elements are typed unknown",
              path,
            );
            item = { zod: "z.unknown()", ts: "unknown" };
          } else {
            item = this.#node(s.items, `${path}[*]`, name);
            if (s.items.nullable) item = { zod: `${item.zod}.nullable()`, ts: `${item.ts} | null` };
          }
          let zod = `z.array(${item.zod})`;
          if (s.minItems !== undefined) zod += `.min(${s.minItems})`;
          if (s.maxItems !== undefined) zod += `.max(${s.maxItems})`;
          expr = { zod, ts: /^[\w.]+$/.test(item.ts) ? `${item.ts}[]` : `Array<${item.ts}>` };
          break;
        }
        case "object":
          expr = this.#object(s, path, name, preserve);
          break;
        case undefined:
          if (preserve) {
            expr = { zod: "z.unknown()", ts: "unknown" };
          } else {
            this.#warn(
              "a node without type is not structural (add type, x-kubernetes-int-or-string or " +
                "x-kubernetes-preserve-unknown-fields): typed unknown",
              path,
            );
            expr = { zod: "z.unknown()", ts: "unknown" };
          }
          break;
        default:
          this.#warn(`unknown type ${JSON.stringify(s.type)}: typed unknown`, path);
          expr = { zod: "z.unknown()", ts: "unknown" };
      }
    }
    for (const key of Object.keys(s).sort()) {
      if (key.startsWith("x-kubernetes-") && key !== "x-kubernetes-int-or-string") {
        if (key === "x-kubernetes-preserve-unknown-fields" && expr.zod !== "z.unknown()") {
          // z.looseObject / z.record(z.string(), z.unknown()) say it already.
          if (s.type === "object") continue;
        }
        meta[key] = (s as Record<string, unknown>)[key];
      }
    }
    for (const key of ["allOf", "anyOf", "oneOf", "not"] as const) {
      if (s[key] === undefined || (key === "anyOf" && skipAnyOf)) continue;
      meta[key] = s[key];
      validations[key] = s[key];
    }
    for (const key of ["minProperties", "maxProperties"] as const) {
      if (s[key] === undefined) continue;
      meta[key] = s[key];
      validations[key] = s[key];
    }
    let zod = expr.zod;
    if (Object.keys(meta).length > 0) zod += `.meta(${literal(meta)})`;
    if (Object.keys(validations).length > 0) {
      this.#needsValidations = true;
      zod += `.superRefine(valueValidations(${literal(validations)}))`;
    }
    return { zod, ts: expr.ts };
  }

  /** A copy of the node without keywords whose values have the wrong shape (each warned). */
  #sane(s: JSONSchemaProps, path: string): JSONSchemaProps {
    if (this.#clean.has(s)) return s;
    const out = { ...s } as Record<string, unknown>;
    const drop = (key: string, what: string) => {
      this.#warn(`${key} must be ${what}: ignored (the API server would refuse the CRD)`, path);
      delete out[key];
    };
    const isObject = (v: unknown) => !!v && typeof v === "object" && !Array.isArray(v);
    for (
      const key of [
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
      ]
    ) {
      const v = out[key];
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) {
        drop(key, "a non-negative integer");
      }
    }
    for (const key of ["minimum", "maximum", "multipleOf"]) {
      const v = out[key];
      if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v))) drop(key, "a number");
    }
    if (out.multipleOf !== undefined && (out.multipleOf as number) <= 0) {
      drop("multipleOf", "positive");
    }
    for (const key of ["type", "format", "pattern", "description"]) {
      if (out[key] !== undefined && typeof out[key] !== "string") drop(key, "a string");
    }
    for (
      const key of [
        "nullable",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
      ]
    ) {
      if (out[key] !== undefined && typeof out[key] !== "boolean") drop(key, "true or false");
    }
    if (out.enum !== undefined && !Array.isArray(out.enum)) drop("enum", "a list of values");
    if (
      out.required !== undefined &&
      (!Array.isArray(out.required) || out.required.some((r) => typeof r !== "string"))
    ) drop("required", "a list of field names");
    if (out.properties !== undefined && !isObject(out.properties)) drop("properties", "an object");
    if (
      out.additionalProperties !== undefined && typeof out.additionalProperties !== "boolean" &&
      !isObject(out.additionalProperties)
    ) drop("additionalProperties", "a schema or a boolean");
    for (const key of ["allOf", "anyOf", "oneOf"]) {
      const v = out[key];
      if (v !== undefined && (!Array.isArray(v) || !v.every(isObject))) {
        drop(key, "a list of schemas");
      }
    }
    if (out.not !== undefined && !isObject(out.not)) drop("not", "a schema");
    const rules = out["x-kubernetes-validations"];
    if (
      rules !== undefined &&
      (!Array.isArray(rules) || !rules.every((r) => isObject(r) && typeof r.rule === "string"))
    ) drop("x-kubernetes-validations", "a list of { rule, message }");
    for (const key of ["x-kubernetes-list-map-keys"]) {
      const v = out[key];
      if (v !== undefined && (!Array.isArray(v) || v.some((k) => typeof k !== "string"))) {
        drop(key, "a list of field names");
      }
    }
    if (out.default !== undefined && out.type !== undefined && !out["x-kubernetes-int-or-string"]) {
      const d = out.default;
      const kind = d === null ? "null" : Array.isArray(d) ? "array" : typeof d;
      const ok = out.type === "integer"
        ? Number.isInteger(d)
        : out.type === "number"
        ? kind === "number"
        : kind === out.type;
      if (!ok) drop("default", `a value of type ${out.type}`);
    }
    this.#clean.add(out);
    return out as JSONSchemaProps;
  }

  #intOrString(s: JSONSchemaProps, meta: Record<string, unknown>): Expr {
    let int = "z.int()";
    if (s.minimum !== undefined) {
      int += s.exclusiveMinimum ? `.gt(${s.minimum})` : `.min(${s.minimum})`;
    }
    if (s.maximum !== undefined) {
      int += s.exclusiveMaximum ? `.lt(${s.maximum})` : `.max(${s.maximum})`;
    }
    let str = "z.string()";
    if (s.minLength !== undefined) str += `.min(${s.minLength})`;
    if (s.maxLength !== undefined) str += `.max(${s.maxLength})`;
    if (s.pattern !== undefined) {
      const regex = jsRegex(s.pattern);
      if (regex) str += `.regex(${regex})`;
      else meta.pattern = s.pattern;
    }
    if (s.format !== undefined) meta.format = s.format;
    return { zod: `z.union([${int}, ${str}])`, ts: "number | string" };
  }

  #enum(s: JSONSchemaProps, path: string, meta: Record<string, unknown>): Expr {
    const values = (s.enum ?? []).filter((v) => v !== null);
    if (values.length === 0) {
      this.#warn("an enum without non-null values: typed unknown", path);
      return { zod: "z.unknown()", ts: "unknown" };
    }
    const kinds = new Set(values.map((v) => typeof v));
    if (kinds.size !== 1 || !["string", "number", "boolean"].includes([...kinds][0])) {
      this.#warn("an enum of mixed or non-scalar values: typed unknown", path);
      return { zod: "z.unknown()", ts: "unknown" };
    }
    const ts = values.map((v) => JSON.stringify(v)).join(" | ");
    const extra = ["minLength", "maxLength", "pattern", "minimum", "maximum", "format"]
      .filter((k) => (s as Record<string, unknown>)[k] !== undefined);
    if (extra.length > 0) {
      // The enum pins the values; the other keywords are kept for .crd() and the docs.
      for (const k of extra) meta[k] = (s as Record<string, unknown>)[k];
    }
    if (kinds.has("string")) {
      return { zod: `z.enum(${JSON.stringify(values)})`, ts };
    }
    return { zod: `z.literal(${JSON.stringify(values)})`, ts };
  }

  #string(
    s: JSONSchemaProps,
    path: string,
    meta: Record<string, unknown>,
    validations: Record<string, unknown>,
  ): Expr {
    let zod = "z.string()";
    if (s.format !== undefined) {
      // Formats are checked as leniently as the API server parses them (zod's own formats are
      // stricter: z.iso.datetime() refuses "2006-01-02T15:04:05", which the server stores);
      // formats valueValidations does not know (email, uri, hostname, cidr, …) are left to the
      // server.
      meta.format = s.format;
      if (CHECKED_FORMATS.has(s.format)) validations.format = s.format;
    }
    if (s.minLength !== undefined) zod += `.min(${s.minLength})`;
    if (s.maxLength !== undefined) zod += `.max(${s.maxLength})`;
    if (s.pattern !== undefined) {
      const regex = jsRegex(s.pattern);
      if (regex) zod += `.regex(${regex})`;
      else {
        this.#warn(
          `the pattern ${JSON.stringify(s.pattern)} is not a JavaScript regular expression: ` +
            "the generated schema does not check it (the API server does)",
          path,
        );
        meta.pattern = s.pattern;
      }
    }
    return { zod, ts: "string" };
  }

  #number(s: JSONSchemaProps, meta: Record<string, unknown>): Expr {
    let zod: string;
    if (s.type === "integer") {
      zod = s.format === "int32" ? "z.int32()" : "z.int()";
      if (s.format !== undefined && s.format !== "int32") meta.format = s.format;
    } else {
      zod = s.format === "float"
        ? "z.float32()"
        : s.format === "double"
        ? "z.float64()"
        : "z.number()";
      if (s.format !== undefined && s.format !== "float" && s.format !== "double") {
        meta.format = s.format;
      }
    }
    if (s.minimum !== undefined) {
      zod += s.exclusiveMinimum ? `.gt(${s.minimum})` : `.min(${s.minimum})`;
    }
    if (s.maximum !== undefined) {
      zod += s.exclusiveMaximum ? `.lt(${s.maximum})` : `.max(${s.maximum})`;
    }
    if (s.multipleOf !== undefined) zod += `.multipleOf(${s.multipleOf})`;
    return { zod, ts: "number" };
  }

  #object(s: JSONSchemaProps, path: string, name: string, preserve: boolean): Expr {
    const props = s.properties;
    const additional = s.additionalProperties;
    if (props && Object.keys(props).length > 0) {
      if (additional !== undefined && additional !== false) {
        this.#warn(
          "properties together with additionalProperties is not structural: additionalProperties " +
            "is ignored",
          path,
        );
      }
      const ifaceName = this.#rootNames.delete(name) ? name : this.#unique(name);
      const required = new Set(s.required ?? []);
      for (const r of required) {
        if (!(r in props)) {
          this.#warn(`required field ${r} is not among the properties: not checked`, path);
        }
      }
      const zodFields: string[] = [];
      const tsFields: string[] = [];
      // Sorted (as the API server returns them, and as kubectl explain lists them), so that a
      // CRD read from a file and the same CRD read from the cluster give the same bytes.
      for (const key of Object.keys(props).sort(byCodeUnit)) {
        const childPath0 = IDENTIFIER.test(key)
          ? `${path}.${key}`
          : `${path}[${JSON.stringify(key)}]`;
        const rawChild = props[key];
        const child = rawChild && typeof rawChild === "object" && !Array.isArray(rawChild)
          ? this.#sane(rawChild, childPath0)
          : rawChild;
        const childPath = IDENTIFIER.test(key)
          ? `${path}.${key}`
          : `${path}[${JSON.stringify(key)}]`;
        const isRequired = required.has(key);
        const childExpr = this.#node(
          child,
          childPath,
          `${name}${pascal(key)}`,
          isRequired && child?.default !== undefined,
        );
        const prop = IDENTIFIER.test(key) ? key : JSON.stringify(key);
        let zod = childExpr.zod;
        let ts = childExpr.ts;
        if (child?.nullable) {
          zod += ".nullable()";
          ts = `${ts} | null`;
        }
        if (child?.default !== undefined) {
          // A required field with a default is always present in what the server stores: the
          // schema keeps it required, and its .meta() carries the default (for .crd()).
          if (!isRequired) zod += `.prefault(${literal(child.default)})`;
        } else if (!isRequired) zod += ".optional()";
        else if (childExpr.zod.startsWith("z.unknown()")) zod += ".nonoptional()";
        zodFields.push(`${prop}: ${zod},`);
        const optional = !isRequired || child?.default !== undefined;
        const doc = [
          child?.description ?? `\`${childPath}\``,
          ...this.#notes(child),
          ...(this.#atPath.get(`${this.#version}|${childPath}`) ?? []).map((m) => `crdgen: ${m}`),
        ].filter((x) => x).join("\n\n");
        tsFields.push(jsdoc(doc, "  ") + `  ${prop}${optional ? "?" : ""}: ${ts};\n`);
      }
      if (preserve) {
        tsFields.push(
          "  /** Fields the schema does not name are kept. */\n  [key: string]: unknown;\n",
        );
      }
      const doc = [s.description ?? `${ifaceName} (${path}).`, ...this.#notes(s)].join("\n\n");
      this.#interfaces.push(
        jsdoc(doc, "") + `export interface ${ifaceName} {\n${tsFields.join("")}}\n`,
      );
      const ctor = preserve ? "z.looseObject" : "z.object";
      return { zod: `${ctor}({\n${zodFields.join("\n")}\n})`, ts: ifaceName };
    }
    if (additional && typeof additional === "object") {
      const value = this.#node(additional, `${path}.*`, `${name}Value`);
      let zod = value.zod;
      let ts = value.ts;
      if (additional.nullable) {
        zod += ".nullable()";
        ts = `${ts} | null`;
      }
      return { zod: `z.record(z.string(), ${zod})`, ts: `Record<string, ${ts}>` };
    }
    if (additional === true || preserve) {
      if (additional === true && !preserve) {
        this.#warn(
          "additionalProperties: true is not structural: treated as " +
            "x-kubernetes-preserve-unknown-fields",
          path,
        );
      }
      return { zod: "z.record(z.string(), z.unknown())", ts: "Record<string, unknown>" };
    }
    return { zod: "z.object({})", ts: "Record<string, never>" };
  }
}

function isIntOrStringAnyOf(anyOf: JSONSchemaProps[] | undefined): boolean {
  return Array.isArray(anyOf) && anyOf.length === 2 &&
    anyOf.some((o) => o.type === "integer" && Object.keys(o).length === 1) &&
    anyOf.some((o) => o.type === "string" && Object.keys(o).length === 1);
}

/** A Go (RE2) pattern as JavaScript source `new RegExp("…")`, or undefined when JS cannot. */
function jsRegex(pattern: string): string | undefined {
  let source = pattern;
  let flags = "";
  const leading = /^\(\?([ims]+)\)/.exec(source);
  if (leading) {
    flags = [...new Set(leading[1])].join("");
    source = source.slice(leading[0].length);
  }
  source = source.replace(/\(\?P</g, "(?<");
  if (/\\[zAQE]|\[\[:|\(\?[ims-]+[:)]/.test(source)) return undefined;
  try {
    new RegExp(source, flags);
  } catch {
    return undefined;
  }
  return flags
    ? `new RegExp(${JSON.stringify(source)}, ${JSON.stringify(flags)})`
    : `new RegExp(${JSON.stringify(source)})`;
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** PascalCase of a property, kind or version name, always a valid identifier start. */
export function pascal(name: string): string {
  const parts = name.split(/[^A-Za-z0-9]+/).filter((p) => p);
  let out = parts.map((p) => p[0].toUpperCase() + p.slice(1)).join("");
  if (out === "") out = "Field";
  if (/^[0-9]/.test(out)) out = `N${out}`;
  return out;
}

/** A JSON value as a TypeScript literal (keys unquoted where they can be). */
export function literal(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(", ")}]`;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => byCodeUnit(a, b));
  if (entries.length === 0) return "{}";
  return `{ ${
    entries.map(([k, v]) => `${IDENTIFIER.test(k) ? k : JSON.stringify(k)}: ${literal(v)}`).join(
      ", ",
    )
  } }`;
}

/** A JSDoc comment, or nothing for empty text. */
function jsdoc(text: string, indent: string): string {
  const clean = text.trim();
  if (!clean) return "";
  const lines = clean.split("\n").map((line) =>
    line.replace(/\*\//g, "*\\/").replace(/^(\s*)@(?!deprecated)/, "$1\\@").trimEnd()
  );
  if (lines.length === 1 && lines[0].length + indent.length < 90) {
    return `${indent}/** ${lines[0]} */\n`;
  }
  return `${indent}/**\n${
    lines.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)).join("\n")
  }\n${indent} */\n`;
}
