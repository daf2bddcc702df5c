import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { watch, WATCH_STALLED } from "../../watch.ts";
import { cm, ev, events, refused, status, StubServer } from "./_stub_server.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

test("watch: breaking out of for-await cancels the body", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1")), ev("ADDED", cm("b", "2"))], { hang: true }),
  );
  for await (const event of watch(stub.client(), configMaps)) {
    assert.equal(event.type, "ADDED");
    break;
  }
  assert.equal(stub.cancelled, 1);
  assert.equal(stub.open, 0);
});

test("watch: return() cancels the body", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "1"))], { hang: true }));
  const iterator = watch(stub.client(), configMaps);
  const first = await iterator.next();
  assert.equal(first.done, false);
  await iterator.return?.();
  assert.equal(stub.cancelled, 1);
  assert.equal(stub.open, 0);
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });
});

test("watch: aborting the signal while waiting rejects with its reason and closes the body", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "1"))], { hang: true }));
  const controller = new AbortController();
  const iterator = watch(stub.client(), configMaps, { signal: controller.signal });
  await iterator.next();
  const pending = iterator.next();
  const reason = new Error("stop");
  controller.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  assert.equal(stub.open, 0);
});

test("watch: a signal aborted before the request rejects without a request", async () => {
  const stub = new StubServer();
  const controller = new AbortController();
  controller.abort(new Error("early"));
  await assert.rejects(
    watch(stub.client(), configMaps, { signal: controller.signal }).next(),
    /early/,
  );
  assert.equal(stub.requests.length, 0);
});

test("watch: a stream silent past the inactivity timeout ends with a stall error", async () => {
  const stub = new StubServer().push(events([ev("ADDED", cm("a", "1"))], { hang: true }));
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (
      const event of watch(stub.client(), configMaps, { inactivityTimeoutMs: 30 })
    ) {
      seen.push(event.type);
    }
  }, (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 0);
    assert.equal(e.reason, WATCH_STALLED);
    assert.match(e.message, /^watch stalled: no data for [\d.]+ s/);
    return true;
  });
  assert.deepEqual(seen, ["ADDED"]);
  assert.equal(stub.open, 0);
});

test("watch: a slow consumer is not a stalled stream", async () => {
  const stub = new StubServer().push(
    events([ev("ADDED", cm("a", "1")), ev("ADDED", cm("b", "2"))]),
  );
  const seen: string[] = [];
  for await (const event of watch(stub.client(), configMaps, { inactivityTimeoutMs: 20 })) {
    if (event.type === "ADDED") seen.push(event.object.metadata!.name!);
    // Handling an event takes longer than the inactivity timeout.
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  assert.deepEqual(seen, ["a", "b"]);
});

test("watch: a server that never answers the watch stalls too (no whole-request timeout)", async () => {
  const stub = new StubServer().push((request) =>
    new Promise<Response>((_, reject) => {
      request.signal!.addEventListener("abort", () => reject(request.signal!.reason), {
        once: true,
      });
    })
  );
  await assert.rejects(
    watch(stub.client(), configMaps, { inactivityTimeoutMs: 20 }).next(),
    (e: unknown) => e instanceof ApiError && e.reason === WATCH_STALLED,
  );
});

test("watch: 410 as an HTTP status is thrown as an expired ApiError", async () => {
  const stub = new StubServer().push(status(410, {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    reason: "Expired",
    code: 410,
    message: "too old resource version: 1 (5)",
  }));
  await assert.rejects(
    watch(stub.client(), configMaps, { resourceVersion: "1" }).next(),
    (e: unknown) => e instanceof ApiError && e.expired && e.status === 410,
  );
});

test("watch: 403 is thrown as an ApiError", async () => {
  const stub = new StubServer().push(status(403, {
    kind: "Status",
    status: "Failure",
    reason: "Forbidden",
    code: 403,
    message: "configmaps is forbidden",
  }));
  await assert.rejects(
    watch(stub.client(), configMaps).next(),
    (e: unknown) => e instanceof ApiError && e.status === 403 && e.reason === "Forbidden",
  );
});

test("watch: a refused connection is an ApiError with status 0", async () => {
  const stub = new StubServer().push(refused());
  await assert.rejects(
    watch(stub.client(), configMaps).next(),
    (e: unknown) => e instanceof ApiError && e.status === 0 && e.cause instanceof TypeError,
  );
});

test("watch: a stream that breaks mid-way is an ApiError with status 0", async () => {
  const stub = new StubServer().push(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(
          new TextEncoder().encode(JSON.stringify(ev("ADDED", cm("a", "1"))) + "\n"),
        );
        controller.error(new TypeError("connection reset"));
      },
    });
    return new Response(body);
  });
  await assert.rejects(async () => {
    for await (const _ of watch(stub.client(), configMaps)) { /* drain */ }
  }, (e: unknown) => e instanceof ApiError && e.status === 0 && /connection reset/.test(e.message));
});

test("watch: 503 on the watch request is retried by the client unless retry is false", async () => {
  const stub = new StubServer().push(
    status(503, "unavailable"),
    events([ev("ADDED", cm("a", "1"))]),
    status(503, "unavailable"),
  );
  const out = [];
  for await (const event of watch(stub.client(), configMaps)) out.push(event.type);
  assert.deepEqual(out, ["ADDED"]);
  await assert.rejects(
    watch(stub.client(), configMaps, { retry: false }).next(),
    (e: unknown) => e instanceof ApiError && e.status === 503,
  );
});
