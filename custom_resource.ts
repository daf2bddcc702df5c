/**
 * Custom resources defined by zod schemas: {@linkcode defineCustomResource} gives a typed
 * {@linkcode Api} for your kind, plus the `CustomResourceDefinition` to install it (with a
 * structural OpenAPI v3 schema derived from the zod schemas) and opt-in validation of objects
 * read back from the server.
 *
 * @example Define, install and use a custom resource
 * ```ts ignore
 * import { z } from "zod";
 * import { Client, defineCustomResource } from "@denokube/kube";
 *
 * const Foo = defineCustomResource({
 *   group: "example.com",
 *   version: "v1",
 *   kind: "Foo",
 *   namespaced: true,
 *   spec: z.object({
 *     replicas: z.int().min(0).default(1).describe("How many replicas to run."),
 *     image: z.string().min(1),
 *   }),
 *   status: z.object({ ready: z.int().optional() }),
 *   printerColumns: [{ name: "Replicas", type: "integer", jsonPath: ".spec.replicas" }],
 * });
 *
 * await using client = await Client.infer();
 * await Foo.install(client); // applies Foo.crd() and waits until it is Established
 * const foos = Foo.within("default");
 * await client.create(foos, { metadata: { name: "a" }, spec: { replicas: 2, image: "nginx" } });
 * const foo = foos.parse(await client.get(foos, "a")); // typed and validated
 * console.log(foo.spec.replicas);
 * ```
 *
 * @module
 */

import { z } from "zod";
import { Api, type CustomObject, type KubeObject } from "./api.ts";
import type { Client } from "./client.ts";
import {
  childPath,
  convertField,
  CustomResourceSchemaError,
  type JSONSchemaProps,
} from "./_client/structural_schema.ts";

export { CustomResourceSchemaError } from "./_client/structural_schema.ts";
export type { JSONSchemaProps } from "./_client/structural_schema.ts";

/**
 * A zod v4 schema, typed by what it parses to: what `z.object({...})`, `z.string()`, … return.
 * The conversion to a CRD schema reads zod's definitions, so only zod v4 schemas work.
 *
 * @typeParam Output The parsed type (`z.output` of the schema).
 */
export interface ZodSchema<Output = unknown> {
  /** zod's internals: the schema definition and, at the type level, the output type. */
  readonly _zod: { readonly def: unknown; readonly output: Output };
}

/**
 * The type a {@linkcode ZodSchema} parses to, like `z.output<S>`.
 *
 * @typeParam S The schema type.
 */
export type SchemaOutput<S> = S extends { readonly _zod: { readonly output: infer O } } ? O
  : never;

/** A column `kubectl get` shows for the custom resource (`additionalPrinterColumns`). */
export interface CustomResourceColumnDefinition {
  /** The column header, e.g. `Replicas`. */
  name: string;
  /** How the value is shown: `integer`, `number`, `string`, `boolean` or `date`. */
  type: "integer" | "number" | "string" | "boolean" | "date";
  /** A simple JSON path to the value, starting with `.`, e.g. `.spec.replicas`. */
  jsonPath: string;
  /** What the column means. */
  description?: string;
  /** 0 (default) shows the column always; higher numbers only with `kubectl get -o wide`. */
  priority?: number;
  /** `int32`, `int64`, `float`, `double`, `byte`, `date`, `date-time` or `password`. */
  format?: "int32" | "int64" | "float" | "double" | "byte" | "date" | "date-time" | "password";
}

/** The `scale` subresource of a custom resource, which `kubectl scale` and autoscalers use. */
export interface CustomResourceSubresourceScale {
  /** JSON path of the desired replicas under `.spec`, e.g. `.spec.replicas`. */
  specReplicasPath: string;
  /** JSON path of the observed replicas under `.status`, e.g. `.status.replicas`. */
  statusReplicasPath: string;
  /** JSON path of the pods' label selector (a string), e.g. `.status.selector`. */
  labelSelectorPath?: string;
}

/** The names a custom resource is known by. */
export interface CustomResourceDefinitionNames {
  /** The kind, e.g. `Foo`. */
  kind: string;
  /** The plural resource name used in paths, e.g. `foos`. */
  plural: string;
  /** The singular name, e.g. `foo`. */
  singular?: string;
  /** The kind of lists, e.g. `FooList`. */
  listKind?: string;
  /** Short names for kubectl, e.g. `["fo"]`. */
  shortNames?: string[];
  /** Groups for kubectl, e.g. `["all"]`. */
  categories?: string[];
}

