/**
 * Builders for label and field selector strings, validated before any request is sent.
 *
 * @example
 * ```ts
 * import { fieldSelector, labelSelector } from "@denokube/kube";
 * labelSelector({ app: "web", tier: ["frontend", "edge"] }); // "app=web,tier in (edge,frontend)"
 * fieldSelector({ "spec.nodeName": "node-1", "status.phase": { not: "Running" } });
 * // "spec.nodeName=node-1,status.phase!=Running"
 * ```
 *
 * @module
 */

/** One requirement of a Kubernetes `LabelSelector` (as in a Deployment's `spec.selector`). */
export interface LabelSelectorRequirement {
  /** The label key. */
  key: string;
  /** `In`, `NotIn`, `Exists` or `DoesNotExist`. */
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  /** The values, for `In` and `NotIn`. */
  values?: string[];
}

/** A Kubernetes `LabelSelector` object. */
export interface LabelSelectorObject {
  /** Labels that must equal the given values. */
  matchLabels?: Record<string, string>;
  /** Set-based requirements. */
  matchExpressions?: LabelSelectorRequirement[];
}

/**
 * A label selector written as an object: a string value means `key=value`, an array means
 * `key in (…)`, `true` means the label exists, `false` that it does not, `{ not: v }` means
 * `key!=v` and `{ notIn: [...] }` means `key notin (…)`.
 */
export type LabelSelectorShorthand = Record<
  string,
  string | readonly string[] | boolean | { not: string } | { notIn: readonly string[] }
>;

const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkKey(key: string): void {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const prefixOk = prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
  if (!prefixOk || name.length > 63 || !NAME.test(name)) {
    throw new TypeError(
      `Invalid label key ${
        JSON.stringify(key)
      }: a key is an optional DNS-subdomain prefix and "/", then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    );
  }
}

function checkValue(key: string, value: string): void {
  if (typeof value !== "string" || (value !== "" && (value.length > 63 || !NAME.test(value)))) {
    throw new TypeError(
      `Invalid value ${JSON.stringify(value)} for label ${
        JSON.stringify(key)
      }: a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
    );
  }
}

function set(key: string, op: "in" | "notin", values: readonly string[]): string {
  if (values.length === 0) {
    throw new TypeError(`Label ${JSON.stringify(key)}: "${op}" needs at least one value`);
  }
  for (const value of values) checkValue(key, value);
  return `${key} ${op} (${[...values].sort().join(",")})`;
}

/**
 * Builds a label selector string from a shorthand object or a Kubernetes `LabelSelector`
 * (`matchLabels` / `matchExpressions`). Requirements are sorted by key, so equal selectors
 * give equal strings.
 *
 * @param selector The selector.
 * @returns The selector string for the `labelSelector` query parameter.
 * @throws {TypeError} When a key or value is not a valid label key or value.
 */
export function labelSelector(selector: LabelSelectorShorthand | LabelSelectorObject): string {
  const parts: string[] = [];
  if (isSelectorObject(selector)) {
    for (const [key, value] of Object.entries(selector.matchLabels ?? {}).sort()) {
      checkKey(key);
      checkValue(key, value);
      parts.push(`${key}=${value}`);
    }
    for (const req of selector.matchExpressions ?? []) {
      checkKey(req.key);
      switch (req.operator) {
        case "In":
          parts.push(set(req.key, "in", req.values ?? []));
          break;
        case "NotIn":
          parts.push(set(req.key, "notin", req.values ?? []));
          break;
        case "Exists":
          parts.push(req.key);
          break;
        case "DoesNotExist":
          parts.push(`!${req.key}`);
          break;
        default:
          throw new TypeError(
            `Invalid operator ${
              JSON.stringify(req.operator)
            } for label ${req.key}: use In, NotIn, Exists or DoesNotExist`,
          );
      }
    }
    return parts.join(",");
  }
  for (const key of Object.keys(selector).sort()) {
    const value = selector[key];
    checkKey(key);
    if (typeof value === "string") {
      checkValue(key, value);
      parts.push(`${key}=${value}`);
    } else if (value === true) {
      parts.push(key);
    } else if (value === false) {
      parts.push(`!${key}`);
    } else if (Array.isArray(value)) {
      parts.push(set(key, "in", value));
    } else if (value && typeof value === "object" && "not" in value) {
      checkValue(key, value.not);
      parts.push(`${key}!=${value.not}`);
    } else if (value && typeof value === "object" && "notIn" in value) {
      parts.push(set(key, "notin", value.notIn));
    } else {
      throw new TypeError(`Invalid requirement for label ${JSON.stringify(key)}`);
    }
  }
  return parts.join(",");
}

function isSelectorObject(s: object): s is LabelSelectorObject {
  const keys = Object.keys(s);
  return keys.length > 0 && keys.every((k) => k === "matchLabels" || k === "matchExpressions") &&
    keys.every((k) => typeof (s as Record<string, unknown>)[k] === "object");
}

/**
 * Builds a field selector string: a string value means `field=value`, `{ not: v }` means
 * `field!=v`. Backslashes, commas and `=` inside values are escaped as the API server expects.
 *
 * @param selector Field paths (e.g. `metadata.name`, `spec.nodeName`) to values.
 * @returns The selector string for the `fieldSelector` query parameter.
 * @throws {TypeError} When a field path is not a dotted path.
 */
export function fieldSelector(selector: Record<string, string | { not: string }>): string {
  const parts: string[] = [];
  for (const field of Object.keys(selector).sort()) {
    if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/.test(field)) {
      throw new TypeError(
        `Invalid field ${JSON.stringify(field)}: use a dotted path such as "spec.nodeName"`,
      );
    }
    const value = selector[field];
    if (typeof value === "string") parts.push(`${field}=${escapeFieldValue(value)}`);
    else parts.push(`${field}!=${escapeFieldValue(value.not)}`);
  }
  return parts.join(",");
}

function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}
