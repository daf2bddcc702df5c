// ARCHITECTURE.md's import rules, checked on the real module graph (`deno info --json`): which
// local modules each root module may import, no import cycles (but the one documented type-only
// edge api.ts ↔ generated/builders.ts), the library never importing testing/, and testing/
// using only the public modules and the status table.

import assert from "node:assert/strict";
import { test } from "../_test.ts";

const root = new URL("../../", import.meta.url);

/** Local module → the local modules it imports (code or type), paths relative to the root. */
async function graph(): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  for (const entry of ["mod.ts", "testing.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root.pathname,
      stdout: "piped",
    }).output();
    const info = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const module of info.modules) {
      if (!module.specifier.startsWith(root.href)) continue;
      const from = module.specifier.slice(root.href.length);
      const deps = edges.get(from) ?? new Set<string>();
      for (const dep of module.dependencies ?? []) {
        for (const side of [dep.code, dep.type]) {
          const to = side?.specifier;
          if (typeof to === "string" && to.startsWith(root.href)) {
            deps.add(to.slice(root.href.length));
          }
        }
      }
      edges.set(from, deps);
    }
  }
  return edges;
}

/** The "may import" column of ARCHITECTURE.md's code map (generated type modules aside). */
const MAY_IMPORT: Record<string, string[]> = {
  "errors.ts": ["_status_table.ts"],
  "clock.ts": [],
  "config.ts": [
    "_config_types.ts",
    "_kubeconfig.ts",
    "_exec_credential.ts",
    "_permissions.ts",
    "_runtime/mod.ts",
  ],
  "client.ts": [
    "_transport.ts",
    "_protobuf/negotiate.ts",
    "_list.ts",
    "_discovery.ts",
    "_lines.ts",
    "watch.ts",
    "api.ts",
    "config.ts",
    "errors.ts",
    "clock.ts",
  ],
  "watch.ts": [
    "_transport.ts",
    "_lines.ts",
    "_protobuf/negotiate.ts",
    "_protobuf/decode.ts",
    "_protobuf/frames.ts",
    "api.ts",
    "errors.ts",
  ],
  "informer.ts": ["_watcher.ts", "_retry.ts", "_transport.ts", "watch.ts", "api.ts", "clock.ts"],
  "reflector.ts": [
    "_watcher.ts",
    "_store.ts",
    "_retry.ts",
    "_transport.ts",
    "watch.ts",
    "api.ts",
    "clock.ts",
  ],
  "selector.ts": [],
  "_transport.ts": [
    "_retry.ts",
    "_status_table.ts",
    "_permissions.ts",
    "_runtime/mod.ts",
    "_protobuf/negotiate.ts",
    "config.ts",
    "errors.ts",
    "clock.ts",
  ],
  "_retry.ts": ["_status_table.ts", "errors.ts", "clock.ts"],
  "_status_table.ts": [],
  "_watcher.ts": [
    "_list.ts",
    "_retry.ts",
    "_transport.ts",
    "watch.ts",
    "api.ts",
    "errors.ts",
    "clock.ts",
  ],
  "_store.ts": [],
  "_list.ts": ["_transport.ts", "_protobuf/negotiate.ts", "api.ts", "errors.ts"],
  "_protobuf/negotiate.ts": ["_protobuf/decode.ts"],
  "_protobuf/decode.ts": [],
  "_protobuf/frames.ts": [],
  "_lines.ts": [],
  "_config_types.ts": [],
  "_kubeconfig.ts": [
    "_config_types.ts",
    "_exec_credential.ts",
    "_permissions.ts",
    "_runtime/mod.ts",
  ],
  "_exec_credential.ts": ["_config_types.ts", "_permissions.ts", "_runtime/mod.ts"],
  "_permissions.ts": ["_runtime/mod.ts"],
  "_runtime/mod.ts": [
    "_runtime/types.ts",
    "_runtime/deno.ts",
    "_runtime/node.ts",
    "_runtime/bun.ts",
    "_runtime/_node_common.ts",
  ],
  "_runtime/deno.ts": ["_runtime/types.ts"],
  "_runtime/node.ts": ["_runtime/types.ts", "_runtime/_node_common.ts"],
  "_runtime/bun.ts": ["_runtime/types.ts", "_runtime/_node_common.ts"],
  "_runtime/_node_common.ts": ["_runtime/types.ts"],
  "_api_factory.ts": [],
  "controller.ts": [
    "_controller/cache.ts",
    "_controller/queue.ts",
    "_controller/resource_version.ts",
    "_controller/tracking.ts",
    "api.ts",
    "client.ts",
    "clock.ts",
    "errors.ts",
    "events.ts",
    "reflector.ts",
  ],
  "events.ts": [
    "_microtime.ts",
    "api.ts",
    "client.ts",
    "clock.ts",
    "errors.ts",
    "_permissions.ts",
    "_runtime/mod.ts",
  ],
  "_microtime.ts": [],
  "finalizer.ts": ["api.ts", "client.ts", "controller.ts", "errors.ts"],
  "wait.ts": ["api.ts", "client.ts", "clock.ts", "reflector.ts"],
  "_controller/tracking.ts": ["_transport.ts", "api.ts", "client.ts"],
  "_controller/cache.ts": [
    "_controller/resource_version.ts",
    "_controller/tracking.ts",
    "api.ts",
    "client.ts",
    "clock.ts",
    "reflector.ts",
  ],
  "_controller/queue.ts": ["clock.ts"],
  "_controller/resource_version.ts": [],
  "leader_election.ts": ["_microtime.ts", "api.ts", "client.ts", "clock.ts", "errors.ts"],
  "metrics.ts": [],
  "endpoints.ts": ["metrics.ts", "_runtime/mod.ts"],
  "manager.ts": [
    "leader_election.ts",
    "endpoints.ts",
    "metrics.ts",
    "controller.ts",
    "api.ts",
    "client.ts",
    "clock.ts",
    "_runtime/mod.ts",
  ],
  "exec.ts": [
    "_channels.ts",
    "_socket.ts",
    "_websocket.ts",
    "_transport.ts",
    "api.ts",
    "client.ts",
    "errors.ts",
  ],
  "_socket.ts": ["_runtime/mod.ts"],
  "_websocket.ts": ["_socket.ts"],
  "_channels.ts": ["_websocket.ts", "errors.ts"],
};

