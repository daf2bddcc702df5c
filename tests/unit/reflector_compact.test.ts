// The compact store (`ReflectorOptions.store: "compact"`): over the same protobuf streams (watch
// list, paged list, watch events) a compact Reflector answers reads deep-equal to the objects
// store (read(), get, byIndex on header fields and on decoded fields, changes, events); reads
// decode (no decoded cache: a new object per read; with it: the same object); a stored object
// whose body no longer decodes is an error naming its key while the others are served; churn
// keeps the store and the decoded cache bounded.

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import {
  type CacheChange,
  Reflector,
  type ReflectorOptions,
  stripManagedFields,
} from "../../reflector.ts";
import { encodeMessage, encodeObject, encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import {
  type CompactObject,
  decodeCompact,
  decodeObject,
  decodeWatchEventCompact,
} from "../../_client/protobuf/decode.ts";
import { CompactCodec } from "../../_client/compact.ts";
import { makePod } from "../../bench/fixture.ts";
import { test } from "../_test.ts";

const PB = "application/vnd.kubernetes.protobuf";

/** A client whose every request is answered by `respond` (a fresh Response per request). */
function stub(respond: (url: URL) => Response): Client {
  return new Client(Config.fromUrl("http://127.0.0.1:1"), {
    wireFormat: "protobuf",
    fetch: (input: Request | URL | string, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(input, init);
      return Promise.resolve(respond(new URL(request.url)));
    },
  });
}

function frames(chunks: Uint8Array[]): Response {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": `${PB};stream=watch` } });
}

/** A pod as the server's JSON would parse (the decoder's contract). */
const pod = (i: number, rv: number) => ({
  ...decodeObject(encodeObject(makePod(i, { resourceVersion: rv }))),
});

const endBookmark = (rv: number) =>
  encodeWatchFrame("BOOKMARK", {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { resourceVersion: String(rv), annotations: { "k8s.io/initial-events-end": "true" } },
  });

/** Frames split into chunks of `size` bytes (objects cross chunk borders). */
function rechunk(parts: Uint8Array[], size: number): Uint8Array[] {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  const out: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size));
  return out;
}

interface Outcome {
  read: [string, KubeObject][];
  changes: CacheChange<KubeObject>[];
  byTier: string[];
  byNode: string[];
  get: KubeObject | undefined;
  reflector: Reflector<KubeObject>;
}

/** Runs a Reflector over one scripted server until `until` changes arrived. */
async function follow(
  options: ReflectorOptions,
  respond: (url: URL, nth: number) => Response,
  until: number,
): Promise<Outcome> {
  let nth = 0;
  const client = stub((url) => respond(url, nth++));
  const reflector = new Reflector<KubeObject>(client, Api.v1Pod() as Api<KubeObject>, options)
    .index("tier", (o) => [String(o.metadata?.labels?.tier)])
    .index("node", (o) => [String((o as { spec?: { nodeName?: string } }).spec?.nodeName)]);
  const stop = new AbortController();
  const changes = reflector.changes({ signal: stop.signal });
  const running = reflector.run({ signal: stop.signal });
  const seen: CacheChange<KubeObject>[] = [];
  for await (const change of changes) {
    seen.push(change);
    if (seen.length === until) break;
  }
  const first = pod(1, 0).metadata as { name: string; namespace: string };
  const outcome = {
    read: [...reflector.read()],
    changes: seen,
    byTier: reflector.byIndex("tier", "frontend").map((o) => o.metadata!.name!).sort(),
    byNode: reflector.byIndex("node", String((pod(4, 0).spec as { nodeName: string }).nodeName))
      .map((o) => o.metadata!.name!),
    get: reflector.get(first.name, first.namespace),
    reflector,
  };
  stop.abort();
  await running;
  client.close();
  return outcome;
}

const watchListScript = (url: URL, nth: number): Response => {
  if (url.searchParams.get("watch") !== "1") throw new Error("no list expected");
  if (nth > 0) return frames([]); // re-watches after the stream ends
  const parts = [
    ...Array.from({ length: 12 }, (_, i) => encodeWatchFrame("ADDED", pod(i, 10 + i))),
    endBookmark(30),
    encodeWatchFrame("MODIFIED", pod(3, 31)),
    encodeWatchFrame("DELETED", pod(5, 32)),
    encodeWatchFrame("ADDED", pod(40, 33)),
  ];
  return frames(rechunk(parts, 1000));
};

