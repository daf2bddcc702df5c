// Issue 20: one redaction test. A distinctive secret is planted in every credential source (a
// token, a token file, an exec plugin's stdout and stderr, a client key, basic auth, a proxy
// password, a kubeconfig file holding them all), then a scripted set of failures runs: kubeconfig
// errors (YAML and schema), refused credentials echoed back by the server, broken plugins,
// unreachable servers and proxies, bad client keys, a Reflector failing through them, a Manager
// whose task crashes with one of those errors. Every error (message, cause chain, stack), every
// LogTape record (trace level) and every answer of the operator's endpoints is searched for every
// secret, raw and base64-encoded.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { inspect } from "node:util";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { Reflector } from "../../reflector.ts";
import { Manager } from "../../runtime/manager.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { clearExecCache } from "../../_client/exec_credential.ts";
import { execBlock, kubeconfig, tempDir } from "../fixtures/kubeconfig/helpers.ts";
import { test } from "../_test.ts";

const SECRETS = {
  token: "sec-token-AAAA1111",
  tokenFile: "sec-tokenfile-BBBB2222",
  execStdout: "sec-execout-CCCC3333",
  execStderr: "sec-execerr-DDDD4444",
  clientKey: "sec-clientkey-EEEE5555",
  basic: "sec-basic-FFFF6666",
  proxy: "sec-proxy-GGGG7777",
};

const b64 = (text: string) => btoa(text);
const KEY_PEM = `-----BEGIN PRIVATE KEY-----\n${
  b64(SECRETS.clientKey)
}\n-----END PRIVATE KEY-----\n`;

/** Every form a secret could leak in. */
function forms(): string[] {
  const out: string[] = [];
  for (const s of Object.values(SECRETS)) out.push(s, b64(s), s.slice(0, 12));
  out.push(b64(`admin:${SECRETS.basic}`), b64(KEY_PEM), b64(KEY_PEM).slice(0, 24));
  return out;
}

/** A fetch that answers every request with a failure echoing its Authorization header. */
function echoing(): (input: Request | URL | string, init?: RequestInit) => Promise<Response> {
  let n = 0;
  return (_input, init) => {
    const auth = new Headers(init?.headers).get("authorization") ?? "";
    const warning = `299 - "credentials ${auth}"`;
    switch (n++ % 4) {
      case 0:
        return Promise.resolve(
          new Response(
            JSON.stringify({
              kind: "Status",
              apiVersion: "v1",
              status: "Failure",
              code: 401,
              reason: "Unauthorized",
              message: `token ${auth} is not valid`,
            }),
            { status: 401, headers: { "content-type": "application/json", warning } },
          ),
        );
      case 1:
        return Promise.resolve(
          new Response(`forbidden for ${auth}`, { status: 403, headers: { warning } }),
        );
      case 2:
        return Promise.resolve(new Response(`boom ${auth}`, { status: 500 }));
      default:
        return Promise.reject(new TypeError(`connection reset while sending ${auth}`));
    }
  };
}

