/**
 * {@linkcode Client}: an authenticated connection to one Kubernetes API server, with the
 * low-level {@linkcode Client.prototype.request} that every verb, watch and cache uses.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Backoff, parseRetryAfter, sleep } from "./_backoff.ts";
import { Config, type Credentials } from "./config.ts";
import { ApiError, type Status } from "./errors.ts";

const log = getLogger(["kube", "client"]);

/** A `fetch`-compatible function. Tests pass a stub; the default is the global `fetch`. */
export type FetchLike = (input: Request | URL | string, init?: RequestInit) => Promise<Response>;

/** Query parameters: `undefined` values are left out, arrays repeat the key. */
export type QueryParams = Record<
  string,
  string | number | boolean | undefined | null | readonly string[]
>;

/** Options of {@linkcode Client}. */
export interface ClientOptions {
  /** A `fetch` to use instead of the global one (a stub in tests, or {@linkcode FakeApiServer}). */
  fetch?: FetchLike;
  /** The `User-Agent` header. Default `denokube/<version>`. */
  userAgent?: string;
  /** How many times a request that got 429, 503 or 504 is retried. Default 4. */
  maxRetries?: number;
  /** First retry delay in milliseconds, doubling per attempt. Default 200. */
  retryBaseMs?: number;
  /** Largest retry delay in milliseconds. Default 10 000. */
  retryMaxMs?: number;
}

/** A request made through {@linkcode Client.prototype.request}. */
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

const VERSION = "0.1.0";

/**
 * A client for one Kubernetes API server.
 *
 * It owns one reusable HTTP client (TLS trust, client certificate, proxy); close it with
 * {@linkcode Client.prototype.close} or `await using`.
 *
 * @example Connect the way kubectl would
 * ```ts ignore
 * import { Client } from "@denokube/kube";
 * await using client = await Client.infer();
 * const res = await client.request({ path: "/version" });
 * console.log(await res.json());
 * ```
 */
export class Client implements AsyncDisposable {
  /** The configuration this client uses. */
  readonly config: Config;
  #fetch: FetchLike;
  #customFetch: boolean;
  #userAgent: string;
  #maxRetries: number;
  #retryBaseMs: number;
  #retryMaxMs: number;
  #httpClients = new Map<string, Deno.HttpClient>();
  #closed = false;

  /**
   * Creates a client for a configuration.
   *
   * @param config Where the cluster is and how to authenticate.
   * @param options A custom `fetch`, the user agent and retry settings.
   */
  constructor(config: Config, options: ClientOptions = {}) {
    this.config = config;
    this.#customFetch = options.fetch !== undefined;
    this.#fetch = options.fetch ?? fetch;
    this.#userAgent = options.userAgent ?? `denokube/${VERSION} (Deno ${Deno.version.deno})`;
    this.#maxRetries = options.maxRetries ?? 4;
    this.#retryBaseMs = options.retryBaseMs ?? 200;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
  }

  /**
   * Creates a client from the configuration kubectl would use: `$KUBECONFIG`, `~/.kube/config`,
   * then the in-cluster service account.
   *
   * @param options Client options.
   * @returns The client.
   */
  static async infer(options: ClientOptions = {}): Promise<Client> {
    return new Client(await Config.infer(), options);
  }

  /** The default namespace of the configuration. */
  get namespace(): string {
    return this.config.namespace;
  }

