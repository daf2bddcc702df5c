// The body reader of every watch (`ChunkReader` in _client/lines.ts): one reused buffer for a byte
// stream, chunk by chunk for any other stream; and the watch decoders, which must keep no view of
// a chunk once `push` returns (the reader overwrites the buffer on the next read).
//
// Reproduce one seed: SEED=123 deno test --allow-all tests/unit/chunk_reader.test.ts

import assert from "node:assert/strict";
import process from "node:process";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { CHUNK_BUFFER_BYTES, ChunkReader } from "../../_client/lines.ts";
import { encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import { jsonWatchFormat, protobufWatchFormat, watch, type WatchEvent } from "../../watch.ts";
import { makePod } from "../../bench/fixture.ts";
import { rng } from "./_helpers.ts";
import { test } from "../_test.ts";

const encoder = new TextEncoder();

/** A JS byte stream (`type: "bytes"`) that enqueues the chunks, then closes (or hangs). */
function byteStream(chunks: Uint8Array[], hang = false): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk.slice());
      if (!hang) controller.close();
    },
  });
}

/** Whether this runtime's JS byte streams support BYOB readers (all three do today). */
function byobSupported(): boolean {
  try {
    byteStream([]).getReader({ mode: "byob" }).releaseLock();
    return true;
  } catch {
    return false;
  }
}

async function readAll(reader: ChunkReader): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let chunk = await reader.read(); chunk !== undefined; chunk = await reader.read()) {
    out.push(chunk.slice());
  }
  return out;
}

test("ChunkReader: a byte stream is read into one reused buffer, every chunk intact", async () => {
  const chunks = [encoder.encode("hello "), new Uint8Array(5000).fill(7), encoder.encode("end")];
  const reader = new ChunkReader(byteStream(chunks), 1024);
  if (!byobSupported()) {
    assert.equal(reader.reusesBuffer, false);
    return;
  }
  assert.equal(reader.reusesBuffer, true);
  // Every read is a view of the same 1 KiB buffer, handed from read to read: the previous view is
  // detached (its buffer transferred), so no chunk allocates a buffer of its own. Reads may join
  // queued chunks and split one larger than the buffer.
  const got: number[] = [];
  let previous: Uint8Array | undefined;
  for (let chunk = await reader.read(); chunk !== undefined; chunk = await reader.read()) {
    assert.equal(chunk.buffer.byteLength, 1024);
    assert.ok(chunk.length <= 1024);
    if (previous) assert.equal(previous.byteLength, 0, "the previous chunk's view is detached");
    got.push(...chunk);
    previous = chunk;
  }
  assert.ok(got.length > 1024 && previous !== undefined);
  assert.deepEqual(new Uint8Array(got), new Uint8Array(chunks.flatMap((c) => [...c])));
  assert.equal(await reader.read(), undefined, "the end stays the end");
});

test("ChunkReader: any other stream is read chunk by chunk, empty chunks skipped", async () => {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("a"));
      controller.enqueue(new Uint8Array(0));
      controller.enqueue(encoder.encode("bc"));
      controller.close();
    },
  });
  const reader = new ChunkReader(body);
  assert.equal(reader.reusesBuffer, false);
  assert.deepEqual(await readAll(reader), [encoder.encode("a"), encoder.encode("bc")]);
  assert.equal(await reader.read(), undefined);
});

