// Client.request and the verbs' request shapes, with a stubbed fetch.

import assert from "node:assert/strict";
import { testConfig } from "./_helpers.ts";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Api } from "../../api.ts";
import { Client, type FetchLike } from "../../client.ts";
import { Config } from "../../config.ts";
import { ApiError, isNotFound, isTooManyRequests, isTransient } from "../../errors.ts";
import { RUNTIME, test } from "../_test.ts";
import { DENO_BIN, FIXTURES_DIR } from "../fixtures/paths.ts";

const TOKEN = "s3cr3t-token-value-never-printed";

interface Seen {
  method: string;
  url: URL;
  headers: Headers;
  body: string | undefined;
}

/** A fetch that answers from a list of responses and records each request. */
function scripted(responses: Array<() => Response | Promise<Response>>): {
  fetch: FetchLike;
  seen: Seen[];
} {
  const seen: Seen[] = [];
  const fetch: FetchLike = async (input, init) => {
    const req = new Request(input, init);
    seen.push({
      method: req.method,
      url: new URL(req.url),
      headers: req.headers,
      body: req.body ? await req.text() : undefined,
    });
    const next = responses.shift();
    if (!next) throw new Error("unexpected request");
    return await next();
  };
  return { fetch, seen };
}

function config(overrides: Partial<ConstructorParameters<typeof Config>[0]> = {}): Config {
  return testConfig({ credentials: { token: TOKEN }, namespace: "team", ...overrides });
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });

test("request: builds the URL and sends auth, accept and user agent", async () => {
  const { fetch, seen } = scripted([json(200, { kind: "PodList", items: [], metadata: {} })]);
  const client = new Client(config(), { fetch, userAgent: "test-agent" });
  await client.requestJson({
    path: "/api/v1/pods",
    query: { limit: 5, labelSelector: "a=b", x: undefined },
  });
  assert.equal(seen[0].url.href, "https://k8s.test:6443/api/v1/pods?limit=5&labelSelector=a%3Db");
  assert.equal(seen[0].headers.get("Authorization"), `Bearer ${TOKEN}`);
  assert.equal(seen[0].headers.get("Accept"), "application/json");
  assert.equal(seen[0].headers.get("User-Agent"), "test-agent");
});

test("request: basic auth, impersonation and disable-compression headers", async () => {
  const { fetch, seen } = scripted([json(200, {})]);
  const client = new Client(
    config({
      cluster: {
        server: "http://127.0.0.1:8001",
        insecureSkipTlsVerify: false,
        disableCompression: true,
      },
      credentials: { basic: { username: "admin", password: "pässword" } },
      impersonate: {
        user: "jane",
        uid: "42",
        groups: ["dev", "ops"],
        extra: { "scopes.io": ["a", "b"] },
      },
    }),
    { fetch },
  );
  await client.request({ path: "/version" });
  const h = seen[0].headers;
  assert.equal(
    h.get("Authorization"),
    `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode("admin:pässword")))}`,
  );
  assert.equal(h.get("Impersonate-User"), "jane");
  assert.equal(h.get("Impersonate-Uid"), "42");
  assert.equal(h.get("Impersonate-Group"), "dev, ops");
  assert.equal(h.get("Impersonate-Extra-scopes.io"), "a, b");
  assert.equal(h.get("Accept-Encoding"), "identity");
  assert.equal(seen[0].url.protocol, "http:");
});

test("request: 429 with a plain-text body and Retry-After is retried after that delay", async () => {
  const { fetch, seen } = scripted([
    () =>
      new Response("Too many requests, please try again later.\n", {
        status: 429,
        headers: { "Retry-After": "1" },
      }),
    json(200, { ok: true }),
  ]);
  const client = new Client(config(), { fetch });
  const started = Date.now();
  const body = await client.requestJson<{ ok: boolean }>({ path: "/x" });
  assert.deepEqual(body, { ok: true });
  assert.equal(seen.length, 2);
  // Retry-After: 1 was honoured (not the 200 ms default backoff).
  assert.ok(Date.now() - started >= 950, "retried before Retry-After elapsed");
});

test("request: a 429 that persists becomes an ApiError built from plain text", async () => {
  const responses = Array.from(
    { length: 3 },
    () => () => new Response("slow down", { status: 429, headers: { "Retry-After": "0" } }),
  );
  const { fetch, seen } = scripted(responses);
  const client = new Client(config(), { fetch, maxRetries: 2 });
  const error = await client.request({ path: "/x" }).catch((e) => e);
  assert.ok(isTooManyRequests(error));
  assert.equal(error.reason, "TooManyRequests");
  assert.equal(error.retryAfterSeconds, 0);
  assert.match(error.message, /429.*slow down/);
  assert.equal(seen.length, 3);
});

