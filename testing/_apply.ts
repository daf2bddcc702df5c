// Internal: field ownership (`metadata.managedFields`) and a simplified server-side apply for the
// fake API server (mod.ts). Not part of the public API.
//
// Simplifications against the real structured-merge-diff: every list is atomic (owned and replaced
// as a whole; the real server merges associative lists such as `containers` by key), and no
// `.` (whole-map) ownership entries are written.

import {
  clone,
  deepEqual,
  isObject,
  type JsonObject,
  rfc3339,
  SYSTEM_METADATA_FIELDS,
} from "./_json.ts";

/** A field set in the `FieldsV1` format: `{"f:spec":{"f:replicas":{}}}`; `{}` is a leaf. */
export type FieldSet = { [key: string]: FieldSet };

/** One `metadata.managedFields` entry. */
export interface ManagedEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time: string;
  fieldsType: "FieldsV1";
  fieldsV1: FieldSet;
  subresource?: string;
}

/** A conflict of an apply with another manager. */
export interface ApplyConflict {
  /** The other manager's description, as the real message prints it. */
  manager: string;
  /** The field path, e.g. `.spec.replicas`. */
  path: string;
}

const IGNORED_META = SYSTEM_METADATA_FIELDS;

/** Which part of the object a write may change: the main resource or the `status` subresource. */
export type Part = "main" | "status";

function tracked(object: JsonObject, part: Part, hasStatus: boolean): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(object)) {
    if (key === "apiVersion" || key === "kind") continue;
    if (part === "status" && key !== "status") continue;
    if (part === "main" && hasStatus && key === "status") continue;
    if (key === "metadata" && isObject(value)) {
      const meta: JsonObject = {};
      for (const [k, v] of Object.entries(value)) if (!IGNORED_META.has(k)) meta[k] = v;
      if (Object.keys(meta).length) out.metadata = meta;
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** The fields set in a value: maps recurse, everything else (scalars, lists, `{}`) is a leaf. */
function fieldsOfValue(value: unknown): FieldSet {
  const set: FieldSet = {};
  if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (child === undefined || child === null) continue;
      set[`f:${key}`] = isObject(child) && Object.keys(child).length ? fieldsOfValue(child) : {};
    }
  }
  return set;
}

/**
 * The field set of an object's tracked fields.
 *
 * @param object The object.
 * @param part Main resource or status.
 * @param hasStatus Whether the kind has a status subresource.
 * @returns The set.
 */
export function fieldsOf(object: JsonObject, part: Part, hasStatus: boolean): FieldSet {
  return fieldsOfValue(tracked(object, part, hasStatus));
}

type Path = string[];

function leaves(set: FieldSet, prefix: Path = []): Path[] {
  const out: Path[] = [];
  for (const [key, child] of Object.entries(set)) {
    const path = [...prefix, key];
    if (Object.keys(child).length === 0) out.push(path);
    else out.push(...leaves(child, path));
  }
  return out;
}

function node(set: FieldSet, path: Path): FieldSet | undefined {
  let current: FieldSet | undefined = set;
  for (const key of path) {
    current = current?.[key];
    if (current === undefined) return undefined;
  }
  return current;
}

/** Whether a set owns a path: the path itself, a leaf above it, or anything below it. */
function overlaps(set: FieldSet, path: Path): boolean {
  let current: FieldSet = set;
  for (const key of path) {
    const next = current[key];
    if (next === undefined) return false;
    if (Object.keys(next).length === 0) return true;
    current = next;
  }
  return true;
}

function addPath(set: FieldSet, path: Path): void {
  let current = set;
  for (let i = 0; i < path.length; i++) {
    const key = path[i];
    if (i === path.length - 1) {
      current[key] = {};
    } else {
      if (current[key] === undefined || Object.keys(current[key]).length === 0) current[key] = {};
      current = current[key];
    }
  }
}

/** Removes a path, the leaves below it and a leaf above it. */
function removePath(set: FieldSet, path: Path): void {
  const walk = (current: FieldSet, i: number): boolean => {
    const key = path[i];
    const next = current[key];
    if (next === undefined) return false;
    if (i === path.length - 1 || Object.keys(next).length === 0) {
      delete current[key];
      return true;
    }
    const removed = walk(next, i + 1);
    if (removed && Object.keys(next).length === 0) delete current[key];
    return removed;
  };
  if (path.length) walk(set, 0);
}

function valueAt(object: unknown, path: Path): unknown {
  let current = object;
  for (const key of path) {
    if (!isObject(current)) return undefined;
    current = current[key.slice(2)];
  }
  return current;
}

