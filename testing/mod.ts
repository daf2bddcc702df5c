/**
 * {@linkcode FakeApiServer}: an in-memory Kubernetes API server for tests, with the semantics of
 * the real kube-apiserver where clients can observe them: a global resourceVersion, `Status` error
 * bodies, paging with expiring continue tokens, label and field selectors, watches with history,
 * bookmarks and `410 Expired`, the `status` subresource, merge/JSON/apply patches, CRDs and
 * discovery. It answers through {@linkcode FakeApiServer.prototype.fetch} (no sockets) or on a
 * loopback port, and can inject faults (errors, stalls, broken streams).
 *
 * Simplifications against the real server (each is deliberate and stable):
 * - No admission, authentication, authorization, defaulting or validation beyond: object names,
 *   namespaces, `spec.containers` of pods, CRD names and versions. A few real defaults are applied:
 *   namespaces (`spec.finalizers`, `status.phase: Active`, the `kubernetes.io/metadata.name`
 *   label), pods (`status.phase: Pending`, `qosClass`), secrets (`type: Opaque`, `stringData`),
 *   services (`clusterIP`, `type`), deployments (`spec.replicas: 1`).
 * - No controllers, except what the API server itself does: deleting a namespace deletes its
 *   content at once; deleting a CRD deletes its custom resources at once; a CRD is Established at
 *   once (the create answer still shows the initial status, the Established status follows as
 *   a MODIFIED event, as on the real server). A deleted pod is marked (`deletionTimestamp`,
 *   grace period 0: MODIFIED) then removed (DELETED), like an unscheduled pod on the real
 *   server. Finalizers are honoured.
 * - Strategic merge patch is applied as a JSON merge patch (no `$patch` directives, lists are
 *   replaced). Server-side apply treats every list as atomic (see `testing/_apply.ts`).
 * - Custom resources are stored once for all versions; reading another version only changes
 *   `apiVersion` (the `None` conversion strategy).
 * - Built-in objects are not defaulted like the real server does (no pod `restartPolicy`,
 *   `dnsPolicy`, service-account volume…; no deployment `strategy`…), and the ServiceAccount
 *   admission plugin is not emulated (a real server without controllers refuses pods until the
 *   namespace has a `default` ServiceAccount).
 * - `metadata.managedFields` records Update/Apply owners per field but writes no `.` entries.
 * - Discovery is the legacy (unaggregated) format, without `storageVersionHash`.
 * - Error messages that embed Go parser errors (a malformed continue token or JSON body) differ in
 *   their detail text; codes and reasons do not.
 *
 * @example Use it with a Client
 * ```ts
 * import { FakeApiServer } from "@denokube/kube/testing";
 *
 * await using server = new FakeApiServer();
 * const client = server.client();
 * const res = await client.request({
 *   method: "POST",
 *   path: "/api/v1/namespaces/default/configmaps",
 *   body: { metadata: { name: "settings" }, data: { color: "blue" } },
 * });
 * const created = await res.json();
 * console.log(created.metadata.resourceVersion); // e.g. "102"
 * ```
 *
 * @module
 */

import { stringify as stringifyYaml } from "yaml";
import type { KubeObject } from "../api.ts";
import { Client, type ClientOptions } from "../client.ts";
import { Config } from "../config.ts";
import { ApiError } from "../errors.ts";
import type { FaultHandle, FaultRule } from "./_faults.ts";
import type { FakeAdmissionWebhook } from "./_admission.ts";
import type { FakeConversion } from "./_store.ts";
import { ConnectionFault, FakeHttp } from "./_http.ts";
import type { JsonObject } from "./_json.ts";
import type { ResourceType } from "./_resources.ts";
import { StatusError } from "./_status.ts";
import { FakeCluster } from "./_store.ts";
import { runtime, type ServeHandle } from "../_platform/mod.ts";