/** One version of a custom resource. */
export interface CustomResourceDefinitionVersion {
  /** The version, e.g. `v1`. */
  name: string;
  /** Whether the API serves this version. */
  served: boolean;
  /** Whether objects are stored in this version (exactly one version is). */
  storage: boolean;
  /** The schema objects of this version are validated against. */
  schema?: { openAPIV3Schema: JSONSchemaProps };
  /** The `status` and `scale` subresources. */
  subresources?: {
    status?: Record<string, never>;
    scale?: CustomResourceSubresourceScale;
  };
  /** Extra columns of `kubectl get`. */
  additionalPrinterColumns?: CustomResourceColumnDefinition[];
  /** Fields usable in field selectors. */
  selectableFields?: { jsonPath: string }[];
  /** Whether the version is deprecated. */
  deprecated?: boolean;
  /** The warning returned to clients of a deprecated version. */
  deprecationWarning?: string;
}

/** A condition of a CustomResourceDefinition, e.g. `Established` or `NamesAccepted`. */
export interface CustomResourceDefinitionCondition {
  /** The condition type, e.g. `Established`. */
  type: string;
  /** `True`, `False` or `Unknown`. */
  status: string;
  /** Machine-readable reason of the last transition. */
  reason?: string;
  /** Human-readable details. */
  message?: string;
  /** When the status last changed. */
  lastTransitionTime?: string;
}

/** The `apiextensions.k8s.io/v1` CustomResourceDefinition object. */
export interface CustomResourceDefinition extends KubeObject {
  /** The group, names, scope and versions. */
  spec: {
    /** The API group, e.g. `example.com`. */
    group: string;
    /** The kind and resource names. */
    names: CustomResourceDefinitionNames;
    /** `Namespaced` or `Cluster`. */
    scope: "Namespaced" | "Cluster";
    /** The served versions. */
    versions: CustomResourceDefinitionVersion[];
    /** How objects are converted between versions. */
    conversion?: { strategy: string; [key: string]: unknown };
    /** Legacy pruning switch; must be false or absent. */
    preserveUnknownFields?: boolean;
  };
  /** What the API server reports about the definition. */
  status?: {
    /** `Established`, `NamesAccepted`, `Terminating`, … */
    conditions?: CustomResourceDefinitionCondition[];
    /** The names actually served. */
    acceptedNames?: CustomResourceDefinitionNames;
    /** Versions objects have ever been stored in. */
    storedVersions?: string[];
  };
}

/** What {@linkcode defineCustomResource} takes. */
export interface CustomResourceOptions<
  SpecSchema extends ZodSchema = ZodSchema,
  StatusSchema extends ZodSchema | undefined = ZodSchema | undefined,
> {
  /** The API group, a DNS subdomain with at least one dot, e.g. `example.com`. */
  group: string;
  /** The version, e.g. `v1` or `v1alpha1`. */
  version: string;
  /** The kind, UpperCamelCase, e.g. `Foo`. */
  kind: string;
  /**
   * The plural resource name used in URLs and by kubectl. Default: the kind in lowercase plus
   * `s` (`Foo` → `foos`); pass it for other plurals (`Policy` → `policies`).
   */
  plural?: string;
  /** The singular name. Default: the kind in lowercase. */
  singular?: string;
  /** The kind of lists. Default: the kind plus `List`. */
  listKind?: string;
  /** Whether objects live in namespaces (`Namespaced`) or not (`Cluster`). */
  namespaced: boolean;
  /** The schema of `.spec`, usually a `z.object({...})`. */
  spec: SpecSchema;
  /** The schema of `.status`; when given, the `status` subresource is enabled. */
  status?: StatusSchema;
  /** Short names for kubectl, e.g. `["fo"]`. */
  shortNames?: string[];
  /** Categories for kubectl, e.g. `["all"]`. */
  categories?: string[];
  /**
   * The columns of `kubectl get`. kubectl then shows NAME and exactly these columns: add
   * `{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }` to keep AGE. Each
   * `.spec`/`.status` path is checked against the schemas.
   */
  printerColumns?: CustomResourceColumnDefinition[];
  /**
   * Enables the `scale` subresource. Defaults: `specReplicasPath: ".spec.replicas"`,
   * `statusReplicasPath: ".status.replicas"`; both must be integer fields of the schemas.
   */
  scale?: Partial<CustomResourceSubresourceScale>;
  /** JSON paths of fields usable in field selectors (string, boolean or integer fields). */
  selectableFields?: string[];
}

/** One problem found by {@linkcode CustomResource.prototype.parse}. */
export interface CustomResourceIssue {
  /** Where, e.g. `spec.items[0].size`. */
  path: string;
  /** What is wrong, e.g. `expected number, got string`. */
  message: string;
  /** The zod issue code, e.g. `invalid_type`. */
  code: string;
}