const listScript = (url: URL, nth: number): Response => {
  if (url.searchParams.get("watch") !== "1") {
    const page = nth === 0 ? 0 : 1;
    const items = Array.from({ length: 6 }, (_, i) => pod(page * 6 + i, 10 + page * 6 + i));
    for (const item of items) {
      delete item.kind;
      delete item.apiVersion;
    }
    const body = encodeObject({
      kind: "PodList",
      apiVersion: "v1",
      metadata: { resourceVersion: "30", ...(page === 0 ? { continue: "next" } : {}) },
      items,
    });
    return new Response(body, { headers: { "content-type": PB } });
  }
  if (nth > 2) return frames([]);
  return frames([
    encodeWatchFrame("MODIFIED", pod(3, 31)),
    encodeWatchFrame("DELETED", pod(5, 32)),
    encodeWatchFrame("ADDED", pod(40, 33)),
  ]);
};

for (
  const [name, script, options] of [
    ["watch list", watchListScript, { initialSync: "watchList" }],
    ["paged list", listScript, { initialSync: "list", pageSize: 6 }],
  ] as const
) {
  test(`compact store over a ${name}: reads deep-equal the objects store's`, async () => {
    const objects = await follow({ ...options }, script, 15);
    const compact = await follow({ ...options, store: "compact" }, script, 15);
    assert.equal(compact.read.length, 12);
    assert.deepEqual(compact.read, objects.read);
    assert.deepEqual(compact.changes, objects.changes);
    assert.deepEqual(compact.changes.map((c) => c.type).slice(12), [
      "MODIFIED",
      "DELETED",
      "ADDED",
    ]);
    assert.deepEqual(compact.byTier, objects.byTier);
    assert.ok(compact.byTier.length > 0);
    assert.deepEqual(compact.byNode, objects.byNode);
    assert.equal(compact.byNode.length, 1);
    assert.deepEqual(compact.get, objects.get);
    assert.deepEqual(compact.get, { ...pod(1, 11) });
    // A full JSON round trip (the lazy fieldsV1 included) gives the same text (a list's items
    // get apiVersion and kind last, as the objects store's, which is only an order).
    if (name === "watch list") {
      assert.equal(JSON.stringify(compact.read), JSON.stringify(objects.read));
    }
  });
}

test("compact store: a read decodes (a new object per read without the decoded cache)", async () => {
  const cached = await follow({ initialSync: "watchList", store: "compact" }, watchListScript, 15);
  const uncached = await follow(
    { initialSync: "watchList", store: "compact", decodedCacheSize: 0 },
    watchListScript,
    15,
  );
  const key = cached.read[0][0];
  assert.equal(cached.reflector.read().get(key), cached.reflector.read().get(key));
  const a = uncached.reflector.read().get(key);
  const b = uncached.reflector.read().get(key);
  assert.notEqual(a, b);
  // Lazily: the status is decoded only when read (an accessor until then).
  assert.equal(a?.metadata?.name, key.split("/")[1]);
  assert.equal(typeof Object.getOwnPropertyDescriptor(a, "status")?.get, "function");
  assert.deepEqual(a, b);
  assert.equal(Object.getOwnPropertyDescriptor(a, "status")?.get, undefined);
  // The objects store hands out its one object.
  const objects = await follow({ initialSync: "watchList" }, watchListScript, 15);
  assert.equal(objects.reflector.read().get(key), objects.reflector.read().get(key));
});

test("compact store: the transform runs on every decoded object", async () => {
  let nth = 0;
  const client = stub((url) => watchListScript(url, nth++));
  const reflector = new Reflector(client, Api.v1Pod(), {
    initialSync: "watchList",
    store: "compact",
  }).transform((o) => {
    delete o.metadata?.managedFields;
    (o.metadata!.labels ??= {}).seen = "yes";
    return o;
  }).index("seen", (o) => [String(o.metadata?.labels?.seen)]);
  await reflector.init();
  const all = [...reflector.read().values()];
  assert.equal(all.length, 12);
  assert.ok(all.every((o) => o.metadata?.labels?.seen === "yes" && !o.metadata.managedFields));
  assert.equal(reflector.byIndex("seen", "yes").length, 12);
  assert.equal(reflector.events().length, 12);
  client.close();
});