export { VirtualClock } from "./virtual_clock.ts";
export {
  ControllerHarness,
  type ControllerHarnessOptions,
  type HarnessRequest,
  type HarnessServer,
} from "./controller_harness.ts";
export type { Fault, FaultHandle, FaultRequest, FaultRule, FaultVerb } from "./_faults.ts";
export {
  type HonestServer,
  HOSTILE_KINDS,
  HostileApiServer,
  type HostileKind,
  type HostileOptions,
} from "./hostile.ts";
export type { FakeAdmissionWebhook } from "./_admission.ts";
export type { FakeConversion } from "./_store.ts";

/** A Kubernetes object with any other fields (`spec`, `status`, `data`, …). */
export type FakeObject = KubeObject & Record<string, unknown>;

/** The URL the fake answers to when it is not listening on a port. */
export const FAKE_SERVER_URL = "http://fake.invalid";

/** Options of {@linkcode FakeApiServer}. */
export interface FakeApiServerOptions {
  /**
   * How many changes the event history keeps (all resources together). Watches and continue
   * tokens from before the oldest kept change expire (410), like after an etcd compaction.
   * Default 10 000.
   */
  historySize?: number;
  /** Interval of the periodic BOOKMARK events of watches with `allowWatchBookmarks`. Default 60 000 ms. */
  bookmarkIntervalMs?: number;
  /**
   * The WatchList feature gate (on by default since Kubernetes 1.34): a watch with
   * `resourceVersion` unset or `"0"` and `allowWatchBookmarks=true` ends its initial ADDED events
   * with a BOOKMARK annotated `k8s.io/initial-events-end: "true"`, and `sendInitialEvents` is
   * accepted. Default true.
   */
  watchList?: boolean;
  /** The user named in the messages of injected 403 faults. Default `system:serviceaccount:default:test`. */
  user?: string;
  /** The first resourceVersion is this plus one. Default 100. */
  initialResourceVersion?: number;
  /** Clock for timestamps (`creationTimestamp`, `deletionTimestamp`, managed fields). */
  now?: () => Date;
}

/** A custom resource type to serve; see {@linkcode FakeApiServer.prototype.registerResource}. */
export interface CustomResourceDefinitionInit {
  /** API group, e.g. `example.com` (`""` is the core group). */
  group: string;
  /** API version, e.g. `v1`. */
  version: string;
  /** Kind, e.g. `Widget`. */
  kind: string;
  /** Plural resource name used in paths, e.g. `widgets`. */
  plural: string;
  /** Whether objects live in namespaces. */
  namespaced: boolean;
  /** Subresources to serve; only `"status"` is supported. */
  subresources?: readonly "status"[];
  /** Singular name for discovery. Default: the lowercase kind. */
  singular?: string;
  /** List kind. Default: kind + `List`. */
  listKind?: string;
  /** Short names for discovery. */
  shortNames?: readonly string[];
  /** Categories for discovery, e.g. `["all"]`. */
  categories?: readonly string[];
  /**
   * Dotted paths (besides `metadata.name` and `metadata.namespace`) that field selectors may use.
   * Default: any path is accepted (more lenient than a real CRD).
   */
  selectableFields?: readonly string[];
}

/**
 * An in-memory Kubernetes API server. See the module documentation for what it implements and
 * where it differs from the real server.
 *
 * Paths, verbs and answers are those of the real server: `GET/POST /api/v1/namespaces/{ns}/pods`,
 * `GET/PUT/PATCH/DELETE …/pods/{name}`, `…/pods/{name}/status`, `?watch=1`, discovery at `/api`,
 * `/apis`, `/api/v1`, `/apis/{group}/{version}`, and `/version`. Served kinds: namespaces, pods,
 * configmaps, secrets, services, serviceaccounts, nodes, events, apps/v1 deployments,
 * coordination.k8s.io/v1 leases, apiextensions.k8s.io/v1 customresourcedefinitions, and every
 * registered or CRD-defined custom resource. The namespaces `default`, `kube-system`,
 * `kube-public` and `kube-node-lease` and the `default/kubernetes` service exist at start.
 *
 * @example Seed objects, then watch changes from a resourceVersion
 * ```ts
 * import { FakeApiServer } from "@denokube/kube/testing";
 *
 * await using server = new FakeApiServer();
 * server.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace: "default" } });
 * const from = server.resourceVersion;
 * server.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "b", namespace: "default" } });
 * const res = await server.fetch(
 *   `http://fake.invalid/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${from}&timeoutSeconds=1`,
 * );
 * console.log(await res.text()); // {"type":"ADDED","object":{…"name":"b"…}}
 * ```
 */