/**
 * Thrown by {@linkcode CustomResource.prototype.parse} when an object does not match the schemas.
 * The message names the object and each field, e.g.
 * `Invalid Foo default/a (example.com/v1): spec.replicas: expected number, got string`; it
 * carries field paths and expected types, never the offending values.
 */
export class CustomResourceParseError extends TypeError {
  /** The kind, e.g. `Foo`. */
  readonly kind: string;
  /** `namespace/name` (or `name`) of the object, or `(unnamed)`. */
  readonly objectKey: string;
  /** Every problem found. */
  readonly issues: CustomResourceIssue[];

  /**
   * Creates the error.
   *
   * @param kind The kind.
   * @param apiVersion The expected apiVersion.
   * @param objectKey `namespace/name` of the object.
   * @param issues The problems.
   */
  constructor(kind: string, apiVersion: string, objectKey: string, issues: CustomResourceIssue[]) {
    const shown = issues.slice(0, 10).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    const more = issues.length > 10 ? `; … and ${issues.length - 10} more` : "";
    super(`Invalid ${kind} ${objectKey} (${apiVersion}): ${shown.join("; ")}${more}`);
    this.name = "CustomResourceParseError";
    this.kind = kind;
    this.objectKey = objectKey;
    this.issues = issues;
  }
}

/** Options of {@linkcode CustomResource.prototype.install}. */
export interface InstallOptions {
  /** The server-side apply field manager. Default `kube`. */
  fieldManager?: string;
  /** How long to wait for the definition to become `Established`, in ms. Default 30 000. */
  timeoutMs?: number;
  /** Aborts the wait. */
  signal?: AbortSignal;
}

interface Prepared {
  descriptor: { group: string; version: string; kind: string; plural: string; namespaced: boolean };
  crd: CustomResourceDefinition;
}

const prepared = new WeakMap<object, Prepared>();

const CRD_DESCRIPTOR = {
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
};

/**
 * A custom resource type defined by zod schemas: a typed {@linkcode Api} (use it with every
 * {@linkcode Client} verb, `.within(ns)` keeps the extra methods) that also builds its
 * CustomResourceDefinition ({@linkcode CustomResource.prototype.crd}) and validates objects
 * ({@linkcode CustomResource.prototype.parse}). Create one with {@linkcode defineCustomResource}.
 *
 * @typeParam Spec The type of `.spec` (the spec schema's output).
 * @typeParam Status The type of `.status` (`never` without a status schema).
 */
