// finalizer(), EventRecorder and waitFor() against the FakeApiServer (virtual clock for time).

import assert from "node:assert/strict";
import {
  Api,
  Client,
  conditions,
  Controller,
  type CustomObject,
  EventRecorder,
  EVENTS_API,
  finalizer,
  waitFor,
} from "../../mod.ts";
import { ControllerHarness, FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

type Foo = CustomObject<{ name: string; info: string }>;
const foos = Api.customResource<{ name: string; info: string }>("foos").group("clux.dev")
  .version("v1").within("default");

function fooServer(): FakeApiServer {
  const server = new FakeApiServer();
  server.registerResource({
    group: "clux.dev",
    version: "v1",
    kind: "Foo",
    plural: "foos",
    namespaced: true,
    subresources: ["status"],
  });
  server.registerResource({
    group: "events.k8s.io",
    version: "v1",
    kind: "Event",
    plural: "events",
    namespaced: true,
  });
  return server;
}

function seedFoo(server: FakeApiServer, name: string, finalizers?: string[]) {
  return server.seed({
    apiVersion: "clux.dev/v1",
    kind: "Foo",
    metadata: { name, namespace: "default", finalizers },
    spec: { name, info: "x" },
  })[0] as unknown as Foo;
}

test("finalizer: added before apply, cleanup on delete, removed after, other finalizers kept", async () => {
  await using server = fooServer();
  await using h = new ControllerHarness(server);
  const steps: string[] = [];
  let failCleanup = 1;
  h.start(
    new Controller(
      h.client,
      foos,
      (foo: Foo, ctx) =>
        finalizer(ctx, foos, "clux.dev/cleanup", foo, {
          apply: (f) => {
            steps.push(`apply:${f.metadata!.finalizers!.join(",")}`);
          },
          cleanup: () => {
            steps.push("cleanup");
            if (failCleanup-- > 0) throw new Error("external system down");
          },
        }),
      { clock: h.clock, backoff: { initialMs: 1_000, jitter: 0 } },
    ),
  );
  seedFoo(server, "f", ["other.io/keep"]);
  await h.settle();
  assert.equal(steps[0], "apply:other.io/keep,clux.dev/cleanup");
  await h.client.delete(foos, "f");
  await h.settle();
  assert.ok(server.objects("foos").length === 1, "kept while cleanup fails");
  await h.advance(1_000);
  const left = server.objects("foos")[0];
  assert.deepEqual(left.metadata!.finalizers, ["other.io/keep"]);
  assert.deepEqual(steps.filter((s) => s === "cleanup").length, 2);
  // The other finalizer's owner removes it: the object goes.
  await h.client.patch(foos, "f", { metadata: { finalizers: null } });
  await h.settle();
  assert.equal(server.objects("foos").length, 0);
  assert.equal(h.outcomes.at(-1)!.result, "gone");
});

test("finalizer: concurrent writers with stale copies never clobber each other", async () => {
  await using server = fooServer();
  const client = server.client();
  const stale = seedFoo(server, "f");
  const names = Array.from({ length: 6 }, (_, i) => `w${i}.example.com/f`);
  // Every writer starts from the same stale object without finalizers.
  await Promise.all(
    names.map((name) =>
      finalizer({ client }, foos, name, structuredClone(stale), {
        apply: () => {},
        cleanup: () => {},
      })
    ),
  );
  const after = server.objects("foos")[0];
  assert.deepEqual([...after.metadata!.finalizers!].sort(), [...names].sort());
  // Now all delete concurrently, each from the same (deleting) snapshot.
  await client.delete(foos, "f");
  const deleting = (await client.get(foos, "f")) as Foo;
  await Promise.all(
    names.slice(0, 5).map((name) =>
      finalizer({ client }, foos, name, structuredClone(deleting), {
        apply: () => {},
        cleanup: () => {},
      })
    ),
  );
  assert.deepEqual(server.objects("foos")[0].metadata!.finalizers, [names[5]]);
});

test("finalizer: a name that is not domain-qualified is refused", async () => {
  await using server = fooServer();
  const foo = seedFoo(server, "f");
  await assert.rejects(
    finalizer({ client: server.client() }, foos, "cleanup", foo, {
      apply: () => {},
      cleanup: () => {},
    }),
    /domain-qualified/,
  );
});

test("events: series with a count, spam limit per object, cluster-scoped objects in default", async () => {
  await using server = fooServer();
  const clock = new VirtualClock(Date.UTC(2026, 11, 1));
  const client = server.client();
  const recorder = new EventRecorder(client, {
    reportingController: "clux.dev/foo-controller",
    reportingInstance: "test-0",
    clock,
    spamLimit: { burst: 3, refillMs: 60_000 },
  });
  const foo = seedFoo(server, "f");
  for (let i = 0; i < 3; i++) {
    await recorder.publish(foo, {
      type: "Warning",
      reason: "Invalid",
      action: "Validate",
      note: "bad",
    });
    await clock.advance(1_000);
  }
  let events = (await client.list(EVENTS_API.within("default"))).items;
  assert.equal(events.length, 1);
  assert.equal(events[0].series?.count, 3);
  assert.equal(events[0].regarding?.kind, "Foo");
  assert.equal(events[0].reportingInstance, "test-0");
  // Over the limit: dropped.
  await recorder.publish(foo, { reason: "Other", action: "Validate" });
  assert.equal(recorder.counts().dropped, 1);
  // Refilled after a minute.
  await clock.advance(60_000);
  await recorder.publish(foo, { reason: "Other", action: "Validate" });
  events = (await client.list(EVENTS_API.within("default"))).items;
  assert.equal(events.length, 2);
  // After the series window, a repeat is a new event.
  await clock.advance(400_000);
  await recorder.publish(foo, {
    type: "Warning",
    reason: "Invalid",
    action: "Validate",
    note: "bad",
  });
  assert.equal((await client.list(EVENTS_API.within("default"))).items.length, 3);
  // A cluster-scoped object: its events live in "default".
  const [ns] = server.objects("Namespace").filter((n) => n.metadata?.name === "kube-public");
  await recorder.publish(ns, { reason: "Seen", action: "Observe" });
  const nsEvents = (await client.list(EVENTS_API.within("default"))).items
    .filter((e) => e.regarding?.kind === "Namespace");
  assert.equal(nsEvents.length, 1);
  assert.equal(nsEvents[0].regarding?.namespace, undefined);
  assert.deepEqual(recorder.counts(), { created: 4, updated: 2, dropped: 1, failed: 0 });
});

test("waitFor: resolves on the change that meets the condition; times out on the clock", async () => {
  await using server = fooServer();
  const client = server.client();
  const clock = new VirtualClock();
  const cms = Api.v1ConfigMap().within("default");
  const waiting = waitFor(client, cms, "cfg", (cm) => cm?.data?.ready === "yes", {
    timeout: 60_000,
    clock,
  });
  await clock.flush();
  await client.create(cms, { metadata: { name: "cfg" }, data: { ready: "no" } });
  await clock.flush();
  await client.patch(cms, "cfg", { data: { ready: "yes" } });
  const got = await waiting;
  assert.equal(got?.data?.ready, "yes");
  // Deleted by uid.
  const uid = got!.metadata!.uid!;
  const gone = waitFor(client, cms, "cfg", conditions.deleted(uid), { timeout: 60_000, clock });
  await clock.flush();
  await client.delete(cms, "cfg");
  assert.equal(await gone, undefined);
  // Timeout, exactly when the clock says so.
  const never = waitFor(client, cms, "cfg", conditions.podRunning, { timeout: 5_000, clock });
  let settled = false;
  never.catch(() => {}).finally(() => settled = true);
  await clock.advance(4_999);
  assert.equal(settled, false);
  await clock.advance(1);
  await assert.rejects(never, (e: DOMException) => {
    assert.equal(e.name, "TimeoutError");
    assert.match(e.message, /ConfigMap default\/cfg/);
    return true;
  });
});

test("waitFor: conditions", () => {
  const crd = { status: { conditions: [{ type: "Established", status: "True" }] } };
  assert.equal(conditions.crdEstablished(crd as never), true);
  assert.equal(conditions.crdEstablished(undefined), false);
  const dep = (gen: number, observed: number, available: string) => ({
    metadata: { generation: gen },
    status: {
      observedGeneration: observed,
      conditions: [{ type: "Available", status: available }],
    },
  });
  assert.equal(conditions.deploymentAvailable(dep(2, 2, "True")), true);
  assert.equal(conditions.deploymentAvailable(dep(3, 2, "True")), false);
  assert.equal(conditions.deploymentAvailable(dep(2, 2, "False")), false);
  assert.equal(
    conditions.jobCompleted(
      { status: { conditions: [{ type: "Complete", status: "True" }] } } as never,
    ),
    true,
  );
  assert.equal(conditions.podRunning({ status: { phase: "Pending" } } as never), false);
  assert.equal(conditions.deleted("u1")({ metadata: { uid: "u2" } }), true);
  assert.equal(conditions.deleted("u1")({ metadata: { uid: "u1" } }), false);
});

test("finalizer: an object deleted while the finalizer is added is never applied", async () => {
  await using server = fooServer();
  const client = server.client();
  // Another finalizer keeps the object while it is being deleted.
  const stale = seedFoo(server, "f", ["other.io/keep"]);
  await client.delete(foos, "f");
  const steps: string[] = [];
  // The stale copy has no deletionTimestamp: the guarded add fails, the re-read shows the deletion.
  const result = await finalizer({ client }, foos, "clux.dev/cleanup", structuredClone(stale), {
    apply: () => void steps.push("apply"),
    cleanup: () => void steps.push("cleanup"),
  });
  assert.equal(result, undefined);
  assert.deepEqual(steps, []);
  assert.deepEqual(server.objects("foos")[0].metadata!.finalizers, ["other.io/keep"]);
});

test("waitFor: watch failures are retried with the watch loop's backoff, not in a tight loop", async () => {
  await using server = fooServer();
  let requests = 0;
  const client = new Client(server.config(), {
    fetch: (input, init) => {
      requests++;
      return server.fetch(input, init);
    },
    maxRetries: 0,
  });
  const clock = new VirtualClock();
  const cms = Api.v1ConfigMap().within("default");
  server.inject({
    on: ["watch", "list"],
    resource: "configmaps",
    times: 3,
    fault: { status: 500 },
  });
  const waiting = waitFor(client, cms, "cfg", (cm) => cm !== undefined, {
    timeout: 600_000,
    clock,
  });
  for (let i = 0; i < 20; i++) await clock.flush();
  // Without time passing, one failed request and nothing more.
  assert.equal(requests, 1);
  await client.create(cms, { metadata: { name: "cfg" } });
  for (let i = 0; i < 200 && requests < 10; i++) {
    if (!(await clock.tick())) await clock.flush();
  }
  const got = await waiting;
  assert.equal(got?.metadata?.name, "cfg");
  assert.ok(clock.now() >= 800, `waited ${clock.now()} ms of backoff`);
});

test("events: overlapping publishes of one series make one Event with count 2; a signal aborts", async () => {
  await using server = fooServer();
  const client = server.client();
  const recorder = new EventRecorder(client, {
    reportingController: "x.io/c",
    reportingInstance: "i",
  });
  const foo = seedFoo(server, "f");
  await Promise.all([
    recorder.publish(foo, { reason: "Same", action: "Act" }),
    recorder.publish(foo, { reason: "Same", action: "Act" }),
  ]);
  const events = (await client.list(EVENTS_API.within("default"))).items;
  assert.equal(events.length, 1);
  assert.equal(events[0].series?.count, 2);
  const aborted = AbortSignal.abort();
  await recorder.publish(foo, { reason: "Other", action: "Act" }, { signal: aborted });
  assert.equal((await client.list(EVENTS_API.within("default"))).items.length, 1);
  assert.deepEqual(recorder.counts(), { created: 1, updated: 1, dropped: 0, failed: 0 });
});
