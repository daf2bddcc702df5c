/**
 * Streaming pod subresources over WebSocket: {@linkcode exec} and {@linkcode attach}
 * (`v5.channel.k8s.io`, falling back to `v4.channel.k8s.io`), {@linkcode execOutput} that
 * collects the output, {@linkcode portForward} (one duplex byte stream per port) and
 * {@linkcode forwardPort} (a local listener, like `kubectl port-forward`).
 *
 * They authenticate exactly like every other request of the {@linkcode Client} (bearer tokens,
 * token files, exec plugins, client certificates, custom CA, `proxy-url` over HTTP CONNECT) and
 * need no unstable flag.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { ChannelMux, CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT } from "./_client/channels.ts";
import { type ByteStream, listenSocket, openSocket } from "./_client/socket.ts";
import {
  type RefusedUpgrade,
  upgradeWebSocket,
  type WebSocketConnection,
} from "./_client/websocket.ts";
import { assertName, assertNamespace } from "./api.ts";
import type { Client } from "./client.ts";
import {
  errorFromResponse,
  type QueryParams,
  secretsOf,
  transportOf,
} from "./_client/transport.ts";
import { redactText } from "./_client/redact.ts";
import { ApiError, type Status } from "./errors.ts";

const log = getLogger(["kube", "exec"]);

/** The subprotocols of exec and attach, preferred first. */
export const EXEC_PROTOCOLS: readonly string[] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/** The subprotocols of port-forward, preferred first. */
export const PORT_FORWARD_PROTOCOLS: readonly string[] = [
  "v4.channel.k8s.io",
  "portforward.k8s.io",
];

/** A pod: its name (namespace from the options or the config), or a Pod object. */
export type PodRef = string | { metadata?: { name?: string; namespace?: string } };

/** Options of {@linkcode attach}. */
export interface AttachOptions {
  /** The namespace; default the Pod object's, then the config's. */
  namespace?: string;
  /** The container; required when the pod has more than one. */
  container?: string;
  /** Open a stdin stream. Default false. */
  stdin?: boolean;
  /** Open a stdout stream. Default true. */
  stdout?: boolean;
  /** Open a stderr stream. Default true, false with `tty` (a terminal merges them). */
  stderr?: boolean;
  /** Allocate a terminal: enables {@linkcode ExecSession.resize}. Default false. */
  tty?: boolean;
  /** Aborts the session: closes the connection and errors the streams with the reason. */
  signal?: AbortSignal;
  /**
   * How long connecting and the WebSocket upgrade may take, in milliseconds, on the client's
   * clock (after credentials are ready). Default 30 000. Once upgraded there is no timeout.
   */
  timeoutMs?: number;
}

/** Options of {@linkcode exec}. */
export type ExecOptions = AttachOptions;

/** How an exec or attach ended. */
export interface ExecResult {
  /** The exit code: 0 on success, the command's code after a `NonZeroExitCode` status. */
  exitCode: number;
  /** The final `Status` the server sent on the error channel. */
  status: Status;
}

/** A terminal size, in character cells. */
export interface TerminalSize {
  /** Columns. */
  width: number;
  /** Rows. */
  height: number;
}

/**
 * A running exec or attach. Start reading (or cancel) every output stream you asked for before
 * awaiting `result`: a stream being read slowly slows the connection (backpressure), and a stream
 * nobody has started reading is errored with a `RangeError` once 1 MiB is buffered for it (its
 * further output is dropped) so that the others and `result` still arrive.
 */