/** A Pod message whose metadata decodes but whose spec is cut (a varint claims 5 bytes, has 1). */
function brokenPodFrame(i: number, rv: number): Uint8Array {
  const { metadata } = pod(i, rv);
  const meta = encodeMessage("meta/v1.ObjectMeta", metadata as Record<string, unknown>);
  const message = new Uint8Array([
    0x0a,
    meta.length & 0x7f | 0x80,
    meta.length >> 7,
    ...meta,
    0x12,
    3,
    0x0a,
    5,
    0x41,
  ]);
  const typeMeta = new Uint8Array([0x0a, 2, 0x76, 0x31, 0x12, 3, 0x50, 0x6f, 0x64]); // v1, Pod
  const unknown = new Uint8Array([
    0x6b,
    0x38,
    0x73,
    0x00,
    0x0a,
    typeMeta.length,
    ...typeMeta,
    0x12,
    message.length & 0x7f | 0x80,
    message.length >> 7,
    ...message,
  ]);
  const raw = new Uint8Array([0x0a, unknown.length & 0x7f | 0x80, unknown.length >> 7, ...unknown]);
  const event = new Uint8Array([
    0x0a,
    5,
    ...new TextEncoder().encode("ADDED"),
    0x12,
    raw.length & 0x7f | 0x80,
    raw.length >> 7,
    ...raw,
  ]);
  const frame = new Uint8Array(4 + event.length);
  new DataView(frame.buffer).setUint32(0, event.length);
  frame.set(event, 4);
  return frame;
}

test("compact store: an object that fails to decode later is an error naming its key; the others are served", async () => {
  const client = stub(() =>
    frames([
      encodeWatchFrame("ADDED", pod(1, 10)),
      brokenPodFrame(2, 11),
      encodeWatchFrame("ADDED", pod(3, 12)),
      endBookmark(12),
    ])
  );
  const reflector = new Reflector(client, Api.v1Pod(), {
    initialSync: "watchList",
    store: "compact",
  });
  await reflector.init();
  assert.equal(reflector.read().size, 3);
  const broken = pod(2, 11).metadata as { name: string; namespace: string };
  const key = `${broken.namespace}/${broken.name}`;
  // Its header and metadata decode (they did at sync); its spec does not: reading it is the
  // error, naming the key.
  const object = reflector.read().get(key) as KubeObject & { spec?: unknown };
  assert.equal(object.metadata?.name, broken.name);
  assert.throws(() => object.spec, (e: Error) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, new RegExp(`Pod ${key} cannot be decoded`));
    assert.match(e.message, /truncated/);
    return true;
  });
  assert.throws(
    () => JSON.stringify(reflector.get(broken.name, broken.namespace)),
    /cannot be decoded/,
  );
  // The others are served, whole.
  const others = [...reflector.read().values()].filter((o) => o.metadata?.name !== broken.name);
  assert.deepEqual(others, [{ ...pod(1, 10) }, { ...pod(3, 12) }]);
  assert.equal(reflector.byIndex("namespace", broken.namespace).length, 1);
  assert.deepEqual(reflector.get(...nameNs(pod(1, 10))), { ...pod(1, 10) });
  client.close();
});

function nameNs(o: Record<string, unknown>): [string, string] {
  const m = o.metadata as { name: string; namespace: string };
  return [m.name, m.namespace];
}

test("compact store: churn keeps the store and the decoded cache bounded", async () => {
  const KEYS = 30, ROUNDS = 40;
  // Small pods: the churn, not the encoding, is what this test is about.
  const small = (i: number, rv: number) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `p${i}`,
      namespace: "churn",
      resourceVersion: String(rv),
      labels: { i: `${i}` },
    },
    spec: { nodeName: `node-${rv % 7}` },
  });
  const parts: Uint8Array[] = [];
  for (let i = 0; i < KEYS; i++) parts.push(encodeWatchFrame("ADDED", small(i, 1 + i)));
  parts.push(endBookmark(KEYS));
  let rv = KEYS;
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < KEYS; i++) {
      const type = round % 3 === 2 && i % 2 === 0 ? "DELETED" : "MODIFIED";
      parts.push(encodeWatchFrame(round % 3 === 0 && i % 2 === 0 ? "ADDED" : type, small(i, ++rv)));
    }
  }
  const client = stub((url) =>
    url.searchParams.get("watch") ? frames(rechunk(parts, 4096)) : frames([])
  );
  const reflector = new Reflector(client, Api.v1Pod(), {
    initialSync: "watchList",
    store: "compact",
    decodedCacheSize: 8,
  });
  const stop = new AbortController();
  const changes = reflector.changes({ signal: stop.signal });
  const running = reflector.run({ signal: stop.signal });
  let count = 0;
  let maxSize = 0;
  for await (const change of changes) {
    // A reconcile that reads what changed.
    if (change.type !== "DELETED") {
      assert.equal(
        reflector.read().get(reflector.api.keyOf(change.object))?.metadata?.uid,
        change.object.metadata?.uid,
      );
    }
    maxSize = Math.max(maxSize, reflector.read().size);
    count++;
    if (change.object.metadata?.resourceVersion === String(rv)) break;
  }
  assert.ok(count > KEYS * ROUNDS / 2, `${count} changes`);
  assert.ok(maxSize <= KEYS, `at most ${KEYS} objects cached, saw ${maxSize}`);
  stop.abort();
  await running;
  client.close();
});

