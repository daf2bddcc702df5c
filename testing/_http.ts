// Internal: the HTTP surface of the fake API server (mod.ts): routes paths and methods to
// verbs like the real kube-apiserver, parses query parameters and bodies, encodes answers and
// applies injected faults. Not part of the public API.

import { parse as parseYaml } from "yaml";
import { type Fault, type FaultRequest, FaultTable } from "./_faults.ts";
import { isObject, type JsonObject } from "./_json.ts";
import { AdmissionChain } from "./_admission.ts";
import { jsonPatch, mergePatch, PatchError } from "./_patch.ts";
import {
  apiGroupDocument,
  apiGroupListDocument,
  apiResourceListDocument,
  apiVersionsDocument,
  type ResourceType,
} from "./_resources.ts";
import { parseFieldSelector, parseLabelSelector } from "./_selectors.ts";
import {
  badRequest,
  CONTINUE_EXPIRED,
  failure,
  type FieldError,
  forbidden,
  forbiddenField,
  gone,
  invalid,
  LIST_EXPIRED,
  messageFor,
  methodNotAllowed,
  notSupported,
  pathNotFound,
  reasonFor,
  required,
  StatusError,
  unsupportedMediaType,
} from "./_status.ts";
import { type FakeCluster, grOf, type ListOptions } from "./_store.ts";
import { type StreamFault, WatchStream } from "./_watch.ts";

/** Thrown by the handler to make the transport fail like a refused or dropped connection. */
export class ConnectionFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionFault";
  }
}

/** Settings of the HTTP surface. */
export interface HttpSettings {
  bookmarkIntervalMs: number;
  watchList: boolean;
  user: string;
}

const JSON_HEADERS = { "content-type": "application/json" };
const PATCH_TYPES_BUILTIN = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
  "application/apply-patch+yaml",
];
const PATCH_TYPES_CUSTOM = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/apply-patch+yaml",
];

interface Route {
  group: string;
  version: string;
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function statusResponse(error: StatusError): Response {
  return json(error.status, error.code, error.headers);
}

function plainNotFound(): Response {
  return new Response("404 page not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
  });
}

function parseBool(query: URLSearchParams, name: string): boolean | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (["1", "t", "T", "true", "TRUE", "True"].includes(raw)) return true;
  if (["0", "f", "F", "false", "FALSE", "False", ""].includes(raw)) return false;
  throw badRequest(`strconv.ParseBool: parsing ${JSON.stringify(raw)}: invalid syntax`);
}

function parseInteger(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === "") return undefined;
  if (!/^-?\d+$/.test(raw)) {
    throw badRequest(`strconv.ParseInt: parsing ${JSON.stringify(raw)}: invalid syntax`);
  }
  return Number(raw);
}

function managerOf(query: URLSearchParams, request: Request): string {
  const explicit = query.get("fieldManager");
  if (explicit) return explicit;
  const agent = request.headers.get("user-agent") ?? "";
  return agent.split("/")[0] || "unknown";
}

/** The HTTP handler over a cluster. */
export class FakeHttp {
  readonly faults: FaultTable = new FaultTable();
  readonly watches: Set<WatchStream> = new Set();
  /** Admission webhooks called on create, update, patch and delete. */
  readonly admission: AdmissionChain = new AdmissionChain();
  #cluster: FakeCluster;
  #settings: HttpSettings;
  #pending = new Set<(error: unknown) => void>();

  constructor(cluster: FakeCluster, settings: HttpSettings) {
    this.#cluster = cluster;
    this.#settings = settings;
  }

