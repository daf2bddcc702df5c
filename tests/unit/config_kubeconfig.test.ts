import assert from "node:assert/strict";
import { Config } from "../../config.ts";
import { splitKubeconfigPaths } from "../../_client/kubeconfig.ts";
import { errorOf, FIXTURE_DIR, kubeconfig, tempDir } from "../fixtures/kubeconfig/helpers.ts";
import { RUNTIME, test } from "../_test.ts";
import { readFile } from "node:fs/promises";
import { runtime } from "../../_platform/mod.ts";

const FULL = `${FIXTURE_DIR}/full.yaml`;
const CA = await readFile(`${FIXTURE_DIR}/ca.crt`, "utf8");
const CLIENT_CERT = await readFile(`${FIXTURE_DIR}/client.crt`, "utf8");
const CLIENT_KEY = await readFile(`${FIXTURE_DIR}/client.key`, "utf8");
const b64 = (s: string) => btoa(s);

test("fromKubeconfig: every cluster field, files resolved against the kubeconfig's directory", async () => {
  const config = await Config.fromKubeconfig({ path: FULL });
  assert.equal(config.server, "https://full.example.test:6443");
  assert.deepEqual(config.cluster, {
    server: "https://full.example.test:6443",
    certificateAuthority: CA,
    insecureSkipTlsVerify: false,
    proxyUrl: "socks5://127.0.0.1:1080",
    disableCompression: true,
  });
  assert.equal(config.namespace, "team-a");
  assert.equal(config.source, `kubeconfig ${FULL} (context "full")`);
});

test("fromKubeconfig: client certificate files and impersonation", async () => {
  const config = await Config.fromKubeconfig({ path: FULL });
  const creds = await config.credentials();
  assert.deepEqual(creds, { clientCertificate: { cert: CLIENT_CERT, key: CLIENT_KEY } });
  assert.deepEqual(config.impersonate, {
    user: "jane",
    uid: "1234",
    groups: ["devs", "ops"],
    extra: { reason: ["testing", "fixtures"] },
  });
  assert.equal(config.invalidateCredentials(), false);
});

test("fromKubeconfig: insecure-skip-tls-verify, basic auth and the context namespace", async () => {
  const config = await Config.fromKubeconfig({ path: FULL, context: "basic" });
  assert.equal(config.cluster.insecureSkipTlsVerify, true);
  assert.equal(config.cluster.certificateAuthority, undefined);
  assert.equal(config.server, "http://insecure.example.test");
  assert.equal(config.namespace, "basic-ns");
  assert.deepEqual(await config.credentials(), {
    basic: { username: "admin", password: "s3cret-password-value" },
  });
  assert.equal(config.impersonate, undefined);
});

test("fromKubeconfig: a context without user is anonymous; namespace defaults to default", async () => {
  const config = await Config.fromKubeconfig({ path: FULL, context: "anonymous" });
  assert.deepEqual(await config.credentials(), {});
  assert.equal(config.namespace, "default");
});

test("fromKubeconfig: tokenFile (relative) wins over token once read", async () => {
  const config = await Config.fromKubeconfig({ path: FULL, context: "token-file" });
  assert.equal((await config.credentials()).token, "token-from-fixture-file");
  assert.equal(config.invalidateCredentials(), true);
});

test("fromKubeconfig: cluster, user and namespace overrides", async () => {
  const config = await Config.fromKubeconfig({
    path: FULL,
    context: "full",
    cluster: "insecure-cluster",
    user: "basic-user",
    namespace: "override",
  });
  assert.equal(config.server, "http://insecure.example.test");
  assert.equal(config.namespace, "override");
  assert.equal((await config.credentials()).basic?.username, "admin");
});

test("fromKubeconfig: cluster and user without any context", async () => {
  const text = JSON.stringify({
    clusters: [{ name: "c", cluster: { server: "https://c.test" } }],
    users: [{ name: "u", user: { token: "tok" } }],
  });
  const config = await Config.fromKubeconfigString(text, { cluster: "c", user: "u" });
  assert.equal(config.server, "https://c.test");
  assert.equal((await config.credentials()).token, "tok");
  assert.equal(config.source, `kubeconfig <string> (cluster "c", user "u")`);
});

