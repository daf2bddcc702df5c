// Internal: admission webhooks inside the fake API server, called as the real one calls them:
// mutating webhooks first (their JSON Patches applied in order), then the server's own defaulting
// and validation, then validating webhooks; a refusal is the real server's Status
// ("admission webhook "x" denied the request: …", the webhook's code and reason).

import { jsonPatch } from "./_patch.ts";
import type { ResourceType } from "./_resources.ts";
import { failure, StatusError } from "./_status.ts";
import type { JsonObject } from "./_json.ts";

/**
 * An admission webhook the fake server calls in-process: what `validate` and `mutate` of
 * `@denokube/kube/webhook` return (taken structurally, so `testing/` does not import `webhook/`).
 */
export interface FakeAdmissionWebhook {
  /** `validating` or `mutating`. */
  readonly type: "validating" | "mutating";
  /** The webhook's name. */
  readonly name: string;
  /** The resource it admits. */
  readonly api: { group: string; version: string; kind: string; plural: string };
  /** Operations, subresources, failure policy, match policy. */
  readonly options: {
    operations?: readonly string[];
    subresources?: readonly string[];
    failurePolicy?: "Fail" | "Ignore";
    matchPolicy?: "Equivalent" | "Exact";
  };
  /**
   * Answers a review request.
   *
   * @param request The `AdmissionReview.request`.
   * @returns The `AdmissionReview.response`.
   */
  admit(request: unknown): Promise<{
    allowed: boolean;
    status?: { message?: string; reason?: string; code?: number };
    patch?: string;
    patchType?: string;
    warnings?: string[];
  }>;
}

/** One admission step's input. */
export interface AdmissionCall {
  type: ResourceType;
  operation: "CREATE" | "UPDATE" | "DELETE";
  subresource: string | undefined;
  namespace: string | undefined;
  name: string;
  object: JsonObject | null;
  oldObject: JsonObject | null;
  dryRun: boolean;
  username: string;
}

function decodeBase64(text: string): string {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** The registered webhooks, in registration order. */
export class AdmissionChain {
  #hooks: FakeAdmissionWebhook[] = [];

  /** Adds webhooks; returns a function that removes them. */
  add(hooks: readonly FakeAdmissionWebhook[]): () => void {
    this.#hooks.push(...hooks);
    return () => {
      this.#hooks = this.#hooks.filter((h) => !hooks.includes(h));
    };
  }

  /** Whether any webhook could apply to this resource type. */
  active(type: ResourceType): boolean {
    return this.#hooks.some((h) => h.api.group === type.group && h.api.plural === type.plural);
  }

  #matching(kind: "validating" | "mutating", call: AdmissionCall): FakeAdmissionWebhook[] {
    return this.#hooks.filter((h) => {
      if (h.type !== kind) return false;
      if (h.api.group !== call.type.group || h.api.plural !== call.type.plural) return false;
      if (h.options.matchPolicy === "Exact" && h.api.version !== call.type.version) return false;
      if (!(h.options.operations ?? ["CREATE", "UPDATE"]).includes(call.operation)) return false;
      if (call.subresource && !(h.options.subresources ?? []).includes(call.subresource)) {
        return false;
      }
      return true;
    });
  }

  #request(call: AdmissionCall, object: JsonObject | null) {
    const t = call.type;
    return {
      uid: crypto.randomUUID(),
      kind: { group: t.group, version: t.version, kind: t.kind },
      resource: { group: t.group, version: t.version, resource: t.plural },
      ...(call.subresource ? { subResource: call.subresource } : {}),
      requestKind: { group: t.group, version: t.version, kind: t.kind },
      requestResource: { group: t.group, version: t.version, resource: t.plural },
      name: call.name,
      ...(call.namespace ? { namespace: call.namespace } : {}),
      operation: call.operation,
      userInfo: { username: call.username },
      object: object ? structuredClone(object) : null,
      oldObject: call.oldObject ? structuredClone(call.oldObject) : null,
      dryRun: call.dryRun,
    };
  }

  async #call(hook: FakeAdmissionWebhook, call: AdmissionCall, object: JsonObject | null) {
    try {
      return await hook.admit(this.#request(call, object));
    } catch (e) {
      if (hook.options.failurePolicy === "Ignore") return undefined;
      throw new StatusError(
        failure(
          500,
          "InternalError",
          `Internal error occurred: failed calling webhook "${hook.name}": ${
            e instanceof Error ? e.message : String(e)
          }`,
        ),
      );
    }
  }

  #denied(
    hook: FakeAdmissionWebhook,
    status?: { message?: string; reason?: string; code?: number },
  ) {
    // As the real server's webhookerrors.ToStatusErr: a code below 400 becomes 400; without a
    // message, the reason explains; without either, "without explanation".
    const deniedBy = `admission webhook "${hook.name}" denied the request`;
    const message = status?.message
      ? `${deniedBy}: ${status.message}`
      : status?.reason
      ? `${deniedBy}: ${status.reason}`
      : `${deniedBy} without explanation`;
    const code = (status?.code ?? 0) < 400 ? 400 : status!.code!;
    return new StatusError(failure(code, status?.reason ?? "", message));
  }

  /**
   * Runs the mutating webhooks in order, each on the previous one's result.
   *
   * @returns The mutated object.
   * @throws {StatusError} On a refusal, or a failure under `failurePolicy: Fail`.
   */
  async mutate(call: AdmissionCall): Promise<JsonObject | null> {
    let object = call.object;
    for (const hook of this.#matching("mutating", call)) {
      const response = await this.#call(hook, call, object);
      if (!response) continue;
      if (!response.allowed) throw this.#denied(hook, response.status);
      if (response.patch && object) {
        if (response.patchType !== "JSONPatch") {
          throw new StatusError(
            failure(
              500,
              "InternalError",
              `webhook "${hook.name}" answered an unsupported patchType`,
            ),
          );
        }
        try {
          object = jsonPatch(object, JSON.parse(decodeBase64(response.patch))) as JsonObject;
        } catch (e) {
          throw new StatusError(
            failure(
              500,
              "InternalError",
              `Internal error occurred: JSON patch of webhook "${hook.name}" does not apply: ${
                (e as Error).message
              }`,
            ),
          );
        }
      }
    }
    return object;
  }

  /**
   * Runs the validating webhooks (all must admit).
   *
   * @throws {StatusError} On a refusal, or a failure under `failurePolicy: Fail`.
   */
  async validate(call: AdmissionCall): Promise<void> {
    const hooks = this.#matching("validating", call);
    const responses = await Promise.all(hooks.map((h) => this.#call(h, call, call.object)));
    responses.forEach((response, i) => {
      if (response && !response.allowed) throw this.#denied(hooks[i], response.status);
    });
  }
}
