// The runtime seam (_platform/) on whichever runtime runs this file: TLS trust, client
// certificates (switching between two, the Bun bug oven-sh/bun#26125), tls-server-name and
// insecure-skip-tls-verify where the runtime can do them, serving with early headers, child
// processes and file reads. Runs on Deno, Node and Bun (tools/cross_runtime.ts).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  type AddressInfo,
  connect as connectTcp,
  createServer as createTcpServer,
  type Socket,
} from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { RUNTIME, test } from "../_test.ts";
import { runtime } from "../../_platform/mod.ts";
import { checkCertificateReuse, compareVersions } from "../../_platform/bun.ts";

const TLS_DIR = new URL("../fixtures/tls/", import.meta.url);
const pem = (name: string) => readFileSync(new URL(name, TLS_DIR), "utf8");
const CA = pem("ca.crt");

/**
 * An HTTPS server on loopback that asks for a client certificate and answers with its CN. It is a
 * node:tls server with a minimal HTTP/1.1 answer (one request per connection) because Bun's
 * node:https server does not expose the peer certificate.
 */
async function tlsServer(name = "server"): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer({
    cert: pem(`${name}.crt`),
    key: pem(`${name}.key`),
    ca: CA,
    requestCert: true,
    rejectUnauthorized: false,
  }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const peer = socket.getPeerCertificate();
    const cn = peer && peer.subject ? String(peer.subject.CN) : "none";
    const body = socket.authorized ? cn : `unauthorized:${cn}`;
    socket.once("data", () => {
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    });
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

test({
  name: "runtime: detects the runtime it runs on",
  fn() {
    assert.equal(runtime().name, RUNTIME);
    assert.match(runtime().version, /^\d+\.\d+\.\d+/);
  },
});

test({
  name: "runtime transport: trusts the given CA and presents the client certificate it is given",
  async fn() {
    const server = await tlsServer();
    const rt = runtime();
    const alice = rt.connect({
      certificateAuthority: CA,
      clientCertificate: { cert: pem("alice.crt"), key: pem("alice.key") },
    });
    const bob = rt.connect({
      certificateAuthority: CA,
      clientCertificate: { cert: pem("bob.crt"), key: pem("bob.key") },
    });
    const anonymous = rt.connect({ certificateAuthority: CA });
    try {
      const url = new URL(server.url);
      // Alternate: a runtime that reuses the first certificate (oven-sh/bun#26125) fails here.
      for (const [transport, want] of [[alice, "alice"], [bob, "bob"], [alice, "alice"]] as const) {
        const res = await transport.fetch(url, {});
        assert.equal(await res.text(), want);
      }
      assert.equal(await (await anonymous.fetch(url, {})).text(), "unauthorized:none");
    } finally {
      alice.close();
      bob.close();
      anonymous.close();
      await server.close();
    }
  },
});

test({
  name: "runtime transport: an untrusted server certificate fails, unless verification is skipped",
  // Deno cannot skip verification per client (only per process).
  ignore: RUNTIME === "deno",
  async fn() {
    const server = await tlsServer();
    const rt = runtime();
    const strict = rt.connect({});
    const insecure = rt.connect({ insecureSkipTlsVerify: true });
    try {
      await assert.rejects(strict.fetch(new URL(server.url), {}));
      assert.equal(rt.supports.insecureSkipTlsVerify, true);
      assert.equal(
        await (await insecure.fetch(new URL(server.url), {})).text(),
        "unauthorized:none",
      );
    } finally {
      strict.close();
      insecure.close();
      await server.close();
    }
  },
});

test({
  name: "runtime transport: tls-server-name verifies against that name instead of the URL's host",
  // Deno's fetch cannot verify against another name; the config loader refuses it there.
  ignore: RUNTIME === "deno",
  async fn() {
    const server = await tlsServer("renamed");
    const rt = runtime();
    const byHost = rt.connect({ certificateAuthority: CA });
    const byName = rt.connect({ certificateAuthority: CA, tlsServerName: "apiserver.internal" });
    const wrongName = rt.connect({ certificateAuthority: CA, tlsServerName: "other.internal" });
    try {
      // The certificate names apiserver.internal only, not 127.0.0.1.
      await assert.rejects(byHost.fetch(new URL(server.url), {}));
      assert.equal(await (await byName.fetch(new URL(server.url), {})).text(), "unauthorized:none");
      await assert.rejects(wrongName.fetch(new URL(server.url), {}));
    } finally {
      byHost.close();
      byName.close();
      wrongName.close();
      await server.close();
    }
  },
});

test("runtime bun: a Bun before the mTLS fix refuses a second client certificate for a server", () => {
  assert.ok(compareVersions("1.3.6", "1.3.7") < 0);
  assert.ok(compareVersions("1.4.0", "1.3.7") > 0);
  assert.equal(compareVersions("1.3.7", "1.3.7"), 0);
  const origin = `https://reuse-${Math.random()}.test:6443`;
  checkCertificateReuse("1.3.6", origin, "CERT-A");
  checkCertificateReuse("1.3.6", origin, "CERT-A");
  assert.throws(
    () => checkCertificateReuse("1.3.6", origin, "CERT-B"),
    /Bun 1\.3\.6 cannot switch client certificates.*oven-sh\/bun#26125.*1\.3\.7/,
  );
  // No certificate after one is a switch too (Bun 1.3.6 presented the first one anyway).
  assert.throws(() => checkCertificateReuse("1.3.6", origin, ""), /cannot switch/);
  // A fixed Bun switches freely.
  checkCertificateReuse("1.4.5", origin, "CERT-B");
  checkCertificateReuse("1.4.5", origin, "");
});

test("runtime serve: headers arrive before the first body chunk, and a client that leaves cancels the body", async () => {
  let cancelled: (reason: unknown) => void = () => {};
  const cancelledPromise = new Promise((resolve) => (cancelled = resolve));
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = await runtime().serve(async (request) => {
    if (new URL(request.url).pathname === "/echo") {
      return new Response(`${request.method} ${await request.text()}`, { status: 201 });
    }
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await released;
        // One event, then quiet until the client leaves (like a watch with nothing to say).
        if (!sent) controller.enqueue(new TextEncoder().encode("event\n"));
        sent = true;
        if (sent) await cancelledPromise;
      },
      cancel(reason) {
        cancelled(reason ?? "cancelled");
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const echo = await fetch(`${base}/echo`, { method: "POST", body: "hello" });
    assert.equal(echo.status, 201);
    assert.equal(await echo.text(), "POST hello");
    const controller = new AbortController();
    // No chunk has been written yet: the response (its headers) must still arrive.
    const res = await fetch(`${base}/watch`, { signal: controller.signal });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    release();
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), "event\n");
    await reader.cancel();
    controller.abort();
    await cancelledPromise;
  } finally {
    release();
    await server.close();
  }
});

