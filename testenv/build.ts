/**
 * Builds the real Kubernetes components from the Go modules pinned under `testenv/`, into a cache
 * directory outside the repository: `etcd` (`testenv/etcd`), `kube-apiserver`,
 * `kube-controller-manager` and `kube-scheduler` (`testenv/apiserver`, one `k8s.io/kubernetes`
 * module) and KWOK (`testenv/kwok`), which plays the nodes and their kubelet API. KWOK's stage
 * definitions are copied from its module in the Go module cache into the same cache directory.
 * Rebuilt only when a pin (any go.mod or go.sum) changes. Test infrastructure only: the library
 * itself is pure TypeScript.
 *
 * Also builds `promlint` (testenv/promlint: client_golang's promlint, the code behind
 * `promtool check metrics`, built in seconds instead of compiling all of Prometheus) and `otelcol`
 * (testenv/otelcol: a minimal OpenTelemetry Collector, one release, with the OTLP receiver and the
 * debug exporter only; the tracing e2e test sends its spans to it). Each tool has a cache
 * directory of its own, named by a digest of its module's go.mod, go.sum and Go sources, so a
 * change of one rebuilds only it.
 *
 * Run: `deno run --allow-all testenv/build.ts`. Without Go it prints why the real-cluster tests
 * will be skipped and exits 0 — unless `CI=true` or `KUBE_E2E=require`, then it fails.
 *
 * @module
 */

const here = new URL(".", import.meta.url);

/** Paths of the built binaries. */
export interface ControlPlaneBinaries {
  /** The kube-apiserver executable. */
  kubeApiServer: string;
  /** The kube-controller-manager executable. */
  kubeControllerManager: string;
  /** The kube-scheduler executable. */
  kubeScheduler: string;
  /** The kwok executable (simulated nodes and kubelet API). */
  kwok: string;
  /** The etcd executable. */
  etcd: string;
  /** Directory of KWOK's stage definitions (YAML), copied from its module at build time. */
  kwokStagesDir: string;
  /** Kubernetes version, e.g. `v1.36.3`. */
  kubernetesVersion: string;
  /** etcd version, e.g. `v3.6.8`. */
  etcdVersion: string;
  /** KWOK version, e.g. `v0.8.0`. */
  kwokVersion: string;
  /** The cache directory holding them all. */
  dir: string;
}

/** True when the real-cluster tests must run (a missing prerequisite is a failure). */
export function e2eRequired(): boolean {
  return Deno.env.get("CI") === "true" || Deno.env.get("KUBE_E2E") === "require";
}

async function readPin(module: string, path: string): Promise<string> {
  const goMod = await Deno.readTextFile(new URL(`${module}/go.mod`, here));
  const match = goMod.match(
    new RegExp(`^\\s*(?:require\\s+)?${path.replace(/\./g, "\\.")}\\s+(v\\S+)`, "m"),
  );
  if (!match) throw new Error(`testenv/${module}/go.mod does not require ${path}`);
  return match[1];
}

/** The Go modules under `testenv/`; the cache digest covers all their pins. */
const MODULES = ["apiserver", "etcd", "kwok"] as const;

/**
 * KWOK's stages that the test environment uses, by their path in KWOK's module: nodes become
 * Ready at once and renew their Lease; pods run at once, Job pods complete, deleted pods go away.
 */
const KWOK_STAGES = [
  "kustomize/stage/node/fast/node-initialize.yaml",
  "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
  "kustomize/stage/pod/fast/pod-ready.yaml",
  "kustomize/stage/pod/fast/pod-complete.yaml",
  "kustomize/stage/pod/fast/pod-delete.yaml",
];

