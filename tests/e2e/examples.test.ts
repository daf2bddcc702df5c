// The examples against the whole small cluster (controller-manager, scheduler and KWOK's nodes):
// each one runs as `deno run` with the permission flags of its first comment line (narrowed to the
// control plane's port and files), while the test creates, changes and deletes the objects it
// follows; its output must name them, and show the real nodes and running pods (checked against
// kubectl). Every example is stopped with SIGINT (Ctrl-C) and must exit 0.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Api, type KubeObject } from "../../api.ts";
import { deployment, e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));

/** How long an expected line may take to appear (generous: a loaded CI machine starts `deno`). */
const WAIT_MS = 60_000;

/**
 * The flags of an example's first comment line, `// deno run <flags> examples/<name>.ts …`, with
 * `$HOME` expanded, the control plane's directory added to `--allow-read` (its kubeconfig names
 * certificate files there) and `--allow-net` narrowed to the API server.
 */
async function headerFlags(file: string, cpDir: string, server: string): Promise<string[]> {
  const first = (await Deno.readTextFile(`${repo}/${file}`)).split("\n")[0];
  const match = first.match(/^\/\/ deno run (.*?) (examples\/\S+\.ts)\b/);
  assert.ok(match, `${file}: the first line is not a \`deno run\` command: ${first}`);
  assert.equal(match[2], file, `${file}: the command runs ${match[2]}`);
  const home = Deno.env.get("HOME") ?? "";
  const host = new URL(server).host;
  return match[1].split(" ").map((flag) => {
    assert.match(flag, /^--allow-(env|read|net)(=|$)/, `${file}: unexpected flag ${flag}`);
    if (flag.startsWith("--allow-read=")) return `${flag.replaceAll("$HOME", home)},${cpDir}`;
    if (flag === "--allow-net") return `--allow-net=${host}`;
    return flag;
  });
}

/** A running example whose stdout and stderr are collected into `output`. */
class Example implements AsyncDisposable {
  output = "";
  #child: Deno.ChildProcess;
  #reading: Promise<unknown>;
  #status: Promise<Deno.CommandStatus> | undefined;

