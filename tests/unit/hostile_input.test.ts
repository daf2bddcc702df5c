// Issue 20: the nine holes found by trying the library as an attacker would, one test each (each
// failed on the code before the fix): what the library reads (the API server's answers, an exec
// plugin's output, requests to the operator's own endpoints) can be wrong, huge or hostile.
// Items 2 and 4 (exec plugin stderr and invalid JSON) are in config_exec.test.ts.

import assert from "node:assert/strict";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { inspect } from "node:util";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { ApiError, isTransient } from "../../errors.ts";
import { exec } from "../../exec.ts";
import { Informer } from "../../informer.ts";
import { MALFORMED_WATCH_EVENT, watch } from "../../watch.ts";
import { LineDecoder, LineTooLongError, MAX_LINE_CHARS } from "../../_client/lines.ts";
import { FrameDecoder } from "../../_client/protobuf/frames.ts";
import { redactText } from "../../_client/redact.ts";
import { serveNodeHttp } from "../../_platform/_node_common.ts";
import { endpointsHandler } from "../../runtime/endpoints.ts";
import { Manager } from "../../runtime/manager.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { cm, ev, events, list, Sleeps, StubServer } from "./_stub_server.ts";
import { RawServer } from "./_ws_stub.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

/** Rejects after `ms` (the timer is cleared when `promise` settles first). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

test("item 1: Node/Bun serving answers 405 to a huge POST without reading its body", async () => {
  const handler = endpointsHandler();
  const server = await serveNodeHttp((r) => Promise.resolve(handler(r)), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const huge = 512 * 1024 * 1024;
  const external = process.memoryUsage().external;
  let req: ReturnType<typeof httpRequest> | undefined;
  try {
    const answered = new Promise<number>((resolve, reject) => {
      req = httpRequest({
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/healthz",
        headers: { "content-length": String(huge) },
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      // 1 MiB of the announced 512 MiB: the answer must not wait for the rest.
      req.write(new Uint8Array(1024 * 1024));
    });
    assert.equal(await within(answered, 5_000, "POST /healthz"), 405);
    assert.ok(process.memoryUsage().external - external < 64 * 1024 * 1024);
  } finally {
    req?.destroy();
    await server.close();
  }
});

test("item 2: /healthz names a crashed task and its error class, never the error's message", async () => {
  await using server = new FakeApiServer();
  const m = new Manager(server.client(), { endpoints: { hostname: "127.0.0.1", port: 0 } });
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  m.add({
    name: "bad",
    run: () =>
      Promise.reject(
        new ApiError({
          status: 0,
          reason: "CredentialsUnavailable",
          message:
            "plugin said eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnLWxlYWs and tok3n-LEAK",
        }),
      ),
  });
  // A task that drains slowly, so /healthz is still served after the crash.
  let draining!: () => void;
  const isDraining = new Promise<void>((resolve) => draining = resolve);
  m.add({
    name: "slow",
    run: (signal) =>
      new Promise<void>((resolve) => {
        signal.addEventListener("abort", () => {
          draining();
          released.then(resolve);
        }, { once: true });
      }),
  });
  const run = m.run(new AbortController().signal);
  run.catch(() => {});
  await isDraining;
  const res = await fetch(`http://127.0.0.1:${m.endpointsPort}/healthz`);
  const body = await res.text();
  release();
  await assert.rejects(run);
  assert.equal(res.status, 500);
  assert.match(body, /a task crashed: bad \(ApiError 0 CredentialsUnavailable\)/);
  assert.ok(!body.includes("tok3n-LEAK") && !body.includes("eyJ"), body);
});

test("item 2: check reasons in /healthz and /readyz answers are redacted", async () => {
  const handler = endpointsHandler({
    healthz: { auth: () => 'refresh failed: {"access_token":"ya29.leak-0001"} Bearer abc.def' },
  });
  const body = await (await handler(new Request("http://x/healthz"))).text();
  assert.match(body, /\[-\]auth failed: refresh failed/);
  assert.ok(!body.includes("ya29.leak-0001") && !body.includes("abc.def"), body);
});

/** A watch body of `x` without a newline, forever (until cancelled). */
function endlessLine(chunkBytes = 1024 * 1024) {
  return () => {
    const chunk = new TextEncoder().encode("x".repeat(chunkBytes));
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(chunk);
        },
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "application/json" } },
    );
  };
}

