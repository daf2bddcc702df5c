/**
 * Admission webhooks an operator can ship: typed `validate` and `mutate` handlers built from the
 * same `Api`s the controllers use, an HTTPS server on Deno, Node and Bun, certificates from files
 * (reloaded when they change) or made and rotated by the operator itself, and the webhook
 * configurations derived from the handlers.
 *
 * @example A validating and a defaulting webhook, self-managed certificates
 * ```ts ignore
 * import { Manager } from "@denokube/kube/runtime";
 * import {
 *   deny, mutate, SelfManagedCertificates, validate, WebhookServer,
 * } from "@denokube/kube/webhook";
 *
 * const server = new WebhookServer({
 *   webhooks: [
 *     validate(Foo, (req) => {
 *       const n = req.object?.spec.replicas ?? 0;
 *       if (n > 10) return deny(`spec.replicas must be at most 10, got ${n}`);
 *     }),
 *     mutate(Foo, (foo) => { foo.spec.replicas ??= 1; }),
 *   ],
 *   certificates: new SelfManagedCertificates({
 *     client, namespace: "ops", dnsNames: ["foo-webhook.ops.svc"],
 *   }),
 *   register: {
 *     client, name: "foo-operator",
 *     clientConfig: { service: { namespace: "ops", name: "foo-webhook" } },
 *   },
 * });
 * new Manager(client).add(server, { leaderOnly: false });
 * ```
 *
 * @module
 */

export {
  type AdmissionContext,
  AdmissionDenied,
  type AdmissionOperation,
  type AdmissionRequest,
  admissionRequestOf,
  type AdmissionResponse,
  type AdmissionReview,
  type AdmissionStatus,
  type AdmissionUserInfo,
  type AdmissionWebhook,
  allow,
  deny,
  type GroupVersionKind,
  type GroupVersionResource,
  type LabelSelector,
  type MatchCondition,
  mutate,
  type MutateHandler,
  validate,
  type ValidateHandler,
  type Verdict,
  type WebhookOptions,
} from "./admission.ts";
export {
  type CertificateInfo,
  certificateInfo,
  type CertificatePair,
  type CertificateSource,
  FileCertificates,
  type FileCertificatesOptions,
  generateCertificates,
  type GeneratedCertificates,
  SelfManagedCertificates,
  type SelfManagedCertificatesOptions,
} from "./certificates.ts";
export {
  type AnyResource,
  Conversion,
  type ConversionCrdOptions,
  type ConversionOptions,
  type ConversionRequest,
  conversionRequestOf,
  type ConversionResponse,
  defineConversion,
  HUB_ANNOTATION,
  type ObjectOf,
  type Spoke,
} from "./conversion.ts";
export {
  type ClientConfig,
  registerWebhooks,
  type RegistrationOptions,
  WEBHOOK_FIELD_MANAGER,
  type WebhookConfigurations,
  webhookConfigurations,
} from "./registration.ts";
export { WebhookServer, type WebhookServerOptions } from "./server.ts";
