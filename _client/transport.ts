// Internal: the transport of the client — everything between a request description and a 2xx
// `Response`: the URL, the headers (credentials, impersonation, user agent), the HTTP-client pool
// (TLS trust, client certificates, proxy), the request loop (retries from the status table with
// backoff and `Retry-After`, one credential refresh after 401) and the mapping of failures to
// `ApiError`s with messages a user can act on. The verbs (`client.ts`), the list helpers
// (`_client/list.ts`) and the watch (`watch.ts`) depend only on the small `Transport` interface, never
// on each other or on the concrete class. The runtime (Deno, Node or Bun: `_platform/`) plugs in
// as an `HttpConnector`.

import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "../clock.ts";
import type { Config, Credentials } from "../config.ts";
import { ApiError, type Status } from "../errors.ts";
import { Backoff, MAX_RETRY_AFTER_MS, parseRetryAfter } from "./retry.ts";
import { clientRetries, reasonForCode } from "./status_table.ts";
import { flagFor, isPermissionError, permissionDenied } from "./permissions.ts";
import { runtime } from "../_platform/mod.ts";
import { redactError, redactText } from "./redact.ts";
import {
  type Context,
  context,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import {
  decodeProtobufBody,
  type DecodeStats,
  isProtobuf,
  type WireFormat,
} from "./protobuf/negotiate.ts";

export type { WireFormat } from "./protobuf/negotiate.ts";

const log = getLogger(["kube", "client"]);

/** The library version, sent in the default `User-Agent`. */
export const VERSION = "0.1.0";

/** A `fetch`-compatible function. Tests pass a stub; the default is the global `fetch`. */
export type FetchLike = (input: Request | URL | string, init?: RequestInit) => Promise<Response>;

/** Query parameters: `undefined` values are left out, arrays repeat the key. */
export type QueryParams = Record<
  string,
  string | number | boolean | undefined | null | readonly string[]
>;

/** A request made through {@linkcode Transport.request}. */
export interface RequestOptions {
  /** HTTP method. Default `GET`. */
  method?: string;
  /** Path below the server URL, starting with `/`, e.g. `/api/v1/namespaces`. */
  path: string;
  /** Query parameters. */
  query?: QueryParams;
  /** A JSON-serialisable body (sent as `contentType`, default `application/json`), or raw text. */
  body?: unknown;
  /** Content type of the body. Default `application/json`. */
  contentType?: string;
  /** The `Accept` header. Default `application/json`. */
  accept?: string;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Aborts the request (and the response body stream). */
  signal?: AbortSignal;
  /** Whether retryable answers (429, 503, 504) are retried. Default true. */
  retry?: boolean;
}

/**
 * What watches, lists and caches need of a connection to the API server: one method that sends a
 * request and resolves with the successful (2xx) response, or rejects with an
 * {@linkcode ApiError} (status 0 when no response arrived). `Client` implements it.
 */
export interface Transport {
  /**
   * Sends a request; resolves with the 2xx response (the caller consumes or cancels its body).
   *
   * @param options The request.
   * @returns The successful response.
   */
  request(options: RequestOptions): Promise<Response>;
  /**
   * The wire format reads of built-in kinds ask for (lists, gets, watches): `protobuf` sends
   * `Accept: application/vnd.kubernetes.protobuf, application/json` for kinds with a protobuf
   * encoding. Undefined means JSON.
   */
  readonly wireFormat?: WireFormat;
}

/**
 * How to reach the server: what an {@linkcode HttpConnector} needs to open a connection pool.
 * (The same shape as the runtime layer's transport options, so a runtime's `connect` plugs in.)
 */
export interface ConnectionOptions {
  /** PEM bundle of certificate authorities to trust, in addition to the system roots. */
  certificateAuthority?: string;
  /** A client certificate and key in PEM, for mutual TLS. */
  clientCertificate?: { cert: string; key: string };
  /** An `http://`, `https://` or `socks5://` proxy (with optional user info). */
  proxyUrl?: string;
  /** Skip verifying the server's certificate (Node and Bun; Deno cannot per client). */
  insecureSkipTlsVerify?: boolean;
  /** Verify the server's certificate against this name (Node and Bun 1.4+; Deno cannot). */
  tlsServerName?: string;
}

/** One reusable connection pool: a `fetch` bound to TLS settings. */
export interface HttpConnection {
  /** Sends a request through this connection. */
  fetch(url: URL, init: RequestInit): Promise<Response>;
  /** Closes the pool. */
  close(): void;
}

/** The runtime seam: opens connections with custom TLS trust, client certificates or a proxy. */
export interface HttpConnector {
  /**
   * Opens a connection pool.
   *
   * @param options TLS and proxy settings.
   * @returns The connection.
   */
  open(options: ConnectionOptions): HttpConnection;
}

/**
 * The connector of the runtime the library runs on (`_platform/`): `Deno.createHttpClient` on Deno,
 * an undici 7 Agent on Node, Bun's `fetch` with its `tls` and `proxy` options on Bun.
 */
export const runtimeConnector: HttpConnector = {
  open: (options: ConnectionOptions): HttpConnection => runtime().connect(options),
};

/** Settings of {@linkcode HttpTransport}. */
export interface HttpTransportOptions {
  /** A `fetch` to use for every request instead of the connector's (stubs, the fake server). */
  fetch?: FetchLike;
  /** The runtime's connector. Default {@linkcode runtimeConnector}. */
  connector?: HttpConnector;
  /** The `User-Agent` header. */
  userAgent?: string;
  /** How many times a retryable answer is retried. Default 4. */
  maxRetries?: number;
  /** First retry delay in milliseconds. Default 200. */
  retryBaseMs?: number;
  /** Largest retry delay in milliseconds. Default 10 000. */
  retryMaxMs?: number;
  /** The clock the retries wait on. Default the system clock. */
  clock?: Clock;
}

const transports = new WeakMap<object, HttpTransport>();

/**
 * Records the transport of a public object (a Client), for the modules that need more of it than
 * `request` (exec.ts upgrades its own connections).
 *
 * @param owner The object.
 * @param transport Its transport.
 */
export function registerTransport(owner: object, transport: HttpTransport): void {
  transports.set(owner, transport);
}

/**
 * The transport recorded for `owner`.
 *
 * @param owner A Client.
 * @returns Its transport, if it has one.
 */
export function transportOf(owner: object): HttpTransport | undefined {
  return transports.get(owner);
}

/** The transport of a {@linkcode Config}: see the module comment. */
export class HttpTransport implements Transport {
  readonly config: Config;
  #fetch: FetchLike | undefined;
  #connector: HttpConnector;
  #userAgent: string;
  #maxRetries: number;
  #retryBaseMs: number;
  #retryMaxMs: number;
  #clock: Clock;
  #connections = new Map<string, HttpConnection>();
  #closed = false;

  constructor(config: Config, options: HttpTransportOptions = {}) {
    this.config = config;
    this.#fetch = options.fetch;
    this.#connector = options.connector ?? runtimeConnector;
    this.#userAgent = options.userAgent ?? defaultUserAgent();
    this.#maxRetries = options.maxRetries ?? 4;
    this.#retryBaseMs = options.retryBaseMs ?? 200;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Sends a request and returns the response when it succeeded (2xx); see `Client.request`.
   *
   * @param options The request.
   * @returns The successful response.
   */
  async request(options: RequestOptions): Promise<Response> {
    if (this.#closed) throw new TypeError("This Client is closed: create a new one");
    const method = (options.method ?? "GET").toUpperCase();
    const url = this.url(options.path, options.query);
    const span = startRequestSpan(VERSION, method, url);
    const traceparent = traceparentOf(span);
    if (traceparent !== undefined && options.headers?.traceparent === undefined) {
      options = { ...options, headers: { ...options.headers, traceparent } };
    }
    let status = 0;
    let resends = 0;
    try {
      const response = await this.#request(method, url, options, (s, n) => {
        status = s;
        resends = n;
      });
      endRequestSpan(span, status, undefined, resends);
      return response;
    } catch (error) {
      const reason = error instanceof ApiError ? error.reason || "Error" : "Error";
      endRequestSpan(span, error instanceof ApiError ? error.status : status, reason, resends);
      throw error;
    }
  }

  /** The request loop (see {@linkcode HttpTransport.prototype.request}). */
  async #request(
    method: string,
    url: URL,
    options: RequestOptions,
    report: (status: number, resends: number) => void,
  ): Promise<Response> {
    const backoff = new Backoff({
      initialMs: this.#retryBaseMs,
      maxMs: this.#retryMaxMs,
      resetAfterMs: Infinity,
    });
    let refreshed = false;
    for (let attempt = 0;; attempt++) {
      const started = performance.now();
      const credentials = await this.#credentials(method, url, options.signal);
      const response = await this.#send(method, url, options, credentials);
      report(response.status, attempt);
      const ms = Math.round(performance.now() - started);
      const header = response.headers.get("Warning");
      if (header) {
        const warning = redactText(header.slice(0, 4096), secretsOf(credentials));
        log.warn("API server warning: {warning}", { warning, url: url.href });
      }
      if (response.ok) {
        log.debug("{method} {url} → {status} in {ms} ms", {
          method,
          url: url.href,
          status: response.status,
          ms,
        });
        return response;
      }
      const error = isRedirect(response.status)
        ? redirectError(response, method, url)
        : await errorFromResponse(response, method, url.href, secretsOf(credentials));
      log.debug("{method} {url} → {status} {reason} in {ms} ms", {
        method,
        url: url.href,
        status: response.status,
        reason: error.reason,
        ms,
      });
      if (
        response.status === 401 && !refreshed && this.config.invalidateCredentials(credentials)
      ) {
        refreshed = true;
        log.info("401 Unauthorized from {url}: refreshing credentials and retrying once", {
          url: url.href,
        });
        continue;
      }
      if (
        options.retry !== false && attempt < this.#maxRetries &&
        clientRetries(response.status, method)
      ) {
        const delay = error.retryAfterSeconds !== undefined
          ? Math.min(error.retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS)
          : backoff.next();
        log.warn("{method} {url} → {status}; retrying in {delay} ms (attempt {attempt})", {
          method,
          url: url.href,
          status: response.status,
          delay: Math.round(delay),
          attempt: attempt + 1,
        });
        await this.#clock.sleep(delay, options.signal);
        continue;
      }
      throw error;
    }
  }

  /**
   * Builds the full URL for a path and query.
   *
   * @param path Path below the server URL.
   * @param query Query parameters.
   * @returns The URL.
   */
  url(path: string, query?: QueryParams): URL {
    const url = new URL(this.config.server.replace(/\/+$/, "") + path);
    if (query) {
      for (const [key, value] of Object.entries(query)) {
        if (value === undefined || value === null) continue;
        if (Array.isArray(value)) {
          for (const item of value) url.searchParams.append(key, item);
        } else {
          url.searchParams.set(key, String(value));
        }
      }
    }
    return url;
  }

  /** The clock request retries (and exec's upgrade deadline) wait on. */
  get clock(): Clock {
    return this.#clock;
  }

  /** Whether requests go through a custom `fetch` (a stub, FakeApiServer): no sockets then. */
  get usesCustomFetch(): boolean {
    return this.#fetch !== undefined;
  }

  /**
   * What a connection upgrade (exec, attach, port-forward in exec.ts) sends: the credentials and
   * headers (Authorization, User-Agent, impersonation) of a request to `url`, with a request's
   * error wrapping. The upgrade opens its own socket, so it cannot use the pooled connections.
   *
   * @param method The method of the upgrade request (GET).
   * @param url The URL.
   * @param signal Aborts waiting for an exec plugin.
   * @returns The credentials (for their client certificate and a 401 refresh) and the headers.
   */
  async upgradeHeaders(
    method: string,
    url: URL,
    signal?: AbortSignal,
  ): Promise<{ credentials: Credentials; headers: Headers }> {
    if (this.#closed) throw new TypeError("This Client is closed: create a new one");
    const credentials = await this.#credentials(method, url, signal);
    return { credentials, headers: this.#headers(credentials, { path: url.pathname }) };
  }

  /**
   * The error a request would throw when connecting failed (a missing `--allow-net`, TLS, refused).
   *
   * @param cause The failure.
   * @param method The method.
   * @param url The URL.
   * @param signal The request's signal (its reason wins when aborted).
   * @returns The error to throw.
   */
  networkError(cause: unknown, method: string, url: URL, signal?: AbortSignal): unknown {
    return this.#networkError(cause, method, url, signal);
  }

  /** Closes the HTTP connections. Requests made afterwards fail. */
  close(): void {
    this.#closed = true;
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }

  /**
   * Gets the credentials for a request. A failure to get them (an exec plugin that failed, a token
   * file that cannot be read) is an ApiError with status 0, which watch loops retry with backoff
   * as client-go does; a missing permission or an aborted signal is passed on as it is.
   */
  async #credentials(method: string, url: URL, signal?: AbortSignal): Promise<Credentials> {
    try {
      return await this.config.credentials({ signal });
    } catch (cause) {
      if (signal?.aborted || isPermissionError(cause)) throw cause;
      const text = cause instanceof Error ? cause.message : String(cause);
      throw new ApiError({
        status: 0,
        reason: "CredentialsUnavailable",
        message: `No credentials for ${method} ${url.href}: ${text}`,
        method,
        url: url.href,
        cause,
      });
    }
  }

  async #send(
    method: string,
    url: URL,
    options: RequestOptions,
    credentials: Credentials,
  ): Promise<Response> {
    const headers = this.#headers(credentials, options);
    let body: BodyInit | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" || options.body instanceof Uint8Array
        ? options.body as BodyInit
        : JSON.stringify(options.body);
      headers.set("Content-Type", options.contentType ?? "application/json");
    }
    // Redirects are never followed: the API server does not redirect API requests, and a
    // followed redirect would send the impersonation headers (and, on some runtimes, more) to
    // whatever origin the answer names, and return that origin's body as the server's answer.
    const init: RequestInit = { method, headers, body, signal: options.signal, redirect: "manual" };
    try {
      if (this.#fetch) return await this.#fetch(url, init);
      return await this.#connection(credentials).fetch(url, init);
    } catch (cause) {
      throw this.#networkError(cause, method, url, options.signal, secretsOf(credentials));
    }
  }

  #headers(credentials: Credentials, options: RequestOptions): Headers {
    const headers = new Headers(options.headers);
    if (!headers.has("Accept")) headers.set("Accept", options.accept ?? "application/json");
    headers.set("User-Agent", this.#userAgent);
    if (this.config.cluster.disableCompression) headers.set("Accept-Encoding", "identity");
    if (credentials.token) {
      headers.set("Authorization", `Bearer ${credentials.token}`);
    } else if (credentials.basic) {
      const raw = `${credentials.basic.username}:${credentials.basic.password}`;
      headers.set("Authorization", `Basic ${base64(raw)}`);
    }
    const as = this.config.impersonate;
    if (as) {
      if (as.user) headers.set("Impersonate-User", as.user);
      if (as.uid) headers.set("Impersonate-Uid", as.uid);
      for (const group of as.groups ?? []) headers.append("Impersonate-Group", group);
      for (const [key, values] of Object.entries(as.extra ?? {})) {
        for (const value of values) {
          headers.append(`Impersonate-Extra-${encodeURIComponent(key)}`, value);
        }
      }
    }
    return headers;
  }

  /**
   * The pooled connection for these TLS settings. There is one even without a CA, certificate or
   * proxy: on Node it sets the timeouts a watch needs (no body timeout), on Bun it turns off the
   * idle timeout; on Deno it is the global `fetch`.
   */
  #connection(credentials: Credentials): HttpConnection {
    const cluster = this.config.cluster;
    const cert = credentials.clientCertificate;
    const options: ConnectionOptions = {};
    if (cluster.certificateAuthority) options.certificateAuthority = cluster.certificateAuthority;
    if (cert) options.clientCertificate = { cert: cert.cert, key: cert.key };
    if (cluster.proxyUrl) options.proxyUrl = cluster.proxyUrl;
    if (cluster.insecureSkipTlsVerify && runtime().supports.insecureSkipTlsVerify) {
      options.insecureSkipTlsVerify = true;
    }
    if (cluster.tlsServerName) options.tlsServerName = cluster.tlsServerName;
    const key = JSON.stringify([
      cluster.certificateAuthority,
      cert?.cert,
      cert?.key,
      options.proxyUrl,
      options.insecureSkipTlsVerify,
      options.tlsServerName,
    ]);
    let connection = this.#connections.get(key);
    if (!connection) {
      connection = this.#connector.open(options);
      this.#connections.set(key, connection);
      // Rotating exec client certificates make a new connection each time: keep the two newest
      // (streams opened with the previous certificate may still run) and close older ones.
      while (this.#connections.size > 2) {
        const [oldestKey, oldest] = this.#connections.entries().next().value!;
        this.#connections.delete(oldestKey);
        oldest.close();
      }
      log.debug("Created an HTTP client for {server}", { server: cluster.server });
    }
    return connection;
  }

  #networkError(
    cause: unknown,
    method: string,
    url: URL,
    signal?: AbortSignal,
    known: readonly string[] = [],
  ): unknown {
    if (signal?.aborted) return signal.reason;
    if (isPermissionError(cause)) {
      const host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
      return permissionDenied(
        `Cannot connect to the Kubernetes API server at ${url.origin}: missing network permission. ` +
          `Run again with ${flagFor({ kind: "net", hosts: [host] })}`,
        cause,
      );
    }
    // The runtime's message may name the proxy URL (with its password) or echo a header: the
    // message and the kept cause chain are masked.
    const text = redactText(causeChain(cause), known);
    const tls = tlsReason(text, cause);
    let hint = "";
    if (tls !== undefined) {
      const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      hint = this.config.cluster.insecureSkipTlsVerify && !runtime().supports.insecureSkipTlsVerify
        ? ` The kubeconfig sets insecure-skip-tls-verify, which Deno cannot apply per client: run with --unsafely-ignore-certificate-errors=${host}, or better, set certificate-authority-data.`
        : ` The TLS certificate of ${host} was refused (${tls}): set certificate-authority-data ` +
          `(or certificate-authority) of the cluster in the kubeconfig to the CA that signed it, ` +
          `or, for a throwaway test cluster only, ${
            runtime().supports.insecureSkipTlsVerify
              ? "set insecure-skip-tls-verify: true for the cluster"
              : `run with --unsafely-ignore-certificate-errors=${host}`
          }.`;
    }
    return new ApiError({
      status: 0,
      message:
        `Cannot reach the Kubernetes API server: ${method} ${url.href} failed: ${text}.${hint}`,
      method,
      url: url.href,
      cause: redactError(cause, known),
    });
  }
}

