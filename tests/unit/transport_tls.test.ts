// The transport's TLS failures, against a real TLS server on 127.0.0.1 whose certificate is
// signed by a CA the client does not trust: the error names the host, the reason Deno found in
// the nested `cause` chain (UnknownIssuer), and the fixes; trusting the CA makes it work.

import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import { testConfig } from "./_helpers.ts";
import { ApiError } from "../../errors.ts";

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A CA and a server certificate for 127.0.0.1 signed by it, made with openssl. */
async function certificates(): Promise<{ ca: string; cert: string; key: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "kube-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    dir,
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=kube-test-ca",
  );
  await openssl(
    dir,
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "ext.cnf",
  );
  const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
  return {
    ca: await read("ca.pem"),
    cert: await read("server.pem"),
    key: await read("server.key"),
    dir,
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

Deno.test("transport: an untrusted server certificate names host, reason and fix; trusting its CA works", async () => {
  const { ca, cert, key, dir } = await certificates();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {}, onError: () => new Response("x") },
    () => Response.json({ major: "1" }),
  );
  try {
    const url = `https://127.0.0.1:${server.addr.port}`;
    const error = await new Client(config(url)).request({ path: "/version" }).catch((e) => e);
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /UnknownIssuer/);
    assert.match(error.message, /TLS certificate of 127\.0\.0\.1 was refused \(UnknownIssuer\)/);
    assert.match(error.message, /certificate-authority-data/);
    assert.match(error.message, /--unsafely-ignore-certificate-errors=127\.0\.0\.1\b/);
    // The generic outer message is not all the user gets.
    assert.doesNotMatch(error.message, /failed: fetch failed\.$/);

    await using trusted = new Client(config(url, ca));
    const response = await trusted.request({ path: "/version" });
    assert.deepEqual(await response.json(), { major: "1" });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("transport: a server that closes during the TLS handshake gets no certificate hint", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) conn.close(); // accept, then hang up before any TLS
  })();
  try {
    const url = `https://127.0.0.1:${listener.addr.port}`;
    const error = await new Client(config(url), { maxRetries: 0 }).request({ path: "/version" })
      .catch((e) => e);
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /Cannot reach the Kubernetes API server/);
    assert.doesNotMatch(error.message, /certificate/i);
  } finally {
    listener.close();
    await accepting.catch(() => {});
  }
});
