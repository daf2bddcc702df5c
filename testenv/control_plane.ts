/**
 * A real Kubernetes control plane (etcd + kube-apiserver, built by `testenv/build.ts`) on loopback
 * ports in a temporary directory, for tests, examples, the demo and benchmarks.
 *
 * ```ts ignore
 * await using cp = await startControlPlane();
 * const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
 * ```
 *
 * @module
 */

import { type ControlPlaneBinaries, ensureBinaries, findBinaries } from "./build.ts";

/** Options of {@linkcode startControlPlane}. */
export interface ControlPlaneOptions {
  /** Build the binaries when they are missing (default true). */
  build?: boolean;
  /** Enable the apiserver's watch cache (default true, as in production clusters). */
  watchCache?: boolean;
  /** Extra kube-apiserver flags. */
  apiServerFlags?: string[];
  /** How long to wait for readiness, in milliseconds (default 60 000). */
  startTimeoutMs?: number;
  /** More static bearer tokens the apiserver accepts, e.g. for exec plugin tests. */
  extraTokens?: { token: string; user: string; groups?: string[] }[];
}

/** A running control plane. Stop it with `stop()` or `await using`. */
export interface ControlPlane extends AsyncDisposable {
  /** The API server URL, e.g. `https://127.0.0.1:43121`. */
  server: string;
  /** The temporary directory holding PKI, data and logs. */
  dir: string;
  /** Kubeconfig whose user authenticates with the admin client certificate (`system:masters`). */
  kubeconfigPath: string;
  /** Kubeconfig whose user authenticates with the static bearer token (`system:masters`). */
  tokenKubeconfigPath: string;
  /** Kubeconfig for an unprivileged token user (`viewer`, no RBAC bindings): gets 403s. */
  viewerKubeconfigPath: string;
  /** The admin bearer token from the static token file. */
  token: string;
  /** PEM of the cluster CA. */
  caPem: string;
  /** PEM of the CA private key, for tests that need to sign more client certificates. */
  caKeyPath: string;
  /** Path of the CA certificate. */
  caPath: string;
  /** etcd's client URL. */
  etcdUrl: string;
  /** The binaries and their versions. */
  binaries: ControlPlaneBinaries;
  /** Milliseconds from start to `/readyz`. */
  startMs: number;
  /** Stops kube-apiserver and starts it again on the same port, keeping etcd's data. */
  restartApiServer(): Promise<void>;
  /** Compacts etcd up to its current revision, so that older resource versions expire. */
  compact(): Promise<string>;
  /** Kills both processes and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
  /** The last lines of the apiserver and etcd logs. */
  logs(lines?: number): Promise<string>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${cmd} is not installed; it is needed to generate the test PKI`);
    }
    throw e;
  }
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
}

async function makePki(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=denokube-testenv-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ], dir);
  const leaf = async (name: string, subject: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await run("openssl", [
      "req",
      "-new",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      subject,
    ], dir);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ], dir);
  };
  await leaf(
    "serving",
    "/CN=kube-apiserver",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  await leaf(
    "admin",
    "/O=system:masters/CN=denokube-admin",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=clientAuth\n",
  );
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-out",
    "sa.key",
  ], dir);
  await run("openssl", ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function kubeconfig(server: string, caPath: string, user: Record<string, string>): string {
  // JSON is valid YAML: both kubectl and this library read it.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "testenv",
        cluster: { server, "certificate-authority": caPath },
      }],
      users: [{ name: "testenv-user", user }],
      contexts: [{
        name: "testenv",
        context: { cluster: "testenv", user: "testenv-user", namespace: "default" },
      }],
      "current-context": "testenv",
    },
    null,
    2,
  );
}

async function tail(path: string, lines: number): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.split("\n").slice(-lines - 1).join("\n");
  } catch {
    return "(no log)";
  }
}

class Process {
  #child: Deno.ChildProcess;
  #logFile: Deno.FsFile;
  #exited: Promise<Deno.CommandStatus>;
  #done = false;

  constructor(cmd: string, args: string[], logPath: string, cwd: string) {
    this.#logFile = Deno.openSync(logPath, { write: true, create: true, append: true });
    const child = new Deno.Command(cmd, {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const sink = this.#logFile;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) {
        try {
          await sink.write(chunk);
        } catch {
          // The log file is closed after the process ended.
        }
      }
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    this.#exited = (async () => {
      const status = await child.status;
      await pumps;
      this.#done = true;
      return status;
    })();
  }

  get exited(): boolean {
    return this.#done;
  }

  get status(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  async stop(): Promise<void> {
    if (!this.#done) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 5000);
      await this.#exited;
      clearTimeout(timer);
    } else {
      await this.#exited;
    }
    try {
      this.#logFile.close();
    } catch {
      // Already closed.
    }
  }
}

async function waitReady(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient },
  deadline: number,
  process: Process,
  what: string,
  logPath: string,
): Promise<void> {
  let last = "";
  while (Date.now() < deadline) {
    if (process.exited) {
      throw new Error(
        `${what} exited during start (status ${
          (await process.status).code
        }). Last log lines:\n${await tail(
          logPath,
          40,
        )}`,
      );
    }
    try {
      const res = await fetch(url, init);
      const body = await res.text();
      if (res.ok) return;
      last = `${res.status} ${body.slice(0, 300)}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${what} was not ready in time (last answer: ${last}). Last log lines:\n${await tail(
      logPath,
      40,
    )}`,
  );
}

/**
 * Starts etcd and kube-apiserver on free loopback ports, with a generated PKI and kubeconfig files
 * that both this library and kubectl accept, and waits for `/readyz`.
 *
 * @param options Build, watch cache, extra flags, timeout.
 * @returns The running control plane.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const binaries = options.build === false ? await findBinaries() : await ensureBinaries();
  if (!binaries) {
    throw new Error("The control plane binaries are not built: run deno task test:e2e");
  }
  const dir = await Deno.makeTempDir({ prefix: "denokube-testenv-" });
  const timeout = options.startTimeoutMs ?? 60_000;
  let etcd: Process | undefined;
  let apiserver: Process | undefined;
  let httpClient: Deno.HttpClient | undefined;
  const cleanup = async () => {
    await apiserver?.stop();
    await etcd?.stop();
    httpClient?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await makePki(dir);
    const token = randomToken();
    const viewerToken = randomToken();
    await Deno.writeTextFile(
      `${dir}/tokens.csv`,
      `${token},denokube-token-admin,uid-admin,"system:masters"\n${viewerToken},viewer,uid-viewer\n` +
        (options.extraTokens ?? []).map((t, i) =>
          `${t.token},${t.user},uid-extra-${i},"${(t.groups ?? []).join(",")}"\n`
        ).join(""),
    );
    const [etcdClientPort, etcdPeerPort, apiPort] = [
      freePort(),
      freePort(),
      freePort(),
    ];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcdLog = `${dir}/etcd.log`;
    etcd = new Process(
      binaries.etcd,
      [
        "--name=testenv",
        `--data-dir=${dir}/etcd-data`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=testenv=http://127.0.0.1:${etcdPeerPort}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
      etcdLog,
      dir,
    );
    await waitReady(`${etcdUrl}/health`, {}, started + timeout, etcd, "etcd", etcdLog);

    const server = `https://127.0.0.1:${apiPort}`;
    const apiLog = `${dir}/kube-apiserver.log`;
    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${dir}/serving.crt`,
      `--tls-private-key-file=${dir}/serving.key`,
      `--client-ca-file=${dir}/ca.crt`,
      `--token-auth-file=${dir}/tokens.csv`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${dir}/sa.pub`,
      `--service-account-signing-key-file=${dir}/sa.key`,
      "--service-cluster-ip-range=10.96.0.0/24",
      "--authorization-mode=RBAC",
      "--allow-privileged=true",
      "--disable-admission-plugins=ServiceAccount",
      `--watch-cache=${options.watchCache ?? true}`,
      "--profiling=false",
      "--v=1",
      ...(options.apiServerFlags ?? []),
    ];
    const startApi = () => new Process(binaries.kubeApiServer, apiArgs, apiLog, dir);
    apiserver = startApi();
    const caPem = await Deno.readTextFile(`${dir}/ca.crt`);
    const readyz = async () => {
      httpClient = Deno.createHttpClient({ caCerts: [caPem] });
      try {
        await waitReady(
          `${server}/readyz`,
          { client: httpClient, headers: { Authorization: `Bearer ${token}` } },
          Date.now() + timeout,
          apiserver!,
          "kube-apiserver",
          apiLog,
        );
      } finally {
        httpClient.close();
        httpClient = undefined;
      }
    };
    await readyz();

    const kubeconfigPath = `${dir}/kubeconfig-admin.yaml`;
    const tokenKubeconfigPath = `${dir}/kubeconfig-token.yaml`;
    const viewerKubeconfigPath = `${dir}/kubeconfig-viewer.yaml`;
    await Deno.writeTextFile(
      kubeconfigPath,
      kubeconfig(server, `${dir}/ca.crt`, {
        "client-certificate": `${dir}/admin.crt`,
        "client-key": `${dir}/admin.key`,
      }),
    );
    await Deno.writeTextFile(tokenKubeconfigPath, kubeconfig(server, `${dir}/ca.crt`, { token }));
    await Deno.writeTextFile(
      viewerKubeconfigPath,
      kubeconfig(server, `${dir}/ca.crt`, { token: viewerToken }),
    );

    let stopped = false;
    const controlPlane: ControlPlane = {
      server,
      dir,
      kubeconfigPath,
      tokenKubeconfigPath,
      viewerKubeconfigPath,
      token,
      caPem,
      caPath: `${dir}/ca.crt`,
      caKeyPath: `${dir}/ca.key`,
      etcdUrl,
      binaries,
      startMs: Date.now() - started,
      async restartApiServer() {
        await apiserver!.stop();
        apiserver = startApi();
        await readyz();
      },
      async compact() {
        const post = async (path: string, body: unknown) => {
          const res = await fetch(`${etcdUrl}${path}`, {
            method: "POST",
            body: JSON.stringify(body),
          });
          const json = await res.json();
          if (!res.ok) throw new Error(`etcd ${path} failed: ${JSON.stringify(json)}`);
          return json;
        };
        // Any range read returns the store's current revision in its header.
        const range = await post("/v3/kv/range", { key: btoa("\0"), limit: 1 });
        const revision = String(range.header.revision);
        await post("/v3/kv/compaction", { revision, physical: true });
        return revision;
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
      async logs(lines = 40) {
        return `--- kube-apiserver ---\n${await tail(apiLog, lines)}\n--- etcd ---\n${await tail(
          etcdLog,
          lines,
        )}`;
      },
      [Symbol.asyncDispose]() {
        return controlPlane.stop();
      },
    };
    return controlPlane;
  } catch (e) {
    await cleanup();
    throw e;
  }
}