export interface ExecSession extends AsyncDisposable {
  /** The subprotocol the server chose (`v5.channel.k8s.io` or `v4.channel.k8s.io`). */
  readonly protocol: string;
  /**
   * The process's stdin, when asked for. Closing it sends end-of-file with `v5.channel.k8s.io`;
   * `v4.channel.k8s.io` cannot half-close (the process sees end-of-file only when the session ends).
   */
  readonly stdin: WritableStream<Uint8Array> | undefined;
  /** The process's stdout, when asked for. */
  readonly stdout: ReadableStream<Uint8Array> | undefined;
  /** The process's stderr, when asked for (never with `tty`). */
  readonly stderr: ReadableStream<Uint8Array> | undefined;
  /**
   * Resolves with the exit code when the process ends. Rejects with an {@linkcode ApiError} when
   * the server reports a failure other than a non-zero exit, or when the connection closes before
   * the final status; with the signal's reason on abort.
   */
  readonly result: Promise<ExecResult>;
  /**
   * Resizes the terminal (only with `tty: true`).
   *
   * @param size The new size.
   */
  resize(size: TerminalSize): Promise<void>;
  /** Closes the connection; the streams end. */
  close(): Promise<void>;
}

/**
 * Runs a command in a container, like `kubectl exec`, with web streams for stdin, stdout and
 * stderr.
 *
 * A refused request (no such pod or container, RBAC, a pod without a node) throws an
 * {@linkcode ApiError} with the server's status. Needs `--allow-net=<api-server-host:port>`.
 *
 * @param client The client (its credentials and TLS settings are used).
 * @param pod The pod name or object.
 * @param command The command and its arguments (not run through a shell).
 * @param options Container, which streams, `tty`, namespace, signal.
 * @returns The session.
 * @example Stream a command's output
 * ```ts ignore
 * import { Client, exec } from "@denokube/kube";
 * await using client = await Client.infer();
 * await using session = await exec(client, "web", ["ls", "-l", "/"]);
 * await session.stdout!.pipeTo(Deno.stdout.writable, { preventClose: true });
 * console.log("exit code", (await session.result).exitCode);
 * ```
 */
export async function exec(
  client: Client,
  pod: PodRef,
  command: readonly string[],
  options: ExecOptions = {},
): Promise<ExecSession> {
  if (
    !Array.isArray(command) || command.length === 0 || command.some((c) => typeof c !== "string")
  ) {
    throw new TypeError(
      'exec needs the command as a non-empty array of strings, e.g. ["ls", "-l"]',
    );
  }
  return await openSession(client, pod, "exec", command, options);
}

/**
 * Attaches to the main process of a running container, like `kubectl attach`, with the same
 * streams as {@linkcode exec}.
 *
 * @param client The client.
 * @param pod The pod name or object.
 * @param options Container, which streams, `tty`, namespace, signal.
 * @returns The session.
 * @example Read a container's output as it is written
 * ```ts ignore
 * import { attach, Client } from "@denokube/kube";
 * await using client = await Client.infer();
 * await using session = await attach(client, "web", { stderr: false });
 * for await (const chunk of session.stdout!) console.log(new TextDecoder().decode(chunk));
 * ```
 */
export async function attach(
  client: Client,
  pod: PodRef,
  options: AttachOptions = {},
): Promise<ExecSession> {
  return await openSession(client, pod, "attach", undefined, options);
}

/** Options of {@linkcode execOutput}. */
export interface ExecOutputOptions extends Omit<ExecOptions, "stdin" | "stdout" | "stderr"> {
  /** Text or bytes written to the command's stdin, then closed. */
  stdin?: string | Uint8Array;
}

/** What {@linkcode execOutput} collected. */
export interface ExecOutput {
  /** The command's stdout (with `tty`, stdout and stderr together). */
  stdout: string;
  /** The command's stderr (empty with `tty`). */
  stderr: string;
  /** The exit code. */
  exitCode: number;
}

/**
 * Runs a command and collects its output and exit code. A non-zero exit is a result, not an
 * error.
 *
 * @param client The client.
 * @param pod The pod name or object.
 * @param command The command and its arguments.
 * @param options Container, stdin text, `tty`, namespace, signal.
 * @returns stdout, stderr and the exit code.
 * @example
 * ```ts ignore
 * import { Client, execOutput } from "@denokube/kube";
 * await using client = await Client.infer();
 * const { stdout, exitCode } = await execOutput(client, "web", ["cat", "/etc/hostname"]);
 * ```
 */
