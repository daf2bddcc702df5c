// The webhook server over real HTTPS (through the runtime seam): routing, bad requests (wrong
// method, content type, malformed review, body over the limit), metrics with controller-runtime's
// names, readiness, a certificate swap without a restart, and the Manager running it.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { runtime } from "../../_platform/mod.ts";
import { Registry } from "../../runtime/metrics.ts";
import { Manager } from "../../runtime/manager.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import {
  type CertificatePair,
  type CertificateSource,
  deny,
  generateCertificates,
  mutate,
  validate,
  WebhookServer,
} from "../../webhook/mod.ts";
import { RUNTIME, test } from "../_test.ts";

const CM = Api.v1ConfigMap();

/** A certificate source the test drives: `push` serves a new pair. */
class ManualCertificates implements CertificateSource {
  #pair: CertificatePair | undefined;
  #onChange: ((pair: CertificatePair, bundle: string | undefined) => Promise<void>) | undefined;
  #started: Promise<void>;
  #start!: () => void;
  constructor(readonly initial?: CertificatePair) {
    this.#started = new Promise((r) => this.#start = r);
  }
  current() {
    return this.#pair;
  }
  caBundle() {
    return undefined;
  }
  ready(): true | string {
    return this.#pair ? true : "no certificate pushed yet";
  }
  async push(pair: CertificatePair): Promise<void> {
    await this.#started;
    await this.#onChange!(pair, undefined);
    this.#pair = pair;
  }
  async run(
    signal: AbortSignal,
    onChange: CertificateSource["run"] extends (s: AbortSignal, f: infer F) => unknown ? F : never,
  ) {
    this.#onChange = onChange;
    this.#start();
    if (this.initial) await this.push(this.initial);
    if (!signal.aborted) {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    }
  }
}

function review(object: unknown, uid = "u-1") {
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "ConfigMap" },
      resource: { group: "", version: "v1", resource: "configmaps" },
      operation: "CREATE",
      userInfo: { username: "alice" },
      namespace: "default",
      object,
    },
  });
}

const cm = (replicas: string) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "a", namespace: "default" },
  data: { replicas },
});

