// Internal: the state and write semantics of the fake API server (mod.ts): objects, the global
// resourceVersion counter, the event history watches and paged lists read from, finalizers, and
// the controllers the API server runs itself (namespace cleanup, CRD establishment and
// finalization). What differs per kind (defaults, validation, delete behaviour) is in `_kinds/`.
// Not part of the public API.

import { apply, conflictMessage, type Part, trackUpdate, type Writer } from "./_apply.ts";
import {
  clone,
  deepEqual,
  isObject,
  type JsonObject,
  metaOf,
  metaString,
  quote,
  rfc3339,
  SYSTEM_METADATA_FIELDS,
} from "./_json.ts";
import {
  apiVersionOf,
  builtinTypes,
  compareVersions,
  ResourceRegistry,
  type ResourceType,
  storageIdOf,
} from "./_resources.ts";
import { type FieldSelector, type LabelSelector, matchesSelectors } from "./_selectors.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  CONTINUE_EXPIRED,
  expired,
  failure,
  type FieldError,
  forbiddenField,
  type GroupResource,
  invalid,
  invalidValue,
  LIST_EXPIRED,
  notFound,
  OBJECT_MODIFIED,
  required,
  StatusError,
  tooLargeResourceVersion,
} from "./_status.ts";
import { kindBehaviour, type KindHost } from "./_kinds/mod.ts";

/** A change, as kept in the history and sent to watches. */
/**
 * Conversion between the versions of one resource (what `defineConversion` of
 * `@denokube/kube/webhook` returns, taken structurally): objects are stored in the hub's version
 * and converted when written or read through another.
 */
export interface FakeConversion {
  /** The hub (storage) version. */
  readonly hub: { readonly group: string; readonly plural: string; readonly apiVersion: string };
  /**
   * Converts an object to a version.
   *
   * @param object The object, with its apiVersion.
   * @param to The apiVersion wanted.
   * @returns The object in that version.
   */
  convert(object: Record<string, unknown>, to: string): unknown;
}

export interface HistoryEvent {
  /** The resourceVersion the change produced. */
  rv: number;
  /** Storage identity (`group/plural`). */
  storageId: string;
  /** The change. */
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** Object key (`namespace/name` or `name`). */
  key: string;
  /** The object after the change (for DELETED: the last state, carrying the deletion RV). */
  object: JsonObject;
  /** The object before the change (MODIFIED, DELETED). */
  prev?: JsonObject;
}

/** Receives the changes of one storage (a watch). */
export interface EventSink {
  /** Storage identity of interest. */
  readonly storageId: string;
  /** Called synchronously after each committed change. */
  onEvent(event: HistoryEvent): void;
}

/** Options of a write. */
export interface WriteOptions {
  /** Field manager (`fieldManager` query, or derived from the User-Agent). */
  manager?: string;
  /** `dryRun=All`: validate and answer without storing. */
  dryRun?: boolean;
}

/** Options of a list. */
export interface ListOptions {
  labels: LabelSelector;
  fields: FieldSelector;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035_MSG =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/** `group/resource` for messages. */
export function grOf(type: ResourceType): GroupResource {
  return { group: type.group, resource: type.plural };
}

function nameErrors(type: ResourceType, name: string): FieldError[] {
  if (type.nameRule === "label") {
    const errs: FieldError[] = [];
    if (name.length > 63) {
      errs.push(invalidValue("metadata.name", name, "must be no more than 63 characters"));
    }
    if (!DNS_LABEL.test(name)) errs.push(invalidValue("metadata.name", name, LABEL_MSG));
    return errs;
  }
  if (type.nameRule === "label1035") {
    const errs: FieldError[] = [];
    if (name.length > 63) {
      errs.push(invalidValue("metadata.name", name, "must be no more than 63 characters"));
    }
    if (!DNS_1035.test(name)) errs.push(invalidValue("metadata.name", name, LABEL_1035_MSG));
    return errs;
  }
  const errs: FieldError[] = [];
  if (name.length > 253) {
    errs.push(invalidValue("metadata.name", name, "must be no more than 253 characters"));
  }
  if (!DNS_SUBDOMAIN.test(name)) errs.push(invalidValue("metadata.name", name, SUBDOMAIN_MSG));
  return errs;
}

function encodeContinue(rv: number, start: string): string {
  const json = JSON.stringify({ v: "meta.k8s.io/v1", rv, start });
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const binary = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    if (parsed?.v !== "meta.k8s.io/v1") throw new Error("version");
    if (typeof parsed.rv !== "number" || parsed.rv === 0) {
      throw badRequest(
        "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
      );
    }
    if (typeof parsed.start !== "string" || parsed.start === "") throw new Error("start");
    return { rv: parsed.rv, start: parsed.start };
  } catch (e) {
    if (e instanceof StatusError) throw e;
    throw badRequest("invalid continue token: continue key is not valid");
  }
}

function parseRv(value: string, what = "resourceVersion"): number {
  if (!/^\d+$/.test(value)) {
    throw badRequest(`invalid ${what}: ${quote(value)}`);
  }
  return Number(value);
}