test("runtime run: exit code, output, missing command and abort", async () => {
  const rt = runtime();
  const out = await rt.run("sh", {
    args: ["-c", 'printf out; printf "err $X" >&2; exit 3'],
    env: { X: "from-env" },
  });
  assert.equal(out.success, false);
  assert.equal(out.code, 3);
  assert.equal(new TextDecoder().decode(out.stdout), "out");
  assert.equal(new TextDecoder().decode(out.stderr), "err from-env");
  const ok = await rt.run("sh", { args: ["-c", "true"], env: {} });
  assert.equal(ok.success, true);
  const missing = await rt.run("denokube-no-such-command", { args: [], env: {} }).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(rt.isNotFound(missing), `not a not-found error: ${missing}`);
  const controller = new AbortController();
  const slow = rt.run("sleep", { args: ["30"], env: {}, signal: controller.signal }).then(
    (o) => o,
    (e) => e,
  );
  setTimeout(() => controller.abort(), 50);
  const killed = await slow;
  // Killed: either the runtime rejects with the abort, or reports the signal.
  assert.ok(
    killed instanceof Error || (killed.success === false && killed.signal !== null),
    `not killed: ${JSON.stringify(killed)}`,
  );
});

test("runtime files and env: a missing file is isNotFound, an unset variable is undefined", async () => {
  const rt = runtime();
  const error = await rt.readTextFile("/nonexistent/denokube/file").then(() => undefined, (e) => e);
  assert.ok(rt.isNotFound(error));
  assert.equal(rt.isPermissionError(error), false);
  assert.equal(rt.env("DENOKUBE_SURELY_UNSET_VARIABLE"), undefined);
  assert.ok(rt.env("PATH"));
  assert.match(await rt.readTextFile(new URL("ca.crt", TLS_DIR).pathname), /BEGIN CERTIFICATE/);
});

test("runtime permissions: the flag and error name the runtime's own flag", () => {
  const rt = runtime();
  const need = { kind: "read", paths: ["/etc/kube/config"] } as const;
  const error = rt.permissionError(need, "reading the kubeconfig file /etc/kube/config");
  if (RUNTIME === "deno") {
    assert.equal(rt.flag(need), "--allow-read=/etc/kube/config");
    assert.match(error.message, /run again with --allow-read=\/etc\/kube\/config\./);
    assert.ok(rt.isPermissionError(error));
  } else if (RUNTIME === "node") {
    assert.equal(rt.flag(need), "--allow-fs-read=/etc/kube/config");
    assert.equal(rt.flag({ kind: "run", command: "aws" }), "--allow-child-process");
    assert.equal(rt.flag({ kind: "env", names: ["HOME"] }), undefined);
    assert.match(error.message, /--allow-fs-read=\/etc\/kube\/config/);
    assert.ok(rt.isPermissionError(error));
  } else {
    assert.equal(rt.flag(need), undefined);
    assert.equal(rt.isPermissionError(error), false);
  }
  assert.match(error.message, /^Reading the kubeconfig file/);
});

