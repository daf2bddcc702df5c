// Internal: the cache of one collection — objects by key with secondary indexes — usable without
// any watch loop. Writers are the loop consumers (the Reflector; a Controller may share one
// Reflector's store); readers get a read-only view. A relist builds the new content aside and
// `replace` swaps map and indexes in one step, so no reader ever sees half a list. Imports no
// other module of the library.

import { getLogger } from "@logtape/logtape";

const log = getLogger(["kube", "reflector"]);

/** A function that lists the values under which an object is indexed. */
export type IndexFunction<T> = (object: T) => string[];

/** A change of the cache, from {@linkcode Reflector.prototype.changes}. */
export interface CacheChange<T> {
  /** ADDED: a new key; MODIFIED: a new resource version of a cached object; DELETED: gone. */
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** The new object; for DELETED, its final state (or the last cached one after a re-list). */
  object: T;
  /** The object cached before the change (MODIFIED, and DELETED when it was cached). */
  old?: T;
}

/** What readers of a store (a Reflector's users, a Controller) may do with it. */
export interface StoreReader<T> {
  /** The current content, a read-only live view keyed `namespace/name` (or `name`). */
  readonly view: ReadonlyMap<string, T>;
  /** One object by key. */
  get(key: string): T | undefined;
  /** The objects indexed under a value (a new array); throws for an unknown index. */
  byIndex(name: string, value: string): T[];
}

interface IndexData<T> {
  name: string;
  fn: IndexFunction<T>;
  /** value → keys */
  entries: Map<string, Set<string>>;
  /** The values never change while the key stays the same (the namespace index). */
  fixed?: boolean;
}

/** The result of {@linkcode Store.upsert}. */
export const UNCHANGED: unique symbol = Symbol("unchanged");

/** Objects by key, with indexes kept in step. */
export class Store<T extends { metadata?: { namespace?: string; resourceVersion?: string } }>
  implements StoreReader<T> {
  #map = new Map<string, T>();
  #indexes = new Map<string, IndexData<T>>();
  readonly view: ReadonlyMap<string, T>;

  /** Creates an empty store with the built-in `namespace` index. */
  constructor() {
    this.view = new StoreView(() => this.#map);
    this.#indexes.set("namespace", {
      name: "namespace",
      fn: (object) => object.metadata?.namespace ? [object.metadata.namespace] : [],
      entries: new Map(),
      // The namespace is part of the key: a MODIFIED object cannot move.
      fixed: true,
    });
  }

  /** How many objects are cached. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * Adds (or replaces) an index and builds it over the current content.
   *
   * @param name The index name.
   * @param fn Lists the values an object is indexed under.
   */
  addIndex(name: string, fn: IndexFunction<T>): void {
    const data: IndexData<T> = { name, fn, entries: new Map() };
    for (const [key, object] of this.#map) addToIndex(data, key, object);
    this.#indexes.set(name, data);
  }

  get(key: string): T | undefined {
    return this.#map.get(key);
  }

  byIndex(name: string, value: string): T[] {
    const data = this.#indexes.get(name);
    if (!data) {
      throw new TypeError(
        `No index ${JSON.stringify(name)}: add it with .index(name, fn); known: ${
          [...this.#indexes.keys()].join(", ")
        }`,
      );
    }
    const keys = data.entries.get(value);
    const out: T[] = [];
    if (!keys) return out;
    for (const key of keys) {
      const object = this.#map.get(key);
      if (object !== undefined) out.push(object);
    }
    return out;
  }

  /**
   * Stores an object under a key and updates the indexes. An object with the same (non-empty)
   * resource version as the cached one is not stored again.
   *
   * @param key The key.
   * @param object The object.
   * @returns The object cached before (undefined when the key is new), or
   *   {@linkcode UNCHANGED} when nothing changed.
   */
  upsert(key: string, object: T): T | undefined | typeof UNCHANGED {
    const old = this.#map.get(key);
    const rv = object.metadata?.resourceVersion;
    if (old !== undefined && rv !== undefined && old.metadata?.resourceVersion === rv) {
      return UNCHANGED;
    }
    this.#map.set(key, object);
    for (const data of this.#indexes.values()) {
      if (old === undefined) addToIndex(data, key, object);
      else if (!data.fixed) reindex(data, key, old, object);
    }
    return old;
  }

  /**
   * Removes a key and its index entries.
   *
   * @param key The key.
   * @returns The object that was cached, if any.
   */
  remove(key: string): T | undefined {
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      for (const data of this.#indexes.values()) removeFromIndex(data, key, old);
    }
    return old;
  }

  /**
   * Replaces the whole content at once (a relist): builds the indexes of `next` aside, then swaps
   * map and indexes in one step. The store takes ownership of `next`.
   *
   * @param next The new content.
   * @returns The previous content (no longer the store's).
   */
  replace(next: Map<string, T>): Map<string, T> {
    const previous = this.#map;
    const indexes = new Map<string, IndexData<T>>();
    for (const [name, data] of this.#indexes) {
      const fresh: IndexData<T> = {
        name: data.name,
        fn: data.fn,
        entries: new Map(),
        fixed: data.fixed,
      };
      for (const [key, object] of next) addToIndex(fresh, key, object);
      indexes.set(name, fresh);
    }
    // The swap itself: nothing can observe the state between these assignments.
    this.#map = next;
    this.#indexes = indexes;
    return previous;
  }
}

