/**
 * Permission errors, checked in `deno run` subprocesses with restricted permissions: each must be
 * a `NotCapable` error naming the exact flag to add.
 */

import assert from "node:assert/strict";
import {
  DENO_JSON,
  execBlock,
  FIXTURE_DIR,
  kubeconfig,
  type LoaderResult,
  runLoader,
  tempDir,
} from "../fixtures/kubeconfig/helpers.ts";
import {
  flagFor,
  insecureSkipTlsVerifyError,
  netNeed,
  permissionError,
  readNeed,
} from "../../_client/permissions.ts";
import { test } from "../_test.ts";

const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
  .output();
const DENO_DIR: string = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;

/** Runs the loader with a clean environment (plus `vars`). */
function load(
  flags: string[],
  method: string,
  options: Record<string, unknown>,
  vars: Record<string, string> = {},
  args: string[] = [],
): Promise<LoaderResult> {
  return runLoader(flags, method, options, {
    clearEnv: true,
    env: { DENO_DIR, PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1", ...vars },
    args,
  });
}

function assertNotCapable(result: LoaderResult, flag: string): void {
  assert.equal(result.ok, false, `expected a failure, got ${JSON.stringify(result)}`);
  assert.equal(result.name, "NotCapable", result.message ?? "");
  assert.ok(result.message!.includes(flag), `"${result.message}" should name ${flag}`);
}

test("Config permissions: fromKubeconfig without --allow-read names --allow-read=<path>", async () => {
  const path = `${FIXTURE_DIR}/full.yaml`;
  const result = await load([], "fromKubeconfig", { path });
  assertNotCapable(result, `--allow-read=${path}`);
});

test("Config permissions: fromKubeconfig() without --allow-env names --allow-env=KUBECONFIG,HOME", async () => {
  const result = await load([], "fromKubeconfig", {}, { HOME: "/nonexistent" });
  assertNotCapable(result, "--allow-env=KUBECONFIG,HOME");
});

test("Config permissions: infer() without --allow-env names the kubeconfig and in-cluster variables", async () => {
  const result = await load([], "infer", {});
  assertNotCapable(result, "--allow-env=KUBECONFIG,HOME");
  assert.match(result.message!, /KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT,POD_NAMESPACE/);
});

test("Config permissions: inCluster() without --allow-env names the in-cluster variables", async () => {
  const result = await load([], "inCluster", {});
  assertNotCapable(
    result,
    "--allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT,POD_NAMESPACE",
  );
});

test("Config permissions: inCluster() without --allow-read names the service account directory", async () => {
  await using sa = await tempDir();
  await sa.write("token", "t");
  const result = await load(["--allow-env"], "inCluster", { serviceAccountDir: sa.path }, {
    KUBERNETES_SERVICE_HOST: "10.0.0.1",
    KUBERNETES_SERVICE_PORT: "443",
  });
  assertNotCapable(result, `--allow-read=${sa.path}`);
});

test("Config permissions: a certificate file outside the allowed paths names --allow-read=<that file>", async () => {
  await using dir = await tempDir();
  const path = await dir.write(
    "config",
    kubeconfig({}, { "certificate-authority": `${FIXTURE_DIR}/ca.crt` }),
  );
  const result = await load([`--allow-read=${path}`], "fromKubeconfig", { path });
  assertNotCapable(result, `--allow-read=${FIXTURE_DIR}/ca.crt`);
  assert.match(result.message!, /certificate-authority of cluster "test-cluster"/);
});

test("Config permissions: CA, client certificate and key all outside the allowed paths: one error names all three in one --allow-read", async () => {
  await using dir = await tempDir();
  const path = await dir.write(
    "config",
    kubeconfig(
      {
        "client-certificate": `${FIXTURE_DIR}/client.crt`,
        "client-key": `${FIXTURE_DIR}/client.key`,
      },
      { "certificate-authority": `${FIXTURE_DIR}/ca.crt` },
    ),
  );
  const flag =
    `--allow-read=${FIXTURE_DIR}/ca.crt,${FIXTURE_DIR}/client.crt,${FIXTURE_DIR}/client.key`;
  const result = await load([`--allow-read=${path}`], "fromKubeconfig", { path });
  assertNotCapable(result, flag);
  assert.match(result.message!, /certificate-authority of cluster "test-cluster"/);
  assert.match(result.message!, /client-certificate of user "test-user"/);
  assert.match(result.message!, /client-key of user "test-user"/);
  // With exactly that flag added, the same kubeconfig loads.
  const granted = await load([`--allow-read=${path}`, flag], "fromKubeconfig", { path });
  assert.equal(granted.ok, true, granted.message ?? "");
});

test("Config permissions: a token file outside the allowed paths names --allow-read=<that file>", async () => {
  await using dir = await tempDir();
  const path = await dir.write("config", kubeconfig({ tokenFile: `${FIXTURE_DIR}/token` }));
  const result = await load([`--allow-read=${path}`], "fromKubeconfig", { path });
  assertNotCapable(result, `--allow-read=${FIXTURE_DIR}/token`);
});

test("Config permissions: an exec plugin without --allow-run names --allow-run=<command>", async () => {
  await using dir = await tempDir();
  const path = await dir.write("config", kubeconfig({ exec: execBlock({ token: "x" }) }));
  const result = await load([`--allow-read=${path}`], "fromKubeconfig", { path }, {}, [
    "--credentials",
  ]);
  assertNotCapable(result, `--allow-run=${Deno.execPath()}`);
  assert.match(result.message!, /users\[0\]\.user\.exec/);
});

test("Config permissions: with the named flags, the same configs load", async () => {
  await using dir = await tempDir();
  const path = await dir.write("config", kubeconfig({ exec: execBlock({ token: "granted" }) }));
  const result = await load(
    [`--allow-read=${path}`, `--allow-run=${Deno.execPath()}`],
    "fromKubeconfig",
    { path },
    {},
    ["--credentials"],
  );
  assert.equal(result.ok, true, result.message ?? "");
  assert.equal(result.token, "granted");
});

test("Config permissions: infer(): an unreadable ~/.kube/config does not block the in-cluster fallback", async () => {
  await using home = await tempDir();
  await using sa = await tempDir();
  await sa.write("token", "pod-token");
  const vars = {
    HOME: home.path,
    KUBERNETES_SERVICE_HOST: "10.0.0.1",
    KUBERNETES_SERVICE_PORT: "443",
  };
  const ok = await load(
    ["--allow-env", `--allow-read=${sa.path}`],
    "infer",
    { serviceAccountDir: sa.path },
    vars,
    ["--credentials"],
  );
  assert.equal(ok.ok, true, ok.message ?? "");
  assert.equal(ok.source, "in-cluster service account");
  assert.equal(ok.token, "pod-token");

  // Without any source working, the one error is NotCapable and names the missing read flag.
  const fail = await load(["--allow-env"], "infer", {}, { HOME: home.path });
  assertNotCapable(fail, `--allow-read=${home.path}/.kube/config`);
  assert.match(fail.message!, /No Kubernetes configuration found/);
  assert.match(fail.message!, /in-cluster service account: Not running inside a Kubernetes pod/);
});

test("Config permissions: yaml: parsing needs no --allow-env although npm:yaml reads LOG_TOKENS/LOG_STREAM", async () => {
  // The `yaml` package's Node build reads process.env.LOG_TOKENS for every token; without the
  // shim in _client/kubeconfig.ts that read throws NotCapable under `deno run` without --allow-env.
  await using dir = await tempDir();
  const probe = await dir.write(
    "probe.ts",
    `import { parse } from "yaml";\ntry { parse("a: 1"); console.log("parsed"); } ` +
      `catch (e) { console.log(e.name); }\n`,
  );
  const raw = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-lock", "--config", DENO_JSON, probe],
    clearEnv: true,
    env: { DENO_DIR, PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(raw.stdout).trim(), "NotCapable", "yaml itself needs env");

  const text = await Deno.readTextFile(`${FIXTURE_DIR}/merge/first.yaml`);
  const result = await load([], "fromKubeconfigString", { text }, { LOG_TOKENS: "1" }, [
    "--credentials",
  ]);
  assert.equal(result.ok, true, result.message ?? "");
  assert.equal(result.server, "https://first.example.test");
  assert.equal(result.token, "first-token");

  // With --allow-env, yaml's debug variables keep working (it prints its token stream).
  const debug = await runLoader(["--allow-env"], "fromKubeconfigString", { text }, {
    clearEnv: true,
    env: { DENO_DIR, PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1", LOG_TOKENS: "1" },
  });
  assert.equal(debug.ok, true, debug.message ?? "");
});

test("Config permissions: permissionError and helpers", () => {
  const denied = new Deno.errors.NotCapable("Requires read access");
  const converted = permissionError(denied, readNeed("/x"), "reading /x");
  assert.ok(converted instanceof Deno.errors.NotCapable);
  assert.equal(
    (converted as Error).message,
    "Reading /x needs a Deno permission that was not granted: run again with --allow-read=/x.",
  );
  assert.equal((converted as Error).cause, denied);
  const other = new Error("boom");
  assert.equal(permissionError(other, readNeed("/x"), "reading /x"), other);
  // An OS-level PermissionDenied for a granted Deno permission is not blamed on a flag.
  const os = new Deno.errors.PermissionDenied("EACCES");
  assert.equal(permissionError(os, readNeed("/"), "reading /"), os);

  assert.equal(flagFor(netNeed("https://example.test/api")), "--allow-net=example.test:443");
  assert.equal(flagFor(netNeed("http://127.0.0.1:8001")), "--allow-net=127.0.0.1:8001");

  const cause = new TypeError("invalid peer certificate: UnknownIssuer");
  const tls = insecureSkipTlsVerifyError(
    "https://[::1]:6443",
    cause,
    'kubeconfig /k (context "x")',
  );
  assert.match(tls.message, /--unsafely-ignore-certificate-errors=::1 /);
  assert.match(tls.message, /insecure-skip-tls-verify: true/);
  assert.match(tls.message, /kubeconfig \/k/);
  assert.equal(tls.cause, cause);
});
