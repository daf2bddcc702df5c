// The third act of `deno task demo` (examples/demo.ts): the Foo operator's admission webhooks
// (examples/foo_webhooks.ts). On a real cluster the API server calls our WebhookServer over TLS
// (a self-managed CA in a Secret, a `url` client config on loopback); on the FakeApiServer the
// webhooks run in-process. kubectl is refused a Foo with 12 replicas, and a Foo without replicas
// is defaulted to 1. Not an example itself.

import { Api, type Client } from "../mod.ts";
import type { FakeApiServer } from "../testing/mod.ts";
import { SelfManagedCertificates, WebhookServer } from "../webhook/mod.ts";
import { FOOS } from "./foo_operator.ts";
import { fooWebhooks } from "./foo_webhooks.ts";

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
 * Runs the act. Resolves `true` when the refusal and the default were both seen.
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
      "than 10 replicas, default replicas to 1.",
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
  let ok = true;
  try {
    if (backend.fake) {
      remove = backend.fake.addAdmissionWebhooks(fooWebhooks());
      say("the FakeApiServer calls the webhooks in-process");
    } else {
      const server = new WebhookServer({
        webhooks: fooWebhooks(),
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
          `${namespace}/foo-webhook-certs), configurations ${name} applied`,
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
  } catch (e) {
    ok = false;
    console.error(`act 3 failed: ${e instanceof Error ? e.stack : e}`);
  } finally {
    remove?.();
    stop.abort();
    await running?.catch(() => {});
    if (!backend.fake) {
      await client.delete(Api.admissionregistrationV1ValidatingWebhookConfiguration(), name)
        .catch(() => {});
      await client.delete(Api.admissionregistrationV1MutatingWebhookConfiguration(), name)
        .catch(() => {});
    }
  }
  console.log(`Act 3 done: ${ok ? "refused and defaulted as expected" : "NOT as expected"}.`);
  return ok;
}