export class CustomResource<Spec = Record<string, unknown>, Status = never>
  extends Api<CustomObject<Spec, Status>> {
  /** The options the resource was defined with. */
  readonly definition: CustomResourceOptions<ZodSchema<Spec>, ZodSchema<Status> | undefined>;
  #prepared: Prepared;

  /**
   * Defines the resource; prefer {@linkcode defineCustomResource}, which infers the types.
   *
   * @param definition Group, version, kind, scope, schemas and kubectl presentation.
   * @param namespace The namespace, for namespaced kinds.
   * @throws {TypeError} On invalid names; {@linkcode CustomResourceSchemaError} on a schema
   *   that cannot be expressed as a Kubernetes structural schema.
   */
  constructor(
    definition: CustomResourceOptions<ZodSchema<Spec>, ZodSchema<Status> | undefined>,
    namespace?: string,
  ) {
    const ready = prepared.get(definition) ?? prepare(definition);
    prepared.set(definition, ready);
    super(ready.descriptor, namespace);
    this.definition = definition;
    this.#prepared = ready;
  }

  /**
   * Narrows to one namespace, keeping the custom resource methods.
   *
   * @param namespace A namespace name (DNS label).
   * @returns A new descriptor; this one is unchanged.
   * @throws {TypeError} On a cluster-scoped kind or an invalid namespace name.
   */
  override within(namespace: string): CustomResource<Spec, Status> {
    return new CustomResource<Spec, Status>(this.definition, namespace);
  }

  /**
   * Widens back to all namespaces.
   *
   * @returns A new descriptor without a namespace.
   */
  override allNamespaces(): CustomResource<Spec, Status> {
    return new CustomResource<Spec, Status>(this.definition);
  }

  /** The zod schema of `.spec`. */
  get specSchema(): ZodSchema<Spec> {
    return this.definition.spec;
  }

  /** The zod schema of `.status`, if one was given. */
  get statusSchema(): ZodSchema<Status> | undefined {
    return this.definition.status;
  }

  /**
   * The CustomResourceDefinition (apiextensions.k8s.io/v1) to install this kind: one served and
   * stored version whose `openAPIV3Schema` is derived from the zod schemas, the `status`
   * subresource when a status schema is given, `scale` and printer columns when asked for.
   * Apply it with {@linkcode CustomResource.prototype.install}, `client.apply`, or
   * `kubectl apply -f` (it is plain JSON).
   *
   * @returns A fresh copy of the definition.
   * @example Print the CRD as YAML
   * ```ts ignore
   * import { stringify } from "yaml";
   * console.log(stringify(Foo.crd()));
   * ```
   */
  crd(): CustomResourceDefinition {
    return structuredClone(this.#prepared.crd);
  }

  /**
   * Validates an object read from the server against the schemas, and returns it typed, with
   * zod's output (defaults filled in, transforms applied) for `spec` and `status`. Use it where
   * the server's copy may not match the TypeScript type: objects written by other tools, or by
   * an older schema.
   *
   * @param object The object, e.g. from `client.get(foos, "a")`.
   * @returns The typed object.
   * @throws {CustomResourceParseError} Naming the object and each wrong field, e.g.
   *   `spec.replicas: expected number, got string`.
   * @example Validate what the server returned
   * ```ts ignore
   * const foo = Foo.parse(await client.get(Foo.within("default"), "a"));
   * ```
   */
  parse(object: unknown): CustomObject<Spec, Status> {
    const issues: CustomResourceIssue[] = [];
    const fail = (): never => {
      throw new CustomResourceParseError(this.kind, this.apiVersion, objectKey(object), issues);
    };
    if (object === null || typeof object !== "object" || Array.isArray(object)) {
      issues.push({
        path: "",
        message: `expected a ${this.kind} object, got ${jsonTypeOf(object)}`,
        code: "invalid_type",
      });
      return fail();
    }
    const o = object as Record<string, unknown>;
    if (o.apiVersion !== undefined && o.apiVersion !== this.apiVersion) {
      issues.push({
        path: "apiVersion",
        message: `expected ${JSON.stringify(this.apiVersion)}, got ${JSON.stringify(o.apiVersion)}`,
        code: "invalid_value",
      });
    }
    if (o.kind !== undefined && o.kind !== this.kind) {
      issues.push({
        path: "kind",
        message: `expected ${JSON.stringify(this.kind)}, got ${JSON.stringify(o.kind)}`,
        code: "invalid_value",
      });
    }
    const result: Record<string, unknown> = { ...o };
    const spec = z.safeParse(this.specSchema as unknown as z.ZodType, o.spec);
    if (spec.success) result.spec = spec.data;
    else issues.push(...toIssues(spec.error, o.spec, "spec"));
    const statusSchema = this.statusSchema;
    if (statusSchema && o.status !== undefined) {
      const status = z.safeParse(statusSchema as unknown as z.ZodType, o.status);
      if (status.success) result.status = status.data;
      else issues.push(...toIssues(status.error, o.status, "status"));
    }
    if (issues.length > 0) fail();
    return result as unknown as CustomObject<Spec, Status>;
  }

  /**
   * Installs the kind: server-side applies {@linkcode CustomResource.prototype.crd} (taking over
   * its fields) and waits until the API server reports it `Established`, so objects can be
   * created right away.
   *
   * @param client The client.
   * @param options Field manager, timeout, abort signal.
   * @returns The definition as stored, established.
   * @throws {Error} When the names are not accepted (e.g. the plural is taken by another
   *   definition) or the definition is not established in time.
   * @example Install before use
   * ```ts ignore
   * await Foo.install(client);
   * ```
   */
  async install(client: Client, options: InstallOptions = {}): Promise<CustomResourceDefinition> {
    const api = CustomResource.crdApi();
    const crd = this.crd();
    const name = crd.metadata!.name!;
    await client.apply(api, crd, {
      fieldManager: options.fieldManager ?? "kube",
      force: true,
      signal: options.signal,
    });
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let last: CustomResourceDefinition | undefined;
    for (let delay = 50;; delay = Math.min(delay * 2, 500)) {
      last = await client.get(api, name, { signal: options.signal });
      const conditions = last.status?.conditions ?? [];
      if (conditions.some((c) => c.type === "Established" && c.status === "True")) return last;
      const names = conditions.find((c) => c.type === "NamesAccepted" && c.status === "False");
      if (names) {
        throw new Error(
          `CustomResourceDefinition ${name}: names not accepted (${names.reason}): ${names.message}`,
        );
      }
      if (Date.now() + delay > deadline) break;
      await sleep(delay, options.signal);
    }
    const seen = (last?.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).join(", ");
    throw new Error(
      `CustomResourceDefinition ${name} was not Established within ${timeoutMs} ms ` +
        `(conditions: ${seen || "none yet"}); check the API server's logs`,
    );
  }

  /**
   * The {@linkcode Api} of CustomResourceDefinitions (cluster-scoped,
   * `apiextensions.k8s.io/v1`).
   *
   * @returns The descriptor.
   * @example List the installed definitions
   * ```ts ignore
   * const crds = await client.list(CustomResource.crdApi());
   * ```
   */
  static crdApi(): Api<CustomResourceDefinition> {
    return new Api<CustomResourceDefinition>(CRD_DESCRIPTOR);
  }
}

/**
 * Defines a custom resource from zod schemas. The result is a typed {@linkcode Api} for the
 * kind (`client.create(Foo.within("ns"), ...)`), with `.crd()` to build its
 * CustomResourceDefinition, `.install(client)` to apply it and wait until it is served, and
 * `.parse(object)` to validate objects read back.
 *
 * The CRD schema is derived from the zod schemas as a Kubernetes structural schema:
 * - objects → `properties` + `required` (`.optional()`, `.default()` and `z.unknown()` fields are
 *   not required); `z.looseObject` also keeps unknown fields; arrays → `items`;
 * - `z.record(z.string(), X)` → `additionalProperties: X`; `z.record(z.enum([...]), X)` → an
 *   object with those fields; `z.unknown()`, `z.any()` and `z.record(z.string(), z.unknown())` →
 *   `x-kubernetes-preserve-unknown-fields: true`;
 * - `z.enum`, `z.literal` → `enum`; `.nullable()` → `nullable: true`; `.default(v)` → `default`;
 *   `.describe()`/`.meta({ description })` → `description`; other `.meta()` keys starting with
 *   `x-kubernetes-` (e.g. `x-kubernetes-validations`, `x-kubernetes-list-type`) are copied;
 * - `.min/.max/.gt/.lt/.positive/.multipleOf`, `.min/.max/.length` of strings and arrays,
 *   `.regex()` (translated to Go RE2; lookarounds and backreferences are refused) → the OpenAPI
 *   keywords (exclusive bounds in OpenAPI 3.0 form); `z.int()` → `integer`, `z.int32()` →
 *   `format: int32`; the string formats Kubernetes knows (`email`, `uri`, `uuid`, `date-time`,
 *   `date`, `ipv4`, `ipv6`, `cidr`, `mac`, `hostname`, `byte`) → `format`; other zod formats →
 *   their pattern when RE2 can run it, else checked by `.parse()` only;
 * - unions: of one scalar type → merged `enum` or `anyOf`; of number and string →
 *   `x-kubernetes-int-or-string` (the server then accepts integers, not fractions); of objects
 *   (e.g. `z.discriminatedUnion`) → one object with every option's fields, the fields common
 *   to all options required, and an `anyOf` telling the options apart; `| null` → nullable;
 * - refused with a {@linkcode CustomResourceSchemaError} naming the path (e.g.
 *   `spec.items[].size`): unions of different types, tuples, dates, bigints, maps, sets,
 *   recursion, objects with both fields and `.catchall()`, non-JSON defaults.
 *
 * `.refine()`/`.superRefine()`/`.transform()` cannot be sent to the server: they are enforced by
 * `.parse()` only (use `.meta({ "x-kubernetes-validations": [{ rule, message }] })` for CEL
 * rules the server checks).
 *
 * @param options Group, version, kind, scope, the `spec` (and `status`) zod schemas, and how
 *   kubectl shows the kind. The plural defaults to the lowercase kind plus `s`.
 * @returns The custom resource, an `Api` across all namespaces.
 * @throws {TypeError} On invalid names, printer columns or scale paths.
 * @throws {CustomResourceSchemaError} On a schema that cannot be expressed.
 * @example A namespaced kind with status and a printer column
 * ```ts
 * import { z } from "zod";
 * import { defineCustomResource } from "@denokube/kube";
 *
 * const Foo = defineCustomResource({
 *   group: "example.com",
 *   version: "v1",
 *   kind: "Foo",
 *   namespaced: true,
 *   spec: z.object({ replicas: z.int().min(0), image: z.string() }),
 *   status: z.object({ ready: z.int().optional() }),
 *   printerColumns: [{ name: "Replicas", type: "integer", jsonPath: ".spec.replicas" }],
 * });
 * console.log(Foo.plural); // "foos"
 * console.log(Foo.crd().metadata?.name); // "foos.example.com"
 * ```
 */
export function defineCustomResource<
  SpecSchema extends ZodSchema,
  StatusSchema extends ZodSchema | undefined = undefined,
>(
  options: CustomResourceOptions<SpecSchema, StatusSchema>,
): CustomResource<SchemaOutput<SpecSchema>, SchemaOutput<StatusSchema>> {
  return new CustomResource(
    options as unknown as CustomResourceOptions<
      ZodSchema<SchemaOutput<SpecSchema>>,
      ZodSchema<SchemaOutput<StatusSchema>> | undefined
    >,
  );
}

// ---------------------------------------------------------------------------------------------
// Building the definition

const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function prepare(options: CustomResourceOptions): Prepared {
  if (options === null || typeof options !== "object") {
    throw new TypeError("defineCustomResource needs an options object: { group, version, ... }");
  }
  const { group, version, kind } = options;
  const label = `defineCustomResource(${typeof kind === "string" ? kind : "?"})`;
  if (typeof group !== "string" || !DNS_1123_SUBDOMAIN.test(group) || !group.includes(".")) {
    throw new TypeError(
      `${label}: invalid group ${JSON.stringify(group)}: use a lowercase domain with at least ` +
        'one dot that you own, e.g. "example.com"',
    );
  }
  if (group.length > 253) throw new TypeError(`${label}: group is longer than 253 characters`);
  if (typeof version !== "string" || !DNS_1035.test(version) || version.length > 63) {
    throw new TypeError(
      `${label}: invalid version ${JSON.stringify(version)}: use e.g. "v1", "v1beta1", "v2alpha1"`,
    );
  }
  if (typeof kind !== "string" || !DNS_1035.test(kind.toLowerCase()) || kind.length > 63) {
    throw new TypeError(
      `${label}: invalid kind ${JSON.stringify(kind)}: use UpperCamelCase letters and digits, ` +
        'e.g. "Foo" or "CronTab"',
    );
  }
  if (typeof options.namespaced !== "boolean") {
    throw new TypeError(
      `${label}: "namespaced" must be true (objects live in namespaces) or false (cluster-scoped)`,
    );
  }
  const plural = options.plural ?? `${kind.toLowerCase()}s`;
  const singular = options.singular ?? kind.toLowerCase();
  const listKind = options.listKind ?? `${kind}List`;
  for (const [what, value] of [["plural", plural], ["singular", singular]] as const) {
    if (typeof value !== "string" || !DNS_1035.test(value) || value.length > 63) {
      throw new TypeError(
        `${label}: invalid ${what} ${JSON.stringify(value)}: use lowercase letters, digits and ` +
          "'-', starting with a letter",
      );
    }
  }
  if (
    typeof listKind !== "string" || !DNS_1035.test(listKind.toLowerCase()) || listKind === kind
  ) {
    throw new TypeError(`${label}: invalid listKind ${JSON.stringify(listKind)}`);
  }
  for (
    const [what, list] of [["shortNames", options.shortNames], [
      "categories",
      options.categories,
    ]] as const
  ) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new TypeError(`${label}: ${what} must be an array of names`);
    list.forEach((name, i) => {
      if (typeof name !== "string" || !DNS_1035.test(name) || name.length > 63) {
        throw new TypeError(
          `${label}: invalid ${what}[${i}] ${JSON.stringify(name)}: use lowercase letters, ` +
            "digits and '-', starting with a letter",
        );
      }
    });
  }
  const name = `${plural}.${group}`;
  if (name.length > 253) {
    throw new TypeError(`${label}: the definition's name ${name} is longer than 253 characters`);
  }

  // Schemas.
  if (!options.spec || typeof options.spec !== "object" || !("_zod" in options.spec)) {
    throw new TypeError(
      `${label}: "spec" must be a zod schema, e.g. spec: z.object({ replicas: z.int() })`,
    );
  }
  const spec = convertField(options.spec, "spec");
  assertObjectNode(spec.node, "spec", label);
  const properties: Record<string, JSONSchemaProps> = {
    apiVersion: {
      description: "The versioned schema of this representation of an object.",
      type: "string",
    },
    kind: { description: "The REST resource this object represents.", type: "string" },
    metadata: { type: "object" },
    spec: spec.node,
  };
  if (options.status !== undefined) {
    if (typeof options.status !== "object" || !("_zod" in options.status)) {
      throw new TypeError(`${label}: "status" must be a zod schema, e.g. z.object({ ... })`);
    }
    const status = convertField(options.status, "status");
    assertObjectNode(status.node, "status", label);
    properties.status = status.node;
  }
  const openAPIV3Schema: JSONSchemaProps = { type: "object", properties };
  if (!spec.optional) openAPIV3Schema.required = ["spec"];

  const version1: CustomResourceDefinitionVersion = {
    name: version,
    served: true,
    storage: true,
    schema: { openAPIV3Schema },
  };
  const subresources: NonNullable<CustomResourceDefinitionVersion["subresources"]> = {};
  if (options.status !== undefined) subresources.status = {};
  if (options.scale !== undefined) {
    subresources.scale = scaleSubresource(options.scale, openAPIV3Schema, label);
  }
  if (Object.keys(subresources).length > 0) version1.subresources = subresources;
  if (options.printerColumns !== undefined) {
    version1.additionalPrinterColumns = printerColumns(
      options.printerColumns,
      openAPIV3Schema,
      label,
    );
  }
  if (options.selectableFields !== undefined) {
    version1.selectableFields = selectableFields(options.selectableFields, openAPIV3Schema, label);
  }
  const names: CustomResourceDefinitionNames = { kind, plural, singular, listKind };
  if (options.shortNames?.length) names.shortNames = [...options.shortNames];
  if (options.categories?.length) names.categories = [...options.categories];
  return {
    descriptor: { group, version, kind, plural, namespaced: options.namespaced },
    crd: {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name },
      spec: {
        group,
        names,
        scope: options.namespaced ? "Namespaced" : "Cluster",
        versions: [version1],
      },
    },
  };
}