/**
 * The messages of an error and of its `cause` chain, outermost first, without repeats: Deno puts
 * the real reason of a failed `fetch` (`invalid peer certificate: UnknownIssuer`) in a nested
 * `cause` under a generic `fetch failed`.
 *
 * @param error The error.
 * @returns The messages joined with `: `.
 */
export function causeChain(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    if (seen.has(e)) break;
    seen.add(e);
    const text = e instanceof Error ? e.message : String(e);
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ") || String(error);
}

/** The TLS reason in a failure text (e.g. `UnknownIssuer`), or undefined when it is not TLS. */
function tlsReason(text: string, cause?: unknown): string | undefined {
  // e.g. `invalid peer certificate: UnknownIssuer`, or `…: Other(OtherError(CaUsedAsEndEntity))`
  const peer = /invalid peer certificate:\s*([^\s:]+)/i.exec(text);
  if (peer) return /([A-Za-z]+)\)*\.?$/.exec(peer[1])?.[1] ?? peer[1];
  // A handshake cut short (`tls handshake eof`, a reset) says nothing about trust: the server or
  // something in between went away, and the retry rules apply without a certificate hint.
  if (/handshake eof|connection reset|broken pipe/i.test(text)) return undefined;
  // Node and Bun: an OpenSSL code on the error or a cause, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE.
  for (let e = cause, depth = 0; e !== null && typeof e === "object" && depth < 10; depth++) {
    const code = (e as { code?: unknown }).code;
    if (
      typeof code === "string" && /CERT|SIGNATURE|SELF_SIGNED|ALTNAME|ISSUER|TLS|SSL/.test(code)
    ) {
      return code;
    }
    e = (e as { cause?: unknown }).cause;
  }
  if (/certificate|UnknownIssuer|BadSignature|NotValidForName|Expired/i.test(text)) {
    return "TLS handshake failed";
  }
  return undefined;
}

