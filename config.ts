/**
 * Cluster configuration, found the way kubectl finds it: `$KUBECONFIG`, `~/.kube/config`, or the
 * in-cluster service account.
 *
 * ```ts
 * import { Config } from "@denokube/kube";
 *
 * const config = await Config.infer();
 * console.log(config.source, config.server, config.namespace);
 * ```
 *
 * Supported kubeconfig fields: `server`, `certificate-authority(-data)`, `client-certificate(-data)`,
 * `client-key(-data)`, `token`, `tokenFile` (re-read every minute and after a 401), `username` /
 * `password`, `exec` (`client.authentication.k8s.io/v1` and `v1beta1`), `as`, `as-uid`,
 * `as-groups`, `as-user-extra`, `proxy-url` (http, https, socks5), `disable-compression`,
 * `insecure-skip-tls-verify` (per client on Node and Bun; on Deno it needs
 * `--unsafely-ignore-certificate-errors=<host>`), `tls-server-name` (on Node and Bun; on Deno only
 * when it equals the server's host name, as Deno's `fetch` cannot verify against another name), the
 * context's `namespace`. The legacy `auth-provider` is refused with a migration hint,
 * except `oidc` with an `id-token`, which is sent as a bearer token without being refreshed.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { getLogger } from "@logtape/logtape";
import {
  type AuthPlan,
  isEmptyKubeconfig,
  type LoadedFile,
  loadKubeconfigFile,
  type MergedKubeconfig,
  mergeKubeconfigs,
  parseKubeconfig,
  resolveKubeconfig,
  splitKubeconfigPaths,
} from "./_client/kubeconfig.ts";
import { execCacheKey, ExecCredentialSource } from "./_client/exec_credential.ts";
import {
  envNeed,
  isNotFound,
  isPermissionError,
  permissionDenied,
  type PermissionNeed,
  readEnv,
  readTextFileWithPermission,
} from "./_client/permissions.ts";
import { runtime } from "./_platform/mod.ts";
import { redactUrl } from "./_client/redact.ts";
import type { ClusterConnection, Credentials, Impersonation } from "./_client/config_types.ts";

export type { ClusterConnection, Credentials, Impersonation } from "./_client/config_types.ts";

const log = getLogger(["kube", "config"]);

/** Which context, cluster, user and namespace of a kubeconfig to use. */
export interface KubeconfigSelection {
  /** The context to use instead of `current-context` (kubectl `--context`). */
  context?: string;
  /** The cluster to use instead of the context's (kubectl `--cluster`). */
  cluster?: string;
  /** The user to use instead of the context's (kubectl `--user`). */
  user?: string;
  /** The namespace to use instead of the context's (kubectl `--namespace`). */
  namespace?: string;
  /**
   * How long a token read from a `tokenFile` (or the in-cluster token) is used before the file is
   * read again, in milliseconds. Default: 60 000.
   */
  tokenFileRefreshInterval?: number;
}

/** Options of {@linkcode Config.fromKubeconfig}. */
export interface KubeconfigOptions extends KubeconfigSelection {
  /**
   * The kubeconfig file, or several files merged in order. Every file given here must exist.
   * Default: the files in `$KUBECONFIG` (missing ones skipped), else `~/.kube/config`.
   */
  path?: string | string[];
}

/** Options of {@linkcode Config.fromKubeconfigString}. */
export interface KubeconfigStringOptions extends KubeconfigSelection {
  /** The file the text came from: relative paths resolve against its directory; used in messages. */
  path?: string;
}

/** Options of {@linkcode Config.inCluster}. */
export interface InClusterOptions {
  /** The namespace instead of `$POD_NAMESPACE` / the service account's namespace. */
  namespace?: string;
  /**
   * The service account directory. Default: `/var/run/secrets/kubernetes.io/serviceaccount`.
   */
  serviceAccountDir?: string;
  /** How long the token is used before the file is read again, in ms. Default: 60 000. */
  tokenFileRefreshInterval?: number;
}

/** Options of {@linkcode Config.infer}. */
export interface InferOptions extends KubeconfigSelection {
  /** The service account directory for the in-cluster fallback. */
  serviceAccountDir?: string;
}