test("compact store with stripManagedFields: the managed fields are dropped from the kept bytes", async () => {
  for (const script of [watchListScript, listScript]) {
    const options = { initialSync: script === listScript ? "list" : "watchList" } as const;
    const read = async (store?: "compact") => {
      let nth = 0;
      const client = stub((url) => script(url, nth++));
      const reflector = new Reflector(client, Api.v1Pod(), { ...options, store })
        .transform(stripManagedFields);
      await reflector.init();
      const content = [...reflector.read()];
      client.close();
      return content;
    };
    const compact = await read("compact");
    assert.equal(compact.length, 12);
    assert.ok(compact.every(([, o]) => o.metadata && !("managedFields" in o.metadata)));
    assert.deepEqual(compact, await read());
  }
  // The bytes: smaller by the managed fields, and decoding to the stripped object.
  const frame = encodeWatchFrame("ADDED", pod(7, 70)).subarray(4);
  const whole = decodeWatchEventCompact(frame).object as unknown as CompactObject;
  const stripped = decodeWatchEventCompact(frame, true).object as unknown as CompactObject;
  assert.ok(stripped.bytes.length < whole.bytes.length - 500, `${stripped.bytes.length}`);
  assert.deepEqual(stripped.metadata, whole.metadata);
  assert.deepEqual(decodeCompact(stripped), stripManagedFields({ ...pod(7, 70) } as KubeObject));
  assert.deepEqual(decodeCompact(whole), { ...pod(7, 70) });
});

test("compact codec: the cache of decoded objects stays within its size under churn", () => {
  const codec = new CompactCodec<KubeObject>(undefined, 16);
  const frames = Array.from({ length: 40 }, (_, i) => encodeWatchFrame("ADDED", pod(i, i + 1)));
  let last: unknown;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < frames.length; i++) {
      // A new entry per round (a MODIFIED object), read twice: the second read is a hit.
      const entry = decodeWatchEventCompact(frames[i].subarray(4)).object as unknown as KubeObject;
      const first = codec.decode(`k${i}`, entry);
      assert.equal(codec.decode(`k${i}`, entry), first);
      last = first;
      assert.ok(codec.cached <= 16, `${codec.cached} cached`);
    }
  }
  assert.equal(codec.cached, 16);
  assert.deepEqual(last, { ...pod(39, 40) });
  // A replaced entry under the same key is decoded again, not served from the cache.
  const a = codec.decode("k39", decodeWatchEventCompact(frames[39].subarray(4)).object as never);
  assert.notEqual(a, last);
});

test("compact store: objects that come as JSON (a server answering JSON) are kept as objects", async () => {
  const lines = [
    ...Array.from({ length: 3 }, (_, i) => ({ type: "ADDED", object: pod(i, 10 + i) })),
    {
      type: "BOOKMARK",
      object: {
        kind: "Pod",
        apiVersion: "v1",
        metadata: { resourceVersion: "20", annotations: { "k8s.io/initial-events-end": "true" } },
      },
    },
  ].map((e) => JSON.stringify(e) + "\n").join("");
  const client = stub(() =>
    new Response(lines, { headers: { "content-type": "application/json" } })
  );
  const reflector = new Reflector(client, Api.v1Pod(), {
    initialSync: "watchList",
    store: "compact",
  }).index("tier", (o) => [String(o.metadata?.labels?.tier)]);
  await reflector.init();
  assert.deepEqual([...reflector.read().values()], [0, 1, 2].map((i) => ({ ...pod(i, 10 + i) })));
  // Kept as they came: the same object on every read, whatever the decoded cache.
  const key = [...reflector.read().keys()][0];
  assert.equal(reflector.read().get(key), reflector.read().get(key));
  assert.equal(reflector.byIndex("tier", "frontend").length, 1);
  client.close();
});
