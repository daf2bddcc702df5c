// Internal JSON helpers of the fake API server (mod.ts). Not part of the public API.

/** A JSON object. */
export type JsonObject = Record<string, unknown>;

/**
 * Tells whether a value is a plain JSON object (not an array, not null).
 *
 * @param value Any value.
 * @returns `true` for objects.
 */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Deep-copies a JSON value.
 *
 * @param value A JSON-serialisable value.
 * @returns The copy.
 */
export function clone<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

/**
 * Compares two JSON values structurally (object key order does not matter).
 *
 * @param a First value.
 * @param b Second value.
 * @returns `true` when equal.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Returns the `metadata` object of a Kubernetes object, creating it when missing.
 *
 * @param object The object.
 * @returns Its metadata.
 */
export function metaOf(object: JsonObject): JsonObject {
  if (!isObject(object.metadata)) object.metadata = {};
  return object.metadata as JsonObject;
}

/**
 * Reads a string field of the metadata.
 *
 * @param object The object.
 * @param field The metadata field.
 * @returns The value, or `""`.
 */
export function metaString(object: JsonObject | undefined, field: string): string {
  const meta = object?.metadata;
  if (!isObject(meta)) return "";
  const value = meta[field];
  return typeof value === "string" ? value : "";
}

/**
 * Reads the string map `metadata.labels` (or another string map of the metadata).
 *
 * @param object The object.
 * @param field `labels` or `annotations`.
 * @returns The map (empty when missing).
 */
export function metaMap(object: JsonObject, field: string): Record<string, string> {
  const meta = object.metadata;
  if (!isObject(meta) || !isObject(meta[field])) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta[field] as JsonObject)) {
    if (typeof v === "string") out[k] = v;
  }
  return out;
}

/**
 * Reads a dotted path such as `status.phase` from an object.
 *
 * @param object The object.
 * @param path Dotted path.
 * @returns The value, or `undefined`.
 */
export function getDotted(object: unknown, path: string): unknown {
  let current = object;
  for (const part of path.split(".")) {
    if (!isObject(current)) return undefined;
    current = current[part];
  }
  return current;
}

/**
 * Formats a date the way Kubernetes does (RFC 3339, seconds precision, UTC).
 *
 * @param date The date.
 * @returns E.g. `2024-05-01T10:00:00Z`.
 */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Renders a value the way Go's `%q` would for strings (JSON string quoting is close enough).
 *
 * @param value The string.
 * @returns The quoted string.
 */
export function quote(value: string): string {
  return JSON.stringify(value);
}

/**
 * The metadata fields the server owns (or that identify the object): a create sets them itself,
 * and server-side apply does not track them as managed fields.
 */
export const SYSTEM_METADATA_FIELDS: ReadonlySet<string> = new Set([
  "name",
  "generateName",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "managedFields",
  "selfLink",
]);
