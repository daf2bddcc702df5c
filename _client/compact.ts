// Internal: the compact store's codec. With `store: "compact"` a Reflector keeps each object of a
// built-in kind as the protobuf bytes it came in plus a decoded metadata header (a
// `CompactObject`, made by the compact decoders of `_client/protobuf/decode.ts` during the watch
// and the list), and decodes the full object when somebody reads it: `get`, `read()` iteration,
// `byIndex`, a change or an event. Objects that arrived as JSON (custom resources, a server that
// answered JSON) are stored as they are. Not exported from the package.
//
// What reads see is the plain object the objects store would hold (deep-equal), transformed by
// the Reflector's transform. A small bounded cache of recently decoded objects (by key) gives a
// reconcile that reads the same object twice the same object and saves the second decode.

import { getLogger } from "@logtape/logtape";
import { CompactObject, decodeCompactLazy, HEADER_FIELDS } from "./protobuf/decode.ts";
import { acceptFor, type WireFormat } from "./protobuf/negotiate.ts";
import type { CacheChange, IndexFunction } from "./store.ts";

export { CompactObject } from "./protobuf/decode.ts";

const log = getLogger(["kube", "reflector"]);

/** How many decoded objects the codec keeps by default (the most recently read ones). */
export const DEFAULT_DECODED_CACHE = 256;

/**
 * Whether reads of a kind come as protobuf, so that the compact store can keep their bytes.
 *
 * @param wireFormat The client's wire format.
 * @param apiVersion The group version.
 * @param kind The kind.
 * @returns True when both the kind and its list have a protobuf decoder and the client asks for
 *   protobuf.
 */
export function compactable(
  wireFormat: WireFormat | undefined,
  apiVersion: string,
  kind: string,
): boolean {
  return acceptFor(wireFormat, apiVersion, kind) !== undefined &&
    acceptFor(wireFormat, apiVersion, `${kind}List`) !== undefined;
}

const HEADER_KEYS = new Set<string | symbol>(HEADER_FIELDS);

/** Decodes the entries of a compact store: a cached object is a `CompactObject` or a plain object. */
export class CompactCodec<T> {
  #transform: ((object: T) => T) | undefined;
  #max: number;
  /** key → the entry decoded and its object; Map order is the read order (LRU). */
  #recent = new Map<string, { entry: unknown; object: T }>();

  /**
   * Creates a codec.
   *
   * @param transform Applied to every decoded object (the Reflector's transform).
   * @param cacheSize How many decoded objects to keep (0: none).
   */
  constructor(transform: ((object: T) => T) | undefined, cacheSize = DEFAULT_DECODED_CACHE) {
    this.#transform = transform;
    this.#max = Math.max(0, Math.floor(cacheSize));
  }

  /** How many decoded objects are kept (at most the cache size). */
  get cached(): number {
    return this.#recent.size;
  }

  /** Sets the transform (before the first sync, as the Reflector's). */
  set transform(fn: ((object: T) => T) | undefined) {
    this.#transform = fn;
    this.#recent.clear();
  }