/** Options of {@linkcode Config.fromUrl}. */
export interface FromUrlOptions {
  /** The default namespace. Default: `default`. */
  namespace?: string;
  /** Static credentials. Default: none (e.g. for `kubectl proxy`). */
  credentials?: Credentials;
  /** Impersonation settings. */
  impersonate?: Impersonation;
  /** PEM bundle of CAs to trust. */
  certificateAuthority?: string;
  /** See {@linkcode ClusterConnection.insecureSkipTlsVerify}. */
  insecureSkipTlsVerify?: boolean;
  /** An http, https or socks5 proxy URL. */
  proxyUrl?: string;
  /** Ask the server not to compress responses. */
  disableCompression?: boolean;
}

/** The default service account directory of a pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The default interval between two reads of a token file, in milliseconds. */
export const TOKEN_FILE_REFRESH_INTERVAL = 60_000;

const IN_CLUSTER_ENV = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"];

interface CredentialProvider {
  get(signal?: AbortSignal): Promise<Credentials>;
  invalidate(used?: Credentials): boolean;
}

let attachProvider: (config: Config, provider: CredentialProvider) => void;

/**
 * A configuration for a Kubernetes client: where the cluster is and how to authenticate.
 *
 * Create one with {@linkcode Config.infer} (kubectl's lookup order), {@linkcode Config.fromKubeconfig},
 * {@linkcode Config.fromKubeconfigString}, {@linkcode Config.inCluster}, {@linkcode Config.fromUrl},
 * or the constructor for explicit settings.
 *
 * @example
 * ```ts
 * import { Config } from "@denokube/kube";
 *
 * const config = new Config({
 *   cluster: { server: "https://127.0.0.1:6443", insecureSkipTlsVerify: false, disableCompression: false },
 *   credentials: { token: "abc" },
 * });
 * const { token } = await config.credentials();
 * ```
 */
export class Config {
  /** The connection settings. */
  readonly cluster: ClusterConnection;
  /** The default namespace. */
  readonly namespace: string;
  /** Impersonation settings, if any. */
  readonly impersonate: Impersonation | undefined;
  /**
   * A human-readable description of where this config came from, e.g.
   * `kubeconfig /root/.kube/config (context "kind-kind")` or `in-cluster service account`.
   */
  readonly source: string;
  #provider: CredentialProvider;

  static {
    attachProvider = (config, provider) => {
      config.#provider = provider;
    };
  }

  /**
   * Creates a config from explicit settings.
   *
   * @param init The settings: `cluster` (required), `namespace` (default `default`),
   *   `impersonate`, `source` (default `explicit`) and static `credentials`.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = new Config({
   *   cluster: { server: "http://127.0.0.1:8001", insecureSkipTlsVerify: false, disableCompression: false },
   * });
   * ```
   */
  constructor(init: {
    cluster: ClusterConnection;
    namespace?: string;
    impersonate?: Impersonation;
    source?: string;
    credentials?: Credentials;
  }) {
    this.cluster = { ...init.cluster, server: checkServerUrl(init.cluster.server) };
    this.namespace = init.namespace || "default";
    this.impersonate = init.impersonate;
    this.source = init.source ?? "explicit";
    this.#provider = staticProvider(init.credentials ?? {});
  }

  /**
   * What `JSON.stringify` shows of the config: the server, namespace, source, impersonation and
   * connection settings, with the password of `proxyUrl` masked. Credentials are never part of
   * it (they live behind a private provider).
   *
   * @returns A plain object safe to log.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = Config.fromUrl("https://10.0.0.1:6443", { proxyUrl: "http://me:pw123456@proxy:3128" });
   * JSON.stringify(config); // … "proxyUrl":"http://me:[redacted]@proxy:3128/" …
   * ```
   */
  toJSON(): Record<string, unknown> {
    const cluster: Record<string, unknown> = { ...this.cluster };
    if (this.cluster.proxyUrl !== undefined) cluster.proxyUrl = redactUrl(this.cluster.proxyUrl);
    return {
      server: this.server,
      namespace: this.namespace,
      source: this.source,
      impersonate: this.impersonate,
      cluster,
    };
  }

