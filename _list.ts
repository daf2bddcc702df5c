// Internal: paged lists, and the recovery rules (error classes, retry delays) that the Informer
// and the Reflector share. Not exported from the package root.

import { getLogger, type Logger } from "@logtape/logtape";
import type { Api, KubeList, KubeObject } from "./api.ts";
import type { Client, QueryParams } from "./client.ts";
import { ApiError } from "./errors.ts";
import { Backoff, type BackoffOptions, sleep } from "./_backoff.ts";

const log = getLogger(["kube", "list"]);

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
 * @returns The list.
 */
export async function listPage<T extends KubeObject>(
  client: Client,
  api: Api<T>,
  options: ListPageOptions = {},
): Promise<KubeList<T>> {
  const list = await client.requestJson<KubeList<T>>({
    path: api.collectionPath(),
    query: listQuery(options),
    signal: options.signal,
    retry: options.retry,
  });
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
 * @returns The pages.
 */
export async function* listAll<T extends KubeObject>(
  client: Client,
  api: Api<T>,
  options: ListAllOptions = {},
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
  client: Client,
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

// ---------------------------------------------------------------------------------------------
// Recovery rules shared by the Informer and the Reflector.

/** What to do after a failure. */
export type Recovery = "relist" | "retry" | "fail";

/**
 * Classifies a failure of a list or watch.
 *
 * - `relist`: 410 Expired/Gone: the resource version is too old.
 * - `retry`: transient: the server could not be reached, the stream broke, stalled or sent a
 *   malformed line (status 0), 408, 429, or any 5xx.
 * - `fail`: anything else (401, 403, 404, 400, 422, …, or a non-API error): permanent.
 *
 * @param error The failure.
 * @returns The recovery.
 */
export function recoveryFor(error: unknown): Recovery {
  if (!(error instanceof ApiError)) return "fail";
  if (error.expired) return "relist";
  const s = error.status;
  if (s === 0 || s === 408 || s === 429 || s >= 500) return "retry";
  return "fail";
}

/** The longest `Retry-After` honoured, in milliseconds. */
const MAX_RETRY_AFTER_MS = 600_000;

/**
 * The delay before retrying after a transient failure: the server's `Retry-After` when it sent
 * one, else the next backoff step.
 *
 * @param error The failure.
 * @param backoff The backoff sequence.
 * @returns Milliseconds to wait.
 */
export function retryDelay(error: unknown, backoff: Backoff): number {
  const after = error instanceof ApiError ? error.retryAfterSeconds : undefined;
  if (after !== undefined && Number.isFinite(after) && after >= 0) {
    backoff.next(); // a server that asks for patience still counts as a failure
    return Math.min(after * 1000, MAX_RETRY_AFTER_MS);
  }
  return backoff.next();
}

/** Options of {@linkcode RetryPacer}: the backoff and a replaceable sleep (for tests). */
export interface RetryPacerOptions {
  /** Backoff of retries after transient failures. */
  backoff?: BackoffOptions;
  /** Waits between retries. Must reject with the signal's reason on abort. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * The pace of a watch loop (Informer, Reflector): decides after each failure whether to re-list,
 * retry after a delay, or give up, and waits that delay before the next attempt. One place for
 * the rules, the backoff state and their log lines.
 */
export class RetryPacer {
  #backoff: Backoff;
  #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #pending = 0;
  #log: Logger;
  #what: string;

  /**
   * @param options Backoff and sleep.
   * @param logger The logger of the loop.
   * @param what What the loop does, for log lines: `Watch` or `Sync`.
   */
  constructor(options: RetryPacerOptions, logger: Logger, what: string) {
    this.#backoff = new Backoff(options.backoff);
    this.#sleep = options.sleep ?? sleep;
    this.#log = logger;
    this.#what = what;
  }

  /** Waits the delay scheduled by the last failure or idle stream, if any. */
  async wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#pending <= 0) return;
    const delay = this.#pending;
    this.#pending = 0;
    await this.#sleep(delay, signal);
  }

  /** A stream ended without a single event: wait a backoff step so as not to hammer the server. */
  idle(path: string): void {
    this.#pending = this.#backoff.next();
    this.#log.debug("{what} of {path} ended without events; again in {delayMs} ms", {
      what: this.#what,
      path,
      delayMs: Math.round(this.#pending),
    });
  }

  /**
   * Decides after a failure. Throws the signal's reason when aborted, and the error itself when
   * it is permanent; returns `relist` for an expired resource version, and `retry` (with the
   * delay scheduled for {@linkcode RetryPacer.prototype.wait}) for a transient failure.
   *
   * @param error The failure.
   * @param signal The loop's signal.
   * @param path The collection, for log lines.
   * @param resourceVersion The version that expired, for log lines.
   * @returns `relist` or `retry`.
   */
  decide(
    error: unknown,
    signal: AbortSignal | undefined,
    path: string,
    resourceVersion: string | undefined,
  ): "relist" | "retry" {
    if (signal?.aborted) throw signal.reason;
    switch (recoveryFor(error)) {
      case "relist":
        this.#log.info("Resource version {resourceVersion} of {path} expired: listing again", {
          path,
          resourceVersion: resourceVersion ?? "",
        });
        return "relist";
      case "retry": {
        this.#pending = retryDelay(error, this.#backoff);
        this.#log.warn("{what} of {path} failed ({error}); retrying in {delayMs} ms", {
          what: this.#what,
          path,
          error: describe(error),
          delayMs: Math.round(this.#pending),
        });
        return "retry";
      }
      default:
        this.#log.error("{what} of {path} failed permanently: {error}", {
          what: this.#what,
          path,
          error: describe(error),
        });
        throw error;
    }
  }
}

/**
 * A server-side watch timeout for long-running loops: random in [300, 600] seconds, like
 * client-go, so that many watchers do not reconnect at the same time.
 *
 * @returns Seconds.
 */
export function randomWatchTimeout(): number {
  return 300 + Math.floor(Math.random() * 301);
}

/**
 * A short description of an error for a log line (never includes headers or bodies that could
 * hold credentials).
 *
 * @param error The error.
 * @returns The description.
 */
export function describe(error: unknown): string {
  if (error instanceof ApiError) {
    return `${error.status}${error.reason ? ` ${error.reason}` : ""}: ${error.message}`;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