  /** Ends every watch and fails every stalled request. */
  closeAll(): void {
    for (const stream of [...this.watches]) stream.close();
    for (const reject of [...this.#pending]) {
      reject(new ConnectionFault("connection closed: the fake API server was closed"));
    }
    this.#pending.clear();
  }

  /** Number of stalled requests still waiting. */
  get stalled(): number {
    return this.#pending.size;
  }

  /**
   * Answers one request.
   *
   * @throws {ConnectionFault} For `reset` and `close` faults.
   */
  async handle(request: Request, signal: AbortSignal | undefined): Promise<Response> {
    const url = new URL(request.url);
    let route: Route | undefined;
    let verb = "discovery";
    try {
      route = this.#route(url.pathname);
      if (route) verb = this.#verb(request.method, route, url.searchParams);
    } catch (e) {
      if (!(e instanceof StatusError)) throw e;
      // Routing errors are answered below, after faults had a chance to act.
      const faulted = await this.#requestFault(request, url, undefined, "discovery", signal);
      if (faulted) return faulted.response!;
      return statusResponse(e);
    }
    const faulted = await this.#requestFault(request, url, route, verb, signal);
    if (faulted?.response) return faulted.response;
    try {
      if (!route) return this.#nonResource(url);
      return await this.#serve(request, url, route, verb, signal, faulted?.stream);
    } catch (e) {
      if (e instanceof StatusError) return statusResponse(e);
      throw e;
    }
  }

  async #requestFault(
    request: Request,
    url: URL,
    route: Route | undefined,
    verb: string,
    signal: AbortSignal | undefined,
  ): Promise<{ response?: Response; stream?: StreamFault } | undefined> {
    const info: FaultRequest = { verb, method: request.method, url };
    if (route) {
      info.group = route.group;
      info.version = route.version;
      info.resource = route.type.plural;
      if (route.namespace !== undefined) info.namespace = route.namespace;
      if (route.name !== undefined) info.name = route.name;
      if (route.subresource !== undefined) info.subresource = route.subresource;
    }
    const found = this.faults.match(info);
    if (!found) return undefined;
    const fault = found.fault;
    if (verb === "watch") {
      const stream = streamFault(fault, found.after);
      if (stream) return { stream };
    }
    return { response: await this.#faultResponse(fault, info, route, signal, request) };
  }

  async #faultResponse(
    fault: Fault,
    info: FaultRequest,
    route: Route | undefined,
    signal: AbortSignal | undefined,
    request: Request,
  ): Promise<Response> {
    if (fault === "reset") {
      throw new ConnectionFault(
        `error sending request for url (${info.url.href}): client error (Connect): tcp connect error: Connection refused (os error 111)`,
      );
    }
    if (fault === "close") {
      throw new ConnectionFault(
        `error sending request for url (${info.url.href}): connection closed before message completed`,
      );
    }
    if (fault === "stall") {
      return await new Promise<Response>((_resolve, reject) => {
        const onAbort = () => {
          this.#pending.delete(fail);
          reject(signal?.reason ?? new DOMException("The signal has been aborted", "AbortError"));
        };
        const fail = (error: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        };
        if (signal?.aborted) return onAbort();
        this.#pending.add(fail);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    if (fault === "malformed-line") {
      return new Response('{"kind":"Status" this is not JSON', {
        status: 200,
        headers: JSON_HEADERS,
      });
    }
    if (fault === "truncate") {
      // Serve the real answer, cut in half.
      const real = route
        ? await this.#serveSafely(request, info.url, route, info.verb, signal)
        : this.#nonResource(info.url);
      const text = await real.text();
      return new Response(text.slice(0, Math.floor(text.length / 2)), {
        status: real.status,
        headers: real.headers,
      });
    }
    if (fault === "bookmark-only") return this.#nonResource(info.url);
    if ("expire" in fault) {
      const reason = fault.expire === "Gone" ? "Gone" : "Expired";
      const rv = info.url.searchParams.get("resourceVersion") ?? "";
      const message = info.verb === "watch"
        ? `too old resource version: ${
          rv || this.#cluster.resourceVersion
        } (${this.#cluster.resourceVersion})`
        : info.url.searchParams.has("continue")
        ? CONTINUE_EXPIRED
        : LIST_EXPIRED;
      return statusResponse(
        reason === "Gone" ? gone(message) : new StatusError(failure(410, "Expired", message)),
      );
    }
    const headers: Record<string, string> = {};
    if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
    if (fault.body !== undefined) {
      return new Response(fault.body, {
        status: fault.status,
        headers: { "content-type": "text/plain; charset=utf-8", ...headers },
      });
    }
    if (fault.status === 403 && route && fault.message === undefined) {
      const error = forbidden(
        grOf(route.type),
        route.name ?? "",
        info.verb,
        route.namespace ?? "",
        this.#settings.user,
      );
      return json(error.status, 403, headers);
    }
    const reason = fault.reason ?? reasonFor(fault.status);
    const details: JsonObject = {};
    if (fault.retryAfter !== undefined) details.retryAfterSeconds = fault.retryAfter;
    const status = failure(
      fault.status,
      reason,
      fault.message ?? messageFor(fault.status),
      fault.status === 429 || fault.retryAfter !== undefined ? details : undefined,
    );
    return json(status, fault.status, headers);
  }

  async #serveSafely(
    request: Request,
    url: URL,
    route: Route,
    verb: string,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    try {
      return await this.#serve(request, url, route, verb, signal, undefined);
    } catch (e) {
      if (e instanceof StatusError) return statusResponse(e);
      throw e;
    }
  }

  #nonResource(url: URL): Response {
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const parts = path.split("/").filter(Boolean);
    const registry = this.#cluster.types;
    if (path === "/api") return json(apiVersionsDocument(url.host));
    if (path === "/apis") return json(apiGroupListDocument(registry));
    if (parts[0] === "api" && parts.length === 2 && parts[1] === "v1") {
      return json(apiResourceListDocument(registry, "", "v1"));
    }
    if (parts[0] === "apis" && parts.length === 2) {
      const doc = apiGroupDocument(registry, parts[1]);
      return doc ? json(doc) : plainNotFound();
    }
    if (parts[0] === "apis" && parts.length === 3 && registry.hasGroupVersion(parts[1], parts[2])) {
      return json(apiResourceListDocument(registry, parts[1], parts[2]));
    }
    if (path === "/version") {
      return json({
        major: "1",
        minor: "36",
        emulationMajor: "1",
        emulationMinor: "36",
        minCompatibilityMajor: "1",
        minCompatibilityMinor: "35",
        gitVersion: "v1.36.3-fake",
        gitCommit: "0000000000000000000000000000000000000000",
        gitTreeState: "clean",
        buildDate: "2026-01-01T00:00:00Z",
        goVersion: "go1.26",
        compiler: "gc",
        platform: "linux/amd64",
      });
    }
    if (["/healthz", "/livez", "/readyz"].includes(path)) {
      return new Response("ok", { headers: { "content-type": "text/plain; charset=utf-8" } });
    }
    if (this.#servedPrefix(parts)) throw pathNotFound();
    return plainNotFound();
  }

  /** Whether a path lies in a served group/version (the real server answers a Status 404 there). */
  #servedPrefix(parts: string[]): boolean {
    if (parts[0] === "api") return parts[1] === "v1";
    if (parts[0] === "apis" && parts.length >= 3) {
      return this.#cluster.types.hasGroupVersion(parts[1], parts[2]);
    }
    return false;
  }

