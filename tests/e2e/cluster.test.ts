// The whole small cluster (testenv `cluster: "full"`): kube-controller-manager, kube-scheduler and
// KWOK's nodes on top of kube-apiserver + etcd. What operators rely on happens for real here:
// Deployments roll out onto nodes and pods go Running. kubectl, an independent client, checks
// every result. One cluster is shared by all the steps of this file.

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { isNotFound } from "../../errors.ts";
import { type CacheChange, Reflector } from "../../reflector.ts";
import { deployment, e2eTest, eventually, kubectl, uniqueNamespace } from "./_harness.ts";

/** The namespace whose pods have their own KWOK log file (the logs step). */
const LOGS_NS = "cluster-e2e-logs";
/** The namespace whose pods run `exec` as local commands (the exec step). */
const EXEC_NS = "cluster-e2e-exec";
/** The namespace whose pods forward their ports to a loopback server (the port-forward step). */
const FORWARD_NS = "cluster-e2e-forward";

/** A free loopback port, for the server the port-forward step starts (KWOK's config is fixed). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}
const forwardTarget = { address: "127.0.0.1", port: freePort() };

/** Creates a namespace and a pod in it, and waits until the pod runs. */
async function runningPod(client: Client, namespace: string, name: string): Promise<void> {
  await client.create(Api.v1Namespace(), { metadata: { name: namespace } });
  const pods = Api.v1Pod().within(namespace);
  await client.create(pods, {
    metadata: { name },
    spec: { containers: [{ name: "main", image: "registry.invalid/app:1" }] },
  });
  await eventually(`${namespace}/${name} runs`, async () => {
    assert.equal(((await client.get(pods, name)) as PodView).status?.phase, "Running");
  });
}

