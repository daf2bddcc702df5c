// The cross-runtime scenario: what a user does with the library, run on Deno, Node 20/22/24 and
// Bun against the real kube-apiserver (tests/e2e/runtimes.test.ts starts it and runs this script
// on each runtime; on Node and Bun as the bundle tools/cross_runtime.ts makes).
//
// It uses only the public API and node: modules, so it runs unchanged everywhere. Settings come
// from the environment (KUBE_X_*); kubectl is the independent client that checks the results. It
// prints one line per step and exits non-zero on the first failure.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import {
  Api,
  Client,
  Config,
  execOutput,
  forwardPort,
  Informer,
  isNotFound,
  type KubeObject,
  Reflector,
  type WatchEvent,
} from "../../mod.ts";
import {
  deny,
  mutate,
  SelfManagedCertificates,
  validate,
  WebhookServer,
} from "../../webhook/mod.ts";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`the scenario needs $${name}`);
  return value;
};

const runtimeName = (globalThis as { Deno?: unknown }).Deno
  ? "deno"
  : (globalThis as { Bun?: unknown }).Bun
  ? "bun"
  : "node";
const runtimeLabel = runtimeName === "node" ? `node ${process.versions.node}` : runtimeName;
const namespace = env("KUBE_X_NAMESPACE");
const adminKubeconfig = env("KUBE_X_CERT");

function kubectl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "kubectl",
      ["--kubeconfig", adminKubeconfig, ...args],
      { encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`kubectl ${args.join(" ")} failed: ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

async function step(name: string, fn: () => Promise<void>): Promise<void> {
  const started = performance.now();
  try {
    await fn();
  } catch (e) {
    console.log(`FAIL ${runtimeLabel} ${name}: ${e instanceof Error ? e.stack : e}`);
    throw e;
  }
  console.log(`ok ${runtimeLabel} ${name} (${Math.round(performance.now() - started)} ms)`);
}

async function whoAmI(client: Client): Promise<string> {
  const review = await client.requestJson<{ status?: { userInfo?: { username?: string } } }>({
    method: "POST",
    path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
  });
  return review.status?.userInfo?.username ?? "";
}

/** Waits for `predicate` on the events of `stream`, for at most `ms`. */
async function until<T extends KubeObject>(
  stream: AsyncIterator<WatchEvent<T>>,
  predicate: (event: WatchEvent<T>) => boolean,
  ms: number,
): Promise<WatchEvent<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no matching event within ${ms} ms`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const next = await Promise.race([
      stream.next(),
      new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left)),
    ]);
    clearTimeout(timer);
    if (next === "timeout") throw new Error(`no matching event within ${ms} ms`);
    if (next.done) throw new Error("the stream ended");
    if (predicate(next.value)) return next.value;
  }
}

const configMaps = Api.v1ConfigMap().within(namespace);

await step("client certificate: config from a kubeconfig, /version, whoami", async () => {
  await using client = new Client(await Config.fromKubeconfig({ path: adminKubeconfig }));
  const version = await client.requestJson<{ gitVersion: string }>({ path: "/version" });
  assert.match(version.gitVersion, /^v1\./);
  assert.equal(await whoAmI(client), "denokube-admin");
});

await using client = new Client(await Config.fromKubeconfig({ path: adminKubeconfig }));

await step("create, apply, get, list, then kubectl sees them", async () => {
  await client.create(Api.v1Namespace(), { metadata: { name: namespace } });
  await client.create(configMaps, {
    metadata: { name: "created", labels: { runtime: runtimeName } },
    data: { by: "create" },
  });
  await client.apply(configMaps, {
    metadata: { name: "applied", labels: { runtime: runtimeName } },
    data: { by: "apply" },
  }, { fieldManager: "cross-runtime" });
  const got = await client.get(configMaps, "applied");
  assert.equal(got.data?.by, "apply");
  assert.ok(got.metadata?.managedFields?.some((f) => f.manager === "cross-runtime"));
  const list = await client.list(configMaps, { labelSelector: `runtime=${runtimeName}` });
  assert.deepEqual(list.items.map((c) => c.metadata?.name).sort(), ["applied", "created"]);
  const seen = JSON.parse(await kubectl("get", "configmaps", "-n", namespace, "-o", "json"));
  const names = seen.items.map((c: KubeObject) => c.metadata?.name);
  assert.ok(names.includes("created") && names.includes("applied"), `kubectl saw ${names}`);
});

