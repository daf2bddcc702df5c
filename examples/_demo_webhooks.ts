// The third act of `deno task demo` (examples/demo.ts): the Foo operator's admission webhooks
// (examples/foo_webhooks.ts). On a real cluster the API server calls our WebhookServer over TLS
// (a self-managed CA in a Secret, a `url` client config on loopback); on the FakeApiServer the
// webhooks run in-process. kubectl is refused a Foo with 12 replicas, a Foo without replicas
// is defaulted to 1, and a Foo created as clux.dev/v1alpha1 (`spec.size`, examples/foo_conversion.ts)
// is read as v1 (`spec.replicas`) and back as v1alpha1, unchanged, through the conversion webhook.
// On a real cluster the Foo CRD gets v1alpha1 and `conversion.strategy: Webhook` while the act
// runs, and is put back as it was (examples/foo.yaml: v1 only) at the end. Not an example itself.

import { Api, type Client } from "../mod.ts";
import { CustomResource, type CustomResourceDefinition } from "../custom_resource.ts";
import type { FakeApiServer } from "../testing/mod.ts";
import { SelfManagedCertificates, WebhookServer } from "../webhook/mod.ts";
import { FOOS } from "./foo_operator.ts";
import { fooWebhooks } from "./foo_webhooks.ts";
import { fooConversion, FooV1alpha1 } from "./foo_conversion.ts";