  /** Parses a resource path; `undefined` for non-resource paths (discovery, /version, …). */
  #route(pathname: string): Route | undefined {
    const parts = pathname.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === "api" && parts.length >= 3) {
      group = "";
      version = parts[1];
      rest = parts.slice(2);
    } else if (parts[0] === "apis" && parts.length >= 4) {
      group = parts[1];
      version = parts[2];
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    if (!this.#cluster.types.hasGroupVersion(group, version)) return undefined;
    let watchPath = false;
    if (rest[0] === "watch") {
      watchPath = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (
      rest[0] === "namespaces" && rest.length >= 3 && !(group === "" && rest.length === 3 &&
        (rest[2] === "status" || rest[2] === "finalize"))
    ) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length === 0 || rest.length > 3) throw pathNotFound();
    const type = this.#cluster.types.get(group, version, rest[0]);
    if (!type) throw pathNotFound();
    const route: Route = { group, version, type, watchPath };
    if (namespace !== undefined) {
      if (!type.namespaced) throw pathNotFound();
      route.namespace = namespace;
    }
    if (rest.length >= 2) {
      route.name = rest[1];
      if (type.namespaced && namespace === undefined) throw pathNotFound();
    }
    if (rest.length === 3) {
      if (!type.subresources.includes(rest[2]) || watchPath) throw pathNotFound();
      route.subresource = rest[2];
    }
    return route;
  }

  #verb(method: string, route: Route, query: URLSearchParams): string {
    const item = route.name !== undefined;
    const clusterWide = route.type.namespaced && route.namespace === undefined;
    if (route.watchPath) {
      if (method !== "GET") throw methodNotAllowed();
      return "watch";
    }
    if (route.subresource !== undefined) {
      if (method === "GET") return "get";
      if (method === "PUT") return "update";
      if (method === "PATCH") return "patch";
      throw methodNotAllowed();
    }
    switch (method) {
      case "GET":
        if (parseBool(query, "watch")) return "watch";
        return item ? "get" : "list";
      case "POST":
        if (item || clusterWide) throw methodNotAllowed();
        return "create";
      case "PUT":
        if (!item) throw methodNotAllowed();
        return "update";
      case "PATCH":
        if (!item) throw methodNotAllowed();
        return "patch";
      case "DELETE":
        if (item) return "delete";
        if (clusterWide) throw methodNotAllowed();
        return "deletecollection";
      default:
        throw methodNotAllowed();
    }
  }

  async #serve(
    request: Request,
    url: URL,
    route: Route,
    verb: string,
    signal: AbortSignal | undefined,
    stream: StreamFault | undefined,
  ): Promise<Response> {
    const cluster = this.#cluster;
    const query = url.searchParams;
    const { type, namespace, name, subresource } = route;
    const dryRun = this.#dryRun(query);
    const manager = managerOf(query, request);
    switch (verb) {
      case "get":
        return json(cluster.get(type, namespace, name!));
      case "list":
        return json(cluster.list(type, namespace, this.#listOptions(type, query, false)));
      case "watch":
        return this.#watch(route, query, signal, stream);
      case "create": {
        let body = await this.#body(request, type);
        if (this.admission.active(type) && isObject(body)) {
          body = await this.#admit(
            request,
            route,
            "CREATE",
            body,
            null,
            dryRun,
            (object) =>
              cluster.create(type, namespace, structuredClone(object), { manager, dryRun: true }),
          );
        }
        const created = cluster.create(type, namespace, body, { manager, dryRun });
        return json(created, 201);
      }
      case "update": {
        let body = await this.#body(request, type);
        if (this.admission.active(type) && isObject(body)) {
          const old = cluster.get(type, namespace, name!);
          body = await this.#admit(
            request,
            route,
            "UPDATE",
            body,
            old,
            dryRun,
            (object) =>
              cluster.update(type, namespace, name!, structuredClone(object), {
                manager,
                dryRun: true,
              }, subresource),
          );
        }
        return json(cluster.update(type, namespace, name!, body, { manager, dryRun }, subresource));
      }
      case "patch":
        return await this.#patch(request, route, query, manager, dryRun);
      case "delete": {
        const options = await this.#deleteOptions(request);
        if (this.admission.active(type)) {
          const old = cluster.get(type, namespace, name!);
          await this.admission.validate({
            ...this.#call(request, route, "DELETE", dryRun),
            object: null,
            oldObject: old,
          });
        }
        return json(cluster.delete(type, namespace, name!, { dryRun, ...options }));
      }
      case "deletecollection": {
        const options = await this.#deleteOptions(request);
        return json(
          cluster.deleteCollection(type, namespace, this.#listOptions(type, query, false), {
            dryRun,
            ...options,
          }),
        );
      }
      default:
        throw methodNotAllowed();
    }
  }

  #dryRun(query: URLSearchParams): boolean {
    const values = query.getAll("dryRun");
    if (values.length === 0) return false;
    const bad = values.filter((v) => v !== "All");
    if (bad.length) {
      throw invalid("meta.k8s.io", "CreateOptions", "", [
        notSupported("dryRun", JSON.stringify(bad), ["All"]),
      ]);
    }
    return true;
  }

  async #deleteOptions(
    request: Request,
  ): Promise<{ preconditions?: { uid?: string; resourceVersion?: string } }> {
    const text = await request.text();
    if (!text.trim()) return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw badRequest(`error decoding DeleteOptions: ${(e as Error).message}`);
    }
    if (!isObject(parsed) || !isObject(parsed.preconditions)) return {};
    const pre = parsed.preconditions as JsonObject;
    const preconditions: { uid?: string; resourceVersion?: string } = {};
    if (typeof pre.uid === "string") preconditions.uid = pre.uid;
    if (typeof pre.resourceVersion === "string") {
      preconditions.resourceVersion = pre.resourceVersion;
    }
    return { preconditions };
  }

  async #body(request: Request, type: ResourceType): Promise<unknown> {
    const text = await request.text();
    const contentType = (request.headers.get("content-type") ?? "application/json").split(";")[0]
      .trim();
    if (contentType === "application/yaml" || contentType === "application/x-yaml") {
      try {
        return parseYaml(text);
      } catch (e) {
        throw badRequest(`error decoding YAML: ${(e as Error).message}`);
      }
    }
    if (contentType !== "application/json" && contentType !== "") {
      throw unsupportedMediaType([
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
      ]);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw badRequest(
        `the body of the request could not be decoded as a ${type.kind}: json parse error: ${
          (e as Error).message
        }`,
      );
    }
  }

  #call(
    request: Request,
    route: Route,
    operation: "CREATE" | "UPDATE" | "DELETE",
    dryRun: boolean,
  ) {
    return {
      type: route.type,
      operation,
      subresource: route.subresource,
      namespace: route.namespace,
      name: route.name ?? "",
      dryRun,
      username: request.headers.get("user-agent")?.split("/")[0] || "fake-user",
    };
  }

  /**
   * Admission as the real server runs it: the mutating webhooks on the body, then the server's
   * own defaulting and validation (a dry run), then the validating webhooks on its result.
   *
   * @returns The body to write (mutated).
   */
  async #admit(
    request: Request,
    route: Route,
    operation: "CREATE" | "UPDATE",
    body: JsonObject,
    old: JsonObject | null,
    dryRun: boolean,
    preview: (object: JsonObject) => JsonObject,
  ): Promise<JsonObject> {
    const base = { ...this.#call(request, route, operation, dryRun), oldObject: old };
    if (operation === "CREATE" && !route.name) {
      const meta = isObject(body.metadata) ? body.metadata as JsonObject : {};
      base.name = typeof meta.name === "string" ? meta.name : "";
    }
    const mutated = (await this.admission.mutate({ ...base, object: body })) ?? body;
    await this.admission.validate({ ...base, object: preview(mutated) });
    return mutated;
  }

  async #patch(
    request: Request,
    route: Route,
    query: URLSearchParams,
    manager: string,
    dryRun: boolean,
  ): Promise<Response> {
    const { type, namespace, name, subresource } = route;
    const cluster = this.#cluster;
    const contentType = (request.headers.get("content-type") ?? "").split(";")[0].trim();
    const accepted = type.builtin ? PATCH_TYPES_BUILTIN : PATCH_TYPES_CUSTOM;
    if (!accepted.includes(contentType)) {
      // Built-in kinds: go-restful refuses the content type before the handler runs.
      if (type.builtin) {
        throw new StatusError(
          failure(415, "UnsupportedMediaType", "415: Unsupported Media Type", {}),
        );
      }
      throw unsupportedMediaType(accepted);
    }
    const force = parseBool(query, "force");
    const text = await request.text();
    if (contentType === "application/apply-patch+yaml") {
      const fieldManager = query.get("fieldManager") ?? "";
      if (!fieldManager) {
        throw invalid("meta.k8s.io", "PatchOptions", "", [
          required("fieldManager", "is required for apply patch"),
        ]);
      }
      let applied: unknown;
      try {
        applied = parseYaml(text);
      } catch (e) {
        throw badRequest(`error decoding YAML: ${(e as Error).message}`);
      }
      if (!isObject(applied)) {
        throw badRequest("error decoding YAML: the applied configuration is not an object");
      }
      const options = { manager: fieldManager, force: force ?? false };
      if (this.admission.active(type)) {
        const exists = (() => {
          try {
            return cluster.get(type, namespace, name!);
          } catch {
            return null;
          }
        })();
        const preview = cluster.apply(type, namespace, name!, structuredClone(applied), {
          ...options,
          dryRun: true,
        }, subresource).object;
        const operation = exists ? "UPDATE" : "CREATE";
        const body = await this.#admit(
          request,
          route,
          operation,
          preview,
          exists,
          dryRun,
          (o) =>
            exists
              ? cluster.update(type, namespace, name!, structuredClone(o), {
                manager: fieldManager,
                dryRun: true,
              }, subresource)
              : cluster.create(type, namespace, structuredClone(o), {
                manager: fieldManager,
                dryRun: true,
              }),
        );
        if (JSON.stringify(body) !== JSON.stringify(preview)) {
          // A webhook changed the applied object: write the result (as the real server does,
          // the mutation belongs to the request's manager).
          const result = cluster.apply(
            type,
            namespace,
            name!,
            applied,
            { ...options, dryRun },
            subresource,
          );
          const real = result.object.metadata as JsonObject;
          const fixed = {
            ...body,
            metadata: {
              ...(body.metadata as JsonObject),
              uid: real.uid,
              resourceVersion: real.resourceVersion,
              creationTimestamp: real.creationTimestamp,
              managedFields: real.managedFields,
            },
          };
          return json(
            cluster.update(
              type,
              namespace,
              name!,
              fixed,
              { manager: fieldManager, dryRun },
              subresource,
            ),
            result.created ? 201 : 200,
          );
        }
      }
      const result = cluster.apply(
        type,
        namespace,
        name!,
        applied,
        { ...options, dryRun },
        subresource,
      );
      return json(result.object, result.created ? 201 : 200);
    }
    if (force !== undefined) {
      throw invalid("meta.k8s.io", "PatchOptions", "", [
        forbiddenField("force", "may not be specified for non-apply patch"),
      ]);
    }
    let patch: unknown;
    try {
      patch = JSON.parse(text);
    } catch (e) {
      throw badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    const patchFn = (live: JsonObject): unknown => {
      try {
        if (contentType === "application/json-patch+json") return jsonPatch(live, patch);
        // Merge patch; strategic merge patch is treated as a merge patch (no list merge keys).
        if (!isObject(patch)) throw new PatchError("invalid JSON document", true);
        return mergePatch(live, patch);
      } catch (e) {
        if (!(e instanceof PatchError)) throw e;
        if (e.malformed) throw badRequest(e.message);
        throw new StatusError(
          failure(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
            {},
          ),
        );
      }
    };
    if (this.admission.active(type)) {
      // The patched object is what the webhooks see; a mutation of it is written as an update.
      const old = cluster.get(type, namespace, name!);
      const patched = cluster.patch(type, namespace, name!, patchFn, {
        manager,
        dryRun: true,
      }, subresource);
      const body = await this.#admit(
        request,
        route,
        "UPDATE",
        patched,
        old,
        dryRun,
        (object) =>
          cluster.update(type, namespace, name!, structuredClone(object), {
            manager,
            dryRun: true,
          }, subresource),
      );
      if (JSON.stringify(body) !== JSON.stringify(patched)) {
        return json(cluster.update(type, namespace, name!, body, { manager, dryRun }, subresource));
      }
    }
    return json(cluster.patch(type, namespace, name!, patchFn, { manager, dryRun }, subresource));
  }

  #listOptions(type: ResourceType, query: URLSearchParams, watch: boolean): ListOptions {
    const labels = parseLabelSelector(query.get("labelSelector") ?? "");
    const fields = parseFieldSelector(
      query.get("fieldSelector") ?? "",
      type.selectableFields,
      type.fieldErrorStyle ?? "label",
    );
    const limit = parseInteger(query, "limit");
    const continueToken = query.get("continue") ?? undefined;
    const resourceVersion = query.get("resourceVersion") ?? undefined;
    const resourceVersionMatch = query.get("resourceVersionMatch") || undefined;
    const sendInitialEvents = parseBool(query, "sendInitialEvents");
    const errors: FieldError[] = [];
    if (watch) {
      if (sendInitialEvents !== undefined) {
        if (resourceVersionMatch !== "NotOlderThan") {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ),
          );
        }
        if (!this.#settings.watchList) {
          errors.push(
            forbiddenField(
              "sendInitialEvents",
              "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ),
          );
        }
      }
      if (resourceVersionMatch !== undefined) {
        if (sendInitialEvents === undefined) {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ),
          );
        }
        if (resourceVersionMatch !== "NotOlderThan") {
          errors.push(notSupported("resourceVersionMatch", resourceVersionMatch, ["NotOlderThan"]));
        }
        if (continueToken) {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              "resourceVersionMatch is forbidden when continue is provided",
            ),
          );
        }
      }
    } else {
      if (resourceVersionMatch !== undefined) {
        if (!resourceVersion) {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ),
          );
        }
        if (continueToken) {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              "resourceVersionMatch is forbidden when continue is provided",
            ),
          );
        }
        if (resourceVersionMatch !== "Exact" && resourceVersionMatch !== "NotOlderThan") {
          errors.push(
            notSupported("resourceVersionMatch", resourceVersionMatch, [
              "Exact",
              "NotOlderThan",
              "",
            ]),
          );
        }
        if (resourceVersionMatch === "Exact" && resourceVersion === "0") {
          errors.push(
            forbiddenField(
              "resourceVersionMatch",
              'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
            ),
          );
        }
      }
      if (sendInitialEvents !== undefined) {
        errors.push(forbiddenField("sendInitialEvents", "sendInitialEvents is forbidden for list"));
      }
    }
    if (errors.length) throw invalid("meta.k8s.io", "ListOptions", "", errors);
    if (resourceVersion !== undefined && resourceVersion !== "" && !/^\d+$/.test(resourceVersion)) {
      throw badRequest(`invalid resource version: ${JSON.stringify(resourceVersion)}`);
    }
    const options: ListOptions = { labels, fields };
    if (limit !== undefined) options.limit = limit;
    if (continueToken) options.continueToken = continueToken;
    if (resourceVersion !== undefined) options.resourceVersion = resourceVersion;
    if (resourceVersionMatch !== undefined) options.resourceVersionMatch = resourceVersionMatch;
    return options;
  }

  #watch(
    route: Route,
    query: URLSearchParams,
    signal: AbortSignal | undefined,
    fault: StreamFault | undefined,
  ): Response {
    const options = this.#listOptions(route.type, query, true);
    if (route.name !== undefined) {
      const selected = options.fields.exact("metadata.name");
      if (options.fields.requirements.length && selected !== route.name) {
        throw badRequest("fieldSelector metadata.name doesn't match requested name");
      }
    }
    const stream = new WatchStream(this.#cluster, {
      type: route.type,
      ...(route.namespace !== undefined ? { namespace: route.namespace } : {}),
      ...(route.name !== undefined ? { name: route.name } : {}),
      labels: options.labels,
      fields: options.fields,
      ...(options.resourceVersion !== undefined
        ? { resourceVersion: options.resourceVersion }
        : {}),
      ...(parseBool(query, "sendInitialEvents") !== undefined
        ? { sendInitialEvents: parseBool(query, "sendInitialEvents") }
        : {}),
      allowWatchBookmarks: parseBool(query, "allowWatchBookmarks") ?? false,
      ...(parseInteger(query, "timeoutSeconds") !== undefined
        ? { timeoutSeconds: parseInteger(query, "timeoutSeconds") }
        : {}),
      bookmarkIntervalMs: this.#settings.bookmarkIntervalMs,
      watchList: this.#settings.watchList,
      ...(signal ? { signal } : {}),
      ...(fault ? { fault } : {}),
    }, (done) => this.watches.delete(done));
    if (!stream.closed) this.watches.add(stream);
    return new Response(stream.body, {
      status: 200,
      headers: { ...JSON_HEADERS, "cache-control": "no-cache, private" },
    });
  }
}

function streamFault(fault: Fault, after: number): StreamFault | undefined {
  if (typeof fault === "string") {
    if (fault === "reset") return undefined;
    return { kind: fault, after };
  }
  if ("expire" in fault && !fault.http) {
    return { kind: "expire", after, reason: fault.expire === "Gone" ? "Gone" : "Expired" };
  }
  return undefined;
}
