// Internal: paged lists (one page, all pages with restart on an expired continue token, one
// consistent snapshot) over a `Transport`. The watch loop (`_client/watcher.ts`) and the client's verbs
// use them. Not exported from the package root.

import { getLogger } from "@logtape/logtape";
import type { Api, KubeList, KubeObject } from "../api.ts";
import { type QueryParams, readJson, readObject, type Transport } from "./transport.ts";
import { acceptFor, isProtobuf, PROTOBUF_ACCEPT } from "./protobuf/negotiate.ts";
import { decodeCompactList } from "./protobuf/decode.ts";
import { ApiError } from "../errors.ts";

const log = getLogger(["kube", "list"]);

/**
 * Internal seam: the wire format of list responses — the `Accept` header and how a body becomes
 * a list (JSON by default; a protobuf decoder plugs in here and in the watch's `WatchFormat`).
 */
export interface ListFormat {
  /** The `Accept` header, or undefined for the default (`application/json`). */
  readonly accept: string | undefined;
  /**
   * Reads a successful list response.
   *
   * @param response The response (its body is consumed).
   * @param path The request path, for messages.
   * @returns The parsed list (validated by the caller).
   */
  read(response: Response, path: string): Promise<unknown>;
}

/** The JSON list format. */
export const jsonListFormat: ListFormat = {
  accept: undefined,
  read: (response, path) => readJson(response, "GET", path),
};

/**
 * The protobuf list format (client-go's default): asks for protobuf with JSON as the fallback and
 * reads the body by the Content-Type the server chose.
 */
export const protobufListFormat: ListFormat = {
  accept: PROTOBUF_ACCEPT,
  read: (response, path) => readObject(response, "GET", path),
};

/**
 * The protobuf list format of the compact store: as {@linkcode protobufListFormat}, but the items
 * of a protobuf answer are `CompactObject`s (`./protobuf/decode.ts`: each item's bytes and a
 * decoded metadata header). A JSON answer is parsed as usual.
 */
export const compactProtobufListFormat: ListFormat = compactListFormat(() => false);

/**
 * {@linkcode compactProtobufListFormat} that drops `metadata.managedFields` from the kept bytes
 * when `strip()` answers true (asked once per response).
 *
 * @param strip Whether to strip, e.g. while the Reflector's transform is `stripManagedFields`.
 * @returns The format.
 */
export function compactListFormat(strip: () => boolean): ListFormat {
  return {
    accept: PROTOBUF_ACCEPT,
    read: (response, path) => readCompactList(response, path, strip()),
  };
}

