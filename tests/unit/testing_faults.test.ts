// FakeApiServer: every injectable fault, through Client.request() and server.fetch.
import assert from "node:assert/strict";
import { failure } from "./_helpers.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const CM = "/api/v1/namespaces/default/configmaps";
const URL_CM = `http://fake.invalid${CM}`;

function seed(server: FakeApiServer, n: number): void {
  for (let i = 0; i < n; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `cm-${i}`, namespace: "default" },
    });
  }
}

async function text(res: Response): Promise<string> {
  return await res.text();
}

function lines(body: string): string[] {
  return body.split("\n").filter((l) => l !== "");
}

test("FakeApiServer: 429 with a plain-text body and Retry-After; the client retries then succeeds", async () => {
  await using server = new FakeApiServer();
  const handle = server.inject({
    on: "list",
    times: 2,
    fault: { status: 429, retryAfter: 0, body: "slow down" },
  });
  const raw = await server.fetch(URL_CM);
  assert.equal(raw.status, 429);
  assert.equal(raw.headers.get("retry-after"), "0");
  assert.equal(raw.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(await raw.text(), "slow down");
  assert.equal(handle.hits, 1);

  const client = server.client({ retryBaseMs: 1 });
  const res = await client.request({ path: CM }); // one more 429, then the real answer
  assert.equal((await res.json()).kind, "ConfigMapList");
  assert.equal(handle.hits, 2);
  assert.ok(handle.done);

  server.inject({ on: "get", fault: { status: 429, retryAfter: 7, body: "busy" } });
  const error = await failure(server.client({ maxRetries: 0 }).request({ path: `${CM}/x` }));
  assert.equal(error.status, 429);
  assert.equal(error.retryAfterSeconds, 7);
  assert.match(error.message, /busy/);
});

test("FakeApiServer: status faults answer real Status bodies: 500, 503, 403, 429 without body", async () => {
  await using server = new FakeApiServer();
  const client = server.client({ maxRetries: 0 });
  server.inject({ on: "get", fault: { status: 500 } });
  const internal = await failure(client.request({ path: `${CM}/x` }));
  assert.equal(internal.status, 500);
  assert.equal(internal.reason, "InternalError");
  assert.equal(internal.body?.kind, "Status");

  server.inject({ on: "get", fault: { status: 503 } });
  const unavailable = await failure(client.request({ path: `${CM}/x` }));
  assert.equal(unavailable.status, 503);
  assert.equal(unavailable.reason, "ServiceUnavailable");

  server.inject({ on: "list", fault: { status: 403 } });
  const forbidden = await failure(client.request({ path: CM }));
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.reason, "Forbidden");
  assert.equal(
    forbidden.body?.message,
    'configmaps is forbidden: User "system:serviceaccount:default:test" cannot list resource "configmaps" in API group "" in the namespace "default"',
  );

  server.inject({ on: "create", fault: { status: 429, retryAfter: 2 } });
  const limited = await failure(
    client.request({ method: "POST", path: CM, body: { metadata: { name: "a" } } }),
  );
  assert.equal(limited.reason, "TooManyRequests");
  assert.equal(limited.details?.retryAfterSeconds, 2);
  assert.equal(limited.retryAfterSeconds, 2);
  // The fault was used up: the create goes through now.
  const created = await client.request({
    method: "POST",
    path: CM,
    body: { metadata: { name: "a" } },
  });
  assert.equal(created.status, 201);
  await created.body?.cancel();
});

