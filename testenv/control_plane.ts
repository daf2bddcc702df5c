/**
 * A real Kubernetes control plane (etcd + kube-apiserver, built by `testenv/build.ts`) on loopback
 * ports in a temporary directory, for tests, examples, the demo and benchmarks. On request it also
 * runs kube-controller-manager, kube-scheduler and KWOK, which plays N nodes (their status, Leases
 * and kubelet API): a whole small cluster where Deployments roll out, pods go Running, Jobs
 * complete, owners' dependants are garbage-collected and namespaces finish deleting.
 *
 * ```ts ignore
 * await using cp = await startControlPlane(); // kube-apiserver + etcd only: fast
 * const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
 *
 * await using cluster = await startControlPlane({ cluster: "full" }); // + controllers, 2 nodes
 * ```
 *
 * @module
 */

import { type ControlPlaneBinaries, ensureBinaries, findBinaries } from "./build.ts";

/**
 * Which pods a KWOK rule applies to. An empty selector matches every container of every pod.
 */
export interface KwokPodSelector {
  /** The pods' namespace (default: every namespace). */
  namespace?: string;
  /** The pods' names (default: every pod of the namespace). */
  pods?: string[];
  /** The containers' names (default: every container of the pod). */
  containers?: string[];
}

/**
 * Pods whose `exec` runs the command as a local process on this machine, in a scratch working
 * directory (KWOK's "local" exec). Only for pods a test selects: it runs host commands.
 */
export interface KwokExecRule extends KwokPodSelector {
  /** The pods' namespace (required: exec is never enabled cluster-wide). */
  namespace: string;
  /**
   * Working directory of the commands (default: a fresh directory in the control plane's
   * directory; see {@linkcode KwokCluster.execWorkDir}).
   */
  workDir?: string;
  /** Environment variables of the commands. */
  env?: Record<string, string>;
}

/**
 * Pods whose `port-forward` connects to a server on loopback (one a test started before the
 * control plane, since KWOK's configuration is fixed at start).
 */
export interface KwokPortForwardRule extends KwokPodSelector {
  /** The pods' namespace (required). */
  namespace: string;
  /** The pod ports this rule forwards (default: every port). */
  ports?: number[];
  /** Where the connections go: a loopback address (`127.0.0.1`, `::1` or `localhost`). */
  target: { address: string; port: number };
}

/** Options of KWOK, the simulated nodes and their kubelet API. */
export interface KwokOptions {
  /** How many nodes to create, named `kwok-node-0`, `kwok-node-1`, … (default 2). */
  nodes?: number;
  /**
   * Pods whose container logs (and `attach` output) have their own file. Each rule gets a CRI
   * format log file in the control plane's directory ({@linkcode KwokCluster.logFile},
   * {@linkcode KwokCluster.appendLog}); every other container reads one cluster-wide file. Rules
   * are matched in order, the first that matches wins.
   */
  logs?: KwokPodSelector[];
  /** Pods whose `exec` runs local commands (none by default). */
  exec?: KwokExecRule[];
  /** Pods whose `port-forward` reaches a loopback server (none by default). */
  portForward?: KwokPortForwardRule[];
  /** Extra kwok flags. */
  flags?: string[];
}

/** The `--feature-gates` flag of a gate map (none when empty); names must be gate names. */
function featureGateFlags(gates: Record<string, boolean> | undefined): string[] {
  const entries = Object.entries(gates ?? {});
  if (entries.length === 0) return [];
  for (const [name, on] of entries) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name) || typeof on !== "boolean") {
      throw new RangeError(
        `featureGates.${name} must be a gate name (letters and digits) mapped to true or false, got ${
          JSON.stringify(on)
        }`,
      );
    }
  }
  return [`--feature-gates=${entries.map(([name, on]) => `${name}=${on}`).join(",")}`];
}

