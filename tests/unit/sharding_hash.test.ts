// The KEP-5866 hash space: FNV-1a 64 against vectors computed once with Go's hash/fnv (the
// function k8s.io/apimachinery v0.36.3 pkg/sharding.HashField uses), the shard ranges and the
// wire selector.

import assert from "node:assert/strict";
import {
  fnv1a64,
  inRange,
  shardOfHash,
  shardRanges,
  shardSelector,
} from "../../runtime/_sharding/hash.ts";
import { test } from "../_test.ts";

// fmt.Sprintf("%016x", fnv.New64a() over []byte(value)), Go 1.25.
const VECTORS: [string, string][] = [
  ["", "cbf29ce484222325"],
  ["a", "af63dc4c8601ec8c"],
  ["default", "ebada5168620c5fe"],
  ["kube-system", "df65c7bc1d82b35e"],
  ["0b5f3a2e-1c4d-4e8f-9a7b-123456789abc", "d5c2b77bd24cfb88"],
  ["f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "bdb29fb2917eed69"],
  ["ünïcødé", "7fe9369f83b596a0"],
  ["ns-42", "7e8bbd89d8b1b517"],
];

/** The reference: FNV-1a 64 with BigInt, byte by byte. */
function reference(value: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(value)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

test("fnv1a64 matches Go's hash/fnv on the recorded vectors", () => {
  for (const [value, hash] of VECTORS) assert.equal(fnv1a64(value), hash, JSON.stringify(value));
});

test("fnv1a64 matches a BigInt reference on random uids and strings", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 500; i++) {
    const uid = crypto.randomUUID();
    assert.equal(fnv1a64(uid), reference(uid));
    const chars = Array.from(
      { length: Math.floor(random() * 40) },
      () => String.fromCodePoint(Math.floor(random() * (random() < 0.8 ? 0x80 : 0x3000))),
    ).join("");
    assert.equal(fnv1a64(chars), reference(chars), JSON.stringify(chars));
  }
});

test("shardRanges splits the 64-bit space into n contiguous ranges, as the KEP's examples", () => {
  assert.deepEqual(shardRanges(2), [
    { start: "0x0000000000000000", end: "0x8000000000000000" },
    { start: "0x8000000000000000", end: "0x10000000000000000" },
  ]);
  assert.deepEqual(shardRanges(4).map((r) => r.start), [
    "0x0000000000000000",
    "0x4000000000000000",
    "0x8000000000000000",
    "0xc000000000000000",
  ]);
  for (const n of [1, 3, 7, 12, 16, 100]) {
    const ranges = shardRanges(n);
    assert.equal(ranges.length, n);
    assert.equal(ranges[0].start, "0x0000000000000000");
    assert.equal(ranges[n - 1].end, "0x10000000000000000");
    for (let i = 1; i < n; i++) assert.equal(ranges[i].start, ranges[i - 1].end);
  }
  assert.throws(() => shardRanges(0), /shards must be an integer from 1 to 4096, got 0/);
  assert.throws(() => shardRanges(2.5), /got 2.5/);
});

test("shardOfHash finds the one range holding a hash, bounds included and excluded", () => {
  const ranges = shardRanges(12);
  for (let i = 0; i < 2000; i++) {
    const hash = fnv1a64(crypto.randomUUID());
    const shard = shardOfHash(hash, ranges);
    assert.deepEqual(ranges.map((r, j) => inRange(hash, r) ? j : -1).filter((j) => j >= 0), [
      shard,
    ]);
  }
  const four = shardRanges(4);
  assert.equal(shardOfHash("4000000000000000", four), 1, "start is inclusive");
  assert.equal(shardOfHash("3fffffffffffffff", four), 0, "end is exclusive");
  assert.equal(shardOfHash("ffffffffffffffff", four), 3);
  assert.equal(shardOfHash("0000000000000000", four), 0);
});

test("shardSelector writes the server's grammar, ranges joined with ||", () => {
  const [a, , c] = shardRanges(4);
  assert.equal(
    shardSelector("object.metadata.uid", [a, c]),
    "shardRange(object.metadata.uid, '0x0000000000000000', '0x4000000000000000') || " +
      "shardRange(object.metadata.uid, '0x8000000000000000', '0xc000000000000000')",
  );
  assert.throws(() => shardSelector("object.metadata.uid", []), /needs a range/);
});
