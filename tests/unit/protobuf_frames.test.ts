// Randomized: the protobuf watch framing (4-byte big-endian length + WatchEvent) under random
// chunking, truncation and a 10 MB object. For each seed a stream of events is encoded, cut into
// random chunks (1 byte to 64 KiB, boundaries inside length prefixes too), decoded frame by frame,
// and must give exactly the events sent; a stream cut short gives exactly the events before the
// cut and a RangeError that says the stream ended inside a frame.
//
// Reproduce one seed: SEED=123 deno test --allow-all tests/unit/protobuf_frames.test.ts

import assert from "node:assert/strict";
import { FrameDecoder, REUSED_FRAME_BYTES } from "../../_client/protobuf/frames.ts";
import { decodeObject, decodeWatchEvent } from "../../_client/protobuf/decode.ts";
import { encodeObject, encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import { makePod } from "../../bench/fixture.ts";
import { test } from "../_test.ts";
import process from "node:process";
import { rng } from "./_helpers.ts";

interface Sent {
  type: string;
  object: Record<string, unknown>;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function chunks(bytes: Uint8Array, rand: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const r = rand();
    const size = r < 0.3 ? 1 + Math.floor(rand() * 5) : 1 + Math.floor(rand() * 65536);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

function decodeAll(parts: Uint8Array[]): { events: Sent[]; error?: unknown } {
  const frames = new FrameDecoder();
  const out: Uint8Array[] = [];
  const events: Sent[] = [];
  try {
    for (const part of parts) {
      frames.push(part, out);
      for (const f of out) events.push(decodeWatchEvent(f));
      out.length = 0;
    }
    frames.end();
  } catch (error) {
    return { events, error };
  }
  return { events };
}

function stream(seed: number): { sent: Sent[]; frames: Uint8Array[] } {
  const rand = rng(seed);
  const sent: Sent[] = [];
  const frames: Uint8Array[] = [];
  const n = 5 + Math.floor(rand() * 40);
  for (let i = 0; i < n; i++) {
    const r = rand();
    const type = r < 0.3 ? "ADDED" : r < 0.8 ? "MODIFIED" : r < 0.95 ? "DELETED" : "BOOKMARK";
    const object = type === "BOOKMARK"
      ? { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: String(1000 + i) } }
      : makePod(Math.floor(rand() * 50), { resourceVersion: 1000 + i, revision: i });
    const frame = encodeWatchFrame(type, object);
    frames.push(frame);
    // What the decoder must give: the canonical JSON shape of the object.
    sent.push({ type, object: decodeObject(encodeObject(object)) });
  }
  return { sent, frames };
}

const seeds = process.env.SEED
  ? [Number(process.env.SEED)]
  : Array.from({ length: Number(process.env.SEEDS ?? 60) }, (_, i) => i + 1);

test("randomized: protobuf frames split at random points decode to exactly the events", () => {
  for (const seed of seeds) {
    const { sent, frames } = stream(seed);
    const bytes = concat(frames);
    const { events, error } = decodeAll(chunks(bytes, rng(seed ^ 0xabc)));
    assert.equal(error, undefined, `seed ${seed}: ${error}`);
    assert.deepEqual(events, sent, `seed ${seed}`);
  }
});

test("randomized: a stream cut inside a frame gives the events before it, then a RangeError", () => {
  for (const seed of seeds) {
    const { sent, frames } = stream(seed);
    const bytes = concat(frames);
    const rand = rng(seed ^ 0x5eed);
    const cut = 1 + Math.floor(rand() * (bytes.length - 1));
    // The frames that end at or before the cut are complete.
    let complete = 0;
    for (let end = 0, i = 0; i < frames.length; i++) {
      end += frames[i].length;
      if (end <= cut) complete = i + 1;
    }
    const boundary = frames.slice(0, complete).reduce((n, f) => n + f.length, 0) === cut;
    const { events, error } = decodeAll(chunks(bytes.subarray(0, cut), rand));
    assert.deepEqual(events, sent.slice(0, complete), `seed ${seed}`);
    if (boundary) {
      assert.equal(error, undefined, `seed ${seed}`);
    } else {
      assert.ok(error instanceof RangeError, `seed ${seed}: ${error}`);
      assert.match(error.message, /the watch stream ended inside a frame/);
    }
  }
});

test("a 10 MB object in one frame, fed in 64 KiB chunks, among small ones", () => {
  const big = {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { name: "big", namespace: "default", resourceVersion: "7" },
    data: { blob: "x".repeat(10 * 1024 * 1024), "é": "ünïcødé ✓" },
  };
  const small = makePod(1, { resourceVersion: 8 });
  const bytes = concat([
    encodeWatchFrame("ADDED", small),
    encodeWatchFrame("ADDED", big),
    encodeWatchFrame("DELETED", small),
  ]);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 65536) parts.push(bytes.subarray(at, at + 65536));
  const { events, error } = decodeAll(parts);
  assert.equal(error, undefined);
  assert.deepEqual(events.map((e) => e.type), ["ADDED", "ADDED", "DELETED"]);
  assert.deepEqual(events[1].object, big);
});

test("a frame length beyond the limit is a RangeError, not an allocation", () => {
  const frames = new FrameDecoder(1024);
  assert.throws(
    () => frames.push(new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2]), []),
    /watch frame of 2147483647 bytes exceeds the limit of 1024 bytes/,
  );
  // A length prefix split across chunks, then the end of the stream.
  const split = new FrameDecoder();
  const out: Uint8Array[] = [];
  split.push(new Uint8Array([0, 0]), out);
  assert.throws(() => split.end(), /ended inside a frame's length \(2 of 4 bytes\)/);
});

test("frames split across chunks are assembled in two reused buffers, bigger ones in their own", () => {
  const frame = (n: number, fill: number) => {
    const f = new Uint8Array(4 + n).fill(fill);
    new DataView(f.buffer).setUint32(0, n);
    return f;
  };
  // 100 frames of 3,000 bytes in 4,096-byte chunks: almost every frame spans two chunks, and a
  // chunk often ends one frame, holds none whole, and starts the next.
  const stream = concat(Array.from({ length: 100 }, (_, i) => frame(3000, i)));
  const frames = new FrameDecoder();
  const out: Uint8Array[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let seen = 0;
  for (let at = 0; at < stream.length; at += 4096) {
    frames.push(stream.subarray(at, at + 4096), out);
    for (const f of out) {
      assert.equal(f.length, 3000);
      assert.ok(f.every((b) => b === seen), `frame ${seen} intact`);
      if (f.buffer !== stream.buffer) buffers.add(f.buffer);
      seen++;
    }
    out.length = 0;
  }
  frames.end();
  assert.equal(seen, 100);
  assert.equal(buffers.size, 2, "two assembly buffers, alternating");
  // A frame larger than the reused buffers: a buffer of exactly its size, not kept.
  const big = frame(REUSED_FRAME_BYTES + 1, 9);
  frames.push(big.subarray(0, 1000), out);
  frames.push(big.subarray(1000), out);
  assert.equal(out.length, 1);
  assert.equal(out[0].buffer.byteLength, REUSED_FRAME_BYTES + 1);
  assert.ok(!buffers.has(out[0].buffer));
});
