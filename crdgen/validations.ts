/**
 * The one run-time helper generated modules use: it checks the OpenAPI value validations
 * (`allOf`, `anyOf`, `oneOf`, `not`, and object sizes) that zod has no method for, the way the
 * API server does, so a generated schema refuses what the server refuses.
 *
 * @module
 */

/**
 * An OpenAPI v3 value validation as a CustomResourceDefinition holds it: the keywords that
 * constrain a value without giving it a type (`required`, `enum`, `pattern`, `format`, bounds,
 * `properties`, `items`, nested `allOf`/`anyOf`/`oneOf`/`not`). Unknown keywords are ignored.
 */
export interface ValueValidation {
  /** Every listed field must be present. */
  required?: string[];
  /** The value must equal one of these. */
  enum?: unknown[];
  /** The string must match this regular expression. */
  pattern?: string;
  /** A string format (`ipv4`, `ipv6`, `date-time`, `uuid`, …); unknown formats pass. */
  format?: string;
  /** String length bounds. */
  minLength?: number;
  /** String length bounds. */
  maxLength?: number;
  /** Number bounds. */
  minimum?: number;
  /** Number bounds. */
  maximum?: number;
  /** OpenAPI 3.0 exclusive bounds. */
  exclusiveMinimum?: boolean;
  /** OpenAPI 3.0 exclusive bounds. */
  exclusiveMaximum?: boolean;
  /** The number must be a multiple of this. */
  multipleOf?: number;
  /** Array length bounds. */
  minItems?: number;
  /** Array length bounds. */
  maxItems?: number;
  /** Object size bounds. */
  minProperties?: number;
  /** Object size bounds. */
  maxProperties?: number;
  /** Validations of fields, where present. */
  properties?: Record<string, ValueValidation>;
  /** A validation of every array element. */
  items?: ValueValidation;
  /** A validation of every map value. */
  additionalProperties?: ValueValidation | boolean;
  /** All must hold. */
  allOf?: ValueValidation[];
  /** At least one must hold. */
  anyOf?: ValueValidation[];
  /** Exactly one must hold. */
  oneOf?: ValueValidation[];
  /** Must not hold. */
  not?: ValueValidation;
}

/** What a zod refinement context offers (`superRefine`'s second argument). */
export interface RefinementContext {
  /** Reports a problem. */
  addIssue(issue: { code: "custom"; message: string; input?: unknown }): void;
}

/**
 * Builds the refinement a generated schema attaches with `.superRefine(...)`: it checks the
 * value validations of one schema node and reports the first that fails, naming the keyword
 * (`oneOf: matches 2 of the alternatives, expected exactly one`). `null` is not checked (the
 * API server skips value validations of null), nor is the value itself echoed.
 *
 * @param validation The node's `allOf`/`anyOf`/`oneOf`/`not`/`minProperties`/`maxProperties`.
 * @returns The refinement for zod's `superRefine`.
 * @example Exactly one of two fields
 * ```ts
 * import { z } from "zod";
 * import { valueValidations } from "@denokube/kube/crdgen";
 *
 * const schema = z.object({ a: z.string().optional(), b: z.string().optional() })
 *   .superRefine(valueValidations({ oneOf: [{ required: ["a"] }, { required: ["b"] }] }));
 * console.log(schema.safeParse({ a: "x", b: "y" }).success); // false
 * ```
 */
export function valueValidations(
  validation: ValueValidation,
): (value: unknown, ctx: RefinementContext) => void {
  return (value, ctx) => {
    if (value === null || value === undefined) return;
    const problem = check(validation, value);
    if (problem) ctx.addIssue({ code: "custom", message: problem, input: undefined });
  };
}

/**
 * Checks a value against a value validation.
 *
 * @param v The validation.
 * @param value The value.
 * @returns Why it fails, or undefined when it holds.
 */
