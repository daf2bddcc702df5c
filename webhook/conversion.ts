/**
 * Conversion webhooks (`apiextensions.k8s.io/v1` `ConversionReview`): several versions of one
 * custom resource (each a `defineCustomResource` with its zod schema), converters to and from a
 * hub version (the storage version), one multi-version CRD with
 * `spec.conversion.strategy: Webhook`, and the review handling that converts a list of objects of
 * mixed versions in one review.
 *
 * Round trips are lossless, as Kubernetes requires: when an object goes from the hub to a version
 * that lacks some of its fields, the hub object's fields (everything but `apiVersion`, `kind` and
 * `metadata`) are kept as JSON in the annotation {@linkcode HUB_ANNOTATION}; when it comes back,
 * exactly the fields the spoke version could not carry (found by converting the kept hub object
 * to the spoke and back) are restored from it, and the annotation is removed. Fields the spoke
 * does carry take the spoke's values, so a change made through the spoke version is kept.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import jsonpatch from "fast-json-patch";
import type { CustomObject, KubeObject } from "../api.ts";
import type { CustomResource, CustomResourceDefinition } from "../custom_resource.ts";
import type { ClientConfig } from "./registration.ts";

const log = getLogger(["kube", "webhook"]);

/** The annotation that keeps the hub object's fields while an object is held in another version. */
export const HUB_ANNOTATION = "conversion.denokube.dev/hub";

/** Any version of a custom resource, whatever its spec and status types. */
// deno-lint-ignore no-explicit-any
export type AnyResource = CustomResource<any, any>;
/**
 * The object type of a custom resource version.
 *
 * @typeParam R The version, from `defineCustomResource`.
 */
export type ObjectOf<R> = R extends CustomResource<infer S, infer T> ? CustomObject<S, T> : never;

/**
 * One non-hub version and how it converts to and from the hub.
 *
 * @typeParam Hub The hub version.
 * @typeParam Spoke This version.
 */
export interface Spoke<Hub extends AnyResource, R extends AnyResource> {
  /** The version, from `defineCustomResource` (same group, kind, plural and scope as the hub). */
  version: R;
  /**
   * Converts an object of this version to the hub version. `metadata` is carried over by the
   * library; return `spec` and `status` (and any other top-level field).
   */
  toHub(object: ObjectOf<R>): Omit<ObjectOf<Hub>, "apiVersion" | "kind" | "metadata">;
  /** Converts a hub object to this version (the same way). */
  fromHub(object: ObjectOf<Hub>): Omit<ObjectOf<R>, "apiVersion" | "kind" | "metadata">;
}

/** Options of {@linkcode defineConversion}. */
export interface ConversionOptions<Hub extends AnyResource> {
  /** The hub: the version objects are stored in. */
  hub: Hub;
  /** The other versions, with their converters. */
  // deno-lint-ignore no-explicit-any
  spokes: Spoke<Hub, any>[];
  /** The path the conversion is served on. Default `/convert-<group>-<kind>`, lower case. */
  path?: string;
}

/** A `ConversionReview` request. */
export interface ConversionRequest {
  /** Echoed in the response. */
  uid: string;
  /** The version to convert to, e.g. `example.com/v1`. */
  desiredAPIVersion: string;
  /** The objects, each in its own version. */
  objects: KubeObject[];
}

/** A `ConversionReview` response. */
export interface ConversionResponse {
  /** The request's uid. */
  uid: string;
  /** The objects in the desired version, in the request's order. */
  convertedObjects: KubeObject[];
  /** `Success`, or `Failure` with a message. */
  result: { status: "Success" | "Failure"; message?: string };
}

/** Options of {@linkcode Conversion.prototype.crd}. */
export interface ConversionCrdOptions {
  /** Where the API server reaches the conversion webhook. */
  clientConfig: ClientConfig;
  /** The PEM CA bundle. */
  caBundle?: string;
}

function base64(text: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

function body(object: KubeObject): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = object as unknown as Record<
    string,
    unknown
  >;
  return rest;
}

/**
 * A multi-version custom resource with a hub: the CRD (all versions served, the hub stored,
 * conversion by webhook) and the conversion of `ConversionReview`s. Made by
 * {@linkcode defineConversion}; serve it with a `WebhookServer` (`conversions: [...]`).
 */
export class Conversion<Hub extends AnyResource = AnyResource> {
  /** `conversion`, as opposed to admission webhooks. */
  readonly type = "conversion" as const;
  /** The hub version. */
  readonly hub: Hub;
  /** The path it is served on. */
  readonly path: string;
  /** A name for logs and metrics. */
  readonly name: string;
  // deno-lint-ignore no-explicit-any
  readonly #spokes = new Map<string, Spoke<Hub, any>>();

