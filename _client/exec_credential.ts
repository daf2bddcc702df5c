/**
 * Runs client-go style exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`),
 * validates their `ExecCredential` output, and caches the result by the *content* of the exec and
 * cluster configuration until `expirationTimestamp`.
 *
 * Internal module used by `config.ts`.
 *
 * @module
 */

import { z } from "zod";
import { getLogger } from "@logtape/logtape";
import type { Credentials } from "./config_types.ts";
import { isNotFound, permissionError, runNeed } from "./permissions.ts";
import { type ProcessOutput, runtime } from "../_platform/mod.ts";

const log = getLogger(["kube", "config"]);

/** The `client.authentication.k8s.io/v1` API version. */
export const EXEC_API_V1 = "client.authentication.k8s.io/v1";
/** The `client.authentication.k8s.io/v1beta1` API version. */
export const EXEC_API_V1BETA1 = "client.authentication.k8s.io/v1beta1";
/** The cluster extension whose value is passed to plugins as `spec.cluster.config`. */
export const EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec";

/** The most a plugin may write to stdout (an ExecCredential is a few KiB); more kills it. */
export const MAX_PLUGIN_STDOUT_BYTES = 1024 * 1024;

/** Time subtracted from `expirationTimestamp` (at most half the lifetime) before re-running. */
export const EXPIRY_SKEW_MS = 10_000;

/** The `spec.cluster` of `KUBERNETES_EXEC_INFO` (when `provideClusterInfo` is true). */
export interface ExecClusterInfo {
  /** The API server URL. */
  server: string;
  /** `tls-server-name` from the kubeconfig. */
  "tls-server-name"?: string;
  /** `insecure-skip-tls-verify` from the kubeconfig. */
  "insecure-skip-tls-verify"?: boolean;
  /** The CA bundle (PEM), base64-encoded. */
  "certificate-authority-data"?: string;
  /** `proxy-url` from the kubeconfig. */
  "proxy-url"?: string;
  /** `disable-compression` from the kubeconfig. */
  "disable-compression"?: boolean;
  /** The value of the cluster extension `client.authentication.k8s.io/exec`. */
  config?: unknown;
}

/** A validated exec plugin configuration, ready to run. */
export interface ExecPlan {
  /** The command (relative paths with a separator already resolved against the kubeconfig). */
  command: string;
  /** Arguments. */
  args: string[];
  /** Extra environment variables. */
  env: { name: string; value: string }[];
  /** The ExecCredential API version. */
  apiVersion: typeof EXEC_API_V1 | typeof EXEC_API_V1BETA1;
  /** The interactive mode (`Always` is rejected at load time). */
  interactiveMode: "Never" | "IfAvailable";
  /** Whether `spec.cluster` is passed. */
  provideClusterInfo: boolean;
  /** Text shown when the command is missing. */
  installHint?: string;
  /** Cluster info for `KUBERNETES_EXEC_INFO`, when `provideClusterInfo`. */
  cluster?: ExecClusterInfo;
  /** The server URL (part of the cache key). */
  server: string;
  /** The CA (part of the cache key). */
  certificateAuthority?: string;
  /** Where the exec block is, for messages, e.g. `users[0].user.exec (user "dev") in /x`. */
  where: string;
}

/** Credentials returned by a plugin run. */
export interface ExecResult {
  /** The credentials (token and/or client certificate). */
  credentials: Credentials;
  /** `expirationTimestamp` in milliseconds since the epoch, if the plugin set one. */
  expiresAt?: number;
}

/**
 * Builds the `KUBERNETES_EXEC_INFO` value passed to the plugin.
 *
 * @param plan The exec plan.
 * @returns The JSON `ExecCredential` with `spec.interactive: false` and, when
 *   `provideClusterInfo` is set, `spec.cluster`.
 */
export function execInfo(plan: ExecPlan): string {
  const spec: Record<string, unknown> = { interactive: false };
  if (plan.provideClusterInfo && plan.cluster) spec.cluster = plan.cluster;
  return JSON.stringify({ apiVersion: plan.apiVersion, kind: "ExecCredential", spec });
}

