// Admission webhooks called by the real kube-apiserver over TLS (a `url` client config on
// loopback, our self-managed CA in the configuration): kubectl shows our refusal, a default is
// visible in `kubectl get`, failurePolicy Fail versus Ignore with the webhook stopped, and a
// certificate rotation during a steady stream of creates fails none of them.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { Api } from "../../api.ts";
import { defineCustomResource } from "../../custom_resource.ts";
import {
  defineConversion,
  deny,
  mutate,
  registerWebhooks,
  SelfManagedCertificates,
  validate,
  WebhookServer,
} from "../../webhook/mod.ts";
import { e2eTest, eventually, kubectl, uniqueNamespace } from "./_harness.ts";

const Widget = defineCustomResource({
  group: "webhook.e2e.denokube.dev",
  version: "v1",
  kind: "Widget",
  namespaced: true,
  spec: z.object({
    replicas: z.int().min(0).max(50),
    image: z.string().optional(),
  }),
});

const gadget = { group: "webhook.e2e.denokube.dev", kind: "Gadget", namespaced: true } as const;
const GadgetV1 = defineCustomResource({
  ...gadget,
  version: "v1",
  spec: z.object({ replicas: z.int(), image: z.string(), paused: z.boolean().optional() }),
});
const GadgetV1alpha1 = defineCustomResource({
  ...gadget,
  version: "v1alpha1",
  spec: z.object({ size: z.int(), image: z.string() }),
});
const gadgets = defineConversion({
  hub: GadgetV1,
  spokes: [{
    version: GadgetV1alpha1,
    toHub: (o) => ({ spec: { replicas: o.spec.size, image: o.spec.image } }),
    fromHub: (o) => ({ spec: { size: o.spec.replicas, image: o.spec.image } }),
  }],
});

const refuseOverTen = validate(Widget, (req) => {
  const n = req.object?.spec.replicas ?? 0;
  return n > 10 ? deny(`spec.replicas must be at most 10, got ${n}`) : undefined;
});
const defaultImage = mutate(Widget, (w) => {
  w.spec.image ??= "nginx:1.27";
});

function widget(name: string, ns: string, spec: Record<string, unknown>) {
  return {
    apiVersion: "webhook.e2e.denokube.dev/v1",
    kind: "Widget",
    metadata: { name, namespace: ns },
    spec,
  };
}