  constructor(readonly file: string, flags: string[], args: string[], kubeconfigPath: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, file, ...args, "--exit-after=50"],
      cwd: repo,
      env: { KUBECONFIG: kubeconfigPath, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.output += text;
    };
    this.#reading = Promise.all([collect(this.#child.stdout), collect(this.#child.stderr)]);
  }

  /** Waits until the output matches `pattern`. */
  async waitFor(pattern: string | RegExp): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    const found = () =>
      typeof pattern === "string" ? this.output.includes(pattern) : pattern.test(this.output);
    while (!found()) {
      if (Date.now() > deadline) {
        throw new Error(`${this.file}: no ${pattern} in its output:\n${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Sends SIGINT (like Ctrl-C) and returns the exit code once the output is read. */
  async interrupt(): Promise<number> {
    if (!this.#status) {
      try {
        this.#child.kill("SIGINT");
      } catch { /* already exited */ }
      this.#status = this.#child.status;
    }
    const { code } = await this.#status;
    await this.#reading;
    return code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.interrupt();
  }
}

function pod(name: string, labels: Record<string, string> = {}, nodeName?: string): KubeObject {
  return {
    metadata: { name, labels: { app: "examples", ...labels } },
    spec: {
      ...(nodeName ? { nodeName } : {}),
      containers: [{ name: "main", image: "registry.invalid/examples:1" }],
    },
  } as KubeObject;
}

e2eTest("examples: each one follows the objects the test creates, and exits 0 on Ctrl-C", async (
  { cp, client, t },
) => {
  const ns = uniqueNamespace("examples");
  await client.create(Api.v1Namespace(), { metadata: { name: ns } });
  const start = async (file: string, ...args: string[]) =>
    new Example(file, await headerFlags(file, cp.dir, cp.server), args, cp.kubeconfigPath);
  const merge = { type: "merge" as const };

  await t.step("pod_informer.ts (namespace argument)", async () => {
    await using example = await start("examples/pod_informer.ts", ns);
    await example.waitFor(`Watching pods in namespace ${ns}`);
    const pods = Api.v1Pod().within(ns);
    await client.create(pods, pod("informed-1"));
    // Created Pending; the scheduler and KWOK make it Running (maybe before the first list).
    await example.waitFor(new RegExp(`ADDED    ${ns}/informed-1  phase=(Pending|Running)`));
    await example.waitFor(new RegExp(`(ADDED   |MODIFIED) ${ns}/informed-1  phase=Running`));
    await client.patch(pods, "informed-1", { metadata: { labels: { step: "2" } } }, merge);
    await example.waitFor(`MODIFIED ${ns}/informed-1`);
    await client.delete(pods, "informed-1", { gracePeriodSeconds: 0 });
    await example.waitFor(`DELETED  ${ns}/informed-1`);
    assert.equal(await example.interrupt(), 0, example.output);
    assert.match(example.output, /Stopped after \d+ events\./);
    assert.match(example.output, /kube·(client|informer|watch)/, "the library's logs are shown");
  });

  await t.step("pod_reflector.ts (namespace of the kubeconfig context)", async () => {
    await using example = await start("examples/pod_reflector.ts");
    await example.waitFor("Caching pods in namespace default");
    const pods = Api.v1Pod().within("default");
    const name = uniqueNamespace("cached");
    await client.create(pods, pod(name));
    await example.waitFor(`ADDED    default/${name}`);
    // Scheduled onto a KWOK node, then Running: the table shows where.
    await example.waitFor(new RegExp(`\\n  ${name} +Running +kwok-node-\\d+ `));
    const node = example.output.match(new RegExp(`\\n  ${name} +Running +(kwok-node-\\d+) `))![1];
    assert.equal(
      await kubectl(cp.kubeconfigPath, "get", "pod", name, "-o", "jsonpath={.spec.nodeName}"),
      node,
    );
    await client.delete(pods, name, { gracePeriodSeconds: 0 });
    await example.waitFor(`DELETED  default/${name}`);
    assert.equal(await example.interrupt(), 0, example.output);
    assert.match(example.output, /Stopped\./);
  });

  const node = uniqueNamespace("node");
  await t.step("node_informer.ts (lists the pods of a node from its event handler)", async () => {
    await using example = await start("examples/node_informer.ts", "--log=info");
    await example.waitFor("Watching nodes");
    // The cluster's nodes, as kubectl sees them.
    const kwokNodes = cp.kwok!.nodes;
    const ready = await kubectl(
      cp.kubeconfigPath,
      "get",
      "nodes",
      "-o",
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
    );
    assert.deepEqual(ready.trim().split(" ").sort(), kwokNodes.map((n) => `${n}=True`));
    for (const name of kwokNodes) {
      await example.waitFor(`ADDED    node ${name}  ready=True  taints=none`);
    }
    // A pod on the first node shows up in the list made from the event handler.
    const [first] = kwokNodes;
    await client.create(Api.v1Pod().within(ns), pod("on-kwok", {}, first));
    await client.patch(Api.v1Node(), first, { metadata: { labels: { example: "yes" } } }, merge);
    await example.waitFor(new RegExp(`pod\\(s\\) on ${first}: .*${ns}/on-kwok`));
    const listed = example.output.match(
      new RegExp(`(\\d+) pod\\(s\\) on ${first}: (.*${ns}/on-kwok.*)`),
    )!;
    const onNode = await kubectl(
      cp.kubeconfigPath,
      "get",
      "pods",
      "-A",
      "--field-selector",
      `spec.nodeName=${first}`,
      "-o",
      "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
    );
    assert.deepEqual(listed[2].split(", ").sort(), onNode.trim().split(" ").sort());
    await client.delete(Api.v1Pod().within(ns), "on-kwok", { gracePeriodSeconds: 0 });
    // A node nobody plays: never Ready, its pod stays Pending.
    await client.create(Api.v1Node(), { metadata: { name: node } });
    await example.waitFor(`ADDED    node ${node}`);
    await example.waitFor(`0 pod(s) on ${node}: -`);
    await client.create(Api.v1Pod().within(ns), pod("on-node", {}, node));
    await client.patch(Api.v1Node(), node, { metadata: { labels: { example: "yes" } } }, merge);
    await example.waitFor(`1 pod(s) on ${node}: ${ns}/on-node`);
    assert.equal(await example.interrupt(), 0, example.output);
    assert.doesNotMatch(example.output, /DBG/, "--log=info hides the debug logs");
  });

  await t.step("node_reflector.ts (init, poll rounds, events)", async () => {
    await using example = await start("examples/node_reflector.ts");
    await example.waitFor(new RegExp(`node\\(s\\) cached:\\n(.*\\n)*  ${node} `));
    const second = uniqueNamespace("node");
    await client.create(Api.v1Node(), { metadata: { name: second } });
    await example.waitFor(`ADDED    node ${second}`);
    await client.delete(Api.v1Node(), second);
    await example.waitFor(`DELETED  node ${second}`);
    assert.equal(await example.interrupt(), 0, example.output);
    await client.delete(Api.v1Node(), node);
  });

  await t.step("deployment_reflector.ts", async () => {
    await using example = await start("examples/deployment_reflector.ts", ns);
    await example.waitFor(`Caching deployments in namespace ${ns}`);
    const deployments = Api.appsV1Deployment().within(ns);
    await client.create(deployments, deployment("web", 2, "registry.invalid/examples:2"));
    await example.waitFor(`ADDED    ${ns}/web  images=registry.invalid/examples:2`);
    await client.patch(deployments, "web", { spec: { replicas: 3 } }, merge);
    await example.waitFor("replicas 2 → 3");
    // The controller-manager rolls it out and KWOK runs the pods: 3 of 3 ready.
    await example.waitFor(/ {2}web +3\/3 /);
    await client.delete(deployments, "web");
    await example.waitFor(`DELETED  ${ns}/web`);
    assert.equal(await example.interrupt(), 0, example.output);
  });

  await t.step("crd_reflector.ts with foo.yaml and crd-baz.yaml", async () => {
    const kube = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
    await kube("apply", "-f", `${repo}/examples/foo.yaml`);
    await kube("wait", "--for", "condition=established", "--timeout=60s", "crd/foos.clux.dev");
    await using example = await start("examples/crd_reflector.ts", ns);
    await example.waitFor(`Caching foos.clux.dev in namespace ${ns}`);
    await kube("apply", "-n", ns, "-f", `${repo}/examples/crd-baz.yaml`);
    await example.waitFor(`ADDED    foo ${ns}/baz`);
    await example.waitFor(/ {2}baz +baz +a Foo to watch/);
    await kube("patch", "-n", ns, "foo", "baz", "--type=merge", "-p", '{"spec":{"replicas":2}}');
    await example.waitFor(`MODIFIED foo ${ns}/baz`);
    await example.waitFor("changed: spec.replicas");
    await kube("delete", "-n", ns, "-f", `${repo}/examples/crd-baz.yaml`);
    await example.waitFor(`DELETED  foo ${ns}/baz`);
    assert.equal(await example.interrupt(), 0, example.output);
  });

  await t.step(
    "demo.ts on this cluster (--kubeconfig): pods run on the nodes, GC happens",
    async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "examples/demo.ts",
          `--kubeconfig=${cp.kubeconfigPath}`,
          "--step-ms=300",
        ],
        cwd: repo,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, output);
      // The Reflector saw the scheduler place pods and KWOK run them; the GC removed what the
      // Deployment owned; the cache ended equal to a fresh list.
      assert.match(output, /scheduled on kwok-node-\d/);
      assert.match(output, /phase Pending → Running {2}node=kwok-node-\d/);
      assert.match(output, /\(([1-9]\d*) pods went Pending → Running\)/);
      assert.match(output, /the garbage collector deleted ConfigMap web-settings/);
      assert.match(output, /the cache equals a fresh list \(0 pods\)/);
      // Act 3: the admission webhooks, then the conversion webhook (examples/foo_conversion.ts):
      // a Foo created as v1alpha1 with spec.size 3 is read by kubectl as v1 with spec.replicas 3,
      // and back as v1alpha1 unchanged.
      assert.match(output, /denied the request: spec\.replicas is 12, more than the 10/);
      assert.match(output, /Foo small: spec\.replicas=1 \(defaulted\)/);
      assert.match(
        output,
        /get foos\.v1\.clux\.dev old: clux\.dev\/v1 spec\.replicas=3 spec=\{"info":"written as v1alpha1","name":"old","replicas":3\}/,
      );
      assert.match(
        output,
        /get foos\.v1alpha1\.clux\.dev old: clux\.dev\/v1alpha1 spec\.size=3 .*\(round trip unchanged\)/,
      );
      assert.match(
        output,
        /Act 3 done: refused and defaulted as expected; v1alpha1 → v1 → v1alpha1 unchanged\./,
      );
      assert.match(output, /Deleted namespace demo\./);
      // kubectl: the namespace the demo made is going away (or gone).
      const phase = await kubectl(
        cp.kubeconfigPath,
        "get",
        "namespace",
        "demo",
        "--ignore-not-found",
        "-o",
        "jsonpath={.status.phase}",
      );
      assert.ok(phase === "" || phase === "Terminating", `namespace demo: ${phase}`);
      // The Foo CRD is back as examples/foo.yaml has it: v1 only, no conversion webhook.
      const crd = JSON.parse(
        await kubectl(cp.kubeconfigPath, "get", "crd", "foos.clux.dev", "-o", "json"),
      );
      assert.deepEqual(crd.spec.versions.map((v: { name: string }) => v.name), ["v1"]);
      assert.equal(crd.spec.conversion?.strategy ?? "None", "None");
    },
  );

  await client.delete(Api.v1Namespace(), ns);
}, { cluster: "full" });
