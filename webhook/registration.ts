/**
 * Registration: the `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration` derived
 * from the webhooks (rules from each `Api`), applied with server-side apply, with a `clientConfig`
 * that is a Service (in a cluster) or a URL (outside one, and in tests), and the CA bundle.
 *
 * @module
 */

import { Api } from "../api.ts";
import type { Client } from "../client.ts";
import type {
  MutatingWebhook,
  MutatingWebhookConfiguration,
  ValidatingWebhook,
  ValidatingWebhookConfiguration,
  WebhookClientConfig,
} from "../generated/admissionregistration_v1.ts";
import type { AdmissionWebhook } from "./admission.ts";

/** How the API server reaches the webhook server. */
export type ClientConfig =
  | {
    /** A Service in the cluster (the usual way). */
    service: { namespace: string; name: string; port?: number };
  }
  | {
    /** A base URL, e.g. `https://127.0.0.1:9443` (outside a cluster, tests). */
    url: string;
  };

/** Options of {@linkcode webhookConfigurations}. */
export interface RegistrationOptions {
  /** The configurations' name, e.g. `foo-operator`. */
  name: string;
  /** Where the API server sends reviews. */
  clientConfig: ClientConfig;
  /** The PEM CA bundle the API server verifies the server with. */
  caBundle?: string;
  /** Labels for the configurations. */
  labels?: Record<string, string>;
}

/** The derived configurations (absent when there is no webhook of that type). */
export interface WebhookConfigurations {
  /** The validating webhooks. */
  validating?: ValidatingWebhookConfiguration;
  /** The mutating webhooks. */
  mutating?: MutatingWebhookConfiguration;
}

function base64(text: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

function clientConfigFor(
  webhook: AdmissionWebhook,
  options: RegistrationOptions,
): WebhookClientConfig {
  const config: WebhookClientConfig = {};
  const c = options.clientConfig;
  if ("url" in c) {
    const base = new URL(c.url);
    if (base.protocol !== "https:") {
      throw new TypeError(`clientConfig.url must be https://, got ${JSON.stringify(c.url)}`);
    }
    config.url = `${base.origin}${base.pathname.replace(/\/$/, "")}${webhook.path}`;
  } else {
    config.service = {
      namespace: c.service.namespace,
      name: c.service.name,
      path: webhook.path,
      port: c.service.port ?? 443,
    };
  }
  if (options.caBundle) config.caBundle = base64(options.caBundle);
  return config;
}

function entry(webhook: AdmissionWebhook, options: RegistrationOptions): ValidatingWebhook {
  const o = webhook.options;
  const api = webhook.api;
  const resources = [api.plural, ...(o.subresources ?? []).map((s) => `${api.plural}/${s}`)];
  const out: ValidatingWebhook = {
    name: webhook.name,
    admissionReviewVersions: ["v1"],
    clientConfig: clientConfigFor(webhook, options),
    rules: [{
      apiGroups: [api.group],
      apiVersions: [api.version],
      resources,
      operations: o.operations ?? ["CREATE", "UPDATE"],
      scope: api.namespaced ? "Namespaced" : "Cluster",
    }],
    failurePolicy: o.failurePolicy ?? "Fail",
    sideEffects: o.sideEffects ?? "None",
    timeoutSeconds: o.timeoutSeconds ?? 10,
    matchPolicy: o.matchPolicy ?? "Equivalent",
  };
  if (o.namespaceSelector) out.namespaceSelector = o.namespaceSelector;
  if (o.objectSelector) out.objectSelector = o.objectSelector;
  if (o.matchConditions) out.matchConditions = o.matchConditions;
  return out;
}

/**
 * Derives the webhook configurations from the webhooks: one entry per webhook, its rule from the
 * `Api` (group, version, plural and subresources, scope) and its options (operations,
 * `failurePolicy`, `sideEffects`, `timeoutSeconds`, selectors, `matchConditions`).
 *
 * @param webhooks The webhooks (from `validate` and `mutate`).
 * @param options The configurations' name, the client config and the CA bundle.
 * @returns The configurations, plain JSON.
 * @throws {TypeError} On two webhooks with the same name, or a URL that is not `https://`.
 * @example
 * ```ts ignore
 * const { validating } = webhookConfigurations([replicas], {
 *   name: "foo-operator",
 *   clientConfig: { service: { namespace: "ops", name: "foo-webhook" } },
 * });
 * ```
 */
export function webhookConfigurations(
  webhooks: readonly AdmissionWebhook[],
  options: RegistrationOptions,
): WebhookConfigurations {
  const names = new Set<string>();
  for (const w of webhooks) {
    if (names.has(w.name)) {
      throw new TypeError(
        `Two webhooks are named ${JSON.stringify(w.name)}: give one a different name option`,
      );
    }
    names.add(w.name);
  }
  const metadata = {
    name: options.name,
    ...(options.labels ? { labels: options.labels } : {}),
  };
  const out: WebhookConfigurations = {};
  const validating = webhooks.filter((w) => w.type === "validating");
  const mutating = webhooks.filter((w) => w.type === "mutating");
  if (validating.length) {
    out.validating = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata,
      webhooks: validating.map((w) => entry(w, options)),
    };
  }
  if (mutating.length) {
    out.mutating = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata,
      webhooks: mutating.map((w): MutatingWebhook => ({
        ...entry(w, options),
        reinvocationPolicy: w.options.reinvocationPolicy ?? "Never",
      })),
    };
  }
  return out;
}

/** The field manager the registration applies with. */
export const WEBHOOK_FIELD_MANAGER = "kube-webhook";

/**
 * Applies the derived configurations with server-side apply (forced: the operator owns them).
 *
 * @param client The client.
 * @param webhooks The webhooks.
 * @param options Name, client config, CA bundle.
 * @returns When both are applied.
 * @example
 * ```ts ignore
 * await registerWebhooks(client, [replicas, defaults], {
 *   name: "foo-operator",
 *   clientConfig: { url: "https://127.0.0.1:9443" },
 *   caBundle,
 * });
 * ```
 */
export async function registerWebhooks(
  client: Client,
  webhooks: readonly AdmissionWebhook[],
  options: RegistrationOptions,
): Promise<void> {
  if (webhooks.length === 0) return;
  const { validating, mutating } = webhookConfigurations(webhooks, options);
  const apply = { fieldManager: WEBHOOK_FIELD_MANAGER, force: true };
  if (validating) {
    await client.apply(
      Api.admissionregistrationV1ValidatingWebhookConfiguration(),
      validating,
      apply,
    );
  }
  if (mutating) {
    await client.apply(Api.admissionregistrationV1MutatingWebhookConfiguration(), mutating, apply);
  }
}
