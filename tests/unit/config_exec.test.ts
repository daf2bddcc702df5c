import assert from "node:assert/strict";
import { inspect } from "node:util";
import { Config } from "../../config.ts";
import { EXEC_API_V1, EXEC_API_V1BETA1 } from "../../_client/exec_credential.ts";
import {
  errorOf,
  EXEC_PLUGIN,
  execBlock,
  FIXTURE_DIR,
  kubeconfig,
  runs,
  tempDir,
} from "../fixtures/kubeconfig/helpers.ts";
import { test } from "../_test.ts";
import { chmod, mkdir, readFile } from "node:fs/promises";
import process from "node:process";
import { runtime } from "../../_platform/mod.ts";
import { DENO_BIN } from "../fixtures/paths.ts";

const CA = await readFile(`${FIXTURE_DIR}/ca.crt`, "utf8");

test("exec v1: token output, cached until invalidated, re-run after invalidate", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "exec-tok", countFile }) }),
  );
  assert.equal(await runs(countFile), 0, "the plugin runs lazily");
  assert.equal((await config.credentials()).token, "exec-tok-1");
  assert.equal((await config.credentials()).token, "exec-tok-1");
  assert.equal(await runs(countFile), 1);
  assert.equal(config.invalidateCredentials(), true);
  assert.equal((await config.credentials()).token, "exec-tok-2");
  assert.equal(await runs(countFile), 2);
});

test("exec v1beta1: interactiveMode is optional and the apiVersion is passed through", async () => {
  await using dir = await tempDir();
  const infoFile = dir.join("info.json");
  const exec = execBlock({ token: "beta-tok", infoFile }, { apiVersion: EXEC_API_V1BETA1 });
  delete exec.interactiveMode;
  const config = await Config.fromKubeconfigString(kubeconfig({ exec }));
  assert.equal((await config.credentials()).token, "beta-tok");
  const info = JSON.parse(await readFile(infoFile, "utf8"));
  assert.deepEqual(info, {
    apiVersion: EXEC_API_V1BETA1,
    kind: "ExecCredential",
    spec: { interactive: false },
  });
});

test("exec: client certificate output", async () => {
  await using dir = await tempDir();
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ mode: "cert", countFile: dir.join("c") }) }),
  );
  const creds = await config.credentials();
  assert.equal(creds.token, undefined);
  assert.match(creds.clientCertificate!.cert, /^-----BEGIN CERTIFICATE-----/);
  assert.match(creds.clientCertificate!.key, /fixture-key-1/);
});

test("exec: token and certificate together; exec wins over a static token", async () => {
  await using dir = await tempDir();
  const config = await Config.fromKubeconfigString(
    kubeconfig({
      token: "static",
      exec: execBlock({ mode: "both", token: "exec-both", countFile: dir.join("c") }),
    }),
  );
  const creds = await config.credentials();
  assert.equal(creds.token, "exec-both-1");
  assert.ok(creds.clientCertificate);
});

test("exec: expirationTimestamp — cached while valid, re-run once expired", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  // An expiry 3 s from now, not from the plugin's start (which a loaded machine makes slow). The
  // credential is reused until expiry − skew, the skew being at most half the lifetime counted
  // from the run's start: until (run start + expiry) / 2, about 1.5 s from now.
  const expiresAtMs = Date.now() + 3_000;
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "exp", countFile, expiresAtMs }) }),
  );
  assert.equal((await config.credentials()).token, "exp-1");
  assert.equal((await config.credentials()).token, "exp-1");
  assert.equal(await runs(countFile), 1);
  const reusedUntil = (Date.now() + expiresAtMs) / 2; // ≥ the real one: the run started earlier
  await new Promise((r) => setTimeout(r, Math.max(0, reusedUntil + 100 - Date.now())));
  assert.equal((await config.credentials()).token, "exp-2");
  assert.equal(await runs(countFile), 2);
});