  /**
   * What `Deno.inspect`, `console.log` and Node's `util.inspect` show: {@linkcode Config.toJSON}.
   *
   * @returns The redacted plain object.
   */
  [Symbol.for("nodejs.util.inspect.custom")](): Record<string, unknown> {
    return this.toJSON();
  }

  /**
   * The API server URL (without a trailing slash).
   *
   * @returns {@linkcode ClusterConnection.server}.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * Config.fromUrl("http://127.0.0.1:8001/").server; // "http://127.0.0.1:8001"
   * ```
   */
  get server(): string {
    return this.cluster.server;
  }

  /**
   * Returns the current credentials. Cheap while cached; re-reads token files at least every
   * `tokenFileRefreshInterval` (60 s) and runs exec plugins when their last result expired.
   *
   * @param options `signal` aborts waiting for an exec plugin (and kills it if this call started
   *   it).
   * @returns The credentials (an empty object for anonymous access).
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = Config.fromUrl("https://127.0.0.1:6443", { credentials: { token: "abc" } });
   * const { token } = await config.credentials();
   * ```
   */
  credentials(options: { signal?: AbortSignal } = {}): Promise<Credentials> {
    return this.#provider.get(options.signal);
  }

  /**
   * Forgets cached credentials after a 401, so that the next {@linkcode Config.credentials} call
   * re-reads token files and re-runs exec plugins.
   *
   * @param used The credentials the server refused. When given, cached credentials that already
   *   differ from them (another request refreshed them meanwhile) are kept.
   * @returns `true` when the credentials come from a token file or an exec plugin, so a retry may
   *   succeed; `false` for static credentials.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = Config.fromUrl("https://127.0.0.1:6443", { credentials: { token: "abc" } });
   * config.invalidateCredentials(); // false: static credentials
   * ```
   */
  invalidateCredentials(used?: Credentials): boolean {
    return this.#provider.invalidate(used);
  }

  /**
   * Finds the configuration the way kubectl does: the files in `$KUBECONFIG` (`:`-separated, `;`
   * on Windows, merged), or `~/.kube/config` when `$KUBECONFIG` is unset; if those do not exist
   * or define nothing, the in-cluster service account. A source that exists but is broken (bad
   * YAML, unknown context, …) stops the search with its own error, so a mistake never silently
   * sends requests to another cluster. When no source works, one error lists every source tried
   * and why it failed (the runtime's permission error if a permission was missing: Deno's
   * `NotCapable`, Node's `ERR_ACCESS_DENIED`).
   *
   * Needs `--allow-env=KUBECONFIG,HOME` (plus `KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT,
   * POD_NAMESPACE` for the in-cluster fallback) and `--allow-read` for the files.
   *
   * @param options Context/cluster/user/namespace overrides, token refresh interval and the
   *   service account directory.
   * @returns The configuration.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = await Config.infer();
   * console.log(`using ${config.source}`);
   * ```
   */
  static async infer(options: InferOptions = {}): Promise<Config> {
    const tried: string[] = [];
    const failures: unknown[] = [];
    let missingPermission = false;
    const flag = envNeed(...kubeconfigEnvVars(), ...IN_CLUSTER_ENV);
    const located = locateKubeconfig(flag);
    const selecting = !!(options.context || options.cluster || options.user);

    if (located.kind === "env") {
      const list = located.paths.join(runtime().os === "windows" ? ";" : ":");
      const loaded = await loadExisting(located.paths);
      if (loaded.length === 0) {
        tried.push(`$KUBECONFIG (${list}): none of these files exists`);
      } else {
        const merged = mergeKubeconfigs(loaded);
        if (!isEmptyKubeconfig(merged) || selecting) return await fromMerged(merged, options);
        tried.push(`$KUBECONFIG (${list}): the files define no contexts or clusters`);
      }
      tried.push("~/.kube/config: not consulted because $KUBECONFIG is set (as kubectl does)");
    } else {
      tried.push("$KUBECONFIG: not set");
      if (located.kind === "home") {
        let file: LoadedFile | undefined;
        let failed = false;
        try {
          file = await loadKubeconfigFile(located.path);
        } catch (e) {
          if (!isPermissionError(e)) throw e;
          missingPermission = true;
          failed = true;
          failures.push(e);
          tried.push(`${located.path}: ${(e as Error).message}`);
        }
        if (file) {
          const merged = mergeKubeconfigs([file]);
          if (!isEmptyKubeconfig(merged) || selecting) return await fromMerged(merged, options);
          tried.push(`${located.path}: defines no contexts or clusters`);
        } else if (!failed) {
          tried.push(`${located.path}: does not exist`);
        }
      } else {
        tried.push(`~/.kube/config: ${located.reason}`);
      }
    }

    if (selecting) {
      tried.push(
        "in-cluster service account: not tried because a context, cluster or user was requested",
      );
    } else {
      try {
        return await Config.inCluster({
          namespace: options.namespace,
          serviceAccountDir: options.serviceAccountDir,
          tokenFileRefreshInterval: options.tokenFileRefreshInterval,
        });
      } catch (e) {
        failures.push(e);
        if (isPermissionError(e)) missingPermission = true;
        tried.push(`in-cluster service account: ${e instanceof Error ? e.message : String(e)}`);
      }
    }

    const message = `No Kubernetes configuration found. Tried, in order:\n` +
      tried.map((t) => `  - ${t}`).join("\n") +
      `\nCreate a kubeconfig (e.g. \`kind create cluster\`), set KUBECONFIG to one, ` +
      `or run inside a pod with a service account.`;
    const cause = new AggregateError(failures, "sources that failed");
    if (missingPermission) throw permissionDenied(message, cause);
    throw new Error(message, { cause });
  }

