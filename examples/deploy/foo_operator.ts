// deno run --allow-net --allow-env --allow-read --allow-sys=hostname examples/deploy/foo_operator.ts
//
// The Foo operator (examples/foo_operator.ts) as it runs in a cluster, with
// examples/deploy/foo-operator.yaml: a Manager with leader election on the Lease `foo-operator`
// in its own namespace, the health and metrics endpoints on :8080, the Foo and Deployment caches
// warm on every replica (a standby that takes over starts without a new list), and the Foo
// controller on the leader only. SIGTERM drains, then hands the lease over at once.
//
// Environment: POD_NAME (the identity; default hostname + random suffix), POD_NAMESPACE (the
// Lease's namespace; default the client's), METRICS_PORT (default 8080), METRICS_ADDRESS (default
// 0.0.0.0), WATCH_NAMESPACE (only Foos of this namespace; default all), LEASE_DURATION_MS,
// RENEW_DEADLINE_MS, RETRY_PERIOD_MS (default client-go's 15 000, 10 000, 2 000),
// WEBHOOK_SERVICE (`namespace/name` of the Service in examples/deploy/foo-webhook.yaml: serve the
// Foo admission webhooks of examples/foo_webhooks.ts and the v1alpha1 ↔ v1 conversion webhook of
// examples/foo_conversion.ts on :9443 on every replica, with a certificate the operator makes and
// rotates in the Secret foo-webhook-certs; the Foo CRD is then applied with both versions and
// `conversion.strategy: Webhook` through that Service; default off).
//
// Outside this repository, import from "@denokube/kube" instead of "../../mod.ts".

import { configure, getConsoleSink, getJsonLinesFormatter } from "@logtape/logtape";
import { Api, Client, Manager, shutdownSignal } from "../../mod.ts";
import { fooOperator, FOOS } from "../foo_operator.ts";
import { fooWebhooks } from "../foo_webhooks.ts";
import { fooConversion } from "../foo_conversion.ts";
import { SelfManagedCertificates, WebhookServer } from "../../webhook/mod.ts";

await configure({
  sinks: { console: getConsoleSink({ formatter: getJsonLinesFormatter() }) },
  loggers: [
    { category: ["kube"], lowestLevel: "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

const env = (name: string) => Deno.env.get(name) || undefined;
const number = (value: string | undefined) => value === undefined ? undefined : Number(value);
const client = await Client.infer();
const namespace = env("WATCH_NAMESPACE");

const manager = new Manager(client, {
  leaderElection: {
    namespace: env("POD_NAMESPACE") ?? client.namespace,
    name: "foo-operator",
    identity: env("POD_NAME"),
    // client-go's defaults (15 s, 10 s, 2 s) unless set.
    leaseDurationMs: number(env("LEASE_DURATION_MS")),
    renewDeadlineMs: number(env("RENEW_DEADLINE_MS")),
    retryPeriodMs: number(env("RETRY_PERIOD_MS")),
  },
  endpoints: { port: Number(env("METRICS_PORT") ?? 8080), hostname: env("METRICS_ADDRESS") },
});
// The caches the controller reads (same resources, namespaces and selectors: shared with it).
manager.cache(namespace ? FOOS.within(namespace) : FOOS);
manager.cache(Api.appsV1Deployment());
manager.add(fooOperator(client, { namespace }));
const webhookService = env("WEBHOOK_SERVICE");
if (webhookService) {
  const [serviceNamespace, serviceName] = webhookService.split("/");
  manager.add(
    new WebhookServer({
      webhooks: fooWebhooks(),
      conversions: [fooConversion],
      certificates: new SelfManagedCertificates({
        client,
        namespace: serviceNamespace,
        secretName: "foo-webhook-certs",
        dnsNames: [
          `${serviceName}.${serviceNamespace}.svc`,
          `${serviceName}.${serviceNamespace}.svc.cluster.local`,
        ],
      }),
      register: {
        client,
        name: "foo-operator",
        clientConfig: { service: { namespace: serviceNamespace, name: serviceName } },
      },
    }),
    { leaderOnly: false },
  );
}

await manager.run(shutdownSignal());
client.close();
