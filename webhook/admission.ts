/**
 * Admission webhooks (`admission.k8s.io/v1` `AdmissionReview`): typed requests, `validate` and
 * `mutate` handlers built from the same {@linkcode Api}s the controllers use, and the review
 * answering that turns a handler's result, error or time-out into a response the API server
 * understands. A mutation answers an RFC 6902 JSON Patch computed from the handler's object.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import jsonpatch from "fast-json-patch";
import type { Api, KubeObject } from "../api.ts";
import { type Clock, systemClock } from "../clock.ts";

const log = getLogger(["kube", "webhook"]);

/** Group, version and kind, as an admission request names them. */
export interface GroupVersionKind {
  /** API group, `""` for the core group. */
  group: string;
  /** Version, e.g. `v1`. */
  version: string;
  /** Kind, e.g. `Pod`. */
  kind: string;
}

/** Group, version and resource (plural), as an admission request names them. */
export interface GroupVersionResource {
  /** API group, `""` for the core group. */
  group: string;
  /** Version, e.g. `v1`. */
  version: string;
  /** Plural resource name, e.g. `pods`. */
  resource: string;
}

/** Who sent the request that is being admitted. */
export interface AdmissionUserInfo {
  /** The user name, e.g. `system:serviceaccount:ns:sa` or `kubernetes-admin`. */
  username?: string;
  /** The user's UID. */
  uid?: string;
  /** The user's groups. */
  groups?: string[];
  /** Further information from the authenticator. */
  extra?: Record<string, string[]>;
}

/** The operation being admitted. */
export type AdmissionOperation = "CREATE" | "UPDATE" | "DELETE" | "CONNECT";

/**
 * An admission request (`AdmissionReview.request`), typed by the resource the webhook serves.
 *
 * @typeParam T The object type.
 */
export interface AdmissionRequest<T extends KubeObject = KubeObject> {
  /** Identifies this request; the response echoes it. */
  uid: string;
  /** The kind of the object as the webhook sees it. */
  kind: GroupVersionKind;
  /** The resource being accessed. */
  resource: GroupVersionResource;
  /** The subresource, e.g. `status` or `scale`, if any. */
  subResource?: string;
  /** The kind the original request was made for (another version, with `matchPolicy`). */
  requestKind?: GroupVersionKind;
  /** The resource the original request was made for. */
  requestResource?: GroupVersionResource;
  /** The object's name (empty on a create with `generateName`). */
  name?: string;
  /** The object's namespace, for namespaced resources. */
  namespace?: string;
  /** `CREATE`, `UPDATE`, `DELETE` or `CONNECT`. */
  operation: AdmissionOperation;
  /** Who asks. */
  userInfo: AdmissionUserInfo;
  /** The new object (`null` on delete). */
  object: T | null;
  /** The existing object on update and delete (`null` on create). */
  oldObject: T | null;
  /** Whether the request is a dry run: a webhook with side effects must not make them. */
  dryRun: boolean;
  /** The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`). */
  options?: Record<string, unknown>;
}

/** The `status` of a refused admission response (a `metav1.Status` subset). */
export interface AdmissionStatus {
  /** The message the client (kubectl) shows. */
  message?: string;
  /** A machine-readable reason, e.g. `Forbidden`, `Invalid`. */
  reason?: string;
  /** The HTTP status code the API server answers the client with, e.g. 403. */
  code?: number;
}

/** An admission response (`AdmissionReview.response`). */
export interface AdmissionResponse {
  /** The request's uid. */
  uid: string;
  /** Whether the request is admitted. */
  allowed: boolean;
  /** Why not (only when refused). */
  status?: AdmissionStatus;
  /** `JSONPatch` when `patch` is set. */
  patchType?: "JSONPatch";
  /** The base64 of the JSON Patch (RFC 6902) to apply to the object. */
  patch?: string;
  /** Warnings shown to the client (kubectl prints them). */
  warnings?: string[];
}