function assertObjectNode(node: JSONSchemaProps, path: string, label: string): void {
  if (node.type === "object") return;
  if (!node.type && node["x-kubernetes-preserve-unknown-fields"]) return;
  throw new CustomResourceSchemaError(
    path,
    `${label}: ${path} must be an object schema, e.g. z.object({ ... }), got ` +
      `${node.type ?? "int-or-string"}`,
  );
}

const COLUMN_TYPES = new Set(["integer", "number", "string", "boolean", "date"]);
const COLUMN_FORMATS = new Set([
  "int32",
  "int64",
  "float",
  "double",
  "byte",
  "date",
  "date-time",
  "password",
]);

function printerColumns(
  columns: CustomResourceColumnDefinition[],
  root: JSONSchemaProps,
  label: string,
): CustomResourceColumnDefinition[] {
  if (!Array.isArray(columns)) throw new TypeError(`${label}: printerColumns must be an array`);
  return columns.map((column, i) => {
    const where = `${label}: printerColumns[${i}]${
      typeof column?.name === "string" ? ` (${JSON.stringify(column.name)})` : ""
    }`;
    if (!column || typeof column.name !== "string" || column.name === "") {
      throw new TypeError(`${where}: needs a non-empty name`);
    }
    if (!COLUMN_TYPES.has(column.type)) {
      throw new TypeError(
        `${where}: invalid type ${JSON.stringify(column.type)}: use one of ${
          [...COLUMN_TYPES].join(", ")
        }`,
      );
    }
    if (column.format !== undefined && !COLUMN_FORMATS.has(column.format)) {
      throw new TypeError(
        `${where}: invalid format ${JSON.stringify(column.format)}: use one of ${
          [...COLUMN_FORMATS].join(", ")
        }`,
      );
    }
    if (
      column.priority !== undefined && (!Number.isInteger(column.priority) || column.priority < 0)
    ) {
      throw new TypeError(`${where}: priority must be a non-negative integer`);
    }
    checkJsonPath(column.jsonPath, root, where);
    const out: CustomResourceColumnDefinition = {
      name: column.name,
      type: column.type,
      jsonPath: column.jsonPath,
    };
    if (column.description !== undefined) out.description = column.description;
    if (column.priority !== undefined) out.priority = column.priority;
    if (column.format !== undefined) out.format = column.format;
    return out;
  });
}