  /**
   * Checks that the versions belong together; prefer {@linkcode defineConversion}.
   *
   * @param options The hub and the spokes.
   * @throws {TypeError} When a spoke has another group, kind, plural or scope, or a version
   *   appears twice.
   */
  constructor(options: ConversionOptions<Hub>) {
    const hub = options.hub;
    this.hub = hub;
    for (const s of options.spokes) {
      const v = s.version;
      if (
        v.group !== hub.group || v.kind !== hub.kind || v.plural !== hub.plural ||
        v.namespaced !== hub.namespaced
      ) {
        throw new TypeError(
          `defineConversion(${hub.kind}): version ${v.apiVersion} is ${v.kind} (${v.plural}) in ${
            v.group || "core"
          }; every version must have the hub's group, kind, plural and scope`,
        );
      }
      if (v.version === hub.version || this.#spokes.has(v.apiVersion)) {
        throw new TypeError(`defineConversion(${hub.kind}): version ${v.version} appears twice`);
      }
      this.#spokes.set(v.apiVersion, s);
    }
    this.path = options.path ??
      `/convert-${hub.group.replaceAll(".", "-")}-${hub.kind}`.toLowerCase();
    this.name = `convert-${hub.plural}.${hub.group}`;
  }

  /**
   * The CustomResourceDefinition with every version (schemas from their zod schemas, the hub
   * stored) and `spec.conversion` by webhook.
   *
   * @param options The client config and CA bundle of the conversion webhook.
   * @returns The definition, plain JSON.
   */
  crd(options: ConversionCrdOptions): CustomResourceDefinition {
    const crd = this.hub.crd();
    const versions = [
      ...[...this.#spokes.values()].map((s) => ({
        ...s.version.crd().spec.versions[0],
        storage: false,
      })),
      { ...crd.spec.versions[0], storage: true },
    ];
    const c = options.clientConfig;
    const clientConfig: Record<string, unknown> = "url" in c
      ? { url: `${new URL(c.url).origin}${this.path}` }
      : {
        service: {
          namespace: c.service.namespace,
          name: c.service.name,
          path: this.path,
          port: c.service.port ?? 443,
        },
      };
    if (options.caBundle) clientConfig.caBundle = base64(options.caBundle);
    crd.spec.versions = versions;
    crd.spec.conversion = {
      strategy: "Webhook",
      webhook: { conversionReviewVersions: ["v1"], clientConfig },
    };
    return crd;
  }

  #toHub(object: KubeObject): KubeObject {
    const from = (object as { apiVersion?: string }).apiVersion!;
    if (from === this.hub.apiVersion) return object;
    const spoke = this.#spokes.get(from);
    if (!spoke) throw new TypeError(`unknown version ${from}`);
    const annotations = { ...(object.metadata?.annotations ?? {}) };
    const stash = annotations[HUB_ANNOTATION];
    delete annotations[HUB_ANNOTATION];
    const metadata: Record<string, unknown> = { ...object.metadata, annotations };
    if (Object.keys(annotations).length === 0) delete metadata.annotations;
    let converted = structuredClone(spoke.toHub(structuredClone(object) as never)) as Record<
      string,
      unknown
    >;
    if (stash) {
      // Restore exactly what the spoke cannot carry: the difference between the kept hub object
      // and its round trip through the spoke.
      let kept: Record<string, unknown>;
      try {
        kept = JSON.parse(stash);
      } catch {
        throw new TypeError(`the ${HUB_ANNOTATION} annotation is not JSON`);
      }
      const hubObject = { apiVersion: this.hub.apiVersion, kind: this.hub.kind, metadata, ...kept };
      const spokeObject = {
        apiVersion: from,
        kind: this.hub.kind,
        metadata,
        ...spoke.fromHub(structuredClone(hubObject) as never),
      };
      const roundTrip = JSON.parse(JSON.stringify(spoke.toHub(spokeObject as never)));
      const lost = jsonpatch.compare(roundTrip, kept);
      converted = JSON.parse(JSON.stringify(converted));
      for (const op of lost) {
        try {
          jsonpatch.applyOperation(converted, op, false, true);
        } catch {
          // The spoke's object no longer has the parent of the lost field: it was removed there.
        }
      }
    }
    return {
      apiVersion: this.hub.apiVersion,
      kind: this.hub.kind,
      metadata,
      ...converted,
    } as KubeObject;
  }

  #fromHub(hub: KubeObject, to: string): KubeObject {
    if (to === this.hub.apiVersion) return hub;
    const spoke = this.#spokes.get(to);
    if (!spoke) throw new TypeError(`unknown version ${to}`);
    const converted = spoke.fromHub(structuredClone(hub) as never);
    const annotations = {
      ...(hub.metadata?.annotations ?? {}),
      [HUB_ANNOTATION]: JSON.stringify(body(hub)),
    };
    return {
      apiVersion: to,
      kind: this.hub.kind,
      metadata: { ...hub.metadata, annotations },
      ...converted,
    } as KubeObject;
  }

  /**
   * Converts one object to a version, through the hub.
   *
   * @param object The object, in any of the versions.
   * @param to The desired `apiVersion`, e.g. `example.com/v1alpha1`.
   * @returns The object in that version.
   * @throws {TypeError} On an unknown version, or a converter that throws.
   */
  convert(object: KubeObject, to: string): KubeObject {
    const from = (object as { apiVersion?: string }).apiVersion;
    if (from === to) return object;
    return this.#fromHub(this.#toHub(object), to);
  }

  /**
   * Answers a `ConversionReview` request: every object converted, or `Failure` naming the object
   * and the reason (the API server then fails the request that needed the conversion).
   *
   * @param request The review's request.
   * @returns The response.
   */
  review(request: ConversionRequest): ConversionResponse {
    const known = [this.hub.apiVersion, ...this.#spokes.keys()];
    if (!known.includes(request.desiredAPIVersion)) {
      return {
        uid: request.uid,
        convertedObjects: [],
        result: {
          status: "Failure",
          message: `cannot convert to ${request.desiredAPIVersion}: ${this.hub.kind} has ${
            known.join(", ")
          }`,
        },
      };
    }
    const out: KubeObject[] = [];
    for (const object of request.objects) {
      try {
        out.push(this.convert(object, request.desiredAPIVersion));
      } catch (e) {
        const m = object.metadata;
        const key = m?.namespace ? `${m.namespace}/${m.name}` : m?.name;
        log.error("Converting {kind} {key} from {from} to {to} failed: {error}", {
          kind: this.hub.kind,
          key,
          from: (object as { apiVersion?: string }).apiVersion,
          to: request.desiredAPIVersion,
          error: e,
        });
        return {
          uid: request.uid,
          convertedObjects: [],
          result: {
            status: "Failure",
            message: `converting ${this.hub.kind} ${key} from ${
              (object as { apiVersion?: string }).apiVersion
            } to ${request.desiredAPIVersion} failed: ${
              e instanceof TypeError ? e.message : `${(e as Error).name} (see the operator's log)`
            }`,
          },
        };
      }
    }
    return { uid: request.uid, convertedObjects: out, result: { status: "Success" } };
  }
}

/**
 * Defines the versions of a custom resource and how they convert through a hub (the storage
 * version), for a conversion webhook.
 *
 * @param options The hub and the spokes with their converters.
 * @returns The conversion: `.crd(...)` for the multi-version CRD, `.review(...)` for reviews.
 * @throws {TypeError} When the versions do not belong to one resource.
 * @example v1alpha1 ↔ v1
 * ```ts ignore
 * const conversion = defineConversion({
 *   hub: FooV1,
 *   spokes: [{
 *     version: FooV1alpha1,
 *     toHub: (o) => ({ spec: { replicas: o.spec.size } }),
 *     fromHub: (o) => ({ spec: { size: o.spec.replicas } }),
 *   }],
 * });
 * ```
 */
export function defineConversion<Hub extends AnyResource, const Rs extends readonly AnyResource[]>(
  options: {
    hub: Hub;
    spokes: { [I in keyof Rs]: Spoke<Hub, Rs[I]> };
    path?: string;
  },
): Conversion<Hub> {
  return new Conversion(options as unknown as ConversionOptions<Hub>);
}

/**
 * Checks that a parsed body is an `apiextensions.k8s.io/v1` `ConversionReview` with a request.
 *
 * @param body The parsed JSON.
 * @returns The request, or what is wrong.
 */
export function conversionRequestOf(body: unknown): ConversionRequest | string {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    return "the body is not a JSON object; expected an apiextensions.k8s.io/v1 ConversionReview";
  }
  const b = body as Record<string, unknown>;
  if (b.kind !== "ConversionReview") {
    return `kind is ${JSON.stringify(b.kind)}; expected "ConversionReview"`;
  }
  if (b.apiVersion !== "apiextensions.k8s.io/v1") {
    return `apiVersion ${
      JSON.stringify(b.apiVersion)
    } is not supported; only apiextensions.k8s.io/v1 (conversionReviewVersions: ["v1"])`;
  }
  const r = b.request as Record<string, unknown> | undefined;
  if (!r || typeof r !== "object") return "request is missing";
  if (typeof r.uid !== "string" || !r.uid) return "request.uid is missing";
  if (typeof r.desiredAPIVersion !== "string") return "request.desiredAPIVersion is missing";
  if (!Array.isArray(r.objects)) return "request.objects is not a list";
  for (const [i, o] of r.objects.entries()) {
    if (
      !o || typeof o !== "object" || typeof (o as { apiVersion?: unknown }).apiVersion !== "string"
    ) {
      return `request.objects[${i}] is not an object with an apiVersion`;
    }
  }
  return r as unknown as ConversionRequest;
}