/** A whole `AdmissionReview` (`admission.k8s.io/v1`). */
export interface AdmissionReview<T extends KubeObject = KubeObject> {
  /** `admission.k8s.io/v1`. */
  apiVersion: "admission.k8s.io/v1";
  /** `AdmissionReview`. */
  kind: "AdmissionReview";
  /** The request (from the API server). */
  request?: AdmissionRequest<T>;
  /** The response (from the webhook). */
  response?: AdmissionResponse;
}

/** What a validating handler decides. */
export type Verdict =
  | { allowed: true; warnings?: string[] }
  | { allowed: false; message: string; reason?: string; code?: number; warnings?: string[] };

/**
 * Admits the request.
 *
 * @param warnings Warnings for the client (kubectl prints them as `Warning: …`).
 * @returns The verdict.
 * @example
 * ```ts
 * import { allow } from "@denokube/kube/webhook";
 * const verdict = allow("spec.legacy is deprecated");
 * ```
 */
export function allow(...warnings: string[]): Verdict {
  return warnings.length ? { allowed: true, warnings } : { allowed: true };
}

/**
 * Refuses the request with a message the client shows.
 *
 * @param message Why, e.g. `spec.replicas must be at most 10, got 12`.
 * @param options The reason (default `Forbidden`), the HTTP code (default 403) and warnings.
 * @returns The verdict.
 * @example
 * ```ts
 * import { deny } from "@denokube/kube/webhook";
 * const verdict = deny("spec.replicas must be at most 10", { reason: "Invalid", code: 422 });
 * ```
 */
export function deny(
  message: string,
  options: { reason?: string; code?: number; warnings?: string[] } = {},
): Verdict {
  return { allowed: false, message, ...options };
}

/**
 * Thrown by a handler (validating or mutating) to refuse the request with this message; unlike
 * any other error, it is the intended answer and is not logged as a failure.
 */
export class AdmissionDenied extends Error {
  /** The machine-readable reason. */
  readonly reason: string;
  /** The HTTP status code. */
  readonly code: number;

  /**
   * Creates the refusal.
   *
   * @param message What the client is told.
   * @param options Reason (default `Forbidden`) and code (default 403).
   */
  constructor(message: string, options: { reason?: string; code?: number } = {}) {
    super(message);
    this.name = "AdmissionDenied";
    this.reason = options.reason ?? "Forbidden";
    this.code = options.code ?? 403;
  }
}

/** What a handler gets besides the request. */
export interface AdmissionContext {
  /** Aborts when the configuration's `timeoutSeconds` is about to run out. */
  signal: AbortSignal;
  /** The webhook's name. */
  webhook: string;
}

/**
 * A validating handler: decides on the request; returning nothing admits it.
 *
 * @typeParam T The object type.
 */
export type ValidateHandler<T extends KubeObject> = (
  request: AdmissionRequest<T>,
  context: AdmissionContext,
) => Verdict | void | Promise<Verdict | void>;

/**
 * A mutating handler: gets a copy of the object (the new one; the old one on delete) and returns
 * the object it should be, or changes the copy and returns nothing. Throw
 * {@linkcode AdmissionDenied} to refuse.
 *
 * @typeParam T The object type.
 */
export type MutateHandler<T extends KubeObject> = (
  object: T,
  request: AdmissionRequest<T>,
  context: AdmissionContext,
) => T | void | Promise<T | void>;

/** A `matchConditions` entry: a CEL expression the API server evaluates before calling. */
export interface MatchCondition {
  /** The condition's name. */
  name: string;
  /** The CEL expression, e.g. `request.userInfo.username != 'system:admin'`. */
  expression: string;
}