/** The cluster state. */
export class FakeCluster {
  /** The served types. */
  readonly types: ResourceRegistry = new ResourceRegistry();
  #rv: number;
  #stores = new Map<string, Map<string, JsonObject>>();
  #history: HistoryEvent[] = [];
  #historySize: number;
  #watchFloor = 0;
  #continueFloor = 0;
  #sinks = new Set<EventSink>();
  #now: () => Date;
  #serviceIp = 0;

  constructor(
    options: { historySize?: number; now?: () => Date; initialResourceVersion?: number },
  ) {
    this.#historySize = options.historySize ?? 10_000;
    this.#now = options.now ?? (() => new Date());
    this.#rv = options.initialResourceVersion ?? 100;
    for (const type of builtinTypes()) this.types.add(type);
    for (const ns of ["default", "kube-node-lease", "kube-public", "kube-system"]) {
      this.#createDirect(this.typeOf("", "v1", "namespaces"), { metadata: { name: ns } });
    }
    this.#createDirect(this.typeOf("", "v1", "services"), {
      metadata: {
        name: "kubernetes",
        namespace: "default",
        labels: { component: "apiserver", provider: "kubernetes" },
      },
      spec: {
        ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: 6443 }],
        sessionAffinity: "None",
        type: "ClusterIP",
      },
    });
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** The oldest resourceVersion a watch can start from. */
  get watchFloor(): number {
    return this.#watchFloor;
  }

  /** The served type, which must exist. */
  typeOf(group: string, version: string, plural: string): ResourceType {
    const type = this.types.get(group, version, plural);
    if (!type) throw new Error(`no type ${group}/${version}/${plural}`);
    return type;
  }

  #store(type: ResourceType): Map<string, JsonObject> {
    const id = storageIdOf(type);
    let store = this.#stores.get(id);
    if (!store) {
      store = new Map();
      this.#stores.set(id, store);
    }
    return store;
  }

  /** The key of an object in its storage. */
  keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
    return type.namespaced ? `${namespace ?? ""}/${name}` : name;
  }

  /** An object as a client sees it through a type's version: a copy with apiVersion and kind. */
  present(type: ResourceType, object: JsonObject): JsonObject {
    const converter = this.#converters.get(storageIdOf(type));
    const want = apiVersionOf(type);
    if (converter && typeof object.apiVersion === "string" && object.apiVersion !== want) {
      // Stored in another version: through the conversion webhook, as the real server does.
      const converted = converter.convert(clone(object), want) as JsonObject;
      const { apiVersion: _a, kind: _k, ...rest } = clone(converted);
      return { apiVersion: want, kind: type.kind, ...rest };
    }
    const { apiVersion: _a, kind: _k, ...rest } = clone(object);
    return { apiVersion: want, kind: type.kind, ...rest };
  }

  #converters = new Map<string, FakeConversion>();

  /** Converts objects of a multi-version resource between its versions (see `FakeConversion`). */
  addConversion(conversion: FakeConversion): void {
    this.#converters.set(storageIdOf(conversion.hub), conversion);
  }

  /** The apiVersion objects of `type` are stored in. */
  #storageVersion(type: ResourceType): string {
    return this.#converters.get(storageIdOf(type))?.hub.apiVersion ?? apiVersionOf(type);
  }

  /** A body written through `type`'s version, in the storage version. */
  #toStorage(type: ResourceType, object: JsonObject): JsonObject {
    const storage = this.#storageVersion(type);
    const from = apiVersionOf(type);
    if (storage === from) return object;
    return clone(
      this.#converters.get(storageIdOf(type))!.convert(
        { ...object, apiVersion: from, kind: type.kind },
        storage,
      ) as JsonObject,
    );
  }

  /** Subscribes to the changes of one storage. */
  subscribe(sink: EventSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** Number of live subscriptions (open watches). */
  get subscriptions(): number {
    return this.#sinks.size;
  }

  /** The events of one storage after a resourceVersion, oldest first. */
  eventsAfter(storageId: string, rv: number): HistoryEvent[] {
    return this.#history.filter((e) => e.rv > rv && e.storageId === storageId);
  }

  /** The objects of one storage at a past resourceVersion (rebuilt from the history). */
  snapshot(type: ResourceType, rv: number): Map<string, JsonObject> {
    const state = new Map(this.#store(type));
    const id = storageIdOf(type);
    for (let i = this.#history.length - 1; i >= 0 && this.#history[i].rv > rv; i--) {
      const event = this.#history[i];
      if (event.storageId !== id) continue;
      if (event.type === "ADDED") state.delete(event.key);
      else state.set(event.key, event.prev!);
    }
    return state;
  }

  /** Drops the history up to now: watches and continue tokens from older versions expire. */
  compact(): void {
    this.#history = [];
    this.#watchFloor = this.#rv;
    this.#continueFloor = this.#rv;
  }

  /** Makes every continue token issued so far expire (an etcd compaction past them). */
  expireContinueTokens(): void {
    this.#rv++; // a write elsewhere in etcd: the revision moves on, no event here
    this.#continueFloor = this.#rv;
  }

  /** Every stored object (presented in its stored apiVersion), optionally of one kind. */
  objects(kind?: string): JsonObject[] {
    const out: JsonObject[] = [];
    const ids = new Set<string>();
    for (const type of this.types.all()) {
      if (kind !== undefined && type.kind !== kind && type.plural !== kind) continue;
      const id = storageIdOf(type);
      if (ids.has(id)) continue;
      ids.add(id);
      const store = this.#stores.get(id);
      if (!store) continue;
      for (const key of [...store.keys()].sort()) out.push(clone(store.get(key)!));
    }
    return out;
  }

  #commit(
    type: ResourceType,
    change: HistoryEvent["type"],
    key: string,
    object: JsonObject,
    prev: JsonObject | undefined,
    dryRun = false,
  ): JsonObject {
    if (dryRun) return object;
    const rv = ++this.#rv;
    metaOf(object).resourceVersion = String(rv);
    const store = this.#store(type);
    if (change === "DELETED") store.delete(key);
    else store.set(key, clone(object));
    const event: HistoryEvent = {
      rv,
      storageId: storageIdOf(type),
      type: change,
      key,
      object: clone(object),
    };
    if (prev) event.prev = clone(prev);
    this.#history.push(event);
    if (this.#history.length > this.#historySize) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historySize);
      const floor = dropped[dropped.length - 1].rv;
      this.#watchFloor = Math.max(this.#watchFloor, floor);
      this.#continueFloor = Math.max(this.#continueFloor, floor);
    }
    for (const sink of [...this.#sinks]) {
      if (sink.storageId === event.storageId) sink.onEvent(event);
    }
    return object;
  }

  /** Reads one object. */
  get(type: ResourceType, namespace: string | undefined, name: string): JsonObject {
    const object = this.#store(type).get(this.keyOf(type, namespace, name));
    if (!object) throw notFound(grOf(type), name);
    return this.present(type, object);
  }

  /** Whether a namespace exists. */
  hasNamespace(name: string): boolean {
    return this.#store(this.typeOf("", "v1", "namespaces")).has(name);
  }

  #checkNamespace(type: ResourceType, namespace: string | undefined, name: string): void {
    if (!type.namespaced || namespace === undefined) return;
    const ns = this.#store(this.typeOf("", "v1", "namespaces")).get(namespace);
    if (!ns) throw notFound({ group: "", resource: "namespaces" }, namespace);
    if (metaString(ns, "deletionTimestamp")) {
      const status = failure(
        403,
        "Forbidden",
        `${type.group ? `${type.plural}.${type.group}` : type.plural} ${
          quote(name)
        } is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        {
          name,
          ...(type.group ? { group: type.group } : {}),
          kind: type.plural,
          causes: [{
            reason: "NamespaceTerminating",
            message: `namespace ${namespace} is being terminated`,
            field: "metadata.namespace",
          }],
        },
      );
      throw new StatusError(status);
    }
  }

  #checkBody(type: ResourceType, body: unknown): JsonObject {
    if (!isObject(body)) {
      throw badRequest(`the body of the request could not be decoded as a ${type.kind}`);
    }
    const kind = body.kind;
    const apiVersion = body.apiVersion;
    if (typeof kind === "string" && kind !== "" && kind !== type.kind) {
      throw badRequest(
        `${kind} in version ${
          quote(String(apiVersion ?? ""))
        } cannot be handled as a ${type.kind}: the kind in the body does not match the resource`,
      );
    }
    if (typeof apiVersion === "string" && apiVersion !== "" && apiVersion !== apiVersionOf(type)) {
      throw badRequest(
        `the API version in the data (${apiVersion}) does not match the expected API version (${
          apiVersionOf(type)
        })`,
      );
    }
    return clone(body);
  }

  #prepareCreate(type: ResourceType, namespace: string | undefined, object: JsonObject): void {
    const meta = metaOf(object);
    const name = typeof meta.name === "string" ? meta.name : "";
    const errors: FieldError[] = [];
    if (name === "") {
      if (typeof meta.generateName === "string" && meta.generateName !== "") {
        let suffix = "";
        for (let i = 0; i < 5; i++) {
          suffix += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
        }
        meta.name = meta.generateName + suffix;
      } else {
        errors.push(required("metadata.name", "name or generateName is required"));
      }
    }
    this.#checkNamespace(type, namespace, String(meta.name ?? ""));
    if (type.namespaced) {
      if (
        typeof meta.namespace === "string" && meta.namespace !== "" && meta.namespace !== namespace
      ) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = namespace;
    } else {
      delete meta.namespace;
    }
    if (typeof meta.name === "string" && meta.name !== "") {
      errors.push(...nameErrors(type, meta.name));
    }
    errors.push(...this.#validate(type, object));
    if (errors.length) throw invalid(type.group, type.kind, String(meta.name ?? ""), errors);
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== "") {
      throw new StatusError(
        failure(500, "", "resourceVersion should not be set on objects to be created"),
      );
    }
    const now = rfc3339(this.#now());
    const ordered: JsonObject = { name: meta.name };
    if (meta.generateName) ordered.generateName = meta.generateName;
    if (type.namespaced) ordered.namespace = namespace;
    ordered.uid = crypto.randomUUID();
    ordered.resourceVersion = "";
    if (type.generation) ordered.generation = 1;
    ordered.creationTimestamp = now;
    for (const [k, v] of Object.entries(meta)) {
      if (SYSTEM_METADATA_FIELDS.has(k)) continue;
      ordered[k] = v;
    }
    object.metadata = ordered;
    if (type.subresources.includes("status")) delete object.status;
    this.#defaults(type, object, undefined);
  }

  /** Kind-specific defaulting, like the real registry strategies (a small subset). */
  #defaults(type: ResourceType, object: JsonObject, old: JsonObject | undefined): void {
    kindBehaviour(storageIdOf(type)).defaults?.(object, old, this.#host);
  }

  /** Kind-specific validation (a small subset of the real rules). */
  #validate(type: ResourceType, object: JsonObject): FieldError[] {
    return kindBehaviour(storageIdOf(type)).validate?.(object) ?? [];
  }

  /** Creates an object. */
  create(
    type: ResourceType,
    namespace: string | undefined,
    body: unknown,
    options: WriteOptions = {},
  ): JsonObject {
    const object = this.#toStorage(type, this.#checkBody(type, body));
    this.#prepareCreate(type, namespace, object);
    const name = metaString(object, "name");
    const key = this.keyOf(type, namespace, name);
    if (this.#store(type).has(key)) throw alreadyExists(grOf(type), name);
    if (options.manager) {
      trackUpdate(
        undefined,
        object,
        this.#writer(type, options.manager),
        "main",
        this.#hasStatus(type),
      );
    }
    object.apiVersion = this.#storageVersion(type);
    object.kind = type.kind;
    this.#commit(type, "ADDED", key, object, undefined, options.dryRun);
    this.#afterWrite(type, object, options.dryRun);
    return this.present(type, object);
  }

  /** Creates an object without any request semantics (for `seed`). */
  #createDirect(type: ResourceType, body: JsonObject): JsonObject {
    return this.create(type, metaString(body, "namespace") || undefined, body);
  }

  /** Seeds an object directly: the type is found from apiVersion and kind. */
  seed(body: JsonObject): JsonObject {
    const kind = typeof body.kind === "string" ? body.kind : "";
    const apiVersion = typeof body.apiVersion === "string" ? body.apiVersion : "";
    const type = this.types.byKind(kind, apiVersion).find((t) => t.kind === kind);
    if (!type) {
      throw new TypeError(
        `seed: no served resource for apiVersion ${quote(apiVersion)} kind ${
          quote(kind)
        }; register it first with registerResource()`,
      );
    }
    const namespace = type.namespaced ? (metaString(body, "namespace") || "default") : undefined;
    if (namespace !== undefined && !this.hasNamespace(namespace)) {
      this.create(this.typeOf("", "v1", "namespaces"), undefined, {
        metadata: { name: namespace },
      });
    }
    const copy = clone(body);
    if (isObject(copy.metadata)) delete (copy.metadata as JsonObject).resourceVersion;
    const status = copy.status;
    const created = this.create(type, namespace, copy);
    if (status !== undefined && type.subresources.includes("status")) {
      return this.update(
        type,
        namespace,
        metaString(created, "name"),
        { ...created, status },
        {},
        "status",
      );
    }
    return created;
  }

  #hasStatus(type: ResourceType): boolean {
    return type.subresources.includes("status");
  }

  #writer(type: ResourceType, manager: string, subresource?: string): Writer {
    const writer: Writer = { manager, apiVersion: apiVersionOf(type), now: this.#now() };
    if (subresource) writer.subresource = subresource;
    return writer;
  }

  #existing(type: ResourceType, namespace: string | undefined, name: string): JsonObject {
    const existing = this.#store(type).get(this.keyOf(type, namespace, name));
    if (!existing) throw notFound(grOf(type), name);
    return existing;
  }

  /**
   * Computes the object an update produces from the live object and the body, with the
   * semantics of the main resource or the status subresource.
   */
  #merge(
    type: ResourceType,
    live: JsonObject,
    body: JsonObject,
    part: Part,
  ): JsonObject {
    const liveMeta = live.metadata as JsonObject;
    if (part === "status") {
      const next = clone(live);
      if (body.status === undefined) delete next.status;
      else next.status = clone(body.status);
      return next;
    }
    const next = clone(body);
    const meta = metaOf(next);
    for (
      const k of [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "namespace",
      ]
    ) {
      if (liveMeta[k] === undefined) delete meta[k];
      else meta[k] = clone(liveMeta[k]);
    }
    if (this.#hasStatus(type)) {
      if (live.status === undefined) delete next.status;
      else next.status = clone(live.status);
    }
    return next;
  }

  /** Validates and stores an update of a live object. */
  #write(
    type: ResourceType,
    live: JsonObject,
    next: JsonObject,
    part: Part,
    options: WriteOptions,
    managed: "update" | "keep",
  ): JsonObject {
    const name = metaString(live, "name");
    const namespace = type.namespaced ? metaString(live, "namespace") : undefined;
    const key = this.keyOf(type, namespace, name);
    const meta = metaOf(next);
    meta.name = name;
    next.apiVersion = this.#storageVersion(type);
    next.kind = type.kind;
    meta.resourceVersion = metaString(live, "resourceVersion");
    if (part === "main") this.#defaults(type, next, live);
    const errors = this.#validate(type, next);
    const liveFinalizers = (live.metadata as JsonObject).finalizers;
    if (metaString(live, "deletionTimestamp") && Array.isArray(meta.finalizers)) {
      const old = Array.isArray(liveFinalizers) ? liveFinalizers : [];
      if ((meta.finalizers as unknown[]).some((f) => !old.includes(f))) {
        errors.push(
          forbiddenField(
            "metadata.finalizers",
            "no new finalizers can be added if the object is being deleted",
          ),
        );
      }
    }
    if (errors.length) throw invalid(type.group, type.kind, name, errors);
    if (type.generation) {
      const strip = (o: JsonObject) => {
        const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
        return this.#hasStatus(type) ? rest : { ...rest, status: o.status };
      };
      if (!deepEqual(strip(live), strip(next))) {
        meta.generation = Number((live.metadata as JsonObject).generation ?? 0) + 1;
      }
    }
    if (managed === "update" && options.manager) {
      trackUpdate(
        live,
        next,
        this.#writer(type, options.manager, part === "status" ? "status" : undefined),
        part,
        this.#hasStatus(type),
      );
    }
    const withoutTime = (o: JsonObject) => {
      const c = clone(o);
      const m = c.metadata as JsonObject;
      if (Array.isArray(m.managedFields)) {
        m.managedFields = (m.managedFields as JsonObject[]).map(({ time: _t, ...e }) => e);
      }
      return c;
    };
    if (deepEqual(withoutTime(live), withoutTime(next))) return this.present(type, live);
    const finalizers = Array.isArray(meta.finalizers) ? meta.finalizers : [];
    if (metaString(live, "deletionTimestamp") && finalizers.length === 0) {
      this.#commit(type, "DELETED", key, next, live, options.dryRun);
      this.#afterDelete(type, next, options.dryRun);
      return this.present(type, next);
    }
    this.#commit(type, "MODIFIED", key, next, live, options.dryRun);
    this.#afterWrite(type, next, options.dryRun);
    return this.present(type, next);
  }

  /** Replaces an object (PUT), or its status. */
  update(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: WriteOptions = {},
    subresource?: string,
  ): JsonObject {
    const object = this.#toStorage(type, this.#checkBody(type, body));
    const meta = metaOf(object);
    if (typeof meta.name === "string" && meta.name !== "" && meta.name !== name) {
      throw badRequest(
        `the name of the object (${meta.name}) does not match the name on the URL (${name})`,
      );
    }
    if (
      type.namespaced && typeof meta.namespace === "string" && meta.namespace !== "" &&
      meta.namespace !== namespace
    ) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const live = this.#existing(type, namespace, name);
    this.#checkPreconditions(type, live, object);
    const part: Part = subresource === "status" ? "status" : "main";
    return this.#write(type, live, this.#merge(type, live, object, part), part, options, "update");
  }

  #checkPreconditions(type: ResourceType, live: JsonObject, body: JsonObject): void {
    const name = metaString(live, "name");
    const rv = metaString(body, "resourceVersion");
    if (rv !== "" && rv !== metaString(live, "resourceVersion")) {
      throw conflict(grOf(type), name, OBJECT_MODIFIED);
    }
    const uid = metaString(body, "uid");
    if (uid !== "" && uid !== metaString(live, "uid")) {
      throw conflict(
        grOf(type),
        name,
        `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${
          metaString(live, "uid")
        }`,
      );
    }
  }

  /**
   * Patches an object with an already-computed patch function (merge or JSON patch), with the
   * semantics of an update.
   */
  patch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patchFn: (live: JsonObject) => unknown,
    options: WriteOptions = {},
    subresource?: string,
  ): JsonObject {
    const live = this.#existing(type, namespace, name);
    const current = this.present(type, live);
    const patched = patchFn(current);
    if (!isObject(patched)) throw badRequest("the patched object is not a JSON object");
    const patchedMeta = metaOf(patched);
    if (patchedMeta.name !== undefined && patchedMeta.name !== name) {
      throw badRequest(
        `the name of the object (${patchedMeta.name}) does not match the name on the URL (${name})`,
      );
    }
    const object = this.#toStorage(type, this.#checkBody(type, patched));
    this.#checkPreconditions(type, live, object);
    const part: Part = subresource === "status" ? "status" : "main";
    return this.#write(type, live, this.#merge(type, live, object, part), part, options, "update");
  }

  /** Server-side apply (simplified, see `testing/_apply.ts`). Answers `created` for a create. */
  apply(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: WriteOptions & { manager: string; force: boolean },
    subresource?: string,
  ): { object: JsonObject; created: boolean } {
    const applied = this.#checkBody(type, body);
    const appliedMeta = metaOf(applied);
    if (appliedMeta.name !== undefined && appliedMeta.name !== name) {
      throw badRequest(
        `the name of the object (${appliedMeta.name}) does not match the name on the URL (${name})`,
      );
    }
    if (
      type.namespaced && typeof appliedMeta.namespace === "string" &&
      appliedMeta.namespace !== "" &&
      appliedMeta.namespace !== namespace
    ) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const part: Part = subresource === "status" ? "status" : "main";
    const writer = this.#writer(type, options.manager, part === "status" ? "status" : undefined);
    const live = this.#store(type).get(this.keyOf(type, namespace, name));
    if (!live) {
      if (part === "status") throw notFound(grOf(type), name);
      const result = apply(undefined, applied, writer, options.force, part, this.#hasStatus(type));
      const object = result.object;
      const managedFields = isObject(object.metadata)
        ? (object.metadata as JsonObject).managedFields
        : undefined;
      metaOf(object).name = name;
      this.#prepareCreate(type, namespace, object);
      if (managedFields !== undefined) metaOf(object).managedFields = managedFields;
      object.apiVersion = apiVersionOf(type);
      object.kind = type.kind;
      this.#commit(
        type,
        "ADDED",
        this.keyOf(type, namespace, name),
        object,
        undefined,
        options.dryRun,
      );
      this.#afterWrite(type, object, options.dryRun);
      const created = this.present(type, object);
      return { object: created, created: true };
    }
    this.#checkPreconditions(type, live, applied);
    const result = apply(live, applied, writer, options.force, part, this.#hasStatus(type));
    if (result.conflicts.length) {
      throw new StatusError(
        failure(409, "Conflict", conflictMessage(result.conflicts), {
          causes: result.conflicts.map((c) => ({
            reason: "FieldManagerConflict",
            message: `conflict with ${c.manager}`,
            field: c.path,
          })),
        }),
      );
    }
    const next = part === "status"
      ? { ...clone(live), status: result.object.status, metadata: result.object.metadata }
      : result.object;
    if (part === "main" && this.#hasStatus(type)) {
      if (live.status === undefined) delete next.status;
      else next.status = clone(live.status);
    }
    const merged = clone(next);
    const liveMeta = live.metadata as JsonObject;
    const meta = metaOf(merged);
    for (const k of ["uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace"]) {
      if (liveMeta[k] === undefined) delete meta[k];
      else meta[k] = clone(liveMeta[k]);
    }
    return { object: this.#write(type, live, merged, part, options, "keep"), created: false };
  }

  /** Deletes an object: at once, or (with finalizers) by marking it. */
  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: WriteOptions & { preconditions?: { uid?: string; resourceVersion?: string } } = {},
  ): JsonObject {
    const live = this.#existing(type, namespace, name);
    const pre = options.preconditions;
    // rest.BeforeDelete words these with the kind (not the resource) as the "resource".
    const byKind: GroupResource = { group: type.group, resource: type.kind };
    if (pre?.uid && pre.uid !== metaString(live, "uid")) {
      throw conflict(
        byKind,
        name,
        `the UID in the precondition (${pre.uid}) does not match the UID in record (${
          metaString(live, "uid")
        }). The object might have been deleted and then recreated`,
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== metaString(live, "resourceVersion")) {
      throw conflict(
        byKind,
        name,
        `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ResourceVersion in record (${
          metaString(live, "resourceVersion")
        }). The object might have been modified`,
      );
    }
    const kind = kindBehaviour(storageIdOf(type));
    const refused = kind.refuseDelete?.(name);
    if (refused) throw refused;
    const key = this.keyOf(type, namespace, name);
    const finalizers = (live.metadata as JsonObject).finalizers;
    if ((Array.isArray(finalizers) && finalizers.length) || kind.finalize) {
      if (metaString(live, "deletionTimestamp")) return this.present(type, live);
      const next = clone(live);
      const meta = metaOf(next);
      meta.deletionTimestamp = rfc3339(this.#now());
      if (kind.mark) kind.mark(next);
      else meta.deletionGracePeriodSeconds = 0;
      this.#commit(type, "MODIFIED", key, next, live, options.dryRun);
      const answer = this.present(type, next);
      if (!options.dryRun) kind.finalize?.(next, this.#host);
      return answer;
    }
    let before = live;
    if (kind.graceful && !options.dryRun) {
      // Graceful deletion with a zero grace period (no kubelet here): the object is first marked,
      // then removed, as the real server does for a pod that is not running on a node.
      const marked = clone(live);
      const meta = metaOf(marked);
      meta.deletionTimestamp = rfc3339(this.#now());
      meta.deletionGracePeriodSeconds = 0;
      meta.generation = Number(meta.generation ?? 0) + 1;
      this.#commit(type, "MODIFIED", key, marked, live);
      before = marked;
    }
    const deleted = clone(before);
    this.#commit(type, "DELETED", key, deleted, before, options.dryRun);
    this.#afterDelete(type, deleted, options.dryRun);
    if (type.returnDeletedObject) return this.present(type, deleted);
    const details: JsonObject = { name };
    if (type.group) details.group = type.group;
    details.kind = type.plural;
    details.uid = metaString(live, "uid");
    return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details };
  }

  /** Lists objects, with selectors and paging. Answers the list object. */
  list(type: ResourceType, namespace: string | undefined, options: ListOptions): JsonObject {
    let rv = this.#rv;
    let start = "";
    let consistent = true;
    if (options.continueToken) {
      const token = decodeContinue(options.continueToken);
      start = token.start;
      if (token.rv < 0) {
        consistent = false;
      } else if (token.rv < this.#continueFloor || token.rv > this.#rv) {
        throw expired(CONTINUE_EXPIRED, encodeContinue(-1, token.start));
      } else {
        rv = token.rv;
      }
    } else if (options.resourceVersion && options.resourceVersion !== "0") {
      const requested = parseRv(options.resourceVersion);
      const exact = options.resourceVersionMatch === "Exact" ||
        (options.resourceVersionMatch === undefined && options.limit !== undefined &&
          options.limit > 0);
      if (requested > this.#rv) throw tooLargeResourceVersion(requested, this.#rv);
      if (exact) {
        if (requested < this.#continueFloor) throw expired(LIST_EXPIRED);
        rv = requested;
      }
    }
    const state = consistent && rv !== this.#rv ? this.snapshot(type, rv) : this.#store(type);
    const keys = [...state.keys()].sort();
    const items: JsonObject[] = [];
    let next: string | undefined;
    let remaining = 0;
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : Infinity;
    for (const key of keys) {
      if (start && key < start) continue;
      const object = state.get(key)!;
      if (
        namespace !== undefined && type.namespaced && metaString(object, "namespace") !== namespace
      ) {
        continue;
      }
      if (!matchesSelectors(object, options.labels, options.fields)) continue;
      if (items.length >= limit) {
        if (next === undefined) next = encodeContinue(rv, keyAfter(items, type, this));
        remaining++;
        continue;
      }
      items.push(object);
    }
    const meta: JsonObject = { resourceVersion: String(consistent ? rv : this.#rv) };
    if (next !== undefined) {
      meta.continue = consistent ? next : encodeContinue(-1, keyAfter(items, type, this));
      // The real server counts the rest only when no selector filters it.
      if (options.labels.requirements.length === 0 && options.fields.requirements.length === 0) {
        meta.remainingItemCount = remaining;
      }
    }
    const presented = items.map((o) => {
      const p = this.present(type, o);
      if (type.builtin) {
        delete p.apiVersion;
        delete p.kind;
      }
      return p;
    });
    if (!type.builtin) {
      if (meta.continue === undefined) meta.continue = "";
      return {
        apiVersion: apiVersionOf(type),
        items: presented,
        kind: type.listKind,
        metadata: meta,
      };
    }
    return {
      kind: type.listKind,
      apiVersion: apiVersionOf(type),
      metadata: meta,
      items: presented,
    };
  }

  /** Deletes every object a list selects. Answers the list of deleted objects, like the real server. */
  deleteCollection(
    type: ResourceType,
    namespace: string | undefined,
    options: ListOptions,
    write: WriteOptions = {},
  ): JsonObject {
    const list = this.list(type, namespace, {
      ...options,
      limit: undefined,
      continueToken: undefined,
    });
    const deleted: JsonObject[] = [];
    for (const item of list.items as JsonObject[]) {
      try {
        const result = this.delete(
          type,
          metaString(item, "namespace") || undefined,
          metaString(item, "name"),
          write,
        );
        deleted.push(result.kind === "Status" ? item : result);
      } catch (e) {
        if (!(e instanceof StatusError && e.code === 404)) throw e;
      }
    }
    if (type.builtin) {
      for (const d of deleted) {
        delete d.apiVersion;
        delete d.kind;
      }
    }
    return { ...list, items: deleted };
  }

  #afterWrite(type: ResourceType, object: JsonObject, dryRun?: boolean): void {
    if (dryRun) return;
    kindBehaviour(storageIdOf(type)).afterWrite?.(object, this.#host);
  }

  #afterDelete(type: ResourceType, object: JsonObject, dryRun?: boolean): void {
    if (dryRun) return;
    kindBehaviour(storageIdOf(type)).afterDelete?.(object, this.#host);
    // The namespace controller notices the last object of a terminating namespace go.
    const namespace = metaString(object, "namespace");
    if (type.namespaced && namespace) this.#finishNamespaceIfEmpty(namespace);
  }

  #finishNamespaceIfEmpty(namespace: string): void {
    const ns = this.#store(this.typeOf("", "v1", "namespaces")).get(namespace);
    if (ns && metaString(ns, "deletionTimestamp")) this.#finishNamespace(namespace);
  }

  /** What kind behaviour may use of the store (see `_kinds/kind.ts`). */
  #host: KindHost = {
    now: () => this.#now(),
    nextServiceIp: () => {
      const n = this.#serviceIp++;
      return `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    },
    terminateNamespace: (name) => this.#terminateNamespace(name),
    finishNamespaceIfEmpty: (name) => this.#finishNamespaceIfEmpty(name),
    terminateCrd: (crd) => this.#terminateCrd(crd),
    establishCrd: (crd) => this.#establishCrd(crd),
    forgetCrd: (name) => this.types.removeCrd(name),
  };

  /** What the namespace controller does: delete the content, then the namespace. */
  #terminateNamespace(name: string): void {
    for (const type of this.#uniqueTypes()) {
      if (!type.namespaced) continue;
      for (const [key, object] of [...this.#store(type)]) {
        if (metaString(object, "namespace") !== name) continue;
        if (!this.#store(type).has(key)) continue;
        this.delete(type, name, metaString(object, "name"));
      }
    }
    this.#finishNamespace(name);
  }

  #finishNamespace(name: string): void {
    for (const type of this.#uniqueTypes()) {
      if (!type.namespaced) continue;
      for (const object of this.#store(type).values()) {
        if (metaString(object, "namespace") === name) return;
      }
    }
    const type = this.typeOf("", "v1", "namespaces");
    const live = this.#store(type).get(name);
    if (!live) return;
    const next = clone(live);
    if (isObject(next.spec)) (next.spec as JsonObject).finalizers = [];
    this.#commit(type, "DELETED", name, next, live);
  }

  /** What the apiextensions finalizer does: delete the custom resources, then the CRD. */
  #terminateCrd(crd: JsonObject): void {
    const name = metaString(crd, "name");
    const types = this.types.all().filter((t) => t.crd === name);
    const seen = new Set<string>();
    for (const type of types) {
      const id = storageIdOf(type);
      if (seen.has(id)) continue;
      seen.add(id);
      for (const object of [...this.#store(type).values()]) {
        const m = object.metadata as JsonObject;
        const ns = type.namespaced ? String(m.namespace) : undefined;
        const key = this.keyOf(type, ns, String(m.name));
        const deleted = clone(object);
        if (Array.isArray(m.finalizers) && m.finalizers.length) {
          (deleted.metadata as JsonObject).finalizers = [];
        }
        this.#commit(type, "DELETED", key, deleted, object);
      }
    }
    const crdType = this.typeOf("apiextensions.k8s.io", "v1", "customresourcedefinitions");
    const live = this.#store(crdType).get(name);
    if (
      live && !(Array.isArray((live.metadata as JsonObject).finalizers) &&
        ((live.metadata as JsonObject).finalizers as unknown[]).length)
    ) {
      this.#commit(crdType, "DELETED", name, clone(live), live);
      this.types.removeCrd(name);
    }
  }

  #uniqueTypes(): ResourceType[] {
    const seen = new Set<string>();
    return this.types.all().filter((t) => {
      const id = storageIdOf(t);
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }

  /** Registers the served versions of a CRD and marks it Established (what its controllers do). */
  #establishCrd(crd: JsonObject): void {
    const name = metaString(crd, "name");
    const spec = crd.spec as JsonObject;
    const names = spec.names as JsonObject;
    const kind = String(names.kind);
    const plural = String(names.plural);
    const singular = typeof names.singular === "string" && names.singular
      ? names.singular
      : kind.toLowerCase();
    const listKind = typeof names.listKind === "string" && names.listKind
      ? names.listKind
      : `${kind}List`;
    this.types.removeCrd(name);
    const versions = (spec.versions as JsonObject[]).filter((v) => v.served !== false);
    for (const version of versions) {
      const subresources = isObject(version.subresources) ? version.subresources as JsonObject : {};
      const selectable = Array.isArray(version.selectableFields)
        ? (version.selectableFields as JsonObject[]).map((f) =>
          String(f.jsonPath ?? "").replace(/^\./, "")
        )
        : [];
      this.types.add({
        group: String(spec.group),
        version: String(version.name),
        kind,
        listKind,
        plural,
        singular,
        namespaced: spec.scope === "Namespaced",
        shortNames: Array.isArray(names.shortNames) ? names.shortNames.map(String) : [],
        categories: Array.isArray(names.categories) ? names.categories.map(String) : [],
        subresources: subresources.status !== undefined ? ["status"] : [],
        builtin: false,
        generation: true,
        returnDeletedObject: false,
        selectableFields: ["metadata.name", "metadata.namespace", ...selectable],
        nameRule: "subdomain",
        crd: name,
      });
    }
    // The status the apiextensions controllers write.
    const crdType = this.typeOf("apiextensions.k8s.io", "v1", "customresourcedefinitions");
    const live = this.#store(crdType).get(name);
    if (!live) return;
    const now = rfc3339(this.#now());
    const oldStatus = isObject(live.status) ? live.status as JsonObject : {};
    const storage = (spec.versions as JsonObject[]).find((v) => v.storage === true)?.name;
    const stored = Array.isArray(oldStatus.storedVersions)
      ? [...oldStatus.storedVersions as string[]]
      : [];
    if (storage && !stored.includes(String(storage))) stored.push(String(storage));
    const acceptedNames: JsonObject = { plural, singular, kind, listKind };
    if (Array.isArray(names.shortNames)) acceptedNames.shortNames = names.shortNames;
    if (Array.isArray(names.categories)) acceptedNames.categories = names.categories;
    const conditions = [
      {
        type: "NamesAccepted",
        status: "True",
        lastTransitionTime: now,
        reason: "NoConflicts",
        message: "no conflicts found",
      },
      {
        type: "Established",
        status: "True",
        lastTransitionTime: now,
        reason: "InitialNamesAccepted",
        message: "the initial names have been accepted",
      },
    ];
    const oldConditions = Array.isArray(oldStatus.conditions)
      ? oldStatus.conditions as JsonObject[]
      : [];
    for (const c of conditions) {
      const old = oldConditions.find((o) => o.type === c.type && o.status === c.status);
      if (old) c.lastTransitionTime = String(old.lastTransitionTime);
    }
    const status = { conditions, acceptedNames, storedVersions: stored };
    if (deepEqual(oldStatus, status)) return;
    const next = clone(live);
    next.status = status;
    this.#commit(crdType, "MODIFIED", name, next, live);
  }

  /** Registers a custom resource type directly. */
  register(type: ResourceType): void {
    this.types.add(type);
  }

  /** The preferred served version of a group. */
  preferredVersion(group: string): string | undefined {
    const versions = this.types.groups().get(group);
    return versions ? [...versions].sort(compareVersions)[0] : undefined;
  }
}

function keyAfter(items: JsonObject[], type: ResourceType, cluster: FakeCluster): string {
  const last = items[items.length - 1];
  const ns = type.namespaced ? metaString(last, "namespace") : undefined;
  return `${cluster.keyOf(type, ns, metaString(last, "name"))}\u0000`;
}