export async function execOutput(
  client: Client,
  pod: PodRef,
  command: readonly string[],
  options: ExecOutputOptions = {},
): Promise<ExecOutput> {
  const { stdin, ...rest } = options;
  await using session = await exec(client, pod, command, {
    ...rest,
    stdin: stdin !== undefined,
    stdout: true,
    stderr: !options.tty,
  });
  const writing = (async () => {
    if (!session.stdin || stdin === undefined) return;
    const writer = session.stdin.getWriter();
    await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
    await writer.close();
  })().catch(async (e) => {
    // A command may exit without reading all its input (`head -n 1`): then the result decides.
    await session.result.catch(() => {
      throw e;
    });
  });
  const [stdout, stderr, result] = await Promise.all([
    collect(session.stdout),
    collect(session.stderr),
    session.result,
    writing,
  ]);
  return { stdout, stderr, exitCode: result.exitCode };
}

async function collect(stream: ReadableStream<Uint8Array> | undefined): Promise<string> {
  if (!stream) return "";
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

async function openSession(
  client: Client,
  pod: PodRef,
  subresource: "exec" | "attach",
  command: readonly string[] | undefined,
  options: AttachOptions,
): Promise<ExecSession> {
  const tty = options.tty ?? false;
  const wantStdin = options.stdin ?? false;
  const wantStdout = options.stdout ?? true;
  const wantStderr = tty ? false : options.stderr ?? true;
  if (!wantStdin && !wantStdout && !wantStderr) {
    throw new TypeError(`${subresource} needs at least one of stdin, stdout and stderr`);
  }
  const { name, namespace } = podPath(client, pod, options.namespace);
  const query: QueryParams = {
    container: options.container,
    stdin: wantStdin || undefined,
    stdout: wantStdout || undefined,
    stderr: wantStderr || undefined,
    tty: tty || undefined,
    command: command ? [...command] : undefined,
  };
  const path = `/api/v1/namespaces/${namespace}/pods/${name}/${subresource}`;
  const ws = await connect(client, path, query, EXEC_PROTOCOLS, options.signal, options.timeoutMs);
  const readable: number[] = [];
  if (wantStdout) readable.push(STDOUT);
  if (wantStderr) readable.push(STDERR);
  const what = `${subresource} in pod ${namespace}/${name}`;
  const mux = new ChannelMux(ws, { readable, collect: [ERROR], what });
  const v5 = ws.protocol === "v5.channel.k8s.io";

  const life = lifecycle<ExecResult>(ws, mux, options.signal, (failure) => {
    const text = mux.collected(ERROR);
    if (text.trim()) {
      try {
        return { value: exitResult(text, what) };
      } catch (error) {
        return { error, failStreams: false };
      }
    }
    return {
      error: new ApiError({
        status: 0,
        reason: "StreamClosed",
        message: `The connection for ${what} closed before the exit status arrived${
          failure instanceof Error ? `: ${failure.message}` : ""
        }`,
        cause: failure,
      }),
      failStreams: true,
    };
  }, () => ({
    error: new ApiError({
      status: 0,
      reason: "StreamClosed",
      message: `The ${what} session was closed before the exit status arrived`,
    }),
    failStreams: false,
  }));

  const session: ExecSession = {
    protocol: ws.protocol,
    stdin: wantStdin
      ? mux.writable(STDIN, async () => {
        if (v5) await mux.send(CLOSE, new Uint8Array([STDIN]));
      })
      : undefined,
    stdout: wantStdout ? mux.readable(STDOUT) : undefined,
    stderr: wantStderr ? mux.readable(STDERR) : undefined,
    result: life.promise,
    async resize(size: TerminalSize) {
      if (!tty) {
        throw new TypeError(`resize needs a terminal: start the ${subresource} with tty: true`);
      }
      if (!(size.width > 0 && size.height > 0)) {
        throw new RangeError(
          `A terminal size needs positive width and height, got ${JSON.stringify(size)}`,
        );
      }
      await mux.send(
        RESIZE,
        new TextEncoder().encode(JSON.stringify({ Width: size.width, Height: size.height })),
      );
    },
    close: life.close,
    async [Symbol.asyncDispose]() {
      await session.close();
    },
  };
  return session;
}

/**
 * Parses the final Status of the error channel.
 *
 * @param text The error channel's content.
 * @param what What ran, for messages.
 * @returns The exit code and status; throws an ApiError for failures other than an exit code.
 */
function exitResult(text: string, what: string): ExecResult {
  let status: Status;
  try {
    status = JSON.parse(text);
  } catch {
    // v1–v3 servers send plain text.
    throw new ApiError({
      status: 500,
      reason: "InternalError",
      message: `${what}: ${redactText(text.trim().slice(0, 1024))}`,
    });
  }
  if (status.status === "Success") return { exitCode: 0, status };
  if (status.reason === "NonZeroExitCode") {
    const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
    const exitCode = Number(cause?.message);
    if (Number.isInteger(exitCode)) return { exitCode, status };
  }
  throw ApiError.fromStatus({ ...status, message: `${what}: ${status.message ?? "failed"}` }, {
    status: status.code ?? 500,
  });
}

/** A duplex byte stream to one port of a pod. */
export interface PortForwardStream extends AsyncDisposable {
  /** The pod's port. */
  readonly port: number;
  /**
   * Bytes from the pod's port. It ends when the server closes the stream, which some kubelets
   * (KWOK's) do only once both sides are done: read what you expect (e.g. up to an HTTP
   * `Content-Length`), then {@linkcode PortForwardStream.close}.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the pod's port. Closing it does not half-close (the protocol cannot). */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Resolves when the stream ends cleanly; rejects with an {@linkcode ApiError} (reason
   * `PortForwardFailed`) carrying the error channel's message, e.g. a port nothing listens on.
   */
  readonly closed: Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** Options of {@linkcode portForward}. */
export interface PortForwardOptions {
  /** The namespace; default the Pod object's, then the config's. */
  namespace?: string;
  /** Aborts: closes the connection and errors the streams with the reason. */
  signal?: AbortSignal;
  /** How long connecting and the upgrade may take, in milliseconds. Default 30 000. */
  timeoutMs?: number;
}

/**
 * Opens a duplex byte stream to a port of a pod (one WebSocket per stream, as the protocol
 * carries one connection per port).
 *
 * @param client The client.
 * @param pod The pod name or object.
 * @param port The pod's port.
 * @param options Namespace, signal.
 * @returns The stream.
 * @example Send an HTTP request to port 8080 of a pod
 * ```ts ignore
 * import { Client, portForward } from "@denokube/kube";
 * await using client = await Client.infer();
 * await using stream = await portForward(client, "web", 8080);
 * const writer = stream.writable.getWriter();
 * await writer.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
 * for await (const chunk of stream.readable) console.log(new TextDecoder().decode(chunk));
 * ```
 */
export async function portForward(
  client: Client,
  pod: PodRef,
  port: number,
  options: PortForwardOptions = {},
): Promise<PortForwardStream> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`A port is an integer from 1 to 65535, got ${port}`);
  }
  const { name, namespace } = podPath(client, pod, options.namespace);
  const path = `/api/v1/namespaces/${namespace}/pods/${name}/portforward`;
  const ws = await connect(
    client,
    path,
    { ports: String(port) },
    PORT_FORWARD_PROTOCOLS,
    options.signal,
    options.timeoutMs,
  );
  const what = `port-forward to ${namespace}/${name}:${port}`;
  const mux = new ChannelMux(ws, { readable: [0], collect: [1], portPrefixed: true, what });
  const life = lifecycle<void>(ws, mux, options.signal, (failure) => {
    const text = mux.collected(1).trim();
    if (!text && !failure) return { value: undefined };
    return {
      error: new ApiError({
        status: 0,
        reason: text ? "PortForwardFailed" : "StreamClosed",
        message: text
          ? `${what} failed: ${text}`
          : `The connection for ${what} failed: ${(failure as Error)?.message ?? failure}`,
        cause: failure,
      }),
      failStreams: true,
    };
  }, () => ({ value: undefined }));
  const stream: PortForwardStream = {
    port,
    readable: mux.readable(0),
    writable: mux.writable(0),
    closed: life.promise,
    close: life.close,
    async [Symbol.asyncDispose]() {
      await stream.close();
    },
  };
  return stream;
}

