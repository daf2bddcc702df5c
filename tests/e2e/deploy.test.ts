// The Foo operator's deployment manifests (examples/deploy/foo-operator.yaml) against the real
// API server: accepted by a server-side dry run; the RBAC grants exactly what the operator uses
// (`kubectl auth can-i --as` both ways), and the operator, run as its ServiceAccount, works.

import assert from "node:assert/strict";
import { FOOS } from "../../examples/foo_operator.ts";
import { e2eTest, kubectl } from "./_harness.ts";

const SA = "system:serviceaccount:foo-system:foo-operator";
const MANIFEST = new URL("../../examples/deploy/foo-operator.yaml", import.meta.url).pathname;
const CRD = new URL("../../examples/foo.yaml", import.meta.url).pathname;

/** [verb, resource, namespace or "" for all, expected]: what the operator does, and more. */
const ACCESS: [string, string, string, boolean][] = [
  // What it uses.
  ["list", "foos.clux.dev", "", true],
  ["watch", "foos.clux.dev", "", true],
  ["get", "foos.clux.dev", "demo", true],
  ["patch", "foos.clux.dev", "demo", true],
  ["patch", "foos.clux.dev --subresource=status", "demo", true],
  ["list", "deployments.apps", "", true],
  ["watch", "deployments.apps", "", true],
  ["patch", "deployments.apps", "demo", true],
  ["create", "deployments.apps", "demo", true],
  ["create", "events.events.k8s.io", "demo", true],
  ["patch", "events.events.k8s.io", "demo", true],
  ["create", "leases.coordination.k8s.io", "foo-system", true],
  ["get", "leases.coordination.k8s.io/foo-operator", "foo-system", true],
  ["update", "leases.coordination.k8s.io/foo-operator", "foo-system", true],
  // Nothing more.
  ["update", "foos.clux.dev", "demo", false],
  ["delete", "foos.clux.dev", "demo", false],
  ["create", "foos.clux.dev", "demo", false],
  ["update", "foos.clux.dev --subresource=status", "demo", false],
  ["get", "foos.clux.dev --subresource=status", "demo", false],
  ["get", "deployments.apps", "demo", false],
  ["update", "deployments.apps", "demo", false],
  ["delete", "deployments.apps", "demo", false],
  ["patch", "deployments.apps --subresource=scale", "demo", false],
  ["get", "leases.coordination.k8s.io/kube-controller-manager", "kube-system", false],
  ["update", "leases.coordination.k8s.io/other", "foo-system", false],
  ["delete", "leases.coordination.k8s.io/foo-operator", "foo-system", false],
  ["create", "leases.coordination.k8s.io", "demo", false],
  ["list", "leases.coordination.k8s.io", "foo-system", false],
  ["watch", "leases.coordination.k8s.io", "foo-system", false],
  ["create", "events", "demo", false],
  ["list", "events.events.k8s.io", "demo", false],
  ["delete", "events.events.k8s.io", "demo", false],
  ["get", "secrets", "foo-system", false],
  ["list", "pods", "demo", false],
  ["create", "pods", "demo", false],
  ["list", "configmaps", "demo", false],
  ["create", "customresourcedefinitions.apiextensions.k8s.io", "", false],
  ["create", "clusterrolebindings.rbac.authorization.k8s.io", "", false],
];

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

