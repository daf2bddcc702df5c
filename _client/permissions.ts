/**
 * Turns runtime permission failures (Deno's flags, Node's `--permission` model) into errors that
 * name the exact flag to add, and produces the message for what Deno cannot do per client
 * (skipping TLS verification).
 *
 * Callers describe what they need as a {@linkcode PermissionNeed} (read these paths, these
 * variables, run this command, reach this host); the runtime seam turns it into its own flag:
 * `--allow-read=<path>` on Deno, `--allow-fs-read=<path>` on Node.
 *
 * Internal module: shared by the config loader and the HTTP client.
 *
 * @module
 */

import { type PermissionNeed, runtime } from "../_platform/mod.ts";

export type { PermissionNeed };

/**
 * Reports whether `e` is the runtime refusing a capability: Deno's `NotCapable` (or
 * `PermissionDenied`, what Deno 1.x threw), Node's `ERR_ACCESS_DENIED`.
 *
 * @param e Any thrown value.
 * @returns `true` for a permission failure.
 * @example
 * ```ts
 * import { isPermissionError } from "./permissions.ts";
 * isPermissionError(new Error("no")); // false
 * ```
 */
export function isPermissionError(e: unknown): boolean {
  return runtime().isPermissionError(e);
}

/**
 * Reports whether `e` means that a file (or command) does not exist.
 *
 * @param e Any thrown value.
 * @returns `true` for "not found".
 * @example
 * ```ts
 * import { isNotFound } from "./permissions.ts";
 * isNotFound(new Error("x")); // false
 * ```
 */
export function isNotFound(e: unknown): boolean {
  return runtime().isNotFound(e);
}

/**
 * Converts a permission failure into the runtime's permission error whose message names the flag
 * to add; returns any other value unchanged (so the caller can `throw permissionError(e, …)`).
 *
 * A Deno `PermissionDenied` is converted only when Deno reports the permission as not granted:
 * when Deno did grant it, the operating system refused the access and a flag would not help.
 *
 * @param e The caught value.
 * @param need What was needed, e.g. `{ kind: "read", paths: ["/home/me/.kube/config"] }`.
 * @param what What was being attempted, e.g. `reading the kubeconfig file /home/me/.kube/config`.
 * @returns The error to throw.
 * @example
 * ```ts
 * import { permissionError, readNeed } from "./permissions.ts";
 * const error = permissionError(new Error("x"), readNeed("/etc/hostname"), "reading /etc/hostname");
 * ```
 */
export function permissionError(e: unknown, need: PermissionNeed, what: string): unknown {
  const rt = runtime();
  if (!rt.isPermissionError(e) || rt.grantedAnyway(e, need)) return e;
  return rt.permissionError(need, what, e);
}

/**
 * Builds a permission error of the runtime's kind with the given message.
 *
 * @param message What failed and the flag to add.
 * @param cause The underlying error.
 * @returns The error.
 * @example
 * ```ts
 * import { permissionDenied } from "./permissions.ts";
 * const error = permissionDenied("Reading x needs --allow-read=x");
 * ```
 */
export function permissionDenied(message: string, cause?: unknown): Error {
  return runtime().permissionDenied(message, cause);
}

/**
 * Runs `fn` and converts a permission failure it throws with {@linkcode permissionError}.
 *
 * @param need What `fn` needs.
 * @param what What `fn` does, e.g. `connecting to https://127.0.0.1:6443`.
 * @param fn The operation.
 * @returns What `fn` returns.
 * @example
 * ```ts
 * import { readNeed, withPermission } from "./permissions.ts";
 * const text = await withPermission(readNeed("/etc/hostname"), "reading /etc/hostname", () => "x");
 * ```
 */
export async function withPermission<T>(
  need: PermissionNeed,
  what: string,
  fn: () => Promise<T> | T,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw permissionError(e, need, what);
  }
}

/**
 * Synchronous variant of {@linkcode withPermission}.
 *
 * @param need What `fn` needs.
 * @param what What `fn` does.
 * @param fn The operation.
 * @returns What `fn` returns.
 * @example
 * ```ts
 * import { envNeed, withPermissionSync } from "./permissions.ts";
 * const home = withPermissionSync(envNeed("HOME"), "reading $HOME", () => "x");
 * ```
 */
export function withPermissionSync<T>(need: PermissionNeed, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw permissionError(e, need, what);
  }
}

/**
 * Reports whether a capability is granted, without prompting (`true` where the runtime does not
 * gate it).
 *
 * @param need The capability.
 * @returns Whether it is granted.
 * @example
 * ```ts
 * import { envNeed, isGranted } from "./permissions.ts";
 * isGranted(envNeed("HOME"));
 * ```
 */
export function isGranted(need: PermissionNeed): boolean {
  return runtime().isGranted(need);
}

/**
 * The state of a capability, without prompting (`granted` where the runtime does not gate it).
 *
 * @param need The capability.
 * @returns `granted`, `prompt` (Deno only), `denied` or `unknown`.
 * @example
 * ```ts
 * import { permissionState, readNeed } from "./permissions.ts";
 * permissionState(readNeed("/etc/hostname"));
 * ```
 */
export function permissionState(need: PermissionNeed): "granted" | "prompt" | "denied" | "unknown" {
  return runtime().permissionState(need);
}

/**
 * Whether a permission prompt could be answered (Deno on a terminal; never on Node or Bun).
 *
 * @returns `true` when the runtime would ask.
 * @example
 * ```ts
 * import { canPrompt } from "./permissions.ts";
 * canPrompt();
 * ```
 */
export function canPrompt(): boolean {
  return runtime().canPrompt();
}