test("item 3: a line longer than the limit is a LineTooLongError that drops the carried text", () => {
  const lines = new LineDecoder({ maxLineChars: 10 });
  const out: string[] = [];
  lines.push(new TextEncoder().encode("ok\n12345"), out);
  assert.throws(
    () => lines.push(new TextEncoder().encode("678901"), out),
    (e: unknown) => e instanceof LineTooLongError && /limit of 10 characters/.test(e.message),
  );
  assert.deepEqual(out, ["ok"]);
});

test("item 3: a watch line without end is a transient MalformedWatchEvent naming the limit", async () => {
  const stub = new StubServer().push(endlessLine());
  const error = await assert.rejects(async () => {
    for await (const _ of watch(stub.client(), configMaps)) { /* none */ }
  }, (e: unknown) => {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.reason, MALFORMED_WATCH_EVENT);
    assert.equal(e.status, 0);
    assert.ok(isTransient(e));
    assert.match(e.message, new RegExp(`limit of ${MAX_LINE_CHARS} characters`));
    return true;
  });
  assert.equal(error, undefined);
  assert.equal(stub.open, 0);
});

test("item 3: the Informer recovers from an endless line (it used to stop for good)", async () => {
  const sleeps = new Sleeps();
  const stub = new StubServer().push(
    list([cm("a", "1")], "10"),
    endlessLine(),
    events([ev("ADDED", cm("b", "11"))], { hang: true }),
  );
  const informer = new Informer(stub.client(), configMaps, {
    backoff: { random: () => 0 },
    sleep: sleeps.sleep,
    watchTimeoutSeconds: 5,
  });
  const seen: string[] = [];
  for await (const event of informer) {
    if (event.type !== "BOOKMARK" && event.type !== "ERROR") {
      seen.push(`${event.type}:${event.object.metadata?.name}`);
    }
    if (seen.length === 2) break;
  }
  assert.deepEqual(seen, ["ADDED:a", "ADDED:b"]);
});

test("item 5: a frame's length prefix alone allocates nothing near its size", () => {
  const frames = new FrameDecoder();
  const out: Uint8Array[] = [];
  const size = 60 * 1024 * 1024;
  const before = process.memoryUsage().external;
  frames.push(
    new Uint8Array([size >>> 24, (size >>> 16) & 255, (size >>> 8) & 255, size & 255, 1, 2, 3]),
    out,
  );
  const grown = process.memoryUsage().external - before;
  assert.deepEqual(out, []);
  assert.ok(grown < 8 * 1024 * 1024, `a 4-byte header allocated ${grown} bytes`);
  assert.throws(() => frames.end(), /ended inside a frame \(3 of 62914560 bytes\)/);
});

test("item 5: a large frame assembled from small chunks is intact", () => {
  const frames = new FrameDecoder();
  const size = 3 * 1024 * 1024 + 17;
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31) & 255;
  const wire = new Uint8Array(4 + size);
  new DataView(wire.buffer).setUint32(0, size);
  wire.set(body, 4);
  const out: Uint8Array[] = [];
  for (let at = 0; at < wire.length; at += 4093) frames.push(wire.subarray(at, at + 4093), out);
  assert.equal(out.length, 1);
  assert.deepEqual(out[0], body);
});