test("fromKubeconfigString: -data fields are base64-decoded to PEM", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig(
      { "client-certificate-data": b64(CLIENT_CERT), "client-key-data": b64(CLIENT_KEY) },
      { "certificate-authority-data": b64(CA) },
    ),
  );
  assert.equal(config.cluster.certificateAuthority, CA);
  assert.deepEqual((await config.credentials()).clientCertificate, {
    cert: CLIENT_CERT,
    key: CLIENT_KEY,
  });
});

test("fromKubeconfigString: -data wins over the file form", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig({}, {
      "certificate-authority-data": b64(CLIENT_CERT),
      "certificate-authority": "/does/not/exist.crt",
    }),
  );
  assert.equal(config.cluster.certificateAuthority, CLIENT_CERT);
});

test("fromKubeconfigString: bad base64 names the field, the file and never the value", async () => {
  const secret = "!!!not-base64-secret-key-material!!!";
  const err = await errorOf(() =>
    Config.fromKubeconfigString(
      kubeconfig({ "client-certificate-data": b64(CLIENT_CERT), "client-key-data": secret }),
      { path: "/etc/kube/test.yaml" },
    )
  );
  assert.ok(err instanceof TypeError);
  assert.match(err.message, /\/etc\/kube\/test\.yaml/);
  assert.match(err.message, /users\[0\]\.user\.client-key-data/);
  assert.match(err.message, /user "test-user"/);
  assert.match(err.message, /not valid base64/);
  assert.ok(!err.message.includes(secret));
});

test("fromKubeconfigString: base64 of something that is not PEM is rejected", async () => {
  const err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({}, { "certificate-authority-data": b64("hello") }))
  );
  assert.match(err.message, /clusters\[0\]\.cluster\.certificate-authority-data/);
  assert.match(err.message, /PEM/);
});

test("fromKubeconfigString: missing certificate file names the file, the field and the kubeconfig", async () => {
  await using dir = await tempDir();
  const path = await dir.write(
    "config",
    kubeconfig({}, { "certificate-authority": "missing-ca.crt" }),
  );
  const err = await errorOf(() => Config.fromKubeconfig({ path }));
  assert.match(err.message, new RegExp(`${dir.path}/missing-ca\\.crt`));
  assert.match(err.message, /clusters\[0\]\.cluster\.certificate-authority/);
  assert.ok(err.message.includes(path));
  assert.ok(runtime().isNotFound(err.cause));
});

test("fromKubeconfigString: server normalisation", async () => {
  const load = async (server: string) =>
    (await Config.fromKubeconfigString(kubeconfig({}, { server }))).server;
  assert.equal(await load("https://a.test:6443/"), "https://a.test:6443");
  assert.equal(await load("a.test:6443"), "https://a.test:6443");
  assert.equal(
    await load("https://rancher.test/k8s/clusters/c-1/"),
    "https://rancher.test/k8s/clusters/c-1",
  );
  assert.equal(await load("https://[::1]:6443"), "https://[::1]:6443");
});

test("fromKubeconfigString: bad servers", async () => {
  let err = await errorOf(() => Config.fromKubeconfigString(kubeconfig({}, { server: "" })));
  assert.match(err.message, /clusters\[0\]\.cluster\.server \(cluster "test-cluster"\) is missing/);
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({}, { server: "ftp://a.test" }))
  );
  assert.match(err.message, /clusters\[0\]\.cluster\.server.*unsupported scheme "ftp:"/);
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({}, { server: "https://me:hunter2pass@a.test" }))
  );
  assert.match(err.message, /credentials in the URL/);
  assert.ok(!err.message.includes("hunter2pass"));
});

