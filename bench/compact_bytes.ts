/**
 * What keeping bytes costs per object beyond the bytes: one `Uint8Array` per object (a copy, as
 * the compact store keeps them) against views into 1 MiB slabs (an arena). Heap + external after
 * GC, per object, for 100,000 objects of 2,600 B (a pod's protobuf):
 * `deno run --v8-flags=--expose-gc bench/compact_bytes.ts slice|arena`.
 *
 * @module
 */

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const N = 100_000, SIZE = 2_600, SLAB = 1 << 20;
const mode = Deno.args[0] === "arena" ? "arena" : "slice";

function memory(): number {
  gc!();
  gc!();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

const source = new Uint8Array(64 * 1024).map((_, i) => i & 255);
const keep: Uint8Array[] = new Array(N);
const base = memory();
if (mode === "slice") {
  for (let i = 0; i < N; i++) keep[i] = source.slice(i % 1000, i % 1000 + SIZE);
} else {
  let slab = new Uint8Array(SLAB);
  let at = 0;
  for (let i = 0; i < N; i++) {
    if (at + SIZE > SLAB) {
      slab = new Uint8Array(SLAB);
      at = 0;
    }
    slab.set(source.subarray(i % 1000, i % 1000 + SIZE), at);
    keep[i] = slab.subarray(at, at + SIZE);
    at += SIZE;
  }
}
const perObject = (memory() - base) / N;
console.log(
  `${mode}: ${perObject.toFixed(0)} B per object, ${(perObject - SIZE).toFixed(0)} B beyond ` +
    `its ${SIZE} bytes (${keep.length} kept)`,
);
