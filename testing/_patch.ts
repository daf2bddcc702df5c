// Internal: JSON merge patch (RFC 7386) and JSON patch (RFC 6902) for the fake API server
// (mod.ts). Not part of the public API.

import { clone, deepEqual, isObject } from "./_json.ts";

/** A patch that could not be applied (the real server answers 422 or 400). */
export class PatchError extends Error {
  /** `true` when the patch document itself is malformed (400), `false` when it failed (422). */
  readonly malformed: boolean;

  constructor(message: string, malformed: boolean) {
    super(message);
    this.name = "PatchError";
    this.malformed = malformed;
  }
}

/**
 * Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else
 * (including arrays) replaces.
 *
 * @param target The document (not modified).
 * @param patch The patch.
 * @returns The patched document.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const result: Record<string, unknown> = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete result[key];
    } else {
      result[key] = mergePatch(result[key], value);
    }
  }
  return result;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) {
    throw new PatchError(`JSON pointer ${JSON.stringify(pointer)} must start with "/"`, false);
  }
  return pointer.slice(1).split("/").map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"));
}

type Container = Record<string, unknown> | unknown[];

function resolveParent(doc: unknown, parts: string[], path: string): [Container, string] {
  let current = doc;
  for (const part of parts.slice(0, -1)) {
    if (Array.isArray(current)) {
      const index = arrayIndex(part, current.length - 1, path);
      current = current[index];
    } else if (isObject(current)) {
      if (!Object.hasOwn(current, part)) {
        throw new PatchError(`doc is missing path: "${path}": missing value`, false);
      }
      current = current[part];
    } else {
      throw new PatchError(`doc is missing path: "${path}": missing value`, false);
    }
  }
  if (!Array.isArray(current) && !isObject(current)) {
    throw new PatchError(`doc is missing path: "${path}": missing value`, false);
  }
  return [current, parts[parts.length - 1]];
}

function arrayIndex(part: string, max: number, path: string): number {
  if (!/^(0|[1-9]\d*)$/.test(part)) {
    throw new PatchError(
      `Unable to access invalid index: ${part}: invalid index referenced: ${path}`,
      false,
    );
  }
  const index = Number(part);
  if (index > max) {
    throw new PatchError(
      `Unable to access invalid index: ${index}: invalid index referenced: ${path}`,
      false,
    );
  }
  return index;
}

function getValue(doc: unknown, path: string): unknown {
  const parts = parsePointer(path);
  let current = doc;
  for (const part of parts) {
    if (Array.isArray(current)) {
      current = current[arrayIndex(part, current.length - 1, path)];
    } else if (isObject(current) && Object.hasOwn(current, part)) {
      current = current[part];
    } else {
      throw new PatchError(`doc is missing path: "${path}": missing value`, false);
    }
  }
  return current;
}

function addValue(doc: unknown, path: string, value: unknown): unknown {
  const parts = parsePointer(path);
  if (parts.length === 0) return value;
  const [parent, key] = resolveParent(doc, parts, path);
  if (Array.isArray(parent)) {
    const index = key === "-" ? parent.length : arrayIndex(key, parent.length, path);
    parent.splice(index, 0, value);
  } else {
    parent[key] = value;
  }
  return doc;
}

function removeValue(doc: unknown, path: string): unknown {
  const parts = parsePointer(path);
  if (parts.length === 0) throw new PatchError("unable to remove the whole document", false);
  const [parent, key] = resolveParent(doc, parts, path);
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(key, parent.length - 1, path), 1);
  } else {
    if (!Object.hasOwn(parent, key)) {
      throw new PatchError(`Unable to remove nonexistent key: ${key}: missing value`, false);
    }
    delete parent[key];
  }
  return doc;
}

function replaceValue(doc: unknown, path: string, value: unknown): unknown {
  const parts = parsePointer(path);
  if (parts.length === 0) return value;
  const [parent, key] = resolveParent(doc, parts, path);
  if (Array.isArray(parent)) {
    parent[arrayIndex(key, parent.length - 1, path)] = value;
  } else {
    if (!Object.hasOwn(parent, key)) {
      throw new PatchError(
        `replace operation does not apply: doc is missing key: ${path}: missing value`,
        false,
      );
    }
    parent[key] = value;
  }
  return doc;
}

/**
 * Applies a JSON patch (RFC 6902: add, remove, replace, move, copy, test).
 *
 * @param target The document (not modified).
 * @param operations The parsed patch: an array of operations.
 * @returns The patched document.
 * @throws {PatchError} When the patch is malformed or an operation fails.
 */
export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) {
    throw new PatchError(
      `error decoding patch: json: cannot unmarshal ${
        operations === null ? "null" : typeof operations === "object" ? "object" : typeof operations
      } into Go value of type []handlers.jsonPatchOp`,
      true,
    );
  }
  let doc = clone(target);
  for (const op of operations) {
    if (!isObject(op) || typeof op.op !== "string") {
      throw new PatchError("Unexpected kind: unknown", true);
    }
    const path = op.path;
    if (typeof path !== "string") {
      throw new PatchError(`${op.op} operation missing path`, false);
    }
    const needsValue = op.op === "add" || op.op === "replace" || op.op === "test";
    if (needsValue && !Object.hasOwn(op, "value")) {
      throw new PatchError(`${op.op} operation missing value`, false);
    }
    switch (op.op) {
      case "add":
        doc = addValue(doc, path, clone(op.value));
        break;
      case "remove":
        doc = removeValue(doc, path);
        break;
      case "replace":
        doc = replaceValue(doc, path, clone(op.value));
        break;
      case "move": {
        if (typeof op.from !== "string") throw new PatchError("move operation missing from", false);
        const value = getValue(doc, op.from);
        doc = removeValue(doc, op.from);
        doc = addValue(doc, path, value);
        break;
      }
      case "copy": {
        if (typeof op.from !== "string") throw new PatchError("copy operation missing from", false);
        doc = addValue(doc, path, clone(getValue(doc, op.from)));
        break;
      }
      case "test": {
        let actual: unknown;
        try {
          actual = getValue(doc, path);
        } catch {
          actual = undefined;
        }
        if (!deepEqual(actual, op.value)) {
          throw new PatchError(`testing value ${path} failed: test failed`, false);
        }
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${op.op}`, false);
    }
  }
  return doc;
}
