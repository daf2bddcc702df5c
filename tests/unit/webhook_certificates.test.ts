// Webhook certificates: generation (verified as a chain), files reloaded on change with clear
// reasons for missing/invalid/expired files, and the self-managed Secret rotation on a
// VirtualClock: two replicas, overlapped CAs, no moment where a served certificate is not trusted.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pkijs from "pkijs";
import { Api } from "../../api.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import {
  certificateInfo,
  type CertificatePair,
  FileCertificates,
  generateCertificates,
  SelfManagedCertificates,
} from "../../webhook/mod.ts";
import { test } from "../_test.ts";

function ders(pem: string): Uint8Array<ArrayBuffer>[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map(
    (m) => Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0)),
  );
}

/** Whether `leaf` verifies against one of the CAs of `bundle` at time `at`. */
async function trusted(leaf: string, bundle: string, at: number): Promise<boolean> {
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: ders(bundle).map((d) => pkijs.Certificate.fromBER(d)),
    certs: [pkijs.Certificate.fromBER(ders(leaf)[0])],
    checkDate: new Date(at),
  });
  const result = await engine.verify();
  return result.result;
}

test("generateCertificates: a CA and a serving certificate for DNS names and IPs that verifies as a chain", async () => {
  const now = Date.now();
  const g = await generateCertificates({
    dnsNames: ["hook.ops.svc"],
    ipAddresses: ["127.0.0.1", "::1"],
    validityMs: 3600_000,
    now,
  });
  assert.match(g.key, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(await trusted(g.cert, g.caCert, now), true);
  assert.equal(await trusted(g.cert, g.caCert, now + 2 * 3600_000), false, "expired later");
  const other = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
  assert.equal(await trusted(g.cert, other.caCert, now), false, "another CA does not vouch for it");
  const info = certificateInfo(g.cert);
  assert.equal(info.subject, "hook.ops.svc");
  assert.equal(info.notAfter, Math.floor((now + 3600_000) / 1000) * 1000);
  // Serial numbers are positive and minimally encoded (16 bytes, top byte 0x40-0x7f): Go's x509
  // refuses a redundant leading zero byte ("malformed serial number"), which a random first byte
  // of 0x00 used to produce once in 256 certificates.
  for (let i = 0; i < 4; i++) {
    const c = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 60_000 });
    for (const pem of [c.cert, c.caCert]) {
      assert.match(new X509Certificate(pem).serialNumber, /^[4-7][0-9A-F]{31}$/i);
    }
  }
  await assert.rejects(generateCertificates({ validityMs: 1 }), /at least one DNS name or IP/);
  await assert.rejects(
    generateCertificates({ ipAddresses: ["localhost"], validityMs: 1 }),
    /not an IP address/,
  );
  assert.throws(() => certificateInfo("junk"), /no PEM CERTIFICATE block/);
});

