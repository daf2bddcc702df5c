/**
 * Kubeconfig parsing (YAML + zod), merging by kubectl's rules, and resolution of the selected
 * context into connection settings and a credential plan.
 *
 * Internal module used by `config.ts`. Error messages name the file, the field path (e.g.
 * `users[2].user.exec.apiVersion`) and the entry name, and never contain a field's value for
 * fields that can hold secrets.
 *
 * @module
 */

import process from "node:process";
import { dirname, isAbsolute, join } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { getLogger } from "@logtape/logtape";
import type { ClusterConnection, Credentials, Impersonation } from "./config_types.ts";
import {
  canPrompt,
  envNeed,
  flagFor,
  isGranted,
  isNotFound,
  isPermissionError,
  permissionDenied,
  permissionState,
  readNeed,
  readTextFileWithPermission,
} from "./permissions.ts";
import { runtime } from "../_platform/mod.ts";
import {
  EXEC_API_V1,
  EXEC_API_V1BETA1,
  EXEC_CLUSTER_EXTENSION,
  type ExecClusterInfo,
  type ExecPlan,
} from "./exec_credential.ts";

const log = getLogger(["kube", "config"]);

// ---------------------------------------------------------------------------------------------
// Schemas (structure and types; checked for every entry of every file, like kubectl's decoder)
// ---------------------------------------------------------------------------------------------

const optString = z.string().nullish();
const optBool = z.boolean().nullish();

const NamedExtensionSchema = z.object({
  name: z.string(),
  extension: z.unknown(),
});

const ClusterSchema = z.object({
  server: optString,
  "tls-server-name": optString,
  "insecure-skip-tls-verify": optBool,
  "certificate-authority": optString,
  "certificate-authority-data": optString,
  "proxy-url": optString,
  "disable-compression": optBool,
  extensions: z.array(NamedExtensionSchema).nullish(),
});

const ExecEnvVarSchema = z.object({ name: z.string(), value: z.string() });

const ExecConfigSchema = z.object({
  command: optString,
  args: z.array(z.string()).nullish(),
  env: z.array(ExecEnvVarSchema).nullish(),
  apiVersion: optString,
  installHint: optString,
  provideClusterInfo: optBool,
  interactiveMode: optString,
});

const AuthProviderSchema = z.object({
  name: z.string(),
  config: z.record(z.string(), z.string()).nullish(),
});

const AuthInfoSchema = z.object({
  "client-certificate": optString,
  "client-certificate-data": optString,
  "client-key": optString,
  "client-key-data": optString,
  token: optString,
  tokenFile: optString,
  as: optString,
  "as-uid": optString,
  "as-groups": z.array(z.string()).nullish(),
  "as-user-extra": z.record(z.string(), z.array(z.string())).nullish(),
  username: optString,
  password: optString,
  "auth-provider": AuthProviderSchema.nullish(),
  exec: ExecConfigSchema.nullish(),
  extensions: z.array(NamedExtensionSchema).nullish(),
});

const ContextSchema = z.object({
  cluster: optString,
  user: optString,
  namespace: optString,
  extensions: z.array(NamedExtensionSchema).nullish(),
});

/** The zod schema of a kubeconfig file (`apiVersion: v1`, `kind: Config`). */
export const KubeconfigSchema: z.ZodType<KubeconfigFile> = z.object({
  apiVersion: optString,
  kind: optString,
  preferences: z.unknown().optional(),
  "current-context": optString,
  clusters: z.array(z.object({ name: z.string(), cluster: ClusterSchema.nullish() })).nullish(),
  users: z.array(z.object({ name: z.string(), user: AuthInfoSchema.nullish() })).nullish(),
  contexts: z.array(z.object({ name: z.string(), context: ContextSchema.nullish() })).nullish(),
  extensions: z.array(NamedExtensionSchema).nullish(),
});

/** A cluster entry of a kubeconfig. */
export type KubeCluster = z.infer<typeof ClusterSchema>;
/** A user (AuthInfo) entry of a kubeconfig. */
export type KubeUser = z.infer<typeof AuthInfoSchema>;
/** A context entry of a kubeconfig. */
export type KubeContext = z.infer<typeof ContextSchema>;
/** An `exec` block of a kubeconfig user. */
export type KubeExec = z.infer<typeof ExecConfigSchema>;

