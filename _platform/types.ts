/**
 * The runtime seam: everything the library needs from the JavaScript runtime it runs on (Deno,
 * Node or Bun), behind one interface with one implementation per runtime.
 *
 * Outside `_platform/deno.ts` the library never touches `Deno.*`; outside `_platform/node.ts` it
 * never loads `undici`; outside `_platform/bun.ts` it never touches `Bun.*`. A check in
 * `deno task test` (`tools/check_runtime_seam.ts`) enforces it.
 *
 * Internal module.
 *
 * @module
 */

/** The runtimes the library runs on. */
export type RuntimeName = "deno" | "node" | "bun";

/**
 * A capability the program needs, described without any runtime's flag syntax. The runtime turns
 * it into its own flag (`--allow-read=<path>` on Deno, `--allow-fs-read=<path>` on Node).
 */
export type PermissionNeed =
  | { kind: "read"; paths: readonly string[] }
  | { kind: "env"; names: readonly string[] }
  | { kind: "run"; command: string }
  | { kind: "net"; hosts: readonly string[] };

/** What a finished child process left behind. */
export interface ProcessOutput {
  /** Whether it exited with code 0. */
  success: boolean;
  /** The exit code (a killed process has a code too, but `signal` says why). */
  code: number;
  /** The signal that killed it, e.g. `SIGTERM`, or `null`. */
  signal: string | null;
  /** Everything it wrote to standard output (up to `maxStdoutBytes`). */
  stdout: Uint8Array;
  /** True when it wrote more than `maxStdoutBytes`: it was killed and `stdout` is cut. */
  stdoutOverflow?: boolean;
  /** Everything it wrote to standard error. */
  stderr: Uint8Array;
}

/** How to run a child process: no standard input, output captured. */
export interface RunOptions {
  /** The arguments. */
  args: readonly string[];
  /** Variables added to the inherited environment. */
  env: Readonly<Record<string, string>>;
  /** Kills the process. */
  signal?: AbortSignal;
  /**
   * Where the child's stderr goes: `capture` (default: into {@linkcode ProcessOutput.stderr}) or
   * `inherit` (this process's stderr, never held in memory; `ProcessOutput.stderr` is empty).
   */
  stderr?: "capture" | "inherit";
  /** The most stdout kept: a child writing more is killed (`stdoutOverflow`). Default no limit. */
  maxStdoutBytes?: number;
}

/** The TLS and proxy settings of one HTTP transport (one connection pool). */
export interface TransportOptions {
  /** PEM bundle of certificate authorities to trust, in addition to the system roots. */
  certificateAuthority?: string;
  /** A client certificate and key in PEM, for mutual TLS. */
  clientCertificate?: { cert: string; key: string };
  /** An `http://`, `https://` or `socks5://` proxy (with optional user info). */
  proxyUrl?: string;
  /** Do not verify the server's certificate (kubeconfig `insecure-skip-tls-verify`). */
  insecureSkipTlsVerify?: boolean;
  /** Verify the server's certificate against this name instead of the URL's host (`tls-server-name`). */
  tlsServerName?: string;
}

/** A `fetch` with its own connection pool; `close()` ends its idle connections. */
export interface HttpPool {
  /**
   * Sends one request.
   *
   * @param url The URL.
   * @param init The request (method, headers, body, signal).
   * @returns The response; its body is a web `ReadableStream`.
   */
  fetch(url: URL, init: RequestInit): Promise<Response>;
  /** Closes the pool. Streams already open may end. */
  close(): void;
}

/** A bidirectional byte stream (a TCP or TLS connection). */
export interface ByteStream {
  /** Bytes from the peer; ends when the peer closes. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes the connection at once (idempotent). */
  close(): void;
}

/** A listening TCP socket that yields accepted connections. */
export interface ByteListener extends AsyncIterable<ByteStream> {
  /** The local port (the one chosen by the system when 0 was asked). */
  readonly port: number;
  /** The local address. */
  readonly hostname: string;
  /** Stops listening. */
  close(): void;
}

/** TLS settings of a direct connection. */
export interface TcpTls {
  /** PEM certificate authorities to trust besides the system roots. */
  caCerts?: string[];
  /** PEM client certificate (with `key`). */
  cert?: string;
  /** PEM private key of the client certificate. */
  key?: string;
  /**
   * Do not verify the server's certificate (kubeconfig `insecure-skip-tls-verify`). Only where
   * {@linkcode TransportSupport.insecureSkipTlsVerify} holds (Node, Bun); Deno refuses it.
   */
  insecureSkipTlsVerify?: boolean;
  /**
   * Send this SNI name and verify the certificate against it instead of the host
   * (kubeconfig `tls-server-name`). Only where {@linkcode TransportSupport.tlsServerName} holds.
   */
  serverName?: string;
}

