/**
 * The one error class callers of this library catch: {@linkcode ApiError}, plus predicates for
 * the common Kubernetes failure reasons.
 *
 * @module
 */

import { statusClass } from "./_client/status_table.ts";

/** A cause entry of a Kubernetes `Status.details.causes` list. */
export interface StatusCause {
  /** Machine-readable reason, e.g. `FieldValueRequired`. */
  reason?: string;
  /** Human-readable description of the cause. */
  message?: string;
  /** The field the cause applies to, e.g. `spec.containers[0].name`. */
  field?: string;
}

/** The `details` of a Kubernetes `Status`. */
export interface StatusDetails {
  /** Name of the object the status is about. */
  name?: string;
  /** API group of the object. */
  group?: string;
  /** Kind of the object. */
  kind?: string;
  /** UID of the object. */
  uid?: string;
  /** The individual causes (for example validation errors or apply conflicts). */
  causes?: StatusCause[];
  /** Seconds the client should wait before retrying, if the server said so. */
  retryAfterSeconds?: number;
}

/** A Kubernetes `meta/v1 Status` object as returned by the API server. */
export interface Status {
  /** Always `"Status"`. */
  kind?: string;
  /** Always `"v1"`. */
  apiVersion?: string;
  /** `"Success"` or `"Failure"`. */
  status?: string;
  /** Human-readable description. */
  message?: string;
  /** Machine-readable reason, e.g. `NotFound`, `Conflict`, `Expired`. */
  reason?: string;
  /** Extended data about the reason. */
  details?: StatusDetails;
  /** The HTTP status code of the failure. */
  code?: number;
  /** Standard list metadata. */
  metadata?: Record<string, unknown>;
}

/** Options for constructing an {@linkcode ApiError}. */
export interface ApiErrorOptions {
  /** The HTTP status code. */
  status: number;
  /** The Kubernetes `reason`, e.g. `NotFound`. */
  reason?: string;
  /** The error message. */
  message: string;
  /** The parsed `Status` body, if the server sent one. */
  body?: Status;
  /** The HTTP method of the failing request. */
  method?: string;
  /** The URL of the failing request (never contains credentials). */
  url?: string;
  /** The underlying error, for network and TLS failures. */
  cause?: unknown;
  /** The `Retry-After` delay the server asked for, in seconds. */
  retryAfterSeconds?: number;
}

/**
 * An error returned by the Kubernetes API server, or a failure to reach it.
 *
 * `status` is the HTTP status code (`0` when no response was received, e.g. connection refused or
 * a TLS failure, with the original error in `cause`). `reason` is the Kubernetes reason
 * (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, `Gone`, `TooManyRequests`, …).
 *
 * @example Handle a missing object
 * ```ts ignore
 * import { isNotFound } from "@denokube/kube";
 * try {
 *   await client.get(Api.v1Pod().within("default"), "web");
 * } catch (e) {
 *   if (!isNotFound(e)) throw e;
 * }
 * ```
 */
export class ApiError extends Error {
  /** The HTTP status code, or 0 when the server could not be reached. */
  readonly status: number;
  /** The Kubernetes reason, e.g. `NotFound`; empty when unknown. */
  readonly reason: string;
  /** Extended data from the `Status`, including `causes`. */
  readonly details: StatusDetails | undefined;
  /** The raw `Status` body as sent by the server, if it sent one. */
  readonly body: Status | undefined;
  /** The HTTP method of the failing request. */
  readonly method: string | undefined;
  /** The URL of the failing request. */
  readonly url: string | undefined;
  /** The `Retry-After` delay in seconds the server asked for, if any. */
  readonly retryAfterSeconds: number | undefined;

  /**
   * Creates an API error.
   *
   * @param options The status, reason, message and context of the error.
   */
  constructor(options: ApiErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.status = options.status;
    this.reason = options.reason ?? "";
    this.body = options.body;
    this.details = options.body?.details;
    this.method = options.method;
    this.url = options.url;
    this.retryAfterSeconds = options.retryAfterSeconds ?? options.body?.details?.retryAfterSeconds;
  }