/** The parts of a Pod these tests read. */
interface PodView {
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

/** The parts of a Node these tests read. */
interface NodeView {
  status?: {
    conditions?: { type: string; status: string }[];
    addresses?: { type: string; address: string }[];
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  };
}

e2eTest("cluster: nodes, scheduling and pods running on KWOK", async ({ cp, client, t }) => {
  const kube = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
  const kwok = cp.kwok!;
  const deletedNs = uniqueNamespace("ns-delete");
  assert.deepEqual(cp.components, [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
  ]);

  await t.step(
    "the nodes are Ready, address the kubelet on loopback, renew their Lease",
    async () => {
      const nodes = await client.list(Api.v1Node(), { labelSelector: "type=kwok" });
      assert.deepEqual(nodes.items.map((n) => n.metadata?.name).sort(), kwok.nodes);
      const kubeletPort = Number(new URL(kwok.url).port);
      for (const node of nodes.items as NodeView[]) {
        const ready = node.status?.conditions?.find((c) => c.type === "Ready");
        assert.equal(ready?.status, "True");
        assert.deepEqual(node.status?.addresses, [{ type: "InternalIP", address: "127.0.0.1" }]);
        assert.equal(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, kubeletPort);
      }
      const ready = await kube(
        "get",
        "nodes",
        "-l",
        "type=kwok",
        "-o",
        'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
      );
      assert.deepEqual(ready.trim().split(" ").sort(), kwok.nodes.map((n) => `${n}=True`));
      await eventually("a Lease per node in kube-node-lease", async () => {
        const leases = await kube("get", "leases", "-n", "kube-node-lease", "-o", "name");
        for (const node of kwok.nodes) {
          assert.match(leases, new RegExp(`^lease.coordination.k8s.io/${node}$`, "m"));
        }
      });
    },
  );

  await t.step(
    "a namespace with objects starts deleting (the last step sees it gone)",
    async () => {
      await client.create(Api.v1Namespace(), { metadata: { name: deletedNs } });
      await client.create(Api.v1ConfigMap().within(deletedNs), { metadata: { name: "settings" } });
      await client.create(
        Api.appsV1Deployment().within(deletedNs),
        deployment("web", 2, "registry.invalid/web:1"),
      );
      await eventually("2 pods run", async () => {
        const list = await client.list(Api.v1Pod().within(deletedNs));
        assert.equal(
          list.items.filter((p) => (p as PodView).status?.phase === "Running").length,
          2,
        );
      });
      await client.delete(Api.v1Namespace(), deletedNs);
      assert.equal(
        await kube("get", "namespace", deletedNs, "-o", "jsonpath={.status.phase}"),
        "Terminating",
      );
    },
  );

  await t.step("a Deployment's pods are scheduled onto the nodes and go Running", async () => {
    const ns = uniqueNamespace("deploy");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    const deployments = Api.appsV1Deployment().within(ns);
    await client.create(deployments, deployment("web", 3, "registry.invalid/web:1"));
    const pods = Api.v1Pod().within(ns);
    await eventually("3 Running pods on KWOK nodes", async () => {
      const list = await client.list(pods, { labelSelector: "app=web" });
      assert.equal(list.items.length, 3);
      for (const pod of list.items as PodView[]) {
        assert.equal(pod.status?.phase, "Running");
        assert.ok(kwok.nodes.includes(pod.spec?.nodeName ?? ""), `node ${pod.spec?.nodeName}`);
      }
    });
    const mine = await client.list(pods, { labelSelector: "app=web" });
    const expected = mine.items.map((p) =>
      `${p.metadata?.name}:${(p as PodView).spec?.nodeName}:Running`
    ).sort();
    const seen = await kube(
      "get",
      "pods",
      "-n",
      ns,
      "-l",
      "app=web",
      "-o",
      "jsonpath={range .items[*]}{.metadata.name}:{.spec.nodeName}:{.status.phase} {end}",
    );
    assert.deepEqual(seen.trim().split(" ").sort(), expected);
    await eventually("the Deployment reports 3 ready replicas", async () => {
      assert.equal(
        await kube("get", "deployment", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}"),
        "3",
      );
    });
    await client.delete(Api.v1Namespace(), ns);
  });

  await t.step("a Reflector of pods follows a scale-up and a scale-down exactly", async () => {
    const ns = uniqueNamespace("scale");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    const deployments = Api.appsV1Deployment().within(ns);
    await client.create(deployments, deployment("web", 1, "registry.invalid/web:1"));
    const controller = new AbortController();
    const { signal } = controller;
    const reflector = new Reflector(client, Api.v1Pod().within(ns)).labels("app=web");
    const changes: CacheChange<KubeObject>[] = [];
    const stream = reflector.changes({ signal });
    const collecting = (async () => {
      for await (const change of stream) changes.push(change);
    })();
    const running = reflector.run({ signal });
    try {
      await reflector.ready;
      /** Waits until the cache holds `n` Running pods, the very ones (and versions) kubectl sees. */
      const settled = (n: number) =>
        eventually(`the cache holds the ${n} Running pods kubectl sees`, async () => {
          const cached = [...reflector.read().values()];
          assert.equal(cached.length, n);
          for (const pod of cached) assert.equal((pod as PodView).status?.phase, "Running");
          const server = await kube(
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}@{.metadata.resourceVersion} {end}",
          );
          assert.deepEqual(
            cached.map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`).sort(),
            server.trim().split(" ").filter(Boolean).sort(),
          );
        });
      await settled(1);
      const first = [...reflector.read().values()].map((p) => p.metadata?.name);
      changes.length = 0;

      await client.patchScale(deployments, "web", { spec: { replicas: 5 } });
      await settled(5);
      const added = changes.filter((c) => c.type === "ADDED").map((c) => c.object.metadata?.name);
      assert.equal(added.length, 4, "4 pods added");
      assert.ok(!added.some((name) => first.includes(name)));
      for (const name of added) {
        // Each new pod was seen Pending (created, then bound to a node) before Running.
        const phases = changes.filter((c) => c.object.metadata?.name === name)
          .map((c) => (c.object as PodView).status?.phase);
        assert.equal(phases[0], "Pending", `${name}: ${phases}`);
        assert.equal(phases.at(-1), "Running", `${name}: ${phases}`);
      }
      const before = new Set(reflector.read().keys());
      changes.length = 0;

      await client.patchScale(deployments, "web", { spec: { replicas: 2 } });
      await settled(2);
      const after = new Set(reflector.read().keys());
      const deleted = changes.filter((c) => c.type === "DELETED");
      assert.equal(deleted.length, 3, "3 pods deleted");
      for (const change of deleted) {
        const key = `${ns}/${change.object.metadata?.name}`;
        assert.ok(before.has(key) && !after.has(key), key);
      }
      assert.equal(changes.filter((c) => c.type === "ADDED").length, 0);
    } finally {
      controller.abort();
      await running;
      await collecting;
    }
    await client.delete(Api.v1Namespace(), ns);
  });

  await t.step("garbage collection: background, foreground and orphan propagation", async () => {
    const ns = uniqueNamespace("gc");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    const deployments = Api.appsV1Deployment().within(ns);
    const replicaSets = Api.appsV1ReplicaSet().within(ns);
    const configMaps = Api.v1ConfigMap().within(ns);
    const pods = Api.v1Pod().within(ns);
    const names = async (what: string, selector: string) =>
      (await kube("get", what, "-n", ns, "-l", selector, "-o", "name")).trim();

    // Background: the owner goes at once, its ReplicaSet and pods after it.
    await client.create(deployments, deployment("bg", 2, "registry.invalid/web:1"));
    await eventually("bg has 2 pods", async () => {
      assert.equal((await client.list(pods, { labelSelector: "app=bg" })).items.length, 2);
    });
    await client.delete(deployments, "bg", { propagationPolicy: "Background" });
    await eventually("bg's ReplicaSet and pods are collected", async () => {
      assert.equal(await names("replicasets,pods", "app=bg"), "");
    }, 60_000);

    // Orphan: the dependants stay, without the owner reference.
    await client.create(deployments, deployment("orphan", 1, "registry.invalid/web:1"));
    await eventually("orphan's ReplicaSet exists", async () => {
      assert.equal(
        (await client.list(replicaSets, { labelSelector: "app=orphan" })).items.length,
        1,
      );
    });
    await client.delete(deployments, "orphan", { propagationPolicy: "Orphan" });
    await eventually("orphan's ReplicaSet is released", async () => {
      await assert.rejects(client.get(deployments, "orphan"), isNotFound);
      const [rs] = (await client.list(replicaSets, { labelSelector: "app=orphan" })).items;
      assert.ok(rs, "the ReplicaSet is kept");
      assert.deepEqual(rs.metadata?.ownerReferences ?? [], []);
    }, 60_000);
    assert.match(await names("replicasets", "app=orphan"), /^replicaset\.apps\/orphan-/);
    assert.match(await names("pods", "app=orphan"), /^pod\/orphan-/);

    // Foreground: the owner waits (finalizer foregroundDeletion) until its dependants are gone.
    // A finalizer of the test holds one dependant, so the wait can be seen.
    const owner = await client.create(configMaps, {
      metadata: { name: "owner", labels: { gc: "fg" } },
    });
    const ref = {
      apiVersion: "v1",
      kind: "ConfigMap",
      name: "owner",
      uid: owner.metadata!.uid!,
      blockOwnerDeletion: true,
    };
    const hold = "e2e.denokube.dev/hold";
    await client.create(configMaps, {
      metadata: { name: "held", labels: { gc: "fg" }, ownerReferences: [ref], finalizers: [hold] },
    });
    await client.create(configMaps, {
      metadata: { name: "free", labels: { gc: "fg" }, ownerReferences: [ref] },
    });
    await client.delete(configMaps, "owner", { propagationPolicy: "Foreground" });
    await eventually("the owner waits for the held dependant", async () => {
      const got = await client.get(configMaps, "owner");
      assert.ok(got.metadata?.deletionTimestamp);
      assert.deepEqual(got.metadata?.finalizers, ["foregroundDeletion"]);
      await assert.rejects(client.get(configMaps, "free"), isNotFound);
      assert.ok((await client.get(configMaps, "held")).metadata?.deletionTimestamp);
    }, 60_000);
    assert.equal(
      await names("configmaps", "gc=fg"),
      "configmap/held\nconfigmap/owner",
    );
    await client.patch(configMaps, "held", { metadata: { finalizers: null } });
    await eventually("the owner goes once its dependants are gone", async () => {
      assert.equal(await names("configmaps", "gc=fg"), "");
    }, 60_000);
    await client.delete(Api.v1Namespace(), ns);
  });

  await t.step("a Job runs its pod to completion", async () => {
    const ns = uniqueNamespace("job");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    await client.create(Api.batchV1Job().within(ns), {
      metadata: { name: "once" },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: "Never",
            containers: [{ name: "main", image: "registry.invalid/job:1" }],
          },
        },
      },
    });
    await kube("wait", "-n", ns, "--for=condition=Complete", "--timeout=60s", "job/once");
    const job = await client.get(Api.batchV1Job().within(ns), "once") as KubeObject & {
      status?: { succeeded?: number };
    };
    assert.equal(job.status?.succeeded, 1);
    const phases = await kube(
      "get",
      "pods",
      "-n",
      ns,
      "-l",
      "job-name=once",
      "-o",
      "jsonpath={.items[*].status.phase}",
    );
    assert.equal(phases, "Succeeded");
    await client.delete(Api.v1Namespace(), ns);
  });

  await t.step(
    "client.logs, followLogs and kubectl attach read a KWOK container's log",
    async () => {
      await runningPod(client, LOGS_NS, "talker");
      const target = { namespace: LOGS_NS, pod: "talker" };
      assert.notEqual(kwok.logFile(LOGS_NS, "talker"), kwok.logFile("default", "other"));
      await kwok.appendLog(target, ["hello", "from kwok"]);
      assert.equal(await client.logs("talker", { namespace: LOGS_NS }), "hello\nfrom kwok\n");
      assert.equal(
        await client.logs("talker", { namespace: LOGS_NS, tailLines: 1 }),
        "from kwok\n",
      );
      assert.equal(await kube("logs", "-n", LOGS_NS, "talker"), "hello\nfrom kwok\n");

      const controller = new AbortController();
      const lines = client.followLogs("talker", { namespace: LOGS_NS, signal: controller.signal });
      try {
        assert.deepEqual((await lines.next()).value, "hello");
        assert.deepEqual((await lines.next()).value, "from kwok");
        await kwok.appendLog(target, ["a line written while following"]);
        assert.deepEqual((await lines.next()).value, "a line written while following");
      } finally {
        await lines.return(undefined);
        controller.abort();
      }

      // `kubectl attach` shows what the container writes from now on (the same file).
      const attach = new Deno.Command("kubectl", {
        args: ["--kubeconfig", cp.kubeconfigPath, "attach", "-n", LOGS_NS, "talker"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let said = "";
      const collecting = (async () => {
        for await (const text of attach.stdout.pipeThrough(new TextDecoderStream())) said += text;
      })();
      try {
        // Appended until seen: attach reads from the end of the file, a moment after it starts.
        await eventually("kubectl attach shows a new line", async () => {
          await kwok.appendLog(target, ["written while attached"]);
          await new Promise((resolve) => setTimeout(resolve, 200));
          assert.match(said, /written while attached/);
        }, 20_000);
        assert.doesNotMatch(said, /hello/, "attach does not replay the old lines");
      } finally {
        attach.kill("SIGTERM");
        await attach.status;
        await collecting;
        await attach.stderr.cancel();
      }
      await client.delete(Api.v1Namespace(), LOGS_NS);
    },
  );

  await t.step("kubectl exec runs a local command for the selected pods only", async () => {
    await runningPod(client, EXEC_NS, "shell");
    const workDir = kwok.execWorkDir(EXEC_NS, "shell")!;
    assert.ok(workDir, "exec is enabled for the namespace");
    assert.equal(kwok.execWorkDir("default", "shell"), undefined);
    const out = await kube("exec", "-n", EXEC_NS, "shell", "--", "sh", "-c", "pwd; echo $GREETING");
    assert.equal(out, `${await Deno.realPath(workDir)}\nhello\n`);
    // A pod outside the rule's namespace: KWOK refuses, the apiserver reports the failure.
    await runningPod(client, `${EXEC_NS}-not`, "shell");
    await assert.rejects(kube("exec", "-n", `${EXEC_NS}-not`, "shell", "--", "pwd"));
    await client.delete(Api.v1Namespace(), EXEC_NS);
    await client.delete(Api.v1Namespace(), `${EXEC_NS}-not`);
  });

  await t.step("kubectl port-forward reaches the loopback server of the rule", async () => {
    await using server = Deno.serve(
      { hostname: forwardTarget.address, port: forwardTarget.port, onListen() {} },
      () => new Response("hello through port-forward"),
    );
    await runningPod(client, FORWARD_NS, "web");
    const local = freePort();
    const child = new Deno.Command("kubectl", {
      args: [
        "--kubeconfig",
        cp.kubeconfigPath,
        "port-forward",
        "-n",
        FORWARD_NS,
        "pod/web",
        `${local}:8080`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let said = "";
      while (!said.includes("Forwarding from")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`kubectl port-forward ended: ${said}`);
        said += value;
      }
      reader.releaseLock();
      const res = await fetch(`http://127.0.0.1:${local}/`);
      assert.equal(await res.text(), "hello through port-forward");
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel();
    }
    await server.shutdown();
    await client.delete(Api.v1Namespace(), FORWARD_NS);
  });

  await t.step("the namespace with objects has finished deleting", async () => {
    // The namespace controller empties it, then removes it (it waits at least 5 s by design: the
    // steps in between use that time).
    await eventually("the namespace is gone", async () => {
      await assert.rejects(client.get(Api.v1Namespace(), deletedNs), isNotFound);
    }, 60_000);
    const out = await kube("get", "namespace", deletedNs, "--ignore-not-found", "-o", "name");
    assert.equal(out.trim(), "");
    const left = await kube("get", "all", "-n", deletedNs, "-o", "name");
    assert.equal(left.trim(), "");
  });
}, {
  cluster: "full",
  kwok: {
    logs: [{ namespace: LOGS_NS }],
    exec: [{ namespace: EXEC_NS, env: { GREETING: "hello" } }],
    portForward: [{ namespace: FORWARD_NS, target: forwardTarget }],
  },
});