test("FakeApiServer: reset: fetch rejects like a refused connection; the client reports status 0", async () => {
  await using server = new FakeApiServer();
  server.inject({ on: "any", times: 2, fault: "reset" });
  await assert.rejects(
    server.fetch(URL_CM),
    (e: unknown) => e instanceof TypeError && /Connection refused/.test(e.message),
  );
  const error = await failure(server.client().request({ path: CM }));
  assert.equal(error.status, 0);
  assert.ok(error.cause instanceof TypeError);
  const ok = await server.fetch(URL_CM);
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

test("FakeApiServer: after counts requests for request faults; on accepts verbs, lists and predicates", async () => {
  await using server = new FakeApiServer();
  const handle = server.inject({
    on: ["get", "list"],
    resource: "configmaps",
    after: 2,
    fault: { status: 500 },
  });
  assert.equal((await server.fetch(URL_CM)).status, 200);
  assert.equal((await server.fetch(`${URL_CM}/x`)).status, 404);
  assert.equal(
    (await server.fetch("http://fake.invalid/api/v1/namespaces")).status,
    200,
    "other resource",
  );
  assert.equal((await server.fetch(URL_CM)).status, 500);
  assert.equal((await server.fetch(URL_CM)).status, 200, "times defaults to 1");
  assert.ok(handle.done);

  const predicate = server.inject({
    on: (req) => req.verb === "get" && req.name === "special",
    times: Infinity,
    fault: { status: 503 },
  });
  assert.equal((await server.fetch(`${URL_CM}/special`)).status, 503);
  assert.equal((await server.fetch(`${URL_CM}/special`)).status, 503);
  assert.equal((await server.fetch(`${URL_CM}/other`)).status, 404);
  predicate.remove();
  assert.equal((await server.fetch(`${URL_CM}/special`)).status, 404);
  assert.equal(predicate.hits, 2);

  {
    using _scoped = server.inject({ on: "discovery", fault: { status: 500 } });
  }
  assert.equal((await server.fetch("http://fake.invalid/api")).status, 200, "disposed before use");
});

test("FakeApiServer: watch close: the stream ends normally after `after` events", async () => {
  await using server = new FakeApiServer();
  seed(server, 4);
  server.inject({ on: "watch", after: 2, fault: "close" });
  const body = await text(await server.fetch(`${URL_CM}?watch=1`));
  assert.equal(lines(body).length, 2);
  assert.ok(body.endsWith("\n"));
  assert.equal(server.openWatches, 0);
  // The next watch is normal.
  const next = await text(await server.fetch(`${URL_CM}?watch=1&timeoutSeconds=1`));
  assert.equal(lines(next).length, 4);
});

test("FakeApiServer: watch stall: nothing more after `after` events until the client aborts", async () => {
  await using server = new FakeApiServer({ bookmarkIntervalMs: 5 });
  seed(server, 3);
  server.inject({ on: "watch", after: 1, fault: "stall" });
  const controller = new AbortController();
  const res = await server.fetch(`${URL_CM}?watch=1&allowWatchBookmarks=true&timeoutSeconds=1`, {
    signal: controller.signal,
  });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  assert.equal(lines(first.value!).length, 1);
  const timer = setTimeout(() => controller.abort(), 1500); // past timeoutSeconds: still stalled
  await assert.rejects(
    reader.read(),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );
  clearTimeout(timer);
  assert.equal(server.openWatches, 0);
});

test("FakeApiServer: stall on a request: no answer until abort, or TypeError when the server closes", async () => {
  const server = new FakeApiServer();
  server.inject({ on: "get", times: 2, fault: "stall" });
  const controller = new AbortController();
  const pending = server.fetch(`${URL_CM}/x`, { signal: controller.signal });
  controller.abort(new Error("gave up"));
  await assert.rejects(pending, /gave up/);
  const second = server.fetch(`${URL_CM}/x`);
  await server.close();
  await assert.rejects(second, TypeError);
});

test("FakeApiServer: malformed-line: one line that is not JSON, then the stream goes on", async () => {
  await using server = new FakeApiServer();
  seed(server, 2);
  server.inject({ on: "watch", after: 1, fault: "malformed-line" });
  const all = lines(await text(await server.fetch(`${URL_CM}?watch=1&timeoutSeconds=1`)));
  assert.equal(all.length, 3);
  JSON.parse(all[0]);
  assert.throws(() => JSON.parse(all[1]), SyntaxError);
  assert.equal(JSON.parse(all[2]).type, "ADDED");

  server.inject({ on: "get", fault: "malformed-line" });
  const error = await failure(server.client().requestJson({ path: "/api/v1/namespaces/default" }));
  assert.match(error.message, /not JSON/);
});

test("FakeApiServer: truncate: the next event is cut in half without a newline and the stream ends", async () => {
  await using server = new FakeApiServer();
  seed(server, 3);
  server.inject({ on: "watch", after: 1, fault: "truncate" });
  const body = await text(await server.fetch(`${URL_CM}?watch=1`));
  const parts = body.split("\n");
  assert.equal(parts.length, 2);
  JSON.parse(parts[0]);
  assert.ok(parts[1].length > 0);
  assert.throws(() => JSON.parse(parts[1]), SyntaxError);

  server.inject({ on: "list", fault: "truncate" });
  const cut = await text(await server.fetch(URL_CM));
  assert.throws(() => JSON.parse(cut), SyntaxError);
  assert.ok(cut.startsWith('{"kind":"ConfigMapList"'));
});

test("FakeApiServer: bookmark-only: a stream holding one BOOKMARK at the current resourceVersion", async () => {
  await using server = new FakeApiServer();
  seed(server, 2);
  server.inject({ on: "watch", fault: "bookmark-only" });
  const events = lines(
    await text(await server.fetch(`${URL_CM}?watch=1&resourceVersion=${server.resourceVersion}`)),
  )
    .map((l) => JSON.parse(l));
  assert.deepEqual(events, [{
    type: "BOOKMARK",
    object: {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { resourceVersion: server.resourceVersion },
    },
  }]);
});

test("FakeApiServer: expire on a watch: ERROR event with reason Expired or Gone; http: true answers 410", async () => {
  await using server = new FakeApiServer();
  seed(server, 3);
  server.inject({ on: "watch", after: 2, fault: { expire: true } });
  const events = lines(await text(await server.fetch(`${URL_CM}?watch=1&resourceVersion=0`))).map((
    l,
  ) => JSON.parse(l));
  assert.deepEqual(events.map((e) => e.type), ["ADDED", "ADDED", "ERROR"]);
  assert.equal(events[2].object.code, 410);
  assert.equal(events[2].object.reason, "Expired");
  assert.match(events[2].object.message, /^too old resource version: 0 \(\d+\)$/);

  server.inject({ on: "watch", fault: { expire: "Gone" } });
  const gone = lines(await text(await server.fetch(`${URL_CM}?watch=1&resourceVersion=5`))).map((
    l,
  ) => JSON.parse(l));
  assert.equal(gone.length, 1);
  assert.equal(gone[0].object.reason, "Gone");
  assert.equal(gone[0].object.code, 410);

  server.inject({ on: "watch", fault: { expire: true, http: true } });
  const http = await failure(
    server.client().request({ path: CM, query: { watch: 1, resourceVersion: "5" }, retry: false }),
  );
  assert.equal(http.status, 410);
  assert.equal(http.reason, "Expired");
  assert.equal(http.body?.message, `too old resource version: 5 (${server.resourceVersion})`);
});

test("FakeApiServer: expire mid-list: the second page answers 410 Expired", async () => {
  await using server = new FakeApiServer();
  seed(server, 3);
  server.inject({ on: "list", after: 1, fault: { expire: true } });
  const client = server.client({ maxRetries: 0 });
  const first: Obj = await client.requestJson({ path: CM, query: { limit: 1 } });
  const error = await failure(
    client.request({ path: CM, query: { limit: 1, continue: first.metadata.continue } }),
  );
  assert.equal(error.status, 410);
  assert.ok(error.expired);
  assert.match(error.body?.message ?? "", /^The provided continue parameter is too old/);
});

test("FakeApiServer: close on a non-watch request drops the connection", async () => {
  await using server = new FakeApiServer();
  server.inject({ on: "get", fault: "close" });
  await assert.rejects(server.fetch(`${URL_CM}/x`), TypeError);
});
