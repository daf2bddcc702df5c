// Internal: the `Status` error bodies of the fake API server, worded like the real kube-apiserver
// (k8s.io/apimachinery/pkg/api/errors). Not part of the public API.

import { reasonForCode } from "../_client/status_table.ts";
import type { Status, StatusCause } from "../errors.ts";
import { quote } from "./_json.ts";

/** A group and resource (plural), as the real server names them in messages: `deployments.apps`. */
export interface GroupResource {
  group: string;
  resource: string;
}

/** An error that the fake answers as a `Status` body with its HTTP code. */
export class StatusError extends Error {
  /** The Status body. */
  readonly status: Status;
  /** Extra response headers (e.g. `Retry-After`). */
  readonly headers: Record<string, string>;

  constructor(status: Status, headers: Record<string, string> = {}) {
    super(status.message ?? status.reason ?? "error");
    this.name = "StatusError";
    this.status = status;
    this.headers = headers;
  }

  /** The HTTP code. */
  get code(): number {
    return this.status.code ?? 500;
  }
}

/**
 * Builds a failure `Status` object.
 *
 * @param code HTTP code.
 * @param reason Kubernetes reason.
 * @param message Message.
 * @param details Details (the real server always sends `details` for most reasons).
 * @returns The Status.
 */
export function failure(
  code: number,
  reason: string,
  message: string,
  details?: Status["details"],
): Status {
  const status: Status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
  };
  if (details !== undefined) status.details = details;
  status.code = code;
  return status;
}

/**
 * `group.resource` or `resource`, as `schema.GroupResource.String()`.
 *
 * @param gr Group and resource.
 * @returns The qualified name.
 */
