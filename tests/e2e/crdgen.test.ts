// crdgen against the real kube-apiserver: the CRDs of Gateway API v1.6.3 (standard channel) and
// cert-manager v1.21.2 are installed as the projects ship them; the Gateway API's own example
// objects are created, read back and validated with the generated schemas, a Reflector of the
// generated HTTPRoute follows them, and hand-made broken objects are refused by the API server
// and by the generated schemas alike.

import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { Api, type KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { CustomResource, type CustomResourceDefinition } from "../../custom_resource.ts";
import { isInvalid } from "../../errors.ts";
import { Reflector } from "../../reflector.ts";
import { e2eTest, eventually, uniqueNamespace } from "./_harness.ts";
import { type RealModules, realModules, resourceOf } from "../_crdgen_real.ts";
import { crdModulesSkipReason } from "../../testenv/crd_modules.ts";
import { CrdgenError, fetchCrds, generate } from "../../crdgen/mod.ts";

const skip = await crdModulesSkipReason();
if (skip) console.error(`crdgen e2e: skipping: ${skip}`);

async function install(client: Client, crd: CustomResourceDefinition): Promise<void> {
  const api = CustomResource.crdApi();
  await client.apply(api, crd, { fieldManager: "crdgen-e2e", force: true });
  const name = crd.metadata!.name!;
  await eventually(`${name} is Established`, async () => {
    const stored = await client.get(api, name);
    assert.ok(
      stored.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"),
    );
  });
}

function scoped(r: CustomResource<unknown, unknown>, ns: string): CustomResource<unknown, unknown> {
  return r.namespaced ? r.within(ns) : r;
}

if (!skip) {
  e2eTest(
    "crdgen: real CRDs installed, the projects' examples created, read back, validated, followed",
    async (
      { client, t },
    ) => {
      const m: RealModules = await realModules();
      // The generated modules are imported by now; the files are not needed any more.
      await rm(new URL("../.crdgen/", import.meta.url), { recursive: true, force: true });
      const ns = uniqueNamespace("crdgen");
      await client.create(Api.v1Namespace(), { metadata: { name: ns } });

      await t.step("the 16 CRDs install and become Established", async () => {
        for (const { crd } of m.crds) await install(client, crd);
      });

      await t.step(
        "from the cluster (by group, by name), the same modules as from the files",
        async () => {
          const fromCluster = await fetchCrds(client, {
            groups: ["gateway.networking.k8s.io", "cert-manager.io", "acme.cert-manager.io"],
          });
          assert.equal(fromCluster.length, 16);
          const generated = await generate(fromCluster);
          assert.deepEqual(generated.warnings, []);
          assert.deepEqual(generated.files.map((f) => f.code), m.files.map((f) => f.code));
          const one = await fetchCrds(client, { names: ["certificates.cert-manager.io"] });
          assert.deepEqual(one.map((c) => c.crd.metadata?.name), ["certificates.cert-manager.io"]);
          await assert.rejects(
            fetchCrds(client, { groups: ["nothing.example.com"] }),
            (e) =>
              e instanceof CrdgenError && /no CustomResourceDefinition of group/.test(e.message),
          );
          await assert.rejects(
            fetchCrds(client, { names: ["nothing.example.com"] }),
            (e) => e instanceof CrdgenError && /nothing\.example\.com: cannot read/.test(e.message),
          );
        },
      );

      const routes: string[] = [];
      await t.step("every example object is created, read back and validates", async () => {
        let i = 0;
        for (const { file, object } of m.examples) {
          const resource = resourceOf(m, object);
          if (!resource) continue;
          i++;
          const copy = structuredClone(object) as KubeObject & { spec?: unknown };
          const name = `e${i}-${copy.metadata!.name}`.slice(0, 63).replace(/[-.]+$/, "");
          copy.metadata = { ...copy.metadata, name, namespace: undefined };
          const api = scoped(resource, ns);
          try {
            await client.create(api, copy as never);
          } catch (e) {
            assert.fail(`${file}: the API server refused ${object.kind} ${name}: ${e}`);
          }
          const read = await client.get(api, name);
          try {
            resource.parse(read);
          } catch (e) {
            assert.fail(`${file}: ${object.kind} ${name} as stored: ${(e as Error).message}`);
          }
          if (object.kind === "HTTPRoute") routes.push(name);
        }
        assert.ok(i >= 60, `created only ${i} example objects`);
        assert.ok(routes.length >= 10, `only ${routes.length} HTTPRoutes`);
      });

      await t.step("a Reflector of the generated HTTPRoute follows them", async () => {
        const HTTPRoute = m.resources.get("gateway.networking.k8s.io/v1/HTTPRoute")!;
        const controller = new AbortController();
        const reflector = new Reflector(client, HTTPRoute.within(ns));
        const running = reflector.run({ signal: controller.signal }).catch(() => {});
        try {
          await reflector.ready;
          assert.deepEqual(
            [...reflector.read().values()].map((r) => r.metadata?.name).sort(),
            [
              ...routes,
            ].sort(),
          );
          for (const route of reflector.read().values()) HTTPRoute.parse(route);
          // A server-side apply through the generated constant shows up in the cache.
          await client.apply(HTTPRoute.within(ns), {
            apiVersion: "gateway.networking.k8s.io/v1",
            kind: "HTTPRoute",
            metadata: { name: "applied" },
            spec: { parentRefs: [{ name: "gw" }], hostnames: ["applied.example.com"] },
          }, { fieldManager: "crdgen-e2e" });
          await eventually("the applied route is cached", () => {
            const cached = reflector.get("applied", ns) as KubeObject & {
              spec: { hostnames?: string[] };
            };
            assert.deepEqual(cached?.spec.hostnames, ["applied.example.com"]);
            HTTPRoute.parse(cached);
          });
        } finally {
          controller.abort();
          await running;
        }
      });

      await t.step("cert-manager objects: created, read back, validated", async () => {
        const Issuer = m.resources.get("cert-manager.io/v1/Issuer")!;
        const Certificate = m.resources.get("cert-manager.io/v1/Certificate")!;
        await client.create(Issuer.within(ns), {
          metadata: { name: "selfsigned" },
          spec: { selfSigned: {} },
        });
        await client.create(Certificate.within(ns), {
          metadata: { name: "web" },
          spec: {
            secretName: "web-tls",
            dnsNames: ["web.example.com"],
            duration: "2160h",
            privateKey: { algorithm: "ECDSA", size: 256 },
            issuerRef: { name: "selfsigned", kind: "Issuer" },
          },
        });
        Issuer.parse(await client.get(Issuer.within(ns), "selfsigned"));
        Certificate.parse(await client.get(Certificate.within(ns), "web"));
      });

      await t.step(
        "objects the API server refuses for schema reasons, the schemas refuse",
        async () => {
          const r = (key: string) => scoped(m.resources.get(key)!, ns);
          const route = "gateway.networking.k8s.io/v1/HTTPRoute";
          const cases: { key: string; spec: unknown; why: string }[] = [
            { key: route, spec: { parentRefs: [{ name: "g", port: 70000 }] }, why: "port > 65535" },
            { key: route, spec: { hostnames: ["UPPER.example.com"] }, why: "hostname pattern" },
            {
              key: route,
              spec: { rules: [{ matches: [{ path: { type: "Glob", value: "/" } }] }] },
              why: "path type enum",
            },
            {
              key: "gateway.networking.k8s.io/v1/Gateway",
              spec: {
                gatewayClassName: "c",
                listeners: [{ name: "l", port: 80, protocol: "HTTP" }],
                addresses: [{ type: "IPAddress", value: "not-an-ip" }],
              },
              why: "oneOf: an IPAddress must be an IP",
            },
            {
              key: "cert-manager.io/v1/Certificate",
              spec: { secretName: "s", issuerRef: { name: "i" }, privateKey: { algorithm: "DSA" } },
              why: "algorithm enum",
            },
            {
              key: "cert-manager.io/v1/Certificate",
              spec: { issuerRef: { name: "i" } },
              why: "secretName required",
            },
          ];
          let n = 0;
          for (const c of cases) {
            const api = r(c.key);
            const object = { metadata: { name: `bad-${n++}` }, spec: c.spec };
            const error = await client.create(api, object as never).then(() => undefined, (e) => e);
            assert.ok(isInvalid(error), `${c.why}: the API server accepted it (${error})`);
            assert.throws(() => m.resources.get(c.key)!.parse(object), Error, c.why);
          }
        },
      );
    },
  );
}