/**
 * The need to read files.
 *
 * @param paths The paths.
 * @returns The need.
 * @example
 * ```ts
 * import { readNeed } from "./permissions.ts";
 * readNeed("/home/me/.kube/config");
 * ```
 */
export function readNeed(...paths: string[]): PermissionNeed {
  return { kind: "read", paths };
}

/**
 * The need to read environment variables.
 *
 * @param names The variables.
 * @returns The need.
 * @example
 * ```ts
 * import { envNeed } from "./permissions.ts";
 * envNeed("KUBECONFIG", "HOME");
 * ```
 */
export function envNeed(...names: string[]): PermissionNeed {
  return { kind: "env", names };
}

/**
 * The need to run a command.
 *
 * @param command The command as it will be spawned.
 * @returns The need.
 * @example
 * ```ts
 * import { runNeed } from "./permissions.ts";
 * runNeed("aws");
 * ```
 */
export function runNeed(command: string): PermissionNeed {
  return { kind: "run", command };
}

/**
 * The need to connect to a URL's `host:port` (the scheme's default port when the URL has none).
 *
 * @param url The URL that will be fetched.
 * @returns The need.
 * @example
 * ```ts
 * import { netNeed } from "./permissions.ts";
 * netNeed("https://example.com/api"); // hosts: ["example.com:443"]
 * ```
 */
export function netNeed(url: string | URL): PermissionNeed {
  const u = typeof url === "string" ? new URL(url) : url;
  const port = u.port || (u.protocol === "http:" ? "80" : "443");
  return { kind: "net", hosts: [`${u.hostname}:${port}`] };
}

/**
 * The flag that grants a need on this runtime, e.g. `--allow-read=/x` (Deno) or
 * `--allow-fs-read=/x` (Node); `undefined` where the runtime does not gate it.
 *
 * @param need The need.
 * @returns The flag.
 * @example
 * ```ts
 * import { flagFor, readNeed } from "./permissions.ts";
 * flagFor(readNeed("/x"));
 * ```
 */
export function flagFor(need: PermissionNeed): string | undefined {
  return runtime().flag(need);
}

/**
 * Reads an environment variable, converting a missing permission into an error naming the flag
 * for `need` (which often lists related variables, e.g. `envNeed("KUBECONFIG", "HOME")`).
 *
 * @param name The variable.
 * @param need The variables to name in the flag.
 * @returns The value, or `undefined` when unset.
 * @example
 * ```ts
 * import { envNeed, readEnv } from "./permissions.ts";
 * readEnv("HOME", envNeed("KUBECONFIG", "HOME"));
 * ```
 */
export function readEnv(name: string, need: PermissionNeed): string | undefined {
  return withPermissionSync(
    need,
    `reading the environment variable ${name}`,
    () => runtime().env(name),
  );
}

/**
 * Reads a text file, converting a missing read permission into an error naming the flag to read
 * `flagPath`. Other errors (not found, …) are re-thrown unchanged for the caller to describe.
 *
 * @param path The file.
 * @param what What the file is, e.g. `the kubeconfig file`.
 * @param flagPath The path to name in the flag (e.g. the directory holding related files).
 * @returns The file's text.
 * @example
 * ```ts
 * import { readTextFileWithPermission } from "./permissions.ts";
 * await readTextFileWithPermission("/etc/hostname", "the host name file");
 * ```
 */
export function readTextFileWithPermission(
  path: string,
  what: string,
  flagPath: string = path,
): Promise<string> {
  return withPermission(
    readNeed(flagPath),
    `reading ${what} ${path}`,
    () => runtime().readTextFile(path),
  );
}

/**
 * The host name to put in `--unsafely-ignore-certificate-errors=<host>` for a server URL (no port,
 * no IPv6 brackets).
 *
 * @param server The API server URL.
 * @returns The host name.
 * @example
 * ```ts
 * import { insecureHostName } from "./permissions.ts";
 * insecureHostName("https://[::1]:6443"); // "::1"
 * ```
 */
export function insecureHostName(server: string): string {
  let host: string;
  try {
    host = new URL(server).hostname;
  } catch {
    host = server;
  }
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Builds the error to throw when a TLS handshake fails for a cluster whose kubeconfig says
 * `insecure-skip-tls-verify: true` on Deno: Deno's `fetch` cannot skip verification per client,
 * only for the whole process, with `--unsafely-ignore-certificate-errors=<host>`. (Node and Bun
 * skip it per client.)
 *
 * @param server The API server URL.
 * @param cause The TLS error.
 * @param source Where the setting came from, e.g. `kubeconfig /root/.kube/config (context "x")`.
 * @returns An `Error` (with `cause`) whose message names the flag.
 * @example
 * ```ts
 * import { insecureSkipTlsVerifyError } from "./permissions.ts";
 * const err = insecureSkipTlsVerifyError("https://10.0.0.1:6443", new TypeError("invalid peer certificate"));
 * err.message.includes("--unsafely-ignore-certificate-errors=10.0.0.1"); // true
 * ```
 */
export function insecureSkipTlsVerifyError(
  server: string,
  cause?: unknown,
  source?: string,
): Error {
  const host = insecureHostName(server);
  const from = source ? ` by ${source}` : "";
  return new Error(
    `TLS verification of ${server} failed, and the cluster is configured${from} with ` +
      `insecure-skip-tls-verify: true. Deno cannot skip certificate verification for a single ` +
      `client: run the process with --unsafely-ignore-certificate-errors=${host} (this disables ` +
      `verification for that host in the whole process), or better, set certificate-authority ` +
      `(or certificate-authority-data) to the CA that signed the server's certificate.`,
    { cause },
  );
}
