// FakeApiServer calls admission webhooks in-process as the real API server does: mutating, then
// its own validation, then validating; refusals are the real server's Status; create, update,
// patch, server-side apply and delete; failurePolicy Fail versus Ignore.

import assert from "node:assert/strict";
import { z } from "zod";
import { Api } from "../../api.ts";
import { defineCustomResource } from "../../custom_resource.ts";
import { type ApiError, isForbidden } from "../../errors.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { defineConversion, deny, mutate, validate } from "../../webhook/mod.ts";
import { test } from "../_test.ts";

const Foo = defineCustomResource({
  group: "example.com",
  version: "v1",
  kind: "Foo",
  namespaced: true,
  spec: z.object({ replicas: z.int(), image: z.string().optional() }),
});
const FOOS = Foo.within("default");

const seen: string[] = [];
const refuse = validate(Foo, (req) => {
  seen.push(`validate ${req.operation} ${req.object?.spec.image ?? "-"}`);
  // On DELETE the object is the old one.
  const n = (req.object ?? req.oldObject)?.spec.replicas ?? 0;
  return n > 10 ? deny(`spec.replicas must be at most 10, got ${n}`) : undefined;
}, { operations: ["CREATE", "UPDATE", "DELETE"] });
const defaults = mutate(Foo, (foo, req) => {
  seen.push(`mutate ${req.operation}`);
  foo.spec.image ??= "nginx";
});

function fake(): FakeApiServer {
  const server = new FakeApiServer();
  server.registerResource(Foo.descriptor());
  return server;
}

test("FakeApiServer webhooks: create is mutated, then validated; a refusal is the real server's 403 Status", async () => {
  await using server = fake();
  seen.length = 0;
  const remove = server.addAdmissionWebhooks([refuse, defaults]);
  const client = server.client();
  const created = await client.create(FOOS, { metadata: { name: "a" }, spec: { replicas: 2 } });
  assert.equal(created.spec.image, "nginx");
  assert.deepEqual(seen, ["mutate CREATE", "validate CREATE nginx"]);
  const error = await client.create(FOOS, { metadata: { name: "b" }, spec: { replicas: 12 } })
    .then(() => undefined, (e: ApiError) => e);
  assert.ok(isForbidden(error), String(error));
  assert.equal(
    error!.body?.message,
    'admission webhook "validate-foos.example.com.kube.webhook" denied the request: spec.replicas must be at most 10, got 12',
  );
  assert.equal(server.objects("Foo").length, 1, "nothing stored");
  remove();
  await client.create(FOOS, { metadata: { name: "b" }, spec: { replicas: 12 } });
});

test("FakeApiServer webhooks: update, merge patch, server-side apply and delete pass through them", async () => {
  await using server = fake();
  server.addAdmissionWebhooks([refuse, defaults]);
  const client = server.client();
  const a = await client.create(FOOS, { metadata: { name: "a" }, spec: { replicas: 1 } });
  seen.length = 0;
  await assert.rejects(
    client.replace(FOOS, { ...a, spec: { replicas: 11 } }),
    /denied the request: spec\.replicas must be at most 10, got 11/,
  );
  const replaced = await client.replace(FOOS, { ...a, spec: { replicas: 3 } });
  assert.equal(replaced.spec.image, "nginx", "mutated on update too");
  await assert.rejects(
    client.patch(FOOS, "a", { spec: { replicas: 20 } }, { type: "merge" }),
    /got 20/,
  );
  const patched = await client.patch(FOOS, "a", { spec: { replicas: 4, image: null } }, {
    type: "merge",
  });
  assert.equal(patched.spec.replicas, 4);
  assert.equal(patched.spec.image, "nginx", "the mutation of a patch is written");
  await assert.rejects(
    client.apply(FOOS, { metadata: { name: "c" }, spec: { replicas: 30 } }, { fieldManager: "t" }),
    /got 30/,
  );
  const applied = await client.apply(FOOS, { metadata: { name: "c" }, spec: { replicas: 1 } }, {
    fieldManager: "t",
  });
  assert.equal(applied.spec.image, "nginx");
  assert.equal((await client.get(FOOS, "c")).spec.image, "nginx");
  const big = server.seed({
    apiVersion: "example.com/v1",
    kind: "Foo",
    metadata: { name: "big", namespace: "default" },
    spec: { replicas: 50 },
  } as never);
  assert.ok(big);
  await assert.rejects(client.delete(FOOS, "big"), /got 50/);
  await client.delete(FOOS, "a");
  assert.ok(seen.includes("validate DELETE -"));
});