test("fromKubeconfigString: tls-server-name equal to the host is a no-op; another name is used on Node and Bun, refused on Deno", async () => {
  const ok = await Config.fromKubeconfigString(
    kubeconfig({}, { server: "https://API.test:6443", "tls-server-name": "api.test" }),
  );
  assert.equal(ok.server, "https://api.test:6443");
  assert.equal(ok.cluster.tlsServerName, undefined);
  const other = () =>
    Config.fromKubeconfigString(
      kubeconfig({}, { server: "https://10.0.0.1:6443", "tls-server-name": "kubernetes" }),
      { path: "/k/config" },
    );
  if (RUNTIME !== "deno") {
    assert.equal((await other()).cluster.tlsServerName, "kubernetes");
    return;
  }
  const err = await errorOf(other);
  assert.ok(err instanceof TypeError);
  assert.match(err.message, /\/k\/config/);
  assert.match(err.message, /clusters\[0\]\.cluster\.tls-server-name/);
  assert.match(err.message, /Deno's fetch/);
  assert.match(err.message, /server URL whose host matches the certificate/);
});

test("fromKubeconfigString: proxy-url schemes", async () => {
  for (const proxy of ["http://p.test:3128", "https://p.test", "socks5://127.0.0.1:1080"]) {
    const config = await Config.fromKubeconfigString(kubeconfig({}, { "proxy-url": proxy }));
    assert.equal(config.cluster.proxyUrl, proxy);
  }
  let err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({}, { "proxy-url": "ftp://user:proxypass@p.test" }))
  );
  assert.match(err.message, /clusters\[0\]\.cluster\.proxy-url.*"ftp:"/);
  assert.ok(!err.message.includes("proxypass"));
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({}, { "proxy-url": "not a url proxypass" }))
  );
  assert.match(err.message, /proxy-url.*not a valid URL/);
  assert.ok(!err.message.includes("proxypass"));
});

test("fromKubeconfigString: insecure-skip-tls-verify with a CA is refused like kubectl", async () => {
  const err = await errorOf(() =>
    Config.fromKubeconfigString(
      kubeconfig({}, { "insecure-skip-tls-verify": true, "certificate-authority-data": b64(CA) }),
    )
  );
  assert.match(err.message, /clusters\[0\]\.cluster\.insecure-skip-tls-verify/);
});

test("fromKubeconfigString: token and basic auth together are refused", async () => {
  const err = await errorOf(() =>
    Config.fromKubeconfigString(
      kubeconfig({ token: "tok-secret-123456", username: "u", password: "pw-secret-123456" }),
    )
  );
  assert.match(err.message, /users\[0\]\.user\.token \(user "test-user"\)/);
  assert.match(err.message, /only one of token and basic/);
  assert.ok(!err.message.includes("tok-secret-123456"));
  assert.ok(!err.message.includes("pw-secret-123456"));
});

test("fromKubeconfigString: a client certificate without key (and vice versa) is refused", async () => {
  let err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({ "client-certificate-data": b64(CLIENT_CERT) }))
  );
  assert.match(err.message, /users\[0\]\.user\.client-key .*is missing/);
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({ "client-key-data": b64(CLIENT_KEY) }))
  );
  assert.match(err.message, /users\[0\]\.user\.client-certificate .*is missing/);
  assert.ok(!err.message.includes(b64(CLIENT_KEY)));
});

test("fromKubeconfigString: impersonation without as is refused", async () => {
  const err = await errorOf(() => Config.fromKubeconfigString(kubeconfig({ "as-groups": ["g"] })));
  assert.match(err.message, /users\[0\]\.user\.as /);
});

test("fromKubeconfigString: disable-compression defaults to false", async () => {
  const config = await Config.fromKubeconfigString(kubeconfig({}));
  assert.equal(config.cluster.disableCompression, false);
  assert.equal(config.cluster.insecureSkipTlsVerify, false);
  assert.equal(config.cluster.proxyUrl, undefined);
});

test("fromKubeconfigString: JSON kubeconfigs and null lists are accepted", async () => {
  const config = await Config.fromKubeconfigString(
    `{"clusters":[{"name":"c","cluster":{"server":"https://c.test"}}],"users":null,` +
      `"contexts":[{"name":"x","context":{"cluster":"c"}}],"current-context":"x"}`,
  );
  assert.equal(config.server, "https://c.test");
});

