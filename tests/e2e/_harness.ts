// Gating and setup for the tests that need the real control plane.
//
// Without the binaries (no Go on the machine) the tests are skipped with a one-line reason,
// except when CI=true or KUBE_E2E=require: then a missing prerequisite fails the run.

import { e2eRequired, findBinaries, haveGo } from "../../testenv/build.ts";
import {
  type ControlPlane,
  type ControlPlaneOptions,
  startControlPlane,
} from "../../testenv/control_plane.ts";
import type { KubeObject } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { test, type TestContext } from "../_test.ts";

const available = (await findBinaries()) !== undefined || (await haveGo());
let reported = false;

/** Why the real-cluster tests cannot run here, or undefined when they can. */
export const skipReason: string | undefined = available
  ? undefined
  : "Go is not installed, so the control plane (etcd, kube-apiserver, kube-controller-manager, " +
    "kube-scheduler, kwok) cannot be built";

/** The context handed to a real-cluster test. */
export interface E2eContext {
  /** The running control plane. */
  cp: ControlPlane;
  /** A client authenticated with the admin client certificate. */
  client: Client;
  /** The test step API. */
  t: TestContext;
}

/**
 * Registers one Deno test that starts a control plane, runs `fn` with it, and stops it, also when
 * `fn` fails. Steps inside share the control plane. By default it is kube-apiserver + etcd only;
 * `{ cluster: "full" }` adds the controller-manager, the scheduler and KWOK's nodes. The test
 * fails when a component died during it.
 */
export function e2eTest(
  name: string,
  fn: (ctx: E2eContext) => Promise<void>,
  options: Omit<ControlPlaneOptions, "build"> = {},
): void {
  const ignore = skipReason !== undefined && !e2eRequired();
  if (ignore && !reported) {
    reported = true;
    console.error(
      `e2e: skipping real-cluster tests: ${skipReason} (set KUBE_E2E=require to fail instead)`,
    );
  }
  test({
    name: `e2e: ${name}`,
    ignore,
    async fn(t) {
      if (skipReason !== undefined) {
        throw new Error(`real-cluster tests required but: ${skipReason}`);
      }
      await using cp = await startControlPlane(options);
      using _cache = kubectlCacheOf(cp);
      const client = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
      try {
        await fn({ cp, client, t });
        await cp.assertHealthy();
      } catch (e) {
        console.error(await cp.logs(20));
        throw e;
      } finally {
        client.close();
      }
    },
  });
}

/**
 * Points every kubectl this process starts (`KUBECACHEDIR`) at a discovery cache of `cp`'s own,
 * until disposed. kubectl keys its default cache (~/.kube/cache, kept for hours) by host and
 * port, and loopback ports are reused: a later control plane on a port of an earlier one would
 * see that one's API groups (a CRD of another test, long deleted), and kubectl then resolves a
 * resource name against groups that do not exist.
 *
 * @param cp The control plane the following kubectl calls talk to.
 * @returns Restores the previous setting when disposed.
 */
export function kubectlCacheOf(cp: ControlPlane): Disposable {
  const before = Deno.env.get("KUBECACHEDIR");
  Deno.env.set("KUBECACHEDIR", `${cp.dir}/kubectl-cache`);
  return {
    [Symbol.dispose]() {
      if (before === undefined) Deno.env.delete("KUBECACHEDIR");
      else Deno.env.set("KUBECACHEDIR", before);
    },
  };
}

/** Runs kubectl against the control plane and returns its stdout. Throws with stderr on failure. */
export async function kubectl(kubeconfigPath: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("kubectl", {
    args: ["--kubeconfig", kubeconfigPath, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`kubectl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return stdout;
}

/** A unique namespace name for a test. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Retries `check` (an assertion) every 100 ms until it passes, and rethrows its last error after
 * `timeoutMs` (default 30 s). For waiting on controllers, which act on their own time.
 */
export async function eventually(
  what: string,
  check: () => Promise<void> | void,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) {
        throw new Error(
          `${what}: not true after ${timeoutMs} ms: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A Deployment of `replicas` pods of one container, labelled `app: <name>`.
 *
 * @param name The Deployment's name (and its pods' `app` label).
 * @param replicas How many pods.
 * @param image The container image (KWOK runs none, so any name works).
 * @returns The object to create or apply.
 */
export function deployment(name: string, replicas: number, image: string): KubeObject {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "main", image }] },
      },
    },
  } as KubeObject;
}