export class FakeApiServer implements AsyncDisposable {
  #cluster: FakeCluster;
  #http: FakeHttp;
  #server: Promise<ServeHandle> | undefined;
  #url = FAKE_SERVER_URL;
  #closed = false;

  /**
   * Creates a server with the built-in kinds and namespaces.
   *
   * @param options History size, bookmark interval, WatchList gate, clock.
   */
  constructor(options: FakeApiServerOptions = {}) {
    const clusterOptions: ConstructorParameters<typeof FakeCluster>[0] = {};
    if (options.historySize !== undefined) clusterOptions.historySize = options.historySize;
    if (options.now !== undefined) clusterOptions.now = options.now;
    if (options.initialResourceVersion !== undefined) {
      clusterOptions.initialResourceVersion = options.initialResourceVersion;
    }
    this.#cluster = new FakeCluster(clusterOptions);
    this.#http = new FakeHttp(this.#cluster, {
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      watchList: options.watchList ?? true,
      user: options.user ?? "system:serviceaccount:default:test",
    });
    this.fetch = this.fetch.bind(this);
  }

  /**
   * A `fetch`-compatible function that answers from this server without sockets; it is bound, so
   * it can be passed around: `new Client(config, { fetch: server.fetch })`. It honours
   * `init.signal`: aborting rejects a pending request and errors a watch body (and ends the
   * server side of the watch), like the real `fetch`. Cancelling a watch body ends it too.
   *
   * @param input The URL (any origin; only the path and query are used) or a `Request`.
   * @param init The request options.
   * @returns The response.
   * @throws {TypeError} For the `reset` and `close` faults (like a refused or dropped connection),
   *   or when the server is closed.
   *
   * @example Read a namespace
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * const res = await server.fetch("http://fake.invalid/api/v1/namespaces/default");
   * console.log((await res.json()).status.phase); // "Active"
   * ```
   */
  async fetch(input: Request | URL | string, init?: RequestInit): Promise<Response> {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    if (signal?.aborted) throw signal.reason;
    if (this.#closed) {
      throw new TypeError(
        `error sending request for url (${
          String(input instanceof Request ? input.url : input)
        }): the fake API server is closed`,
      );
    }
    const request = new Request(input, init);
    try {
      return await this.#http.handle(request, signal ?? undefined);
    } catch (e) {
      if (e instanceof ConnectionFault) throw new TypeError(e.message);
      throw e;
    }
  }

  /**
   * Serves the fake on `127.0.0.1` with a free port, for code that needs a real URL. Calling it
   * again returns the same URL.
   *
   * @returns The base URL, e.g. `http://127.0.0.1:41234`.
   *
   * @example Point a kubeconfig at it
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * const { url } = await server.listen();
   * const res = await fetch(`${url}/api/v1/namespaces`);
   * console.log((await res.json()).kind); // "NamespaceList"
   * ```
   */
  async listen(): Promise<{ url: string }> {
    if (this.#closed) throw new TypeError("The FakeApiServer is closed");
    if (!this.#server) {
      // On every runtime through the runtime seam (Deno.serve on Deno, node:http on Node and Bun,
      // which send a watch's headers before its first event).
      this.#server = runtime().serve(
        (request) => this.#serveHttp(request),
        { hostname: "127.0.0.1", port: 0 },
      );
      this.#url = `http://127.0.0.1:${(await this.#server).port}`;
    }
    await this.#server;
    return { url: this.#url };
  }

  async #serveHttp(request: Request): Promise<Response> {
    try {
      // Not `request.signal`: Deno aborts it on successful responses too. A client that goes away
      // cancels the response body, which ends the watch.
      return await this.#http.handle(request, undefined);
    } catch (e) {
      if (!(e instanceof ConnectionFault)) throw e;
      // A socket cannot be refused after it was accepted: answer a body that breaks at once, so
      // that the client sees a transport error.
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.error(new Error(e.message));
          },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      );
    }
  }

  /** The base URL: the loopback URL after {@linkcode FakeApiServer.prototype.listen}, else `http://fake.invalid`. */
  get url(): string {
    return this.#url;
  }

  /**
   * A {@linkcode Config} for this server (namespace `default`).
   *
   * @returns The config; its server is {@linkcode FakeApiServer.prototype.url}.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * console.log(server.config().server); // "http://fake.invalid"
   * ```
   */
  config(): Config {
    return new Config({
      cluster: { server: this.#url, insecureSkipTlsVerify: false, disableCompression: false },
      namespace: "default",
    });
  }

  /**
   * A {@linkcode Client} wired to {@linkcode FakeApiServer.prototype.fetch}.
   *
   * @param options Client options (retries, user agent); `fetch` is always this server's.
   * @returns The client.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * const client = server.client({ maxRetries: 0 });
   * const res = await client.request({ path: "/api/v1/namespaces/default/pods" });
   * console.log((await res.json()).items.length); // 0
   * ```
   */
  client(options: ClientOptions = {}): Client {
    return new Client(this.config(), { ...options, fetch: this.fetch });
  }

  /**
   * A kubeconfig (YAML) for the listening URL, with a dummy token, context `fake`, namespace
   * `default`.
   *
   * @returns The kubeconfig text.
   * @throws {Error} When {@linkcode FakeApiServer.prototype.listen} was not called.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * await server.listen();
   * await Deno.writeTextFile(await Deno.makeTempFile(), server.kubeconfig());
   * ```
   */
  kubeconfig(): string {
    if (!this.#server) {
      throw new Error("FakeApiServer.kubeconfig() needs a URL: call `await server.listen()` first");
    }
    return stringifyYaml({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "fake", cluster: { server: this.#url } }],
      users: [{ name: "fake", user: { token: "fake-token" } }],
      contexts: [{
        name: "fake",
        context: { cluster: "fake", user: "fake", namespace: "default" },
      }],
      "current-context": "fake",
      preferences: {},
    });
  }

  /**
   * Stores objects directly, as if created through the API (same validation, defaults and
   * resourceVersions; events reach open watches). The kind is found from `apiVersion` and `kind`;
   * a missing namespace is created; a `status` is stored too.
   *
   * @param objects One object or several.
   * @returns The stored objects, as the API would answer them.
   * @throws {TypeError} When the kind is not served.
   * @throws {ApiError} When the API would refuse the object (e.g. 409 AlreadyExists, 422 Invalid).
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * const [pod] = server.seed({
   *   apiVersion: "v1",
   *   kind: "Pod",
   *   metadata: { name: "web", namespace: "apps" },
   *   spec: { containers: [{ name: "web", image: "nginx" }] },
   *   status: { phase: "Running" },
   * });
   * console.log(pod.status); // { phase: "Running" }
   * ```
   */
  seed(objects: FakeObject | readonly FakeObject[]): FakeObject[] {
    const list: readonly FakeObject[] = Array.isArray(objects) ? objects : [objects as FakeObject];
    return list.map((object) => {
      try {
        return this.#cluster.seed(object as JsonObject) as FakeObject;
      } catch (e) {
        if (e instanceof StatusError) throw ApiError.fromStatus(e.status);
        throw e;
      }
    });
  }

  /**
   * Every stored object, optionally of one kind (e.g. `Pod`, or the plural `pods`), sorted by
   * namespace and name; copies.
   *
   * @param kind A kind or plural.
   * @returns The objects, each with `apiVersion` and `kind`.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * console.log(server.objects("Namespace").map((ns) => ns.metadata?.name));
   * ```
   */
  objects(kind?: string): FakeObject[] {
    return this.#cluster.objects(kind) as FakeObject[];
  }

  /** The current resourceVersion (what a list answers now), as the opaque string clients see. */
  get resourceVersion(): string {
    return String(this.#cluster.resourceVersion);
  }

  /** Number of watch streams still open (for leak checks). */
  get openWatches(): number {
    return this.#http.watches.size;
  }

  /**
   * Drops the event history, like an etcd compaction at the current revision: a watch from an
   * older resourceVersion gets an ERROR event `410 Expired` (`too old resource version: X (Y)`),
   * and older continue tokens a `410 Expired`.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * const old = server.resourceVersion;
   * server.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a" } });
   * server.compact();
   * const res = await server.fetch(`http://fake.invalid/api/v1/configmaps?watch=1&resourceVersion=${old}`);
   * console.log(await res.text()); // {"type":"ERROR","object":{"kind":"Status",…"code":410}}
   * ```
   */
  compact(): void {
    this.#cluster.compact();
  }

  /**
   * Makes every continue token issued so far expire: the next page request answers `410 Expired`
   * with a fresh continue token in `metadata.continue` for an inconsistent continuation, like the
   * real server after etcd compacted past the first page's revision. The resourceVersion moves on
   * by one (as if something else was written), watches are not affected.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * server.expireContinueTokens();
   * ```
   */
  expireContinueTokens(): void {
    this.#cluster.expireContinueTokens();
  }

  /**
   * Serves a custom resource type at once (without a CRD object). Creating a
   * `CustomResourceDefinition` through the API registers its served versions too.
   *
   * @param definition Group, version, kind, plural, scope and options.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * server.registerResource({
   *   group: "example.com",
   *   version: "v1",
   *   kind: "Widget",
   *   plural: "widgets",
   *   namespaced: true,
   *   subresources: ["status"],
   * });
   * const res = await server.fetch("http://fake.invalid/apis/example.com/v1/namespaces/default/widgets");
   * console.log((await res.json()).kind); // "WidgetList"
   * ```
   */
  registerResource(definition: CustomResourceDefinitionInit): void {
    if (
      !definition.version || !definition.kind || !/^[a-z0-9][-a-z0-9]*$/.test(definition.plural)
    ) {
      throw new TypeError(
        `registerResource: needs a version, a kind and a lowercase plural; got ${
          JSON.stringify(definition)
        }`,
      );
    }
    const type: ResourceType = {
      group: definition.group,
      version: definition.version,
      kind: definition.kind,
      listKind: definition.listKind ?? `${definition.kind}List`,
      plural: definition.plural,
      singular: definition.singular ?? definition.kind.toLowerCase(),
      namespaced: definition.namespaced,
      shortNames: [...(definition.shortNames ?? [])],
      categories: [...(definition.categories ?? [])],
      subresources: definition.subresources?.includes("status") ? ["status"] : [],
      builtin: false,
      generation: true,
      returnDeletedObject: false,
      selectableFields: definition.selectableFields
        ? ["metadata.name", "metadata.namespace", ...definition.selectableFields]
        : undefined,
      nameRule: "subdomain",
    };
    this.#cluster.register(type);
  }

  /**
   * Calls admission webhooks on create, update, patch (also server-side apply) and delete, as the
   * real API server does: the mutating webhooks first (their JSON Patches applied), then the
   * server's own defaulting and validation, then the validating webhooks. A refusal is answered
   * with the real server's `Status`: `admission webhook "<name>" denied the request: <message>`,
   * with the webhook's code and reason. A webhook that throws fails the request under
   * `failurePolicy: Fail` and is skipped under `Ignore`.
   *
   * @param webhooks What `validate` and `mutate` of `@denokube/kube/webhook` return.
   * @returns A function that removes them again.
   * @example
   * ```ts ignore
   * import { deny, validate } from "@denokube/kube/webhook";
   * server.addAdmissionWebhooks([validate(Foo, (req) => deny("no"))]);
   * ```
   */
  addAdmissionWebhooks(webhooks: readonly FakeAdmissionWebhook[]): () => void {
    return this.#http.admission.add(webhooks);
  }

  /**
   * Serves a multi-version resource through its conversion (`defineConversion` of
   * `@denokube/kube/webhook`), as the real server serves a CRD with a conversion webhook:
   * objects are stored in the hub's version, and converted when written or read (get, list,
   * watch) through another version. Register each version with `registerResource` first.
   * Server-side apply through another version than the hub is not converted.
   *
   * @param conversion The conversion.
   * @example
   * ```ts ignore
   * server.registerResource(FooV1.descriptor());
   * server.registerResource(FooV1alpha1.descriptor());
   * server.addConversion(defineConversion({ hub: FooV1, spokes: [...] }));
   * ```
   */
  addConversion(conversion: FakeConversion): void {
    this.#cluster.addConversion(conversion);
  }

  /**
   * Injects a fault. Rules are matched in the order they were added; a rule acts on at most
   * `times` requests (default 1).
   *
   * Faults:
   * - `{ status, retryAfter?, body?, reason?, message? }`: the request is answered with that HTTP
   *   status. The body is a real `Status` (reason from the code: 403 Forbidden with an RBAC-style
   *   message, 429 TooManyRequests with `details.retryAfterSeconds`, 500 InternalError,
   *   503 ServiceUnavailable, …), or `body` as `text/plain`. `retryAfter` sets `Retry-After`.
   *   For a watch this is the HTTP answer (no stream).
   * - `{ expire: true | "Expired" | "Gone", http? }`: a 410. On a list or get: HTTP 410 with
   *   reason `Expired` (or `Gone`) and the real message (the continue-token message when the
   *   request has `continue`). On a watch: a 200 stream that, after `after` events, carries one
   *   `ERROR` event (Status 410, `too old resource version: X (Y)`) and ends; with `http: true`,
   *   HTTP 410 instead.
   * - `"reset"`: the connection is refused: `server.fetch` rejects with a `TypeError` (through
   *   `listen()`, the response body fails at once).
   * - `"close"`: on a watch, the stream ends normally (clean EOF) after `after` events. On other
   *   requests, the connection drops before the answer (`TypeError`, like `reset`).
   * - `"stall"`: on a watch, after `after` events nothing more is sent (no events, no bookmarks,
   *   no timeout close) until the client aborts or cancels, or the server closes. On other
   *   requests, no answer comes until the request's signal aborts (rejects with its reason) or
   *   the server closes (`TypeError`).
   * - `"malformed-line"`: on a watch, after `after` events one line that is not JSON is written,
   *   then streaming goes on. On other requests, a 200 whose body is not JSON.
   * - `"truncate"`: on a watch, once `after` events were written, the next event is written
   *   half (no newline) and the stream ends. On other requests, the real answer cut in half.
   * - `"bookmark-only"` (watches only): after `after` events, one BOOKMARK carrying the current
   *   resourceVersion (even without `allowWatchBookmarks`) and the stream ends normally; with the
   *   default `after: 0` the stream holds only that bookmark.
   *
   * `after`: for faults acting inside a watch stream (`close`, `stall`, `malformed-line`,
   * `truncate`, `bookmark-only`, `expire` without `http`) the number of events (including
   * bookmarks) written before the fault acts; for all other faults the number of matching
   * requests let through first.
   *
   * @param rule Which requests (`on`: a verb such as `"watch"`, `"list"`, `"get"`, `"create"`,
   *   `"any"`, a list of verbs, or a predicate; `resource`: a plural), `after`, `times`, `fault`.
   * @returns A handle: `remove()`, `hits`, `done`; also `Disposable`.
   *
   * @example Three 429s with a plain-text body, then normal answers
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * await using server = new FakeApiServer();
   * server.inject({
   *   on: "list",
   *   times: 3,
   *   fault: { status: 429, retryAfter: 1, body: "slow down" },
   * });
   * ```
   */
  inject(rule: FaultRule): FaultHandle {
    return this.#http.faults.add(rule);
  }

  /** Removes every injected fault. */
  clearFaults(): void {
    this.#http.faults.clear();
  }

  /**
   * Stops the server: open watches end normally, stalled requests fail, the loopback listener
   * (if any) shuts down. Later requests through `fetch` reject with a `TypeError`.
   *
   * @returns When everything is stopped.
   *
   * @example
   * ```ts
   * import { FakeApiServer } from "@denokube/kube/testing";
   * const server = new FakeApiServer();
   * await server.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#http.closeAll();
    this.#http.faults.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await (await server).close();
  }

  /** Closes the server (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