/** Where to open a direct TCP (or TLS) connection. */
export interface TcpTarget {
  /** Host name or IP address. */
  hostname: string;
  /** TCP port. */
  port: number;
  /** TLS settings (ALPN `http/1.1`); plain TCP when undefined. */
  tls?: TcpTls;
}

/** A running loopback HTTP server. */
export interface ServeHandle {
  /** The port it listens on. */
  port: number;
  /** The address it listens on. */
  hostname: string;
  /** Stops accepting, ends open connections (watches), and resolves when it is down. */
  close(): Promise<void>;
}

/**
 * Answers one HTTP request. The server never aborts the request's work on its own: when the client
 * goes away, it cancels the response body, which is how a watch learns its reader is gone.
 */
export type ServeHandler = (request: Request) => Promise<Response>;

/** How to serve HTTPS (the operator's webhooks). */
export interface TlsServeOptions {
  /** The address to listen on, e.g. `0.0.0.0` in a pod or `127.0.0.1` in tests. */
  hostname: string;
  /** The port; 0 picks a free one. */
  port: number;
  /** The serving certificate chain in PEM. */
  cert: string;
  /** Its private key in PEM (PKCS#8 or the key's own format). */
  key: string;
  /** Largest request body accepted; a larger one is answered 413 without reading it. */
  maxBodyBytes: number;
  /** How long a client may take to send the request's headers. */
  headersTimeoutMs: number;
  /** How long a client may take to send the whole request. */
  requestTimeoutMs: number;
  /** How long a kept-alive connection may stay idle before the server closes it. */
  idleTimeoutMs: number;
}

/** A running HTTPS server whose certificate can be replaced while it serves. */
export interface TlsServeHandle {
  /** The port it listens on. */
  readonly port: number;
  /** The address it listens on. */
  readonly hostname: string;
  /**
   * Replaces the certificate for new TLS handshakes; connections already open keep theirs and
   * requests in flight finish.
   *
   * @param cert The new chain in PEM.
   * @param key Its private key in PEM.
   * @returns When new handshakes present the new certificate.
   * @throws {Error} When the pair is unusable (the old one stays in use).
   */
  setCertificate(cert: string, key: string): Promise<void>;
  /** Stops accepting, ends the connections, and resolves when it is down. */
  close(): Promise<void>;
}

/** What the runtime can do per HTTP client, beyond CA, client certificate and http(s) proxies. */
export interface TransportSupport {
  /** `insecure-skip-tls-verify` per client. */
  insecureSkipTlsVerify: boolean;
  /** `tls-server-name` different from the URL's host. */
  tlsServerName: boolean;
  /** `socks5://` proxies. */
  socks5Proxy: boolean;
}

/** The runtime the library runs on. */
export interface Runtime {
  /** `deno`, `node` or `bun`. */
  readonly name: RuntimeName;
  /** The runtime's version, e.g. `2.9.6`, `24.22.3`, `1.4.5`. */
  readonly version: string;
  /** The operating system: `linux`, `darwin`, `windows`, … */
  readonly os: string;
  /** What the transport supports per client. */
  readonly supports: TransportSupport;

  /**
   * Reads an environment variable.
   *
   * @param name The variable.
   * @returns Its value, or `undefined`.
   * @throws The runtime's permission error when reading it is not allowed (Deno).
   */
  env(name: string): string | undefined;

  /**
   * Reads a UTF-8 text file.
   *
   * @param path The file.
   * @returns Its text.
   * @throws An error for which {@linkcode Runtime.isNotFound} or
   *   {@linkcode Runtime.isPermissionError} may hold.
   */
  readTextFile(path: string): Promise<string>;

  /**
   * Runs a program to completion without standard input and returns what it wrote.
   *
   * @param command The program (looked up on `PATH` when it has no separator).
   * @param options Arguments, extra environment, abort signal.
   * @returns The exit status and output.
   * @throws When the program cannot be started (not found, not allowed, not executable).
   */
  run(command: string, options: RunOptions): Promise<ProcessOutput>;

  /**
   * Creates an HTTP transport with its own TLS settings and connection pool.
   *
   * @param options CA, client certificate, proxy, TLS verification settings.
   * @returns The transport.
   * @throws {TypeError} When the runtime cannot honour an option (see {@linkcode Runtime.supports}).
   */
  connect(options: TransportOptions): HttpPool;

  /**
   * Serves HTTP on a loopback address.
   *
   * @param handler Answers requests.
   * @param options The address; port 0 picks a free one.
   * @returns The running server.
   */
  serve(handler: ServeHandler, options: { hostname: string; port: number }): Promise<ServeHandle>;

