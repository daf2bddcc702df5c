// Parity: the same behaviour suite runs against the real kube-apiserver and FakeApiServer, and
// the two transcripts must be equal. A difference is a failing test: that is how users know the
// fake tells the truth.
//
// Each step records what a client observes (reasons, codes, messages, names, event types, page
// sizes), normalised where values are legitimately different (resource versions, UIDs, times).

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { ApiError } from "../../errors.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import type { WatchEvent } from "../../watch.ts";
import { e2eTest, eventually } from "./_harness.ts";
import {
  type AdmissionWebhook,
  type CertificateSource,
  deny,
  generateCertificates,
  mutate,
  registerWebhooks,
  validate,
  WebhookServer,
} from "../../webhook/mod.ts";

interface Backend {
  client: Client;
  /** Makes the server call these admission webhooks; returns a function that removes them. */
  admit(webhooks: AdmissionWebhook[], ns: string): Promise<() => Promise<void>>;
  /** Makes resource versions older than now expire (410). */
  expire(): Promise<void>;
}

type Transcript = Record<string, unknown>;

function failure(e: unknown): unknown {
  if (!(e instanceof ApiError)) throw e;
  return { status: e.status, reason: e.reason, message: e.body?.message };
}

async function collect(
  events: AsyncIterableIterator<WatchEvent<KubeObject>>,
  until: (seen: WatchEvent<KubeObject>[]) => boolean,
): Promise<WatchEvent<KubeObject>[]> {
  const seen: WatchEvent<KubeObject>[] = [];
  try {
    for await (const ev of events) {
      seen.push(ev);
      if (until(seen)) break;
    }
  } finally {
    await events.return?.();
  }
  return seen;
}

function describeEvent(ev: WatchEvent<KubeObject>): unknown {
  switch (ev.type) {
    case "BOOKMARK":
      return { type: ev.type, initialEventsEnd: ev.initialEventsEnd };
    case "ERROR":
      return {
        type: ev.type,
        status: ev.error.status,
        reason: ev.error.reason,
        expired: ev.error.expired,
      };
    default:
      return {
        type: ev.type,
        name: ev.object.metadata?.name,
        data: (ev.object as { data?: unknown }).data,
      };
  }
}

async function suite(backend: Backend, ns: string): Promise<Transcript> {
  const { client } = backend;
  const out: Transcript = {};
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const cms = Api.v1ConfigMap().within(ns);
  const cm = (name: string, labels: Record<string, string> = {}) =>
    ({ metadata: { name, labels }, data: { name } }) as KubeObject;

  // CRUD and errors.
  const created = await client.create(cms, cm("a", { tier: "web" }));
  out.createdKind = [created.apiVersion, created.kind, typeof created.metadata?.resourceVersion];
  out.alreadyExists = await client.create(cms, cm("a")).catch(failure);
  out.notFound = await client.get(cms, "missing").catch(failure);
  await client.patch(cms, "a", { data: { v: "2" } });
  out.conflict = await client.replace(cms, created).catch(failure);
  const invalid = await client.create(cms, cm("Bad_Name")).catch((e) => e);
  out.invalid = {
    status: invalid.status,
    reason: invalid.reason,
    fields: (invalid.details?.causes ?? []).map((c: { field?: string }) => c.field),
  };
  out.deleteMissing = await client.delete(cms, "missing").catch(failure);

  // Paging.
  for (const name of ["b", "c", "d", "e", "f", "g"]) {
    await client.create(cms, cm(name, { tier: name < "d" ? "web" : "db", [`only-${name}`]: "1" }));
  }
  const first = await client.list(cms, { limit: 3 });
  const second = await client.list(cms, { limit: 3, continue: first.metadata.continue });
  const third = await client.list(cms, { limit: 3, continue: second.metadata.continue });
  out.paging = [first, second, third].map((page) => ({
    kind: page.kind,
    names: page.items.map((i) => i.metadata?.name),
    hasContinue: Boolean(page.metadata.continue),
    remaining: page.metadata.remainingItemCount,
  }));

  // Selectors.
  const names = async (opts: { labelSelector?: string; fieldSelector?: string }) =>
    (await client.list(cms, opts)).items.map((i) => i.metadata?.name).sort();
  out.selectors = {
    equality: await names({ labelSelector: "tier=web" }),
    inequality: await names({ labelSelector: "tier!=web" }),
    set: await names({ labelSelector: "tier in (db),only-e" }),
    notExists: await names({ labelSelector: "!tier" }),
    field: await names({ fieldSelector: "metadata.name=c" }),
    fieldNot: await names({ fieldSelector: "metadata.name!=a,metadata.namespace=" + ns }),
    badSelector: await names({ labelSelector: "tier in (" }).catch((e) => (e as ApiError).status),
  };

  // Watch from a resource version: the changes after it, in order.
  const from = (await client.list(cms, { limit: 1 })).metadata.resourceVersion!;
  await client.patch(cms, "b", { data: { v: "w1" } });
  await client.delete(cms, "c");
  await client.create(cms, cm("h"));
  const changes = await collect(
    client.watch(cms, { resourceVersion: from, timeoutSeconds: 10 }),
    (seen) => seen.filter((e) => e.type !== "BOOKMARK").length >= 3,
  );
  out.watch = changes.filter((e) => e.type !== "BOOKMARK").map(describeEvent);

  // WatchList: initial events, then the end bookmark.
  const initial = await collect(
    client.watch(cms, {
      sendInitialEvents: true,
      resourceVersionMatch: "NotOlderThan",
      allowWatchBookmarks: true,
      timeoutSeconds: 10,
    }),
    (seen) => seen.some((e) => e.type === "BOOKMARK" && e.initialEventsEnd),
  );
  out.watchList = {
    added: initial.filter((e) => e.type === "ADDED").map((e) => describeEvent(e)).length,
    types: [...new Set(initial.map((e) => e.type))],
    endsWithEndBookmark: initial.at(-1)?.type === "BOOKMARK" &&
      (initial.at(-1) as { initialEventsEnd?: boolean }).initialEventsEnd === true,
  };

  // Admission webhooks: a refusal's Status, a mutation, the order (mutating, then validating).
  const colors = validate(cms, (req) => {
    const o = req.object ?? req.oldObject;
    if (o?.data?.color === "red") return deny("data.color red is refused");
    if (o?.data?.color === "blue") return deny("", { reason: "NoBlue", code: 200 });
    if (req.operation === "DELETE" && o?.data?.keep === "yes") {
      return deny("this one is kept", { reason: "Invalid", code: 422 });
    }
    return req.object?.metadata?.labels?.seen === "mutated" || req.operation === "DELETE"
      ? undefined
      : deny("validated before the mutation");
  }, { operations: ["CREATE", "UPDATE", "DELETE"] });
  const label = mutate(cms, (o) => {
    o.metadata!.labels = { ...o.metadata!.labels, seen: "mutated" };
  });
  const remove = await backend.admit([colors, label], ns);
  try {
    out.webhookRefusal = await client.create(cms, {
      metadata: { name: "red" },
      data: { color: "red" },
    })
      .catch(failure);
    out.webhookReasonOnly = await client.create(cms, {
      metadata: { name: "blue" },
      data: { color: "blue" },
    }).catch(failure);
    const mutated = await client.create(cms, {
      metadata: { name: "kept" },
      data: { color: "green", keep: "yes" },
    });
    out.webhookMutation = mutated.metadata?.labels;
    out.webhookUpdateRefusal = await client.patch(cms, "kept", { data: { color: "red" } })
      .catch(failure);
    out.webhookDeleteRefusal = await client.delete(cms, "kept").catch(failure);
  } finally {
    await remove();
  }

  // 410 after compaction: a watch from an old resource version is told it expired.
  await backend.expire();
  await client.patch(cms, "a", { data: { v: "after-expire" } });
  const expired = await collect(
    client.watch(cms, { resourceVersion: from, timeoutSeconds: 10 }),
    () => true,
  ).catch((e) => e);
  out.expired = expired instanceof ApiError
    ? { form: "http", status: expired.status, expired: expired.expired }
    : { form: "event", events: expired.map(describeEvent) };
  return out;
}