await step("Reflector syncs, an Informer and the Reflector see a kubectl change", async () => {
  const controller = new AbortController();
  const reflector = new Reflector(client, configMaps).labels(`runtime=${runtimeName}`);
  const running = reflector.run({ signal: controller.signal }).catch((e) => {
    if (!controller.signal.aborted) throw e;
  });
  const changes = reflector.changes({ signal: controller.signal });
  const informer = new Informer(client, configMaps);
  const events = informer.stream({ signal: controller.signal });
  try {
    await until(events, (e) => e.type === "ADDED" && e.object.metadata?.name === "applied", 20_000);
    for (let i = 0; i < 600 && reflector.read().size < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual([...reflector.read().values()].map((c) => c.metadata?.name).sort(), [
      "applied",
      "created",
    ]);
    await kubectl(
      "create",
      "configmap",
      "from-kubectl",
      "-n",
      namespace,
      "--from-literal=by=kubectl",
    );
    const added = await until(
      events,
      (e) => e.type === "ADDED" && e.object.metadata?.name === "from-kubectl",
      20_000,
    );
    assert.equal(
      (added as { object: { data?: Record<string, string> } }).object.data?.by,
      "kubectl",
    );
    await kubectl("label", "configmap", "from-kubectl", "-n", namespace, `runtime=${runtimeName}`);
    for (;;) {
      const next = await changes.next();
      if (next.done) throw new Error("the Reflector's changes ended");
      if (reflector.get("from-kubectl", namespace)) break;
    }
    assert.equal(reflector.get("from-kubectl", namespace)?.data?.by, "kubectl");
  } finally {
    controller.abort();
    await running;
    await events.return?.();
    await changes.return?.();
  }
});

await step("bearer token from a kubeconfig", async () => {
  await using tokenClient = new Client(await Config.fromKubeconfig({ path: env("KUBE_X_TOKEN") }));
  assert.equal(await whoAmI(tokenClient), "denokube-token-admin");
  const list = await tokenClient.list(configMaps);
  assert.ok(list.items.length >= 3);
});

await step("exec plugin: a token", async () => {
  await using execClient = new Client(await Config.fromKubeconfig({ path: env("KUBE_X_EXEC") }));
  assert.equal(await whoAmI(execClient), "cross-exec-token");
});

await step("exec plugin: a client certificate", async () => {
  await using execClient = new Client(
    await Config.fromKubeconfig({ path: env("KUBE_X_EXEC_CERT") }),
  );
  assert.equal(await whoAmI(execClient), "cross-exec-cert");
});

await step(
  "insecure-skip-tls-verify: honoured per client on Node and Bun, explained on Deno",
  async () => {
    await using insecure = new Client(
      await Config.fromKubeconfig({ path: env("KUBE_X_INSECURE") }),
      {
        maxRetries: 0,
      },
    );
    if (runtimeName === "deno") {
      await assert.rejects(
        insecure.list(configMaps),
        /--unsafely-ignore-certificate-errors=127\.0\.0\.1/,
      );
    } else {
      assert.ok((await insecure.list(configMaps)).items.length >= 3);
    }
  },
);

const [podNamespace, podName] = env("KUBE_X_POD").split("/");
const inPod = { namespace: podNamespace, container: "main" };

await step(
  "exec through the apiserver to KWOK: stdout and stderr, as kubectl prints them",
  async () => {
    const script = 'echo "exec on $0"; echo oops >&2';
    const out = await execOutput(client, podName, ["sh", "-c", script, runtimeName], inPod);
    assert.deepEqual(out, { stdout: `exec on ${runtimeName}\n`, stderr: "oops\n", exitCode: 0 });
    const viaKubectl = await kubectl(
      "exec",
      "-n",
      podNamespace,
      podName,
      "-c",
      "main",
      "--",
      "sh",
      "-c",
      script,
      runtimeName,
    );
    assert.equal(out.stdout, viaKubectl);
  },
);

await step("exec with a bearer token and with an exec plugin's client certificate", async () => {
  for (const variable of ["KUBE_X_TOKEN", "KUBE_X_EXEC_CERT"]) {
    await using other = new Client(await Config.fromKubeconfig({ path: env(variable) }));
    const out = await execOutput(other, podName, ["echo", variable], inPod);
    assert.deepEqual(out, { stdout: `${variable}\n`, stderr: "", exitCode: 0 });
  }
});

await step("exec round trip: 5 sequential `true` (measured, not asserted)", async () => {
  // With the client certificate and with a bearer token: on Deno they take different socket
  // paths (Deno.connectTls vs Deno.connect + setNoDelay + Deno.startTls, see _platform/deno.ts).
  await using tokenClient = new Client(await Config.fromKubeconfig({ path: env("KUBE_X_TOKEN") }));
  for (const [auth, c] of [["client cert", client], ["token", tokenClient]] as const) {
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const { exitCode } = await execOutput(c, podName, ["true"], inPod);
      ms.push(performance.now() - started);
      assert.equal(exitCode, 0);
    }
    ms.sort((a, b) => a - b);
    console.log(
      `measure ${runtimeLabel}: exec round trip (${auth}) median ${ms[2].toFixed(1)} ms ` +
        `(min ${ms[0].toFixed(1)}, max ${ms[4].toFixed(1)})`,
    );
  }
});