  /**
   * Loads a kubeconfig file (or `$KUBECONFIG`'s files merged by kubectl's rules, or
   * `~/.kube/config`) and resolves its current context, or the one requested.
   *
   * Relative paths in the file (certificate-authority, client-certificate, client-key, tokenFile,
   * and an exec command containing a path separator) resolve against the directory of the file
   * that names them. Certificate files are read now; token files and exec plugins when
   * credentials are needed.
   *
   * @param options `path` (one file or several), `context`, `cluster`, `user`, `namespace`
   *   overrides and `tokenFileRefreshInterval`.
   * @returns The configuration.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = await Config.fromKubeconfig({ context: "kind-kind" });
   * ```
   */
  static async fromKubeconfig(options: KubeconfigOptions = {}): Promise<Config> {
    let loaded: LoadedFile[];
    if (options.path !== undefined) {
      const paths = typeof options.path === "string" ? [options.path] : options.path;
      if (paths.length === 0) throw new TypeError("Config.fromKubeconfig: options.path is empty.");
      loaded = [];
      for (const path of paths) {
        const file = await loadKubeconfigFile(path);
        if (!file) {
          throw new Error(
            `The kubeconfig file ${path} does not exist. Check the path passed to ` +
              `Config.fromKubeconfig({ path }).`,
            { cause: runtime().notFoundError(path) },
          );
        }
        loaded.push(file);
      }
    } else {
      const located = locateKubeconfig(envNeed(...kubeconfigEnvVars()));
      if (located.kind === "env") {
        loaded = await loadExisting(located.paths);
        if (loaded.length === 0) {
          throw new Error(
            `None of the kubeconfig files in $KUBECONFIG exists: ${located.paths.join(", ")}. ` +
              `Fix KUBECONFIG or pass { path }.`,
          );
        }
      } else if (located.kind === "home") {
        const file = await loadKubeconfigFile(located.path);
        if (!file) {
          throw new Error(
            `No kubeconfig found: $KUBECONFIG is not set and ${located.path} does not exist. ` +
              `Create it (e.g. \`kind create cluster\`), set KUBECONFIG, or pass { path }.`,
          );
        }
        loaded = [file];
      } else {
        throw new Error(
          `No kubeconfig found: $KUBECONFIG is not set and ${located.reason}. ` +
            `Set KUBECONFIG or pass { path }.`,
        );
      }
    }
    const merged = mergeKubeconfigs(loaded);
    return await fromMerged(merged, options);
  }