function deleteAt(object: JsonObject, path: Path): void {
  let current: unknown = object;
  for (let i = 0; i < path.length - 1; i++) {
    if (!isObject(current)) return;
    current = current[path[i].slice(2)];
  }
  if (isObject(current)) delete current[path[path.length - 1].slice(2)];
}

/** `.spec.replicas`, as structured-merge-diff prints a path. */
function printPath(path: Path): string {
  return path.map((key) => `.${key.slice(2)}`).join("");
}

function changedLeaves(before: unknown, after: unknown, prefix: Path = []): Path[] {
  if (isObject(before) && isObject(after) && Object.keys(after).length) {
    const out: Path[] = [];
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const key of keys) {
      out.push(...changedLeaves(before[key], after[key], [...prefix, `f:${key}`]));
    }
    return out;
  }
  if (isObject(before) && !isObject(after) && Object.keys(before).length) {
    return [...leaves(fieldsOfValue(before), prefix), prefix];
  }
  if (!isObject(before) && isObject(after) && Object.keys(after).length) {
    return before === undefined
      ? leaves(fieldsOfValue(after), prefix)
      : [prefix, ...leaves(fieldsOfValue(after), prefix)];
  }
  return deepEqual(before, after) ? [] : [prefix];
}

function entriesOf(object: JsonObject | undefined): ManagedEntry[] {
  const raw = isObject(object?.metadata)
    ? (object.metadata as JsonObject).managedFields
    : undefined;
  return Array.isArray(raw) ? clone(raw as ManagedEntry[]) : [];
}

function sameOwner(e: ManagedEntry, manager: string, op: string, sub: string | undefined): boolean {
  return e.manager === manager && e.operation === op && (e.subresource ?? "") === (sub ?? "");
}

function describe(entry: ManagedEntry): string {
  let text = JSON.stringify(entry.manager);
  if (entry.subresource) text += ` with subresource ${JSON.stringify(entry.subresource)}`;
  if (entry.operation === "Update") text += ` using ${entry.apiVersion}`;
  return text;
}

function finish(entries: ManagedEntry[]): ManagedEntry[] {
  return entries.filter((e) => Object.keys(e.fieldsV1).length > 0);
}

/** What a write is, for ownership tracking. */
export interface Writer {
  /** The field manager. */
  manager: string;
  /** The apiVersion the write used. */
  apiVersion: string;
  /** `status` for the status subresource. */
  subresource?: string;
  /** Clock. */
  now: Date;
}

/**
 * Records an Update operation: fields it set or changed become the writer's, fields it removed are
 * nobody's.
 *
 * @param before The object before the write (`undefined` for a create).
 * @param after The object after the write; its `metadata.managedFields` is replaced.
 * @param writer Who wrote.
 * @param part Main resource or status.
 * @param hasStatus Whether the kind has a status subresource.
 */
export function trackUpdate(
  before: JsonObject | undefined,
  after: JsonObject,
  writer: Writer,
  part: Part,
  hasStatus: boolean,
): void {
  const entries = entriesOf(before);
  const oldTracked = before ? tracked(before, part, hasStatus) : {};
  const newTracked = tracked(after, part, hasStatus);
  const changed = changedLeaves(oldTracked, newTracked);
  if (changed.length) {
    for (const entry of entries) for (const path of changed) removePath(entry.fieldsV1, path);
    const newFields = fieldsOfValue(newTracked);
    let mine = entries.find((e) => sameOwner(e, writer.manager, "Update", writer.subresource));
    if (!mine) {
      mine = {
        manager: writer.manager,
        operation: "Update",
        apiVersion: writer.apiVersion,
        time: rfc3339(writer.now),
        fieldsType: "FieldsV1",
        fieldsV1: {},
      };
      if (writer.subresource) mine.subresource = writer.subresource;
      entries.push(mine);
    }
    for (const path of changed) {
      if (node(newFields, path) !== undefined) addPath(mine.fieldsV1, path);
    }
    mine.time = rfc3339(writer.now);
    mine.apiVersion = writer.apiVersion;
  }
  setEntries(after, finish(entries));
}

function setEntries(object: JsonObject, entries: ManagedEntry[]): void {
  const meta = isObject(object.metadata) ? object.metadata as JsonObject : (object.metadata = {});
  if (entries.length) meta.managedFields = entries;
  else delete meta.managedFields;
}