/**
 * Computes the cache key of an exec plan: a SHA-256 over the JSON of everything that can change
 * the plugin's answer (command, args, env, API version, cluster server/CA/info), so two users with
 * the same name but different settings never share cached credentials.
 *
 * @param plan The exec plan.
 * @returns A hex digest.
 */
export async function execCacheKey(plan: ExecPlan): Promise<string> {
  const material = JSON.stringify([
    plan.command,
    plan.args,
    plan.env,
    plan.apiVersion,
    plan.interactiveMode,
    plan.provideClusterInfo,
    plan.cluster ?? null,
    plan.server,
    plan.certificateAuthority ?? null,
  ]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function isRfc3339(s: string): boolean {
  return RFC3339.test(s) && !Number.isNaN(Date.parse(s));
}

const nonEmpty = (s: string | null | undefined): s is string => typeof s === "string" && s !== "";

/** The zod schema of the plugin's `ExecCredential` output. */
export const ExecCredentialSchema: z.ZodType<ExecCredentialOutput> = z.object({
  apiVersion: z.string(),
  kind: z.literal("ExecCredential"),
  status: z.object({
    token: z.string().nullish(),
    clientCertificateData: z.string().nullish(),
    clientKeyData: z.string().nullish(),
    expirationTimestamp: z.string().refine(isRfc3339, {
      message: "expected an RFC 3339 timestamp such as 2030-01-02T15:04:05Z",
    }).nullish(),
  }).nullish(),
}).superRefine((v, ctx) => {
  const s = v.status;
  if (!s) {
    ctx.addIssue({
      code: "custom",
      path: ["status"],
      message: "is missing: the plugin must return status.token or a client certificate",
    });
    return;
  }
  const cert = nonEmpty(s.clientCertificateData);
  const key = nonEmpty(s.clientKeyData);
  if (cert && !key) {
    ctx.addIssue({
      code: "custom",
      path: ["status", "clientKeyData"],
      message: "is missing while clientCertificateData is set",
    });
  }
  if (key && !cert) {
    ctx.addIssue({
      code: "custom",
      path: ["status", "clientCertificateData"],
      message: "is missing while clientKeyData is set",
    });
  }
  if (!nonEmpty(s.token) && !cert && !key) {
    ctx.addIssue({
      code: "custom",
      path: ["status"],
      message: "has neither token nor clientCertificateData/clientKeyData",
    });
  }
});

/** The plugin's output. */
export interface ExecCredentialOutput {
  /** Must equal the configured API version. */
  apiVersion: string;
  /** `ExecCredential`. */
  kind: "ExecCredential";
  /** The credentials. */
  status?: {
    token?: string | null;
    clientCertificateData?: string | null;
    clientKeyData?: string | null;
    expirationTimestamp?: string | null;
  } | null;
}

/**
 * Runs the plugin once and validates its output.
 *
 * @param plan The exec plan.
 * @param options `signal` to kill the plugin.
 * @returns The credentials and expiry.
 */
export async function runExecPlugin(
  plan: ExecPlan,
  options: { signal?: AbortSignal } = {},
): Promise<ExecResult> {
  const { signal } = options;
  signal?.throwIfAborted();
  const env: Record<string, string> = {};
  for (const e of plan.env) env[e.name] = e.value;
  env.KUBERNETES_EXEC_INFO = execInfo(plan);
  const cmd = JSON.stringify(plan.command);
  log.debug("Running exec credential plugin {command} for {where}", {
    command: plan.command,
    where: plan.where,
  });
  let output: ProcessOutput;
  try {
    // The plugin's stderr goes to this process's stderr, as client-go does: it is for the person
    // at the terminal (a login prompt's text, a reason), and a failing plugin may print a token,
    // an OAuth answer or an Authorization header there. No error, log or endpoint quotes it.
    output = await runtime().run(plan.command, {
      args: plan.args,
      env,
      signal,
      stderr: "inherit",
      maxStdoutBytes: MAX_PLUGIN_STDOUT_BYTES,
    });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (isNotFound(e)) {
      const hint = plan.installHint
        ? ` The kubeconfig's installHint says: ${JSON.stringify(plan.installHint.trim())}`
        : " Install the plugin, or fix exec.command (put it on PATH or use an absolute path).";
      throw new Error(
        `The exec credential plugin ${cmd} configured in ${plan.where} was not found.${hint}`,
        { cause: e },
      );
    }
    const converted = permissionError(
      e,
      runNeed(plan.command),
      `running the exec credential plugin ${cmd} (${plan.where})`,
    );
    if (converted !== e) throw converted;
    throw new Error(
      `Cannot run the exec credential plugin ${cmd} configured in ${plan.where}: ` +
        `${errorKind(e)}. Check that exec.command is an executable file.`,
      { cause: e },
    );
  }
  if (signal?.aborted) throw signal.reason;
  if (output.stdoutOverflow) {
    throw new Error(
      `The exec credential plugin ${cmd} configured in ${plan.where} wrote more than ` +
        `${MAX_PLUGIN_STDOUT_BYTES} bytes to stdout and was stopped; an ExecCredential is a few ` +
        "KiB (a certificate chain and a key at most).",
    );
  }
  if (!output.success) {
    const how = output.signal
      ? `was killed by ${output.signal}`
      : `exited with code ${output.code}`;
    throw new Error(
      `The exec credential plugin ${cmd} configured in ${plan.where} ${how}. Its stderr went to ` +
        "this process's stderr (never into errors or logs: it may hold credentials).",
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(output.stdout));
  } catch {
    // The output may hold a token: never quote it, and no `cause` either (V8's SyntaxError
    // message quotes the text around the failure).
    throw new Error(
      `The exec credential plugin ${cmd} configured in ${plan.where} wrote ${output.stdout.length} ` +
        `bytes to stdout that are not JSON; it must print an ExecCredential object.`,
    );
  }
  const parsed = ExecCredentialSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((i) => {
      const path = i.path.map(String).join(".") || "(top level)";
      const text = i.code === "custom"
        ? i.message
        : i.code === "invalid_type"
        ? `expected ${i.expected}`
        : i.code === "invalid_value"
        ? `expected ${i.values.map((v) => JSON.stringify(v)).join(" or ")}`
        : "is invalid";
      return `${path}: ${text}`;
    });
    throw new Error(
      `The exec credential plugin ${cmd} configured in ${plan.where} returned an invalid ` +
        `ExecCredential: ${problems.join("; ")}.`,
    );
  }
  const cred = parsed.data;
  if (cred.apiVersion !== plan.apiVersion) {
    throw new Error(
      `The exec credential plugin ${cmd} configured in ${plan.where} returned apiVersion ` +
        `${JSON.stringify(cred.apiVersion)}, but the kubeconfig asks for ` +
        `${JSON.stringify(plan.apiVersion)}. Set exec.apiVersion to what the plugin supports.`,
    );
  }
  const status = cred.status!;
  const credentials: Credentials = {};
  if (nonEmpty(status.token)) credentials.token = status.token;
  if (nonEmpty(status.clientCertificateData) && nonEmpty(status.clientKeyData)) {
    credentials.clientCertificate = {
      cert: status.clientCertificateData,
      key: status.clientKeyData,
    };
  }
  const result: ExecResult = { credentials };
  if (nonEmpty(status.expirationTimestamp)) {
    result.expiresAt = Date.parse(status.expirationTimestamp);
  }
  log.debug("Exec credential plugin {command} returned {kind}, expiring at {expiresAt}", {
    command: plan.command,
    kind: credentials.token ? "a token" : "a client certificate",
    expiresAt: status.expirationTimestamp ?? "never",
  });
  return result;
}

/** `EACCES`, `PermissionDenied`, …: the error's code (Node) or name (Deno), never its message. */
function errorKind(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return e instanceof Error ? e.name : "error";
}

interface CacheEntry {
  result?: ExecResult;
  validUntil?: number;
  inflight?: Promise<ExecResult>;
  /** Kills the in-flight run; used when every caller waiting for it has given up. */
  cancel?: AbortController;
  /** Callers waiting for the in-flight run. */
  waiters: number;
}

const cache = new Map<string, CacheEntry>();

function validUntil(result: ExecResult, obtainedAt: number): number | undefined {
  if (result.expiresAt === undefined) return undefined;
  const lifetime = result.expiresAt - obtainedAt;
  const skew = Math.min(EXPIRY_SKEW_MS, Math.max(0, lifetime / 2));
  return result.expiresAt - skew;
}

function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Exec credentials for one plan, shared through a module-level cache keyed by the plan's content.
 * Concurrent callers share one plugin run.
 */
export class ExecCredentialSource {
  /** The plan. */
  readonly plan: ExecPlan;
  /** The cache key (see {@linkcode execCacheKey}). */
  readonly key: string;

  /**
   * Creates a source.
   *
   * @param plan The plan.
   * @param key Its cache key.
   */
  constructor(plan: ExecPlan, key: string) {
    this.plan = plan;
    this.key = key;
  }

  /**
   * Returns cached credentials while valid, otherwise runs the plugin.
   *
   * @param signal Aborts waiting (and kills the plugin if this call started it).
   * @returns The result.
   */
  async get(signal?: AbortSignal): Promise<ExecResult> {
    for (;;) {
      let entry = cache.get(this.key);
      if (entry?.result && (entry.validUntil === undefined || Date.now() < entry.validUntil)) {
        return entry.result;
      }
      if (entry?.inflight) {
        const cancelled = entry.cancel!.signal;
        try {
          return await this.#wait(entry, entry.inflight, signal);
        } catch (e) {
          // Joined a run that its last other waiter gave up on: start a fresh one.
          if (!signal?.aborted && cancelled.aborted) continue;
          throw e;
        }
      }
      if (!entry) {
        entry = { waiters: 0 };
        cache.set(this.key, entry);
      }
      const current = entry;
      const started = Date.now();
      // The run is shared by every caller with this configuration: no single caller's signal
      // may kill it. It is killed only when every caller waiting for it has given up.
      const cancel = new AbortController();
      current.cancel = cancel;
      const run = runExecPlugin(this.plan, { signal: cancel.signal })
        .then(
          (result) => {
            current.result = result;
            current.validUntil = validUntil(result, started);
            current.inflight = undefined;
            return result;
          },
          (e) => {
            current.inflight = undefined;
            throw e;
          },
        );
      run.catch(() => {});
      current.inflight = run;
      return await this.#wait(current, run, signal);
    }
  }

  async #wait(
    entry: CacheEntry,
    run: Promise<ExecResult>,
    signal: AbortSignal | undefined,
  ): Promise<ExecResult> {
    entry.waiters++;
    try {
      return await waitFor(run, signal);
    } finally {
      entry.waiters--;
      if (signal?.aborted && entry.waiters === 0 && entry.inflight === run) {
        entry.cancel?.abort(signal.reason);
      }
    }
  }

  /**
   * Forgets the cached credentials (after a 401), unless a run is already in progress (its
   * result is fresh anyway), or the cached credentials are no longer the ones that were refused
   * (another request already got new ones).
   *
   * @param used The credentials the server refused, if known.
   */
  invalidate(used?: { token?: string; clientCertificate?: { cert: string } }): void {
    const entry = cache.get(this.key);
    const cached = entry?.result?.credentials;
    if (
      used && cached &&
      (cached.token !== used.token ||
        cached.clientCertificate?.cert !== used.clientCertificate?.cert)
    ) {
      return;
    }
    if (entry && !entry.inflight) {
      entry.result = undefined;
      entry.validUntil = undefined;
    }
  }
}

/**
 * Clears the module-level exec credential cache (for tests).
 */
export function clearExecCache(): void {
  cache.clear();
}
