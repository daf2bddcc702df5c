// The controller runtime on the real, full cluster (kube-apiserver, etcd, controller-manager,
// scheduler, KWOK nodes): the Foo operator of examples/foo_operator.ts end to end, the finalizer
// helper with concurrent writers, the event recorder, and a forbidden watch. kubectl, an
// independent client, checks each result. One cluster is shared by the steps.

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  Api,
  Client,
  conditions,
  Config,
  Controller,
  EventRecorder,
  finalizer,
  type KubeObject,
  type ReconcileOutcome,
  waitFor,
} from "../../mod.ts";
import { type Foo, fooOperator, FOOS } from "../../examples/foo_operator.ts";
import { e2eTest, eventually, kubectl, uniqueNamespace } from "./_harness.ts";

const crds = Api.dynamic({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});

interface EventView {
  type?: string;
  reason?: string;
  note?: string;
  series?: { count: number };
  regarding?: { kind?: string; name?: string; namespace?: string };
  reportingController?: string;
}

const NOBODY_TOKEN = "nobody-token-e2e-controller";

e2eTest("controller: the Foo operator on the full cluster", async ({ cp, client, t }) => {
  const kube = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
  const ns = uniqueNamespace("foo-operator");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const crd = parseYaml(
    await Deno.readTextFile(new URL("../../examples/foo.yaml", import.meta.url)),
  );
  await client.apply(crds, crd, { fieldManager: "e2e" });
  await waitFor(client, crds, "foos.clux.dev", conditions.crdEstablished, { timeout: 60_000 });
  const foos = FOOS.within(ns);
  // The CRD's storage may answer 429 for a moment after Established; the client retries that.
  await client.list(foos);

  const cleaned: string[] = [];
  const operator = fooOperator(client, {
    namespace: ns,
    cleanup: (foo) => void cleaned.push(foo.metadata!.name!),
    backoff: { initialMs: 200, maxMs: 2_000 },
  });
  const outcomes: ReconcileOutcome[] = [];
  operator.onOutcome((o) => outcomes.push(o));
  const stop = new AbortController();
  const running = operator.run(stop.signal);
  running.catch(() => {});

  const fooJson = async () => JSON.parse(await kube("get", "-n", ns, "foo", "baz", "-o", "json"));
  const events = async (): Promise<EventView[]> =>
    JSON.parse(await kube("get", "events.events.k8s.io", "-n", ns, "-o", "json")).items;

  try {
    await t.step(
      "a Foo gets a Deployment it owns; its pods run on KWOK nodes; status ready",
      async () => {
        await client.create(foos, {
          metadata: { name: "baz" },
          spec: { name: "baz", info: "e2e", replicas: 2 },
        });
        await eventually("Foo baz ready with 2 pods", async () => {
          const foo = await fooJson();
          assert.equal(foo.status?.readyReplicas, 2);
          assert.equal(foo.status?.observedGeneration, foo.metadata.generation);
          const ready = foo.status.conditions.find((c: { type: string }) => c.type === "Ready");
          assert.equal(ready?.status, "True");
        }, 60_000);
        const dep = JSON.parse(await kube("get", "-n", ns, "deployment", "baz", "-o", "json"));
        const owner = dep.metadata.ownerReferences[0];
        assert.equal(owner.kind, "Foo");
        assert.equal(owner.controller, true);
        assert.equal(dep.spec.replicas, 2);
        const pods = JSON.parse(
          await kube("get", "-n", ns, "pods", "-l", "clux.dev/foo=baz", "-o", "json"),
        ).items;
        assert.equal(pods.length, 2);
        for (const pod of pods) {
          assert.equal(pod.status.phase, "Running");
          assert.match(pod.spec.nodeName, /^kwok-node-/);
        }
        const foo = await fooJson();
        assert.deepEqual(foo.metadata.finalizers, ["clux.dev/cleanup"]);
        const applied = (await events()).filter((e) => e.reason === "Applied");
        assert.equal(applied.length, 1);
        assert.equal(applied[0].regarding?.name, "baz");
        assert.equal(applied[0].reportingController, "foo-operator");
        // kubectl events shows it too.
        assert.match(await kube("events", "-n", ns, "--for", "foo/baz"), /Applied/);
      },
    );

    await t.step("scaling the Foo scales the Deployment; status follows", async () => {
      await client.patch(foos, "baz", { spec: { replicas: 3 } });
      await eventually("Foo baz ready with 3 pods", async () => {
        const foo = await fooJson();
        assert.equal(foo.status?.readyReplicas, 3);
        assert.equal(foo.status?.observedGeneration, 2);
      }, 60_000);
      const dep = JSON.parse(await kube("get", "-n", ns, "deployment", "baz", "-o", "json"));
      assert.equal(dep.spec.replicas, 3);
    });

    await t.step(
      "a spec the apiserver refuses: Warning event, condition, retries with backoff",
      async () => {
        const before = outcomes.length;
        await client.patch(foos, "baz", { spec: { name: "Bad Name!" } });
        await eventually("ApplyFailed event and Ready=False", async () => {
          const warning = (await events()).find((e) => e.reason === "ApplyFailed");
          assert.ok(warning, "ApplyFailed event");
          assert.equal(warning.type, "Warning");
          assert.match(warning.note ?? "", /Bad Name!/);
          const foo = await fooJson();
          const ready = foo.status.conditions.find((c: { type: string }) => c.type === "Ready");
          assert.equal(ready.status, "False");
          assert.equal(ready.reason, "ApplyFailed");
          // Retried with growing delays: at least three failed attempts.
          const errors = outcomes.slice(before).filter((o) => o.result === "error");
          assert.ok(errors.length >= 3, `${errors.length} failed attempts`);
          assert.deepEqual(errors.slice(0, 3).map((o) => o.attempt), [1, 2, 3]);
          const delays = errors.slice(0, 3).map((o) => o.requeueAfterMs!);
          assert.ok(delays[0] < delays[1] && delays[1] < delays[2], `delays ${delays}`);
        }, 30_000);
        // The series counts the repeats.
        const warning = (await events()).find((e) => e.reason === "ApplyFailed")!;
        assert.ok((warning.series?.count ?? 1) >= 2);
        await client.patch(foos, "baz", { spec: { name: "baz" } });
        await eventually("ready again", async () => {
          const foo = await fooJson();
          const ready = foo.status.conditions.find((c: { type: string }) => c.type === "Ready");
          assert.equal(ready.status, "True");
        }, 60_000);
      },
    );

    await t.step(
      "too many replicas: a terminal error, not retried until the Foo changes",
      async () => {
        await client.patch(foos, "baz", { spec: { replicas: 50 } });
        await eventually("terminal outcome", () => {
          assert.equal(outcomes.at(-1)?.result, "terminal");
        }, 30_000);
        const count = outcomes.length;
        const invalid = (await events()).find((e) => e.reason === "InvalidSpec");
        assert.match(invalid?.note ?? "", /more than the 10/);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        assert.equal(outcomes.length, count, "no retries of a terminal error");
        await client.patch(foos, "baz", { spec: { replicas: 1 } });
        await eventually("ready with 1", async () => {
          const foo = await fooJson();
          assert.equal(foo.status?.readyReplicas, 1);
        }, 60_000);
      },
    );

    await t.step(
      "deleting the Foo: cleanup, finalizer removed, Deployment garbage-collected",
      async () => {
        await kube("delete", "-n", ns, "foo", "baz", "--wait=false");
        await eventually("Foo gone", async () => {
          const out = await kube("get", "-n", ns, "foos", "-o", "name");
          assert.equal(out.trim(), "");
        }, 30_000);
        assert.deepEqual(cleaned, ["baz"]);
        await eventually("Deployment collected", async () => {
          const out = await kube("get", "-n", ns, "deployments", "-o", "name");
          assert.equal(out.trim(), "");
        }, 60_000);
        assert.ok((await events()).some((e) => e.reason === "CleanedUp"));
      },
    );
  } finally {
    stop.abort();
    await running;
  }
  assert.equal(operator.stats().inFlight, 0);

  await t.step(
    "finalizer(): concurrent writers with stale copies keep each other's entries",
    async () => {
      const cms = Api.v1ConfigMap().within(ns);
      const stale = await client.create(cms, { metadata: { name: "shared" } });
      const names = Array.from({ length: 6 }, (_, i) => `w${i}.example.com/f`);
      await Promise.all(
        names.map((name) =>
          finalizer({ client }, cms, name, structuredClone(stale), {
            apply: () => {},
            cleanup: () => {},
          })
        ),
      );
      const got = JSON.parse(await kube("get", "-n", ns, "configmap", "shared", "-o", "json"));
      assert.deepEqual([...got.metadata.finalizers].sort(), [...names].sort());
      await client.delete(cms, "shared");
      const deleting = await client.get(cms, "shared");
      await Promise.all(
        names.slice(1).map((name) =>
          finalizer({ client }, cms, name, structuredClone(deleting), {
            apply: () => {},
            cleanup: () => {},
          })
        ),
      );
      const left = JSON.parse(await kube("get", "-n", ns, "configmap", "shared", "-o", "json"));
      assert.deepEqual(left.metadata.finalizers, [names[0]]);
      await finalizer({ client }, cms, names[0], left, { apply: () => {}, cleanup: () => {} });
      await waitFor(client, cms, "shared", conditions.deleted(left.metadata.uid), {
        timeout: 10_000,
      });
    },
  );

  await t.step("events about a cluster-scoped object land in default; series counted", async () => {
    const recorder = new EventRecorder(client, {
      reportingController: "example.com/e2e",
      reportingInstance: "e2e-0",
    });
    const node = (await client.list(Api.v1Node())).items[0] as KubeObject;
    for (let i = 0; i < 3; i++) {
      await recorder.publish(node, { reason: "Checked", action: "Check", note: "disk ok" });
    }
    const list: EventView[] = JSON.parse(
      await kube("get", "events.events.k8s.io", "-n", "default", "-o", "json"),
    ).items;
    const mine = list.filter((e) => e.reportingController === "example.com/e2e");
    assert.equal(mine.length, 1);
    assert.equal(mine[0].regarding?.kind, "Node");
    assert.equal(mine[0].regarding?.namespace, undefined);
    assert.equal(mine[0].series?.count, 3);
    assert.deepEqual(recorder.counts(), { created: 1, updated: 2, dropped: 0, failed: 0 });
  });

  await t.step(
    "read your own writes on the real server: each run sees the previous run's write",
    async () => {
      const cms = Api.v1ConfigMap().within(ns);
      await client.create(cms, { metadata: { name: "counter" }, data: { count: "0" } });
      const seen: number[] = [];
      let done!: () => void;
      const finished = new Promise<void>((resolve) => done = resolve);
      const counter = new Controller(client, cms, async (cm, ctx) => {
        if (cm.metadata?.name !== "counter") return;
        const count = Number(cm.data?.count ?? 0);
        seen.push(count);
        if (count >= 10) {
          done();
          return;
        }
        // Read from the cache, write through ctx.client, run again at once.
        await ctx.client.patch(cms, "counter", { data: { count: String(count + 1) } });
        return { requeueAfter: 0 };
      }, { name: "counter" });
      const stopCounter = new AbortController();
      const run = counter.run(stopCounter.signal);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([finished, new Promise((r) => timer = setTimeout(r, 60_000))]);
      clearTimeout(timer);
      stopCounter.abort();
      await run;
      // Every value once, in order: no run started from a cache older than its own last write.
      assert.deepEqual(seen.slice(0, 11), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(counter.stats().readYourWritesTimeouts, 0);
      const got = JSON.parse(await kube("get", "-n", ns, "configmap", "counter", "-o", "json"));
      assert.equal(got.data.count, "10");
    },
  );

  await t.step("a forbidden watch: the controller stops with one clear error", async () => {
    const nobody = new Client(Config.fromUrl(cp.server, {
      credentials: { token: NOBODY_TOKEN },
      certificateAuthority: await Deno.readTextFile(cp.caPath),
    }));
    try {
      const controller = new Controller(nobody, FOOS.within(ns), (_foo: Foo) => {});
      const error = await controller.run().then(() => undefined, (e) => e);
      assert.ok(error instanceof Error);
      assert.match(error.message, /cannot list\/watch foos\.clux\.dev in namespace /);
      assert.match(error.message, /forbidden/);
      assert.match(error.message, /verbs: \["get", "list", "watch"\]/);
    } finally {
      nobody.close();
    }
  });
}, {
  cluster: "full",
  extraTokens: [{ token: NOBODY_TOKEN, user: "nobody" }],
});