/** Options of {@linkcode forwardPort}. */
export interface ForwardPortOptions extends PortForwardOptions {
  /** The pod's port. */
  port: number;
  /** The local port. Default 0: the system chooses one (see {@linkcode PortForwarder.localPort}). */
  localPort?: number;
  /** The local address to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /**
   * Called when forwarding a connection fails: the upgrade was refused (an {@linkcode ApiError}
   * such as a 403), or the error channel reported a failure (reason `PortForwardFailed`, e.g.
   * nothing listens on the pod's port). The connection is closed either way. Default: a warning
   * under `kube.exec`.
   */
  onError?: (error: unknown) => void;
}

/** A local listener forwarding each connection to a pod's port. */
export interface PortForwarder extends AsyncDisposable {
  /** The local address. */
  readonly hostname: string;
  /** The local port. */
  readonly localPort: number;
  /** Resolves once the listener stopped and every forwarded connection ended. */
  readonly finished: Promise<void>;
  /** Stops listening and closes the forwarded connections. */
  close(): Promise<void>;
}

/**
 * Listens on a local port and forwards every connection to a port of a pod, like
 * `kubectl port-forward pod/web 8080:80`. A connection whose forwarding fails is closed and the
 * error (e.g. nothing listening on the pod's port) goes to `onError` (default: logged under
 * `kube.exec`).
 *
 * @param client The client.
 * @param pod The pod name or object.
 * @param options The pod's `port`, `localPort`, `hostname`, namespace, signal.
 * @returns The forwarder, once it listens (on every runtime: Node and Bun learn a listener's
 *   port only asynchronously). Rejects when the local address is in use (an `Error` naming it),
 *   on bad ports or pod names, and, on Deno, without the `--allow-net` for the local address.
 * @example
 * ```ts ignore
 * import { Client, forwardPort } from "@denokube/kube";
 * await using client = await Client.infer();
 * await using forwarder = await forwardPort(client, "web", { port: 80, localPort: 8080 });
 * console.log(await (await fetch(`http://127.0.0.1:${forwarder.localPort}/`)).text());
 * ```
 */
