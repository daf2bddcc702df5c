import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { isObjectEvent, MALFORMED_WATCH_EVENT, watch, type WatchEvent } from "../../watch.ts";
import { LineDecoder } from "../../_client/lines.ts";
import { bookmark, cm, errorEvent, ev, events, StubServer } from "./_stub_server.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

async function collect(stub: StubServer, options = {}): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const event of watch(stub.client(), configMaps, options)) out.push(event);
  return out;
}

function names(list: WatchEvent[]): string[] {
  return list.map((e) =>
    e.type === "ERROR" ? "ERROR" : `${e.type}:${e.object.metadata?.name ?? ""}`
  );
}

test("watch: watch sends watch=1, bookmarks, resourceVersion, timeout and selectors", async () => {
  const stub = new StubServer().push(events([]));
  await collect(stub, {
    resourceVersion: "41",
    timeoutSeconds: 30,
    labelSelector: "app=web",
    fieldSelector: "metadata.name=a",
  });
  const request = stub.requests[0];
  assert.equal(request.url.pathname, "/api/v1/namespaces/default/configmaps");
  assert.equal(request.query.get("watch"), "1");
  assert.equal(request.query.get("allowWatchBookmarks"), "true");
  assert.equal(request.query.get("resourceVersion"), "41");
  assert.equal(request.query.get("timeoutSeconds"), "30");
  assert.equal(request.query.get("labelSelector"), "app=web");
  assert.equal(request.query.get("fieldSelector"), "metadata.name=a");
  assert.equal(request.query.get("sendInitialEvents"), null);
});

test("watch: watch with sendInitialEvents asks for NotOlderThan and sends no resourceVersion", async () => {
  const stub = new StubServer().push(events([]));
  await collect(stub, { sendInitialEvents: true, allowWatchBookmarks: false });
  const query = stub.requests[0].query;
  assert.equal(query.get("sendInitialEvents"), "true");
  assert.equal(query.get("resourceVersionMatch"), "NotOlderThan");
  assert.equal(query.get("resourceVersion"), null);
  assert.equal(query.get("allowWatchBookmarks"), null);
});

test("watch: lines split across chunks, many lines per chunk, blank lines ignored", async () => {
  const a = JSON.stringify(ev("ADDED", cm("a", "1")));
  const b = JSON.stringify(ev("MODIFIED", cm("b", "2")));
  const c = JSON.stringify(ev("DELETED", cm("c", "3")));
  const stub = new StubServer().push(events([
    a.slice(0, 5),
    a.slice(5, 20),
    a.slice(20) + "\n\n" + b + "\r\n   \n" + c.slice(0, 1),
    c.slice(1) + "\n",
    "\n",
  ]));
  assert.deepEqual(names(await collect(stub)), ["ADDED:a", "MODIFIED:b", "DELETED:c"]);
  assert.equal(stub.open, 0);
});

test("watch: multi-byte UTF-8 split across chunks is decoded", async () => {
  const object = { ...cm("é", "1"), data: { greeting: "héllo 🌍 日本" } };
  const bytes = new TextEncoder().encode(JSON.stringify(ev("ADDED", object)) + "\n");
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 3) chunks.push(bytes.slice(i, i + 3));
  const stub = new StubServer().push(events(chunks));
  const [event] = await collect(stub);
  assert.equal(event.type, "ADDED");
  assert.deepEqual(event.object, object);
});

test("watch: a complete last line without newline is parsed", async () => {
  const stub = new StubServer().push(events([
    JSON.stringify(ev("ADDED", cm("a", "1"))) + "\n" + JSON.stringify(ev("ADDED", cm("b", "2"))),
  ]));
  assert.deepEqual(names(await collect(stub)), ["ADDED:a", "ADDED:b"]);
});

test("watch: a truncated last line is an error that names it without quoting its data", async () => {
  const stub = new StubServer().push(events([
    JSON.stringify(ev("ADDED", cm("a", "1"))) + '\n{"type":"ADDED","object":{"metadata":{"na',
  ]));
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const event of watch(stub.client(), configMaps)) seen.push(event.type);
  }, (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 0);
    assert.equal(e.reason, MALFORMED_WATCH_EVENT);
    assert.match(
      e.message,
      /not JSON( at character 41)? \(a line of 41 characters starting "\{\\"type\\":\\"ADDED\\","…\)/,
    );
    assert.ok(!e.message.includes("metadata"), e.message);
    // V8's SyntaxError quotes the text around the failure: it is not kept as the cause.
    assert.equal(e.cause, undefined);
    return true;
  });
  assert.deepEqual(seen, ["ADDED"]);
});