test("FileCertificates: reads the pair, reloads it when the files change, keeps the old one on a bad rewrite, names missing/invalid/expired files", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kube-webhook-"));
  try {
    const certFile = join(dir, "tls.crt");
    const keyFile = join(dir, "tls.key");
    const clock = new VirtualClock(Date.now());
    const files = new FileCertificates({ certFile, keyFile, pollIntervalMs: 10_000, clock });
    assert.match(String(files.ready()), /not been read yet/);
    assert.equal(await files.load(), undefined);
    assert.match(String(files.ready()), new RegExp(`missing certificate file \\(${certFile}`));

    await writeFile(certFile, "not a certificate");
    await writeFile(keyFile, "nor a key");
    assert.equal(await files.load(), undefined);
    assert.match(String(files.ready()), /tls\.crt: no PEM CERTIFICATE block/);

    const expired = await generateCertificates({
      ipAddresses: ["127.0.0.1"],
      validityMs: 60_000,
      now: clock.now() - 3600_000,
    });
    await writeFile(certFile, expired.cert);
    await writeFile(keyFile, expired.key);
    assert.equal(await files.load(), undefined);
    assert.match(String(files.ready()), /tls\.crt: the certificate expired at/);

    const first = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
    await writeFile(certFile, first.cert);
    await writeFile(keyFile, first.key);
    const changes: CertificatePair[] = [];
    let changed: () => void = () => {};
    const next = () => new Promise<void>((resolve) => changed = resolve);
    const stop = new AbortController();
    let wait = next();
    const running = files.run(stop.signal, (pair) => {
      changes.push(pair);
      changed();
      return Promise.resolve();
    });
    await wait;
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(changes.length, 1);
    assert.equal(files.ready(), true);
    assert.equal(files.current()?.cert, first.cert);

    // Unchanged files: no new pair at the next poll.
    await clock.advance(10_000);
    assert.equal(changes.length, 1);

    const second = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
    await writeFile(certFile, second.cert);
    await writeFile(keyFile, second.key);
    wait = next();
    await clock.advance(10_000);
    await wait;
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(changes.length, 2);
    assert.equal(files.current()?.cert, second.cert);

    // A rewrite with junk: logged, the pair in use stays, still ready.
    await writeFile(certFile, "junk");
    await clock.advance(10_000);
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(files.current()?.cert, second.cert);
    assert.equal(files.ready(), true);
    stop.abort();
    await running;
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("FileCertificates: a pair the server refuses (key does not match) keeps the old one and says why", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kube-webhook-"));
  try {
    const a = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
    await writeFile(join(dir, "c"), a.cert);
    await writeFile(join(dir, "k"), a.key);
    const clock = new VirtualClock(Date.now());
    const files = new FileCertificates({
      certFile: join(dir, "c"),
      keyFile: join(dir, "k"),
      clock,
    });
    const stop = new AbortController();
    let calls = 0;
    let called: () => void = () => {};
    const once = new Promise<void>((r) => called = r);
    const running = files.run(stop.signal, () => {
      calls++;
      called();
      return Promise.reject(new Error("key values mismatch"));
    });
    await once;
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(calls, 1);
    assert.equal(files.current(), undefined);
    assert.match(String(files.ready()), /the pair is unusable: key values mismatch/);
    stop.abort();
    await running;
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("SelfManagedCertificates: two replicas share one Secret; rotation trusts both CAs before serving the new certificate and drops the old CA after", async () => {
  await using server = new FakeApiServer();
  const start = Date.UTC(2026, 0, 1);
  const clock = new VirtualClock(start);
  const HOUR = 3600_000;
  const bundles: string[][] = [[], []];
  const served: (string | undefined)[] = [undefined, undefined];
  const replicas = [0, 1].map((i) =>
    new SelfManagedCertificates({
      client: server.client(),
      namespace: "default",
      ipAddresses: ["127.0.0.1"],
      validityMs: 3 * HOUR,
      overlapMs: 10 * 60_000,
      pollIntervalMs: 60_000,
      clock,
      onBundle: (bundle) => {
        bundles[i].push(bundle);
        return Promise.resolve();
      },
    })
  );
  const sync = (i: number) =>
    replicas[i].sync((pair) => {
      served[i] = pair.cert;
      return Promise.resolve();
    });
  /** Every replica's served certificate is trusted by the bundle each replica last applied. */
  async function allTrusted(): Promise<void> {
    for (const cert of served) {
      for (const b of bundles) {
        assert.equal(await trusted(cert!, b.at(-1)!, clock.now()), true);
      }
    }
  }

  // Both start at once: one creates the Secret, the other adopts it (its create conflicts).
  await Promise.all([sync(0), sync(1)]);
  assert.equal(served[0], served[1]);
  assert.equal(replicas[0].ready(), true);
  const secret = await server.client().get(Api.v1Secret(), "kube-webhook-certs", {
    namespace: "default",
  });
  assert.equal(secret.type, "kubernetes.io/tls");
  assert.deepEqual(Object.keys(secret.data!).sort(), ["ca.crt", "tls.crt", "tls.key"]);
  const first = served[0]!;
  await allTrusted();

  // Nothing is due for a while.
  await clock.advance(HOUR);
  await sync(0);
  await sync(1);
  assert.equal(served[0], first);
  assert.equal(bundles[0].length, 1);

  // Two thirds of the validity (3 h 5 min from notBefore, 5 minutes before creation, so at
  // 1 h 58 min 20 s): a new CA is trusted at once, the old certificate is still served.
  await clock.advance(58 * 60_000);
  await sync(0);
  assert.equal(bundles[0].length, 1, "not due at 1 h 58 min");
  await clock.advance(2 * 60_000);
  await sync(1);
  await sync(0);
  assert.equal(served[0], first);
  assert.equal(served[1], first);
  assert.equal(bundles[0].at(-1)!.match(/BEGIN CERTIFICATE/g)?.length, 2);
  assert.equal(bundles[1].at(-1), bundles[0].at(-1));
  await allTrusted();

  // Within the overlap nothing changes; after it, whoever reads first serves the new certificate,
  // while the other still serves the old one: both are trusted.
  await clock.advance(5 * 60_000);
  await sync(0);
  assert.equal(served[0], first);
  await clock.advance(5 * 60_000);
  await sync(0);
  assert.notEqual(served[0], first);
  assert.equal(served[1], first);
  await allTrusted();
  await sync(1);
  assert.equal(served[1], served[0]);
  await allTrusted();

  // After the second overlap the old CA is dropped; the new certificate stays trusted.
  await clock.advance(10 * 60_000);
  await sync(1);
  await sync(0);
  assert.equal(bundles[0].at(-1)!.match(/BEGIN CERTIFICATE/g)?.length, 1);
  assert.equal(await trusted(first, bundles[0].at(-1)!, start + HOUR), false);
  await allTrusted();
  const after = await server.client().get(Api.v1Secret(), "kube-webhook-certs", {
    namespace: "default",
  });
  assert.deepEqual(Object.keys(after.data!).sort(), ["ca.crt", "tls.crt", "tls.key"]);
});

test("SelfManagedCertificates: a Secret with an unusable certificate is replaced; bad timing options are refused", async () => {
  await using server = new FakeApiServer();
  await server.client().create(Api.v1Secret(), {
    metadata: { name: "kube-webhook-certs", namespace: "default" },
    data: { "ca.crt": btoa("x"), "tls.crt": btoa("junk"), "tls.key": btoa("junk") },
  });
  const certs = new SelfManagedCertificates({
    client: server.client(),
    namespace: "default",
    dnsNames: ["hook.default.svc"],
  });
  let pair: CertificatePair | undefined;
  await certs.sync((p) => {
    pair = p;
    return Promise.resolve();
  });
  assert.equal(certificateInfo(pair!.cert).subject, "hook.default.svc");
  assert.equal(await trusted(pair!.cert, certs.caBundle()!, Date.now()), true);
  assert.throws(
    () =>
      new SelfManagedCertificates({
        client: server.client(),
        namespace: "default",
        dnsNames: ["x"],
        overlapMs: 1000,
        pollIntervalMs: 1000,
      }),
    /overlapMs \(1000\) must be longer than pollIntervalMs/,
  );
  assert.throws(
    () => new SelfManagedCertificates({ client: server.client(), namespace: "default" }),
    /dnsNames or ipAddresses/,
  );
});