e2eTest(
  "webhooks: the apiserver calls our validating and mutating webhooks over TLS",
  async ({ cp, client, t }) => {
    const ns = uniqueNamespace("webhook");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    await Widget.install(client);
    const dir = await mkdtemp(join(tmpdir(), "kube-webhook-e2e-"));
    const stop = new AbortController();
    const certs = new SelfManagedCertificates({
      client,
      namespace: ns,
      ipAddresses: ["127.0.0.1"],
      pollIntervalMs: 1000,
      overlapMs: 3000,
    });
    const server = new WebhookServer({
      webhooks: [refuseOverTen, defaultImage],
      conversions: [gadgets],
      certificates: certs,
      hostname: "127.0.0.1",
      port: 0,
      register: {
        client,
        name: `widgets-${ns}`,
        clientConfig: (port) => ({ url: `https://127.0.0.1:${port}` }),
      },
    });
    const running = server.run(stop.signal);
    let port = 0;
    try {
      port = await server.listening();
      await eventually("the server is ready", () => assert.equal(server.ready(), true));
      // The configurations are applied after the first certificate; the apiserver picks them up.
      await eventually("the configurations exist", async () => {
        await client.get(
          Api.admissionregistrationV1ValidatingWebhookConfiguration(),
          `widgets-${ns}`,
        );
        await client.get(
          Api.admissionregistrationV1MutatingWebhookConfiguration(),
          `widgets-${ns}`,
        );
      });

      await t.step("a refused create shows our message in kubectl's error", async () => {
        const file = join(dir, "big.json");
        await writeFile(file, JSON.stringify(widget("big", ns, { replicas: 12 })));
        await eventually("kubectl is refused by the webhook", async () => {
          const error = await kubectl(cp.kubeconfigPath, "create", "-f", file).then(
            () => "created",
            (e: Error) => e.message,
          );
          if (error === "created") {
            await kubectl(cp.kubeconfigPath, "delete", "-f", file);
          }
          assert.match(
            error,
            /admission webhook "validate-widgets\.webhook\.e2e\.denokube\.dev\.kube\.webhook" denied the request: spec\.replicas must be at most 10, got 12/,
          );
        }, 15_000);
      });

      await t.step("a default is visible in kubectl get", async () => {
        const file = join(dir, "small.json");
        await writeFile(file, JSON.stringify(widget("small", ns, { replicas: 2 })));
        await kubectl(cp.kubeconfigPath, "create", "-f", file);
        const image = await kubectl(
          cp.kubeconfigPath,
          "get",
          "widgets.webhook.e2e.denokube.dev",
          "small",
          "-n",
          ns,
          "-o",
          "jsonpath={.spec.image}",
        );
        assert.equal(image, "nginx:1.27");
      });

      await t.step(
        "a certificate rotation during a steady stream of creates fails none",
        async () => {
          const secretBefore = await client.get(Api.v1Secret(), "kube-webhook-certs", {
            namespace: ns,
          });
          // Rotate now: the new CA is trusted at once, served after 3 s, the old CA dropped 3 s later
          // (the server's source reads the Secret every second and takes each step).
          certs.rotateNow();
          const failures: string[] = [];
          let created = 0;
          const deadline = Date.now() + 12_000;
          let i = 0;
          while (Date.now() < deadline) {
            const batch = Array.from({ length: 4 }, () => i++).map((n) =>
              client.create(Widget.within(ns), widget(`s-${n}`, ns, { replicas: 1 }) as never)
                .then(() => created++, (e: Error) => failures.push(`s-${n}: ${e.message}`))
            );
            await Promise.all(batch);
          }
          const secretAfter = await client.get(Api.v1Secret(), "kube-webhook-certs", {
            namespace: ns,
          });
          assert.notEqual(
            secretAfter.data!["tls.crt"],
            secretBefore.data!["tls.crt"],
            "the serving certificate was rotated",
          );
          // Every step was taken: the old CA is no longer in the bundle, the new one vouches for
          // the certificate served.
          const bundle = atob(secretAfter.data!["ca.crt"]);
          assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 1);
          assert.notEqual(bundle, atob(secretBefore.data!["ca.crt"]));
          assert.equal(certs.current()?.cert, atob(secretAfter.data!["tls.crt"]));
          assert.deepEqual(failures, []);
          assert.ok(created > 20, `only ${created} creates`);
          console.log(`rotation: ${created} creates, none failed`);
        },
      );

      await t.step("an object stored as v1 is read as v1alpha1 and back, unchanged", async () => {
        const v1 = GadgetV1.within(ns);
        const alpha = GadgetV1alpha1.within(ns);
        // The server's registration applied the two-version CRD; wait until both are served.
        const created = await eventually("the v1 Gadget is created", async () => {
          await client.create(v1, {
            metadata: { name: "g" },
            spec: { replicas: 3, image: "nginx", paused: true },
          }).catch((e) => {
            if (!/already exists/.test(String(e))) throw e;
          });
        }, 30_000).then(() => client.get(v1, "g"));
        const read = await eventually("v1alpha1 is served", async () => {
          await client.get(alpha, "g");
        }, 30_000).then(() => client.get(alpha, "g"));
        assert.equal(read.apiVersion, "webhook.e2e.denokube.dev/v1alpha1");
        assert.deepEqual(read.spec, { size: 3, image: "nginx" });
        // Written back through v1alpha1 unchanged: stored as v1 with paused restored.
        const written = await client.replace(alpha, read);
        assert.deepEqual(written.spec, { size: 3, image: "nginx" });
        const again = await client.get(v1, "g");
        assert.deepEqual(again.spec, created.spec);
        assert.equal(again.metadata?.annotations?.["conversion.denokube.dev/hub"], undefined);
        // kubectl reads it in either version.
        const size = await kubectl(
          cp.kubeconfigPath,
          "get",
          "gadgets.v1alpha1.webhook.e2e.denokube.dev",
          "g",
          "-n",
          ns,
          "-o",
          "jsonpath={.spec.size}",
        );
        assert.equal(size, "3");
        // A list read in the other version: the apiserver sends the stored objects to convert.
        await client.create(alpha, { metadata: { name: "h" }, spec: { size: 1, image: "x" } });
        const list = await client.list(alpha);
        assert.deepEqual(
          list.items.map((g) => [g.metadata?.name, g.spec.size]).sort(),
          [["g", 3], ["h", 1]],
        );
      });

      await t.step(
        "failurePolicy Fail refuses and Ignore admits while the webhook is stopped",
        async () => {
          stop.abort();
          await running;
          const file = join(dir, "down.json");
          await writeFile(file, JSON.stringify(widget("down", ns, { replicas: 1 })));
          const error = await kubectl(cp.kubeconfigPath, "create", "-f", file).then(
            () => "created",
            (e: Error) => e.message,
          );
          assert.match(error, /failed calling webhook/);
          const bundle = certs.caBundle()!;
          await registerWebhooks(
            client,
            [
              validate(Widget, () => undefined, { failurePolicy: "Ignore" }),
              mutate(Widget, () => undefined, { failurePolicy: "Ignore" }),
            ],
            {
              name: `widgets-${ns}`,
              clientConfig: { url: `https://127.0.0.1:${port}` },
              caBundle: bundle,
            },
          );
          await eventually("Ignore admits", async () => {
            await kubectl(cp.kubeconfigPath, "create", "-f", file);
          }, 15_000);
          const image = await kubectl(
            cp.kubeconfigPath,
            "get",
            "widgets.webhook.e2e.denokube.dev",
            "down",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.image}",
          );
          assert.equal(image, "", "no webhook defaulted it");
        },
      );
    } finally {
      stop.abort();
      await running.catch(() => {});
      await rm(dir, { recursive: true });
      await client.delete(
        Api.admissionregistrationV1ValidatingWebhookConfiguration(),
        `widgets-${ns}`,
      ).catch(() => {});
      await client.delete(
        Api.admissionregistrationV1MutatingWebhookConfiguration(),
        `widgets-${ns}`,
      ).catch(() => {});
    }
  },
);