e2eTest("parity: the real kube-apiserver and FakeApiServer give the same transcript", async (
  { cp, client, t },
) => {
  const real = await suite({
    client,
    async admit(webhooks, ns) {
      // Our HTTPS server on loopback, the configurations with a url client config, limited to
      // the suite's namespace.
      const g = await generateCertificates({ ipAddresses: ["127.0.0.1"], validityMs: 3600_000 });
      const certs: CertificateSource = {
        current: () => g,
        caBundle: () => g.caCert,
        ready: () => true,
        run: async (signal, onChange) => {
          await onChange(g, g.caCert);
          if (!signal.aborted) {
            await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
          }
        },
      };
      const server = new WebhookServer({
        webhooks,
        certificates: certs,
        hostname: "127.0.0.1",
        port: 0,
      });
      const stop = new AbortController();
      const running = server.run(stop.signal);
      const port = await server.listening();
      const only = { matchLabels: { "kubernetes.io/metadata.name": ns } };
      const scoped = webhooks.map((w) => ({
        ...w,
        options: { ...w.options, namespaceSelector: only },
      }));
      await registerWebhooks(client, scoped, {
        name: "parity",
        clientConfig: { url: `https://127.0.0.1:${port}` },
        caBundle: g.caCert,
      });
      const probe = Api.v1ConfigMap().within(ns);
      await eventually("the apiserver calls the webhooks", async () => {
        const e = await client.create(probe, {
          metadata: { name: "probe" },
          data: { color: "red" },
        })
          .then(() => client.delete(probe, "probe").then(() => undefined), (e) => e);
        assert.ok(e instanceof ApiError && /denied the request/.test(e.message));
      });
      return async () => {
        await client.delete(Api.admissionregistrationV1ValidatingWebhookConfiguration(), "parity");
        await client.delete(Api.admissionregistrationV1MutatingWebhookConfiguration(), "parity");
        stop.abort();
        await running;
      };
    },
    async expire() {
      await cp.compact();
      // A restart starts an empty watch cache, so the compacted versions expire at once.
      await cp.restartApiServer();
    },
  }, "parity");
  await using server = new FakeApiServer();
  const fake = await suite({
    client: server.client(),
    admit(webhooks) {
      const remove = server.addAdmissionWebhooks(webhooks);
      return Promise.resolve(() => Promise.resolve(remove()));
    },
    expire() {
      server.compact();
      return Promise.resolve();
    },
  }, "parity");
  for (const key of Object.keys(real)) {
    await t.step(key, () => {
      assert.deepEqual(fake[key], real[key], `FakeApiServer differs from kube-apiserver on ${key}`);
    });
  }
  if (Deno.env.get("PARITY_PRINT")) console.log(JSON.stringify(real));
  // Sanity: the transcript recorded real behaviour.
  assert.equal((real.notFound as { reason: string }).reason, "NotFound");
  assert.equal((real.conflict as { reason: string }).reason, "Conflict");
});