test("exec: an already expired credential is not reused", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "old", countFile, expiresInMs: -60_000 }) }),
  );
  await config.credentials();
  await config.credentials();
  assert.equal(await runs(countFile), 2);
});

test("exec: concurrent callers share one run", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "conc", countFile, sleepMs: 200 }) }),
  );
  const all = await Promise.all([config.credentials(), config.credentials(), config.credentials()]);
  assert.deepEqual(all.map((c) => c.token), ["conc-1", "conc-1", "conc-1"]);
  assert.equal(await runs(countFile), 1);
});

test("exec: cache is keyed by content, not by user name", async () => {
  await using dir = await tempDir();
  const countA = dir.join("a");
  const countB = dir.join("b");
  const a1 = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "alpha", countFile: countA }) }, {}, "same-name"),
  );
  const a2 = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "alpha", countFile: countA }) }, {}, "same-name"),
  );
  const b = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "beta", countFile: countB }) }, {}, "same-name"),
  );
  assert.equal((await a1.credentials()).token, "alpha-1");
  assert.equal((await a2.credentials()).token, "alpha-1", "identical exec config shares the cache");
  assert.equal((await b.credentials()).token, "beta-1", "different exec config, same user name");
  assert.equal(await runs(countA), 1);
  // The same exec config against another server does not share the cache either.
  const c = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "alpha", countFile: countA }) }, {
      server: "https://other.test",
    }, "same-name"),
  );
  assert.equal((await c.credentials()).token, "alpha-2");
});

test("exec: KUBERNETES_EXEC_INFO with provideClusterInfo carries the cluster", async () => {
  await using dir = await tempDir();
  const infoFile = dir.join("info.json");
  const config = await Config.fromKubeconfigString(
    kubeconfig(
      { exec: execBlock({ infoFile }, { provideClusterInfo: true }) },
      {
        server: "https://info.test:6443/",
        "certificate-authority-data": btoa(CA),
        "proxy-url": "http://proxy.test:3128",
        "disable-compression": true,
        extensions: [
          { name: "client.authentication.k8s.io/exec", extension: { audience: "aud", n: 1 } },
          { name: "something-else", extension: { ignored: true } },
        ],
      },
    ),
  );
  await config.credentials();
  const info = JSON.parse(await readFile(infoFile, "utf8"));
  assert.deepEqual(info, {
    apiVersion: EXEC_API_V1,
    kind: "ExecCredential",
    spec: {
      interactive: false,
      cluster: {
        server: "https://info.test:6443",
        "certificate-authority-data": btoa(CA),
        "proxy-url": "http://proxy.test:3128",
        "disable-compression": true,
        config: { audience: "aud", n: 1 },
      },
    },
  });
  assert.equal(atob(info.spec.cluster["certificate-authority-data"]), CA);
});

test("exec: without provideClusterInfo, spec has no cluster", async () => {
  await using dir = await tempDir();
  const infoFile = dir.join("info.json");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ infoFile }) }, { "certificate-authority-data": btoa(CA) }),
  );
  await config.credentials();
  const info = JSON.parse(await readFile(infoFile, "utf8"));
  assert.deepEqual(info.spec, { interactive: false });
});