async function startServer(extra: Partial<ConstructorParameters<typeof WebhookServer>[0]> = {}) {
  const g = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
  const certs = new ManualCertificates({ cert: g.cert, key: g.key });
  const server = new WebhookServer({
    webhooks: [
      validate(CM, (req) => {
        const n = Number(req.object?.data?.replicas ?? 0);
        return n > 10 ? deny(`data.replicas must be at most 10, got ${n}`) : undefined;
      }),
      mutate(CM, (o) => {
        o.data = { ...o.data, defaulted: "yes" };
      }),
    ],
    certificates: certs,
    hostname: "127.0.0.1",
    port: 0,
    ...extra,
  });
  const registry = new Registry();
  server.registerMetrics(registry);
  const stop = new AbortController();
  const running = server.run(stop.signal);
  const port = await server.listening();
  const pool = runtime().connect({ certificateAuthority: g.caCert });
  const base = `https://127.0.0.1:${port}`;
  const post = async (path: string, body: string, type = "application/json") => {
    const r = await pool.fetch(new URL(path, base), {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    return { status: r.status, text: await r.text() };
  };
  return {
    server,
    certs,
    registry,
    pool,
    base,
    post,
    async [Symbol.asyncDispose]() {
      pool.close();
      stop.abort();
      await running;
    },
  };
}

test("WebhookServer: serves validating and mutating reviews over HTTPS; metrics carry controller-runtime's names", async () => {
  await using s = await startServer();
  const refused = await s.post("/validate-core-v1-configmap", review(cm("12")));
  assert.equal(refused.status, 200);
  const r = JSON.parse(refused.text);
  assert.equal(r.apiVersion, "admission.k8s.io/v1");
  assert.equal(r.kind, "AdmissionReview");
  assert.deepEqual(r.response, {
    uid: "u-1",
    allowed: false,
    status: { message: "data.replicas must be at most 10, got 12", reason: "Forbidden", code: 403 },
  });
  const allowed = JSON.parse((await s.post("/validate-core-v1-configmap", review(cm("3")))).text);
  assert.equal(allowed.response.allowed, true);
  const patched = JSON.parse((await s.post("/mutate-core-v1-configmap", review(cm("3")))).text);
  assert.equal(patched.response.patchType, "JSONPatch");
  assert.deepEqual(JSON.parse(atob(patched.response.patch)), [
    { op: "add", path: "/data/defaulted", value: "yes" },
  ]);
  assert.equal(s.server.ready(), true);
  const text = s.registry.expose();
  assert.match(
    text,
    /controller_runtime_webhook_requests_total\{webhook="\/validate-core-v1-configmap",code="200"\} 2/,
  );
  assert.match(
    text,
    /controller_runtime_webhook_latency_seconds_count\{webhook="\/mutate-core-v1-configmap"\} 1/,
  );
  assert.match(
    text,
    /controller_runtime_webhook_requests_in_flight\{webhook="\/validate-core-v1-configmap"\} 0/,
  );
});

test("WebhookServer: bad requests get clear 4xx answers and the server keeps serving", async () => {
  await using s = await startServer({ maxBodyBytes: 4096 });
  const unknown = await s.post("/nope", "{}");
  assert.equal(unknown.status, 404);
  assert.match(unknown.text, /no webhook is served on \/nope/);
  const get = await s.pool.fetch(new URL("/validate-core-v1-configmap", s.base), {});
  assert.equal(get.status, 405);
  await get.body?.cancel();
  const type = await s.post("/validate-core-v1-configmap", "x", "text/plain");
  assert.equal(type.status, 415);
  const junk = await s.post("/validate-core-v1-configmap", "{not json");
  assert.equal(junk.status, 400);
  assert.match(junk.text, /not JSON/);
  const old = await s.post(
    "/validate-core-v1-configmap",
    JSON.stringify({
      apiVersion: "admission.k8s.io/v1beta1",
      kind: "AdmissionReview",
      request: {},
    }),
  );
  assert.equal(old.status, 400);
  assert.match(old.text, /only admission\.k8s\.io\/v1/);
  const big = await s.post("/validate-core-v1-configmap", review(cm("1".repeat(8192))));
  assert.equal(big.status, 413);
  assert.match(big.text, /larger than 4096 bytes/);
  const fine = await s.post("/validate-core-v1-configmap", review(cm("1")));
  assert.equal(JSON.parse(fine.text).response.allowed, true);
});

test("WebhookServer: a new certificate is served to new connections without a restart", async () => {
  await using s = await startServer();
  const next = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
  await s.certs.push({ cert: next.cert, key: next.key });
  // Deno and Node swap the certificate of the listening server: the next handshake presents it.
  // Bun cannot, so a second server starts on the same port (reusePort) and the old one drains
  // for up to 2 s (so that no kept-alive POST meets a closed socket); until it stops, the kernel
  // may hand a new connection to either. There the new certificate must be served once the old
  // server has stopped.
  const deadline = Date.now() + (RUNTIME === "bun" ? 5_000 : 0);
  for (;;) {
    const pool = runtime().connect({ certificateAuthority: next.caCert });
    try {
      const r = await pool.fetch(new URL("/validate-core-v1-configmap", s.base), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: review(cm("1")),
      });
      assert.equal(JSON.parse(await r.text()).response.allowed, true);
      break;
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      pool.close();
    }
  }
  // A pair whose key does not match is refused; the server keeps the one it has.
  const other = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
  await assert.rejects(s.certs.push({ cert: next.cert, key: other.key }));
  const pool2 = runtime().connect({ certificateAuthority: next.caCert });
  try {
    const r = await pool2.fetch(new URL("/validate-core-v1-configmap", s.base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: review(cm("1")),
    });
    assert.equal(r.status, 200);
    await r.body?.cancel();
  } finally {
    pool2.close();
  }
});

test("WebhookServer: not ready, with the reason, until a certificate is loaded", async () => {
  const certs = new ManualCertificates();
  const server = new WebhookServer({
    webhooks: [validate(CM, () => undefined)],
    certificates: certs,
    hostname: "127.0.0.1",
    port: 0,
  });
  const stop = new AbortController();
  const running = server.run(stop.signal);
  assert.match(String(server.ready()), /webhook certificate: no certificate pushed yet/);
  const g = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
  await certs.push({ cert: g.cert, key: g.key });
  assert.equal(server.ready(), true);
  stop.abort();
  await running;
  assert.throws(
    () =>
      new WebhookServer({
        webhooks: [validate(CM, () => undefined), validate(CM, () => undefined, { name: "b.c.d" })],
        certificates: certs,
      }),
    /two webhooks are served on \/validate-core-v1-configmap/,
  );
});

test("Manager: the webhook server runs on a replica that does not lead; /readyz waits for the certificate; /metrics has the webhook series", async () => {
  await using fake = new FakeApiServer();
  fake.seed({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: "op", namespace: "default" },
    spec: {
      holderIdentity: "someone-else",
      leaseDurationSeconds: 3600,
      renewTime: new Date().toISOString().replace("Z", "000Z"),
    },
  } as never);
  const certs = new ManualCertificates();
  const server = new WebhookServer({
    webhooks: [validate(CM, () => undefined)],
    certificates: certs,
    hostname: "127.0.0.1",
    port: 0,
  });
  const manager = new Manager(fake.client(), {
    leaderElection: { namespace: "default", name: "op", identity: "me" },
    endpoints: { hostname: "127.0.0.1", port: 0 },
  });
  manager.add(server, { leaderOnly: false });
  const stop = new AbortController();
  const running = manager.run(stop.signal);
  try {
    let base = "";
    for (let i = 0; i < 200 && manager.endpointsPort === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    base = `http://127.0.0.1:${manager.endpointsPort}`;
    const notReady = await fetch(`${base}/readyz?verbose`);
    assert.equal(notReady.status, 500);
    assert.match(await notReady.text(), /webhook-server.*no certificate pushed yet/);
    const g = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
    await certs.push({ cert: g.cert, key: g.key });
    const port = await server.listening();
    const pool = runtime().connect({ certificateAuthority: g.caCert });
    const r = await pool.fetch(
      new URL("/validate-core-v1-configmap", `https://127.0.0.1:${port}`),
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: review(cm("1")),
      },
    );
    assert.equal(JSON.parse(await r.text()).response.allowed, true);
    pool.close();
    assert.equal(manager.leading, false, "served without leading");
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /controller_runtime_webhook_requests_total\{webhook="\/validate-core-v1-configmap",code="200"\} 1/,
    );
  } finally {
    stop.abort();
    await running;
  }
});
