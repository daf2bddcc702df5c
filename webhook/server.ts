/**
 * The webhook server: HTTPS through the runtime seam (Deno, Node, Bun), one path per webhook,
 * bounded request bodies, header, request and idle timeouts, a certificate that changes without a
 * restart, controller-runtime's metric names, and the registration of its webhooks. It is a
 * `Runnable` that a `Manager` runs on every replica.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Client } from "../client.ts";
import type { Registry } from "../runtime/metrics.ts";
import { runtime, type TlsServeHandle } from "../_platform/mod.ts";
import { admissionRequestOf, type AdmissionResponse, type AdmissionWebhook } from "./admission.ts";
import { type CertificatePair, type CertificateSource, keyMismatch } from "./certificates.ts";
import { type ClientConfig, registerWebhooks, WEBHOOK_FIELD_MANAGER } from "./registration.ts";
import { type Conversion, conversionRequestOf } from "./conversion.ts";
import { CustomResource } from "../custom_resource.ts";

const log = getLogger(["kube", "webhook"]);

/** Options of {@linkcode WebhookServer}. */
export interface WebhookServerOptions {
  /** The webhooks to serve (from `validate` and `mutate`). */
  webhooks: readonly AdmissionWebhook[];
  /**
   * Conversion webhooks (from `defineConversion`); with `register`, their CRDs are applied with
   * `spec.conversion` pointing here and the CA bundle.
   */
  conversions?: readonly Conversion[];
  /** Where the certificate comes from: `FileCertificates` or `SelfManagedCertificates`. */
  certificates: CertificateSource;
  /** The port. Default 9443 (controller-runtime's). */
  port?: number;
  /** The address. Default `0.0.0.0` (in a pod); `127.0.0.1` in tests. */
  hostname?: string;
  /** Largest review body. Default 7 MiB (controller-runtime's limit). */
  maxBodyBytes?: number;
  /** Time for a client to send the headers. Default 10 000 ms. */
  headersTimeoutMs?: number;
  /** Time for a client to send a whole request. Default 40 000 ms (past any `timeoutSeconds`). */
  requestTimeoutMs?: number;
  /** Time a kept-alive connection may idle. Default 90 000 ms. */
  idleTimeoutMs?: number;
  /**
   * Apply the webhook configurations (server-side apply) once the certificate is known, and again
   * with each new CA bundle.
   */
  register?: {
    /** The client. */
    client: Client;
    /** The configurations' name. */
    name: string;
    /**
     * Where the API server reaches this server; a function gets the port it listens on (for
     * `port: 0`, e.g. `(port) => ({ url: \`https://127.0.0.1:${port}\` })`).
     */
    clientConfig: ClientConfig | ((port: number) => ClientConfig);
  };
}

/** Controller-runtime's webhook metrics (names and labels), so existing dashboards work. */
interface Metrics {
  requests: { inc(labels: Record<string, string>): void };
  latency: { observe(labels: Record<string, string>, seconds: number): void };
  inFlight: { inc(labels: Record<string, string>, by?: number): void };
}

const JSON_TYPE = { "content-type": "application/json" };

/**
 * Serves admission webhooks over HTTPS. Add it to a `Manager` with `{ leaderOnly: false }`: every
 * replica serves (the API server calls any of them through the Service), and `/readyz` stays red,
 * with the reason, until a certificate is loaded.
 *
 * @example
 * ```ts ignore
 * import { FileCertificates, validate, WebhookServer } from "@denokube/kube/webhook";
 * const server = new WebhookServer({
 *   webhooks: [validate(Foo, (req) => { ... })],
 *   certificates: new FileCertificates({ certFile: "/certs/tls.crt", keyFile: "/certs/tls.key" }),
 * });
 * manager.add(server, { leaderOnly: false });
 * ```
 */
export class WebhookServer {
  /** The name the Manager shows in logs, metrics and `/readyz`. */
  readonly name = "webhook-server";
  readonly #options: WebhookServerOptions;
  readonly #routes = new Map<string, AdmissionWebhook | Conversion>();
  #metrics: Metrics | undefined;
  #server: TlsServeHandle | undefined;
  #listening: Promise<number>;
  #resolveListening!: (port: number) => void;
  #problem: string | undefined;

