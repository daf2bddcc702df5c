// The protobuf wire format through the client's data path, with a stub server: negotiation
// (Accept headers, JSON fallback, custom resources stay JSON), decoding of get/list/watch bodies,
// protobuf error Statuses, a Reflector syncing and following a protobuf watch, and the watch
// under random chunking and truncation (bytes → frames → events).

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import { Reflector } from "../../reflector.ts";
import { MALFORMED_WATCH_EVENT, type WatchEvent } from "../../watch.ts";
import { encodeMessage, encodeObject, encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import { decodeObject } from "../../_client/protobuf/decode.ts";
import { makePod } from "../../bench/fixture.ts";
import { test } from "../_test.ts";
import { rng } from "./_helpers.ts";

const PB = "application/vnd.kubernetes.protobuf";

interface Seen {
  path: string;
  accept: string;
  watch: boolean;
}

function stub(
  respond: (url: URL, seen: Seen) => Response,
  wireFormat: "json" | "protobuf" = "protobuf",
): { client: Client; seen: Seen[] } {
  const seen: Seen[] = [];
  const client = new Client(Config.fromUrl("http://127.0.0.1:1"), {
    wireFormat,
    fetch: (input: Request | URL | string, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(input, init);
      const url = new URL(request.url);
      const s = {
        path: url.pathname,
        accept: request.headers.get("accept") ?? "",
        watch: url.searchParams.get("watch") === "1",
      };
      seen.push(s);
      return Promise.resolve(respond(url, s));
    },
  });
  return { client, seen };
}

function protobuf(object: Record<string, unknown>, status = 200): Response {
  return new Response(encodeObject(object), { status, headers: { "content-type": PB } });
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

const pod = (i: number, rv: number) => ({
  ...decodeObject(encodeObject(makePod(i, { resourceVersion: rv }))),
});

test("protobuf get and list: Accept negotiated, bodies decoded, items typed", async () => {
  const p = pod(1, 10);
  const { client, seen } = stub((url) =>
    url.pathname.endsWith("/pods")
      ? protobuf({
        kind: "PodList",
        apiVersion: "v1",
        metadata: { resourceVersion: "11" },
        items: [{ ...p, kind: undefined, apiVersion: undefined }],
      })
      : protobuf(p)
  );
  const got = await client.get(Api.v1Pod().within("team-1"), "x");
  assert.deepEqual(got, p);
  const list = await client.list(Api.v1Pod().within("team-1"));
  assert.equal(list.metadata.resourceVersion, "11");
  assert.deepEqual(list.items, [p]);
  assert.deepEqual(seen.map((s) => s.accept), [
    `${PB}, application/json`,
    `${PB}, application/json`,
  ]);
  client.close();
});

test("a JSON answer to a protobuf request is read as JSON; custom resources ask for JSON", async () => {
  const { client, seen } = stub(() =>
    Response.json({ kind: "Foo", apiVersion: "clux.dev/v1", metadata: { name: "f" } })
  );
  const foo = Api.customResource("foos").group("clux.dev").version("v1");
  assert.equal((await client.get(foo.within("ns"), "f")).metadata?.name, "f");
  assert.equal(seen[0].accept, "application/json");
  const json = await client.get(Api.v1ConfigMap().within("ns"), "f");
  assert.equal(json.metadata?.name, "f");
  assert.equal(seen[1].accept, `${PB}, application/json`);
  client.close();
  // The JSON wire format never asks for protobuf.
  const plain = stub(() => Response.json({ kind: "ConfigMap", metadata: { name: "c" } }), "json");
  await plain.client.get(Api.v1ConfigMap().within("ns"), "c");
  assert.equal(plain.seen[0].accept, "application/json");
  plain.client.close();
});

test("get re-reads as JSON an object with fields unknown to the tables (no field lost)", async () => {
  // A ConfigMap from a "newer server": field 99 of ConfigMap and field 77 of ObjectMeta.
  const cm = { kind: "ConfigMap", apiVersion: "v1", metadata: { name: "c" }, data: { k: "v" } };
  const raw = encodeObject(cm);
  // Append an unknown string field 99 (tag 0x9a 0x06) to the object inside the envelope: it is
  // the last field (raw) before contentEncoding/contentType, so rebuild the envelope by hand.
  const withUnknown = (() => {
    const message = [
      ...encodeMessageBytes(cm),
      0x9a,
      0x06,
      3,
      ...new TextEncoder().encode("new"),
    ];
    const typeMeta = [
      10,
      2,
      ...new TextEncoder().encode("v1"),
      18,
      9,
      ...new TextEncoder().encode("ConfigMap"),
    ];
    return new Uint8Array([
      0x6b,
      0x38,
      0x73,
      0,
      10,
      typeMeta.length,
      ...typeMeta,
      18,
      message.length,
      ...message,
    ]);
  })();
  assert.ok(raw.length > 0);
  const newer = { ...cm, newField: "new" };
  const { client, seen } = stub((_url, s) =>
    s.accept.startsWith(PB)
      ? new Response(withUnknown, { headers: { "content-type": PB } })
      : Response.json(newer)
  );
  const got = await client.get(Api.v1ConfigMap().within("ns"), "c");
  assert.deepEqual(got, newer);
  assert.deepEqual(seen.map((s) => s.accept), [`${PB}, application/json`, "application/json"]);
  client.close();
});

function encodeMessageBytes(object: Record<string, unknown>): number[] {
  return [...encodeMessage("core/v1.ConfigMap", object)];
}

test("a protobuf error Status becomes an ApiError with its reason and message", async () => {
  const { client } = stub(() =>
    protobuf({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods "x" not found',
      reason: "NotFound",
      details: { name: "x", kind: "pods" },
      code: 404,
    }, 404)
  );
  await assert.rejects(client.get(Api.v1Pod().within("ns"), "x"), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 404);
    assert.equal(e.reason, "NotFound");
    assert.match(e.message, /pods "x" not found/);
    return true;
  });
  client.close();
});

