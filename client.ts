/**
 * {@linkcode Client}: an authenticated connection to one Kubernetes API server, with the
 * low-level {@linkcode Client.prototype.request} that every verb, watch and cache uses.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import { type DiscoveredResource, DiscoveryCache } from "./_client/discovery.ts";
import { ChunkReader, LineDecoder } from "./_client/lines.ts";
import {
  listAll,
  type ListAllOptions,
  type ListChunk,
  listPage,
  type ListPageOptions,
  listQuery,
} from "./_client/list.ts";
import { Api, assertName, assertNamespace, type KubeList, type KubeObject } from "./api.ts";
import { Config } from "./config.ts";
import { ApiError, type Status } from "./errors.ts";
import {
  type FetchLike,
  HttpTransport,
  type QueryParams,
  registerTransport,
  requestJson,
  requestObject,
  type RequestOptions,
  type Transport,
  type WireFormat,
} from "./_client/transport.ts";
import { acceptFor } from "./_client/protobuf/negotiate.ts";
import { watch, type WatchEvent, type WatchOptions } from "./watch.ts";

export type { ListAllOptions, ListChunk, ListPageOptions, ListSnapshot } from "./_client/list.ts";
export type { DiscoveredResource } from "./_client/discovery.ts";
export type {
  FetchLike,
  QueryParams,
  RequestOptions,
  Transport,
  WireFormat,
} from "./_client/transport.ts";

/** Options of {@linkcode Client}. */
export interface ClientOptions {
  /**
   * The wire format of reads (get, list, watch, and the Informer's and Reflector's lists and
   * watches) of built-in kinds. `protobuf` asks for `application/vnd.kubernetes.protobuf` (with
   * JSON as the fallback), as client-go does, and decodes it into the same plain objects JSON
   * gives (`metadata.managedFields[].fieldsV1` is parsed on first read: an own accessor that
   * becomes a data property, so a cached pod is ~40% smaller; its value is the JSON's); custom
   * resources, metadata-only reads and writes always use JSON. Default
   * `protobuf`: against a real kube-apiserver it costs the server 2–4× less CPU to encode than
   * JSON and sends ~40% fewer bytes (bench/RESULTS.md, section 3c). Force `json` to see exactly
   * what the server's JSON says.
   *
   * Fields newer than this library's tables (Kubernetes v1.36) cannot be decoded from protobuf
   * and are missing from objects read in lists, watches, Informers and Reflectors, as with
   * client-go's typed clients. `get` notices them and reads the object again as JSON, so
   * `get` → change → `replace` keeps them; do not `replace` an object taken from a list or a
   * cache of a newer server without a fresh `get` (or use a patch or server-side apply).
   */
  wireFormat?: WireFormat;
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
  /**
   * The clock request retries wait on. Default the system clock; tests pass a `VirtualClock`.
   */
  clock?: Clock;
}

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
export class Client implements Transport, AsyncDisposable {
  /** The configuration this client uses. */
  readonly config: Config;
  #transport: HttpTransport;
  #discovery = new DiscoveryCache((path) => this.requestJson({ path }));

  /**
   * Creates a client for a configuration.
   *
   * @param config Where the cluster is and how to authenticate.
   * @param options A custom `fetch`, the user agent and retry settings.
   */
  constructor(config: Config, options: ClientOptions = {}) {
    this.config = config;
    this.#transport = new HttpTransport(config, options);
    registerTransport(this, this.#transport);
    this.wireFormat = options.wireFormat ?? "protobuf";
  }

  /** The wire format of reads of built-in kinds (see {@linkcode ClientOptions.wireFormat}). */
  readonly wireFormat: WireFormat;

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
  request(options: RequestOptions): Promise<Response> {
    return this.#transport.request(options);
  }

  /**
   * Sends a request and parses the JSON response.
   *
   * @param options The request.
   * @returns The parsed body.
   */
  requestJson<T>(options: RequestOptions): Promise<T> {
    return requestJson<T>(this.#transport, options);
  }

  /**
   * Builds the full URL for a path and query.
   *
   * @param path Path below the server URL.
   * @param query Query parameters.
   * @returns The URL.
   */
  url(path: string, query?: QueryParams): URL {
    return this.#transport.url(path, query);
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
    // Lossless: an object with fields the protobuf tables do not know is read again as JSON, so
    // that get → change → replace never drops a newer server's fields.
    return await requestObject<T>(
      this,
      {
        path: api.itemPath(name, this.#namespaceFor(api, options.namespace)),
        signal: options.signal,
      },
      acceptFor(this.wireFormat, api.apiVersion, api.kind),
      true,
    );
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
    return await this.#getSubresource<T>(api, name, "status", options);
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
      path: this.#subresourcePath(api, nameOf(api, object), "status", options, object),
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
    return await this.#patchSubresource<T>(api, name, "status", patch, options);
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
    return await this.#getSubresource<Scale>(api, name, "scale", options);
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
    return await this.#patchSubresource<Scale>(api, name, "scale", patch, options);
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
    // One reused buffer for every read (see ChunkReader); the line decoder copies what it keeps.
    const reader = new ChunkReader(response.body!);
    const lines = new LineDecoder();
    const out: string[] = [];
    try {
      for (;;) {
        let chunk: Uint8Array | undefined;
        try {
          chunk = await reader.read();
        } catch (e) {
          // Aborting the signal ends the follow: the lines so far were all there was.
          if (options.signal?.aborted) return;
          throw e;
        }
        if (chunk === undefined) lines.end(out);
        else lines.push(chunk, out);
        for (const line of out) yield line.endsWith("\r") ? line.slice(0, -1) : line;
        out.length = 0;
        if (chunk === undefined) return;
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

  // The one subresource helper: `status` and `scale` (and any other) resolve their path and
  // namespace the same way, and read and patch through the same requests as the main resource.

  #subresourcePath(
    api: Api<KubeObject>,
    name: string,
    subresource: string,
    options: ItemOptions,
    object?: KubeObject,
  ): string {
    return api.subresourcePath(
      name,
      subresource,
      this.#namespaceFor(api, options.namespace, object),
    );
  }

  #getSubresource<R>(
    api: Api<KubeObject>,
    name: string,
    subresource: string,
    options: ItemOptions,
  ): Promise<R> {
    return this.requestJson<R>({
      path: this.#subresourcePath(api, name, subresource, options),
      signal: options.signal,
    });
  }

  #patchSubresource<R>(
    api: Api<KubeObject>,
    name: string,
    subresource: string,
    patch: unknown,
    options: PatchOptions,
  ): Promise<R> {
    return this.requestJson<R>(
      this.#patchRequest(this.#subresourcePath(api, name, subresource, options), patch, options),
    );
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
    this.#transport.close();
  }

  /** Closes the client (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
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