  /**
   * Creates a config from kubeconfig text (YAML or JSON).
   *
   * @param text The kubeconfig content.
   * @param options `path`: the file the text came from (relative paths resolve against its
   *   directory, and messages name it); `context`, `cluster`, `user`, `namespace` overrides and
   *   `tokenFileRefreshInterval`.
   * @returns The configuration.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = await Config.fromKubeconfigString(`
   * apiVersion: v1
   * kind: Config
   * current-context: dev
   * clusters: [{ name: dev, cluster: { server: "https://127.0.0.1:6443" } }]
   * contexts: [{ name: dev, context: { cluster: dev, namespace: apps } }]
   * `);
   * config.namespace; // "apps"
   * ```
   */
  static async fromKubeconfigString(
    text: string,
    options: KubeconfigStringOptions = {},
  ): Promise<Config> {
    const label = options.path ?? "<string>";
    const file: LoadedFile = {
      label,
      dir: options.path === undefined ? undefined : dirname(options.path),
      config: parseKubeconfig(text, label),
    };
    return await fromMerged(mergeKubeconfigs([file]), options);
  }

  /**
   * Creates a config from a pod's service account: `https://$KUBERNETES_SERVICE_HOST:
   * $KUBERNETES_SERVICE_PORT` (IPv6 hosts bracketed), `ca.crt`, and the `token` file (re-read at
   * least every 60 s and after {@linkcode Config.invalidateCredentials}). The namespace comes from
   * `options.namespace`, `$POD_NAMESPACE`, the service account's `namespace` file, else `default`.
   *
   * Needs `--allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT,POD_NAMESPACE` and
   * `--allow-read=/var/run/secrets/kubernetes.io/serviceaccount`.
   *
   * @param options `namespace`, `serviceAccountDir` (for tests), `tokenFileRefreshInterval`.
   * @returns The configuration.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = await Config.inCluster();
   * ```
   */
  static async inCluster(options: InClusterOptions = {}): Promise<Config> {
    const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    const flag = envNeed(...IN_CLUSTER_ENV);
    const host = readEnv("KUBERNETES_SERVICE_HOST", flag);
    const port = readEnv("KUBERNETES_SERVICE_PORT", flag);
    if (!host || !port) {
      const unset = [
        host ? undefined : "KUBERNETES_SERVICE_HOST",
        port ? undefined : "KUBERNETES_SERVICE_PORT",
      ].filter(Boolean).join(" and ");
      throw new Error(
        `Not running inside a Kubernetes pod: ${unset} ${
          unset.includes(" and ") ? "are" : "is"
        } not set. Config.inCluster() works only in a pod; elsewhere use Config.fromKubeconfig().`,
      );
    }
    if (!/^\d{1,5}$/.test(port)) {
      throw new TypeError(
        `KUBERNETES_SERVICE_PORT must be a port number, got ${JSON.stringify(port)}.`,
      );
    }
    const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
    const server = checkServerUrl(`https://${bracketed}:${port}`);

    const tokenPath = join(dir, "token");
    const tokenFile = new TokenFile(
      tokenPath,
      `the in-cluster service account token ${tokenPath}`,
      undefined,
      options.tokenFileRefreshInterval ?? TOKEN_FILE_REFRESH_INTERVAL,
      dir,
      "Is automountServiceAccountToken disabled for the pod? Mount a token, or use a kubeconfig.",
    );
    await tokenFile.get();

    let certificateAuthority: string | undefined;
    const caPath = join(dir, "ca.crt");
    try {
      certificateAuthority = await readTextFileWithPermission(
        caPath,
        "the service account CA",
        dir,
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
      log.warn("In-cluster CA file {path} does not exist; trusting only the system roots", {
        path: caPath,
      });
    }

    let namespace = options.namespace || readEnv("POD_NAMESPACE", flag);
    if (!namespace) {
      try {
        namespace = (await readTextFileWithPermission(
          join(dir, "namespace"),
          "the service account namespace",
          dir,
        )).trim();
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    const cluster: ClusterConnection = {
      server,
      insecureSkipTlsVerify: false,
      disableCompression: false,
    };
    if (certificateAuthority !== undefined) cluster.certificateAuthority = certificateAuthority;
    const config = new Config({
      cluster,
      namespace: namespace || "default",
      source: "in-cluster service account",
    });
    attachProvider(config, {
      async get() {
        return Object.freeze({ token: await tokenFile.get() });
      },
      invalidate(used) {
        tokenFile.invalidate(used?.token);
        return true;
      },
    });
    log.debug("Using the in-cluster service account: server {server}, namespace {namespace}", {
      server,
      namespace: config.namespace,
    });
    return config;
  }

  /**
   * Creates a config for a server URL with optional static credentials, e.g. `kubectl proxy` at
   * `http://127.0.0.1:8001` (no authentication).
   *
   * @param server The API server URL (`http://` or `https://`).
   * @param options Namespace, credentials, impersonation, CA, proxy and compression settings.
   * @returns The configuration.
   * @example
   * ```ts
   * import { Config } from "@denokube/kube";
   * const config = Config.fromUrl("http://127.0.0.1:8001");
   * ```
   */
  static fromUrl(server: string, options: FromUrlOptions = {}): Config {
    const cluster: ClusterConnection = {
      server,
      insecureSkipTlsVerify: options.insecureSkipTlsVerify ?? false,
      disableCompression: options.disableCompression ?? false,
    };
    if (options.certificateAuthority !== undefined) {
      cluster.certificateAuthority = options.certificateAuthority;
    }
    if (options.proxyUrl !== undefined) {
      const scheme = safeProtocol(options.proxyUrl);
      if (!["http:", "https:", "socks5:"].includes(scheme)) {
        throw new TypeError(
          `Config.fromUrl: options.proxyUrl must be an http://, https:// or socks5:// URL ` +
            `(got scheme ${JSON.stringify(scheme)}).`,
        );
      }
      cluster.proxyUrl = options.proxyUrl;
    }
    return new Config({
      cluster,
      namespace: options.namespace,
      impersonate: options.impersonate,
      credentials: options.credentials,
      source: `url ${checkServerUrl(server)}`,
    });
  }
}

function safeProtocol(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    return "(invalid URL)";
  }
}

function checkServerUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch (cause) {
    // Not quoted: a malformed URL may still hold credentials.
    throw new TypeError(
      `Invalid API server URL (cluster.server is not a URL): use e.g. https://127.0.0.1:6443.`,
      { cause },
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(
      `Invalid API server URL: the scheme ${JSON.stringify(url.protocol)} is not supported; ` +
        `use https:// or http://.`,
    );
  }
  if (url.username || url.password) {
    throw new TypeError(
      `Invalid API server URL: credentials in the URL are not supported; pass them as ` +
        `credentials (token, basic or clientCertificate) instead.`,
    );
  }
  return server.replace(/\/+$/, "");
}

function staticProvider(credentials: Credentials): CredentialProvider {
  const frozen = Object.freeze({ ...credentials });
  return {
    get: () => Promise.resolve(frozen),
    invalidate: () => false,
  };
}

function kubeconfigEnvVars(): string[] {
  return runtime().os === "windows"
    ? ["KUBECONFIG", "HOME", "USERPROFILE"]
    : ["KUBECONFIG", "HOME"];
}

type Located =
  | { kind: "env"; paths: string[] }
  | { kind: "home"; path: string }
  | { kind: "none"; reason: string };

function locateKubeconfig(flag: PermissionNeed): Located {
  const env = readEnv("KUBECONFIG", flag);
  if (env !== undefined && env.trim() !== "") {
    const paths = splitKubeconfigPaths(env);
    if (paths.length > 0) return { kind: "env", paths };
  }
  let home = readEnv("HOME", flag);
  if (!home && runtime().os === "windows") home = readEnv("USERPROFILE", flag);
  if (!home) return { kind: "none", reason: "HOME is not set, so ~/.kube/config is unknown" };
  return { kind: "home", path: join(home, ".kube", "config") };
}

async function loadExisting(paths: readonly string[]): Promise<LoadedFile[]> {
  const loaded: LoadedFile[] = [];
  for (const path of paths) {
    const file = await loadKubeconfigFile(path);
    if (file) loaded.push(file);
    else log.debug("Skipping missing kubeconfig {path} listed in KUBECONFIG", { path });
  }
  return loaded;
}

async function fromMerged(merged: MergedKubeconfig, options: KubeconfigSelection): Promise<Config> {
  const resolved = await resolveKubeconfig(merged, options);
  const config = new Config({
    cluster: resolved.cluster,
    namespace: resolved.namespace,
    impersonate: resolved.impersonate,
    source: resolved.source,
  });
  attachProvider(
    config,
    await kubeconfigProvider(
      resolved.auth,
      options.tokenFileRefreshInterval ?? TOKEN_FILE_REFRESH_INTERVAL,
    ),
  );
  return config;
}

async function kubeconfigProvider(
  auth: AuthPlan,
  interval: number,
): Promise<CredentialProvider> {
  const base = auth.static;
  if (!auth.tokenFile && !auth.exec) return staticProvider(base);
  const tokenFile = auth.tokenFile
    ? new TokenFile(
      auth.tokenFile.path,
      `the token file ${auth.tokenFile.path} named by ${auth.tokenFile.where}`,
      base.token,
      interval,
    )
    : undefined;
  // Read the token file now, so a missing file is reported when the config is loaded.
  if (tokenFile) await tokenFile.get();
  const exec = auth.exec
    ? new ExecCredentialSource(auth.exec, await execCacheKey(auth.exec))
    : undefined;
  return {
    async get(signal) {
      const creds: Credentials = { ...base };
      if (tokenFile) {
        const token = await tokenFile.get();
        if (token !== undefined) creds.token = token;
      }
      if (exec) {
        const { credentials } = await exec.get(signal);
        if (credentials.token) creds.token = credentials.token;
        if (credentials.clientCertificate) creds.clientCertificate = credentials.clientCertificate;
      }
      return Object.freeze(creds);
    },
    invalidate(used) {
      tokenFile?.invalidate(used?.token);
      exec?.invalidate(used);
      return true;
    },
  };
}

/**
 * A bearer token read from a file, re-read when older than the refresh interval or after
 * {@linkcode TokenFile.invalidate}. When a re-read fails, the last token (or the kubeconfig's
 * static `token`) stays in use, as client-go does.
 */
class TokenFile {
  #path: string;
  #describe: string;
  #fallback: string | undefined;
  #interval: number;
  #flagPath: string;
  #hint: string;
  #token: string | undefined;
  #readAt = Number.NEGATIVE_INFINITY;

  constructor(
    path: string,
    describe: string,
    fallback: string | undefined,
    interval: number,
    flagPath: string = path,
    hint = "Fix the path (relative paths resolve against the kubeconfig's directory).",
  ) {
    if (!(interval >= 0)) {
      throw new RangeError(
        `tokenFileRefreshInterval must be a number of milliseconds >= 0, got ${interval}.`,
      );
    }
    this.#path = path;
    this.#describe = describe;
    this.#fallback = fallback;
    this.#interval = interval;
    this.#flagPath = flagPath;
    this.#hint = hint;
  }

  async get(): Promise<string | undefined> {
    const now = Date.now();
    if (this.#token !== undefined && now - this.#readAt < this.#interval) return this.#token;
    let token: string | undefined;
    let failure: unknown;
    try {
      token = (await readTextFileWithPermission(this.#path, "the token file", this.#flagPath))
        .trim();
    } catch (e) {
      if (isPermissionError(e)) throw e;
      failure = e;
    }
    if (token === undefined || token === "") {
      const previous = this.#token ?? this.#fallback;
      const reason = token === ""
        ? "is empty"
        : isNotFound(failure)
        ? "does not exist"
        : "cannot be read";
      if (previous !== undefined) {
        log.warn("Token file {path} {reason}; keeping the previous token", {
          path: this.#path,
          reason,
        });
        this.#readAt = now;
        return previous;
      }
      throw new Error(`${capitalize(this.#describe)} ${reason}. ${this.#hint}`, {
        cause: failure,
      });
    }
    if (token !== this.#token && this.#token !== undefined) {
      log.debug("Token file {path} changed; using the new token", { path: this.#path });
    }
    this.#token = token;
    this.#readAt = now;
    return token;
  }

  /** Forces a re-read, unless the file already gave a token other than the refused one. */
  invalidate(refused?: string): void {
    if (refused !== undefined && this.#token !== undefined && this.#token !== refused) return;
    this.#readAt = Number.NEGATIVE_INFINITY;
  }
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}
