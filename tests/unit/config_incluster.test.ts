import assert from "node:assert/strict";
import { Config } from "../../config.ts";
import { errorOf, FIXTURE_DIR, kubeconfig, tempDir } from "../fixtures/kubeconfig/helpers.ts";
import { test } from "../_test.ts";
import { mkdir, readFile, rm } from "node:fs/promises";
import process from "node:process";

const CA = await readFile(`${FIXTURE_DIR}/ca.crt`, "utf8");
const ENV_VARS = [
  "KUBECONFIG",
  "HOME",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "POD_NAMESPACE",
];

/** Runs `fn` with exactly `vars` set among ENV_VARS (others unset), then restores them. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map(ENV_VARS.map((k) => [k, process.env[k]]));
  for (const k of ENV_VARS) {
    if (k in vars) process.env[k] = vars[k];
    else delete process.env[k];
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function serviceAccount(
  dir: { path: string; write(n: string, c: string): Promise<string> },
  files: { token?: string; ca?: string; namespace?: string },
): Promise<string> {
  if (files.token !== undefined) await dir.write("token", files.token);
  if (files.ca !== undefined) await dir.write("ca.crt", files.ca);
  if (files.namespace !== undefined) await dir.write("namespace", files.namespace);
  return dir.path;
}

test("inCluster: server, CA, token and the namespace file", async () => {
  await using dir = await tempDir();
  const sa = await serviceAccount(dir, { token: "sa-token\n", ca: CA, namespace: "from-file\n" });
  const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
  const config = await withEnv(env, () => Config.inCluster({ serviceAccountDir: sa }));
  assert.equal(config.server, "https://10.96.0.1:443");
  assert.equal(config.cluster.certificateAuthority, CA);
  assert.equal(config.cluster.insecureSkipTlsVerify, false);
  assert.equal(config.namespace, "from-file");
  assert.equal(config.source, "in-cluster service account");
  assert.deepEqual(await config.credentials(), { token: "sa-token" });
  assert.equal(config.invalidateCredentials(), true);
});

test("inCluster: an IPv6 host is bracketed", async () => {
  await using dir = await tempDir();
  const sa = await serviceAccount(dir, { token: "t" });
  const env = { KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "6443" };
  const config = await withEnv(env, () => Config.inCluster({ serviceAccountDir: sa }));
  assert.equal(config.server, "https://[fd00:10:96::1]:6443");
  assert.equal(new URL(config.server).hostname, "[fd00:10:96::1]");
  assert.equal(config.cluster.certificateAuthority, undefined, "a missing ca.crt is tolerated");
});

test("inCluster: namespace precedence is option, POD_NAMESPACE, file, default", async () => {
  await using dir = await tempDir();
  const sa = await serviceAccount(dir, { token: "t", namespace: "file-ns" });
  const base = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" };
  await withEnv({ ...base, POD_NAMESPACE: "pod-ns" }, async () => {
    assert.equal((await Config.inCluster({ serviceAccountDir: sa })).namespace, "pod-ns");
    assert.equal(
      (await Config.inCluster({ serviceAccountDir: sa, namespace: "opt" })).namespace,
      "opt",
    );
  });
  await withEnv(base, async () => {
    assert.equal((await Config.inCluster({ serviceAccountDir: sa })).namespace, "file-ns");
    await rm(`${sa}/namespace`);
    assert.equal((await Config.inCluster({ serviceAccountDir: sa })).namespace, "default");
  });
});

test("inCluster: token rotation — re-read after invalidate and after the interval", async () => {
  await using dir = await tempDir();
  const sa = await serviceAccount(dir, { token: "first" });
  const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" };
  const config = await withEnv(
    env,
    () => Config.inCluster({ serviceAccountDir: sa, tokenFileRefreshInterval: 60_000 }),
  );
  assert.equal((await config.credentials()).token, "first");
  await dir.write("token", "second");
  assert.equal((await config.credentials()).token, "first", "cached within the interval");
  assert.equal(config.invalidateCredentials(), true);
  assert.equal((await config.credentials()).token, "second", "re-read after a 401");

  const fast = await withEnv(
    env,
    () => Config.inCluster({ serviceAccountDir: sa, tokenFileRefreshInterval: 50 }),
  );
  assert.equal((await fast.credentials()).token, "second");
  await dir.write("token", "third");
  await new Promise((r) => setTimeout(r, 80));
  assert.equal((await fast.credentials()).token, "third", "re-read after the interval");
  // A token file that disappears keeps the last token.
  await rm(`${sa}/token`);
  fast.invalidateCredentials();
  assert.equal((await fast.credentials()).token, "third");
});

test("inCluster: errors", async () => {
  await using dir = await tempDir();
  let err = await withEnv(
    {},
    () => errorOf(() => Config.inCluster({ serviceAccountDir: dir.path })),
  );
  assert.match(
    err.message,
    /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/,
  );
  const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" };
  err = await withEnv(env, () => errorOf(() => Config.inCluster({ serviceAccountDir: dir.path })));
  assert.match(err.message, new RegExp(`token ${dir.path}/token does not exist`));
  assert.match(err.message, /automountServiceAccountToken/);
  err = await withEnv(
    { ...env, KUBERNETES_SERVICE_PORT: "https" },
    () => errorOf(() => Config.inCluster({ serviceAccountDir: dir.path })),
  );
  assert.match(err.message, /KUBERNETES_SERVICE_PORT must be a port number/);
  await dir.write("token", "  \n");
  err = await withEnv(env, () => errorOf(() => Config.inCluster({ serviceAccountDir: dir.path })));
  assert.match(err.message, /is empty/);
});

test("kubeconfig tokenFile: rotation, invalidate, interval and fallback to token", async () => {
  await using dir = await tempDir();
  await dir.write("tok", "one\n");
  const path = await dir.write("config", kubeconfig({ tokenFile: "tok" }));
  const config = await Config.fromKubeconfig({ path, tokenFileRefreshInterval: 60_000 });
  assert.equal((await config.credentials()).token, "one");
  await dir.write("tok", "two");
  assert.equal((await config.credentials()).token, "one");
  assert.equal(config.invalidateCredentials(), true);
  assert.equal((await config.credentials()).token, "two");

  const fast = await Config.fromKubeconfig({ path, tokenFileRefreshInterval: 30 });
  await dir.write("tok", "three");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal((await fast.credentials()).token, "three");

  // A missing token file with a static token falls back to it; without one it is an error.
  const withToken = await dir.write(
    "config2",
    kubeconfig({ tokenFile: "missing", token: "static-fallback" }),
  );
  const fallback = await Config.fromKubeconfig({ path: withToken });
  assert.equal((await fallback.credentials()).token, "static-fallback");
  const noToken = await dir.write("config3", kubeconfig({ tokenFile: "missing" }));
  const err = await errorOf(() => Config.fromKubeconfig({ path: noToken }));
  assert.ok(err.message.includes(`${dir.path}/missing`));
  assert.match(err.message, /users\[0\]\.user\.tokenFile \(user "test-user"\)/);
  assert.ok(err.message.includes(noToken));
});

test("tokenFileRefreshInterval must be a non-negative number", async () => {
  await using dir = await tempDir();
  await dir.write("tok", "x");
  const path = await dir.write("config", kubeconfig({ tokenFile: "tok" }));
  const err = await errorOf(() => Config.fromKubeconfig({ path, tokenFileRefreshInterval: -1 }));
  assert.ok(err instanceof RangeError);
});

test("infer: $KUBECONFIG files are merged, missing ones skipped", async () => {
  await using dir = await tempDir();
  const a = await dir.write("a", kubeconfig({ token: "from-a" }, { server: "https://a.test" }));
  const b = await dir.write(
    "b",
    JSON.stringify({
      "current-context": "b",
      clusters: [{ name: "test-cluster", cluster: { server: "https://b.test" } }],
      contexts: [{ name: "b", context: { cluster: "test-cluster" } }],
    }),
  );
  const kc = [dir.join("missing"), a, b].join(":");
  const config = await withEnv({ KUBECONFIG: kc, HOME: dir.path }, () => Config.infer());
  assert.equal(config.server, "https://a.test");
  assert.equal((await config.credentials()).token, "from-a");
  assert.equal(config.source, `kubeconfig ${a}, ${b} (context "test")`);
  const second = await withEnv({ KUBECONFIG: kc }, () => Config.infer({ context: "b" }));
  assert.equal(second.server, "https://a.test", "cluster name from the first file wins");
});

test("infer: ~/.kube/config when $KUBECONFIG is unset or empty", async () => {
  await using dir = await tempDir();
  await mkdir(dir.join(".kube"));
  await dir.write(".kube/config", kubeconfig({}, { server: "https://home.test" }));
  const variants: Record<string, string>[] = [{ HOME: dir.path }, {
    HOME: dir.path,
    KUBECONFIG: "",
  }];
  for (const vars of variants) {
    const config = await withEnv(vars, () => Config.infer());
    assert.equal(config.server, "https://home.test");
    assert.equal(config.source, `kubeconfig ${dir.path}/.kube/config (context "test")`);
  }
  const viaFrom = await withEnv({ HOME: dir.path }, () => Config.fromKubeconfig());
  assert.equal(viaFrom.server, "https://home.test");
});

test("infer: falls back to in-cluster when no kubeconfig exists", async () => {
  await using home = await tempDir();
  await using sa = await tempDir();
  await sa.write("token", "pod-token");
  const config = await withEnv(
    { HOME: home.path, KUBERNETES_SERVICE_HOST: "::1", KUBERNETES_SERVICE_PORT: "6443" },
    () => Config.infer({ serviceAccountDir: sa.path }),
  );
  assert.equal(config.source, "in-cluster service account");
  assert.equal(config.server, "https://[::1]:6443");
  assert.equal((await config.credentials()).token, "pod-token");
});

test("infer: a broken kubeconfig stops the search with its own error", async () => {
  await using home = await tempDir();
  await mkdir(home.join(".kube"));
  await home.write(".kube/config", "clusters: 5\n");
  const err = await withEnv(
    { HOME: home.path, KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" },
    () => errorOf(() => Config.infer()),
  );
  assert.match(err.message, /Invalid kubeconfig .*\.kube\/config: clusters: expected array/);
});

test("infer: one error lists every source tried", async () => {
  await using home = await tempDir();
  let err = await withEnv({ HOME: home.path }, () => errorOf(() => Config.infer()));
  assert.match(err.message, /No Kubernetes configuration found/);
  assert.match(err.message, /\$KUBECONFIG: not set/);
  assert.ok(err.message.includes(`${home.path}/.kube/config: does not exist`));
  assert.match(err.message, /in-cluster service account: Not running inside a Kubernetes pod/);
  assert.ok(err.cause instanceof AggregateError);

  err = await withEnv(
    { KUBECONFIG: `${home.path}/x:${home.path}/y` },
    () => errorOf(() => Config.infer()),
  );
  assert.match(err.message, /\$KUBECONFIG \(.*\/x:.*\/y\): none of these files exists/);
  assert.match(err.message, /not consulted because \$KUBECONFIG is set/);

  await home.write("empty", "apiVersion: v1\nkind: Config\n");
  err = await withEnv({ KUBECONFIG: home.join("empty") }, () => errorOf(() => Config.infer()));
  assert.match(err.message, /define no contexts or clusters/);

  err = await withEnv({}, () => errorOf(() => Config.infer({ context: "x" })));
  assert.match(err.message, /HOME is not set/);
  assert.match(err.message, /in-cluster service account: not tried because a context/);
});

test("fromKubeconfig without path: errors when nothing exists", async () => {
  await using home = await tempDir();
  let err = await withEnv({ HOME: home.path }, () => errorOf(() => Config.fromKubeconfig()));
  assert.match(err.message, /\$KUBECONFIG is not set and .*\.kube\/config does not exist/);
  err = await withEnv(
    { KUBECONFIG: home.join("nope") },
    () => errorOf(() => Config.fromKubeconfig()),
  );
  assert.match(err.message, /None of the kubeconfig files in \$KUBECONFIG exists/);
});