  /**
   * Creates the server; nothing listens before {@linkcode WebhookServer.prototype.run}.
   *
   * @param options Webhooks, certificate source, address, limits, registration.
   * @throws {TypeError} When two webhooks share a path.
   */
  constructor(options: WebhookServerOptions) {
    this.#options = options;
    for (const w of [...options.webhooks, ...(options.conversions ?? [])]) {
      if (this.#routes.has(w.path)) {
        throw new TypeError(
          `WebhookServer: two webhooks are served on ${w.path}: give one a different path option`,
        );
      }
      this.#routes.set(w.path, w);
    }
    this.#listening = new Promise((resolve) => this.#resolveListening = resolve);
    const certs = options.certificates as {
      setBundleListener?: (f: (b: string) => Promise<void>) => void;
    };
    if (options.register && certs.setBundleListener) {
      certs.setBundleListener((bundle) => this.#register(bundle));
    }
  }

  /**
   * The port once the server listens (useful with port 0).
   *
   * @returns The port.
   */
  listening(): Promise<number> {
    return this.#listening;
  }

  /**
   * Registers `controller_runtime_webhook_requests_total`, `_latency_seconds` and
   * `_requests_in_flight` (label `webhook`: the path; `code`: the HTTP status).
   *
   * @param registry The Manager's registry.
   */
  registerMetrics(registry: Registry): void {
    const requests = registry.counter({
      name: "controller_runtime_webhook_requests_total",
      help: "Total number of admission requests by HTTP status code.",
      labelNames: ["webhook", "code"],
    });
    const latency = registry.histogram({
      name: "controller_runtime_webhook_latency_seconds",
      help: "Histogram of the latency of processing admission requests",
      labelNames: ["webhook"],
    });
    const inFlight = registry.gauge({
      name: "controller_runtime_webhook_requests_in_flight",
      help: "Current number of admission requests being served.",
      labelNames: ["webhook"],
    });
    this.#metrics = { requests, latency, inFlight };
  }

  /**
   * Ready once a certificate is served.
   *
   * @returns `true`, or why not.
   */
  ready(): true | string {
    if (this.#problem) return this.#problem;
    const certs = this.#options.certificates.ready();
    if (certs !== true) return `webhook certificate: ${certs}`;
    return this.#server ? true : "the webhook server is not listening yet";
  }

  /**
   * Answers one HTTP request (what the HTTPS server calls; also usable in-process, e.g. by
   * `FakeApiServer`). Never rejects.
   *
   * @param request The request.
   * @returns The answer: an `AdmissionReview`, or a 4xx with a plain message for a body that is
   *   not one.
   */
  async handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    const webhook = this.#routes.get(path);
    if (!webhook) {
      await request.body?.cancel();
      return new Response(`no webhook is served on ${path}`, { status: 404 });
    }
    const started = performance.now();
    this.#metrics?.inFlight.inc({ webhook: path });
    let status = 200;
    try {
      if (request.method !== "POST") {
        await request.body?.cancel();
        status = 405;
        return new Response(`${path} accepts POST only`, { status, headers: { allow: "POST" } });
      }
      const type = request.headers.get("content-type") ?? "";
      if (!type.startsWith("application/json")) {
        await request.body?.cancel();
        status = 415;
        return new Response(`content-type must be application/json, got ${JSON.stringify(type)}`, {
          status,
        });
      }
      const max = this.#options.maxBodyBytes ?? 7 * 1024 * 1024;
      const bytes = new Uint8Array(await request.arrayBuffer());
      if (bytes.length > max) {
        status = 413;
        return new Response(`request body larger than ${max} bytes`, { status });
      }
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder().decode(bytes));
      } catch (e) {
        status = 400;
        return new Response(`the body is not JSON: ${(e as Error).message}`, { status });
      }
      if (webhook.type === "conversion") {
        const request = conversionRequestOf(body);
        if (typeof request === "string") {
          log.warning("Webhook {path} got a malformed review: {problem}", {
            path,
            problem: request,
          });
          status = 400;
          return new Response(`not a conversion review: ${request}`, { status });
        }
        const response = webhook.review(request);
        return new Response(
          JSON.stringify({
            apiVersion: "apiextensions.k8s.io/v1",
            kind: "ConversionReview",
            response,
          }),
          { status, headers: JSON_TYPE },
        );
      }
      const parsed = admissionRequestOf(body);
      if (typeof parsed === "string") {
        log.warning("Webhook {path} got a malformed review: {problem}", { path, problem: parsed });
        status = 400;
        return new Response(`not an admission review: ${parsed}`, { status });
      }
      const response: AdmissionResponse = await webhook.admit(parsed);
      return new Response(
        JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response }),
        { status, headers: JSON_TYPE },
      );
    } catch (e) {
      // admit never rejects; this is reading the body failing (a client that went away).
      status = 500;
      return new Response(`reading the request failed: ${(e as Error).name}`, { status });
    } finally {
      this.#metrics?.inFlight.inc({ webhook: path }, -1);
      this.#metrics?.requests.inc({ webhook: path, code: String(status) });
      this.#metrics?.latency.observe({ webhook: path }, (performance.now() - started) / 1000);
    }
  }

  async #register(bundle: string | undefined): Promise<void> {
    const r = this.#options.register;
    if (!r) return;
    const clientConfig = typeof r.clientConfig === "function"
      ? r.clientConfig(await this.#listening)
      : r.clientConfig;
    await registerWebhooks(r.client, this.#options.webhooks, {
      name: r.name,
      clientConfig,
      caBundle: bundle,
    });
    for (const conversion of this.#options.conversions ?? []) {
      await r.client.apply(
        CustomResource.crdApi(),
        conversion.crd({ clientConfig, caBundle: bundle }),
        { fieldManager: WEBHOOK_FIELD_MANAGER, force: true },
      );
    }
    log.info("Applied the webhook configurations {name}", { name: r.name });
  }

  async #serve(pair: CertificatePair): Promise<void> {
    const mismatch = keyMismatch(pair);
    if (mismatch) throw new TypeError(mismatch);
    if (this.#server) {
      await this.#server.setCertificate(pair.cert, pair.key);
      log.info("The webhook server serves a new certificate");
      return;
    }
    const o = this.#options;
    this.#server = await runtime().serveTls((request) => this.handle(request), {
      hostname: o.hostname ?? "0.0.0.0",
      port: o.port ?? 9443,
      cert: pair.cert,
      key: pair.key,
      maxBodyBytes: o.maxBodyBytes ?? 7 * 1024 * 1024,
      headersTimeoutMs: o.headersTimeoutMs ?? 10_000,
      requestTimeoutMs: o.requestTimeoutMs ?? 40_000,
      idleTimeoutMs: o.idleTimeoutMs ?? 90_000,
    });
    log.info("Serving {count} webhook(s) on https://{hostname}:{port}", {
      count: this.#routes.size,
      hostname: this.#server.hostname,
      port: this.#server.port,
    });
    this.#resolveListening(this.#server.port);
  }

  /**
   * Keeps the certificate current and serves until `signal` aborts; then stops listening and lets
   * requests in flight finish.
   *
   * @param signal Stops the server.
   * @returns When the server is down.
   * @throws When the port cannot be listened on (taken, not permitted).
   */
  async run(signal: AbortSignal): Promise<void> {
    const certs = this.#options.certificates;
    let registeredBundle: string | undefined | null = null;
    let fatal: unknown;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const loop = certs.run(stop.signal, async (pair, bundle) => {
      try {
        await this.#serve(pair);
      } catch (e) {
        if (!this.#server) {
          // Listening failed: nothing will serve. End run() with it.
          fatal = e;
          stop.abort();
          return;
        }
        throw e;
      }
      // A source without a bundle listener (files): register with its bundle once known.
      const listens = (certs as { setBundleListener?: unknown }).setBundleListener;
      if (this.#options.register && !listens && bundle !== registeredBundle) {
        try {
          await this.#register(bundle);
          registeredBundle = bundle;
        } catch (e) {
          log.error("Applying the webhook configurations failed: {error}", { error: e });
        }
      }
    });
    try {
      await loop;
    } finally {
      signal.removeEventListener("abort", onAbort);
      await this.#server?.close();
      this.#server = undefined;
    }
    if (fatal) throw fatal;
  }
}