test("watch: a malformed line throws with its first 16 characters and cancels the body", async () => {
  const bad = "not json " + "x".repeat(500);
  const stub = new StubServer().push(
    events([JSON.stringify(ev("ADDED", cm("a", "1"))) + "\n" + bad + "\n"], { hang: true }),
  );
  await assert.rejects(collect(stub), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.reason, MALFORMED_WATCH_EVENT);
    assert.ok(e.message.includes(JSON.stringify(bad.slice(0, 16))));
    assert.ok(!e.message.includes(bad.slice(0, 17)));
    assert.match(e.message, /a line of 509 characters/);
    return true;
  });
  assert.equal(stub.cancelled, 1);
  assert.equal(stub.open, 0);
});

for (const line of ['{"kind":"ConfigMap"}', "[1,2]", "42", '{"type":"WHATEVER","object":{}}']) {
  test(`a JSON value that is not a watch event is an error: ${line}`, async () => {
    const stub = new StubServer().push(events([line + "\n"]));
    await assert.rejects(collect(stub), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.reason, MALFORMED_WATCH_EVENT);
      assert.ok(e.message.includes(JSON.stringify(line.slice(0, 16))), e.message);
      return true;
    });
  });
}

test("watch: a 10 MB object arriving in 64 KiB chunks is parsed", async () => {
  const big = "x".repeat(10 * 1024 * 1024);
  const object = { ...cm("big", "7"), data: { big } };
  const bytes = new TextEncoder().encode(JSON.stringify(ev("ADDED", object)) + "\n");
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  const stub = new StubServer().push(events([...chunks, JSON.stringify(bookmark("8")) + "\n"]));
  const out = await collect(stub);
  assert.equal(out.length, 2);
  assert.equal(out[0].type, "ADDED");
  assert.equal((out[0].object as { data: { big: string } }).data.big.length, big.length);
  assert.equal(out[1].type, "BOOKMARK");
});

test("watch: BOOKMARK events carry the resource version and the initial-events-end flag", async () => {
  const stub = new StubServer().push(events([bookmark("10"), bookmark("11", true)]));
  const out = await collect(stub);
  assert.equal(out.length, 2);
  assert.equal(out.some(isObjectEvent), false);
  for (const [i, event] of out.entries()) {
    assert.equal(event.type, "BOOKMARK");
    if (event.type !== "BOOKMARK") continue;
    assert.equal(event.resourceVersion, i === 0 ? "10" : "11");
    assert.equal(event.initialEventsEnd, i === 1);
  }
});

for (const reason of ["Expired", "Gone"]) {
  test(`an ERROR event 410 ${reason} is yielded with an expired ApiError`, async () => {
    const stub = new StubServer().push(
      events([ev("ADDED", cm("a", "1")), errorEvent(410, reason, "too old resource version")]),
    );
    const out = await collect(stub);
    assert.deepEqual(out.map(isObjectEvent), [true, false]);
    const last = out[1];
    assert.equal(last.type, "ERROR");
    if (last.type !== "ERROR") return;
    assert.ok(last.error instanceof ApiError);
    assert.equal(last.error.status, 410);
    assert.equal(last.error.reason, reason);
    assert.equal(last.error.expired, true);
    assert.equal(last.object.code, 410);
  });
}

test("watch: an ERROR event that is not 410 is not expired", async () => {
  const stub = new StubServer().push(events([errorEvent(500, "InternalError", "boom")]));
  const [event] = await collect(stub);
  assert.equal(event.type, "ERROR");
  if (event.type === "ERROR") assert.equal(event.error.expired, false);
});

test("watch: LineDecoder keeps blank lines unless asked to skip them", () => {
  const bytes = new TextEncoder().encode("a\n\nb\r\nc");
  const out: string[] = [];
  const keep = new LineDecoder();
  keep.push(bytes, out);
  keep.end(out);
  assert.deepEqual(out, ["a", "", "b\r", "c"]);
  const skipped: string[] = [];
  const skip = new LineDecoder({ skipBlank: true });
  skip.push(bytes, skipped);
  skip.end(skipped);
  assert.deepEqual(skipped, ["a", "b\r", "c"]);
});