e2eTest(
  "deploy: the Foo operator's manifests, its least-privilege RBAC, run as its ServiceAccount",
  async ({ cp, client, t }) => {
    const k = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
    await k("apply", "-f", CRD);
    await k("wait", "--for", "condition=established", "crd/foos.clux.dev", "--timeout=60s");
    await k("create", "namespace", "demo");

    await t.step("kubectl apply --dry-run=server accepts every object", async () => {
      // The namespace must exist for the dry run of the objects in it.
      await k("create", "namespace", "foo-system");
      const out = await k("apply", "--dry-run=server", "-f", MANIFEST);
      for (
        const object of [
          "namespace/foo-system",
          "serviceaccount/foo-operator",
          "clusterrole.rbac.authorization.k8s.io/foo-operator",
          "clusterrolebinding.rbac.authorization.k8s.io/foo-operator",
          "role.rbac.authorization.k8s.io/foo-operator-leader-election",
          "rolebinding.rbac.authorization.k8s.io/foo-operator-leader-election",
          "deployment.apps/foo-operator",
        ]
      ) {
        assert.match(
          out,
          new RegExp(`^${object.replace(/\./g, "\\.")} .*\\(server dry run\\)$`, "m"),
        );
      }
      const deployment = JSON.parse(
        await k("apply", "--dry-run=server", "-f", MANIFEST, "-o", "json"),
      ).items.find((o: { kind: string }) => o.kind === "Deployment");
      assert.equal(deployment.spec.replicas, 3);
      const container = deployment.spec.template.spec.containers[0];
      assert.equal(container.livenessProbe.httpGet.path, "/healthz");
      assert.equal(container.readinessProbe.httpGet.path, "/readyz");
      assert.equal(deployment.spec.template.spec.serviceAccountName, "foo-operator");
    });

    await t.step(
      "kubectl auth can-i --as the ServiceAccount: what it uses, and nothing more",
      async () => {
        await k("apply", "-f", MANIFEST);
        const wrong: string[] = [];
        await Promise.all(ACCESS.map(async ([verb, resource, namespace, expected]) => {
          const args = ["auth", "can-i", verb, ...resource.split(" "), "--as", SA];
          args.push(...(namespace ? ["-n", namespace] : ["--all-namespaces"]));
          const out = await new Deno.Command("kubectl", {
            args: ["--kubeconfig", cp.kubeconfigPath, ...args],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const answer = new TextDecoder().decode(out.stdout).trim();
          if ((answer === "yes") !== expected) {
            wrong.push(`${verb} ${resource} in ${namespace || "all namespaces"}: ${answer}`);
          }
        }));
        assert.deepEqual(wrong, []);
      },
    );

    await t.step(
      "the operator, run as the ServiceAccount, reconciles a Foo and hands over on SIGTERM",
      async () => {
        const config = JSON.parse(await Deno.readTextFile(cp.kubeconfigPath));
        config.users[0].user.as = SA;
        const kubeconfig = await Deno.makeTempFile({ prefix: "kubeconfig-sa-" });
        await Deno.writeTextFile(kubeconfig, JSON.stringify(config));
        const port = freePort();
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL("../../examples/deploy/foo_operator.ts", import.meta.url).pathname,
          ],
          env: {
            KUBECONFIG: kubeconfig,
            POD_NAME: "foo-operator-test",
            POD_NAMESPACE: "foo-system",
            METRICS_PORT: String(port),
            METRICS_ADDRESS: "127.0.0.1",
          },
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const kill = () => {
          try {
            child.kill("SIGTERM");
          } catch {
            // exited already
          }
        };
        const output = Promise.all([
          new Response(child.stdout).text(),
          new Response(child.stderr).text(),
        ]);
        try {
          const foos = FOOS.within("demo");
          await client.create(foos, {
            metadata: { name: "baz" },
            spec: { name: "baz", info: "ok", replicas: 2 },
          });
          const deadline = Date.now() + 60_000; // a loaded machine starts `deno` slowly
          let observed: unknown;
          while (Date.now() < deadline) {
            observed = (await client.get(foos, "baz")).status?.observedGeneration;
            if (observed === 1) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.equal(observed, 1, "the operator wrote the Foo's status");
          const deployment = JSON.parse(
            await k("get", "deployment", "baz", "-n", "demo", "-o", "json"),
          );
          assert.equal(deployment.spec.replicas, 2);
          assert.equal(deployment.metadata.ownerReferences[0].name, "baz");
          // The Event follows the status write; kubectl reads it back.
          let recorded = false;
          while (!recorded && Date.now() < deadline) {
            const events = JSON.parse(
              await k("get", "events.events.k8s.io", "-n", "demo", "-o", "json"),
            );
            recorded = events.items.some((
              e: { regarding?: { name?: string }; reason?: string },
            ) => e.regarding?.name === "baz" && e.reason === "Applied");
            if (!recorded) await new Promise((r) => setTimeout(r, 200));
          }
          assert.ok(recorded, "no Event recorded");
          const ready = await fetch(`http://127.0.0.1:${port}/readyz?verbose`);
          assert.equal(ready.status, 200, await ready.text());
          const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          assert.match(metrics, /^leader_election_master_status\{name="foo-operator"\} 1$/m);
          assert.match(
            metrics,
            /^controller_runtime_reconcile_total\{controller="foo-operator",result="success"\} [1-9]/m,
          );
          assert.match(
            metrics,
            /^kube_reflector_relists_total\{resource="clux\.dev\/v1\/foos@"\} 0$/m,
          );
        } catch (e) {
          kill();
          const [stdout, stderr] = await output;
          console.error(`operator output:\n${stdout}\n${stderr}`);
          throw e;
        } finally {
          kill();
        }
        const status = await child.status;
        const [stdout, stderr] = await output;
        await Deno.remove(kubeconfig);
        assert.equal(status.code, 0, stderr);
        assert.doesNotMatch(stdout + stderr, /Forbidden|forbidden/);
        const lease = JSON.parse(
          await k("get", "lease", "foo-operator", "-n", "foo-system", "-o", "json"),
        );
        assert.equal(lease.spec.holderIdentity, "", "released on SIGTERM");
      },
    );
  },
);