/** The largest error body read (a `Status` is a few hundred bytes; a proxy's page a few KiB). */
export const MAX_ERROR_BODY_BYTES = 1024 * 1024;

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

/**
 * The error of a 3xx answer (never followed): names the status and the origin the server pointed
 * to, and cancels the body.
 */
function redirectError(response: Response, method: string, url: URL): ApiError {
  response.body?.cancel().catch(() => {});
  const location = response.headers.get("location");
  let where = "without a Location";
  if (location !== null) {
    try {
      const target = new URL(location, url);
      where = target.origin === url.origin
        ? `to ${target.pathname} on the same server`
        : `to another origin, ${target.origin}`;
    } catch {
      where = "to an invalid Location";
    }
  }
  return new ApiError({
    status: response.status,
    reason: "Redirect",
    message: `${response.status} redirect ${where} (${method} ${url.href}): the client does not ` +
      "follow redirects (the API server never redirects API requests); check the cluster's " +
      "server URL in the kubeconfig, or a proxy or load balancer in front of the API server",
    method,
    url: url.href,
  });
}

/**
 * Reads at most `max` bytes of a body and cancels the rest.
 *
 * @param response The response.
 * @param max The most bytes kept.
 * @returns The bytes (the first `max` of a longer body).
 */
export async function readBounded(
  response: Response,
  max: number,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < max) {
      const { done, value } = await reader.read();
      if (done) break;
      const keep = value.length > max - length ? value.subarray(0, max - length) : value;
      chunks.push(keep);
      length += keep.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Builds an {@linkcode ApiError} from an error response: a `Status` body, or any other (plain
 * text) body. Consumes at most {@linkcode MAX_ERROR_BODY_BYTES} of the body.
 *
 * @param response The failed response.
 * @param method The request method.
 * @param url The request URL.
 * @param known Secrets of the request (its token, its basic password) to mask if the server's
 *   text echoes them; credential-shaped text is masked anyway (`_client/redact.ts`).
 * @returns The error.
 */
export async function errorFromResponse(
  response: Response,
  method: string,
  url: string,
  known: readonly string[] = [],
): Promise<ApiError> {
  const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
  let bytes = new Uint8Array(0);
  try {
    bytes = await readBounded(response, MAX_ERROR_BODY_BYTES);
  } catch {
    // The body could not be read; the status line still tells what happened.
  }
  let status: Status | undefined;
  let text = "";
  try {
    // A protobuf request gets its error as a protobuf Status.
    const parsed = isProtobuf(response.headers.get("content-type"))
      ? decodeProtobufBody(bytes) as Status
      : JSON.parse(text = new TextDecoder().decode(bytes));
    if (parsed && typeof parsed === "object" && parsed.kind === "Status") status = parsed;
  } catch {
    // Not JSON: a proxy or a plain-text 429.
  }
  if (status) {
    // The server's text is quoted: a proxy or a hostile server may echo the credentials back.
    if (typeof status.message === "string") {
      status = { ...status, message: redactText(status.message, known) };
    }
    return ApiError.fromStatus(status, { status: response.status, method, url, retryAfterSeconds });
  }
  const snippet = redactText(text.trim().slice(0, 200), known);
  const reason = reasonForCode(response.status) ?? "";
  return new ApiError({
    status: response.status,
    reason,
    message: `${response.status} ${response.statusText || reason}${
      snippet ? `: ${snippet}` : ""
    } (${method} ${url})`,
    method,
    url,
    retryAfterSeconds,
  });
}

/**
 * Sends a read of a built-in kind, asking for protobuf when the transport's wire format says so
 * (and the kind has a protobuf encoding), and decodes the body by the Content-Type the server
 * chose: protobuf into the same plain object as JSON, anything else as JSON.
 *
 * @param transport The transport.
 * @param options The request (its `accept` is replaced when protobuf is asked for).
 * @param accept The Accept header to send, or undefined for JSON.
 * @param lossless When the protobuf had fields the tables do not know, read it again as JSON.
 * @returns The decoded body.
 */
export async function requestObject<T>(
  transport: Transport,
  options: RequestOptions,
  accept: string | undefined,
  lossless = false,
): Promise<T> {
  if (accept === undefined) return await requestJson<T>(transport, options);
  const response = await transport.request({ ...options, accept });
  const stats = { unknownFields: 0 };
  const object = await readObject<T>(response, options.method ?? "GET", options.path, stats);
  if (lossless && stats.unknownFields > 0) {
    // A newer server's fields that the protobuf tables do not know: read the object again as
    // JSON, so that a read-modify-write (get → change → replace) keeps them.
    log.debug("{path} has {count} fields unknown to the protobuf tables; reading it as JSON", {
      path: options.path,
      count: stats.unknownFields,
    });
    return await requestJson<T>(transport, options);
  }
  return object;
}

/**
 * Reads a response body by its Content-Type: Kubernetes protobuf into the plain object its JSON
 * would parse to, anything else as JSON.
 *
 * @param response The response.
 * @param method The request method, for messages.
 * @param path The request path, for messages.
 * @param stats Receives the count of fields skipped because the protobuf tables do not know them.
 * @returns The decoded body.
 */
export async function readObject<T>(
  response: Response,
  method: string,
  path: string,
  stats?: DecodeStats,
): Promise<T> {
  if (!isProtobuf(response.headers.get("content-type"))) {
    return await readJson<T>(response, method, path);
  }
  const bytes = await readBody(response, method, path, (r) => r.arrayBuffer());
  try {
    return decodeProtobufBody(new Uint8Array(bytes), stats) as T;
  } catch (cause) {
    // The decoder's messages name fields and offsets, never the bytes.
    throw malformedBody(
      response,
      method,
      path,
      `a protobuf body this client cannot decode (${bytes.byteLength} bytes): ${
        (cause as Error).message
      }`,
    );
  }
}

/** Reads a body; a connection that breaks in the middle is a transient ApiError (status 0). */
async function readBody<B>(
  response: Response,
  method: string,
  path: string,
  read: (response: Response) => Promise<B>,
): Promise<B> {
  try {
    return await read(response);
  } catch (cause) {
    throw new ApiError({
      status: 0,
      message: `The answer to ${method} ${path} broke off (${response.status}): ${
        redactText(causeChain(cause))
      }`,
      method,
      url: response.url || path,
      cause,
    });
  }
}

/**
 * The error of a body that cannot be decoded: status 0 (transient, like a malformed watch line:
 * a proxy's page or a cut answer, worth a retry), reason `MalformedResponse`, the HTTP status, and
 * the body's length and first 16 characters only (it may be a Secret's data).
 */
function malformedBody(response: Response, method: string, path: string, what: string): ApiError {
  return new ApiError({
    status: 0,
    reason: "MalformedResponse",
    message: `The API server answered ${method} ${path} (${response.status}, ${
      response.headers.get("content-type") ?? "no Content-Type"
    }) with ${what}`,
    method,
    url: response.url || path,
  });
}

/**
 * Sends a request and parses the JSON response.
 *
 * @param transport The transport.
 * @param options The request.
 * @returns The parsed body.
 */
export async function requestJson<T>(transport: Transport, options: RequestOptions): Promise<T> {
  const response = await transport.request(options);
  return await readJson<T>(response, options.method ?? "GET", options.path);
}

/**
 * Reads a JSON response body; a body that is not JSON is an {@linkcode ApiError} quoting it.
 *
 * @param response The response.
 * @param method The request method, for the message.
 * @param path The request path, for the message.
 * @returns The parsed body.
 */
export async function readJson<T>(response: Response, method: string, path: string): Promise<T> {
  const text = await readBody(response, method, path, (r) => r.text());
  try {
    return JSON.parse(text) as T;
  } catch {
    // No `cause`: V8's SyntaxError quotes the text around the failure.
    const start = JSON.stringify(redactText(text.slice(0, 16)));
    throw malformedBody(
      response,
      method,
      path,
      `a body that is not JSON (${text.length} characters starting ${start}${
        text.length > 16 ? "…" : ""
      })`,
    );
  }
}

/**
 * The secret strings of credentials (the token, the basic password and its header value), for
 * masking a server's text that echoes them.
 *
 * @param credentials The credentials of a request.
 * @returns The strings to mask.
 */
export function secretsOf(credentials: Credentials): string[] {
  const out: string[] = [];
  if (credentials.token) out.push(credentials.token);
  if (credentials.basic) {
    out.push(credentials.basic.password);
    out.push(base64(`${credentials.basic.username}:${credentials.basic.password}`));
  }
  return out;
}

function defaultUserAgent(): string {
  const rt = runtime();
  const name = rt.name === "deno" ? "Deno" : rt.name === "bun" ? "Bun" : "Node";
  return `denokube/${VERSION} (${name} ${rt.version})`;
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

// ---------------------------------------------------------------------------------------------
// OpenTelemetry spans of the requests, through `@opentelemetry/api` only. The library never
// registers a tracer provider, a context manager or a propagator. With no SDK registered (the
// global provider is the API's proxy with no delegate) no span object is made at all: a request
// pays one check (bench/tracing.ts) and sends no `traceparent`. With an SDK, every request is a CLIENT span (named by its method, with the
// HTTP semantic-convention attributes; never a header or a body), a child of the span active when
// it was made (a reconcile's requests are children of its reconcile span), and it carries the W3C
// `traceparent` header of its span, so an API server with tracing enabled joins the trace.

/** The instrumentation scope of the library's spans. */
export const TRACER_NAME = "@denokube/kube";

/** The API's no-op provider: the delegate of its proxy while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether a program registered a tracer provider (an OpenTelemetry SDK). Cheap: one global read.
 *
 * @returns False while the API would only make no-op spans.
 */
export function tracingEnabled(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider && provider.getDelegate() === NOOP_PROVIDER);
}

/**
 * The library's tracer. Not cached: `trace.disable()` and a new registration replace the
 * global provider, and a cached proxy would go on feeding the old one.
 */
export function kubeTracer(version: string): Tracer {
  return trace.getTracer(TRACER_NAME, version);
}

/** A W3C `traceparent` value of a span (`undefined` for none or an invalid, no-op one). */
export function traceparentOf(span: Span | undefined): string | undefined {
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, "0");
  return `00-${sc.traceId}-${sc.spanId}-${flags}`;
}