test("ChunkReader: cancel while a read waits ends the read and cancels the body", async () => {
  for (const bytes of [true, false]) {
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({
      ...(bytes ? { type: "bytes" as const } : {}),
      start(controller) {
        controller.enqueue(encoder.encode("x"));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const reader = new ChunkReader(body);
    assert.deepEqual(await reader.read(), encoder.encode("x"));
    const pending = reader.read();
    await reader.cancel("stop");
    assert.equal(await pending, undefined, bytes ? "byte stream" : "default stream");
    assert.equal(cancelled, "stop");
  }
});

test("ChunkReader: a failed read fails every later read with the same error (a byte stream's buffer is gone)", async () => {
  for (const bytes of [true, false]) {
    const reset = new TypeError("connection reset");
    let controller!: ReadableStreamController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      ...(bytes ? { type: "bytes" as const } : {}),
      start(c) {
        controller = c as ReadableStreamController<Uint8Array>;
        c.enqueue(encoder.encode("x"));
      },
    });
    const reader = new ChunkReader(body);
    assert.deepEqual(await reader.read(), encoder.encode("x"));
    const pending = reader.read();
    controller.error(reset);
    await assert.rejects(pending, (e) => e === reset);
    await assert.rejects(
      reader.read(),
      (e) => e === reset,
      bytes ? "byte stream" : "default stream",
    );
  }
});

test("ChunkReader: a watch over a real loopback fetch body arrives whole (objects of 1 B to 200 KB)", async () => {
  const { FakeApiServer } = await import("../../testing/mod.ts");
  await using server = new FakeApiServer();
  const api = Api.v1ConfigMap().within("default");
  const sizes = [10, 3000, 70_000, 1, 200_000, 5];
  for (let i = 0; i < sizes.length; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `cm-${i}`, namespace: "default" },
      data: { v: String(i).repeat(sizes[i]) },
    });
  }
  const { url } = await server.listen();
  const client = new Client(Config.fromUrl(url), { wireFormat: "json" });
  try {
    const seen: string[] = [];
    for await (const event of watch(client, api, { timeoutSeconds: 1 })) {
      if (event.type !== "ADDED") continue;
      const data = (event.object as { data: { v: string } }).data.v;
      seen.push(
        `${event.object.metadata!.name}:${data.length}:${data === data[0].repeat(data.length)}`,
      );
      if (seen.length === sizes.length) break;
    }
    assert.deepEqual(
      seen.sort(),
      sizes.map((n, i) => `cm-${i}:${n}:true`).sort(),
    );
  } finally {
    client.close();
  }
});

/** Feeds `bytes` to a decoder in random chunks copied into one scratch buffer that is scribbled
 * over after every push, as the reused read buffer is. */
function feedThroughOneBuffer(
  decoder: { push(chunk: Uint8Array, out: WatchEvent[]): unknown; end(out: WatchEvent[]): unknown },
  bytes: Uint8Array,
  rand: () => number,
): WatchEvent[] {
  const scratch = new Uint8Array(CHUNK_BUFFER_BYTES);
  const events: WatchEvent[] = [];
  for (let at = 0; at < bytes.length;) {
    const r = rand();
    const size = Math.min(
      r < 0.3 ? 1 + Math.floor(rand() * 7) : 1 + Math.floor(rand() * CHUNK_BUFFER_BYTES),
      bytes.length - at,
    );
    scratch.set(bytes.subarray(at, at + size));
    const error = decoder.push(scratch.subarray(0, size), events);
    assert.equal(error, undefined);
    scratch.fill(0xff);
    at += size;
  }
  assert.equal(decoder.end(events), undefined);
  return events;
}

test("watch decoders keep no view of a chunk after push (JSON lines and protobuf frames, random chunking)", () => {
  const seed = Number(process.env.SEED ?? 16_2);
  for (let s = seed; s < seed + 12; s++) {
    const rand = rng(s);
    const sent = Array.from({ length: 40 }, (_, i) => {
      const pod = makePod(s * 100 + i, { resourceVersion: i + 1 }) as Record<string, unknown>;
      return { type: i % 7 === 6 ? "MODIFIED" : "ADDED", object: pod };
    });
    const json = encoder.encode(sent.map((e) => JSON.stringify(e) + "\n").join(""));
    const fromJson = feedThroughOneBuffer(jsonWatchFormat.decoder("/x"), json, rand);
    assert.deepEqual(fromJson, sent, `JSON, seed ${s}`);

    const frames = sent.map((e) => encodeWatchFrame(e.type, e.object));
    const proto = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of frames) {
      proto.set(f, at);
      at += f.length;
    }
    const decoder = protobufWatchFormat.decoder(
      "/x",
      "application/vnd.kubernetes.protobuf;stream=watch",
    );
    const fromProto = feedThroughOneBuffer(decoder, proto, rand);
    // The reference: the same frames decoded from their own, untouched buffers.
    const reference: WatchEvent[] = [];
    protobufWatchFormat.decoder("/x", "application/vnd.kubernetes.protobuf;stream=watch")
      .push(proto.slice(), reference);
    assert.equal(fromProto.length, sent.length);
    assert.deepEqual(fromProto, reference, `protobuf, seed ${s}`);
    assert.deepEqual(
      fromProto.map((e) => (e as { object: { metadata: { name: string } } }).object.metadata.name),
      sent.map((e) => (e.object.metadata as { name: string }).name),
    );
  }
});