export function qualified(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

function grDetails(gr: GroupResource, name?: string): NonNullable<Status["details"]> {
  const details: NonNullable<Status["details"]> = {};
  if (name) details.name = name;
  if (gr.group) details.group = gr.group;
  if (gr.resource) details.kind = gr.resource;
  return details;
}

/** 404 NotFound: `pods "x" not found`. */
export function notFound(gr: GroupResource, name: string): StatusError {
  return new StatusError(
    failure(404, "NotFound", `${qualified(gr)} ${quote(name)} not found`, grDetails(gr, name)),
  );
}

/** 404 for a path the server does not serve (go-restful's answer inside a known group). */
export function pathNotFound(): StatusError {
  return new StatusError(
    failure(404, "NotFound", "the server could not find the requested resource", {}),
  );
}

/** 409 AlreadyExists: `pods "x" already exists`. */
export function alreadyExists(gr: GroupResource, name: string): StatusError {
  return new StatusError(
    failure(
      409,
      "AlreadyExists",
      `${qualified(gr)} ${quote(name)} already exists`,
      grDetails(gr, name),
    ),
  );
}

/** 409 Conflict on a stale resourceVersion (or another precondition). */
export function conflict(gr: GroupResource, name: string, why: string): StatusError {
  return new StatusError(
    failure(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualified(gr)} ${quote(name)}: ${why}`,
      grDetails(gr, name),
    ),
  );
}

/** The reason text the real server uses for a stale resourceVersion. */
export const OBJECT_MODIFIED =
  "the object has been modified; please apply your changes to the latest version and try again";

/** A field validation error, as `field.Error`. */
export interface FieldError {
  /** `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, `FieldValueNotSupported`… */
  type: string;
  /** E.g. `metadata.name`. */
  field: string;
  /** The error body without the field: `Required value: …`, `Invalid value: "x": …`. */
  body: string;
}

/** Builds a `Required value` field error. */
export function required(field: string, detail = ""): FieldError {
  return {
    type: "FieldValueRequired",
    field,
    body: `Required value${detail ? `: ${detail}` : ""}`,
  };
}

/** Builds an `Invalid value` field error for a string or other value. */
export function invalidValue(field: string, value: unknown, detail: string): FieldError {
  const shown = typeof value === "string"
    ? quote(value)
    : typeof value === "number" || typeof value === "boolean"
    ? String(value)
    : JSON.stringify(value);
  return { type: "FieldValueInvalid", field, body: `Invalid value: ${shown}: ${detail}` };
}

/** Builds a `Forbidden` field error. */
export function forbiddenField(field: string, detail: string): FieldError {
  return { type: "FieldValueForbidden", field, body: `Forbidden: ${detail}` };
}

/** Builds an `Unsupported value` field error. */
export function notSupported(field: string, value: string, allowed: string[]): FieldError {
  return {
    type: "FieldValueNotSupported",
    field,
    body: `Unsupported value: ${quote(value)}: supported values: ${allowed.map(quote).join(", ")}`,
  };
}

/**
 * 422 Invalid: `Pod "x" is invalid: metadata.name: Required value: …`.
 *
 * @param group API group of the kind.
 * @param kind Kind (not resource), e.g. `Pod`.
 * @param name Object name (may be empty).
 * @param errors The field errors.
 * @returns The error.
 */
export function invalid(
  group: string,
  kind: string,
  name: string,
  errors: FieldError[],
): StatusError {
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  const causes: StatusCause[] = errors.map((e) => ({
    reason: e.type,
    message: e.body,
    field: e.field,
  }));
  const texts = errors.map((e) => `${e.field}: ${e.body}`);
  const aggregated = texts.length === 0
    ? ""
    : texts.length === 1
    ? `: ${texts[0]}`
    : `: [${texts.join(", ")}]`;
  const details: NonNullable<Status["details"]> = {};
  if (name) details.name = name;
  if (group) details.group = group;
  details.kind = kind;
  details.causes = causes;
  return new StatusError(
    failure(422, "Invalid", `${qualifiedKind} ${quote(name)} is invalid${aggregated}`, details),
  );
}

/** 400 BadRequest. */
export function badRequest(message: string): StatusError {
  return new StatusError(failure(400, "BadRequest", message));
}

/** 405 MethodNotAllowed, as go-restful answers a known path with another method. */
export function methodNotAllowed(): StatusError {
  return new StatusError(
    failure(
      405,
      "MethodNotAllowed",
      "the server does not allow this method on the requested resource",
      {},
    ),
  );
}

/** 415 UnsupportedMediaType for a patch content type. */
export function unsupportedMediaType(accepted: string[]): StatusError {
  return new StatusError(
    failure(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: ${
        accepted.join(", ")
      }`,
    ),
  );
}

/** 410 Expired. */
export function expired(message: string, continueToken?: string): StatusError {
  const status = failure(410, "Expired", message);
  if (continueToken) status.metadata = { continue: continueToken };
  return new StatusError(status);
}

/** 410 Gone (the older reason some servers and proxies still send). */
export function gone(message: string): StatusError {
  return new StatusError(failure(410, "Gone", message));
}

/** Message of an expired continue token (etcd3 store, `inconsistentContinue`). */
export const CONTINUE_EXPIRED =
  "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/** Message of an expired list resourceVersion (etcd3 store). */
export const LIST_EXPIRED = "The resourceVersion for the provided list is too old.";

/** 504 Timeout: the requested resourceVersion is newer than the server's. */
export function tooLargeResourceVersion(requested: number, current: number): StatusError {
  return new StatusError(
    failure(
      504,
      "Timeout",
      `Timeout: Too large resource version: ${requested}, current: ${current}`,
      {
        causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
        retryAfterSeconds: 1,
      },
    ),
  );
}

/** 403 Forbidden with the RBAC-style message. */
export function forbidden(
  gr: GroupResource,
  name: string,
  verb: string,
  namespace: string,
  user: string,
): StatusError {
  const what = name ? `${qualified(gr)} ${quote(name)}` : qualified(gr);
  const where = namespace ? ` in the namespace ${quote(namespace)}` : " at the cluster scope";
  return new StatusError(
    failure(
      403,
      "Forbidden",
      `${what} is forbidden: User ${quote(user)} cannot ${verb} resource ${
        quote(gr.resource)
      } in API group ${quote(gr.group)}${where}`,
      grDetails(gr, name),
    ),
  );
}

/** The reason the real server pairs with an HTTP code (NewGenericServerResponse). */
export function reasonFor(code: number): string {
  return reasonForCode(code) ?? (code >= 500 ? "InternalError" : "Unknown");
}

/** A plausible message for an HTTP code, for injected faults. */
export function messageFor(code: number): string {
  switch (code) {
    case 401:
      return "Unauthorized";
    case 429:
      return "Too many requests, please try again later.";
    case 500:
      return "Internal error occurred: injected fault";
    case 503:
      return "the server is currently unable to handle the request";
    case 504:
      return "Timeout: request did not complete within the allowed duration";
    case 410:
      return LIST_EXPIRED;
    default:
      return `injected fault: HTTP ${code}`;
  }
}