  /**
   * Builds an error from a Kubernetes `Status` object (an HTTP error body or a watch ERROR event).
   *
   * @param status The `Status` object.
   * @param context The request the status answers, for the message.
   * @returns The error.
   */
  static fromStatus(
    status: Status,
    context: { status?: number; method?: string; url?: string; retryAfterSeconds?: number } = {},
  ): ApiError {
    const code = status.code ?? context.status ?? 0;
    const where = context.method && context.url ? ` (${context.method} ${context.url})` : "";
    const reason = status.reason ?? "";
    const text = status.message ?? (reason || `HTTP ${code}`);
    return new ApiError({
      status: code,
      reason,
      message: `${text}${where}`,
      body: status,
      method: context.method,
      url: context.url,
      retryAfterSeconds: context.retryAfterSeconds,
    });
  }

  /** True when the status says the requested resource version is too old (410 Expired/Gone). */
  get expired(): boolean {
    return this.status === 410 || this.reason === "Expired" || this.reason === "Gone";
  }
}

function hasStatus(e: unknown, status: number, reason?: string): boolean {
  return e instanceof ApiError &&
    (e.status === status || (reason !== undefined && e.reason === reason));
}

/**
 * Tells whether an error is a 404 NotFound from the API server.
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with status 404.
 */
export function isNotFound(e: unknown): e is ApiError {
  return hasStatus(e, 404, "NotFound");
}

/**
 * Tells whether an error is a 409 Conflict (a stale `resourceVersion`, or a server-side apply
 * conflict).
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with reason `Conflict`.
 */
export function isConflict(e: unknown): e is ApiError {
  return e instanceof ApiError && e.status === 409 && e.reason !== "AlreadyExists";
}

/**
 * Tells whether an error is a 409 AlreadyExists from a create.
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with reason `AlreadyExists`.
 */
export function isAlreadyExists(e: unknown): e is ApiError {
  return e instanceof ApiError && e.reason === "AlreadyExists";
}

/**
 * Tells whether an error is a 422 Invalid (validation failure; see `details.causes`).
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with status 422.
 */
export function isInvalid(e: unknown): e is ApiError {
  return hasStatus(e, 422, "Invalid");
}

/**
 * Tells whether an error means a resource version or continue token is too old (410, reason
 * `Expired` or `Gone`).
 *
 * @param e Any thrown value.
 * @returns `true` when the caller should re-list.
 */
export function isExpired(e: unknown): e is ApiError {
  return e instanceof ApiError && e.expired;
}

/**
 * Tells whether an error is a 403 Forbidden.
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with status 403.
 */
export function isForbidden(e: unknown): e is ApiError {
  return hasStatus(e, 403, "Forbidden");
}

/**
 * Tells whether an error is a 401 Unauthorized.
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with status 401.
 */
export function isUnauthorized(e: unknown): e is ApiError {
  return hasStatus(e, 401, "Unauthorized");
}

/**
 * Tells whether an error is a 429 TooManyRequests.
 *
 * @param e Any thrown value.
 * @returns `true` for an {@linkcode ApiError} with status 429.
 */
export function isTooManyRequests(e: unknown): e is ApiError {
  return hasStatus(e, 429, "TooManyRequests");
}

/**
 * Tells whether an error is worth retrying: the server could not be reached (status 0: refused,
 * reset, TLS, a broken or stalled stream), or answered 408, 429 or any 5xx. This is the same
 * rule the watch loops (`Informer`, `Reflector`) use to retry with backoff;
 * `410 Expired` is not transient (list again), and every other status is permanent.
 *
 * @param e Any thrown value.
 * @returns `true` for transient failures.
 *
 * @example
 * ```ts
 * import { ApiError, isTransient } from "@denokube/kube";
 * console.log(isTransient(new ApiError({ status: 503, message: "busy" }))); // true
 * ```
 */
export function isTransient(e: unknown): boolean {
  return e instanceof ApiError && !e.expired && statusClass(e.status) === "transient";
}
