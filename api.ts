/**
 * {@linkcode Api}: an immutable, typed descriptor of a Kubernetes resource type (group, version,
 * kind, plural, scope) and optionally a namespace, that builds the API paths every verb, watch
 * and cache uses.
 *
 * @example Select pods in one namespace
 * ```ts
 * import { Api } from "@denokube/kube";
 * const pods = Api.v1Pod().within("default");
 * console.log(pods.collectionPath()); // "/api/v1/namespaces/default/pods"
 * ```
 *
 * @module
 */

import { registerApiFactory, type ResourceDescriptor } from "./_client/api_factory.ts";
import { ApiBuilders } from "./generated/builders.ts";
import type { ListMeta, ObjectMeta } from "./generated/meta_v1.ts";

export type { ResourceDescriptor } from "./_client/api_factory.ts";
export { ApiBuilders } from "./generated/builders.ts";

/** Any Kubernetes object: `apiVersion`, `kind`, `metadata`, and whatever else it holds. */
export interface KubeObject {
  /** `group/version`, or `v1` for the core group. */
  apiVersion?: string;
  /** The object's kind, e.g. `Pod`. */
  kind?: string;
  /** Standard object metadata. */
  metadata?: ObjectMeta;
}

/** A list as returned by a `list` call. */
export interface KubeList<T> {
  /** `group/version` of the list. */
  apiVersion?: string;
  /** The list's kind, e.g. `PodList`. */
  kind?: string;
  /** List metadata: `resourceVersion` and `continue`. */
  metadata: ListMeta;
  /** The objects. */
  items: T[];
}

/** A custom resource object with a typed `spec` and `status`. */
export interface CustomObject<Spec = Record<string, unknown>, Status = Record<string, unknown>>
  extends KubeObject {
  /** The desired state. */
  spec: Spec;
  /** The observed state. */
  status?: Status;
}

// RFC 1123 label: what Kubernetes requires of namespace names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Checks that a namespace name is a valid RFC 1123 DNS label.
 *
 * @param namespace The namespace name.
 * @throws {TypeError} When it is not.
 */
export function assertNamespace(namespace: string): void {
  if (typeof namespace !== "string" || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw new TypeError(
      `Invalid namespace ${
        JSON.stringify(namespace)
      }: a namespace must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`,
    );
  }
}

/**
 * Checks that an object name can be used in a path (what the API server requires of every
 * name; most kinds further require a DNS subdomain, which the server checks).
 *
 * @param name The object name.
 * @param kind The kind, for the message.
 * @throws {TypeError} When it is empty, `.` or `..`, or contains `/` or `%`.
 */
export function assertName(name: string, kind: string): void {
  if (
    typeof name !== "string" || name === "" || name === "." || name === ".." ||
    /[/%]/.test(name)
  ) {
    throw new TypeError(
      `Invalid ${kind} name ${
        JSON.stringify(name)
      }: a name must be non-empty, not "." or "..", and contain no "/" or "%"`,
    );
  }
}

/** Percent-encodes a path segment, keeping the `:` and `@` a segment may hold as they are. */
function encodePathSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%3A/gi, ":").replace(/%40/g, "@");
}

/**
 * A typed descriptor of a resource type, optionally narrowed to one namespace.
 *
 * Instances are immutable: {@linkcode Api.prototype.within} returns a new one. Without `within`,
 * a namespaced kind addresses all namespaces (for list and watch).
 *
 * @typeParam T The object type, e.g. `Pod`.
 */
export class Api<T extends KubeObject = KubeObject> extends ApiBuilders {
  /** API group, `""` for the core group. */
  readonly group: string;
  /** API version, e.g. `v1`. */
  readonly version: string;
  /** Kind, e.g. `Pod`. */
  readonly kind: string;
  /** Plural resource name used in paths, e.g. `pods`. */
  readonly plural: string;
  /** Whether objects of this kind live in namespaces. */
  readonly namespaced: boolean;
  /** The namespace this descriptor is narrowed to, or `undefined` for all namespaces. */
  readonly namespace: string | undefined;
  /** Phantom field carrying the object type; never set at runtime. */
  declare readonly _type?: T;

  /**
   * Creates a descriptor. Most code uses the static builders (`Api.v1Pod()`) instead.
   *
   * @param descriptor Group, version, kind, plural and scope.
   * @param namespace The namespace, for namespaced kinds.
   */
  constructor(descriptor: ResourceDescriptor, namespace?: string) {
    super();
    if (!descriptor.version || !descriptor.plural || !descriptor.kind) {
      throw new TypeError(
        `An Api needs a version, kind and plural; got ${JSON.stringify(descriptor)}`,
      );
    }
    if (namespace !== undefined) {
      if (!descriptor.namespaced) {
        throw new TypeError(
          `${descriptor.kind} is cluster-scoped: .within(${
            JSON.stringify(namespace)
          }) is not allowed. Drop .within() for ${descriptor.kind}`,
        );
      }
      assertNamespace(namespace);
    }
    this.group = descriptor.group;
    this.version = descriptor.version;
    this.kind = descriptor.kind;
    this.plural = descriptor.plural;
    this.namespaced = descriptor.namespaced;
    this.namespace = namespace;
  }

  /**
   * Narrows a namespaced kind to one namespace.
   *
   * @param namespace A namespace name (DNS label).
   * @returns A new descriptor; this one is unchanged.
   * @throws {TypeError} On a cluster-scoped kind or an invalid namespace name.
   */
  within(namespace: string): Api<T> {
    return new Api<T>(this.descriptor(), namespace);
  }

  /**
   * Widens back to all namespaces.
   *
   * @returns A new descriptor without a namespace.
   */
  allNamespaces(): Api<T> {
    return new Api<T>(this.descriptor());
  }