/** Options of {@linkcode startControlPlane}. */
export interface ControlPlaneOptions {
  /** Build the binaries when they are missing (default true). */
  build?: boolean;
  /** Enable the apiserver's watch cache (default true, as in production clusters). */
  watchCache?: boolean;
  /** Extra kube-apiserver flags. */
  apiServerFlags?: string[];
  /**
   * kube-apiserver feature gates, e.g. `{ ShardedListAndWatch: true }` (KEP-5866, alpha in
   * 1.36), passed as one `--feature-gates=Name=true,…` flag. Default: none (the release's
   * defaults).
   */
  featureGates?: Record<string, boolean>;
  /** How long to wait for readiness, in milliseconds (default 60 000). */
  startTimeoutMs?: number;
  /** More static bearer tokens the apiserver accepts, e.g. for exec plugin tests. */
  extraTokens?: { token: string; user: string; groups?: string[] }[];
  /**
   * A preset: `"apiserver"` (default) runs etcd and kube-apiserver only; `"full"` also runs the
   * controller-manager, the scheduler and KWOK with 2 nodes. The options below override it.
   */
  cluster?: "apiserver" | "full";
  /**
   * Run kube-controller-manager (default: on with `cluster: "full"`), with the controllers that
   * work without a cloud ({@linkcode DEFAULT_CONTROLLERS}) or the ones given.
   */
  controllerManager?: boolean | { controllers?: string[]; flags?: string[] };
  /** Run kube-scheduler (default: on with `cluster: "full"`). Without it pods stay Pending. */
  scheduler?: boolean | { flags?: string[] };
  /**
   * Run KWOK and create its nodes (default: on with `cluster: "full"`, 2 nodes). Without the
   * controller-manager's node lifecycle controller the nodes keep the `not-ready` taint that the
   * apiserver puts on new nodes, so the scheduler places no pod on them (bind pods with
   * `spec.nodeName` instead).
   */
  kwok?: boolean | KwokOptions;
}

/**
 * The controllers kube-controller-manager runs by default here: every one that works without a
 * cloud provider and is useful to operators' tests.
 */
export const DEFAULT_CONTROLLERS: readonly string[] = [
  "garbage-collector-controller",
  "namespace-controller",
  "deployment-controller",
  "replicaset-controller",
  "replicationcontroller-controller",
  "statefulset-controller",
  "daemonset-controller",
  "job-controller",
  "cronjob-controller",
  "ttl-after-finished-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller",
  "endpointslice-controller",
  "pod-garbage-collector-controller",
  "node-lifecycle-controller",
  "disruption-controller",
];