/**
 * The changes from one content to the next: ADDED, MODIFIED (new resourceVersion), DELETED.
 *
 * @param previous The old content.
 * @param next The new content.
 * @param changes Receives the changes, next's order first, then the deletions.
 */
export function diffContent<T extends { metadata?: { resourceVersion?: string } }>(
  previous: ReadonlyMap<string, T>,
  next: ReadonlyMap<string, T>,
  changes: CacheChange<T>[],
): void {
  for (const [key, object] of next) {
    const old = previous.get(key);
    if (old === undefined) changes.push({ type: "ADDED", object });
    else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
      changes.push({ type: "MODIFIED", object, old });
    }
  }
  for (const [key, old] of previous) {
    if (!next.has(key)) changes.push({ type: "DELETED", object: old, old });
  }
}

/**
 * The values an object is indexed under. A user's index function that throws (or returns
 * something that is not an array) must not break the watch loop or lose cached state: the
 * object is then indexed under no value, and the failure is logged with the index and the key.
 */
function valuesOf<T>(data: IndexData<T>, key: string, object: T): readonly string[] {
  try {
    const values = data.fn(object);
    if (Array.isArray(values)) return values;
    throw new TypeError(`returned ${values === null ? "null" : typeof values}, not an array`);
  } catch (error) {
    log.error("Index {index} failed for {key}: {error}; the object is indexed under no value", {
      index: data.name,
      key,
      error: error instanceof Error ? error.message : String(error),
    });
    return [];
  }
}

function addToIndex<T>(data: IndexData<T>, key: string, object: T): void {
  for (const value of valuesOf(data, key, object)) {
    let keys = data.entries.get(value);
    if (!keys) data.entries.set(value, keys = new Set());
    keys.add(key);
  }
}

/** Moves a key from the old object's index values to the new one's, touching only differences. */
function reindex<T>(data: IndexData<T>, key: string, old: T, object: T): void {
  const before = valuesOf(data, key, old);
  const after = valuesOf(data, key, object);
  if (before.length === after.length && before.every((v, i) => v === after[i])) return;
  for (const value of before) {
    if (after.includes(value)) continue;
    const keys = data.entries.get(value);
    if (!keys) continue;
    keys.delete(key);
    if (keys.size === 0) data.entries.delete(value);
  }
  for (const value of after) {
    if (before.includes(value)) continue;
    let keys = data.entries.get(value);
    if (!keys) data.entries.set(value, keys = new Set());
    keys.add(key);
  }
}

function removeFromIndex<T>(data: IndexData<T>, key: string, object: T): void {
  for (const value of valuesOf(data, key, object)) {
    const keys = data.entries.get(value);
    if (!keys) continue;
    keys.delete(key);
    if (keys.size === 0) data.entries.delete(value);
  }
}

/** A read-only view of whichever map is current. */
class StoreView<T> implements ReadonlyMap<string, T> {
  #current: () => Map<string, T>;

  constructor(current: () => Map<string, T>) {
    this.#current = current;
  }

  get size(): number {
    return this.#current().size;
  }

  get(key: string): T | undefined {
    return this.#current().get(key);
  }

  has(key: string): boolean {
    return this.#current().has(key);
  }

  forEach(fn: (value: T, key: string, map: ReadonlyMap<string, T>) => void, thisArg?: unknown) {
    for (const [key, value] of this.#current()) fn.call(thisArg, value, key, this);
  }

  entries(): MapIterator<[string, T]> {
    return this.#current().entries();
  }

  keys(): MapIterator<string> {
    return this.#current().keys();
  }

  values(): MapIterator<T> {
    return this.#current().values();
  }

  [Symbol.iterator](): MapIterator<[string, T]> {
    return this.#current()[Symbol.iterator]();
  }
}
