/**
 * Turns Deno permission failures into errors that name the exact flag to add, and produces the
 * message for what Deno cannot do per client (skipping TLS verification).
 *
 * Internal module: shared by the config loader and the HTTP client.
 *
 * @module
 */

/**
 * Reports whether `e` is a Deno permission failure: {@linkcode Deno.errors.NotCapable}, or
 * {@linkcode Deno.errors.PermissionDenied} (what Deno 1.x threw for a missing permission; in Deno 2
 * it usually means the operating system refused access).
 *
 * @param e Any thrown value.
 * @returns `true` for `NotCapable` and `PermissionDenied`.
 * @example
 * ```ts
 * import { isPermissionError } from "./_permissions.ts";
 * isPermissionError(new Deno.errors.NotCapable("no")); // true
 * ```
 */
export function isPermissionError(e: unknown): boolean {
  return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
}

/**
 * Converts a permission failure into a {@linkcode Deno.errors.NotCapable} whose message names the
 * flag to add; returns any other value unchanged (so the caller can `throw permissionError(e, …)`).
 *
 * A `PermissionDenied` error is only converted when `descriptor` is not given or Deno reports that
 * permission as not granted: when Deno did grant it, the operating system refused the access and a
 * flag would not help, so the error is returned unchanged.
 *
 * @param e The caught value.
 * @param flag The flag to name, e.g. `--allow-read=/home/me/.kube/config`.
 * @param what What was being attempted, e.g. `reading the kubeconfig file /home/me/.kube/config`.
 * @param descriptor The permission that was needed, to tell a Deno refusal from an OS one.
 * @returns The error to throw.
 * @example
 * ```ts
 * import { permissionError } from "./_permissions.ts";
 * try {
 *   await Deno.readTextFile("/etc/hostname");
 * } catch (e) {
 *   throw permissionError(e, "--allow-read=/etc/hostname", "reading /etc/hostname");
 * }
 * ```
 */
export function permissionError(
  e: unknown,
  flag: string,
  what: string,
  descriptor?: Deno.PermissionDescriptor,
): unknown {
  if (e instanceof Deno.errors.NotCapable) return notCapable(e, flag, what);
  if (e instanceof Deno.errors.PermissionDenied) {
    if (descriptor !== undefined && permissionState(descriptor) === "granted") return e;
    return notCapable(e, flag, what);
  }
  return e;
}

function notCapable(cause: unknown, flag: string, what: string): Deno.errors.NotCapable {
  return new Deno.errors.NotCapable(
    `${capitalize(what)} needs a Deno permission that was not granted: run again with ${flag}.`,
    { cause },
  );
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}

/**
 * Runs `fn` and converts a permission failure it throws with {@linkcode permissionError}.
 *
 * @param flag The flag to name, e.g. `--allow-net=127.0.0.1:6443`.
 * @param what What `fn` does, e.g. `connecting to https://127.0.0.1:6443`.
 * @param fn The operation.
 * @param descriptor The permission needed, to tell a Deno refusal from an OS one.
 * @returns What `fn` returns.
 * @example
 * ```ts
 * import { withPermission } from "./_permissions.ts";
 * const text = await withPermission(
 *   "--allow-read=/etc/hostname",
 *   "reading /etc/hostname",
 *   () => Deno.readTextFile("/etc/hostname"),
 * );
 * ```
 */
export async function withPermission<T>(
  flag: string,
  what: string,
  fn: () => Promise<T> | T,
  descriptor?: Deno.PermissionDescriptor,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw permissionError(e, flag, what, descriptor);
  }
}

/**
 * Synchronous variant of {@linkcode withPermission}.
 *
 * @param flag The flag to name, e.g. `--allow-env=KUBECONFIG,HOME`.
 * @param what What `fn` does.
 * @param fn The operation.
 * @param descriptor The permission needed, to tell a Deno refusal from an OS one.
 * @returns What `fn` returns.
 * @example
 * ```ts
 * import { withPermissionSync } from "./_permissions.ts";
 * const home = withPermissionSync("--allow-env=HOME", "reading $HOME", () => Deno.env.get("HOME"));
 * ```
 */
export function withPermissionSync<T>(
  flag: string,
  what: string,
  fn: () => T,
  descriptor?: Deno.PermissionDescriptor,
): T {
  try {
    return fn();
  } catch (e) {
    throw permissionError(e, flag, what, descriptor);
  }
}