export async function forwardPort(
  client: Client,
  pod: PodRef,
  options: ForwardPortOptions,
): Promise<PortForwarder> {
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new RangeError(`A port is an integer from 1 to 65535, got ${options.port}`);
  }
  const localPort = options.localPort ?? 0;
  if (!Number.isInteger(localPort) || localPort < 0 || localPort > 65535) {
    throw new RangeError(`A local port is an integer from 0 to 65535, got ${localPort}`);
  }
  podPath(client, pod, options.namespace);
  options.signal?.throwIfAborted();
  const listener = await listenSocket(options.hostname ?? "127.0.0.1", localPort);
  if (options.signal?.aborted) {
    listener.close();
    throw options.signal.reason;
  }
  const active = new Set<{ local: ByteStream; remote?: PortForwardStream }>();
  const stopping = new AbortController();
  const onAbort = () => stopping.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const tasks = new Set<Promise<void>>();
  const serve = async (local: ByteStream) => {
    const entry: { local: ByteStream; remote?: PortForwardStream } = { local };
    active.add(entry);
    try {
      const remote = await portForward(client, pod, options.port, {
        namespace: options.namespace,
        signal: stopping.signal,
        timeoutMs: options.timeoutMs,
      });
      entry.remote = remote;
      // The protocol cannot half-close: when the local side finishes, the whole stream closes
      // (a pod-side close is not signalled by every kubelet, so waiting for it could hang).
      await Promise.all([
        local.readable.pipeTo(remote.writable, { preventClose: true }).catch(() => {})
          .finally(() => remote.close()),
        remote.readable.pipeTo(local.writable).catch(() => {}),
      ]);
      await remote.closed;
    } catch (e) {
      if (!stopping.signal.aborted) {
        if (options.onError) options.onError(e);
        else {
          log.warn("Forwarding a connection to port {port} failed: {error}", {
            port: options.port,
            error: e instanceof Error ? e.message : String(e),
          });
        }
      }
    } finally {
      active.delete(entry);
      await entry.remote?.close();
      local.close();
    }
  };
  const accepting = (async () => {
    for await (const local of listener) {
      if (stopping.signal.aborted) {
        local.close();
        break;
      }
      const task = serve(local);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();
  const finished = (async () => {
    await accepting.catch(() => {});
    await Promise.all([...tasks]);
  })();
  stopping.signal.addEventListener("abort", () => {
    listener.close();
    for (const entry of active) {
      entry.local.close();
      entry.remote?.close();
    }
  }, { once: true });
  const forwarder: PortForwarder = {
    hostname: listener.hostname,
    localPort: listener.port,
    finished,
    async close() {
      options.signal?.removeEventListener("abort", onAbort);
      if (!stopping.signal.aborted) stopping.abort(new Error("The port forwarder was closed"));
      await finished;
    },
    async [Symbol.asyncDispose]() {
      await forwarder.close();
    },
  };
  return forwarder;
}

/** How a session ends: a value, or an error (also put on the output streams when `failStreams`). */
type Outcome<T> = { value: T } | { error: unknown; failStreams: boolean };

/**
 * The one lifecycle of a streaming session: it settles once — when the signal aborts (the
 * reason), when the connection ends (`finish`), or on `close()` (`closing`) — ends the output
 * streams accordingly, and always closes the WebSocket and removes the abort listener.
 */
function lifecycle<T>(
  ws: WebSocketConnection,
  mux: ChannelMux,
  signal: AbortSignal | undefined,
  finish: (failure: unknown) => Outcome<T>,
  closing: () => Outcome<T>,
): { promise: Promise<T>; close(): Promise<void> } {
  // Not Promise.withResolvers: Node 20 does not have it.
  const deferred = {} as { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void };
  deferred.promise = new Promise<T>((resolve, reject) => {
    deferred.resolve = resolve;
    deferred.reject = reject;
  });
  deferred.promise.catch(() => {});
  let settled = false;
  const settle = (outcome: Outcome<T>, streamError?: unknown) => {
    if (settled) return;
    settled = true;
    mux.end(streamError);
    if ("error" in outcome) deferred.reject(outcome.error);
    else deferred.resolve(outcome.value);
  };
  const onAbort = () => {
    settle({ error: signal!.reason, failStreams: true }, signal!.reason);
    ws.close().catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  (async () => {
    let failure: unknown;
    try {
      await mux.done;
    } catch (e) {
      failure = e;
    }
    signal?.removeEventListener("abort", onAbort);
    await ws.close();
    if (settled) return;
    const outcome = finish(failure);
    settle(outcome, "error" in outcome && outcome.failStreams ? outcome.error : undefined);
  })();
  return {
    promise: deferred.promise,
    async close() {
      settle(closing());
      signal?.removeEventListener("abort", onAbort);
      await ws.close();
    },
  };
}

function podPath(
  client: Client,
  pod: PodRef,
  namespace?: string,
): { name: string; namespace: string } {
  const name = typeof pod === "string" ? pod : pod?.metadata?.name;
  if (!name) throw new TypeError("The pod has no metadata.name");
  const ns = namespace ?? (typeof pod === "string" ? undefined : pod.metadata?.namespace) ??
    client.namespace;
  assertNamespace(ns);
  assertName(name, "Pod");
  return { name, namespace: ns };
}

/**
 * Opens an authenticated WebSocket to the API server: the client's credentials and headers, its
 * CA, client certificate and proxy; a refused upgrade becomes the {@linkcode ApiError} a request
 * would give; after a 401 the credentials are refreshed once, as for requests.
 */
async function connect(
  client: Client,
  path: string,
  query: QueryParams,
  protocols: readonly string[],
  signal: AbortSignal | undefined,
  timeoutMs = 30_000,
): Promise<WebSocketConnection> {
  const transport = transportOf(client);
  if (!transport || transport.usesCustomFetch) {
    throw new TypeError(
      "exec, attach and port-forward open their own connection and cannot run over a custom " +
        "fetch (a stub or FakeApiServer): use a Client made from a Config",
    );
  }
  const url = client.url(path, query);
  const method = "GET";
  const config = client.config;
  const secure = url.protocol === "https:";
  let refreshed = false;
  for (;;) {
    signal?.throwIfAborted();
    const { credentials, headers } = await transport.upgradeHeaders(method, url, signal);
    // The kubelet's port-forward route refuses `Accept: application/json` with a 406.
    headers.set("Accept", "*/*");
    const cert = credentials.clientCertificate;
    // Connecting and the upgrade share one deadline (on the client's clock), so a server that
    // accepts TCP and never answers cannot hang the caller.
    const deadline = new AbortController();
    const stopTimer = new AbortController();
    transport.clock.sleep(timeoutMs, stopTimer.signal).then(() =>
      deadline.abort(
        new ApiError({
          status: 0,
          reason: "Timeout",
          message:
            `The API server did not complete the WebSocket upgrade of ${method} ${url.href} ` +
            `within ${timeoutMs} ms`,
          method,
          url: url.href,
        }),
      ), () => {});
    const attempt = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    let answer: WebSocketConnection | RefusedUpgrade;
    try {
      let socket: ByteStream;
      try {
        const opening = openSocket({
          hostname: url.hostname.replace(/^\[|\]$/g, ""),
          port: Number(url.port || (secure ? 443 : 80)),
          tls: secure
            ? {
              caCerts: config.cluster.certificateAuthority
                ? [config.cluster.certificateAuthority]
                : undefined,
              cert: cert?.cert,
              key: cert?.key,
              // As on fetch; _client/socket.ts applies them where the runtime can (Node, Bun).
              insecureSkipTlsVerify: config.cluster.insecureSkipTlsVerify,
              serverName: config.cluster.tlsServerName,
            }
            : undefined,
          proxyUrl: config.cluster.proxyUrl,
          signal: attempt,
        });
        socket = await abortable(opening, attempt, (late) => late.close());
      } catch (cause) {
        throw transport.networkError(cause, method, url, attempt);
      }
      // A server that never answers the upgrade must not outlive the signal or the deadline.
      const onAbort = () => socket.close();
      attempt.addEventListener("abort", onAbort, { once: true });
      try {
        answer = await upgradeWebSocket(socket, {
          path: url.pathname + url.search,
          host: url.host,
          headers,
          protocols: [...protocols],
        });
      } catch (cause) {
        socket.close();
        throw transport.networkError(cause, method, url, attempt);
      } finally {
        attempt.removeEventListener("abort", onAbort);
      }
      if (attempt.aborted) {
        if ("messages" in answer) await answer.close();
        throw attempt.reason;
      }
    } finally {
      stopTimer.abort();
    }
    if ("messages" in answer) {
      log.debug("{url} upgraded to {protocol}", { url: url.href, protocol: answer.protocol });
      return answer;
    }
    if (answer.status === 401 && !refreshed && config.invalidateCredentials(credentials)) {
      refreshed = true;
      log.info("401 Unauthorized from {url}: refreshing credentials and retrying once", {
        url: url.href,
      });
      continue;
    }
    throw await refusal(answer, method, url, secretsOf(credentials));
  }
}

/** Waits for `promise` unless `signal` aborts first; a value arriving after that goes to `late`. */
function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  late: (value: T) => void,
): Promise<T> {
  if (signal.aborted) {
    promise.then(late, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.then(late, () => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

async function refusal(
  answer: RefusedUpgrade,
  method: string,
  url: URL,
  known: readonly string[],
): Promise<ApiError> {
  if (answer.status < 300) {
    return new ApiError({
      status: answer.status,
      reason: "UpgradeRefused",
      message:
        `The API server answered ${answer.status} instead of switching to WebSocket (${method} ${url.href}): ${
          redactText(answer.body.trim().slice(0, 200), known)
        }`,
      method,
      url: url.href,
    });
  }
  const response = new Response(answer.body, {
    status: answer.status,
    statusText: answer.statusText,
    headers: answer.headers,
  });
  return await errorFromResponse(response, method, url.href, known);
}