test("item 6: a refused upgrade with a huge chunked body is read to 64 KiB, not to its chunk size", async () => {
  await using listener = await RawServer.start();
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.readHead();
    // A 1 GiB chunk announced, 100 KiB sent, and the connection held open.
    await conn.write(
      "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n" +
        "transfer-encoding: chunked\r\n\r\n40000000\r\n",
    );
    await conn.write(new TextEncoder().encode("e".repeat(100 * 1024)));
    return conn;
  })();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`));
  const refused = exec(client, "web", ["true"], { stderr: false });
  const error = await within(refused.then(() => undefined, (e) => e), 5_000, "refused upgrade");
  (await serving).close();
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.status, 500);
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<[Server, string]> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
}

test("item 7: a redirect to another origin is an error naming it; its body is never taken", async () => {
  const seen: Record<string, string | undefined>[] = [];
  const [other, otherUrl] = await listen((req, res) => {
    seen.push({ impersonate: req.headers["impersonate-user"] as string | undefined });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(cm("evil", "666")));
  });
  const [api, apiUrl] = await listen((req, res) => {
    res.statusCode = 302;
    res.setHeader("location", `${otherUrl}${req.url}`);
    res.end();
  });
  try {
    const client = new Client(
      Config.fromUrl(apiUrl, {
        impersonate: { user: "admin" },
        credentials: { token: "t0k-1234" },
      }),
    );
    const error = await assert.rejects(client.get(configMaps, "x"), (e: unknown) => {
      assert.ok(e instanceof ApiError, String(e));
      assert.equal(e.status, 302);
      assert.equal(e.reason, "Redirect");
      assert.ok(e.message.includes(`to another origin, ${otherUrl}`), e.message);
      assert.ok(!isTransient(e));
      return true;
    });
    assert.equal(error, undefined);
    assert.deepEqual(seen, [], "the other origin was asked");
    client.close();
  } finally {
    await new Promise((r) => api.close(r));
    await new Promise((r) => other.close(r));
  }
});

test("item 8: a malformed line of a Secret watch is not quoted in any log record or error", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["kube"], lowestLevel: "trace", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  const secret = "c3VwZXItc2VjcmV0LWRhdGE=";
  const errors: unknown[] = [];
  try {
    const sleeps = new Sleeps();
    const stub = new StubServer().push(
      list([], "10"),
      events([
        `{"type":"ADDED","object":{"kind":"Secret","metadata":{"name":"s"},"data":{"key":"${secret}"}\n`,
      ]),
      events([ev("ADDED", cm("b", "11"))], { hang: true }),
    );
    const informer = new Informer(stub.client(), configMaps, {
      backoff: { random: () => 0 },
      sleep: sleeps.sleep,
      watchTimeoutSeconds: 5,
    });
    for await (const event of informer) {
      if (event.type === "ADDED") break;
    }
    // The raw watch's error too.
    const stub2 = new StubServer().push(
      events([`{"type":"ADDED","object":{"data":{"k":"${secret}"}}x\n`]),
    );
    for await (const _ of watch(stub2.client(), configMaps)) { /* none */ }
  } catch (e) {
    errors.push(e);
  } finally {
    await reset();
  }
  assert.equal(errors.length, 1);
  assert.ok(records.some((r) => r.level === "warning"), "the bad line was not logged at all");
  const text = JSON.stringify(records.map((r) => [r.message, r.properties])) +
    inspect(errors, { depth: 10 });
  assert.ok(!text.includes(secret), text);
  assert.ok(!text.includes("super"), text);
});

test("item 9: JSON.stringify and inspection of a Config mask the proxy password", () => {
  const config = Config.fromUrl("https://10.0.0.1:6443", {
    proxyUrl: "http://me:pr0xy-PASSWORD@proxy.test:3128",
    credentials: { token: "t0ken-VALUE-1234" },
  });
  for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config)]) {
    assert.ok(!text.includes("pr0xy-PASSWORD"), text);
    assert.ok(!text.includes("t0ken-VALUE-1234"), text);
  }
  assert.match(JSON.stringify(config), /"proxyUrl":"http:\/\/me:\[redacted\]@proxy\.test:3128\/"/);
  // The setting itself is intact for the connection.
  assert.equal(config.cluster.proxyUrl, "http://me:pr0xy-PASSWORD@proxy.test:3128");
});

test("redaction: what looks like a credential is masked, prose is kept", () => {
  const cases: [string, string][] = [
    ['{"access_token": "ya29.abc123", "n": 1}', '{"access_token": "[redacted]", "n": 1}'],
    ["Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"],
    ["got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "got [redacted]"],
    ["users[0].user.token: expected a string", "users[0].user.token: expected a string"],
    ["via http://bob:hunter2@proxy:3128/", "via http://bob:[redacted]@proxy:3128/"],
    ["password=hunter2&x=1", "password=[redacted]&x=1"],
    ["-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----", "[redacted private key]"],
    ["the known s3cr3t-value here", "the known [redacted] here"],
  ];
  for (const [input, output] of cases) assert.equal(redactText(input, ["s3cr3t-value"]), output);
});