/**
 * Returns the state of a permission without prompting, or `"unknown"` when it cannot be queried.
 *
 * @param descriptor The permission.
 * @returns `"granted"`, `"prompt"`, `"denied"` or `"unknown"`.
 * @example
 * ```ts
 * import { permissionState } from "./_permissions.ts";
 * permissionState({ name: "env", variable: "HOME" });
 * ```
 */
export function permissionState(
  descriptor: Deno.PermissionDescriptor,
): Deno.PermissionState | "unknown" {
  try {
    return Deno.permissions.querySync(descriptor).state;
  } catch {
    return "unknown";
  }
}

/**
 * Formats a `--allow-read=<paths>` flag.
 *
 * @param paths The paths to allow.
 * @returns The flag.
 * @example
 * ```ts
 * import { readFlag } from "./_permissions.ts";
 * readFlag("/home/me/.kube/config"); // "--allow-read=/home/me/.kube/config"
 * ```
 */
export function readFlag(...paths: string[]): string {
  return `--allow-read=${paths.join(",")}`;
}

/**
 * Formats a `--allow-env=<names>` flag.
 *
 * @param names The variable names to allow.
 * @returns The flag.
 * @example
 * ```ts
 * import { envFlag } from "./_permissions.ts";
 * envFlag("KUBECONFIG", "HOME"); // "--allow-env=KUBECONFIG,HOME"
 * ```
 */
export function envFlag(...names: string[]): string {
  return `--allow-env=${names.join(",")}`;
}

/**
 * Formats a `--allow-run=<command>` flag.
 *
 * @param command The command as it will be spawned.
 * @returns The flag.
 * @example
 * ```ts
 * import { runFlag } from "./_permissions.ts";
 * runFlag("aws"); // "--allow-run=aws"
 * ```
 */
export function runFlag(command: string): string {
  return `--allow-run=${command}`;
}

/**
 * Formats a `--allow-net=<host:port>` flag for a URL, using the scheme's default port when the URL
 * has none.
 *
 * @param url The URL that will be fetched.
 * @returns The flag, e.g. `--allow-net=127.0.0.1:6443`.
 * @example
 * ```ts
 * import { netFlag } from "./_permissions.ts";
 * netFlag("https://example.com/api"); // "--allow-net=example.com:443"
 * ```
 */
export function netFlag(url: string | URL): string {
  const u = typeof url === "string" ? new URL(url) : url;
  const port = u.port || (u.protocol === "http:" ? "80" : "443");
  return `--allow-net=${u.hostname}:${port}`;
}

/**
 * Reads an environment variable, converting a missing permission into an error naming `flag`.
 *
 * @param name The variable.
 * @param flag The flag to name (often lists related variables, e.g. `--allow-env=KUBECONFIG,HOME`).
 * @returns The value, or `undefined` when unset.
 * @example
 * ```ts
 * import { readEnv } from "./_permissions.ts";
 * readEnv("HOME", "--allow-env=KUBECONFIG,HOME");
 * ```
 */
export function readEnv(name: string, flag: string): string | undefined {
  return withPermissionSync(
    flag,
    `reading the environment variable ${name}`,
    () => Deno.env.get(name),
    { name: "env", variable: name },
  );
}

/**
 * Reads a text file, converting a missing read permission into an error naming `--allow-read=<path>`.
 * Other errors (`NotFound`, …) are re-thrown unchanged for the caller to describe.
 *
 * @param path The file.
 * @param what What the file is, e.g. `the kubeconfig file`.
 * @param flagPath The path to name in the flag (e.g. the directory holding related files).
 * @returns The file's text.
 * @example
 * ```ts
 * import { readTextFileWithPermission } from "./_permissions.ts";
 * await readTextFileWithPermission("/etc/hostname", "the host name file");
 * ```
 */
export function readTextFileWithPermission(
  path: string,
  what: string,
  flagPath: string = path,
): Promise<string> {
  return withPermission(
    readFlag(flagPath),
    `reading ${what} ${path}`,
    () => Deno.readTextFile(path),
    { name: "read", path },
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
 * import { insecureHostName } from "./_permissions.ts";
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
 * `insecure-skip-tls-verify: true`: Deno's `fetch` cannot skip verification per client, only for
 * the whole process, with `--unsafely-ignore-certificate-errors=<host>`.
 *
 * @param server The API server URL.
 * @param cause The TLS error.
 * @param source Where the setting came from, e.g. `kubeconfig /root/.kube/config (context "x")`.
 * @returns An `Error` (with `cause`) whose message names the flag.
 * @example
 * ```ts
 * import { insecureSkipTlsVerifyError } from "./_permissions.ts";
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