async function kubectl(kubeconfig: string, args: string[], stdin?: string) {
  const child = new Deno.Command("kubectl", {
    args: ["--kubeconfig", kubeconfig, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.success ? out.stdout : out.stderr).trim();
  return { ok: out.success, text };
}

/**
 * Runs the act. Resolves `true` when the refusal, the default and the v1alpha1 ↔ v1 round trip
 * were all seen.
 *
 * @param client The demo's client.
 * @param namespace The demo namespace (the Foo CRD is installed).
 * @param clockText The demo's elapsed-time prefix.
 * @param backend The kubeconfig of a real cluster (kubectl is used when installed), or the fake.
 */
export async function webhookAct(
  client: Client,
  namespace: string,
  clockText: () => string,
  backend: { kubeconfigPath?: string; fake?: FakeApiServer },
): Promise<boolean> {
  const say = (text: string) => console.log(`${clockText()}  ─── ${text}`);
  console.log(
    "\nAct 3: the Foo operator's admission webhooks (examples/foo_webhooks.ts): refuse more " +
      "than 10 replicas, default replicas to 1; and the v1alpha1 ↔ v1 conversion webhook " +
      "(examples/foo_conversion.ts).",
  );
  const stop = new AbortController();
  const name = `foo-webhooks-${namespace}`;
  let running: Promise<void> | undefined;
  let remove: (() => void) | undefined;
  const hasKubectl = backend.kubeconfigPath !== undefined &&
    await new Deno.Command("kubectl", {
      args: ["version", "--client"],
      stdout: "null",
      stderr: "null",
    })
      .output().then((o) => o.success, () => false);
  // A Foo written as v1alpha1, read as v1 and back as v1alpha1: through the conversion webhook.
  const conversionScene = async (): Promise<boolean> => {
    const spec = { name: "old", info: "written as v1alpha1", size: 3 };
    const old = {
      apiVersion: FooV1alpha1.apiVersion,
      kind: "Foo",
      metadata: { name: "old", namespace },
      spec,
    };
    say(`create Foo old as ${FooV1alpha1.apiVersion} with spec.size 3`);
    // The API server serves v1alpha1, and calls the conversion, a moment after the CRD changed.
    let created = false;
    let error = "";
    for (let i = 0; i < 100 && !created; i++) {
      if (hasKubectl) {
        const r = await kubectl(
          backend.kubeconfigPath!,
          ["create", "-f", "-"],
          JSON.stringify(old),
        );
        created = r.ok;
        error = r.text;
      } else {
        await client.create(FooV1alpha1.within(namespace), old as never).then(
          () => created = true,
          (e: Error) => error = e.message,
        );
      }
      if (!created) await new Promise((r) => setTimeout(r, 200));
    }
    if (!created) {
      console.log(`${clockText()}  kubectl    NOT CREATED as ${FooV1alpha1.apiVersion}: ${error}`);
      return false;
    }
    const read = async (version: "v1" | "v1alpha1") => {
      if (hasKubectl) {
        const resource = `foos.${version}.clux.dev`;
        const r = await kubectl(backend.kubeconfigPath!, [
          "get",
          resource,
          "old",
          "-n",
          namespace,
          "-o",
          "json",
        ]);
        if (!r.ok) throw new Error(`kubectl get ${resource} old -n ${namespace}: ${r.text}`);
        return JSON.parse(r.text) as { apiVersion: string; spec: Record<string, unknown> };
      }
      const api = version === "v1" ? FOOS : FooV1alpha1;
      return await client.get(api.within(namespace), "old") as unknown as {
        apiVersion: string;
        spec: Record<string, unknown>;
      };
    };
    const sorted = (o: Record<string, unknown>) =>
      JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1)));
    const v1 = await read("v1");
    console.log(
      `${clockText()}  kubectl    get foos.v1.clux.dev old: ${v1.apiVersion} ` +
        `spec.replicas=${v1.spec.replicas} spec=${sorted(v1.spec)}`,
    );
    const back = await read("v1alpha1");
    const unchanged = sorted(back.spec) === sorted(spec);
    console.log(
      `${clockText()}  kubectl    get foos.v1alpha1.clux.dev old: ${back.apiVersion} ` +
        `spec.size=${back.spec.size} spec=${sorted(back.spec)} ` +
        `(${unchanged ? "round trip unchanged" : `CHANGED, created as ${sorted(spec)}`})`,
    );
    await client.delete(FOOS.within(namespace), "old").catch(() => {});
    return v1.apiVersion === "clux.dev/v1" && v1.spec.replicas === 3 &&
      "size" in v1.spec === false &&
      back.apiVersion === FooV1alpha1.apiVersion && unchanged;
  };
  let ok = true;
  // The CRD as it was (examples/foo.yaml), put back at the end: the conversion webhook goes away.
  let crdBefore: CustomResourceDefinition | undefined;
  try {
    if (backend.fake) {
      remove = backend.fake.addAdmissionWebhooks(fooWebhooks());
      backend.fake.registerResource({
        group: FooV1alpha1.group,
        version: FooV1alpha1.version,
        kind: FooV1alpha1.kind,
        plural: FooV1alpha1.plural,
        namespaced: true,
        subresources: ["status"],
      });
      backend.fake.addConversion(fooConversion);
      say("the FakeApiServer calls the webhooks and the conversion in-process");
    } else {
      crdBefore = await client.get(CustomResource.crdApi(), "foos.clux.dev");
      const server = new WebhookServer({
        webhooks: fooWebhooks(),
        conversions: [fooConversion],
        certificates: new SelfManagedCertificates({
          client,
          namespace,
          ipAddresses: ["127.0.0.1"],
          secretName: "foo-webhook-certs",
        }),
        hostname: "127.0.0.1",
        port: 0,
        register: { client, name, clientConfig: (port) => ({ url: `https://127.0.0.1:${port}` }) },
      });
      running = server.run(stop.signal);
      const port = await server.listening();
      for (let i = 0; i < 100 && server.ready() !== true; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      say(
        `WebhookServer on https://127.0.0.1:${port} (CA and certificate in Secret ` +
          `${namespace}/foo-webhook-certs), configurations ${name} applied, CRD foos.clux.dev ` +
          `with v1alpha1 and conversion.strategy Webhook`,
      );
    }
    const foo = (fooName: string, replicas?: number) => ({
      apiVersion: "clux.dev/v1",
      kind: "Foo",
      metadata: { name: fooName, namespace },
      spec: { name: fooName, info: "act 3", ...(replicas === undefined ? {} : { replicas }) },
    });
    // The API server picks up new configurations within a moment: retry the refusal briefly.
    say("create Foo big with spec.replicas 12");
    let refusal = "";
    for (let i = 0; i < 50 && !refusal; i++) {
      if (hasKubectl) {
        const r = await kubectl(
          backend.kubeconfigPath!,
          ["create", "-f", "-"],
          JSON.stringify(foo("big", 12)),
        );
        if (!r.ok) refusal = r.text;
        else await kubectl(backend.kubeconfigPath!, ["delete", "foo", "big", "-n", namespace]);
      } else {
        await client.create(FOOS.within(namespace), foo("big", 12) as never).then(
          () => client.delete(FOOS.within(namespace), "big"),
          (e: Error) =>
            refusal = `Error from server: ${e.message.replace(/ \((POST|PUT) .*\)$/, "")}`,
        );
      }
      if (!refusal) await new Promise((r) => setTimeout(r, 200));
    }
    console.log(`${clockText()}  kubectl    ${refusal || "NOT REFUSED"}`);
    if (!/more than the 10 this operator allows/.test(refusal)) ok = false;
    say("create Foo small without spec.replicas");
    await client.create(FOOS.within(namespace), foo("small") as never);
    let replicas: string;
    if (hasKubectl) {
      replicas = (await kubectl(backend.kubeconfigPath!, [
        "get",
        "foo",
        "small",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.replicas}",
      ])).text;
    } else {
      replicas = String((await client.get(FOOS.within(namespace), "small")).spec.replicas);
    }
    console.log(`${clockText()}  kubectl    Foo small: spec.replicas=${replicas} (defaulted)`);
    if (replicas !== "1") ok = false;
    await client.delete(FOOS.within(namespace), "small").catch(() => {});
    if (!await conversionScene()) ok = false;
  } catch (e) {
    ok = false;
    console.error(`act 3 failed: ${e instanceof Error ? e.stack : e}`);
  } finally {
    remove?.();
    stop.abort();
    await running?.catch(() => {});
    if (crdBefore && !await restoreCrd(client, crdBefore)) ok = false;
    if (!backend.fake) {
      await client.delete(Api.admissionregistrationV1ValidatingWebhookConfiguration(), name)
        .catch(() => {});
      await client.delete(Api.admissionregistrationV1MutatingWebhookConfiguration(), name)
        .catch(() => {});
    }
  }
  console.log(
    `Act 3 done: ${
      ok
        ? "refused and defaulted as expected; v1alpha1 → v1 → v1alpha1 unchanged"
        : "NOT as expected"
    }.`,
  );
  return ok;
}

/**
 * Puts the Foo CRD back as it was before the act (examples/foo.yaml: v1 only, no conversion
 * webhook), so that nothing calls the stopped webhook server.
 *
 * @returns Whether it was put back.
 */
async function restoreCrd(client: Client, before: CustomResourceDefinition): Promise<boolean> {
  const crds = CustomResource.crdApi();
  let error: unknown;
  for (let i = 0; i < 10; i++) {
    try {
      const now = await client.get(crds, before.metadata!.name!);
      now.spec.versions = before.spec.versions;
      now.spec.conversion = before.spec.conversion ?? { strategy: "None" };
      await client.replace(crds, now);
      return true;
    } catch (e) {
      error = e; // a conflict with the API server's own status update: read again
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  console.error(`act 3: could not put CRD ${before.metadata?.name} back as it was: ${error}`);
  return false;
}
