// Internal leaf module (imports nothing): the one table of what an HTTP status code means to this
// library — the Kubernetes `reason` the API server pairs with it (as in apimachinery's
// NewGenericServerResponse), whether a failure with it is transient, permanent or means "list
// again", and whether the client's request loop retries it by itself. The client's retries
// (`_client/transport.ts`), the watch loop (`_client/retry.ts`, `_client/watcher.ts`), the public `isTransient`
// (`errors.ts`) and the fake server's injected faults all read this table, and a unit test
// (tests/unit/retry_policy.test.ts) checks each of them against it.

/** What a failure means for whoever retries it. */
export type StatusClass = "transient" | "permanent" | "relist";

/**
 * Which requests the client's own request loop retries after this status (with backoff and
 * `Retry-After`): `all` methods, only idempotent `reads` (GET, HEAD), or `never` (the watch loops
 * still retry transient statuses, from a fresh request).
 */
export type ClientRetry = "all" | "reads" | "never";

interface Row {
  reason?: string;
  class: StatusClass;
  clientRetry: ClientRetry;
}

const TABLE: Readonly<Record<number, Row>> = {
  // No response: connection refused or reset, TLS failure, broken or stalled stream, malformed line.
  0: { class: "transient", clientRetry: "never" },
  400: { reason: "BadRequest", class: "permanent", clientRetry: "never" },
  401: { reason: "Unauthorized", class: "permanent", clientRetry: "never" },
  403: { reason: "Forbidden", class: "permanent", clientRetry: "never" },
  404: { reason: "NotFound", class: "permanent", clientRetry: "never" },
  405: { reason: "MethodNotAllowed", class: "permanent", clientRetry: "never" },
  406: { reason: "NotAcceptable", class: "permanent", clientRetry: "never" },
  408: { class: "transient", clientRetry: "never" },
  409: { reason: "Conflict", class: "permanent", clientRetry: "never" },
  410: { reason: "Expired", class: "relist", clientRetry: "never" },
  413: { reason: "RequestEntityTooLarge", class: "permanent", clientRetry: "never" },
  415: { reason: "UnsupportedMediaType", class: "permanent", clientRetry: "never" },
  422: { reason: "Invalid", class: "permanent", clientRetry: "never" },
  429: { reason: "TooManyRequests", class: "transient", clientRetry: "all" },
  500: { reason: "InternalError", class: "transient", clientRetry: "never" },
  501: { class: "transient", clientRetry: "never" },
  502: { class: "transient", clientRetry: "never" },
  503: { reason: "ServiceUnavailable", class: "transient", clientRetry: "all" },
  504: { reason: "Timeout", class: "transient", clientRetry: "reads" },
};

/** The status codes the table names explicitly (any other 5xx is transient, anything else permanent). */
export const TABLED_STATUSES: readonly number[] = Object.keys(TABLE).map(Number);

function row(code: number): Row {
  return TABLE[code] ?? { class: code >= 500 ? "transient" : "permanent", clientRetry: "never" };
}

/** The reason for an HTTP status code, or `undefined` for codes without a standard reason. */
export function reasonForCode(code: number): string | undefined {
  return TABLE[code]?.reason;
}

/** Whether a failure with this status is transient, permanent, or means "list again". */
export function statusClass(code: number): StatusClass {
  return row(code).class;
}

/** Whether the client's request loop retries this status for this method. */
export function clientRetries(code: number, method: string): boolean {
  const retry = row(code).clientRetry;
  return retry === "all" || (retry === "reads" && (method === "GET" || method === "HEAD"));
}