test("request: 503 is retried with backoff; 500 is not retried", async () => {
  const { fetch, seen } = scripted([
    json(503, { kind: "Status", code: 503, reason: "ServiceUnavailable" }),
    json(200, {}),
  ]);
  await new Client(config(), { fetch, retryBaseMs: 1 }).request({ path: "/x" });
  assert.equal(seen.length, 2);
  const second = scripted([
    json(500, { kind: "Status", code: 500, reason: "InternalError", message: "boom" }),
  ]);
  const error = await new Client(config(), { fetch: second.fetch }).request({ path: "/x" }).catch((
    e,
  ) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 500);
  assert.equal(second.seen.length, 1);
});

test("request: a Status body becomes an ApiError with reason, details and the request", async () => {
  const { fetch } = scripted([json(404, {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message: 'pods "web" not found',
    reason: "NotFound",
    details: { name: "web", kind: "pods" },
    code: 404,
  })]);
  const error = await new Client(config(), { fetch }).get(Api.v1Pod(), "web").catch((e) => e);
  assert.ok(isNotFound(error));
  assert.equal(error.details?.name, "web");
  assert.equal(error.method, "GET");
  // The namespace comes from the config when the Api has none.
  assert.equal(error.url, "https://k8s.test:6443/api/v1/namespaces/team/pods/web");
  assert.match(error.message, /pods "web" not found/);
});

test("request: network failures are ApiErrors with status 0, the URL and the cause", async () => {
  const fetch: FetchLike = () =>
    Promise.reject(new TypeError("error sending request: Connection refused"));
  const error = await new Client(config(), { fetch }).request({ path: "/x" }).catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 0);
  assert.match(error.message, /https:\/\/k8s\.test:6443\/x/);
  assert.ok(error.cause instanceof TypeError);
});

test({
  name: "request: a TLS failure with insecure-skip-tls-verify names the Deno flag",
  // Node and Bun skip verification per client: there is no flag to name.
  ignore: RUNTIME !== "deno",
  async fn() {
    const fetch: FetchLike = () =>
      Promise.reject(new TypeError("invalid peer certificate: UnknownIssuer"));
    const cfg = config({
      cluster: {
        server: "https://k8s.test:6443",
        insecureSkipTlsVerify: true,
        disableCompression: false,
      },
    });
    const error = await new Client(cfg, { fetch }).request({ path: "/x" }).catch((e) => e);
    assert.match(error.message, /--unsafely-ignore-certificate-errors=k8s\.test/);
  },
});

test({
  name: "request: a missing net permission names --allow-net=host:port",
  // Deno's permission model; Node's does not gate the network.
  ignore: RUNTIME !== "deno",
  async fn() {
    const fetch: FetchLike = () =>
      Promise.reject(new Deno.errors.NotCapable('Requires net access to "k8s.test:6443"'));
    const error = await new Client(config(), { fetch }).request({ path: "/x" }).catch((e) => e);
    assert.ok(error instanceof Deno.errors.NotCapable);
    assert.match(error.message, /--allow-net=k8s\.test:6443/);
  },
});