async function pinsDigest(): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const module of MODULES) {
    for (const file of ["go.mod", "go.sum"]) {
      parts.push(await Deno.readFile(new URL(`${module}/${file}`, here)));
    }
  }
  parts.push(
    new TextEncoder().encode(
      Deno.build.os + Deno.build.arch + BUILD_RECIPE + KWOK_STAGES.join(),
    ),
  );
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(hash.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

function cacheRoot(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  const base = xdg || (home ? `${home}/.cache` : undefined);
  if (!base) {
    throw new Error("Neither XDG_CACHE_HOME nor HOME is set: cannot place the testenv cache");
  }
  return `${base}/denokube/testenv`;
}

/**
 * Where the binaries for the current pins live (whether or not they are built yet).
 *
 * @returns The expected paths and versions.
 */
export async function expectedBinaries(): Promise<ControlPlaneBinaries> {
  const kubernetesVersion = await readPin("apiserver", "k8s.io/kubernetes");
  const etcdVersion = await readPin("etcd", "go.etcd.io/etcd/server/v3");
  const kwokVersion = await readPin("kwok", "sigs.k8s.io/kwok");
  const dir =
    `${cacheRoot()}/k8s-${kubernetesVersion}_etcd-${etcdVersion}_kwok-${kwokVersion}_${await pinsDigest()}`;
  return {
    kubeApiServer: `${dir}/kube-apiserver`,
    kubeControllerManager: `${dir}/kube-controller-manager`,
    kubeScheduler: `${dir}/kube-scheduler`,
    kwok: `${dir}/kwok`,
    etcd: `${dir}/etcd`,
    kwokStagesDir: `${dir}/kwok-stages`,
    kubernetesVersion,
    etcdVersion,
    kwokVersion,
    dir,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The files a complete build has, in build order. */
function outputs(bins: ControlPlaneBinaries): string[] {
  return [
    bins.etcd,
    bins.kubeApiServer,
    bins.kubeControllerManager,
    bins.kubeScheduler,
    bins.kwok,
    ...KWOK_STAGES.map((stage) => `${bins.kwokStagesDir}/${stage.split("/").pop()}`),
  ];
}

/**
 * Returns the built binaries, or `undefined` when they have not (all) been built.
 *
 * @returns The binaries, if present.
 */
export async function findBinaries(): Promise<ControlPlaneBinaries | undefined> {
  const bins = await expectedBinaries();
  for (const file of outputs(bins)) if (!(await exists(file))) return undefined;
  return bins;
}

/** Tells whether a Go toolchain is on the PATH. */
export async function haveGo(): Promise<boolean> {
  try {
    const out = await new Deno.Command("go", { args: ["version"], stdout: "null", stderr: "null" })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

// Bump when the build flags change, so cached binaries are rebuilt.
const BUILD_RECIPE = "3";

async function goBuild(
  module: string,
  pkg: string,
  output: string,
  ldflags: string[] = [],
): Promise<void> {
  const started = Date.now();
  const label = output.split("/").pop()!.replace(/\.tmp-\d+$/, "");
  console.error(`testenv: building ${label} from ${pkg} (a cold build takes minutes)…`);
  const child = new Deno.Command("go", {
    args: ["build", `-ldflags=-s -w ${ldflags.join(" ")}`, "-o", output, pkg],
    cwd: new URL(module, here),
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const timer = setInterval(() => {
    console.error(
      `testenv: still building ${label}… ${Math.round((Date.now() - started) / 1000)} s`,
    );
  }, 30_000);
  try {
    const status = await child.status;
    if (!status.success) throw new Error(`go build of ${pkg} failed (exit ${status.code})`);
  } finally {
    clearInterval(timer);
  }
  console.error(`testenv: built ${label} in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** Copies KWOK's stage definitions from its module in the Go module cache. */
async function copyKwokStages(bins: ControlPlaneBinaries): Promise<void> {
  const out = await new Deno.Command("go", {
    args: ["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
    cwd: new URL("kwok", here),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const moduleDir = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !moduleDir) {
    throw new Error(
      `go list -m sigs.k8s.io/kwok (in testenv/kwok) failed: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  const staging = `${bins.kwokStagesDir}.tmp-${Deno.pid}`;
  await Deno.mkdir(staging, { recursive: true });
  for (const stage of KWOK_STAGES) {
    await Deno.copyFile(`${moduleDir}/${stage}`, `${staging}/${stage.split("/").pop()}`);
  }
  await Deno.remove(bins.kwokStagesDir, { recursive: true }).catch(() => {});
  await Deno.rename(staging, bins.kwokStagesDir);
}

/**
 * Builds the binaries unless they are already cached for the current pins. A partial build (one
 * interrupted) is completed: binaries already in place are kept.
 *
 * @returns The binaries.
 */
export async function ensureBinaries(): Promise<ControlPlaneBinaries> {
  const found = await findBinaries();
  if (found) return found;
  const bins = await expectedBinaries();
  if (!(await haveGo())) {
    throw new Error(
      "Go is not installed: it is needed to build kube-apiserver, etcd and kwok for the " +
        "real-cluster tests",
    );
  }
  await Deno.mkdir(bins.dir, { recursive: true });
  const suffix = `.tmp-${Deno.pid}`;
  const build = async (module: string, pkg: string, output: string, ldflags: string[] = []) => {
    if (await exists(output)) return;
    await goBuild(module, pkg, output + suffix, ldflags);
    await Deno.rename(output + suffix, output);
  };
  await build("etcd", "go.etcd.io/etcd/server/v3", bins.etcd);
  // Stamp the version that /version reports (a module build has no git metadata).
  const [major, minor] = bins.kubernetesVersion.slice(1).split(".");
  const stamp = (name: string, value: string) =>
    `-X k8s.io/component-base/version.${name}=${value}`;
  const k8sStamps = [
    stamp("gitVersion", bins.kubernetesVersion),
    stamp("gitMajor", major),
    stamp("gitMinor", minor),
    stamp("gitTreeState", "clean"),
  ];
  await build("apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", bins.kubeApiServer, k8sStamps);
  await build(
    "apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    bins.kubeControllerManager,
    k8sStamps,
  );
  await build("apiserver", "k8s.io/kubernetes/cmd/kube-scheduler", bins.kubeScheduler, k8sStamps);
  await build("kwok", "sigs.k8s.io/kwok/cmd/kwok", bins.kwok);
  await copyKwokStages(bins);
  return bins;
}

/** A cached Go tool of testenv: the module directory, the package and the binary name. */
export interface ToolSpec {
  /** The module's directory under `testenv/`. */
  module: string;
  /** The package to build, relative to the module. */
  pkg: string;
  /** The executable's name. */
  binary: string;
}

/**
 * Prometheus's `promtool check metrics` check, narrowly: client_golang's promlint run exactly as
 * promtool runs it (testenv/promlint/main.go). Builds in seconds.
 */
export const PROMLINT: ToolSpec = { module: "promlint", pkg: ".", binary: "promlint" };

/**
 * A minimal OpenTelemetry Collector (testenv/otelcol/main.go: the release pinned in its go.mod,
 * with the OTLP receiver and the debug exporter only): the real OTLP endpoint of the tracing e2e
 * test. A cold build takes minutes (a few hundred CPU-seconds); later ones come from the cache.
 */
export const OTELCOL: ToolSpec = { module: "otelcol", pkg: ".", binary: "otelcol" };

/** The files of a tool's module that decide its binary: go.mod, go.sum and its Go sources. */
async function toolInputs(tool: ToolSpec): Promise<string[]> {
  const sources: string[] = [];
  for await (const entry of Deno.readDir(new URL(tool.module, here))) {
    if (entry.isFile && entry.name.endsWith(".go")) sources.push(entry.name);
  }
  return ["go.mod", "go.sum", ...sources.sort()];
}

async function toolPath(tool: ToolSpec): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const file of await toolInputs(tool)) {
    parts.push(new TextEncoder().encode(file));
    parts.push(await Deno.readFile(new URL(`${tool.module}/${file}`, here)));
  }
  parts.push(new TextEncoder().encode(Deno.build.os + Deno.build.arch + tool.pkg + BUILD_RECIPE));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  const digest = Array.from(hash.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${cacheRoot()}/${tool.binary}_${digest}/${tool.binary}`;
}

/**
 * The path of a built tool, or `undefined` when it is not built for the current pins.
 *
 * @param tool Which tool.
 * @returns The executable's path, if built.
 */
export async function findTool(tool: ToolSpec): Promise<string | undefined> {
  const path = await toolPath(tool);
  return (await exists(path)) ? path : undefined;
}

/**
 * Builds a tool unless it is cached for the current pins of its module.
 *
 * @param tool Which tool.
 * @returns The executable's path.
 */
export async function ensureTool(tool: ToolSpec): Promise<string> {
  const found = await findTool(tool);
  if (found) return found;
  if (!(await haveGo())) {
    throw new Error(`Go is not installed: it is needed to build ${tool.binary}`);
  }
  const path = await toolPath(tool);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await goBuild(tool.module, tool.pkg, `${path}.tmp-${Deno.pid}`);
  await Deno.rename(`${path}.tmp-${Deno.pid}`, path);
  return path;
}

if (import.meta.main) {
  const started = Date.now();
  try {
    const cached = await findBinaries();
    const bins = cached ?? await ensureBinaries();
    console.error(
      `testenv: kube-apiserver, kube-controller-manager, kube-scheduler ${bins.kubernetesVersion}, ` +
        `etcd ${bins.etcdVersion} and kwok ${bins.kwokVersion} ${
          cached ? "cached" : `built in ${Math.round((Date.now() - started) / 1000)} s`
        } in ${bins.dir}`,
    );
    for (
      const [tool, what] of [
        [PROMLINT, "promlint (promtool check metrics)"],
        [OTELCOL, "otelcol (OpenTelemetry Collector: OTLP receiver, debug exporter)"],
      ] as const
    ) {
      const toolStarted = Date.now();
      try {
        const cachedTool = await findTool(tool);
        const path = cachedTool ?? await ensureTool(tool);
        console.error(
          `testenv: ${what} ${
            cachedTool ? "cached" : `built in ${Math.round((Date.now() - toolStarted) / 1000)} s`
          } at ${path}`,
        );
      } catch (e) {
        // The control plane is there: only the tests that use this tool are affected.
        if (e2eRequired()) throw e;
        console.error(
          `testenv: ${tool.binary} not built (the e2e tests that use it will try again): ${
            e instanceof Error ? e.message : String(e)
          }`,
        );
      }
    }
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (e2eRequired()) {
      console.error(`testenv: FAILED: ${reason}`);
      Deno.exit(1);
    }
    console.error(`testenv: real-cluster tests will be skipped: ${reason}`);
  }
}