/**
 * Starts the CLIENT span of one request (a child of the active context's span).
 *
 * @param version The library version (the tracer's version).
 * @param method The HTTP method.
 * @param url The request URL.
 * @returns The span, or `undefined` when no SDK is registered.
 */
export function startRequestSpan(version: string, method: string, url: URL): Span | undefined {
  if (!tracingEnabled()) return undefined;
  const active: Context = context.active();
  const span = kubeTracer(version).startSpan(method, { kind: SpanKind.CLIENT }, active);
  if (span.isRecording()) {
    span.setAttributes({
      "http.request.method": method,
      "url.full": url.href,
      "server.address": url.hostname,
      "server.port": Number(url.port || (url.protocol === "https:" ? 443 : 80)),
    });
  }
  return span;
}

/**
 * Ends a request span with its answer.
 *
 * @param span The span of {@link startRequestSpan}.
 * @param status The HTTP status (0 when no response came).
 * @param errorType The error's reason (e.g. `NotFound`, `Timeout`) when it failed.
 * @param resends How many times the request was sent again (retries, a credential refresh).
 */
export function endRequestSpan(
  span: Span | undefined,
  status: number,
  errorType?: string,
  resends = 0,
): void {
  if (span === undefined) return;
  if (span.isRecording()) {
    if (status > 0) span.setAttribute("http.response.status_code", status);
    if (resends > 0) span.setAttribute("http.request.resend_count", resends);
    if (errorType !== undefined) {
      span.setAttribute("error.type", errorType);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}