test("request: an aborted signal rejects with its reason and sends nothing more", async () => {
  const { fetch, seen } = scripted([
    () => new Response("busy", { status: 429, headers: { "Retry-After": "30" } }),
  ]);
  const controller = new AbortController();
  const pending = new Client(config(), { fetch }).request({
    path: "/x",
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(new Error("stop")), 20);
  await assert.rejects(pending, /stop/);
  assert.equal(seen.length, 1);
});

test("verbs: patch and apply send the right content types and query", async () => {
  const { fetch, seen } = scripted([json(200, {}), json(200, {}), json(200, {}), json(200, {})]);
  const client = new Client(config(), { fetch });
  const cms = Api.v1ConfigMap().within("ns");
  await client.patch(cms, "a", { data: { k: "v" } });
  await client.patch(cms, "a", [{ op: "remove", path: "/data/k" }], { type: "json" });
  await client.patch(cms, "a", { data: {} }, { type: "strategic" });
  await client.apply(cms, { metadata: { name: "a" } }, {
    fieldManager: "ctl",
    force: true,
    dryRun: true,
  });
  assert.deepEqual(seen.map((s) => s.headers.get("Content-Type")), [
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
  ]);
  assert.equal(seen[3].url.search, "?dryRun=All&fieldManager=ctl&force=true");
  assert.deepEqual(JSON.parse(seen[3].body!), {
    metadata: { name: "a" },
    apiVersion: "v1",
    kind: "ConfigMap",
  });
  await assert.rejects(
    client.patch(cms, "a", { op: "x" }, { type: "json" }),
    /array of operations/,
  );
  await assert.rejects(
    client.apply(cms, { metadata: {} }, { fieldManager: "x" }),
    /no metadata\.name/,
  );
  await assert.rejects(
    // A wrong apiVersion is a compile error with the generated types; check the run-time guard.
    client.create(
      cms,
      { apiVersion: "apps/v1", kind: "ConfigMap", metadata: { name: "x" } } as never,
    ),
    /apiVersion "apps\/v1" does not match/,
  );
});

test("verbs: delete sends DeleteOptions; followLogs yields lines and cancels the stream", async () => {
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode("line one\nline t"));
      c.enqueue(new TextEncoder().encode("wo\r\nline three\n"));
    },
    cancel() {
      cancelled = true;
    },
  });
  const { fetch, seen } = scripted([
    json(200, { kind: "Status", status: "Success" }),
    () => new Response(body),
  ]);
  const client = new Client(config(), { fetch });
  await client.delete(Api.v1Pod().within("ns"), "p", {
    propagationPolicy: "Foreground",
    gracePeriodSeconds: 0,
    preconditions: { resourceVersion: "12" },
  });
  assert.deepEqual(JSON.parse(seen[0].body!), {
    apiVersion: "v1",
    kind: "DeleteOptions",
    propagationPolicy: "Foreground",
    gracePeriodSeconds: 0,
    preconditions: { resourceVersion: "12" },
  });
  const lines: string[] = [];
  for await (
    const line of client.followLogs("p", { namespace: "ns", container: "c", tailLines: 10 })
  ) {
    lines.push(line);
    if (lines.length === 2) break;
  }
  assert.deepEqual(lines, ["line one", "line two"]);
  assert.equal(seen[1].url.pathname, "/api/v1/namespaces/ns/pods/p/log");
  assert.equal(seen[1].url.search, "?container=c&follow=true&tailLines=10");
  assert.ok(cancelled, "the log stream was not cancelled");
});

test("no secret in any log record or error over a full run of failures", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record: LogRecord) => records.push(record) },
    loggers: [
      { category: ["kube"], lowestLevel: "trace", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  const errors: unknown[] = [];
  try {
    const { fetch } = scripted([
      json(401, { kind: "Status", code: 401, reason: "Unauthorized", message: "Unauthorized" }),
      () => new Response("throttled", { status: 429, headers: { "Retry-After": "0" } }),
      json(200, {}, { Warning: '299 - "deprecated"' }),
      json(403, { kind: "Status", code: 403, reason: "Forbidden", message: "forbidden" }),
      () => Promise.reject(new TypeError("tls handshake failure")),
    ]);
    const client = new Client(
      config({
        credentials: { token: TOKEN, basic: { username: "u", password: "hunter2-password" } },
      }),
      { fetch },
    );
    for (let i = 0; i < 4; i++) {
      await client.request({ path: `/p${i}` }).catch((e) => errors.push(e));
    }
  } finally {
    await reset();
  }
  assert.ok(records.length >= 3, "the run logged nothing");
  assert.ok(errors.length >= 3);
  const text = JSON.stringify(records.map((r) => ({ m: r.message, p: r.properties }))) +
    errors.map((e) => `${e} ${(e as Error).stack} ${JSON.stringify(e)}`).join("\n");
  for (const secret of [TOKEN, "hunter2-password", btoa("u:hunter2-password"), "Bearer "]) {
    assert.ok(!text.includes(secret), `a log record or error contains ${secret.slice(0, 6)}…`);
  }
});

test("request: a failing credential plugin is a transient ApiError (status 0), not a crash", async () => {
  {
    const plugin = `${FIXTURES_DIR}exec_plugin.ts`;
    const config = await Config.fromKubeconfigString(JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://k8s.test:6443" } }],
      users: [{
        name: "u",
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1",
            command: DENO_BIN,
            args: ["run", "--allow-env", "--allow-read", "--allow-write", plugin, "--mode=fail"],
            interactiveMode: "Never",
          },
        },
      }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      "current-context": "c",
    }));
    const { fetch, seen } = scripted([]);
    const error = await new Client(config, { fetch }).request({ path: "/x" }).catch((e) => e);
    assert.ok(error instanceof ApiError, `got ${error}`);
    assert.equal(error.status, 0);
    assert.equal(error.reason, "CredentialsUnavailable");
    assert.ok(isTransient(error), "watch loops must retry it");
    assert.equal(seen.length, 0);
  }
});