test("secrets: no planted credential in any error, cause, log record or endpoint answer", async () => {
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
  const answers: string[] = [];
  const texts: string[] = [];
  const fail = async (what: string, fn: () => Promise<unknown> | unknown) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
      return e;
    }
    throw new Error(`${what}: expected a failure`);
  };
  await using dir = await tempDir();
  try {
    const tokenFile = dir.join("token");
    await writeFile(tokenFile, SECRETS.tokenFile);
    const proxyUrl = `http://admin:${SECRETS.proxy}@127.0.0.1:1`;
    const users: Record<string, Record<string, unknown>> = {
      token: { token: SECRETS.token },
      tokenFile: { tokenFile },
      basic: { username: "admin", password: SECRETS.basic },
      execFail: { exec: execBlock({ mode: "fail", stderr: `denied ${SECRETS.execStderr}` }) },
      execBadJson: { exec: execBlock({ mode: "badjson", token: SECRETS.execStdout }) },
      execToken: { exec: execBlock({ token: SECRETS.execStdout }) },
      clientKey: {
        "client-certificate-data": b64(
          "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
        "client-key-data": b64(KEY_PEM),
      },
    };

    // 1. Kubeconfig files holding the secrets, broken in YAML and in schema.
    const all = kubeconfig({ ...users.token, password: SECRETS.basic }, { "proxy-url": proxyUrl });
    const yamlBroken = all.replace(
      `"token":"${SECRETS.token}"`,
      `"token": ${SECRETS.token}: {"nested": [`,
    );
    const file = dir.join("broken.yaml");
    await writeFile(file, yamlBroken);
    await fail("yaml", () => Config.fromKubeconfig({ path: file }));
    await fail("yaml string", () => Config.fromKubeconfigString(yamlBroken));
    const schemaBroken = kubeconfig(
      { token: SECRETS.token, "client-key-data": 42 },
      { "proxy-url": proxyUrl, "insecure-skip-tls-verify": "maybe" },
    );
    await fail("schema", () => Config.fromKubeconfigString(schemaBroken));
    await fail("proxy scheme", () =>
      Config.fromKubeconfigString(kubeconfig(users.token, {
        "proxy-url": `ftp://admin:${SECRETS.proxy}@proxy.test`,
      })));

    // 2. Each credential source against a server that refuses and echoes it back.
    for (const [name, user] of Object.entries(users)) {
      clearExecCache();
      let config: Config;
      try {
        config = await Config.fromKubeconfigString(kubeconfig(user, { "proxy-url": proxyUrl }));
      } catch (e) {
        errors.push(e);
        continue;
      }
      texts.push(JSON.stringify(config), inspect(config, { depth: 10 }));
      const client = new Client(config, { fetch: echoing(), maxRetries: 0 });
      for (let i = 0; i < 4; i++) {
        await fail(`${name} request ${i}`, () => client.get(Api.v1ConfigMap().within("d"), "x"));
      }
      if (name.startsWith("exec")) {
        // A failing plugin runs again on every retry: one request shows what the loop would.
        client.close();
        continue;
      }
      const reflector = new Reflector(client, Api.v1ConfigMap().within("d"), {
        backoff: { initialMs: 1, maxMs: 2 },
      });
      // Transient failures (a broken plugin, a reset) are retried forever: stop after a while.
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(new Error("enough")), 150);
      await reflector.run({ signal: stop.signal }).catch((e) => errors.push(e));
      clearTimeout(timer);
      client.close();
    }

    // 3. The real connectors: an unreachable proxy with a password, a client key that is no key.
    for (const user of [users.token, users.clientKey]) {
      const config = await Config.fromKubeconfigString(
        kubeconfig(user, { server: "https://127.0.0.1:1", "proxy-url": proxyUrl }),
      );
      await using client = new Client(config, { maxRetries: 0 });
      await fail("connector", () => client.get(Api.v1ConfigMap().within("d"), "x"));
    }

    // 4. The operator's endpoints while a task crashes with one of these errors and a readiness
    //    check reports another.
    await using server = new FakeApiServer();
    const m = new Manager(server.client(), { endpoints: { hostname: "127.0.0.1", port: 0 } });
    const crash = errors.find((e) => /Unauthorized|refused/.test(String(e)))!;
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    let draining!: () => void;
    const isDraining = new Promise<void>((r) => draining = r);
    m.add({
      name: "reconciler",
      run: () => Promise.reject(crash),
      ready: () => `credentials: ${(errors[errors.length - 1] as Error).message}`,
    }, { leaderOnly: false });
    m.add({
      name: "slow",
      run: (signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => {
            draining();
            released.then(resolve);
          }, { once: true })
        ),
    });
    const run = m.run(new AbortController().signal).catch((e) => errors.push(e));
    await isDraining;
    for (const path of ["/healthz?verbose", "/readyz?verbose", "/metrics", "/nope"]) {
      const res = await fetch(`http://127.0.0.1:${m.endpointsPort}${path}`);
      answers.push(`${res.status} ${[...res.headers].join(" ")} ${await res.text()}`);
    }
    release();
    await run;
  } finally {
    await reset();
    clearExecCache();
  }
  assert.ok(errors.length >= 30, `only ${errors.length} failures were produced`);
  assert.ok(records.length >= 20, `only ${records.length} log records`);
  assert.ok(answers.some((a) => a.startsWith("500 ")), answers.join("\n"));
  const haystacks: [string, string][] = [
    ["an error or its cause chain", inspect(errors, { depth: 12 })],
    ["an error's JSON", errors.map((e) => JSON.stringify(e)).join("\n")],
    ["a log record", JSON.stringify(records.map((r) => [r.message, r.properties]))],
    ["an endpoint answer", answers.join("\n")],
    ["a Config's JSON or inspection", texts.join("\n")],
  ];
  const leaks: string[] = [];
  for (const [where, text] of haystacks) {
    for (const secret of forms()) {
      const at = text.indexOf(secret);
      if (at !== -1) leaks.push(`${where} holds ${secret}: …${text.slice(at - 80, at + 40)}…`);
    }
  }
  assert.deepEqual(leaks, []);
});
