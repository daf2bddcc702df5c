// The second act of `deno task demo` (examples/demo.ts): the Foo operator of
// examples/foo_operator.ts at work. Not an example itself.
//
// It runs the operator in the demo namespace and, a step every ~2 s: creates a Foo, scales it,
// breaks it (a spec.name the apiserver refuses as a label: events, condition, retries with
// backoff), fixes it, deletes it (finalizer cleanup, then garbage collection of its Deployment
// when the cluster has a controller-manager). Every reconcile is printed as it ends.

import { Api, type Client, type ReconcileOutcome } from "../mod.ts";
import { type Foo, fooOperator, FOOS } from "./foo_operator.ts";

const STEP_MS = 2_000;

/**
 * Runs the act. Resolves `true` when every step was seen to take effect.
 *
 * @param client The demo's client.
 * @param namespace The demo namespace (the Foo CRD is installed).
 * @param clockText The demo's elapsed-time prefix.
 */
export async function operatorAct(
  client: Client,
  namespace: string,
  clockText: () => string,
): Promise<boolean> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const signal = stop.signal;
  const foos = FOOS.within(namespace);
  const deployments = Api.appsV1Deployment().within(namespace);
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done);
    });
  const say = (text: string) => console.log(`${clockText()}  ─── ${text}`);
  const cleaned: string[] = [];
  const operator = fooOperator(client, {
    namespace,
    cleanup: (foo) => {
      cleaned.push(foo.metadata!.name!);
      console.log(`${clockText()}  Operator   external cleanup for Foo ${foo.metadata!.name}`);
    },
    backoff: { initialMs: 250, maxMs: 4_000 },
  });
  operator.onOutcome((o: ReconcileOutcome) => {
    const extra = o.result === "error"
      ? `  retry in ${o.requeueAfterMs} ms: ${
        String((o.error as Error)?.message ?? o.error).slice(0, 90)
      }`
      : o.result === "terminal"
      ? `  ${String((o.error as Error)?.message).slice(0, 90)}`
      : "";
    console.log(
      `${clockText()}  Operator   ${o.key.padEnd(12)} ${o.result.padEnd(8)} attempt ${o.attempt}` +
        `  (${o.reason})  ${o.durationMs} ms${extra}`,
    );
  });
  const status = async (name: string) => {
    const foo = await client.get(foos, name, { signal }) as Foo;
    const ready =
      (foo.status as { conditions?: { type: string; status: string; reason?: string }[] })
        ?.conditions?.find((c) => c.type === "Ready");
    return `Foo ${name}: spec.replicas=${foo.spec.replicas} status.readyReplicas=${
      (foo.status as { readyReplicas?: number })?.readyReplicas ?? 0
    } Ready=${ready?.status ?? "-"} (${ready?.reason ?? "-"}) observedGeneration=${
      (foo.status as { observedGeneration?: number })?.observedGeneration ?? "-"
    }/${foo.metadata?.generation}`;
  };
  console.log(
    `\nAct 2: the Foo operator (examples/foo_operator.ts) reconciles the Foos of ${namespace}: ` +
      "a Deployment per Foo, status, events, a finalizer.",
  );
  const running = operator.run(signal);
  let ok = true;
  try {
    await pause(STEP_MS);
    say("create Foo web (replicas 2)");
    await client.create(foos, {
      metadata: { name: "web" },
      spec: { name: "web", info: "served by the operator", replicas: 2 },
    }, { signal });
    await pause(STEP_MS * 2);
    console.log(`${clockText()}  kubectl    ${await status("web")}`);
    say("scale Foo web to 3");
    await client.patch(foos, "web", { spec: { replicas: 3 } }, { signal });
    await pause(STEP_MS * 2);
    console.log(`${clockText()}  kubectl    ${await status("web")}`);
    say('break Foo web: spec.name "Bad Name!" (not a valid label value)');
    await client.patch(foos, "web", { spec: { name: "Bad Name!" } }, { signal });
    await pause(STEP_MS * 2);
    console.log(`${clockText()}  kubectl    ${await status("web")}`);
    say("fix Foo web");
    await client.patch(foos, "web", { spec: { name: "web" } }, { signal });
    await pause(STEP_MS);
    // Only a controller-manager sets a Deployment's status.observedGeneration: with one, the
    // garbage collector will delete the Deployment once its owner is gone.
    const dep = await client.get(deployments, "web", { signal }) as {
      status?: { observedGeneration?: number };
    };
    const withGc = dep.status?.observedGeneration !== undefined;
    say("delete Foo web");
    await client.delete(foos, "web", { signal });
    await pause(STEP_MS);
    // Usually gone by now; a busy machine may need longer for the cleanup and the finalizer.
    let gone = false;
    for (let i = 0; i < 300 && !signal.aborted; i++) {
      gone = await client.get(foos, "web", { signal }).then(() => false, () => true);
      if (gone && cleaned.includes("web")) break;
      await pause(100);
    }
    ok &&= gone && cleaned.includes("web");
    console.log(
      `${clockText()}  kubectl    Foo web ${gone ? "deleted after its cleanup" : "STILL THERE"}`,
    );
    // The garbage collector (kube-controller-manager) deletes the owned Deployment, when there
    // is one; a bare API server has none.
    if (withGc) {
      console.log(
        `${clockText()}  kubectl    waiting for the garbage collector (it first has to discover ` +
          "the new Foo resource: up to ~30 s)…",
      );
    }
    let collected = false;
    for (let i = 0; withGc && i < 60 && !signal.aborted && !collected; i++) {
      collected = await client.get(deployments, "web", { signal }).then(() => false, () => true);
      if (!collected) await pause(1_000);
    }
    console.log(
      `${clockText()}  kubectl    Deployment web ${
        collected
          ? "garbage-collected through its owner reference"
          : "still there: this API server runs no garbage collector (no controller-manager)"
      }`,
    );
  } catch (e) {
    if (!signal.aborted) {
      ok = false;
      console.error(`act 2 failed: ${e instanceof Error ? e.stack : e}`);
    }
  } finally {
    stop.abort();
    await running.catch((e) => {
      ok = false;
      console.error(`the operator failed: ${e instanceof Error ? e.message : e}`);
    });
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  const s = operator.stats();
  console.log(
    `Act 2 done: reconciles ${JSON.stringify(s.reconciles)}, retries ${s.retries}, ` +
      `read-your-writes waits ${s.readYourWritesWaits}.`,
  );
  return ok;
}