test("context selection errors list what exists and how to fix", async () => {
  let err = await errorOf(() => Config.fromKubeconfig({ path: FULL, context: "nope" }));
  assert.match(err.message, /the requested context "nope" does not exist/);
  assert.match(err.message, /"full", "token-file", "basic", "anonymous"/);
  assert.ok(err.message.includes(FULL));

  err = await errorOf(() =>
    Config.fromKubeconfigString(
      JSON.stringify({ "current-context": "gone", contexts: [] }),
      { path: "/x/config" },
    )
  );
  assert.match(err.message, /current-context in \/x\/config "gone" does not exist/);
  assert.match(err.message, /use-context/);

  err = await errorOf(() =>
    Config.fromKubeconfigString(
      JSON.stringify({ contexts: [{ name: "a", context: { cluster: "c" } }] }),
    )
  );
  assert.match(err.message, /no current-context is set/);
  assert.match(err.message, /Available contexts: "a"/);

  err = await errorOf(() =>
    Config.fromKubeconfigString(
      JSON.stringify({
        "current-context": "a",
        contexts: [{ name: "a", context: { cluster: "c", user: "ghost" } }],
        clusters: [{ name: "c", cluster: { server: "https://c.test" } }],
      }),
    )
  );
  assert.match(err.message, /contexts\[0\]\.context\.user .*"ghost" does not exist/);

  err = await errorOf(() =>
    Config.fromKubeconfigString(
      JSON.stringify({
        "current-context": "a",
        contexts: [{ name: "a", context: { cluster: "missing" } }],
      }),
    )
  );
  assert.match(err.message, /contexts\[0\]\.context\.cluster .*"missing" does not exist/);
});

test("schema errors name the file and the field path, not the value", async () => {
  const text = JSON.stringify({
    users: [
      { name: "a", user: {} },
      { name: "b", user: { token: "x" } },
      {
        name: "c",
        user: { exec: { apiVersion: 42, command: "x" }, password: ["s3cr3t-in-array"] },
      },
    ],
  });
  const err = await errorOf(() => Config.fromKubeconfigString(text, { path: "/home/me/kc" }));
  assert.ok(err instanceof TypeError);
  assert.match(err.message, /Invalid kubeconfig \/home\/me\/kc/);
  assert.match(err.message, /users\[2\]\.user\.exec\.apiVersion: expected string/);
  assert.match(err.message, /users\[2\]\.user\.password: expected string/);
  assert.ok(!err.message.includes("s3cr3t-in-array"));
});

test("invalid YAML reports the line and column but not the text", async () => {
  const text =
    `apiVersion: v1\nusers:\n- name: a\n  user:\n    token: "abc-very-secret\n  bad: [\n`;
  const err = await errorOf(() => Config.fromKubeconfigString(text, { path: "/p/kc" }));
  assert.match(err.message, /Invalid kubeconfig \/p\/kc: not valid YAML at line \d+, column \d+/);
  assert.ok(!err.message.includes("abc-very-secret"));
});

test("a name defined twice in one file is an error", async () => {
  const err = await errorOf(() =>
    Config.fromKubeconfigString(
      JSON.stringify({
        clusters: [
          { name: "c", cluster: { server: "https://a.test" } },
          { name: "c", cluster: { server: "https://b.test" } },
        ],
      }),
    )
  );
  assert.match(err.message, /clusters\[1\]\.name: the name "c" is already used by clusters\[0\]/);
});

test("merge: first file wins for names and current-context; relative paths follow their file", async () => {
  const first = `${FIXTURE_DIR}/merge/first.yaml`;
  const second = `${FIXTURE_DIR}/merge/second/second.yaml`;
  const config = await Config.fromKubeconfig({ path: [first, second] });
  // current-context "shared" comes from the first file, and so do its context/cluster/user.
  assert.equal(config.server, "https://first.example.test");
  assert.equal(config.namespace, "first-ns");
  assert.equal((await config.credentials()).token, "first-token");
  assert.equal(config.source, `kubeconfig ${first}, ${second} (context "shared")`);

  // A context only in the second file, whose cluster's relative CA resolves against second/,
  // and whose user name is taken from the first file.
  const other = await Config.fromKubeconfig({ path: [first, second], context: "second-only" });
  assert.equal(other.server, "https://second-only.example.test");
  assert.equal(
    other.cluster.certificateAuthority,
    await readFile(`${FIXTURE_DIR}/merge/second/second-ca.crt`, "utf8"),
  );
  assert.equal((await other.credentials()).token, "first-token");
  assert.equal(other.namespace, "second-only-ns");

  // Reversed order: the second file's entries win.
  const reversed = await Config.fromKubeconfig({ path: [second, first] });
  assert.equal(reversed.namespace, "second-only-ns");
  assert.equal((await reversed.credentials()).token, "second-token");
});