export function check(v: ValueValidation, value: unknown): string | undefined {
  if (v.enum && !v.enum.some((e) => jsonEqual(e, value))) {
    return `enum: must be one of ${v.enum.map((e) => JSON.stringify(e)).join(", ")}`;
  }
  if (typeof value === "string") {
    if (v.minLength !== undefined && [...value].length < v.minLength) {
      return `minLength: shorter than ${v.minLength}`;
    }
    if (v.maxLength !== undefined && [...value].length > v.maxLength) {
      return `maxLength: longer than ${v.maxLength}`;
    }
    if (v.pattern !== undefined && !compile(v.pattern)?.test(value)) {
      return `pattern: does not match ${v.pattern}`;
    }
    if (v.format !== undefined && FORMATS[v.format] && !FORMATS[v.format](value)) {
      return `format: not a valid ${v.format}`;
    }
  }
  if (typeof value === "number") {
    if (v.minimum !== undefined) {
      if (v.exclusiveMinimum ? value <= v.minimum : value < v.minimum) {
        return `minimum: must be ${v.exclusiveMinimum ? ">" : ">="} ${v.minimum}`;
      }
    }
    if (v.maximum !== undefined) {
      if (v.exclusiveMaximum ? value >= v.maximum : value > v.maximum) {
        return `maximum: must be ${v.exclusiveMaximum ? "<" : "<="} ${v.maximum}`;
      }
    }
    if (v.multipleOf !== undefined && !Number.isInteger(value / v.multipleOf)) {
      return `multipleOf: must be a multiple of ${v.multipleOf}`;
    }
  }
  if (Array.isArray(value)) {
    if (v.minItems !== undefined && value.length < v.minItems) {
      return `minItems: fewer than ${v.minItems} items`;
    }
    if (v.maxItems !== undefined && value.length > v.maxItems) {
      return `maxItems: more than ${v.maxItems} items`;
    }
    if (v.items) {
      for (let i = 0; i < value.length; i++) {
        const problem = check(v.items, value[i]);
        if (problem) return `[${i}]: ${problem}`;
      }
    }
  } else if (value !== null && typeof value === "object") {
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object).filter((k) => object[k] !== undefined);
    if (v.minProperties !== undefined && keys.length < v.minProperties) {
      return `minProperties: fewer than ${v.minProperties} fields`;
    }
    if (v.maxProperties !== undefined && keys.length > v.maxProperties) {
      return `maxProperties: more than ${v.maxProperties} fields`;
    }
    for (const key of v.required ?? []) {
      if (!keys.includes(key)) return `required: ${key} is missing`;
    }
    for (const [key, sub] of Object.entries(v.properties ?? {})) {
      if (object[key] === undefined) continue;
      const problem = check(sub, object[key]);
      if (problem) return `${key}: ${problem}`;
    }
    if (typeof v.additionalProperties === "object") {
      for (const key of keys) {
        if (v.properties && key in v.properties) continue;
        const problem = check(v.additionalProperties, object[key]);
        if (problem) return `${key}: ${problem}`;
      }
    }
  }
  for (const sub of v.allOf ?? []) {
    const problem = check(sub, value);
    if (problem) return `allOf: ${problem}`;
  }
  if (v.anyOf && !v.anyOf.some((sub) => check(sub, value) === undefined)) {
    return "anyOf: matches none of the alternatives";
  }
  if (v.oneOf) {
    const matched = v.oneOf.filter((sub) => check(sub, value) === undefined).length;
    if (matched !== 1) {
      return `oneOf: matches ${matched} of the alternatives, expected exactly one`;
    }
  }
  if (v.not && check(v.not, value) === undefined) return "not: matches what is excluded";
  return undefined;
}

const compiled = new Map<string, RegExp | undefined>();

function compile(pattern: string): RegExp | undefined {
  if (!compiled.has(pattern)) {
    let regex: RegExp | undefined;
    try {
      regex = new RegExp(pattern, "u");
    } catch {
      try {
        regex = new RegExp(pattern);
      } catch {
        regex = undefined; // RE2-only syntax: the server checks it
      }
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, regex);
  }
  const regex = compiled.get(pattern);
  // An uncompilable pattern is left to the API server.
  return regex ?? { test: () => true } as unknown as RegExp;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const FORMATS: Record<string, (s: string) => boolean> = {
  ipv4: (s) => IPV4.test(s),
  ipv6: (s) => s.includes(":") && /^[0-9a-fA-F:.]+$/.test(s) && validIpv6(s),
  // The layouts the API server parses (RFC 3339, with or without seconds, fraction, offset).
  "date-time": (s) =>
    /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)?$/.test(s),
  date: (s) => /^\d{4}-\d\d-\d\d$/.test(s),
  byte: (s) => s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s),
  uuid: (s) => UUID.test(s),
  uuid3: (s) => UUID.test(s),
  uuid4: (s) => UUID.test(s),
  uuid5: (s) => UUID.test(s),
};

/** The string formats {@linkcode check} knows; others are left to the API server. */
export const CHECKED_FORMATS: ReadonlySet<string> = new Set(Object.keys(FORMATS));

function validIpv6(s: string): boolean {
  try {
    return new URL(`http://[${s}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length &&
    ka.every((k) =>
      jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
    );
}