  /**
   * The object an entry stands for.
   *
   * @param key The entry's key, for the error and the cache.
   * @param entry The stored entry.
   * @param cache Whether to use and fill the cache of recent objects (not for replaced entries).
   * @returns The plain object.
   * @throws {TypeError} When the bytes do not decode (a bug: they decoded at sync), naming the key.
   */
  decode(key: string, entry: T, cache = true): T {
    if (!(entry instanceof CompactObject)) return entry;
    const recent = this.#recent;
    if (cache && this.#max > 0) {
      const hit = recent.get(key);
      if (hit !== undefined && hit.entry === entry) {
        recent.delete(key);
        recent.set(key, hit);
        return hit.object;
      }
    }
    const fail = (e: Error) =>
      new TypeError(
        `The cached ${entry.kind} ${key} cannot be decoded: ${e.message}. It decoded when it ` +
          "arrived, so this is a bug of the protobuf decoder: please report it; the other " +
          "objects are still served, and a relist replaces this one",
        { cause: e },
      );
    let object: T;
    try {
      // The top-level parts (metadata, spec, status) are decoded when first read.
      object = decodeCompactLazy(entry, fail) as T;
    } catch (e) {
      throw fail(e as Error);
    }
    if (this.#transform !== undefined) object = this.#transform(object);
    if (cache && this.#max > 0) {
      recent.delete(key);
      recent.set(key, { entry, object });
      if (recent.size > this.#max) recent.delete(recent.keys().next().value!);
    }
    return object;
  }

  /**
   * Like {@linkcode CompactCodec.prototype.decode}, but a failure is logged and answers
   * `undefined` (iteration and `byIndex` keep serving the other objects).
   */
  tryDecode(key: string, entry: T): T | undefined {
    try {
      return this.decode(key, entry);
    } catch (e) {
      log.error("{error}", { key, error: (e as Error).message });
      return undefined;
    }
  }

  /**
   * A read-only view of the store's view that decodes what it answers.
   *
   * @param inner The store's view (of entries).
   * @returns The decoding view.
   */
  view(inner: ReadonlyMap<string, T>): ReadonlyMap<string, T> {
    return new DecodingView(inner, this);
  }

  /**
   * A change whose `object` and `old` are decoded when first read (a change nobody reads costs
   * no decoding). The properties are own and enumerable: the change deep-equals a plain one.
   *
   * @param change The change of entries.
   * @param key The key.
   * @returns The change of objects.
   */
  change(change: CacheChange<T>, key: string): CacheChange<T> {
    const out = { type: change.type } as CacheChange<T>;
    this.#lazy(out, "object", change.object, key, change.type !== "DELETED");
    if (change.old !== undefined) this.#lazy(out, "old", change.old, key, false);
    return out;
  }

  /**
   * A watch event (for `events()`) whose object is decoded when first read.
   *
   * @param type The event type.
   * @param entry The stored entry.
   * @param key The key.
   * @returns The event.
   */
  event<E extends { type: string; object: T }>(type: E["type"], entry: T, key: string): E {
    const out = { type } as E;
    this.#lazy(out, "object", entry, key, type !== "DELETED");
    return out;
  }

  #lazy<O extends object>(out: O, name: string, entry: T, key: string, cache: boolean): void {
    if (!(entry instanceof CompactObject)) {
      (out as Record<string, unknown>)[name] = entry;
      return;
    }
    Object.defineProperty(out, name, {
      get: () => {
        const value = this.decode(key, entry, cache);
        Object.defineProperty(out, name, {
          value,
          writable: true,
          enumerable: true,
          configurable: true,
        });
        return value;
      },
      set: (value: T) => {
        Object.defineProperty(out, name, {
          value,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      },
      enumerable: true,
      configurable: true,
    });
  }

  /**
   * Wraps an index function: it sees the object through a view that answers `apiVersion`, `kind`
   * and the header fields of `metadata` without decoding, and decodes the object (once per call)
   * for anything else. With a transform, the function sees the transformed object.
   *
   * @param fn The user's index function.
   * @param keyOf The key of an entry, for errors.
   * @returns The index function over entries.
   */
  index(fn: IndexFunction<T>, keyOf: (entry: T) => string): IndexFunction<T> {
    return (entry) => {
      if (!(entry instanceof CompactObject)) return fn(entry);
      let full: T | undefined;
      const object = () => full ??= this.decode(keyOf(entry), entry, false);
      if (this.#transform !== undefined) return fn(object());
      return fn(headerView(entry, object));
    };
  }
}

/** An object seen through its header: the header fields without decoding, the rest decoded. */
function headerView<T>(entry: CompactObject, full: () => T): T {
  const whole = () => full() as Record<string | symbol, unknown>;
  const metadata = () => whole().metadata as Record<string | symbol, unknown>;
  const meta = new Proxy(entry.metadata, {
    get: (target, p) => HEADER_KEYS.has(p) ? target[p as string] : Reflect.get(metadata(), p),
    has: (_, p) => Reflect.has(metadata(), p),
    ownKeys: () => Reflect.ownKeys(metadata()),
    getOwnPropertyDescriptor: (_, p) => Reflect.getOwnPropertyDescriptor(metadata(), p),
  });
  return new Proxy({} as Record<string | symbol, unknown>, {
    get: (_, p) => {
      if (p === "apiVersion") return entry.apiVersion;
      if (p === "kind") return entry.kind;
      if (p === "metadata") return meta;
      return Reflect.get(whole(), p);
    },
    has: (_, p) => Reflect.has(whole(), p),
    ownKeys: () => Reflect.ownKeys(whole()),
    getOwnPropertyDescriptor: (_, p) => Reflect.getOwnPropertyDescriptor(whole(), p),
  }) as T;
}

/** A read-only map view that decodes the entries of another. */
class DecodingView<T> implements ReadonlyMap<string, T> {
  #inner: ReadonlyMap<string, T>;
  #codec: CompactCodec<T>;

  constructor(inner: ReadonlyMap<string, T>, codec: CompactCodec<T>) {
    this.#inner = inner;
    this.#codec = codec;
  }

  get size(): number {
    return this.#inner.size;
  }

  get(key: string): T | undefined {
    const entry = this.#inner.get(key);
    return entry === undefined ? undefined : this.#codec.decode(key, entry);
  }

  has(key: string): boolean {
    return this.#inner.has(key);
  }

  forEach(fn: (value: T, key: string, map: ReadonlyMap<string, T>) => void, thisArg?: unknown) {
    for (const [key, value] of this) fn.call(thisArg, value, key, this);
  }

  entries(): MapIterator<[string, T]> {
    return this.#entries() as unknown as MapIterator<[string, T]>;
  }

  keys(): MapIterator<string> {
    return this.#inner.keys();
  }

  values(): MapIterator<T> {
    return this.#values() as unknown as MapIterator<T>;
  }

  [Symbol.iterator](): MapIterator<[string, T]> {
    return this.entries();
  }

  *#entries(): Generator<[string, T]> {
    const codec = this.#codec;
    for (const [key, entry] of this.#inner) {
      const object = codec.tryDecode(key, entry);
      if (object !== undefined) yield [key, object];
    }
  }

  *#values(): Generator<T> {
    const codec = this.#codec;
    for (const [key, entry] of this.#inner) {
      const object = codec.tryDecode(key, entry);
      if (object !== undefined) yield object;
    }
  }
}