  /**
   * Serves HTTPS with a certificate that can be replaced without a restart, bounded request
   * bodies and header, request and idle timeouts.
   *
   * @param handler Answers requests (the body is already known to be within the limit).
   * @param options Address, certificate, limits.
   * @returns The running server.
   */
  serveTls(handler: ServeHandler, options: TlsServeOptions): Promise<TlsServeHandle>;

  /**
   * Opens a direct TCP or TLS connection (ALPN `http/1.1`, extra CAs added to the system roots).
   *
   * @param target Host, port, TLS settings.
   * @returns The connected stream.
   */
  connectTcp(target: TcpTarget): Promise<ByteStream>;

  /**
   * Listens on a local TCP port.
   *
   * @param hostname The local address.
   * @param port The port; 0 lets the system choose.
   * @returns The listener, once it listens (its port is known then). Rejects with the runtime's
   *   error when the address is taken ({@linkcode Runtime.isAddrInUse}) or not allowed.
   */
  listenTcp(hostname: string, port: number): Promise<ByteListener>;

  /**
   * Calls `listener` when the process receives `signal`.
   *
   * @param signal `SIGTERM` or `SIGINT`.
   * @param listener Called on each delivery.
   * @returns A function that removes the listener.
   */
  onSignal(signal: "SIGTERM" | "SIGINT", listener: () => void): () => void;

  /**
   * Ends the process at once.
   *
   * @param code The exit code.
   */
  exit(code: number): never;

  /**
   * Reports whether an error means that the address to listen on is taken.
   *
   * @param error Any thrown value.
   * @returns `true` for "address in use".
   */
  isAddrInUse(error: unknown): boolean;

  /**
   * Reports whether an error means "no such file or directory" (or command).
   *
   * @param error Any thrown value.
   * @returns `true` for a missing file.
   */
  isNotFound(error: unknown): boolean;

  /**
   * Reports whether an error is the runtime refusing a capability it was not granted (Deno's
   * `NotCapable`, Node's `ERR_ACCESS_DENIED` under `--permission`), including the errors made by
   * {@linkcode Runtime.permissionError}.
   *
   * @param error Any thrown value.
   * @returns `true` for a missing runtime permission.
   */
  isPermissionError(error: unknown): boolean;

  /**
   * Reports whether a runtime-level refusal happened although the runtime says the capability
   * was granted (then the operating system refused, and a flag would not help).
   *
   * @param error The caught error.
   * @param need The capability that was used.
   * @returns `true` when the runtime granted `need`, so the error is not about a flag.
   */
  grantedAnyway(error: unknown, need: PermissionNeed): boolean;

  /**
   * Reports whether the runtime has granted a capability, without prompting. Runtimes that do not
   * gate it (Node and Bun for environment variables) answer `true`.
   *
   * @param need The capability.
   * @returns `true` when granted, `false` when not or when it cannot be told.
   */
  isGranted(need: PermissionNeed): boolean;

  /**
   * The state of a capability, without prompting: `prompt` only on Deno (which asks on a
   * terminal), `unknown` when it cannot be queried.
   *
   * @param need The capability.
   * @returns `granted`, `prompt`, `denied` or `unknown`.
   */
  permissionState(need: PermissionNeed): "granted" | "prompt" | "denied" | "unknown";

  /**
   * Whether a permission prompt could be answered (Deno on a terminal); `false` on Node and Bun,
   * which never prompt.
   *
   * @returns Whether standard input and standard error are terminals and the runtime prompts.
   */
  canPrompt(): boolean;

  /**
   * Builds a permission error of the runtime's kind with a message of the caller's.
   *
   * @param message The message (which names the flag to add).
   * @param cause The underlying error.
   * @returns The error.
   */
  permissionDenied(message: string, cause?: unknown): Error;

  /**
   * Formats the command-line flag that grants a capability, or `undefined` when the runtime does
   * not gate it (Node and Bun do not gate environment variables).
   *
   * @param need The capability.
   * @returns The flag, e.g. `--allow-read=/home/me/.kube/config`.
   */
  flag(need: PermissionNeed): string | undefined;

  /**
   * Builds the error to throw when a capability was refused: the runtime's own permission error
   * class (`Deno.errors.NotCapable` on Deno; an `Error` with `code: "ERR_ACCESS_DENIED"` on Node),
   * with a message that names the flag.
   *
   * @param need The capability.
   * @param what What was attempted, e.g. `reading the kubeconfig file /x`.
   * @param cause The runtime's error.
   * @returns The error.
   */
  permissionError(need: PermissionNeed, what: string, cause?: unknown): Error;

  /**
   * Builds a "not found" error of the runtime's kind (for callers that want to pass one on as a
   * `cause`).
   *
   * @param message The message.
   * @returns The error.
   */
  notFoundError(message: string): Error;
}
