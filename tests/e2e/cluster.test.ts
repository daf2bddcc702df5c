// The whole small cluster (testenv `cluster: "full"`): kube-controller-manager, kube-scheduler and
// KWOK's nodes on top of kube-apiserver + etcd. What operators rely on happens for real here:
// Deployments roll out onto nodes and pods go Running. kubectl, an independent client, checks
// every result. One cluster is shared by all the steps of this file.

import assert from "node:assert/strict";
import { Api, type KubeObject } from "../../api.ts";
import { e2eTest, eventually, kubectl, uniqueNamespace } from "./_harness.ts";

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

function deployment(name: string, replicas: number): KubeObject {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "main", image: "registry.invalid/web:1" }] },
      },
    },
  } as KubeObject;
}

e2eTest("cluster: nodes, scheduling and pods running on KWOK", async ({ cp, client, t }) => {
  const kube = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
  const kwok = cp.kwok!;
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

  await t.step("a Deployment's pods are scheduled onto the nodes and go Running", async () => {
    const ns = uniqueNamespace("deploy");
    await client.create(Api.v1Namespace(), { metadata: { name: ns } });
    const deployments = Api.appsV1Deployment().within(ns);
    await client.create(deployments, deployment("web", 3));
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
}, { cluster: "full" });
