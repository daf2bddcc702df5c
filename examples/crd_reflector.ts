// deno run --allow-env=KUBECONFIG,HOME --allow-read=$HOME/.kube --allow-net examples/crd_reflector.ts [namespace] [--log=info] [--exit-after=<seconds>]
//
// Keeps a cache of a custom resource, Foo (foos.clux.dev/v1), with a Reflector, and prints each
// change and then the cache as a small table. The namespace is the argument, else the one of the
// kubeconfig context. Try it:
//
//   kubectl apply -f examples/foo.yaml        # the CustomResourceDefinition
//   deno run … examples/crd_reflector.ts      # the command above
//   kubectl apply -f examples/crd-baz.yaml    # ADDED; then `kubectl edit foo baz`: MODIFIED
//   kubectl delete -f examples/crd-baz.yaml   # DELETED
//
// Permissions: `--allow-net` can be narrowed to the API server, `--allow-net=<api-host:port>`.
// When $KUBECONFIG points elsewhere, or the kubeconfig names certificate files outside ~/.kube,
// give those paths to `--allow-read` instead (a missing permission is reported with the flag to
// add).
//
// Options: `--log=<level>` sets the level of the library's logs (default `trace`, to show what it
// does; `info` for a quiet run); `--exit-after=<seconds>` stops after that long (for tests).
// Ctrl-C stops cleanly.
//
// Outside this repository, import from "@denokube/kube" (`deno add jsr:@denokube/kube`) instead
// of "../mod.ts".

import { Api, isNotFound, Reflector, stripManagedFields } from "../mod.ts";
import { onceAfterBatch, printTable, startExample } from "./_example.ts";

/** The spec of a Foo, as in the schema of examples/foo.yaml. */
interface FooSpec {
  name: string;
  info: string;
  replicas?: number;
}

/** The status of a Foo (a subresource: written with `client.patchStatus`). */
interface FooStatus {
  isBad?: boolean;
  observedReplicas?: number;
}

await using example = await startExample({ namespaced: true });
const { client, namespace, signal } = example;

// Kind "Foo" is derived from the plural; pass { kind } to .version() when it is irregular.
const foos = Api.customResource<FooSpec, FooStatus>("foos")
  .group("clux.dev")
  .version("v1")
  .within(namespace);

/** Prints rows as columns padded to their widest cell. */

const reflector = new Reflector(client, foos).transform(stripManagedFields);

function printCache(): void {
  const cache = reflector.read();
  const rows = [["NAME", "SPEC.NAME", "SPEC.INFO", "REPLICAS", "BAD", "RESOURCEVERSION"]];
  for (const [, foo] of [...cache].sort(([a], [b]) => a.localeCompare(b))) {
    rows.push([
      foo.metadata?.name ?? "",
      foo.spec?.name ?? "",
      foo.spec?.info ?? "",
      String(foo.spec?.replicas ?? "-"),
      String(foo.status?.isBad ?? "-"),
      foo.metadata?.resourceVersion ?? "",
    ]);
  }
  console.log(`${cache.size} foo(s) cached in ${namespace}:`);
  printTable(rows);
}

// Subscribe before run() starts, so that the first sync is reported too (each Foo as ADDED).
const changes = reflector.changes({ signal });
const running = reflector.run({ signal });
running.catch(() => {}); // a permanent failure also ends `changes` with the error

using table = onceAfterBatch(() => printCache());

console.log(`Caching foos.clux.dev in namespace ${namespace} of ${client.config.server}`);
try {
  for await (const change of changes) {
    const foo = change.object;
    let detail = `spec.info=${JSON.stringify(foo.spec?.info)}`;
    if (change.type === "MODIFIED" && change.old) {
      const fields = (["name", "info", "replicas"] as const)
        .filter((field) => change.old?.spec?.[field] !== foo.spec?.[field]);
      detail += fields.length ? `  changed: ${fields.map((f) => `spec.${f}`).join(", ")}` : "";
    }
    console.log(
      `${change.type.padEnd(8)} foo ${foo.metadata?.namespace}/${foo.metadata?.name}  ${detail}`,
    );
    table.schedule();
  }
  await running;
  console.log("Stopped.");
} catch (e) {
  if (isNotFound(e)) {
    console.error(
      "crd_reflector: the API server does not serve foos.clux.dev/v1. Install the " +
        "CustomResourceDefinition first: kubectl apply -f examples/foo.yaml",
    );
  } else {
    console.error(`crd_reflector: ${e instanceof Error ? e.message : e}`);
  }
  Deno.exitCode = 1;
}