/** A parsed kubeconfig file. */
export interface KubeconfigFile {
  /** `v1`. */
  apiVersion?: string | null;
  /** `Config`. */
  kind?: string | null;
  /** Ignored. */
  preferences?: unknown;
  /** The default context. */
  "current-context"?: string | null;
  /** Named clusters. */
  clusters?: { name: string; cluster?: KubeCluster | null }[] | null;
  /** Named users. */
  users?: { name: string; user?: KubeUser | null }[] | null;
  /** Named contexts. */
  contexts?: { name: string; context?: KubeContext | null }[] | null;
  /** Ignored. */
  extensions?: { name: string; extension?: unknown }[] | null;
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/**
 * Formats a zod issue path as `users[2].user.exec.apiVersion`.
 *
 * @param path The path segments.
 * @returns The dotted path.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out === "" ? "(top level)" : out;
}

/**
 * Describes zod issues by path and expectation only. Received values are never included, so a
 * token or password in a wrongly typed field cannot leak into the message.
 *
 * @param issues The issues.
 * @param prefix Path prefix for the issues.
 * @returns One line per issue (at most 10).
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): string {
  const lines = issues.slice(0, 10).map((issue) => {
    const where = formatPath([...prefix, ...issue.path]);
    return `${where}: ${issueText(issue)}`;
  });
  if (issues.length > 10) lines.push(`… and ${issues.length - 10} more problems`);
  return lines.join("; ");
}

function issueText(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_format":
      return `expected ${issue.format} format`;
    case "unrecognized_keys":
      return `unknown field(s) ${issue.keys.join(", ")}`;
    case "invalid_union":
      return "does not match any of the accepted forms";
    case "too_small":
      return "is too short or empty";
    case "custom":
      return issue.message;
    default:
      return "is invalid";
  }
}

const YAML_ENV_VARS = ["LOG_TOKENS", "LOG_STREAM"] as const;

/**
 * Parses YAML without requiring `--allow-env`.
 *
 * The `yaml` package (Node build, which Deno loads) reads `process.env.LOG_TOKENS` for every token
 * and `process.env.LOG_STREAM` for every document, to print debug output. Under `deno run` without
 * `--allow-env` that read throws `NotCapable: Requires env access to "LOG_TOKENS"` (and with a TTY
 * it prompts). When those two variables are not granted, `process.env` is replaced for the duration
 * of the (synchronous) parse by a view that answers `undefined` for them and delegates everything
 * else to the real `process.env`; it is restored in `finally`.
 *
 * @param text The YAML text.
 * @param label The file or source name for error messages.
 * @returns The parsed value.
 */
export function parseYaml(text: string, label: string): unknown {
  const granted = new Set<string>(
    YAML_ENV_VARS.filter((variable) => isGranted(envNeed(variable))),
  );
  if (granted.size === YAML_ENV_VARS.length) return parseYamlDocument(text, label);
  const real = process.env;
  const view = new Proxy(Object.create(null) as Record<string, string | undefined>, {
    get(_target, key) {
      if (typeof key === "string" && (YAML_ENV_VARS as readonly string[]).includes(key)) {
        return granted.has(key) ? real[key] : undefined;
      }
      return Reflect.get(real, key);
    },
  });
  process.env = view as typeof process.env;
  try {
    return parseYamlDocument(text, label);
  } finally {
    process.env = real;
  }
}

function parseYamlDocument(text: string, label: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const { line, col } = lineCol(text, err.pos?.[0] ?? 0);
    // The message text of `yaml` errors can quote the source (which may hold a token); only the
    // position and the error code are reported.
    const what = String(err.code ?? "syntax error").toLowerCase().replaceAll("_", " ");
    throw new TypeError(
      `Invalid kubeconfig ${label}: not valid YAML at line ${line}, column ${col} (${what}). ` +
        `Fix the YAML syntax at that position.`,
    );
  }
  return doc.toJS({ maxAliasCount: 1000 });
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

/**
 * Parses and validates the text of one kubeconfig file.
 *
 * @param text The YAML or JSON text.
 * @param label The file name (or a description) for error messages.
 * @returns The validated file content (empty for an empty file).
 */
export function parseKubeconfig(text: string, label: string): KubeconfigFile {
  const raw = parseYaml(text, label);
  if (raw === null || raw === undefined) return {};
  const result = KubeconfigSchema.safeParse(raw);
  if (!result.success) {
    throw new TypeError(
      `Invalid kubeconfig ${label}: ${describeIssues(result.error.issues)}. ` +
        `Fix these fields (see https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/).`,
    );
  }
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------------------------

/** Where an entry was defined. */
export interface Origin {
  /** The file path (or a description such as `(string)`), for messages. */
  label: string;
  /** The directory that relative paths in this entry resolve against; `undefined`: as given. */
  dir: string | undefined;
  /** The index of the entry in its list. */
  index: number;
}

/** A named entry with its origin. */
export interface Entry<T> {
  /** The entry's name. */
  name: string;
  /** The entry's content. */
  value: T;
  /** Where it was defined. */
  origin: Origin;
}

/** One loaded kubeconfig file. */
export interface LoadedFile {
  /** The file path or description, for messages. */
  label: string;
  /** The directory relative paths resolve against. */
  dir: string | undefined;
  /** The validated content. */
  config: KubeconfigFile;
}

/** Kubeconfig files merged by kubectl's rules. */
export interface MergedKubeconfig {
  /** Labels of the files that were merged, in order. */
  files: string[];
  /** The first `current-context` set, and the file that set it. */
  currentContext?: { name: string; label: string };
  /** Clusters by name (the first file defining a name wins). */
  clusters: Map<string, Entry<KubeCluster>>;
  /** Users by name. */
  users: Map<string, Entry<KubeUser>>;
  /** Contexts by name. */
  contexts: Map<string, Entry<KubeContext>>;
}

/**
 * Merges kubeconfig files the way kubectl merges `$KUBECONFIG`: the first file that defines a
 * cluster, user or context name wins, and the first non-empty `current-context` wins. A name
 * defined twice in the same file is an error, as in kubectl.
 *
 * @param files The files, in `$KUBECONFIG` order.
 * @returns The merged view.
 */
export function mergeKubeconfigs(files: readonly LoadedFile[]): MergedKubeconfig {
  const merged: MergedKubeconfig = {
    files: files.map((f) => f.label),
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
  };
  for (const file of files) {
    const c = file.config;
    const current = c["current-context"];
    if (!merged.currentContext && current) {
      merged.currentContext = { name: current, label: file.label };
    }
    addAll(merged.clusters, c.clusters ?? [], "clusters", file, (e) => e.cluster ?? {});
    addAll(merged.users, c.users ?? [], "users", file, (e) => e.user ?? {});
    addAll(merged.contexts, c.contexts ?? [], "contexts", file, (e) => e.context ?? {});
  }
  return merged;
}

function addAll<E extends { name: string }, T>(
  into: Map<string, Entry<T>>,
  list: readonly E[],
  listName: string,
  file: LoadedFile,
  value: (e: E) => T,
): void {
  const seen = new Map<string, number>();
  list.forEach((e, index) => {
    const first = seen.get(e.name);
    if (first !== undefined) {
      throw new TypeError(
        `Invalid kubeconfig ${file.label}: ${listName}[${index}].name: the name ` +
          `${JSON.stringify(e.name)} is already used by ${listName}[${first}]. ` +
          `Rename or remove one of the two entries.`,
      );
    }
    seen.set(e.name, index);
    if (!into.has(e.name)) {
      into.set(e.name, {
        name: e.name,
        value: value(e),
        origin: { label: file.label, dir: file.dir, index },
      });
    }
  });
}

/**
 * Reports whether merged kubeconfigs define nothing to connect to (kubectl's "empty config").
 *
 * @param merged The merged kubeconfigs.
 * @returns `true` when there is no context, no cluster and no current context.
 */
export function isEmptyKubeconfig(merged: MergedKubeconfig): boolean {
  return merged.contexts.size === 0 && merged.clusters.size === 0 && !merged.currentContext;
}

// ---------------------------------------------------------------------------------------------
// Selection and resolution
// ---------------------------------------------------------------------------------------------

/** Which context, cluster, user and namespace to use (kubectl's `--context` etc.). */
export interface SelectOptions {
  /** Context name instead of `current-context`. */
  context?: string;
  /** Cluster name instead of the context's. */
  cluster?: string;
  /** User name instead of the context's. */
  user?: string;
  /** Namespace instead of the context's. */
  namespace?: string;
}

/** How to obtain credentials for the selected user. */
export interface AuthPlan {
  /** Credentials known at load time (token, basic, client certificate). */
  static: Credentials;
  /** A token file to (re-)read; its content wins over `static.token` once read. */
  tokenFile?: { path: string; where: string };
  /** An exec plugin to run. */
  exec?: ExecPlan;
  /** A description of the user for messages, e.g. `user "dev" (users[0] in /root/.kube/config)`. */
  userLabel: string;
}

/** A kubeconfig resolved to what a client needs. */
export interface ResolvedKubeconfig {
  /** Connection settings. */
  cluster: ClusterConnection;
  /** The namespace. */
  namespace: string;
  /** Impersonation, if any. */
  impersonate?: Impersonation;
  /** Human-readable origin. */
  source: string;
  /** The credential plan. */
  auth: AuthPlan;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function files(merged: MergedKubeconfig): string {
  return merged.files.length === 1 ? merged.files[0] : merged.files.join(", ");
}

function names(map: Map<string, unknown>): string {
  const all = [...map.keys()];
  return all.length === 0 ? "none" : all.map(q).join(", ");
}

function where(origin: Origin, list: string, field?: string): string {
  const entry = `${list}[${origin.index}]`;
  const kind = list === "clusters" ? "cluster" : list === "users" ? "user" : "context";
  return field === undefined ? entry : `${entry}.${kind}.${field}`;
}

function fail(origin: Origin, list: string, name: string, field: string, problem: string): never {
  const kind = list === "clusters" ? "cluster" : list === "users" ? "user" : "context";
  throw new TypeError(
    `Invalid kubeconfig ${origin.label}: ${where(origin, list, field)} (${kind} ${q(name)}) ` +
      problem,
  );
}

/**
 * Picks the context, cluster and user, applying overrides, and resolves them: reads certificate
 * files, decodes `-data` fields, validates everything kubectl validates, and prepares the
 * credential plan.
 *
 * @param merged The merged kubeconfigs.
 * @param options Overrides.
 * @returns The resolved configuration.
 */
export async function resolveKubeconfig(
  merged: MergedKubeconfig,
  options: SelectOptions = {},
): Promise<ResolvedKubeconfig> {
  const fileList = files(merged);
  let context: Entry<KubeContext> | undefined;
  const contextName = options.context || merged.currentContext?.name;
  if (contextName) {
    context = merged.contexts.get(contextName);
    if (!context) {
      const from = options.context
        ? "the requested context"
        : `current-context in ${merged.currentContext?.label}`;
      throw new Error(
        `Kubeconfig ${fileList}: ${from} ${q(contextName)} does not exist. ` +
          `Available contexts: ${names(merged.contexts)}. ` +
          `Pass an existing context name or fix current-context (kubectl config use-context NAME).`,
      );
    }
  }

  const clusterName = options.cluster || context?.value.cluster;
  if (!clusterName) {
    if (!context) {
      throw new Error(
        `Kubeconfig ${fileList}: no current-context is set and no context was requested. ` +
          `Available contexts: ${names(merged.contexts)}. ` +
          `Set current-context (kubectl config use-context NAME) or pass { context: "NAME" }.`,
      );
    }
    fail(
      context.origin,
      "contexts",
      context.name,
      "cluster",
      "is empty: set it to a cluster name.",
    );
  }
  const cluster = merged.clusters.get(clusterName);
  if (!cluster) {
    const ref = options.cluster
      ? "the requested cluster"
      : `cluster named by ${where(context!.origin, "contexts", "cluster")} in ${
        context!.origin.label
      }`;
    throw new Error(
      `Kubeconfig ${fileList}: ${ref} ${q(clusterName)} does not exist. ` +
        `Available clusters: ${names(merged.clusters)}. Add the cluster or fix the reference.`,
    );
  }

  const userName = options.user || context?.value.user;
  let user: Entry<KubeUser> | undefined;
  if (userName) {
    user = merged.users.get(userName);
    if (!user) {
      const ref = options.user
        ? "the requested user"
        : `user named by ${where(context!.origin, "contexts", "user")} in ${context!.origin.label}`;
      throw new Error(
        `Kubeconfig ${fileList}: ${ref} ${q(userName)} does not exist. ` +
          `Available users: ${names(merged.users)}. Add the user or fix the reference.`,
      );
    }
  }

  assertFilesReadable(cluster, user);
  const connection = await resolveCluster(cluster);
  const auth = await resolveUser(user, cluster, connection);
  const impersonate = user ? resolveImpersonation(user) : undefined;
  const namespace = options.namespace || context?.value.namespace || "default";
  const selected = context
    ? `context ${q(context.name)}`
    : `cluster ${q(cluster.name)}${user ? `, user ${q(user.name)}` : ""}`;
  log.debug("Resolved kubeconfig {files} ({selected}): server {server}, namespace {namespace}", {
    files: merged.files,
    selected,
    server: connection.server,
    namespace,
  });
  return {
    cluster: connection,
    namespace,
    impersonate,
    source: `kubeconfig ${fileList} (${selected})`,
    auth,
  };
}

/**
 * Checks, before reading any of them, that every file the selected cluster and user name (CA,
 * client certificate and key, token file) is inside the granted read paths, and names all that
 * are not in one `--allow-read=<a>,<b>,<c>` flag — instead of failing once per file. Skipped
 * where Deno could still prompt (an interactive terminal), so that prompts keep working.
 */
function assertFilesReadable(cluster: Entry<KubeCluster>, user: Entry<KubeUser> | undefined) {
  const needed: { path: string; what: string }[] = [];
  const c = cluster.value;
  if (!c["certificate-authority-data"] && c["certificate-authority"]) {
    needed.push({
      path: resolvePath(c["certificate-authority"], cluster.origin),
      what: `certificate-authority of cluster ${q(cluster.name)}`,
    });
  }
  if (user) {
    const v = user.value;
    const of = `of user ${q(user.name)}`;
    if (v["client-certificate"] && !v["client-certificate-data"]) {
      needed.push({
        path: resolvePath(v["client-certificate"], user.origin),
        what: `client-certificate ${of}`,
      });
    }
    if (v["client-key"] && !v["client-key-data"]) {
      needed.push({ path: resolvePath(v["client-key"], user.origin), what: `client-key ${of}` });
    }
    if (v.tokenFile) {
      needed.push({ path: resolvePath(v.tokenFile, user.origin), what: `tokenFile ${of}` });
    }
  }
  const missing = needed.filter(({ path }) => {
    const state = permissionState(readNeed(path));
    if (state === "granted" || state === "unknown") return false;
    return !(state === "prompt" && canPrompt());
  });
  if (missing.length === 0) return;
  const paths = [...new Set(missing.map((m) => m.path))];
  const list = missing.map((m) => `${m.what} (${m.path})`).join(", ");
  const name = runtime().name === "deno" ? "Deno" : "Node";
  throw permissionDenied(
    `Reading the files of kubeconfig ${cluster.origin.label} needs a ${name} permission that was ` +
      `not granted: ${list}. Run again with ${flagFor(readNeed(...paths))}.`,
  );
}

/**
 * Resolves a path from a kubeconfig entry against the directory of the file that names it.
 *
 * @param path The path as written.
 * @param origin The entry's origin.
 * @returns The path to open.
 */
export function resolvePath(path: string, origin: Origin): string {
  if (isAbsolute(path) || origin.dir === undefined) return path;
  return join(origin.dir, path);
}

/**
 * Decodes a base64 `-data` field into PEM text.
 *
 * @param value The base64 text.
 * @param describe A description of the field for the error, e.g. `users[0].user.client-key-data
 *   (user "dev") in /root/.kube/config`.
 * @returns The PEM text.
 */
export function decodeBase64Pem(value: string, describe: string): string {
  let bytes: Uint8Array;
  try {
    const bin = atob(value.replace(/\s+/g, ""));
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch (cause) {
    throw new TypeError(
      `${describe} is not valid base64. Put the base64 encoding of the PEM file there ` +
        `(e.g. \`base64 -w0 file.pem\`), or use the field without -data to name a file.`,
      { cause },
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new TypeError(
      `${describe} decodes to binary data, not PEM text. Encode the PEM file (not DER) with base64.`,
      { cause },
    );
  }
  if (!text.includes("-----BEGIN ")) {
    throw new TypeError(
      `${describe} decodes to text without a PEM block (-----BEGIN …). ` +
        `Put the base64 encoding of the PEM file there.`,
    );
  }
  return text;
}

async function readPemFile(
  path: string,
  origin: Origin,
  list: string,
  name: string,
  field: string,
): Promise<string> {
  const file = resolvePath(path, origin);
  const kind = list === "clusters" ? "cluster" : "user";
  let text: string;
  try {
    text = await readTextFileWithPermission(file, `${field} of ${kind} ${q(name)}`);
  } catch (e) {
    if (isPermissionError(e)) throw e;
    const reason = isNotFound(e) ? "does not exist" : "cannot be read";
    throw new Error(
      `Kubeconfig ${origin.label}: ${where(origin, list, field)} (${kind} ${q(name)}) names the ` +
        `file ${file}, which ${reason}. Fix the path (relative paths resolve against the ` +
        `kubeconfig's directory) or use ${field}-data.`,
      { cause: e },
    );
  }
  if (!text.includes("-----BEGIN ")) {
    throw new TypeError(
      `Kubeconfig ${origin.label}: ${where(origin, list, field)} (${kind} ${q(name)}): the file ` +
        `${file} contains no PEM block (-----BEGIN …). Point it at a PEM file.`,
    );
  }
  return text;
}

function normalizeServer(server: string, c: Entry<KubeCluster>): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `https://${server}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (cause) {
    throw new TypeError(
      `Invalid kubeconfig ${c.origin.label}: ${where(c.origin, "clusters", "server")} ` +
        `(cluster ${q(c.name)}) is not a valid URL. Use e.g. https://127.0.0.1:6443.`,
      { cause },
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    fail(
      c.origin,
      "clusters",
      c.name,
      "server",
      `has the unsupported scheme ${q(url.protocol)}: use https:// (or http://).`,
    );
  }
  if (url.username || url.password) {
    fail(
      c.origin,
      "clusters",
      c.name,
      "server",
      "contains credentials in the URL, which are not supported: remove them and use " +
        "users[].user.username/password or a token.",
    );
  }
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

function hostOf(server: string): string {
  const h = new URL(server).hostname.toLowerCase();
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

async function resolveCluster(c: Entry<KubeCluster>): Promise<ClusterConnection> {
  const v = c.value;
  if (!v.server) {
    fail(
      c.origin,
      "clusters",
      c.name,
      "server",
      "is missing: set it to the API server URL, e.g. https://127.0.0.1:6443.",
    );
  }
  const server = normalizeServer(v.server, c);
  let tlsServerName = v["tls-server-name"] || undefined;
  if (tlsServerName) {
    const want = tlsServerName.toLowerCase().replace(/^\[|\]$/g, "");
    if (want === hostOf(server)) {
      tlsServerName = undefined;
    } else if (!runtime().supports.tlsServerName) {
      fail(
        c.origin,
        "clusters",
        c.name,
        "tls-server-name",
        `is ${q(tlsServerName)}, which differs from the host of server ${server}. ${
          runtime().name === "deno" ? "Deno's fetch" : `The fetch of Bun ${runtime().version}`
        } cannot verify a certificate against a name other than the URL's host, so ` +
          `tls-server-name is unsupported here (Node and Bun 1.4+ support it). Use a server URL ` +
          `whose host matches the certificate (e.g. https://${tlsServerName}:PORT, with a ` +
          `hosts-file entry if needed) and remove tls-server-name.`,
      );
    }
  }
  const insecure = v["insecure-skip-tls-verify"] === true;
  let certificateAuthority: string | undefined;
  const caData = v["certificate-authority-data"];
  const caFile = v["certificate-authority"];
  if (insecure && (caData || caFile)) {
    fail(
      c.origin,
      "clusters",
      c.name,
      "insecure-skip-tls-verify",
      "is true while certificate-authority is also set; kubectl rejects this combination too. " +
        "Remove one of them (prefer keeping the certificate authority).",
    );
  }
  if (caData) {
    if (caFile) {
      log.warn(
        "Cluster {cluster} in {file} sets both certificate-authority and certificate-authority-data; using the data",
        { cluster: c.name, file: c.origin.label },
      );
    }
    certificateAuthority = decodeBase64Pem(
      caData,
      `Kubeconfig ${c.origin.label}: ${
        where(c.origin, "clusters", "certificate-authority-data")
      } ` +
        `(cluster ${q(c.name)})`,
    );
  } else if (caFile) {
    certificateAuthority = await readPemFile(
      caFile,
      c.origin,
      "clusters",
      c.name,
      "certificate-authority",
    );
  }
  let proxyUrl: string | undefined;
  const proxy = v["proxy-url"];
  if (proxy) {
    let url: URL;
    try {
      url = new URL(proxy);
    } catch (cause) {
      // The URL may hold a password: never quote it.
      throw new TypeError(
        `Invalid kubeconfig ${c.origin.label}: ${where(c.origin, "clusters", "proxy-url")} ` +
          `(cluster ${q(c.name)}) is not a valid URL. Use http://, https:// or socks5://host:port.`,
        { cause },
      );
    }
    if (!["http:", "https:", "socks5:"].includes(url.protocol)) {
      fail(
        c.origin,
        "clusters",
        c.name,
        "proxy-url",
        `has the unsupported scheme ${q(url.protocol)}: use http://, https:// or socks5://.`,
      );
    }
    proxyUrl = proxy;
  }
  const connection: ClusterConnection = {
    server,
    insecureSkipTlsVerify: insecure,
    disableCompression: v["disable-compression"] === true,
  };
  if (certificateAuthority !== undefined) connection.certificateAuthority = certificateAuthority;
  if (proxyUrl !== undefined) connection.proxyUrl = proxyUrl;
  if (tlsServerName !== undefined) connection.tlsServerName = tlsServerName;
  return connection;
}

function resolveImpersonation(u: Entry<KubeUser>): Impersonation | undefined {
  const v = u.value;
  const imp: Impersonation = {};
  if (v.as) imp.user = v.as;
  if (v["as-uid"]) imp.uid = v["as-uid"];
  if (v["as-groups"] && v["as-groups"].length > 0) imp.groups = [...v["as-groups"]];
  const extra = v["as-user-extra"];
  if (extra && Object.keys(extra).length > 0) {
    imp.extra = Object.fromEntries(Object.entries(extra).map(([k, vs]) => [k, [...vs]]));
  }
  if (!imp.user && (imp.uid || imp.groups || imp.extra)) {
    fail(
      u.origin,
      "users",
      u.name,
      "as",
      "is empty while as-uid, as-groups or as-user-extra is set; kubectl requires impersonating " +
        "a user for those. Set as: USER.",
    );
  }
  return Object.keys(imp).length > 0 ? imp : undefined;
}

async function resolveUser(
  u: Entry<KubeUser> | undefined,
  cluster: Entry<KubeCluster>,
  connection: ClusterConnection,
): Promise<AuthPlan> {
  if (!u) return { static: {}, userLabel: "no user (anonymous)" };
  const v = u.value;
  const userLabel = `user ${q(u.name)} (${where(u.origin, "users")} in ${u.origin.label})`;
  const plan: AuthPlan = { static: {}, userLabel };
  const bad: (field: string, problem: string) => never = (field, problem) =>
    fail(u.origin, "users", u.name, field, problem);

  // Legacy auth providers.
  const provider = v["auth-provider"];
  if (provider) {
    if (v.exec) {
      bad("auth-provider", "is set together with exec; kubectl rejects this. Keep only exec.");
    }
    const idToken = provider.config?.["id-token"];
    if (provider.name === "oidc" && idToken) {
      // Documented choice: an oidc id-token is used as a bearer token as is; it is not refreshed.
      log.warn(
        "User {user} in {file} uses the legacy oidc auth-provider: its id-token is sent as a bearer token but never refreshed; migrate to an exec plugin such as kubelogin",
        { user: u.name, file: u.origin.label },
      );
      plan.static.token = idToken;
    } else {
      const hint = provider.name === "gcp"
        ? "gke-gcloud-auth-plugin (https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl)"
        : provider.name === "azure"
        ? "kubelogin (`kubelogin convert-kubeconfig`, https://azure.github.io/kubelogin/)"
        : "an exec credential plugin such as kubelogin (https://github.com/int128/kubelogin)";
      bad(
        "auth-provider",
        `uses the legacy auth-provider ${q(provider.name)}, which this library does not support ` +
          `(kubectl removed gcp and azure in 1.26). Migrate the user to an exec plugin: ${hint}.`,
      );
    }
  }

  // Token and basic auth.
  const hasToken = !!(v.token || v.tokenFile);
  const hasBasic = !!(v.username || v.password);
  if (hasToken && hasBasic) {
    bad(
      v.token ? "token" : "tokenFile",
      "is set together with username/password; kubectl allows only one of token and basic " +
        "authentication. Remove one of them.",
    );
  }
  if (v.token && !plan.static.token) plan.static.token = v.token;
  if (hasBasic) plan.static.basic = { username: v.username ?? "", password: v.password ?? "" };
  if (v.tokenFile) {
    plan.tokenFile = {
      path: resolvePath(v.tokenFile, u.origin),
      where: `${where(u.origin, "users", "tokenFile")} (user ${q(u.name)}) in ${u.origin.label}`,
    };
  }

  // Client certificate.
  const certData = v["client-certificate-data"];
  const certFile = v["client-certificate"];
  const keyData = v["client-key-data"];
  const keyFile = v["client-key"];
  const hasCert = !!(certData || certFile);
  const hasKey = !!(keyData || keyFile);
  if (hasCert && !hasKey) {
    bad(
      "client-key",
      "is missing: a client certificate needs its key. Set client-key or client-key-data.",
    );
  }
  if (hasKey && !hasCert) {
    bad(
      "client-certificate",
      "is missing: a client key needs its certificate. Set client-certificate or " +
        "client-certificate-data.",
    );
  }
  if (hasCert) {
    const describe = (field: string) =>
      `Kubeconfig ${u.origin.label}: ${where(u.origin, "users", field)} (user ${q(u.name)})`;
    const cert = certData
      ? decodeBase64Pem(certData, describe("client-certificate-data"))
      : await readPemFile(certFile!, u.origin, "users", u.name, "client-certificate");
    const key = keyData
      ? decodeBase64Pem(keyData, describe("client-key-data"))
      : await readPemFile(keyFile!, u.origin, "users", u.name, "client-key");
    plan.static.clientCertificate = { cert, key };
  }

  if (v.exec) plan.exec = resolveExec(u, v.exec, cluster, connection);
  return plan;
}

function resolveExec(
  u: Entry<KubeUser>,
  exec: KubeExec & object,
  cluster: Entry<KubeCluster>,
  connection: ClusterConnection,
): ExecPlan {
  const bad: (field: string, problem: string) => never = (field, problem) =>
    fail(u.origin, "users", u.name, `exec.${field}`, problem);
  if (!exec.command) {
    bad("command", "is missing: set it to the credential plugin to run.");
  }
  const apiVersion = exec.apiVersion ?? "";
  if (!apiVersion) {
    bad("apiVersion", `is missing: set it to ${q(EXEC_API_V1)} (or ${q(EXEC_API_V1BETA1)}).`);
  }
  if (apiVersion !== EXEC_API_V1 && apiVersion !== EXEC_API_V1BETA1) {
    bad(
      "apiVersion",
      `is ${q(apiVersion)}, which is not supported: use ${q(EXEC_API_V1)} or ` +
        `${q(EXEC_API_V1BETA1)} (v1alpha1 was removed in Kubernetes 1.24).`,
    );
  }
  const version = apiVersion as ExecPlan["apiVersion"];
  let mode = exec.interactiveMode;
  if (!mode) {
    if (apiVersion === EXEC_API_V1) {
      bad(
        "interactiveMode",
        `is required for ${EXEC_API_V1}: set it to Never or IfAvailable ` +
          `(plugins run here without a terminal).`,
      );
    }
    mode = "IfAvailable";
  }
  if (mode !== "Never" && mode !== "IfAvailable" && mode !== "Always") {
    bad("interactiveMode", `is ${q(mode)}: use Never, IfAvailable or Always.`);
  }
  if (mode === "Always") {
    bad(
      "interactiveMode",
      "is Always, but this library runs exec plugins without a terminal (standard input is not " +
        "passed), so an interactive plugin cannot work. Log in beforehand so the plugin does not " +
        "need to prompt and set interactiveMode: IfAvailable or Never.",
    );
  }
  const env = exec.env ?? [];
  env.forEach((e, i) => {
    if (!e.name) bad(`env[${i}].name`, "is empty: every env entry needs a name.");
  });
  const interactiveMode = mode as ExecPlan["interactiveMode"];
  let command: string = exec.command!;
  const hasSeparator = command.includes("/") ||
    (runtime().os === "windows" && command.includes("\\"));
  if (hasSeparator) command = resolvePath(command, u.origin);

  let clusterInfo: ExecClusterInfo | undefined;
  if (exec.provideClusterInfo) {
    clusterInfo = { server: connection.server };
    const c = cluster.value;
    if (c["tls-server-name"]) clusterInfo["tls-server-name"] = c["tls-server-name"];
    if (connection.insecureSkipTlsVerify) clusterInfo["insecure-skip-tls-verify"] = true;
    if (connection.certificateAuthority !== undefined) {
      clusterInfo["certificate-authority-data"] = btoa(
        String.fromCharCode(...new TextEncoder().encode(connection.certificateAuthority)),
      );
    }
    if (connection.proxyUrl) clusterInfo["proxy-url"] = connection.proxyUrl;
    if (connection.disableCompression) clusterInfo["disable-compression"] = true;
    const ext = c.extensions?.find((e) => e.name === EXEC_CLUSTER_EXTENSION);
    if (ext && ext.extension !== undefined && ext.extension !== null) {
      clusterInfo.config = ext.extension;
    }
  }
  return {
    command,
    args: [...(exec.args ?? [])],
    env: env.map((e) => ({ name: e.name, value: e.value })),
    apiVersion: version,
    interactiveMode,
    provideClusterInfo: exec.provideClusterInfo === true,
    installHint: exec.installHint ?? undefined,
    cluster: clusterInfo,
    server: connection.server,
    certificateAuthority: connection.certificateAuthority,
    where: `${where(u.origin, "users", "exec")} (user ${q(u.name)}) in ${u.origin.label}`,
  };
}

/**
 * Splits a `$KUBECONFIG` value into paths (`:` on Unix, `;` on Windows), dropping empty entries and
 * duplicates, as kubectl does.
 *
 * @param value The variable's value.
 * @param os The operating system (for tests).
 * @returns The paths, in order.
 */
export function splitKubeconfigPaths(
  value: string,
  os: string = runtime().os,
): string[] {
  const sep = os === "windows" ? ";" : ":";
  const out: string[] = [];
  for (const p of value.split(sep)) {
    if (p !== "" && !out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Reads and parses one kubeconfig file.
 *
 * @param path The file.
 * @returns The loaded file, or `undefined` when it does not exist.
 */
export async function loadKubeconfigFile(path: string): Promise<LoadedFile | undefined> {
  let text: string;
  try {
    text = await readTextFileWithPermission(path, "the kubeconfig file");
  } catch (e) {
    if (isNotFound(e)) return undefined;
    if (isPermissionError(e)) throw e;
    throw new Error(
      `Cannot read the kubeconfig file ${path}: ${e instanceof Error ? e.name : "error"}. ` +
        `Check that it is a readable file.`,
      { cause: e },
    );
  }
  log.debug("Read kubeconfig {path}", { path });
  return { label: path, dir: dirname(path), config: parseKubeconfig(text, path) };
}