function mergeApplied(target: JsonObject, applied: JsonObject): void {
  for (const [key, value] of Object.entries(applied)) {
    if (value === null || value === undefined) continue;
    if (isObject(value) && isObject(target[key]) && Object.keys(value).length) {
      mergeApplied(target[key] as JsonObject, value);
    } else {
      target[key] = clone(value);
    }
  }
}

/**
 * A simplified server-side apply: merges the applied configuration into the live object, removes
 * the fields this manager applied before and no longer applies (unless another manager owns them),
 * and detects conflicts with fields other managers own and the applied configuration changes.
 *
 * @param live The live object (`undefined` when the apply creates it).
 * @param applied The applied configuration.
 * @param writer Who applies.
 * @param force Take over conflicting fields instead of failing.
 * @param part Main resource or status.
 * @param hasStatus Whether the kind has a status subresource.
 * @returns The new object, or the conflicts.
 */
export function apply(
  live: JsonObject | undefined,
  applied: JsonObject,
  writer: Writer,
  force: boolean,
  part: Part,
  hasStatus: boolean,
): { object: JsonObject; conflicts: ApplyConflict[] } {
  const entries = entriesOf(live);
  const appliedTracked = tracked(applied, part, hasStatus);
  const newSet = fieldsOfValue(appliedTracked);
  const liveTracked = live ? tracked(live, part, hasStatus) : {};
  const mineIndex = entries.findIndex((e) =>
    sameOwner(e, writer.manager, "Apply", writer.subresource)
  );
  const oldSet = mineIndex >= 0 ? entries[mineIndex].fieldsV1 : {};
  const others = entries.filter((_, i) => i !== mineIndex);

  const conflicts: ApplyConflict[] = [];
  const conflicting: Path[] = [];
  for (const path of leaves(newSet)) {
    if (deepEqual(valueAt(liveTracked, path), valueAt(appliedTracked, path))) continue;
    for (const other of others) {
      if (other.manager === writer.manager) continue;
      if (overlaps(other.fieldsV1, path)) {
        conflicts.push({ manager: describe(other), path: printPath(path) });
        conflicting.push(path);
      }
    }
  }
  if (conflicts.length && !force) return { object: live ?? {}, conflicts: conflicts };

  const object: JsonObject = live ? clone(live) : {};
  for (const path of leaves(oldSet)) {
    if (node(newSet, path) !== undefined) continue;
    if (others.some((o) => overlaps(o.fieldsV1, path))) continue;
    deleteAt(object, path);
  }
  for (const path of conflicting) for (const other of others) removePath(other.fieldsV1, path);
  // Fields the apply changes are taken away from Update managers (they changed hands).
  for (const path of leaves(newSet)) {
    if (deepEqual(valueAt(liveTracked, path), valueAt(appliedTracked, path))) continue;
    for (const other of others) if (other.operation === "Update") removePath(other.fieldsV1, path);
  }
  mergeApplied(object, appliedTracked);
  if (!live) {
    for (const key of ["apiVersion", "kind"]) {
      if (applied[key] !== undefined) object[key] = applied[key];
    }
  }
  const mine: ManagedEntry = {
    manager: writer.manager,
    operation: "Apply",
    apiVersion: writer.apiVersion,
    time: rfc3339(writer.now),
    fieldsType: "FieldsV1",
    fieldsV1: newSet,
  };
  if (writer.subresource) mine.subresource = writer.subresource;
  const next = mineIndex >= 0
    ? entries.map((e, i) => (i === mineIndex ? mine : e))
    : [...entries, mine];
  setEntries(object, finish(next.filter((e) => e === mine || others.includes(e))));
  return { object, conflicts: [] };
}

/**
 * The message of an apply conflict, worded like the real server.
 *
 * @param conflicts The conflicts.
 * @returns The message.
 */
export function conflictMessage(conflicts: ApplyConflict[]): string {
  if (conflicts.length === 1) {
    return `Apply failed with 1 conflict: conflict with ${conflicts[0].manager}: ${
      conflicts[0].path
    }`;
  }
  const byManager = new Map<string, string[]>();
  for (const c of conflicts) {
    byManager.set(c.manager, [...(byManager.get(c.manager) ?? []), c.path]);
  }
  const lines: string[] = [];
  for (const manager of [...byManager.keys()].sort()) {
    lines.push(`conflicts with ${manager}:`);
    for (const path of byManager.get(manager)!) lines.push(`- ${path}`);
  }
  return `Apply failed with ${conflicts.length} conflicts: ${lines.join("\n")}`;
}
