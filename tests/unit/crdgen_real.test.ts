// crdgen on the CRDs of real projects (Gateway API v1.6.3 standard channel, cert-manager
// v1.21.2), fetched as pinned Go modules: the generated modules are deterministic, pass deno fmt,
// lint and check, and their schemas accept the Gateway API's own examples and refuse broken
// objects. Skipped without Go (failed instead when CI=true).

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { test } from "../_test.ts";
import { crdModulesSkipReason } from "../../testenv/crd_modules.ts";
import { generate } from "../../crdgen/mod.ts";
import { OUT_DIR, realModules, resourceOf } from "../_crdgen_real.ts";
import { CustomResourceParseError } from "../../custom_resource.ts";

const skip = await crdModulesSkipReason();
if (skip) console.error(`crdgen_real: skipping: ${skip}`);

async function deno(...args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `deno ${args.join(" ")} failed:\n${text.slice(-3000)}`);
}

test({
  name: "crdgen: real CRDs generate deterministic, formatted, linted, type-checked modules that " +
    "accept the projects' examples",
  ignore: skip !== undefined,
  async fn(t) {
    const m = await realModules();
    assert.equal(m.files.length, 16, m.files.map((f) => f.fileName).join(", "));
    // The only documents skipped are the Gateway API's ValidatingAdmissionPolicy and binding.
    assert.deepEqual(
      m.readWarnings.map((w) => w.message.split(" (")[0]),
      ["skipped: a ValidatingAdmissionPolicy", "skipped: a ValidatingAdmissionPolicyBinding"],
    );
    // Everything in these CRDs is represented: no warning.
    assert.deepEqual(m.warnings, []);

    await t.step("the same input gives the same bytes", async () => {
      const again = await generate([...m.crds].reverse());
      assert.deepEqual(again.files.map((f) => f.code), m.files.map((f) => f.code));
    });

    await t.step("deno fmt --check, lint, check and doc --lint pass on the output", async () => {
      // tests/.crdgen/ is excluded from the repository's fmt/lint/check: a config of its own,
      // with the imports a user's project has.
      const config = `${OUT_DIR}../deno.json`;
      await writeFile(
        config,
        JSON.stringify({
          imports: {
            "@denokube/kube": "../../mod.ts",
            "@denokube/kube/crdgen": "../../crdgen/mod.ts",
            zod: "npm:zod@^4.1.0",
          },
          fmt: { lineWidth: 100 },
          lint: { rules: { tags: ["recommended", "jsr"] } },
        }),
      );
      await deno("fmt", "--check", "--config", config, OUT_DIR);
      await deno("lint", "--config", config, OUT_DIR);
      await deno("check", "--config", config, OUT_DIR);
      // With the package's entry point, as users' doc lint sees @denokube/kube's types.
      await deno(
        "doc",
        "--lint",
        "--config",
        config,
        new URL("../../mod.ts", import.meta.url).pathname,
        ...m.files.map((f) => `${OUT_DIR}${f.fileName}`),
      );
    });

    await t.step("every Gateway API example object validates with the generated schema", () => {
      let validated = 0;
      const kinds = new Set<string>();
      for (const { file, object } of m.examples) {
        const resource = resourceOf(m, object);
        if (!resource) continue;
        try {
          resource.parse(object);
        } catch (e) {
          assert.fail(`${file}: ${(e as Error).message}`);
        }
        validated++;
        kinds.add(object.kind!);
      }
      assert.ok(validated >= 60, `validated only ${validated} example objects`);
      for (const kind of ["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "ReferenceGrant"]) {
        assert.ok(kinds.has(kind), `no ${kind} among the examples`);
      }
    });

    await t.step("broken objects are refused, naming the field", () => {
      const route = m.resources.get("gateway.networking.k8s.io/v1/HTTPRoute")!;
      const bad = (spec: unknown, field: RegExp) => {
        assert.throws(
          () => route.parse({ metadata: { name: "r", namespace: "n" }, spec }),
          (e) => e instanceof CustomResourceParseError && field.test(e.message),
        );
      };
      bad({ parentRefs: [{ name: "g", port: 70000 }] }, /spec\.parentRefs\[0\]\.port/);
      bad({ hostnames: ["UPPER.example.com"] }, /spec\.hostnames\[0\]/);
      bad({ rules: [{ matches: [{ path: { type: "Glob", value: "/" } }] }] }, /path\.type/);
      try {
        route.parse({
          metadata: { name: "r" },
          spec: { parentRefs: [{ name: "g", port: 70000 }] },
        });
        assert.fail("accepted a port above 65535");
      } catch (e) {
        assert.match((e as Error).message, /spec\.parentRefs\[0\]\.port/);
      }
      const gateway = m.resources.get("gateway.networking.k8s.io/v1/Gateway")!;
      // oneOf: an IPAddress address must be an IP (a value validation, checked by valueValidations).
      assert.throws(
        () =>
          gateway.parse({
            metadata: { name: "g" },
            spec: {
              gatewayClassName: "c",
              listeners: [{ name: "l", port: 80, protocol: "HTTP" }],
              addresses: [{ type: "IPAddress", value: "not-an-ip" }],
            },
          }),
        /oneOf/,
      );
      const cert = m.resources.get("cert-manager.io/v1/Certificate")!;
      assert.throws(
        () =>
          cert.parse({
            metadata: { name: "c" },
            spec: { secretName: "s", issuerRef: { name: "i" }, privateKey: { algorithm: "DSA" } },
          }),
        /spec\.privateKey\.algorithm/,
      );
    });
    await Deno.remove(`${OUT_DIR}..`, { recursive: true });
  },
});
