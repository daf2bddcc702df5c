// Every generated builder against the real API server: its plural and scope agree with discovery,
// and listing through it works (across namespaces and, for namespaced kinds, in one namespace).

import assert from "node:assert/strict";
import { Api, ApiBuilders } from "../../api.ts";
import { e2eTest } from "./_harness.ts";

function builders(): [string, Api][] {
  const table = ApiBuilders as unknown as Record<string, unknown>;
  return Object.getOwnPropertyNames(ApiBuilders)
    .filter((name) => typeof table[name] === "function" && /^[a-z]+[0-9A-Z]/.test(name))
    .sort()
    .map((name) => [name, (table[name] as () => Api)()]);
}

e2eTest("codegen: every builder matches discovery and lists", async ({ client }) => {
  const all = builders();
  assert.ok(all.length > 60, `only ${all.length} builders`);
  const failures: string[] = [];
  await Promise.all(all.map(async ([name, api]) => {
    try {
      assert.ok(api instanceof Api, `${name} did not return an Api`);
      const { resource } = await client.discover(api.apiVersion, api.kind);
      assert.equal(api.plural, resource.plural, `${name}: plural`);
      assert.equal(api.namespaced, resource.namespaced, `${name}: scope`);
      assert.equal(api.group, resource.group, `${name}: group`);
      assert.equal(api.version, resource.version, `${name}: version`);
      const list = await client.list(api, { limit: 1 });
      assert.ok(Array.isArray(list.items), `${name}: list has no items array`);
      if (api.namespaced) await client.list(api.within("default"), { limit: 1 });
    } catch (e) {
      failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }));
  assert.deepEqual(failures, []);
});