test("exec: a failing plugin's stderr reaches no error: a JWT, an OAuth answer, a Basic header (issue 20, item 2)", async () => {
  // What a failing plugin may print: none of it has the "Bearer " a pattern would look for.
  const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJlLWxlYWs";
  const oauth = '{"access_token":"ya29.oauth-leak-0001","token_type":"Bearer"}';
  const basic = "Authorization: Basic YWRtaW46aHVudGVyMi1sZWFr";
  const exec = execBlock({ mode: "fail", exitCode: 3 });
  (exec.args as string[]).push(`--stderr=refresh failed ${jwt} ${oauth} ${basic}`);
  const config = await Config.fromKubeconfigString(kubeconfig({ exec }), { path: "/kc/config" });
  const err = await errorOf(() => config.credentials());
  assert.match(err.message, /exited with code 3/);
  assert.match(err.message, /users\[0\]\.user\.exec \(user "test-user"\) in \/kc\/config/);
  assert.match(err.message, /stderr went to this process's stderr/);
  for (const leak of ["eyJhbGci", "signature", "ya29.oauth-leak", "YWRtaW46", "refresh failed"]) {
    assert.ok(!err.message.includes(leak), err.message);
  }
  assert.equal(err.cause, undefined);
});

test("exec: a missing command quotes installHint", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig({
      exec: {
        apiVersion: EXEC_API_V1,
        interactiveMode: "Never",
        command: "kube-test-plugin-that-does-not-exist",
        installHint: "Install it with: brew install kube-test-plugin",
      },
    }),
  );
  const err = await errorOf(() => config.credentials());
  assert.match(err.message, /"kube-test-plugin-that-does-not-exist"/);
  assert.match(err.message, /was not found/);
  assert.match(err.message, /"Install it with: brew install kube-test-plugin"/);
  assert.ok(runtime().isNotFound(err.cause));
});

test("exec: invalid outputs are described without quoting stdout", async () => {
  const cases: [string, RegExp][] = [
    ["badjson", /bytes to stdout that are not JSON/],
    ["nostatus", /status: is missing/],
    ["empty-status", /status: has neither token nor clientCertificateData/],
    ["badexpiry", /status\.expirationTimestamp: expected an RFC 3339 timestamp/],
    ["cert-without-key", /status\.clientKeyData: is missing while clientCertificateData is set/],
  ];
  for (const [mode, pattern] of cases) {
    const config = await Config.fromKubeconfigString(
      kubeconfig({ exec: execBlock({ mode, token: `tok-${mode}-secret` }) }),
    );
    const err = await errorOf(() => config.credentials());
    assert.match(err.message, pattern, mode);
    // Nowhere in the cause chain either: V8's SyntaxError quotes the text it failed on (item 4).
    const all = inspect(err, { depth: 10 });
    assert.ok(!all.includes(`tok-${mode}-secret`.slice(0, 8)), `${mode}: ${all}`);
  }
});

test("exec: a plugin that floods stdout is stopped at 1 MiB (issue 20: bounded reads)", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ mode: "flood", token: "tok-flood-secret" }) }),
  );
  const err = await errorOf(() => config.credentials());
  assert.match(err.message, /wrote more than 1048576 bytes to stdout and was stopped/);
  assert.ok(!inspect(err, { depth: 10 }).includes("tok-flood"));
});

test("exec: an apiVersion mismatch in the output is an error", async () => {
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ apiVersion: EXEC_API_V1BETA1 }) }),
  );
  const err = await errorOf(() => config.credentials());
  assert.match(err.message, /returned apiVersion "client\.authentication\.k8s\.io\/v1beta1"/);
  assert.match(err.message, /asks for "client\.authentication\.k8s\.io\/v1"/);
});

test("exec: abort signal kills a slow plugin", async () => {
  await using dir = await tempDir();
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ sleepMs: 20_000, countFile: dir.join("c") }) }),
  );
  const controller = new AbortController();
  const started = Date.now();
  const pending = config.credentials({ signal: controller.signal });
  setTimeout(() => controller.abort(), 300);
  const err = await errorOf(() => pending);
  assert.equal(err.name, "AbortError");
  assert.ok(Date.now() - started < 10_000);
});