function scaleSubresource(
  scale: Partial<CustomResourceSubresourceScale>,
  root: JSONSchemaProps,
  label: string,
): CustomResourceSubresourceScale {
  const out: CustomResourceSubresourceScale = {
    specReplicasPath: scale.specReplicasPath ?? ".spec.replicas",
    statusReplicasPath: scale.statusReplicasPath ?? ".status.replicas",
  };
  const check = (key: keyof CustomResourceSubresourceScale, prefixes: string[], type: string) => {
    const path = out[key]!;
    const where = `${label}: scale.${key}`;
    if (!prefixes.some((p) => path.startsWith(p))) {
      throw new TypeError(
        `${where} ${JSON.stringify(path)} must be a JSON path under ${prefixes.join(" or ")}`,
      );
    }
    const node = checkJsonPath(path, root, where);
    if (node && node.type !== type) {
      throw new TypeError(
        `${where}: ${path} is ${node.type ?? "untyped"} in the schema, but must be ${type}`,
      );
    }
  };
  check("specReplicasPath", [".spec."], "integer");
  check("statusReplicasPath", [".status."], "integer");
  if (scale.labelSelectorPath !== undefined) {
    out.labelSelectorPath = scale.labelSelectorPath;
    check("labelSelectorPath", [".spec.", ".status."], "string");
  }
  return out;
}

