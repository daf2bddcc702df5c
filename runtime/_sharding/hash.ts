// Internal: the KEP-5866 hash space, shared by the server-side shard selector and the client-side
// filter that stands in for it when the server ignores the selector.
//
// k8s.io/apimachinery v0.36.3 pkg/sharding: the hash of an object is the 64-bit FNV-1a of the UTF-8
// bytes of one field (`object.metadata.uid` or `object.metadata.namespace`), written as 16 lower-
// case hex digits. A range is [start, end) over [0x0000000000000000, 0x10000000000000000); bounds
// are `0x` + exactly 16 hex digits, except the upper bound 2^64 (`0x1` + 16 zeros). A selector is
// `shardRange(<field>, '<start>', '<end>')`, ranges joined with ` || `, all on one field.
//
// Shard i of n covers [floor(i·2^64/n), floor((i+1)·2^64/n)): n equal ranges (to one unit) that
// cover the space, so every hash belongs to exactly one shard.

/** The fields the server can hash (KEP-5866, Kubernetes 1.36). */
export type ShardField = "object.metadata.uid" | "object.metadata.namespace";

/** One shard's hash range, as the `0x`-prefixed bounds the selector carries. */
export interface HashRange {
  /** Inclusive lower bound, `0x` + 16 hex digits. */
  start: string;
  /** Exclusive upper bound, `0x` + 16 hex digits, or `0x10000000000000000` (2^64). */
  end: string;
}

const TOP = "0x10000000000000000";
const encoder = new TextEncoder();

/**
 * The 64-bit FNV-1a hash of the UTF-8 bytes of `value`, as 16 lowercase hex digits (Go's
 * `fmt.Sprintf("%016x", fnv.New64a().Sum64())`). Two 32-bit halves in doubles: every product
 * stays below 2^53, so the arithmetic is exact.
 */
export function fnv1a64(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) >= 0x80) return fnv1a64Bytes(encoder.encode(value));
  }
  return fnv1a64Bytes(value); // ASCII (uids, namespaces): the char codes are the bytes
}

/** FNV-1a over bytes, or over a string known to be ASCII (its char codes are its bytes). */
function fnv1a64Bytes(bytes: Uint8Array | string): string {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  const ascii = typeof bytes === "string";
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const byte = ascii ? (bytes as string).charCodeAt(i) : (bytes as Uint8Array)[i];
    lo = (lo ^ byte) >>> 0;
    // h × 0x100000001b3 mod 2^64 = h × 0x1b3 + (lo << 40): the second term adds lo << 8 to hi.
    const low = lo * 0x1b3; // < 2^41
    const carry = Math.floor(low / 0x100000000);
    const high = hi * 0x1b3 + carry + (lo % 0x1000000) * 0x100; // < 2^42
    lo = low % 0x100000000;
    hi = high % 0x100000000;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/**
 * The `n` equal hash ranges of `n` shards, in order (see the module comment).
 *
 * @throws {RangeError} When `n` is not an integer in [1, 4096].
 */
export function shardRanges(n: number): HashRange[] {
  if (!Number.isInteger(n) || n < 1 || n > 4096) {
    throw new RangeError(`sharding: shards must be an integer from 1 to 4096, got ${n}`);
  }
  const space = 1n << 64n;
  const bound = (i: number) => {
    if (i === n) return TOP;
    return "0x" + ((space * BigInt(i)) / BigInt(n)).toString(16).padStart(16, "0");
  };
  return Array.from({ length: n }, (_, i) => ({ start: bound(i), end: bound(i + 1) }));
}

/** Whether a hash (16 hex digits, no prefix) lies in `[range.start, range.end)`. */
export function inRange(hash: string, range: HashRange): boolean {
  const h = "0x" + hash;
  return !hexLess(h, range.start) && hexLess(h, range.end);
}

/** Numeric order of two normalized `0x` bounds (16 digits, or 17 for 2^64), as the server's. */
function hexLess(a: string, b: string): boolean {
  return a.length !== b.length ? a.length < b.length : a < b;
}

/**
 * The shard of a hash among `ranges` (from {@linkcode shardRanges}): binary search on the starts.
 */
export function shardOfHash(hash: string, ranges: readonly HashRange[]): number {
  const h = "0x" + hash;
  let low = 0;
  let high = ranges.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (hexLess(h, ranges[mid].start)) high = mid - 1;
    else low = mid;
  }
  return low;
}

/**
 * The wire selector of some ranges on one field, e.g.
 * `shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')`.
 *
 * @throws {RangeError} With no range.
 */
export function shardSelector(field: ShardField, ranges: readonly HashRange[]): string {
  if (ranges.length === 0) throw new RangeError("sharding: a shard selector needs a range");
  return ranges.map((r) => `shardRange(${field}, '${r.start}', '${r.end}')`).join(" || ");
}

/** The value of `field` on an object (`""` when absent, as the server's accessor answers). */
export function fieldValue(
  object: { metadata?: { uid?: string; namespace?: string } },
  field: ShardField,
): string {
  const meta = object.metadata;
  return (field === "object.metadata.uid" ? meta?.uid : meta?.namespace) ?? "";
}