test("architecture: each module imports only what ARCHITECTURE.md's code map allows", async () => {
  const edges = await graph();
  for (const [module, allowed] of Object.entries(MAY_IMPORT)) {
    const deps = edges.get(module);
    assert.ok(deps, `${module} is not in the module graph of mod.ts`);
    const extra = [...deps].filter((d) => !allowed.includes(d) && !d.startsWith("generated/"));
    assert.deepEqual(extra, [], `${module} imports ${extra.join(", ")} (not in its "may import")`);
  }
});

test("architecture: no import cycles but the documented api.ts ↔ generated/builders.ts", async () => {
  const edges = await graph();
  const cycles: string[] = [];
  // Depth-first search for back edges.
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...stack.slice(stack.indexOf(next)), next].join(" → "));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  const allowed = "api.ts → generated/builders.ts → api.ts";
  assert.deepEqual(cycles.filter((c) => c !== allowed), []);
});

test("architecture: the library never imports testing/; testing/ uses only public modules", async () => {
  const edges = await graph();
  const publicModules = [
    "api.ts",
    "client.ts",
    "config.ts",
    "errors.ts",
    "clock.ts",
    "controller.ts",
  ];
  for (const [module, deps] of edges) {
    if (module.startsWith("testing/")) {
      const extra = [...deps].filter((d) =>
        !d.startsWith("testing/") && !publicModules.includes(d) && d !== "_status_table.ts"
      );
      assert.deepEqual(extra, [], `${module} imports library internals ${extra.join(", ")}`);
    } else if (module !== "testing.ts") {
      const into = [...deps].filter((d) => d.startsWith("testing/"));
      assert.deepEqual(into, [], `${module} imports the fake server ${into.join(", ")}`);
    }
  }
});