function selectableFields(
  paths: string[],
  root: JSONSchemaProps,
  label: string,
): { jsonPath: string }[] {
  if (!Array.isArray(paths)) throw new TypeError(`${label}: selectableFields must be an array`);
  return paths.map((jsonPath, i) => {
    const where = `${label}: selectableFields[${i}]`;
    if (typeof jsonPath === "string" && jsonPath.startsWith(".metadata")) {
      throw new TypeError(`${where}: must not point into metadata`);
    }
    const node = checkJsonPath(jsonPath, root, where);
    if (node && !["string", "boolean", "integer"].includes(node.type ?? "")) {
      throw new TypeError(
        `${where}: ${jsonPath} is ${node.type ?? "untyped"}, but selectable fields must be ` +
          "string, boolean or integer",
      );
    }
    return { jsonPath };
  });
}

/**
 * Checks that a simple JSON path (`.spec.items[0].size`) names a field of the schema.
 *
 * @returns The node it names, or undefined when it leads into a part the schema leaves open.
 */
function checkJsonPath(
  jsonPath: unknown,
  root: JSONSchemaProps,
  where: string,
): JSONSchemaProps | undefined {
  // Filters may hold spaces (`.status.conditions[?(@.type == "Ready")].status`); names may not.
  if (
    typeof jsonPath !== "string" || !jsonPath.startsWith(".") ||
    /\s/.test(jsonPath.replace(/\[[^\]]*\]/g, "[]"))
  ) {
    throw new TypeError(
      `${where}: jsonPath ${JSON.stringify(jsonPath)} must be a simple JSON path starting ` +
        'with ".", e.g. ".spec.replicas"',
    );
  }
  let node: JSONSchemaProps | undefined = root;
  let walked = "";
  let i = 1;
  const src = jsonPath;
  while (i < src.length && node) {
    if (src[i] === "[") {
      // An index or filter: step into the array's elements (or a map's values).
      let depth = 0;
      let j = i;
      for (; j < src.length; j++) {
        if (src[j] === "[") depth++;
        else if (src[j] === "]" && --depth === 0) break;
      }
      const listPath = walked || ".";
      walked += src.slice(i, j + 1);
      i = j + 1;
      if (node.type === "array") node = node.items;
      else if (typeof node.additionalProperties === "object") node = node.additionalProperties;
      else if (node["x-kubernetes-preserve-unknown-fields"]) return undefined;
      else {
        throw new TypeError(
          `${where}: jsonPath ${jsonPath}: ${listPath} is not a list or map in the schema`,
        );
      }
      continue;
    }
    if (src[i] === ".") i++;
    let j = i;
    while (j < src.length && src[j] !== "." && src[j] !== "[") j++;
    const key = src.slice(i, j);
    i = j;
    if (key === "") {
      throw new TypeError(`${where}: jsonPath ${jsonPath} has an empty segment`);
    }
    if (node === root && key === "metadata") return undefined; // ObjectMeta: not in the schema
    const parent: JSONSchemaProps = node;
    const parentPath = walked || ".";
    walked = walked ? `${walked}.${key}` : key;
    if (parent.properties?.[key]) node = parent.properties[key];
    else if (typeof parent.additionalProperties === "object") node = parent.additionalProperties;
    else if (parent["x-kubernetes-preserve-unknown-fields"]) return undefined;
    else {
      const known = Object.keys(parent.properties ?? {});
      throw new TypeError(
        `${where}: jsonPath ${jsonPath} does not exist in the schema: no field ${
          JSON.stringify(key)
        } in ${parentPath}${known.length ? ` (known fields: ${known.join(", ")})` : ""}`,
      );
    }
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Parsing

function toIssues(error: z.ZodError, value: unknown, prefix: string): CustomResourceIssue[] {
  return error.issues.map((issue) => {
    let path = prefix;
    for (const key of issue.path) {
      path = typeof key === "number" ? `${path}[${key}]` : childPath(path, String(key));
    }
    return { path, message: issueMessage(issue, value), code: issue.code };
  });
}

function issueMessage(issue: z.core.$ZodIssue, root: unknown): string {
  switch (issue.code) {
    case "invalid_type": {
      const actual = valueAt(root, issue.path);
      if (actual === undefined) return `required, but missing (expected ${issue.expected})`;
      return `expected ${issue.expected}, got ${jsonTypeOf(actual)}`;
    }
    case "invalid_union":
      return "matches none of the allowed shapes (union options)";
    default:
      // zod's own messages name the expected values and bounds, not the input.
      return issue.message;
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value === undefined) return "nothing";
  return typeof value;
}

function objectKey(object: unknown): string {
  const meta = (object as KubeObject | null)?.metadata;
  if (!meta || typeof meta !== "object" || typeof meta.name !== "string") return "(unnamed)";
  return typeof meta.namespace === "string" ? `${meta.namespace}/${meta.name}` : meta.name;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