async function readCompactList(
  response: Response,
  path: string,
  strip: boolean,
): Promise<unknown> {
  if (!isProtobuf(response.headers.get("content-type"))) {
    return await readJson(response, "GET", path);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  try {
    return decodeCompactList(bytes, undefined, strip);
  } catch (cause) {
    throw new ApiError({
      status: response.status,
      message: `The API server sent a protobuf body this client cannot decode for GET ${path}: ${
        (cause as Error).message
      }`,
      cause,
    });
  }
}

/**
 * The list format for `api` on `client`: protobuf when the client's wire format is protobuf and
 * the list kind has a protobuf encoding, else JSON.
 *
 * @param client The transport.
 * @param api The resource type.
 * @returns The format.
 */
export function listFormatFor(client: Transport, api: Api<KubeObject>): ListFormat {
  return acceptFor(client.wireFormat, api.apiVersion, `${api.kind}List`) === undefined
    ? jsonListFormat
    : protobufListFormat;
}

/** Default page size of {@linkcode listAll} and {@linkcode listSnapshot}. */
export const DEFAULT_PAGE_SIZE = 500;

/** Options of {@linkcode listPage}. */
export interface ListPageOptions {
  /** Largest number of items in the page; 0 or unset for no limit. */
  limit?: number;
  /** The continue token of the previous page. */
  continue?: string;
  /** Label selector. */
  labelSelector?: string;
  /** Field selector. */
  fieldSelector?: string;
  /**
   * A KEP-5866 shard selector, e.g.
   * `shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')` (ranges joined
   * with `||`): only objects whose 64-bit FNV-1a hash of the field falls in a range. Needs the
   * `ShardedListAndWatch` feature gate (alpha in Kubernetes 1.36); a server without it ignores the
   * parameter (a list then has no `metadata.shardInfo`).
   */
  shardSelector?: string;
  /** Resource version (opaque); unset for a consistent read. */
  resourceVersion?: string;
  /** `NotOlderThan` or `Exact`. */
  resourceVersionMatch?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Whether the client retries 429/503 itself. Default true. */
  retry?: boolean;
}

/** Options of {@linkcode listAll} and {@linkcode listSnapshot}. */
export interface ListAllOptions extends Omit<ListPageOptions, "limit" | "continue"> {
  /** Items per page. Default 500. */
  pageSize?: number;
}

/** One page of {@linkcode listAll}. */
export interface ListChunk<T> {
  /** The items of this page (with `apiVersion` and `kind` filled in). */
  items: T[];
  /** The resource version of the snapshot the page belongs to. */
  resourceVersion: string;
  /**
   * True on the first page after the continue token expired and the list restarted from the
   * beginning: everything received before belongs to an older snapshot and must be discarded.
   */
  restart: boolean;
}

/** A complete, consistent list. */
export interface ListSnapshot<T> {
  /** All items. */
  items: T[];
  /** The resource version of the snapshot: watch from here. */
  resourceVersion: string;
}

/**
 * The query parameters of a list request (also used for metadata-only lists).
 *
 * @param options Limit, continue token, selectors, resource version.
 * @returns The query.
 */
export function listQuery(options: ListPageOptions): QueryParams {
  return {
    limit: options.limit || undefined,
    continue: options.continue || undefined,
    labelSelector: options.labelSelector || undefined,
    fieldSelector: options.fieldSelector || undefined,
    shardSelector: options.shardSelector || undefined,
    resourceVersion: options.resourceVersion,
    resourceVersionMatch: options.resourceVersionMatch,
  };
}

/**
 * Lists one page of a collection, filling in `apiVersion` and `kind` of the items (a list
 * response leaves them out).
 *
 * @param client The client.
 * @param api The resource type.
 * @param options Limit, continue token, selectors, resource version.
 * @param format The wire format (default JSON).
 * @returns The list.
 */
export async function listPage<T extends KubeObject>(
  client: Transport,
  api: Api<T>,
  options: ListPageOptions = {},
  format: ListFormat = listFormatFor(client, api as Api<KubeObject>),
): Promise<KubeList<T>> {
  const path = api.collectionPath();
  const response = await client.request({
    path,
    query: listQuery(options),
    accept: format.accept,
    signal: options.signal,
    retry: options.retry,
  });
  const list = await format.read(response, path) as KubeList<T>;
  if (!list || typeof list !== "object" || !Array.isArray(list.items)) {
    if (list && typeof list === "object" && list.items === null) list.items = [];
    else {
      throw new ApiError({
        status: 0,
        message: `The API server sent something that is not a list for GET ${api.collectionPath()}`,
      });
    }
  }
  list.metadata ??= {};
  const apiVersion = api.apiVersion;
  const kind = api.kind;
  for (const item of list.items) {
    if (item.apiVersion === undefined) item.apiVersion = apiVersion;
    if (item.kind === undefined) item.kind = kind;
  }
  return list;
}

/**
 * Lists a whole collection page by page.
 *
 * When a continue token expires (410) the list starts again from the first page, and that page
 * has `restart: true`: the consumer must drop what it got before. The second time, it asks for
 * the whole list in one request (no limit), which cannot expire. A 410 on the first page (an
 * explicit `resourceVersion` that is too old) is thrown.
 *
 * @param client The client.
 * @param api The resource type.
 * @param options Page size, selectors, resource version.
 * @param format The wire format (default JSON).
 * @returns The pages.
 */
export async function* listAll<T extends KubeObject>(
  client: Transport,
  api: Api<T>,
  options: ListAllOptions = {},
  format: ListFormat = listFormatFor(client, api as Api<KubeObject>),
): AsyncGenerator<ListChunk<T>, void, undefined> {
  const { pageSize = DEFAULT_PAGE_SIZE, ...rest } = options;
  let limit = pageSize;
  let restart = false;
  let expiries = 0;
  let token: string | undefined;
  for (;;) {
    let page: KubeList<T>;
    try {
      // The server refuses resourceVersion(Match) together with a continue token: the token
      // already pins the snapshot.
      page = await listPage(
        client,
        api,
        token === undefined ? { ...rest, limit } : {
          ...rest,
          limit,
          continue: token,
          resourceVersion: undefined,
          resourceVersionMatch: undefined,
        },
        format,
      );
    } catch (e) {
      if (token === undefined || !(e instanceof ApiError) || !e.expired) throw e;
      log.info("The continue token of the list of {path} expired: listing again from the start", {
        path: api.collectionPath(),
      });
      // client-go falls back to one unpaged list too: it is consistent and cannot expire.
      limit = ++expiries >= 2 ? 0 : pageSize;
      restart = true;
      token = undefined;
      continue;
    }
    const chunk: ListChunk<T> = {
      items: page.items,
      resourceVersion: page.metadata.resourceVersion ?? "",
      restart,
    };
    restart = false;
    token = page.metadata.continue || undefined;
    yield chunk;
    if (token === undefined) return;
  }
}

/**
 * Lists a whole collection into one consistent snapshot, discarding partial pages when the list
 * had to restart (see {@linkcode listAll}).
 *
 * @param client The client.
 * @param api The resource type.
 * @param options Page size, selectors, resource version.
 * @returns All items and the snapshot's resource version.
 */
export async function listSnapshot<T extends KubeObject>(
  client: Transport,
  api: Api<T>,
  options: ListAllOptions = {},
): Promise<ListSnapshot<T>> {
  let items: T[] = [];
  let resourceVersion = "";
  for await (const chunk of listAll(client, api, options)) {
    if (chunk.restart || items.length === 0) items = chunk.items;
    else for (const item of chunk.items) items.push(item);
    resourceVersion = chunk.resourceVersion;
  }
  return { items, resourceVersion };
}