await step("forwardPort: fetch through a local listener to the pod's port 80", async () => {
  await using forwarder = await forwardPort(client, podName, { port: 80, namespace: podNamespace });
  assert.equal(forwarder.hostname, "127.0.0.1");
  const ms: number[] = [];
  for (const path of [`/${runtimeName}/first`, `/${runtimeName}/second`]) {
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${forwarder.localPort}${path}`);
    assert.equal(response.headers.get("x-target"), "loopback");
    assert.equal(await response.text(), `hello from ${path}\n`);
    ms.push(performance.now() - started);
  }
  console.log(
    `measure ${runtimeLabel}: forwardPort fetch ${ms[0].toFixed(1)} ms (new stream), ` +
      `${ms[1].toFixed(1)} ms (second fetch)`,
  );
});

await step(
  "exec with insecure-skip-tls-verify: honoured on Node and Bun, explained on Deno",
  async () => {
    await using insecure = new Client(
      await Config.fromKubeconfig({ path: env("KUBE_X_INSECURE") }),
    );
    const running = execOutput(insecure, podName, ["echo", "insecure"], inPod);
    if (runtimeName === "deno") {
      await assert.rejects(running, /--unsafely-ignore-certificate-errors=127\.0\.0\.1/);
    } else {
      assert.equal((await running).stdout, "insecure\n");
    }
  },
);

await step(
  "tls-server-name: requests and exec verify against it on Node and Bun; refused on Deno",
  async () => {
    if (runtimeName === "deno") {
      for (const variable of ["KUBE_X_SERVER_NAME", "KUBE_X_WRONG_NAME"]) {
        await assert.rejects(Config.fromKubeconfig({ path: env(variable) }), /tls-server-name/);
      }
      return;
    }
    await using named = new Client(
      await Config.fromKubeconfig({ path: env("KUBE_X_SERVER_NAME") }),
    );
    assert.ok((await named.list(configMaps)).items.length >= 3);
    assert.equal((await execOutput(named, podName, ["echo", "named"], inPod)).stdout, "named\n");
    await using wrong = new Client(
      await Config.fromKubeconfig({ path: env("KUBE_X_WRONG_NAME") }),
      { maxRetries: 0 },
    );
    await assert.rejects(wrong.list(configMaps));
    await assert.rejects(execOutput(wrong, podName, ["true"], inPod));
  },
);

await step(
  "admission webhooks: our HTTPS server on this runtime, called by the apiserver",
  async () => {
    // Our WebhookServer serves from this runtime (Deno.serve is not used: node:https on Deno and
    // Node, Bun.serve on Bun) with a self-managed CA in a Secret of this namespace; the apiserver
    // calls it over TLS for configmaps of this namespace only.
    const name = `scenario-${namespace}`;
    const only = { matchLabels: { "kubernetes.io/metadata.name": namespace } };
    const stop = new AbortController();
    const certs = new SelfManagedCertificates({
      client,
      namespace,
      ipAddresses: ["127.0.0.1"],
      pollIntervalMs: 1000,
      overlapMs: 2500,
    });
    const server = new WebhookServer({
      webhooks: [
        validate(
          configMaps,
          (req) =>
            req.object?.data?.color === "red"
              ? deny(`data.color red is refused on ${runtimeName}`)
              : undefined,
          { namespaceSelector: only },
        ),
        mutate(configMaps, (cm) => {
          cm.metadata!.labels = {
            ...cm.metadata!.labels,
            "webhook.denokube.dev/runtime": runtimeName,
          };
        }, { namespaceSelector: only }),
      ],
      certificates: certs,
      hostname: "127.0.0.1",
      port: 0,
      register: { client, name, clientConfig: (port) => ({ url: `https://127.0.0.1:${port}` }) },
    });
    const running = server.run(stop.signal);
    try {
      await server.listening();
      // The apiserver picks the configurations up within a moment.
      let refusal = "";
      for (let i = 0; i < 100 && !refusal; i++) {
        await client.create(configMaps, { metadata: { name: "red" }, data: { color: "red" } }).then(
          () => client.delete(configMaps, "red"),
          (e: Error) => refusal = e.message,
        );
        if (!refusal) {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.match(
        refusal,
        new RegExp(`denied the request: data\\.color red is refused on ${runtimeName}`),
      );
      const blue = await client.create(configMaps, {
        metadata: { name: "blue" },
        data: { color: "blue" },
      });
      assert.equal(blue.metadata?.labels?.["webhook.denokube.dev/runtime"], runtimeName);
      // A rotation (new CA trusted, then served, then the old one dropped) while creating: no failure.
      certs.rotateNow();
      const before = certs.current()?.cert;
      const deadline = Date.now() + 7000;
      let n = 0;
      while (Date.now() < deadline) {
        await client.create(configMaps, { metadata: { name: `r-${n}` }, data: { color: "green" } });
        await client.delete(configMaps, `r-${n++}`);
      }
      assert.notEqual(certs.current()?.cert, before, "the served certificate was rotated");
      await client.delete(configMaps, "blue");
    } finally {
      stop.abort();
      await running;
      await client.delete(Api.admissionregistrationV1ValidatingWebhookConfiguration(), name)
        .catch(() => {});
      await client.delete(Api.admissionregistrationV1MutatingWebhookConfiguration(), name)
        .catch(() => {});
    }
  },
);

await step("delete, then kubectl sees them gone", async () => {
  for (const name of ["created", "applied", "from-kubectl"]) {
    await client.delete(configMaps, name);
  }
  await assert.rejects(client.get(configMaps, "created"), (e: unknown) => isNotFound(e));
  const left = JSON.parse(await kubectl("get", "configmaps", "-n", namespace, "-o", "json"));
  assert.deepEqual(
    left.items.map((c: KubeObject) => c.metadata?.name).filter((n: string) =>
      n !== "kube-root-ca.crt"
    ),
    [],
  );
  await client.delete(Api.v1Namespace(), namespace);
});

console.log(`scenario passed on ${runtimeLabel}`);
