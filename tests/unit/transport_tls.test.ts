// The transport's TLS failures, against a real TLS server on 127.0.0.1 whose certificate is
// signed by a CA the client does not trust (tests/fixtures/tls/): the error names the host, the
// reason the runtime found in the nested `cause` chain (UnknownIssuer on Deno), and the fixes;
// trusting the CA makes it work. Runs on every runtime.

import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import { testConfig } from "./_helpers.ts";
import { ApiError } from "../../errors.ts";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { RUNTIME, test } from "../_test.ts";
import { FIXTURES_DIR } from "../fixtures/paths.ts";

const TLS_DIR = `${FIXTURES_DIR}tls/`;

/** An HTTPS server on loopback with a certificate for 127.0.0.1 signed by the fixture CA. */
async function httpsServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer({
    cert: readFileSync(`${TLS_DIR}server.crt`, "utf8"),
    key: readFileSync(`${TLS_DIR}server.key`, "utf8"),
  }, (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ major: "1" }));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function config(server: string, certificateAuthority?: string) {
  return testConfig({
    cluster: {
      server,
      insecureSkipTlsVerify: false,
      disableCompression: false,
      certificateAuthority,
    },
  });
}

test("transport: an untrusted server certificate names host, reason and fix; trusting its CA works", async () => {
  const ca = readFileSync(`${TLS_DIR}ca.crt`, "utf8");
  const server = await httpsServer();
  try {
    const url = server.url;
    const error = await new Client(config(url)).request({ path: "/version" }).catch((e) => e);
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /TLS certificate of 127\.0\.0\.1 was refused \(/);
    assert.match(error.message, /certificate-authority-data/);
    if (RUNTIME === "deno") {
      assert.match(error.message, /UnknownIssuer/);
      assert.match(error.message, /TLS certificate of 127\.0\.0\.1 was refused \(UnknownIssuer\)/);
      assert.match(error.message, /--unsafely-ignore-certificate-errors=127\.0\.0\.1\b/);
    } else {
      // Node and Bun name their own reason, and can skip verification per cluster.
      assert.match(
        error.message,
        /was refused \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|[A-Z_]*CERT[A-Z_]*)\)/,
      );
      assert.match(error.message, /insecure-skip-tls-verify: true/);
    }
    // The generic outer message is not all the user gets.
    assert.doesNotMatch(error.message, /failed: fetch failed\.$/);

    await using trusted = new Client(config(url, ca));
    const response = await trusted.request({ path: "/version" });
    assert.deepEqual(await response.json(), { major: "1" });
  } finally {
    await server.close();
  }
});

test("transport: a server that closes during the TLS handshake gets no certificate hint", async () => {
  // Accept, then hang up before any TLS.
  const server = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const error = await new Client(config(url), { maxRetries: 0 }).request({ path: "/version" })
      .catch((e) => e);
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /Cannot reach the Kubernetes API server/);
    assert.doesNotMatch(error.message, /certificate/i);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