test("runtime transport: what each runtime can do per client", () => {
  const { supports } = runtime();
  assert.equal(supports.insecureSkipTlsVerify, RUNTIME !== "deno");
  assert.equal(supports.tlsServerName, RUNTIME !== "deno");
  assert.equal(supports.socks5Proxy, RUNTIME !== "bun");
});

/** An HTTP CONNECT proxy on loopback that wants basic auth; it records what it was asked. */
async function connectProxy(): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    let head = "";
    const onData = (chunk: Uint8Array) => {
      head += new TextDecoder().decode(chunk);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const [line, ...headers] = head.slice(0, end).split("\r\n");
      const auth = headers.find((h) => /^proxy-authorization:/i.test(h))?.split(": ")[1] ?? "";
      seen.push(`${line} ${auth}`);
      const [method, target] = line.split(" ");
      if (method !== "CONNECT") return void client.end("HTTP/1.1 405 Method Not Allowed\r\n\r\n");
      if (auth !== `Basic ${btoa("user:pa@ss")}`) {
        return void client.end("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
      }
      const [host, port] = target.split(":");
      const upstream = connectTcp(Number(port), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client);
        client.pipe(upstream);
      });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

test("runtime transport: an http proxy with credentials in its URL tunnels TLS and mTLS", async () => {
  const server = await tlsServer();
  const proxy = await connectProxy();
  const rt = runtime();
  const target = new URL(server.url);
  const pool = rt.connect({
    certificateAuthority: CA,
    clientCertificate: { cert: pem("alice.crt"), key: pem("alice.key") },
    proxyUrl: `http://user:pa%40ss@127.0.0.1:${proxy.port}`,
  });
  try {
    assert.equal(await (await pool.fetch(target, {})).text(), "alice");
    assert.ok(
      proxy.seen.some((s) => s.startsWith(`CONNECT 127.0.0.1:${target.port} HTTP/1.1 Basic `)),
      `the proxy saw ${JSON.stringify(proxy.seen)}`,
    );
  } finally {
    pool.close();
    await proxy.close();
    await server.close();
  }
});

/** A SOCKS5 proxy on loopback (no authentication, CONNECT only); it records the targets. */
async function socksProxy(): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    let buffer = new Uint8Array(0);
    let stage: "greeting" | "request" | "done" = "greeting";
    const onData = (chunk: Uint8Array) => {
      const next = new Uint8Array(buffer.length + chunk.length);
      next.set(buffer);
      next.set(chunk, buffer.length);
      buffer = next;
      if (stage === "greeting" && buffer.length >= 2 && buffer.length >= 2 + buffer[1]) {
        buffer = buffer.slice(2 + buffer[1]);
        client.write(new Uint8Array([5, 0]));
        stage = "request";
      }
      if (stage !== "request" || buffer.length < 5) return;
      let host: string;
      let offset: number;
      if (buffer[3] === 1) {
        host = Array.from(buffer.slice(4, 8)).join(".");
        offset = 8;
      } else if (buffer[3] === 3) {
        host = new TextDecoder().decode(buffer.slice(5, 5 + buffer[4]));
        offset = 5 + buffer[4];
      } else {
        return void client.destroy();
      }
      if (buffer.length < offset + 2) return;
      const port = buffer[offset] * 256 + buffer[offset + 1];
      stage = "done";
      client.off("data", onData);
      seen.push(`${host}:${port}`);
      const upstream = connectTcp(port, host, () => {
        client.write(new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        upstream.pipe(client);
        client.pipe(upstream);
      });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

test("runtime transport: a socks5 proxy on Deno and Node; refused on Bun with the reason", async () => {
  const rt = runtime();
  if (!rt.supports.socks5Proxy) {
    assert.throws(
      () => rt.connect({ proxyUrl: "socks5://127.0.0.1:1080" }),
      /http:\/\/ and https:\/\/ proxies only/,
    );
    return;
  }
  const server = await tlsServer();
  const proxy = await socksProxy();
  const target = new URL(server.url);
  const pool = rt.connect({
    certificateAuthority: CA,
    clientCertificate: { cert: pem("bob.crt"), key: pem("bob.key") },
    proxyUrl: `socks5://127.0.0.1:${proxy.port}`,
  });
  try {
    assert.equal(await (await pool.fetch(target, {})).text(), "bob");
    assert.deepEqual(proxy.seen, [`127.0.0.1:${target.port}`]);
  } finally {
    pool.close();
    await proxy.close();
    await server.close();
  }
});