  /**
   * Sends a request to the API server and returns the response when it succeeded (2xx).
   *
   * Retries 429, 503 (and 504 for reads) with jittered backoff, honouring `Retry-After`; after a
   * 401 it refreshes the credentials once and retries. Any other failure throws an
   * {@linkcode ApiError}. The caller must consume or cancel the returned body.
   *
   * @param options The request.
   * @returns The successful response.
   */
  async request(options: RequestOptions): Promise<Response> {
    if (this.#closed) throw new TypeError("This Client is closed: create a new one");
    const method = (options.method ?? "GET").toUpperCase();
    const url = this.url(options.path, options.query);
    const backoff = new Backoff({
      initialMs: this.#retryBaseMs,
      maxMs: this.#retryMaxMs,
      resetAfterMs: Infinity,
    });
    let refreshed = false;
    for (let attempt = 0;; attempt++) {
      const started = performance.now();
      const response = await this.#send(method, url, options);
      const ms = Math.round(performance.now() - started);
      if (response.ok) {
        log.debug("{method} {url} → {status} in {ms} ms", {
          method,
          url: url.href,
          status: response.status,
          ms,
        });
        return response;
      }
      const error = await errorFromResponse(response, method, url.href);
      log.debug("{method} {url} → {status} {reason} in {ms} ms", {
        method,
        url: url.href,
        status: response.status,
        reason: error.reason,
        ms,
      });
      if (response.status === 401 && !refreshed && this.config.invalidateCredentials()) {
        refreshed = true;
        log.info("401 Unauthorized from {url}: refreshing credentials and retrying once", {
          url: url.href,
        });
        continue;
      }
      if (options.retry !== false && attempt < this.#maxRetries && retryable(response.status, method)) {
        const delay = error.retryAfterSeconds !== undefined
          ? Math.min(error.retryAfterSeconds * 1000, 60_000)
          : backoff.next();
        log.warn("{method} {url} → {status}; retrying in {delay} ms (attempt {attempt})", {
          method,
          url: url.href,
          status: response.status,
          delay,
          attempt: attempt + 1,
        });
        await sleep(delay, options.signal);
        continue;
      }
      throw error;
    }
  }

  /**
   * Sends a request and parses the JSON response.
   *
   * @param options The request.
   * @returns The parsed body.
   */
  async requestJson<T>(options: RequestOptions): Promise<T> {
    const response = await this.request(options);
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new ApiError({
        status: response.status,
        message: `The API server sent a body that is not JSON for ${
          options.method ?? "GET"
        } ${options.path}: ${JSON.stringify(text.slice(0, 200))}`,
        cause,
      });
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

  /** Closes the HTTP connections. Requests made afterwards fail. */
  close(): void {
    this.#closed = true;
    for (const client of this.#httpClients.values()) client.close();
    this.#httpClients.clear();
  }

  /** Closes the client (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #send(method: string, url: URL, options: RequestOptions): Promise<Response> {
    const credentials = await this.config.credentials({ signal: options.signal });
    const headers = this.#headers(credentials, options);
    let body: BodyInit | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" || options.body instanceof Uint8Array
        ? options.body as BodyInit
        : JSON.stringify(options.body);
      headers.set("Content-Type", options.contentType ?? "application/json");
    }
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method,
      headers,
      body,
      signal: options.signal,
    };
    const httpClient = this.#httpClient(credentials);
    if (httpClient) init.client = httpClient;
    try {
      return await this.#fetch(url, init);
    } catch (cause) {
      throw this.#networkError(cause, method, url, options.signal);
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

  #httpClient(credentials: Credentials): Deno.HttpClient | undefined {
    if (this.#customFetch) return undefined;
    const cluster = this.config.cluster;
    const cert = credentials.clientCertificate;
    if (!cluster.certificateAuthority && !cert && !cluster.proxyUrl) return undefined;
    const key = JSON.stringify([cluster.certificateAuthority, cert?.cert, cert?.key, cluster.proxyUrl]);
    let client = this.#httpClients.get(key);
    if (!client) {
      const options: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
      if (cluster.certificateAuthority) options.caCerts = [cluster.certificateAuthority];
      if (cert) {
        options.cert = cert.cert;
        options.key = cert.key;
      }
      if (cluster.proxyUrl) options.proxy = proxyOption(cluster.proxyUrl);
      client = Deno.createHttpClient(options as Deno.CreateHttpClientOptions);
      this.#httpClients.set(key, client);
      log.debug("Created an HTTP client for {server}", { server: cluster.server });
    }
    return client;
  }

  #networkError(cause: unknown, method: string, url: URL, signal?: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (cause instanceof Deno.errors.NotCapable) {
      const host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
      return new Deno.errors.NotCapable(
        `Cannot connect to the Kubernetes API server at ${url.origin}: missing network permission. ` +
          `Run again with --allow-net=${host}`,
        { cause },
      );
    }
    const text = cause instanceof Error ? cause.message : String(cause);
    let hint = "";
    if (/certificate|tls|ssl|handshake|UnknownIssuer/i.test(text)) {
      hint = this.config.cluster.insecureSkipTlsVerify
        ? ` The kubeconfig sets insecure-skip-tls-verify, which Deno cannot apply per client: run with --unsafely-ignore-certificate-errors=${url.hostname}, or better, set certificate-authority-data.`
        : " Check the cluster's certificate-authority in the kubeconfig.";
    }
    return new ApiError({
      status: 0,
      message: `Cannot reach the Kubernetes API server: ${method} ${url.href} failed: ${text}.${hint}`,
      method,
      url: url.href,
      cause,
    });
  }
}

function retryable(status: number, method: string): boolean {
  if (status === 429 || status === 503) return true;
  return status === 504 && (method === "GET" || method === "HEAD");
}

function proxyOption(proxyUrl: string): Deno.Proxy {
  const url = new URL(proxyUrl);
  const transport = url.protocol === "socks5:" || url.protocol === "socks5h:"
    ? "socks5"
    : url.protocol === "https:"
    ? "https"
    : "http";
  const proxy: Deno.Proxy = { transport, url: `${url.protocol}//${url.host}` };
  if (url.username) {
    proxy.basicAuth = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  return proxy;
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * Builds an {@linkcode ApiError} from an error response: a `Status` body, or any other (plain
 * text) body. Consumes the body.
 *
 * @param response The failed response.
 * @param method The request method.
 * @param url The request URL.
 * @returns The error.
 */
export async function errorFromResponse(
  response: Response,
  method: string,
  url: string,
): Promise<ApiError> {
  const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body could not be read; the status line still tells what happened.
  }
  let status: Status | undefined;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && parsed.kind === "Status") status = parsed;
  } catch {
    // Not JSON: a proxy or a plain-text 429.
  }
  if (status) {
    return ApiError.fromStatus(status, { status: response.status, method, url, retryAfterSeconds });
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError({
    status: response.status,
    reason: reasonForStatus(response.status),
    message: `${response.status} ${response.statusText || reasonForStatus(response.status)}${
      snippet ? `: ${snippet}` : ""
    } (${method} ${url})`,
    method,
    url,
    retryAfterSeconds,
  });
}

function reasonForStatus(status: number): string {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}