/** KWOK's part of a running control plane: its nodes and the files behind its kubelet API. */
export interface KwokCluster {
  /** The names of the nodes KWOK plays. */
  nodes: string[];
  /** KWOK's kubelet API (HTTPS on loopback, serving a certificate of the cluster CA). */
  url: string;
  /** KWOK's configuration file (stages, logs, attach, exec, port-forward rules). */
  configPath: string;
  /**
   * The CRI format log file that KWOK serves as the logs (and `attach` output) of a container.
   *
   * @param namespace The pod's namespace.
   * @param pod The pod's name.
   * @param container The container's name (default: matches rules for every container).
   * @returns The file's path.
   */
  logFile(namespace: string, pod: string, container?: string): string;
  /**
   * Appends lines to a container's log file in the CRI format KWOK reads
   * (`<RFC3339Nano time> <stream> F <line>`), as a container runtime would.
   *
   * @param target The container.
   * @param lines The lines (without newlines).
   * @param stream `stdout` (default) or `stderr`.
   */
  appendLog(
    target: { namespace: string; pod: string; container?: string },
    lines: string | string[],
    stream?: "stdout" | "stderr",
  ): Promise<void>;
  /**
   * The working directory of `exec` for a container, or `undefined` when exec is not enabled for
   * it.
   *
   * @param namespace The pod's namespace.
   * @param pod The pod's name.
   * @param container The container's name.
   * @returns The directory, if any.
   */
  execWorkDir(namespace: string, pod: string, container?: string): string | undefined;
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
  /** Milliseconds from start to ready (`/readyz`; with KWOK, its nodes Ready too). */
  startMs: number;
  /** The running components, e.g. `["etcd", "kube-apiserver", "kwok"]`. */
  components: string[];
  /** KWOK's nodes and files, when KWOK runs. */
  kwok?: KwokCluster;
  /** The process id of each running component, e.g. to measure its memory. */
  pids(): Record<string, number>;
  /**
   * Throws an error naming each component that exited since the start, with its last log lines.
   * The e2e harness calls it after each test.
   */
  assertHealthy(): Promise<void>;
  /** Stops kube-apiserver and starts it again on the same port, keeping etcd's data. */
  restartApiServer(): Promise<void>;
  /** Compacts etcd up to its current revision, so that older resource versions expire. */
  compact(): Promise<string>;
  /** Kills every process and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
  /** The last lines of every component's log. */
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

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const SERVER_EXT =
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
  "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n";
const CLIENT_EXT =
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
  "extendedKeyUsage=clientAuth\n";

/** Signs `<name>.crt` (and its key `<name>.key`) with the cluster CA in `dir`. */
async function leaf(dir: string, name: string, subject: string, ext: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
  await run("openssl", [
    "req",
    "-new",
    ...EC,
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
}

async function makePki(dir: string): Promise<void> {
  await run("openssl", [
    "req",
    "-x509",
    ...EC,
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
  await leaf(dir, "serving", "/CN=kube-apiserver", SERVER_EXT);
  await leaf(dir, "admin", "/O=system:masters/CN=denokube-admin", CLIENT_EXT);
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

/** A child process whose output goes to a log file; it knows whether it was asked to stop. */
class Process {
  #child: Deno.ChildProcess;
  #logFile: Deno.FsFile;
  #exited: Promise<Deno.CommandStatus>;
  #done = false;
  #stopping = false;

  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    readonly logPath: string,
    cwd: string,
    env?: Record<string, string>,
  ) {
    this.#logFile = Deno.openSync(logPath, { write: true, create: true, append: true });
    const child = new Deno.Command(cmd, {
      args,
      cwd,
      env,
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

  get pid(): number {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#done;
  }

  /** True when the process ended without being asked to. */
  get died(): boolean {
    return this.#done && !this.#stopping;
  }

  get status(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  /** Why the process is gone, with the last lines of its log. */
  async report(lines = 40): Promise<string> {
    const { code, signal } = await this.#exited;
    return `${this.name} exited (${signal ? `signal ${signal}` : `status ${code}`}). ` +
      `Last log lines of ${this.logPath}:\n${await tail(this.logPath, lines)}`;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
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

/** Polls `check` every 100 ms until it returns undefined (ready) or the deadline passes. */
async function waitUntil(
  what: string,
  check: () => Promise<string | undefined>,
  deadline: number,
  process?: Process,
): Promise<void> {
  let last = "";
  while (Date.now() < deadline) {
    if (process?.exited) {
      throw new Error(`${what}: ${await process.report()}`);
    }
    try {
      const notYet = await check();
      if (notYet === undefined) return;
      last = notYet;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${what}: not ready in time (last answer: ${last})` +
      (process
        ? `. Last log lines of ${process.logPath}:\n${await tail(process.logPath, 40)}`
        : ""),
  );
}

/** Waits until `url` answers 2xx. */
function waitHttpReady(
  url: string,
  init: RequestInit & { client?: Deno.HttpClient },
  deadline: number,
  process: Process,
): Promise<void> {
  return waitUntil(
    `${process.name} (${url})`,
    async () => {
      const res = await fetch(url, init);
      const body = await res.text();
      return res.ok ? undefined : `${res.status} ${body.slice(0, 300)}`;
    },
    deadline,
    process,
  );
}

/** The parts of a Node the start-up reads. */
interface NodeView {
  metadata?: { name?: string };
  spec?: { taints?: { key: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

/** A KWOK rule's selector in KWOK's configuration format. */
function kwokSelector(rule: KwokPodSelector): Record<string, string[]> | undefined {
  const selector: Record<string, string[]> = {};
  if (rule.namespace) selector.matchNamespaces = [rule.namespace];
  if (rule.pods?.length) selector.matchNames = rule.pods;
  return Object.keys(selector).length ? selector : undefined;
}

function matches(rule: KwokPodSelector, namespace: string, pod: string, container?: string) {
  return (!rule.namespace || rule.namespace === namespace) &&
    (!rule.pods?.length || rule.pods.includes(pod)) &&
    (!rule.containers?.length || container === undefined || rule.containers.includes(container));
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Checks the KWOK options before anything starts; throws a RangeError naming the bad field. */
function checkKwokOptions(options: KwokOptions): void {
  const nodes = options.nodes ?? 2;
  if (!Number.isInteger(nodes) || nodes < 0) {
    throw new RangeError(`kwok.nodes is ${nodes}: give a whole number of nodes (0 or more)`);
  }
  (options.exec ?? []).forEach((rule, i) => {
    if (!rule.namespace) {
      throw new RangeError(
        `kwok.exec[${i}].namespace is empty: exec runs local commands, so it is enabled only ` +
          `for the pods of a namespace you name`,
      );
    }
  });
  (options.portForward ?? []).forEach((rule, i) => {
    if (!rule.namespace) {
      throw new RangeError(`kwok.portForward[${i}].namespace is empty: name the pods' namespace`);
    }
    if (!LOOPBACK.has(rule.target.address)) {
      throw new RangeError(
        `kwok.portForward[${i}].target.address is ${rule.target.address}: the test environment ` +
          `forwards only to loopback (127.0.0.1, ::1 or localhost)`,
      );
    }
    const { port } = rule.target;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`kwok.portForward[${i}].target.port is ${port}: give a TCP port`);
    }
  });
}

/** KWOK's `--config`: the stages of the build, then the logs, attach, exec and forward rules. */
async function kwokConfig(
  binaries: ControlPlaneBinaries,
  options: KwokOptions,
  logRules: { rule: KwokPodSelector; file: string }[],
  execRules: { rule: KwokExecRule; workDir: string }[],
): Promise<string> {
  const docs: string[] = [];
  for (
    const entry of [...Deno.readDirSync(binaries.kwokStagesDir)].sort((a, b) =>
      a.name.localeCompare(b.name)
    )
  ) {
    if (entry.name.endsWith(".yaml")) {
      docs.push(await Deno.readTextFile(`${binaries.kwokStagesDir}/${entry.name}`));
    }
  }
  const object = (kind: string, name: string, spec: unknown) =>
    JSON.stringify({ apiVersion: "kwok.x-k8s.io/v1alpha1", kind, metadata: { name }, spec });
  logRules.forEach(({ rule, file }, i) => {
    const selector = kwokSelector(rule);
    const containers = rule.containers?.length ? { containers: rule.containers } : {};
    docs.push(object("ClusterLogs", `logs-${i}`, {
      ...(selector ? { selector } : {}),
      logs: [{ ...containers, logsFile: file, follow: true }],
    }));
    docs.push(object("ClusterAttach", `attach-${i}`, {
      ...(selector ? { selector } : {}),
      attaches: [{ ...containers, logsFile: file }],
    }));
  });
  execRules.forEach(({ rule, workDir }, i) => {
    docs.push(object("ClusterExec", `exec-${i}`, {
      selector: kwokSelector(rule),
      execs: [{
        ...(rule.containers?.length ? { containers: rule.containers } : {}),
        local: {
          workDir,
          envs: Object.entries(rule.env ?? {}).map(([name, value]) => ({ name, value })),
        },
      }],
    }));
  });
  (options.portForward ?? []).forEach((rule, i) => {
    docs.push(object("ClusterPortForward", `port-forward-${i}`, {
      selector: kwokSelector(rule),
      forwards: [{
        ...(rule.ports?.length ? { ports: rule.ports } : {}),
        target: rule.target,
      }],
    }));
  });
  return docs.map((doc) => doc.trim()).join("\n---\n") + "\n";
}

/** Formats lines as a container runtime writes them (the CRI log format). */
function criLines(lines: string | string[], stream: "stdout" | "stderr"): string {
  const now = new Date().toISOString().replace("Z", "000000Z"); // nanoseconds, as RFC3339Nano
  return (typeof lines === "string" ? [lines] : lines)
    .map((line) => `${now} ${stream} F ${line}\n`).join("");
}

/**
 * Starts etcd and kube-apiserver on free loopback ports, with a generated PKI and kubeconfig files
 * that both this library and kubectl accept, and waits for `/readyz`. On request (`cluster:
 * "full"`, or per component) it also starts kube-controller-manager, kube-scheduler and KWOK,
 * creates KWOK's nodes and waits until they are Ready. A component that exits early fails the
 * start with its last log lines; one that exits later is reported by `assertHealthy()`.
 *
 * @param options Preset and components, build, watch cache, extra flags, timeout.
 * @returns The running control plane.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const full = options.cluster === "full";
  const cmOptions = options.controllerManager ?? full;
  const schedulerOptions = options.scheduler ?? full;
  const kwokOptions: KwokOptions | false = options.kwok === true || (options.kwok ?? full)
    ? (typeof options.kwok === "object" ? options.kwok : {})
    : false;
  if (kwokOptions) checkKwokOptions(kwokOptions);
  const gateFlags = featureGateFlags(options.featureGates); // checked before anything starts
  const binaries = options.build === false ? await findBinaries() : await ensureBinaries();
  if (!binaries) {
    throw new Error("The control plane binaries are not built: run deno task test:e2e");
  }
  const dir = await Deno.makeTempDir({ prefix: "denokube-testenv-" });
  const timeout = options.startTimeoutMs ?? 60_000;
  let etcd: Process | undefined;
  let apiserver: Process | undefined;
  const others: Process[] = [];
  let httpClient: Deno.HttpClient | undefined;
  const cleanup = async () => {
    await Promise.all(others.map((p) => p.stop()));
    await apiserver?.stop();
    await etcd?.stop();
    httpClient?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await makePki(dir);
    if (cmOptions) {
      await leaf(
        dir,
        "controller-manager",
        "/O=system:masters/CN=kube-controller-manager",
        CLIENT_EXT,
      );
    }
    if (schedulerOptions) {
      await leaf(dir, "scheduler", "/O=system:masters/CN=kube-scheduler", CLIENT_EXT);
    }
    if (kwokOptions) {
      await leaf(dir, "kwok", "/O=system:masters/CN=kwok", CLIENT_EXT);
      await leaf(dir, "kubelet-serving", "/CN=kwok-kubelet", SERVER_EXT);
      await leaf(dir, "kubelet-client", "/CN=kube-apiserver-kubelet-client", CLIENT_EXT);
    }
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
    etcd = new Process(
      "etcd",
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
      `${dir}/etcd.log`,
      dir,
    );
    await waitHttpReady(`${etcdUrl}/health`, {}, started + timeout, etcd);

    const server = `https://127.0.0.1:${apiPort}`;
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
      // The apiserver verifies KWOK's kubelet serving certificate and authenticates to it.
      ...(kwokOptions
        ? [
          `--kubelet-certificate-authority=${dir}/ca.crt`,
          `--kubelet-client-certificate=${dir}/kubelet-client.crt`,
          `--kubelet-client-key=${dir}/kubelet-client.key`,
          "--kubelet-preferred-address-types=InternalIP",
        ]
        : []),
      ...gateFlags,
      ...(options.apiServerFlags ?? []),
    ];
    const startApi = () =>
      new Process(
        "kube-apiserver",
        binaries.kubeApiServer,
        apiArgs,
        `${dir}/kube-apiserver.log`,
        dir,
      );
    apiserver = startApi();
    const caPem = await Deno.readTextFile(`${dir}/ca.crt`);
    httpClient = Deno.createHttpClient({ caCerts: [caPem] });
    const auth = { Authorization: `Bearer ${token}` };
    const readyz = () =>
      waitHttpReady(
        `${server}/readyz`,
        { client: httpClient, headers: auth },
        Date.now() + timeout,
        apiserver!,
      );
    await readyz();

    const kubeconfigPath = `${dir}/kubeconfig-admin.yaml`;
    const tokenKubeconfigPath = `${dir}/kubeconfig-token.yaml`;
    const viewerKubeconfigPath = `${dir}/kubeconfig-viewer.yaml`;
    const certKubeconfig = (name: string) =>
      kubeconfig(server, `${dir}/ca.crt`, {
        "client-certificate": `${dir}/${name}.crt`,
        "client-key": `${dir}/${name}.key`,
      });
    await Deno.writeTextFile(kubeconfigPath, certKubeconfig("admin"));
    await Deno.writeTextFile(tokenKubeconfigPath, kubeconfig(server, `${dir}/ca.crt`, { token }));
    await Deno.writeTextFile(
      viewerKubeconfigPath,
      kubeconfig(server, `${dir}/ca.crt`, { token: viewerToken }),
    );

    /** GET on the apiserver as the admin. */
    const apiGet = async (path: string) => {
      const res = await fetch(`${server}${path}`, { client: httpClient, headers: auth });
      const body = await res.json();
      return { status: res.status, body };
    };
    const waits: Promise<void>[] = [];
    const deadline = Date.now() + timeout;

    if (cmOptions) {
      const { controllers = DEFAULT_CONTROLLERS, flags = [] } = cmOptions === true ? {} : cmOptions;
      await Deno.writeTextFile(
        `${dir}/kubeconfig-controller-manager.yaml`,
        certKubeconfig("controller-manager"),
      );
      const cm = new Process(
        "kube-controller-manager",
        binaries.kubeControllerManager,
        [
          `--kubeconfig=${dir}/kubeconfig-controller-manager.yaml`,
          `--controllers=${controllers.join(",")}`,
          "--secure-port=0",
          "--leader-elect=false",
          "--use-service-account-credentials=false",
          `--root-ca-file=${dir}/ca.crt`,
          `--service-account-private-key-file=${dir}/sa.key`,
          `--cluster-signing-cert-file=${dir}/ca.crt`,
          `--cluster-signing-key-file=${dir}/ca.key`,
          "--kube-api-qps=200",
          "--kube-api-burst=400",
          "--profiling=false",
          "--v=1",
          ...flags,
        ],
        `${dir}/kube-controller-manager.log`,
        dir,
      );
      others.push(cm);
      // The service account controller creates `default` in each namespace: a sign of life.
      if (controllers.includes("serviceaccount-controller")) {
        waits.push(waitUntil(
          "kube-controller-manager",
          async () => {
            const { status } = await apiGet("/api/v1/namespaces/default/serviceaccounts/default");
            return status === 200 ? undefined : `serviceaccount default/default: ${status}`;
          },
          deadline,
          cm,
        ));
      }
    }

    if (schedulerOptions) {
      const { flags = [] } = schedulerOptions === true ? {} : schedulerOptions;
      const port = freePort();
      await Deno.writeTextFile(`${dir}/kubeconfig-scheduler.yaml`, certKubeconfig("scheduler"));
      const scheduler = new Process(
        "kube-scheduler",
        binaries.kubeScheduler,
        [
          `--kubeconfig=${dir}/kubeconfig-scheduler.yaml`,
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          `--secure-port=${port}`,
          `--tls-cert-file=${dir}/serving.crt`,
          `--tls-private-key-file=${dir}/serving.key`,
          "--kube-api-qps=200",
          "--kube-api-burst=400",
          "--profiling=false",
          "--v=1",
          ...flags,
        ],
        `${dir}/kube-scheduler.log`,
        dir,
      );
      others.push(scheduler);
      waits.push(
        waitHttpReady(
          `https://127.0.0.1:${port}/readyz`,
          { client: httpClient },
          deadline,
          scheduler,
        ),
      );
    }

    let kwok: KwokCluster | undefined;
    if (kwokOptions) {
      const port = freePort();
      const kwokDir = `${dir}/kwok`;
      await Deno.mkdir(`${kwokDir}/logs`, { recursive: true });
      const logRules = [...(kwokOptions.logs ?? []), {}].map((rule, i, all) => ({
        rule,
        file: `${kwokDir}/logs/${
          i === all.length - 1 ? "cluster" : `${i}-${rule.namespace ?? "all"}`
        }.log`,
      }));
      for (const { file } of logRules) await Deno.writeTextFile(file, "");
      const execRules = (kwokOptions.exec ?? []).map((rule, i) => ({
        rule,
        workDir: rule.workDir ?? `${kwokDir}/exec/${i}-${rule.namespace}`,
      }));
      for (const { workDir } of execRules) await Deno.mkdir(workDir, { recursive: true });
      const configPath = `${kwokDir}/kwok.yaml`;
      await Deno.writeTextFile(
        configPath,
        await kwokConfig(binaries, kwokOptions, logRules, execRules),
      );
      await Deno.writeTextFile(`${dir}/kubeconfig-kwok.yaml`, certKubeconfig("kwok"));
      const process = new Process(
        "kwok",
        binaries.kwok,
        [
          `--kubeconfig=${dir}/kubeconfig-kwok.yaml`,
          `--config=${configPath}`,
          `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
          // The nodes' InternalIP and kubelet port: the apiserver proxies logs, exec, attach and
          // port-forward there. No --node-name: it would add a Hostname address.
          "--node-ip=127.0.0.1",
          `--node-port=${port}`,
          `--server-address=127.0.0.1:${port}`,
          `--tls-cert-file=${dir}/kubelet-serving.crt`,
          `--tls-private-key-file=${dir}/kubelet-serving.key`,
          "--node-lease-duration-seconds=40",
          "--cidr=10.244.0.0/16",
          ...(kwokOptions.flags ?? []),
        ],
        `${dir}/kwok.log`,
        dir,
        // Its work directory (otherwise ~/.kwok, whose kwok.yaml it would also load).
        { KWOK_WORKDIR: kwokDir },
      );
      others.push(process);
      const nodes = Array.from({ length: kwokOptions.nodes ?? 2 }, (_, i) => `kwok-node-${i}`);
      for (const name of nodes) {
        const res = await fetch(`${server}/api/v1/nodes`, {
          method: "POST",
          client: httpClient,
          headers: { ...auth, "Content-Type": "application/json" },
          body: JSON.stringify({
            apiVersion: "v1",
            kind: "Node",
            metadata: {
              name,
              labels: {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                type: "kwok",
              },
              annotations: { [KWOK_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
            },
          }),
        });
        const body = await res.text();
        if (!res.ok) throw new Error(`creating node ${name} failed: ${res.status} ${body}`);
      }
      waits.push(
        waitHttpReady(
          `https://127.0.0.1:${port}/healthz`,
          { client: httpClient },
          deadline,
          process,
        ),
      );
      // Ready, and (with the node lifecycle controller) no longer tainted not-ready: the
      // TaintNodesByCondition admission plugin taints new nodes, only that controller lifts it.
      const lifecycle = cmOptions &&
        (cmOptions === true || !cmOptions.controllers ||
          cmOptions.controllers.includes("node-lifecycle-controller"));
      waits.push(waitUntil(
        "kwok nodes",
        async () => {
          const { status, body } = await apiGet("/api/v1/nodes?labelSelector=type%3Dkwok");
          if (status !== 200) return `list nodes: ${status}`;
          const items = (body as { items: NodeView[] }).items;
          const notReady = nodes.filter((name) => {
            const node = items.find((n) => n.metadata?.name === name);
            const ready = node?.status?.conditions?.some((c) =>
              c.type === "Ready" && c.status === "True"
            );
            const tainted = node?.spec?.taints?.some((t) =>
              t.key.startsWith("node.kubernetes.io/not-ready") ||
              t.key.startsWith("node.kubernetes.io/unreachable")
            );
            return !ready || (lifecycle && tainted);
          });
          return notReady.length ? `not ready: ${notReady.join(", ")}` : undefined;
        },
        deadline,
        process,
      ));
      const logFile = (namespace: string, pod: string, container?: string) =>
        logRules.find(({ rule }) => matches(rule, namespace, pod, container))!.file;
      kwok = {
        nodes,
        url: `https://127.0.0.1:${port}`,
        configPath,
        logFile,
        async appendLog(target, lines, stream = "stdout") {
          await Deno.writeTextFile(
            logFile(target.namespace, target.pod, target.container),
            criLines(lines, stream),
            { append: true },
          );
        },
        execWorkDir(namespace, pod, container) {
          return execRules.find(({ rule }) => matches(rule, namespace, pod, container))?.workDir;
        },
      };
    }
    await Promise.all(waits);

    const all = () => [etcd!, apiserver!, ...others];
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
      components: all().map((p) => p.name),
      kwok,
      pids() {
        return Object.fromEntries(all().map((p) => [p.name, p.pid]));
      },
      async assertHealthy() {
        const dead = all().filter((p) => p.died);
        if (dead.length) {
          const reports = await Promise.all(dead.map((p) => p.report(20)));
          throw new Error(`A control plane component died:\n${reports.join("\n")}`);
        }
      },
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
        const parts = await Promise.all(
          all().map(async (p) =>
            `--- ${p.name}${p.died ? " (DIED)" : ""} ---\n${await tail(p.logPath, lines)}`
          ),
        );
        return parts.join("\n");
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

/** The annotation that marks the nodes KWOK plays. */
const KWOK_ANNOTATION = "kwok.x-k8s.io/node";