test("merge: an explicit path that does not exist is an error", async () => {
  const err = await errorOf(() =>
    Config.fromKubeconfig({ path: [`${FIXTURE_DIR}/merge/first.yaml`, "/nonexistent/kc"] })
  );
  assert.match(err.message, /The kubeconfig file \/nonexistent\/kc does not exist/);
});

test("splitKubeconfigPaths: ':' on Unix, ';' on Windows, empty and duplicate entries dropped", () => {
  assert.deepEqual(splitKubeconfigPaths("/a:/b::/a:/c", "linux"), ["/a", "/b", "/c"]);
  assert.deepEqual(splitKubeconfigPaths("C:\\a;C:\\b;;", "windows"), ["C:\\a", "C:\\b"]);
});

test("auth-provider: gcp and azure are refused with a migration hint", async () => {
  let err = await errorOf(() =>
    Config.fromKubeconfigString(
      kubeconfig({ "auth-provider": { name: "gcp", config: { "access-token": "ya29.secret" } } }),
    )
  );
  assert.match(err.message, /users\[0\]\.user\.auth-provider/);
  assert.match(err.message, /gke-gcloud-auth-plugin/);
  assert.ok(!err.message.includes("ya29.secret"));
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({ "auth-provider": { name: "azure" } }))
  );
  assert.match(err.message, /kubelogin/);
  err = await errorOf(() =>
    Config.fromKubeconfigString(kubeconfig({ "auth-provider": { name: "oidc", config: {} } }))
  );
  assert.match(err.message, /exec/);
});

test("auth-provider: an oidc id-token is used as a bearer token", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig({ "auth-provider": { name: "oidc", config: { "id-token": "eyJ.oidc.token" } } }),
  );
  assert.equal((await config.credentials()).token, "eyJ.oidc.token");
  assert.equal(config.invalidateCredentials(), false);
});

test("fromKubeconfigString: an empty document has no context", async () => {
  const err = await errorOf(() => Config.fromKubeconfigString(""));
  assert.match(err.message, /no current-context is set/);
});

test("fromUrl and the constructor", async () => {
  const proxy = Config.fromUrl("http://127.0.0.1:8001/");
  assert.equal(proxy.server, "http://127.0.0.1:8001");
  assert.equal(proxy.namespace, "default");
  assert.equal(proxy.source, "url http://127.0.0.1:8001");
  assert.deepEqual(await proxy.credentials(), {});
  assert.equal(proxy.invalidateCredentials(), false);

  const withToken = Config.fromUrl("https://k.test", {
    credentials: { token: "t" },
    namespace: "ns",
    proxyUrl: "socks5://127.0.0.1:1080",
  });
  assert.equal((await withToken.credentials()).token, "t");
  assert.equal(withToken.cluster.proxyUrl, "socks5://127.0.0.1:1080");
  assert.throws(() => Config.fromUrl("ftp://x"), /scheme "ftp:"/);
  assert.throws(() => Config.fromUrl("not a url pw-in-url-123"), (e: Error) => {
    assert.ok(e instanceof TypeError);
    assert.ok(!e.message.includes("pw-in-url-123"));
    return true;
  });
  assert.throws(() => Config.fromUrl("https://u:pw-in-url-456@k.test"), (e: Error) => {
    assert.match(e.message, /credentials in the URL/);
    assert.ok(!e.message.includes("pw-in-url-456"));
    return true;
  });
  assert.throws(() => Config.fromUrl("https://k.test", { proxyUrl: "gopher://x" }), /proxyUrl/);

  const explicit = new Config({
    cluster: { server: "https://e.test/", insecureSkipTlsVerify: false, disableCompression: false },
    credentials: { basic: { username: "u", password: "p" } },
  });
  assert.equal(explicit.server, "https://e.test");
  assert.equal(explicit.source, "explicit");
  assert.deepEqual(await explicit.credentials(), { basic: { username: "u", password: "p" } });
});

test("YAML anchors and merge keys are resolved", async () => {
  const text = `
current-context: b
clusters:
  - name: a
    cluster: &base
      server: https://a.test
      disable-compression: true
  - name: b
    cluster:
      <<: *base
      server: https://b.test
contexts:
  - name: b
    context: { cluster: b }
`;
  const config = await Config.fromKubeconfigString(text);
  assert.equal(config.server, "https://b.test");
  assert.equal(config.cluster.disableCompression, true);
});