test("exec: kubeconfig validation of the exec block", async () => {
  const load = (exec: Record<string, unknown>) =>
    errorOf(() => Config.fromKubeconfigString(kubeconfig({ exec }), { path: "/kc" }));
  let err = await load({ apiVersion: "client.authentication.k8s.io/v1alpha1", command: "x" });
  assert.match(err.message, /\/kc: users\[0\]\.user\.exec\.apiVersion \(user "test-user"\)/);
  assert.match(err.message, /v1alpha1 was removed/);
  err = await load({ command: "x" });
  assert.match(err.message, /users\[0\]\.user\.exec\.apiVersion .*is missing/);
  err = await load({ apiVersion: EXEC_API_V1, command: "x" });
  assert.match(err.message, /users\[0\]\.user\.exec\.interactiveMode .*is required/);
  err = await load({ apiVersion: EXEC_API_V1, command: "x", interactiveMode: "Always" });
  assert.match(err.message, /users\[0\]\.user\.exec\.interactiveMode .*is Always/);
  assert.match(err.message, /without a terminal/);
  err = await load({ apiVersion: EXEC_API_V1, command: "x", interactiveMode: "Sometimes" });
  assert.match(err.message, /interactiveMode .*"Sometimes"/);
  err = await load({ apiVersion: EXEC_API_V1, interactiveMode: "Never" });
  assert.match(err.message, /users\[0\]\.user\.exec\.command .*is missing/);
  err = await load({
    apiVersion: EXEC_API_V1,
    interactiveMode: "Never",
    command: "x",
    env: [{ name: "", value: "v" }],
  });
  assert.match(err.message, /users\[0\]\.user\.exec\.env\[0\]\.name/);
  err = await errorOf(() =>
    Config.fromKubeconfigString(
      kubeconfig({
        exec: { apiVersion: EXEC_API_V1, command: "x", interactiveMode: "Never" },
        "auth-provider": { name: "oidc" },
      }),
    )
  );
  assert.match(err.message, /auth-provider.*together with exec/);
});

test({
  name: "exec: a relative command with a path separator resolves against the kubeconfig's dir",
  ignore: process.platform === "win32",
  async fn() {
    await using dir = await tempDir();
    await mkdir(dir.join("bin"));
    const script = await dir.write(
      "bin/plugin.sh",
      `#!/bin/sh\nexec "${DENO_BIN}" run --no-config --no-lock --allow-env --allow-read ` +
        `--allow-write "${EXEC_PLUGIN}" --token=relative-tok\n`,
    );
    await chmod(script, 0o755);
    const exec = { apiVersion: EXEC_API_V1, interactiveMode: "Never", command: "./bin/plugin.sh" };
    const path = await dir.write("config", kubeconfig({ exec }));
    const config = await Config.fromKubeconfig({ path });
    assert.equal((await config.credentials()).token, "relative-tok");
  },
});

test("exec: one caller giving up does not kill the run others wait for", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "shared", countFile, sleepMs: 400 }) }),
  );
  const impatient = new AbortController();
  const first = config.credentials({ signal: impatient.signal });
  const second = config.credentials({ signal: AbortSignal.timeout(20_000) });
  setTimeout(() => impatient.abort(new Error("gave up")), 50);
  await assert.rejects(first, /gave up/);
  assert.equal((await second).token, "shared-1");
  assert.equal(await runs(countFile), 1);
});

test("exec: a 401 for credentials already replaced does not throw the new ones away", async () => {
  await using dir = await tempDir();
  const countFile = dir.join("count");
  const config = await Config.fromKubeconfigString(
    kubeconfig({ exec: execBlock({ token: "rot", countFile }) }),
  );
  const stale = await config.credentials();
  assert.equal(stale.token, "rot-1");
  config.invalidateCredentials(stale);
  const fresh = await config.credentials();
  assert.equal(fresh.token, "rot-2");
  // A late 401 for a request sent with rot-1 must not discard rot-2.
  config.invalidateCredentials(stale);
  assert.equal((await config.credentials()).token, "rot-2");
  assert.equal(await runs(countFile), 2);
  // A 401 for the current credentials does.
  config.invalidateCredentials(fresh);
  assert.equal((await config.credentials()).token, "rot-3");
});