  /** `group/version`, or just `version` for the core group, as in `apiVersion`. */
  get apiVersion(): string {
    return this.group ? `${this.group}/${this.version}` : this.version;
  }

  /**
   * The group, version, kind, plural and scope.
   *
   * @returns A plain descriptor.
   */
  descriptor(): ResourceDescriptor {
    return {
      group: this.group,
      version: this.version,
      kind: this.kind,
      plural: this.plural,
      namespaced: this.namespaced,
    };
  }

  /**
   * The collection path: `/api/v1/namespaces/ns/pods`, or `/api/v1/pods` across namespaces.
   *
   * @returns The path.
   */
  collectionPath(): string {
    const root = this.group ? `/apis/${this.group}/${this.version}` : `/api/${this.version}`;
    const ns = this.namespace === undefined ? "" : `/namespaces/${this.namespace}`;
    return `${root}${ns}/${this.plural}`;
  }

  /**
   * The path of one object.
   *
   * @param name The object's name.
   * @param namespace Overrides the descriptor's namespace (needed for namespaced kinds when the
   *   descriptor has none).
   * @returns The path.
   * @throws {TypeError} When the name is invalid, or a namespaced kind has no namespace.
   */
  itemPath(name: string, namespace?: string): string {
    assertName(name, this.kind);
    const api = this.#scoped(namespace, `${this.kind} ${JSON.stringify(name)}`);
    // Names may hold characters that mean something in a URL (RBAC names may contain "#" or "?").
    return `${api.collectionPath()}/${encodePathSegment(name)}`;
  }

  /**
   * The path of a subresource of one object, e.g. `status`, `scale`, `log`.
   *
   * @param name The object's name.
   * @param subresource The subresource.
   * @param namespace Overrides the descriptor's namespace.
   * @returns The path.
   */
  subresourcePath(name: string, subresource: string, namespace?: string): string {
    if (!/^[a-z][a-z0-9-]*$/i.test(subresource)) {
      throw new TypeError(`Invalid subresource ${JSON.stringify(subresource)}`);
    }
    return `${this.itemPath(name, namespace)}/${subresource}`;
  }

  /**
   * The key a cache uses for an object: `namespace/name`, or `name` for cluster-scoped kinds.
   *
   * @param object The object.
   * @returns The key.
   */
  keyOf(object: KubeObject): string {
    const meta = object.metadata;
    const name = meta?.name ?? "";
    return this.namespaced && meta?.namespace ? `${meta.namespace}/${name}` : name;
  }

  #scoped(namespace: string | undefined, what: string): Api<T> {
    if (!this.namespaced) {
      if (namespace !== undefined) {
        throw new TypeError(`${this.kind} is cluster-scoped: do not pass a namespace for ${what}`);
      }
      return this;
    }
    const ns = namespace ?? this.namespace;
    if (ns === undefined) {
      throw new TypeError(
        `${what} is namespaced: call .within(namespace) on the Api or pass a namespace`,
      );
    }
    return ns === this.namespace ? this : this.within(ns);
  }

  /**
   * A custom resource by its plural name, seed style:
   * `Api.customResource<Spec, Status>("foos").group("clux.dev").version("v1").within(ns)`.
   *
   * @param plural The plural resource name, e.g. `foos`.
   * @returns A builder; `.group(g).version(v, options?)` returns the {@linkcode Api}.
   */
  static customResource<Spec = Record<string, unknown>, Status = Record<string, unknown>>(
    plural: string,
  ): CustomResourceBuilder<Spec, Status> {
    return new CustomResourceBuilder<Spec, Status>(plural);
  }

  /**
   * An untyped descriptor for a kind known only at run time. Use `client.discover()` to resolve
   * `apiVersion` + `kind` into a descriptor from the server's discovery documents.
   *
   * @param descriptor Group, version, kind, plural and scope.
   * @returns The descriptor.
   */
  static dynamic<T extends KubeObject = KubeObject>(descriptor: ResourceDescriptor): Api<T> {
    return new Api<T>(descriptor);
  }
}

/** Seed-style builder for custom resources; see {@linkcode Api.customResource}. */
export class CustomResourceBuilder<Spec, Status> {
  #plural: string;
  #group = "";

  /**
   * Starts a builder.
   *
   * @param plural The plural resource name.
   */
  constructor(plural: string) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(plural)) {
      throw new TypeError(
        `Invalid plural ${JSON.stringify(plural)}: use the lowercase plural, e.g. "foos"`,
      );
    }
    this.#plural = plural;
  }

  /**
   * Sets the API group.
   *
   * @param group The group, e.g. `clux.dev`.
   * @returns This builder.
   */
  group(group: string): this {
    this.#group = group;
    return this;
  }

  /**
   * Sets the version and returns the finished descriptor (all namespaces).
   *
   * @param version The version, e.g. `v1`.
   * @param options `kind` (default: the plural without its final "s", capitalised;
   *   pass it when that is not the kind) and `namespaced`
   *   (default true).
   * @returns The descriptor.
   */
  version(
    version: string,
    options: { kind?: string; namespaced?: boolean } = {},
  ): Api<CustomObject<Spec, Status>> {
    if (!this.#group) {
      throw new TypeError(`Custom resource ${this.#plural} needs .group(...) before .version()`);
    }
    const singular = this.#plural.replace(/s$/, "");
    const kind = options.kind ?? singular.charAt(0).toUpperCase() + singular.slice(1);
    return new Api({
      group: this.#group,
      version,
      kind,
      plural: this.#plural,
      namespaced: options.namespaced ?? true,
    });
  }
}

registerApiFactory((descriptor) => new Api(descriptor));
