/**
 * {@linkcode Client}: an authenticated connection to one Kubernetes API server, with the
 * low-level {@linkcode Client.prototype.request} that every verb, watch and cache uses.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Backoff, parseRetryAfter, sleep } from "./_backoff.ts";
import { registerClientInternals } from "./_client_internals.ts";
import { type DiscoveredResource, DiscoveryCache } from "./_discovery.ts";
import { reasonForCode } from "./_status_reasons.ts";
import { LineDecoder } from "./_lines.ts";
import {
  listAll,
  type ListAllOptions,
  type ListChunk,
  listPage,
  type ListPageOptions,
  listQuery,
} from "./_list.ts";
import { Api, assertName, assertNamespace, type KubeList, type KubeObject } from "./api.ts";
import { Config, type Credentials } from "./config.ts";
import { ApiError, type Status } from "./errors.ts";
import { watch, type WatchEvent, type WatchOptions } from "./watch.ts";

export type { ListAllOptions, ListChunk, ListPageOptions, ListSnapshot } from "./_list.ts";
export type { DiscoveredResource } from "./_discovery.ts";

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
  #discovery = new DiscoveryCache((path) => this.requestJson({ path }));

  static {
    // For exec, attach and port-forward (exec.ts), which upgrade their own connection.
    registerClientInternals({
      usesCustomFetch: (client) => client.#customFetch,
      credentials: (client, method, url, signal) => client.#credentials(method, url, signal),
      headers: (client, credentials) => client.#headers(credentials, { path: "" }),
      networkError: (client, cause, method, url, signal) =>
        client.#networkError(cause, method, url, signal),
    });
  }

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
      const credentials = await this.#credentials(method, url, options.signal);
      const response = await this.#send(method, url, options, credentials);
      const ms = Math.round(performance.now() - started);
      const warning = response.headers.get("Warning");
      if (warning) log.warn("API server warning: {warning}", { warning, url: url.href });
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
        options.retry !== false && attempt < this.#maxRetries && retryable(response.status, method)
      ) {
        const delay = error.retryAfterSeconds !== undefined
          ? Math.min(error.retryAfterSeconds * 1000, 60_000)
          : backoff.next();
        log.warn("{method} {url} → {status}; retrying in {delay} ms (attempt {attempt})", {
          method,
          url: url.href,
          status: response.status,
          delay: Math.round(delay),
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

  // ---------------------------------------------------------------------------------------------
  // Verbs. Item verbs take the namespace from, in order: `options.namespace`, the Api's
  // `.within()`, the object's `metadata.namespace` (writes), then the config's namespace.

  /**
   * Reads one object.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param options Namespace override and abort signal.
   * @returns The object.
   */
  async get<T extends KubeObject>(
    api: Api<T>,
    name: string,
    options: ItemOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>({
      path: api.itemPath(name, this.#namespaceFor(api, options.namespace)),
      signal: options.signal,
    });
  }

  /**
   * Reads one page of a collection. Without `.within()`, a namespaced kind is listed across all
   * namespaces. Items get `apiVersion` and `kind` filled in.
   *
   * @param api The resource type (and namespace).
   * @param options `limit`, `continue`, selectors, `resourceVersion`, `resourceVersionMatch`.
   * @returns The list.
   */
  async list<T extends KubeObject>(
    api: Api<T>,
    options: ListPageOptions = {},
  ): Promise<KubeList<T>> {
    return await listPage(this, api, options);
  }

  /**
   * Iterates over a whole collection page by page (500 per page by default).
   *
   * When a continue token expires (410) the list starts again from the beginning and the first
   * page of the new pass has `restart: true`: drop what you collected before. Snapshots are never
   * silently mixed.
   *
   * @param api The resource type (and namespace).
   * @param options Page size, selectors.
   * @returns The pages.
   */
  listAll<T extends KubeObject>(
    api: Api<T>,
    options: ListAllOptions = {},
  ): AsyncGenerator<ListChunk<T>> {
    return listAll(this, api, options);
  }

  /**
   * Watches a collection: see {@linkcode watch}.
   *
   * @param api The resource type (and namespace).
   * @param options Resource version, selectors, timeouts, signal.
   * @returns The events; breaking out of the loop cancels the stream.
   */
  watch<T extends KubeObject>(
    api: Api<T>,
    options: WatchOptions = {},
  ): AsyncIterableIterator<WatchEvent<T>> {
    return watch(this, api, options);
  }

  /**
   * Creates an object.
   *
   * @param api The resource type (and namespace).
   * @param object The object; `apiVersion` and `kind` are filled in from the Api when missing.
   * @param options Namespace, `dryRun`, `fieldManager`, `fieldValidation`, signal.
   * @returns The created object as stored.
   */
  async create<T extends KubeObject>(
    api: Api<T>,
    object: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const namespace = this.#namespaceFor(api, options.namespace, object);
    const path = (namespace === undefined ? api : api.within(namespace)).collectionPath();
    return await this.requestJson<T>({
      method: "POST",
      path,
      query: writeQuery(options),
      body: withTypeMeta(api, object),
      signal: options.signal,
    });
  }

  /**
   * Replaces an object (PUT). With `metadata.resourceVersion` set, a concurrent change gives a
   * 409 Conflict ({@linkcode isConflict}).
   *
   * @param api The resource type (and namespace).
   * @param object The full object, with `metadata.name`.
   * @param options Namespace, `dryRun`, `fieldManager`, `fieldValidation`, signal.
   * @returns The stored object.
   */
  async replace<T extends KubeObject>(
    api: Api<T>,
    object: T,
    options: WriteOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>({
      method: "PUT",
      path: api.itemPath(nameOf(api, object), this.#namespaceFor(api, options.namespace, object)),
      query: writeQuery(options),
      body: withTypeMeta(api, object),
      signal: options.signal,
    });
  }

  /**
   * Patches an object: JSON merge patch (`merge`, the default), JSON patch (`json`, an array of
   * operations), strategic merge patch (`strategic`, built-in kinds only) or server-side apply
   * (`apply`, needs `fieldManager`; prefer {@linkcode Client.prototype.apply}).
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param patch The patch document.
   * @param options Patch type, namespace, `fieldManager`, `force`, `dryRun`, signal.
   * @returns The patched object.
   */
  async patch<T extends KubeObject>(
    api: Api<T>,
    name: string,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>(this.#patchRequest(
      api.itemPath(name, this.#namespaceFor(api, options.namespace)),
      patch,
      options,
    ));
  }

  /**
   * Server-side apply: sends the fields you manage; the server merges them and tracks ownership
   * per `fieldManager`. A field owned by another manager gives a 409 {@linkcode ApiError} whose
   * `details.causes` list each conflicting field and its manager; `force: true` takes them over.
   *
   * @param api The resource type (and namespace).
   * @param object The fields to apply, with `metadata.name`.
   * @param options `fieldManager` (required), `force`, namespace, `dryRun`, signal.
   * @returns The object after the apply.
   */
  async apply<T extends KubeObject>(
    api: Api<T>,
    object: DeepPartial<T>,
    options: ApplyOptions,
  ): Promise<T> {
    const typed = withTypeMeta(api, object as T);
    return await this.patch(api, nameOf(api, typed), typed, {
      ...options,
      type: "apply",
      namespace: this.#namespaceFor(api, options.namespace, typed),
    });
  }

  /**
   * Deletes an object. Returns the object when the server keeps it for a while (finalizers,
   * graceful deletion), or the `Status` when it is gone at once.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param options `propagationPolicy`, `gracePeriodSeconds`, `preconditions`, `dryRun`, signal.
   * @returns The object or a `Status`.
   */
  async delete<T extends KubeObject>(
    api: Api<T>,
    name: string,
    options: DeleteOptions = {},
  ): Promise<T | Status> {
    return await this.requestJson<T | Status>({
      method: "DELETE",
      path: api.itemPath(name, this.#namespaceFor(api, options.namespace)),
      query: { dryRun: options.dryRun ? "All" : undefined },
      body: deleteBody(options),
      signal: options.signal,
    });
  }

  /**
   * Deletes every object of a collection that matches the selectors.
   *
   * @param api The resource type (and namespace; required for namespaced kinds).
   * @param options Selectors, `propagationPolicy`, `gracePeriodSeconds`, `dryRun`, signal.
   * @returns The deleted objects as a list, or a `Status`.
   */
  async deleteCollection<T extends KubeObject>(
    api: Api<T>,
    options: DeleteOptions & { labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<KubeList<T> | Status> {
    if (api.namespaced && api.namespace === undefined) {
      throw new TypeError(
        `deleteCollection on ${api.kind} needs a namespace: call .within(namespace) first`,
      );
    }
    return await this.requestJson<KubeList<T> | Status>({
      method: "DELETE",
      path: api.collectionPath(),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        dryRun: options.dryRun ? "All" : undefined,
      },
      body: deleteBody(options),
      signal: options.signal,
    });
  }

  /**
   * Reads an object through its `status` subresource.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param options Namespace and signal.
   * @returns The object.
   */
  async getStatus<T extends KubeObject>(
    api: Api<T>,
    name: string,
    options: ItemOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>({
      path: api.subresourcePath(name, "status", this.#namespaceFor(api, options.namespace)),
      signal: options.signal,
    });
  }

  /**
   * Replaces an object's status (PUT on the `status` subresource; only `.status` changes).
   *
   * @param api The resource type (and namespace).
   * @param object The object with its new status and `metadata.name`.
   * @param options Namespace, `dryRun`, `fieldManager`, signal.
   * @returns The stored object.
   */
  async replaceStatus<T extends KubeObject>(
    api: Api<T>,
    object: T,
    options: WriteOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>({
      method: "PUT",
      path: api.subresourcePath(
        nameOf(api, object),
        "status",
        this.#namespaceFor(api, options.namespace, object),
      ),
      query: writeQuery(options),
      body: withTypeMeta(api, object),
      signal: options.signal,
    });
  }

  /**
   * Patches an object's status subresource.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param patch The patch document (for `apply`, include `apiVersion`, `kind` and `metadata.name`).
   * @param options Patch type, namespace, `fieldManager`, `force`, signal.
   * @returns The object after the patch.
   */
  async patchStatus<T extends KubeObject>(
    api: Api<T>,
    name: string,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    return await this.requestJson<T>(this.#patchRequest(
      api.subresourcePath(name, "status", this.#namespaceFor(api, options.namespace)),
      patch,
      options,
    ));
  }

  /**
   * Reads the `scale` subresource (Deployments, ReplicaSets, StatefulSets, and custom resources
   * that declare it).
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param options Namespace and signal.
   * @returns The `autoscaling/v1` Scale.
   */
  async getScale(api: Api<KubeObject>, name: string, options: ItemOptions = {}): Promise<Scale> {
    return await this.requestJson<Scale>({
      path: api.subresourcePath(name, "scale", this.#namespaceFor(api, options.namespace)),
      signal: options.signal,
    });
  }

  /**
   * Patches the `scale` subresource, e.g. `{ spec: { replicas: 3 } }`.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param patch The patch (merge patch by default).
   * @param options Patch type, namespace, signal.
   * @returns The Scale after the patch.
   */
  async patchScale(
    api: Api<KubeObject>,
    name: string,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<Scale> {
    return await this.requestJson<Scale>(this.#patchRequest(
      api.subresourcePath(name, "scale", this.#namespaceFor(api, options.namespace)),
      patch,
      options,
    ));
  }

  /**
   * Reads a pod's log at once.
   *
   * @param name The pod's name.
   * @param options Namespace, container, `tailLines`, `sinceSeconds`, `timestamps`, `previous`,
   *   `limitBytes`, signal.
   * @returns The log text.
   */
  async logs(name: string, options: LogOptions = {}): Promise<string> {
    const response = await this.request(this.#logRequest(name, { ...options, follow: false }));
    return await response.text();
  }

  /**
   * Follows a pod's log line by line (`follow=true`), until the container ends, the signal aborts
   * (the iteration then ends without an error), or the loop is left — which cancels the stream.
   * A quiet log keeps the stream open.
   *
   * @param name The pod's name.
   * @param options Namespace, container, `tailLines`, `sinceSeconds`, `timestamps`, signal.
   * @returns The lines, without their trailing newline.
   */
  async *followLogs(name: string, options: LogOptions = {}): AsyncGenerator<string> {
    let response: Response;
    try {
      response = await this.request(this.#logRequest(name, { ...options, follow: true }));
    } catch (e) {
      if (options.signal?.aborted) return;
      throw e;
    }
    const reader = response.body!.getReader();
    const lines = new LineDecoder();
    const out: string[] = [];
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          // Aborting the signal ends the follow: the lines so far were all there was.
          if (options.signal?.aborted) return;
          throw e;
        }
        const { done, value } = chunk;
        if (done) lines.end(out);
        else lines.push(value, out);
        for (const line of out) yield line.endsWith("\r") ? line.slice(0, -1) : line;
        out.length = 0;
        if (done) return;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  /**
   * Reads only the metadata of an object (`PartialObjectMetadata`): cheaper for large objects.
   *
   * @param api The resource type (and namespace).
   * @param name The object's name.
   * @param options Namespace and signal.
   * @returns The object's `apiVersion`, `kind` and `metadata`.
   */
  async getMetadata(
    api: Api<KubeObject>,
    name: string,
    options: ItemOptions = {},
  ): Promise<KubeObject> {
    return await this.requestJson<KubeObject>({
      path: api.itemPath(name, this.#namespaceFor(api, options.namespace)),
      accept: PARTIAL_METADATA,
      signal: options.signal,
    });
  }

  /**
   * Lists only the metadata of a collection's objects (`PartialObjectMetadataList`).
   *
   * @param api The resource type (and namespace).
   * @param options `limit`, `continue`, selectors, signal.
   * @returns The list of `PartialObjectMetadata`.
   */
  async listMetadata(
    api: Api<KubeObject>,
    options: ListPageOptions = {},
  ): Promise<KubeList<KubeObject>> {
    return await this.requestJson<KubeList<KubeObject>>({
      path: api.collectionPath(),
      accept: PARTIAL_METADATA_LIST,
      query: listQuery(options),
      signal: options.signal,
    });
  }

  /**
   * Resolves `apiVersion` + `kind` into a resource type from the server's discovery documents
   * (cached per group-version; a miss refreshes once, so a just-created CRD is found).
   *
   * @param apiVersion `group/version`, or `v1` for the core group.
   * @param kind The kind, e.g. `Deployment`.
   * @returns The resource's {@linkcode Api} and what discovery says about it.
   * @throws {ApiError} With status 404 when the server does not serve that kind.
   */
  async discover<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
  ): Promise<{ api: Api<T>; resource: DiscoveredResource }> {
    let resource: DiscoveredResource | undefined;
    try {
      resource = await this.#discovery.resolve(apiVersion, kind);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    if (!resource) {
      throw new ApiError({
        status: 404,
        reason: "NotFound",
        message:
          `The server does not serve kind ${kind} in ${apiVersion}: check the apiVersion, or install the CRD`,
      });
    }
    return { api: Api.dynamic<T>(resource), resource };
  }

  #namespaceFor(api: Api<KubeObject>, explicit?: string, object?: KubeObject): string | undefined {
    if (!api.namespaced) return undefined;
    return explicit ?? api.namespace ?? object?.metadata?.namespace ?? this.config.namespace;
  }

  #patchRequest(path: string, patch: unknown, options: PatchOptions): RequestOptions {
    const type = options.type ?? "merge";
    const contentType = PATCH_TYPES[type];
    if (!contentType) {
      throw new TypeError(
        `Unknown patch type ${JSON.stringify(type)}: use "merge", "json", "strategic" or "apply"`,
      );
    }
    if (type === "apply" && !options.fieldManager) {
      throw new TypeError(
        'Server-side apply needs a fieldManager, e.g. { fieldManager: "my-controller" }',
      );
    }
    if (type === "json" && !Array.isArray(patch)) {
      throw new TypeError(
        'A JSON patch is an array of operations, e.g. [{ op: "replace", path: "/spec/replicas", value: 3 }]',
      );
    }
    return {
      method: "PATCH",
      path,
      query: {
        ...writeQuery(options),
        force: type === "apply" && options.force ? true : undefined,
      },
      body: patch,
      contentType,
      signal: options.signal,
    };
  }

  #logRequest(name: string, options: LogOptions & { follow: boolean }): RequestOptions {
    const namespace = options.namespace ?? this.config.namespace;
    assertNamespace(namespace);
    assertName(name, "Pod");
    const path = `/api/v1/namespaces/${namespace}/pods/${name}/log`;
    return {
      path,
      accept: "*/*",
      query: {
        container: options.container,
        follow: options.follow || undefined,
        tailLines: options.tailLines,
        sinceSeconds: options.sinceSeconds,
        timestamps: options.timestamps || undefined,
        previous: options.previous || undefined,
        limitBytes: options.limitBytes,
      },
      signal: options.signal,
    };
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

  /**
   * Gets the credentials for a request. A failure to get them (an exec plugin that failed, a token
   * file that cannot be read) is an ApiError with status 0, which watch loops retry with backoff
   * as client-go does; a missing permission or an aborted signal is passed on as it is.
   */
  async #credentials(method: string, url: URL, signal?: AbortSignal): Promise<Credentials> {
    try {
      return await this.config.credentials({ signal });
    } catch (cause) {
      if (signal?.aborted || cause instanceof Deno.errors.NotCapable) throw cause;
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
    const key = JSON.stringify([
      cluster.certificateAuthority,
      cert?.cert,
      cert?.key,
      cluster.proxyUrl,
    ]);
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
      // Rotating exec client certificates make a new HTTP client each time: keep the two newest
      // (streams opened with the previous certificate may still run) and close older ones.
      while (this.#httpClients.size > 2) {
        const [oldestKey, oldest] = this.#httpClients.entries().next().value!;
        this.#httpClients.delete(oldestKey);
        oldest.close();
      }
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
      message:
        `Cannot reach the Kubernetes API server: ${method} ${url.href} failed: ${text}.${hint}`,
      method,
      url: url.href,
      cause,
    });
  }
}

const PARTIAL_METADATA =
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
const PARTIAL_METADATA_LIST =
  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

const PATCH_TYPES: Record<string, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

/** A recursive `Partial`, for server-side apply documents. */
export type DeepPartial<T> = T extends readonly (infer U)[] ? DeepPartial<U>[]
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> }
  : T;

/** Options of verbs on one object. */
export interface ItemOptions {
  /** The namespace, overriding the Api's and the config's. */
  namespace?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** Options of create, replace and status writes. */
export interface WriteOptions extends ItemOptions {
  /** Validate and report, but persist nothing (`dryRun=All`). */
  dryRun?: boolean;
  /** Name of the actor making the change, recorded in `managedFields`. */
  fieldManager?: string;
  /** How the server treats unknown or duplicate fields: `Strict`, `Warn` (default) or `Ignore`. */
  fieldValidation?: "Strict" | "Warn" | "Ignore";
}

/** Options of patches. */
export interface PatchOptions extends WriteOptions {
  /** The patch type. Default `merge`. */
  type?: "merge" | "json" | "strategic" | "apply";
  /** With `apply`: take over fields owned by other managers. */
  force?: boolean;
}

/** Options of server-side apply. */
export interface ApplyOptions extends Omit<WriteOptions, "fieldManager"> {
  /** Who owns the applied fields (required), e.g. `my-controller`. */
  fieldManager: string;
  /** Take over fields owned by other managers instead of failing with a conflict. */
  force?: boolean;
}

/** Options of deletes. */
export interface DeleteOptions extends ItemOptions {
  /** `Orphan`, `Background` or `Foreground` deletion of dependents. */
  propagationPolicy?: "Orphan" | "Background" | "Foreground";
  /** Seconds before the object is deleted; 0 deletes immediately. */
  gracePeriodSeconds?: number;
  /** Delete only if the object still has this UID and/or resource version. */
  preconditions?: { uid?: string; resourceVersion?: string };
  /** Validate and report, but delete nothing. */
  dryRun?: boolean;
}

/** Options of {@linkcode Client.prototype.logs} and {@linkcode Client.prototype.followLogs}. */
export interface LogOptions extends ItemOptions {
  /** The container; required when the pod has more than one. */
  container?: string;
  /** Only the last N lines. */
  tailLines?: number;
  /** Only lines newer than this many seconds. */
  sinceSeconds?: number;
  /** Prefix each line with an RFC 3339 timestamp. */
  timestamps?: boolean;
  /** The previous, terminated container's log. */
  previous?: boolean;
  /** Stop after this many bytes. */
  limitBytes?: number;
}

/** An `autoscaling/v1` Scale, as read and written through the `scale` subresource. */
export interface Scale extends KubeObject {
  /** The desired replicas. */
  spec?: { replicas?: number };
  /** The observed replicas and the label selector of the pods. */
  status?: { replicas: number; selector?: string };
}

function writeQuery(options: WriteOptions): QueryParams {
  return {
    dryRun: options.dryRun ? "All" : undefined,
    fieldManager: options.fieldManager,
    fieldValidation: options.fieldValidation,
  };
}

function deleteBody(options: DeleteOptions): unknown {
  if (
    options.propagationPolicy === undefined && options.gracePeriodSeconds === undefined &&
    options.preconditions === undefined
  ) {
    return undefined;
  }
  return {
    apiVersion: "v1",
    kind: "DeleteOptions",
    propagationPolicy: options.propagationPolicy,
    gracePeriodSeconds: options.gracePeriodSeconds,
    preconditions: options.preconditions,
  };
}

function withTypeMeta<T extends KubeObject>(api: Api<T>, object: T): T {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    throw new TypeError(
      `Expected a ${api.kind} object, got ${object === null ? "null" : typeof object}`,
    );
  }
  if (object.apiVersion !== undefined && object.apiVersion !== api.apiVersion) {
    throw new TypeError(
      `The object's apiVersion ${
        JSON.stringify(object.apiVersion)
      } does not match the Api (${api.apiVersion} ${api.kind})`,
    );
  }
  if (object.kind !== undefined && object.kind !== api.kind) {
    throw new TypeError(
      `The object's kind ${JSON.stringify(object.kind)} does not match the Api (${api.kind})`,
    );
  }
  if (object.apiVersion !== undefined && object.kind !== undefined) return object;
  return { ...object, apiVersion: api.apiVersion, kind: api.kind };
}

function nameOf(api: Api<KubeObject>, object: KubeObject): string {
  const name = object?.metadata?.name;
  if (!name) throw new TypeError(`The ${api.kind} object has no metadata.name`);
  return name;
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