test("a Reflector syncs and follows a protobuf watch (watch list, then events)", async () => {
  const events = [
    encodeWatchFrame("ADDED", pod(1, 20)),
    encodeWatchFrame("ADDED", pod(2, 21)),
    encodeWatchFrame("BOOKMARK", {
      kind: "Pod",
      apiVersion: "v1",
      metadata: { resourceVersion: "21", annotations: { "k8s.io/initial-events-end": "true" } },
    }),
    encodeWatchFrame("MODIFIED", pod(1, 22)),
    encodeWatchFrame("DELETED", pod(2, 23)),
  ];
  let watches = 0;
  const { client, seen } = stub((url) => {
    if (url.searchParams.get("watch") !== "1") throw new Error("no list expected");
    if (watches++ > 0) return frames([]); // the re-watch after the stream ends
    return frames(events);
  });
  const reflector = new Reflector(client, Api.v1Pod(), { initialSync: "watchList" });
  const controller = new AbortController();
  const changes = reflector.changes({ signal: controller.signal });
  const running = reflector.run({ signal: controller.signal });
  await reflector.ready;
  const seenChanges: string[] = [];
  for await (const change of changes) {
    seenChanges.push(`${change.type} ${change.object.metadata?.resourceVersion}`);
    if (change.type === "DELETED") break;
  }
  assert.deepEqual([...reflector.read().values()].map((o) => o.metadata?.resourceVersion), ["22"]);
  assert.deepEqual(reflector.read().values().next().value, { ...pod(1, 22) });
  assert.ok(seenChanges.includes("MODIFIED 22") && seenChanges.includes("DELETED 23"));
  assert.equal(seen[0].accept, `${PB}, application/json`);
  controller.abort();
  await running;
  client.close();
});

test("randomized: client.watch over protobuf frames split and cut at random points", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = rng(seed);
    const sent: KubeObject[] = [];
    const parts: Uint8Array[] = [];
    const n = 3 + Math.floor(rand() * 30);
    for (let i = 0; i < n; i++) {
      const object = pod(Math.floor(rand() * 20), 100 + i);
      sent.push(object);
      parts.push(encodeWatchFrame(i % 3 === 0 ? "ADDED" : "MODIFIED", object));
    }
    const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    const truncate = rand() < 0.5;
    const end = truncate ? 1 + Math.floor(rand() * (all.length - 1)) : all.length;
    let complete = 0;
    for (let sum = 0; complete < parts.length && sum + parts[complete].length <= end; complete++) {
      sum += parts[complete].length;
    }
    const onBoundary = parts.slice(0, complete).reduce((s, p) => s + p.length, 0) === end;
    const chunks: Uint8Array[] = [];
    for (let c = 0; c < end;) {
      const size = rand() < 0.3 ? 1 + Math.floor(rand() * 6) : 1 + Math.floor(rand() * 9000);
      chunks.push(all.subarray(c, Math.min(end, c + size)));
      c += size;
    }
    const { client } = stub(() => frames(chunks));
    const got: WatchEvent[] = [];
    let error: unknown;
    try {
      for await (const event of client.watch(Api.v1Pod(), { resourceVersion: "1" })) {
        got.push(event);
      }
    } catch (e) {
      error = e;
    }
    client.close();
    assert.deepEqual(
      got.map((e) => e.type === "ERROR" || e.type === "BOOKMARK" ? e.type : e.object),
      sent.slice(0, complete),
      `seed ${seed}`,
    );
    if (onBoundary) assert.equal(error, undefined, `seed ${seed}`);
    else {
      assert.ok(error instanceof ApiError, `seed ${seed}: ${error}`);
      assert.equal(error.reason, MALFORMED_WATCH_EVENT);
      assert.match(error.message, /ended inside a frame/);
    }
  }
});