/** A label selector (`matchLabels`, `matchExpressions`). */
export interface LabelSelector {
  /** Labels that must have these values. */
  matchLabels?: Record<string, string>;
  /** Set-based requirements. */
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

/** How the API server calls one webhook; becomes its entry in the webhook configuration. */
export interface WebhookOptions {
  /**
   * The webhook's name in its configuration, a qualified name of at least three segments.
   * Default `<validate|mutate>-<plural>.<group or "core">.kube.webhook`.
   */
  name?: string;
  /** The path it is served on. Default `/<validate|mutate>-<group>-<version>-<kind>`, lower case. */
  path?: string;
  /** The operations it is called for. Default `CREATE` and `UPDATE`. */
  operations?: AdmissionOperation[];
  /** Also for these subresources (e.g. `status`), besides the main resource. */
  subresources?: string[];
  /** What happens when the webhook cannot be called: `Fail` (default) refuses, `Ignore` admits. */
  failurePolicy?: "Fail" | "Ignore";
  /** `None` (default) or `NoneOnDryRun`: whether calling it has side effects. */
  sideEffects?: "None" | "NoneOnDryRun";
  /** How long the API server waits, 1 to 30 seconds. Default 10. */
  timeoutSeconds?: number;
  /** Only objects in namespaces with these labels. */
  namespaceSelector?: LabelSelector;
  /** Only objects with these labels. */
  objectSelector?: LabelSelector;
  /** CEL conditions that must all hold for the call to be made. */
  matchConditions?: MatchCondition[];
  /** `Equivalent` (default: also requests to other versions of the resource) or `Exact`. */
  matchPolicy?: "Equivalent" | "Exact";
  /** Mutating only: `Never` (default) or `IfNeeded` (call again after later mutations). */
  reinvocationPolicy?: "Never" | "IfNeeded";
  /** Source of time for the handler's deadline. Default {@linkcode systemClock}. */
  clock?: Clock;
}

/** An admission webhook: what the server serves and the registration derives. */
export interface AdmissionWebhook {
  /** `validating` or `mutating`. */
  readonly type: "validating" | "mutating";
  /** The webhook's name (a qualified name). */
  readonly name: string;
  /** The path it is served on. */
  readonly path: string;
  /** The resource it admits. */
  readonly api: Api;
  /** The options it was made with (operations, policies, selectors). */
  readonly options: Readonly<WebhookOptions>;
  /**
   * Answers one review request. Never rejects: a handler's error or time-out becomes a refusal.
   *
   * @param request The review's request.
   * @returns The response.
   */
  admit(request: AdmissionRequest): Promise<AdmissionResponse>;
}

/** Fields a mutation must not change. */
const IDENTITY: readonly (readonly string[])[] = [
  ["apiVersion"],
  ["kind"],
  ["metadata", "name"],
  ["metadata", "namespace"],
];

/** Largest `timeoutSeconds` the API server accepts. */
const MAX_TIMEOUT_SECONDS = 30;

/** How much earlier than the API server's deadline the handler's deadline falls. */
const DEADLINE_MARGIN_MS = 250;

function defaults(type: "validate" | "mutate", api: Api, options: WebhookOptions) {
  const timeoutSeconds = options.timeoutSeconds ?? 10;
  if (
    !Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > MAX_TIMEOUT_SECONDS
  ) {
    throw new TypeError(
      `${type}(${api.kind}): timeoutSeconds must be an integer from 1 to 30, got ${timeoutSeconds}`,
    );
  }
  const name = options.name ?? `${type}-${api.plural}.${api.group || "core"}.kube.webhook`;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$/.test(name)) {
    throw new TypeError(
      `${type}(${api.kind}): the webhook name ${
        JSON.stringify(name)
      } must be a lower-case qualified name of at least three segments, e.g. "validate-foos.example.com"`,
    );
  }
  const path = options.path ??
    `/${type}-${api.group.replaceAll(".", "-") || "core"}-${api.version}-${api.kind}`.toLowerCase();
  if (!path.startsWith("/") || /[?#\s]/.test(path)) {
    throw new TypeError(
      `${type}(${api.kind}): path must start with "/" and hold no "?", "#" or space`,
    );
  }
  return { timeoutSeconds, name, path };
}

/** A parse function, when the Api is a custom resource with schemas. */
function parserOf(api: Api): ((object: unknown) => KubeObject) | undefined {
  const parse = (api as unknown as { parse?: (o: unknown) => KubeObject }).parse;
  return typeof parse === "function" ? parse.bind(api) : undefined;
}

function keyOf(request: AdmissionRequest): string {
  const o = request.object ?? request.oldObject;
  const name = request.name || o?.metadata?.name || o?.metadata?.generateName || "<unnamed>";
  const ns = request.namespace || o?.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

function refused(uid: string, message: string, reason: string, code: number, warnings?: string[]) {
  const response: AdmissionResponse = { uid, allowed: false, status: { message, reason, code } };
  if (warnings?.length) response.warnings = warnings;
  return response;
}

/**
 * Runs a handler against the deadline and turns a throw into a refusal.
 */
async function run<R>(
  webhook: string,
  request: AdmissionRequest,
  timeoutSeconds: number,
  clock: Clock,
  body: (context: AdmissionContext) => Promise<R>,
): Promise<{ ok: true; value: R } | { ok: false; response: AdmissionResponse }> {
  const controller = new AbortController();
  const deadline = Math.max(1, timeoutSeconds * 1000 - DEADLINE_MARGIN_MS);
  const timer = new AbortController();
  const timeout = clock.sleep(deadline, timer.signal).then(
    () => "timeout" as const,
    () => "none" as const,
  );
  try {
    const outcome = await Promise.race([
      body({ signal: controller.signal, webhook }).then((value) => ({ value })),
      timeout,
    ]);
    if (outcome === "timeout" || outcome === "none") {
      controller.abort(new Error(`admission webhook ${webhook} timed out`));
      log.error("Admission webhook {webhook} did not answer for {key} within {ms} ms", {
        webhook,
        key: keyOf(request),
        ms: deadline,
      });
      return {
        ok: false,
        response: refused(
          request.uid,
          `admission webhook "${webhook}" did not answer within ${deadline} ms`,
          "Timeout",
          504,
        ),
      };
    }
    return { ok: true, value: outcome.value };
  } catch (e) {
    if (e instanceof AdmissionDenied) {
      return { ok: false, response: refused(request.uid, e.message, e.reason, e.code) };
    }
    log.error("Admission webhook {webhook} failed for {operation} of {key}: {error}", {
      webhook,
      operation: request.operation,
      key: keyOf(request),
      error: e,
    });
    return {
      ok: false,
      response: refused(
        request.uid,
        `admission webhook "${webhook}" failed: internal error (${
          e instanceof Error ? e.name : typeof e
        }); see the operator's log`,
        "InternalError",
        500,
      ),
    };
  } finally {
    timer.abort();
    controller.abort();
  }
}

/** Parses the request's objects with the Api's schema; a failure is a refusal. */
function typed(
  api: Api,
  request: AdmissionRequest,
): { ok: true; request: AdmissionRequest } | { ok: false; response: AdmissionResponse } {
  const parse = parserOf(api);
  if (!parse) return { ok: true, request };
  try {
    return {
      ok: true,
      request: {
        ...request,
        object: request.object ? parse(request.object) : null,
        oldObject: request.oldObject ? parse(request.oldObject) : null,
      },
    };
  } catch (e) {
    return {
      ok: false,
      response: refused(request.uid, e instanceof Error ? e.message : String(e), "Invalid", 422),
    };
  }
}

/**
 * A validating admission webhook for a resource: the handler admits or refuses each request.
 *
 * @param api The resource, e.g. `Api.v1ConfigMap()` or a custom resource from
 *   `defineCustomResource` (its objects are parsed with its schema before the handler sees them).
 * @param handler Returns {@linkcode allow}, {@linkcode deny} or nothing (admit); may throw
 *   {@linkcode AdmissionDenied}. Any other error, or running past `timeoutSeconds`, refuses with a
 *   clear message and is logged with the object's key.
 * @param options Name, path, operations, policies, selectors.
 * @returns The webhook, for a {@linkcode WebhookServer} and the registration.
 * @throws {TypeError} On an invalid name, path or `timeoutSeconds`.
 * @example Refuse more than ten replicas
 * ```ts ignore
 * import { deny, validate } from "@denokube/kube/webhook";
 * const replicas = validate(Foo, (req) => {
 *   const n = req.object?.spec.replicas ?? 0;
 *   if (n > 10) return deny(`spec.replicas must be at most 10, got ${n}`);
 * });
 * ```
 */
export function validate<T extends KubeObject>(
  api: Api<T>,
  handler: ValidateHandler<T>,
  options: WebhookOptions = {},
): AdmissionWebhook {
  const { timeoutSeconds, name, path } = defaults("validate", api, options);
  const clock = options.clock ?? systemClock;
  return {
    type: "validating",
    name,
    path,
    api: api as unknown as Api,
    options,
    async admit(raw: AdmissionRequest): Promise<AdmissionResponse> {
      const t = typed(api as unknown as Api, raw);
      if (!t.ok) return t.response;
      const result = await run(
        name,
        raw,
        timeoutSeconds,
        clock,
        async (ctx) => await handler(t.request as AdmissionRequest<T>, ctx),
      );
      if (!result.ok) return result.response;
      const verdict = result.value;
      if (!verdict || verdict.allowed) {
        const response: AdmissionResponse = { uid: raw.uid, allowed: true };
        if (verdict?.warnings?.length) response.warnings = verdict.warnings;
        return response;
      }
      return refused(
        raw.uid,
        verdict.message,
        verdict.reason ?? "Forbidden",
        verdict.code ?? 403,
        verdict.warnings,
      );
    },
  };
}

/**
 * A mutating admission webhook for a resource: the handler returns the object as it should be,
 * and the webhook answers the JSON Patch (RFC 6902) from the request's object to it. A mutation
 * that changes `apiVersion`, `kind`, `metadata.name` or `metadata.namespace` is refused.
 *
 * @param api The resource (custom resources are parsed with their schema first, so the handler
 *   sees the schema's defaults, which become part of the patch).
 * @param handler Gets a deep copy of the object; returns the changed object, or changes the copy
 *   and returns nothing. May throw {@linkcode AdmissionDenied}.
 * @param options Name, path, operations, policies, selectors.
 * @returns The webhook.
 * @throws {TypeError} On an invalid name, path or `timeoutSeconds`.
 * @example Default the replicas
 * ```ts ignore
 * import { mutate } from "@denokube/kube/webhook";
 * const defaults = mutate(Foo, (foo) => {
 *   foo.spec.replicas ??= 1;
 * });
 * ```
 */
export function mutate<T extends KubeObject>(
  api: Api<T>,
  handler: MutateHandler<T>,
  options: WebhookOptions = {},
): AdmissionWebhook {
  const { timeoutSeconds, name, path } = defaults("mutate", api, options);
  const clock = options.clock ?? systemClock;
  return {
    type: "mutating",
    name,
    path,
    api: api as unknown as Api,
    options,
    async admit(raw: AdmissionRequest): Promise<AdmissionResponse> {
      const original = raw.object ?? raw.oldObject;
      if (!original) return { uid: raw.uid, allowed: true };
      const t = typed(api as unknown as Api, raw);
      if (!t.ok) return t.response;
      const subject = (t.request.object ?? t.request.oldObject) as T;
      const copy = structuredClone(subject);
      const result = await run(name, raw, timeoutSeconds, clock, async (ctx) => {
        const out = await handler(copy, t.request as AdmissionRequest<T>, ctx);
        return out ?? copy;
      });
      if (!result.ok) return result.response;
      return patchResponse(name, raw, original, result.value);
    },
  };
}

function at(object: unknown, path: readonly string[]): unknown {
  let v = object;
  for (const p of path) {
    v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  }
  return v;
}

/**
 * The response of a mutation: the JSON Patch from `before` to `after`, or a refusal when the
 * mutation changed the object's identity.
 */
function patchResponse(
  webhook: string,
  request: AdmissionRequest,
  before: KubeObject,
  after: KubeObject,
): AdmissionResponse {
  // Through JSON, as the API server sees them: `undefined` fields are absent, not removals.
  const from = JSON.parse(JSON.stringify(before));
  let to: unknown;
  try {
    to = JSON.parse(JSON.stringify(after));
  } catch (e) {
    log.error("Mutating webhook {webhook} returned an object that is not JSON for {key}: {error}", {
      webhook,
      key: keyOf(request),
      error: e,
    });
    return refused(
      request.uid,
      `mutating webhook "${webhook}" returned an object that cannot be written as JSON`,
      "InternalError",
      500,
    );
  }
  if (!to || typeof to !== "object" || Array.isArray(to)) {
    return refused(
      request.uid,
      `mutating webhook "${webhook}" returned ${
        Array.isArray(to) ? "an array" : typeof to
      }, not an object`,
      "InternalError",
      500,
    );
  }
  for (const path of IDENTITY) {
    const a = at(from, path);
    const b = at(to, path);
    if (a !== b) {
      log.error("Mutating webhook {webhook} changed {field} of {key}", {
        webhook,
        field: path.join("."),
        key: keyOf(request),
      });
      return refused(
        request.uid,
        `mutating webhook "${webhook}" changed ${path.join(".")} from ${JSON.stringify(a)} to ${
          JSON.stringify(b)
        }; a mutation may not change apiVersion, kind, metadata.name or metadata.namespace`,
        "InternalError",
        500,
      );
    }
  }
  const operations = jsonpatch.compare(from, to as object);
  if (operations.length === 0) return { uid: request.uid, allowed: true };
  return {
    uid: request.uid,
    allowed: true,
    patchType: "JSONPatch",
    patch: base64(JSON.stringify(operations)),
  };
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Checks that a parsed body is an `admission.k8s.io/v1` `AdmissionReview` with a request, and
 * names what is wrong otherwise.
 *
 * @param body The parsed JSON.
 * @returns The request, or the reason it is not one.
 */
export function admissionRequestOf(body: unknown): AdmissionRequest | string {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    return "the body is not a JSON object; expected an admission.k8s.io/v1 AdmissionReview";
  }
  const b = body as Record<string, unknown>;
  if (b.kind !== "AdmissionReview") {
    return `kind is ${JSON.stringify(b.kind)}; expected "AdmissionReview"`;
  }
  if (b.apiVersion !== "admission.k8s.io/v1") {
    return `apiVersion ${
      JSON.stringify(b.apiVersion)
    } is not supported; only admission.k8s.io/v1 (set admissionReviewVersions: ["v1"])`;
  }
  const r = b.request as Record<string, unknown> | undefined;
  if (!r || typeof r !== "object") return "request is missing";
  if (typeof r.uid !== "string" || r.uid === "") return "request.uid is missing";
  if (!["CREATE", "UPDATE", "DELETE", "CONNECT"].includes(r.operation as string)) {
    return `request.operation ${
      JSON.stringify(r.operation)
    } is not CREATE, UPDATE, DELETE or CONNECT`;
  }
  for (const field of ["object", "oldObject"]) {
    const v = r[field];
    if (v !== undefined && v !== null && (typeof v !== "object" || Array.isArray(v))) {
      return `request.${field} is not an object`;
    }
  }
  return {
    ...(r as unknown as AdmissionRequest),
    object: (r.object ?? null) as KubeObject | null,
    oldObject: (r.oldObject ?? null) as KubeObject | null,
    dryRun: r.dryRun === true,
    userInfo: (r.userInfo ?? {}) as AdmissionUserInfo,
  };
}