test("FakeApiServer webhooks: a webhook that fails refuses under Fail and is skipped under Ignore; other kinds are untouched", async () => {
  await using server = fake();
  const broken = {
    ...refuse,
    name: "broken.example.com",
    admit: () => Promise.reject(new Error("connection refused")),
  };
  const remove = server.addAdmissionWebhooks([broken]);
  const client = server.client();
  await assert.rejects(
    client.create(FOOS, { metadata: { name: "a" }, spec: { replicas: 1 } }),
    /failed calling webhook "broken\.example\.com": connection refused/,
  );
  remove();
  server.addAdmissionWebhooks([{ ...broken, options: { failurePolicy: "Ignore" } }]);
  await client.create(FOOS, { metadata: { name: "a" }, spec: { replicas: 1 } });
  await client.create(Api.v1ConfigMap().within("default"), { metadata: { name: "c" } });
});

const GadgetV1 = defineCustomResource({
  group: "example.com",
  version: "v1",
  kind: "Gadget",
  namespaced: true,
  spec: z.object({ replicas: z.int(), paused: z.boolean().optional() }),
});
const GadgetV1alpha1 = defineCustomResource({
  group: "example.com",
  version: "v1alpha1",
  kind: "Gadget",
  namespaced: true,
  spec: z.object({ size: z.int() }),
});

test("FakeApiServer conversion: stored in the hub's version, converted when read or written through another", async () => {
  await using server = new FakeApiServer();
  server.registerResource(GadgetV1.descriptor());
  server.registerResource(GadgetV1alpha1.descriptor());
  server.addConversion(defineConversion({
    hub: GadgetV1,
    spokes: [{
      version: GadgetV1alpha1,
      toHub: (o) => ({ spec: { replicas: o.spec.size } }),
      fromHub: (o) => ({ spec: { size: o.spec.replicas } }),
    }],
  }));
  const client = server.client();
  const v1 = GadgetV1.within("default");
  const alpha = GadgetV1alpha1.within("default");
  const created = await client.create(v1, {
    metadata: { name: "g" },
    spec: { replicas: 3, paused: true },
  });
  const read = await client.get(alpha, "g");
  assert.equal(read.apiVersion, "example.com/v1alpha1");
  assert.deepEqual(read.spec, { size: 3 });
  // Written back through v1alpha1 unchanged: the v1-only field survives.
  await client.replace(alpha, read);
  const again = await client.get(v1, "g");
  assert.deepEqual(again.spec, created.spec);
  assert.equal(again.metadata?.annotations?.["conversion.denokube.dev/hub"], undefined);
  // Created through v1alpha1: stored as v1; a list through either version converts each item.
  await client.create(alpha, { metadata: { name: "h" }, spec: { size: 1 } });
  assert.deepEqual(
    server.objects("Gadget").map((
      o,
    ) => [o.metadata?.name, (o as { apiVersion?: string }).apiVersion]),
    [["g", "example.com/v1"], ["h", "example.com/v1"]],
  );
  assert.deepEqual((await client.list(alpha)).items.map((g) => g.spec.size), [3, 1]);
  assert.deepEqual((await client.list(v1)).items.map((g) => g.spec.replicas), [3, 1]);
  // A merge patch through v1alpha1 is converted too.
  const patched = await client.patch(alpha, "h", { spec: { size: 5 } }, { type: "merge" });
  assert.deepEqual(patched.spec, { size: 5 });
  assert.equal((await client.get(v1, "h")).spec.replicas, 5);
});
