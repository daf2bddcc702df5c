// FakeApiServer: paging, selectors, watches (history, bookmarks, initial events, 410).
import assert from "node:assert/strict";
import { failure } from "./_helpers.ts";
import type { Client } from "../../mod.ts";
import { FakeApiServer } from "../../testing/mod.ts";
import { test } from "../_test.ts";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const CM = "/api/v1/namespaces/default/configmaps";
const BASE = "http://fake.invalid";

async function list(
  client: Client,
  path: string,
  query: Record<string, string> = {},
): Promise<Obj> {
  const res = await client.request({ path, query, retry: false });
  return await res.json();
}

/** Reads newline-delimited events from a watch response. */
class EventReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  constructor(res: Response) {
    this.#reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  }
  /** The next event, or `undefined` at the end of the stream. */
  async next(): Promise<Obj | undefined> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }
  /** Every remaining event until the stream ends. */
  async rest(): Promise<Obj[]> {
    const out: Obj[] = [];
    for (let e = await this.next(); e; e = await this.next()) out.push(e);
    return out;
  }
  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

async function watch(server: FakeApiServer, path: string, query: string, signal?: AbortSignal) {
  const res = await server.fetch(`${BASE}${path}?watch=1&${query}`, { signal });
  assert.equal(res.status, 200);
  return new EventReader(res);
}

function seedConfigMaps(
  server: FakeApiServer,
  n: number,
  labels: (i: number) => Obj = () => ({}),
  from = 0,
) {
  for (let i = from; i < from + n; i++) {
    server.seed({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: `cm-${String(i).padStart(2, "0")}`,
        namespace: "default",
        labels: labels(i),
      },
    });
  }
}

test("FakeApiServer: lists carry the list kind, the current RV, and items without apiVersion/kind", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  const body = await list(server.client(), CM);
  assert.equal(body.kind, "ConfigMapList");
  assert.equal(body.apiVersion, "v1");
  assert.deepEqual(body.metadata, { resourceVersion: server.resourceVersion });
  assert.equal(body.items.length, 2);
  assert.equal(body.items[0].apiVersion, undefined);
  assert.equal(body.items[0].kind, undefined);
  const all = await list(server.client(), "/api/v1/configmaps");
  assert.equal(all.items.length, 2);
});

test("FakeApiServer: limit/continue pages a consistent snapshot with remainingItemCount", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  seedConfigMaps(server, 5);
  const first = await list(client, CM, { limit: "2" });
  assert.deepEqual(first.items.map((i: Obj) => i.metadata.name), ["cm-00", "cm-01"]);
  assert.equal(first.metadata.remainingItemCount, 3);
  assert.equal(typeof first.metadata.continue, "string");
  const rv = first.metadata.resourceVersion;

  // Changes after the first page do not show up in later pages.
  await client.request({ method: "DELETE", path: `${CM}/cm-02` });
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "cm-03a", namespace: "default" },
  });
  await client.request({
    method: "PATCH",
    path: `${CM}/cm-03`,
    body: { data: { changed: "yes" } },
    contentType: "application/merge-patch+json",
  });

  const second = await list(client, CM, { limit: "2", continue: first.metadata.continue });
  assert.deepEqual(second.items.map((i: Obj) => i.metadata.name), ["cm-02", "cm-03"]);
  assert.equal(second.items[1].data, undefined, "the snapshot shows cm-03 before the patch");
  assert.equal(second.metadata.resourceVersion, rv);
  assert.equal(second.metadata.remainingItemCount, 1);
  const third = await list(client, CM, { limit: "2", continue: second.metadata.continue });
  assert.deepEqual(third.items.map((i: Obj) => i.metadata.name), ["cm-04"]);
  assert.equal(third.metadata.continue, undefined);

  const fresh = await list(client, CM);
  assert.deepEqual(fresh.items.map((i: Obj) => i.metadata.name), [
    "cm-00",
    "cm-01",
    "cm-03",
    "cm-03a",
    "cm-04",
  ]);

  const bad = await failure(list(client, CM, { continue: "not-a-token" }));
  assert.equal(bad.status, 400);
  assert.match(bad.body?.message ?? "", /^invalid continue token/);
});

test("FakeApiServer: expired continue tokens answer 410 Expired with the real message and a fresh token", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  seedConfigMaps(server, 3);
  const first = await list(client, CM, { limit: "1" });
  server.expireContinueTokens();
  const error = await failure(list(client, CM, { limit: "1", continue: first.metadata.continue }));
  assert.equal(error.status, 410);
  assert.equal(error.reason, "Expired");
  assert.ok(error.expired);
  assert.match(
    error.body?.message ?? "",
    /^The provided continue parameter is too old to display a consistent list result\. You can start a new list without the continue parameter, or use the continue token in this response/,
  );
  // The token in the Status continues at the latest state (an inconsistent list).
  const token = (error.body?.metadata as Obj).continue;
  const rest = await list(client, CM, { continue: token });
  assert.deepEqual(rest.items.map((i: Obj) => i.metadata.name), ["cm-01", "cm-02"]);

  // A new list after expiry pages normally.
  const again = await list(client, CM, { limit: "1" });
  const next = await list(client, CM, { limit: "1", continue: again.metadata.continue });
  assert.deepEqual(next.items.map((i: Obj) => i.metadata.name), ["cm-01"]);

  // compact() expires tokens too, and so does a small history.
  const before = await list(client, CM, { limit: "1" });
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "later", namespace: "default" },
  });
  server.compact();
  assert.equal(
    (await failure(list(client, CM, { continue: before.metadata.continue }))).status,
    410,
  );
});

test("FakeApiServer: a bounded history expires old continue tokens and watch resourceVersions", async () => {
  await using server = new FakeApiServer({ historySize: 2 });
  const client = server.client();
  seedConfigMaps(server, 3);
  const first = await list(client, CM, { limit: "1" });
  const rv = server.resourceVersion;
  for (const name of ["x", "y", "z"]) {
    server.seed({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" } });
  }
  assert.equal(
    (await failure(list(client, CM, { continue: first.metadata.continue }))).status,
    410,
  );
  const reader = await watch(server, CM, `resourceVersion=${rv}`);
  const [event] = await reader.rest();
  assert.equal(event.type, "ERROR");
  assert.equal(event.object.code, 410);
});

test("FakeApiServer: list with an exact or too new resourceVersion", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  seedConfigMaps(server, 1);
  const rv = server.resourceVersion;
  seedConfigMaps(server, 1, undefined, 1);
  const exact = await list(client, CM, { resourceVersion: rv, resourceVersionMatch: "Exact" });
  assert.equal(exact.items.length, 1);
  assert.equal(exact.metadata.resourceVersion, rv);
  const notOlder = await list(client, CM, {
    resourceVersion: rv,
    resourceVersionMatch: "NotOlderThan",
  });
  assert.equal(notOlder.items.length, 2);
  const tooNew = await failure(list(client, CM, { resourceVersion: "999999" }));
  assert.equal(tooNew.status, 504);
  assert.equal(tooNew.reason, "Timeout");
  assert.equal(
    tooNew.body?.message,
    `Timeout: Too large resource version: 999999, current: ${server.resourceVersion}`,
  );
  const invalid = await failure(list(client, CM, { resourceVersionMatch: "Exact" }));
  assert.equal(invalid.status, 422);
  assert.match(
    invalid.body?.message ?? "",
    /^ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden/,
  );
});

test("FakeApiServer: label selectors: equality, inequality, set-based, existence", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const labels = [{ app: "web", tier: "front" }, { app: "db" }, { app: "cache", tier: "back" }, {}];
  seedConfigMaps(server, labels.length, (i) => labels[i]);
  const names = async (selector: string) =>
    (await list(client, CM, { labelSelector: selector })).items.map((i: Obj) => i.metadata.name);
  assert.deepEqual(await names("app=web"), ["cm-00"]);
  assert.deepEqual(await names("app==db"), ["cm-01"]);
  assert.deepEqual(await names("app!=web"), ["cm-01", "cm-02", "cm-03"]);
  assert.deepEqual(await names("app in (web, cache)"), ["cm-00", "cm-02"]);
  assert.deepEqual(await names("app notin (web)"), ["cm-01", "cm-02", "cm-03"]);
  assert.deepEqual(await names("tier"), ["cm-00", "cm-02"]);
  assert.deepEqual(await names("!tier"), ["cm-01", "cm-03"]);
  assert.deepEqual(await names("app,tier=back"), ["cm-02"]);
  for (const bad of ["a b", "app in (", "=x", "app=(x)"]) {
    const error = await failure(list(client, CM, { labelSelector: bad }));
    assert.equal(error.status, 400, bad);
    assert.equal(error.reason, "BadRequest");
  }
  const msg = await failure(list(client, CM, { labelSelector: "a b" }));
  assert.equal(
    msg.body?.message,
    "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
  );
});

test("FakeApiServer: field selectors: metadata fields, kind-specific fields, unsupported fields", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  for (
    const [name, phase, node] of [["a", "Running", "n1"], ["b", "Pending", ""], [
      "c",
      "Running",
      "n2",
    ]]
  ) {
    server.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: "default" },
      spec: { containers: [{ name: "c", image: "i" }], ...(node ? { nodeName: node } : {}) },
      status: { phase },
    });
  }
  const names = async (selector: string, path = "/api/v1/pods") =>
    (await list(client, path, { fieldSelector: selector })).items.map((i: Obj) => i.metadata.name);
  assert.deepEqual(await names("status.phase=Running"), ["a", "c"]);
  assert.deepEqual(await names("status.phase!=Running"), ["b"]);
  assert.deepEqual(await names("spec.nodeName=n2"), ["c"]);
  assert.deepEqual(await names("spec.nodeName="), ["b"]);
  assert.deepEqual(await names("metadata.name=b,metadata.namespace=default"), ["b"]);
  assert.deepEqual(await names("metadata.namespace==kube-system"), []);

  const podField = await failure(list(client, "/api/v1/pods", { fieldSelector: "spec.nope=x" }));
  assert.equal(podField.status, 400);
  assert.equal(podField.body?.message, "field label not supported: spec.nope");
  const cmField = await failure(list(client, CM, { fieldSelector: "status.phase=x" }));
  assert.equal(
    cmField.body?.message,
    '"status.phase" is not a known field selector: only "metadata.name", "metadata.namespace"',
  );
  const malformed = await failure(list(client, CM, { fieldSelector: "foo" }));
  assert.equal(malformed.body?.message, "invalid selector: 'foo'; can't understand 'foo'");
});

test("FakeApiServer: watch without resourceVersion: synthetic ADDED, then the initial-events-end bookmark", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  const rv = server.resourceVersion;
  const reader = await watch(server, CM, "allowWatchBookmarks=true&timeoutSeconds=1");
  const events = await reader.rest();
  assert.deepEqual(events.map((e) => e.type), ["ADDED", "ADDED", "BOOKMARK"]);
  assert.equal(events[0].object.kind, "ConfigMap");
  assert.equal(events[0].object.apiVersion, "v1");
  assert.deepEqual(events[2].object, {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { resourceVersion: rv, annotations: { "k8s.io/initial-events-end": "true" } },
  });
  // Without bookmarks, only the ADDED events; with the WatchList gate off, no end bookmark.
  const plain = await (await watch(server, CM, "timeoutSeconds=1&resourceVersion=0")).rest();
  assert.deepEqual(plain.map((e) => e.type), ["ADDED", "ADDED"]);
  await using legacy = new FakeApiServer({ watchList: false });
  const legacyEvents =
    await (await watch(legacy, "/api/v1/namespaces", "allowWatchBookmarks=true&timeoutSeconds=1"))
      .rest();
  assert.ok(legacyEvents.every((e) => e.type === "ADDED"));
});

test("FakeApiServer: watch from a resourceVersion replays history, then streams live changes", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  seedConfigMaps(server, 1);
  const from = server.resourceVersion;
  seedConfigMaps(server, 1, undefined, 1);
  await client.request({ method: "DELETE", path: `${CM}/cm-00` });
  const reader = await watch(server, CM, `resourceVersion=${from}`);
  const replay = [await reader.next(), await reader.next()];
  assert.deepEqual(replay.map((e) => [e!.type, e!.object.metadata.name]), [["ADDED", "cm-01"], [
    "DELETED",
    "cm-00",
  ]]);
  assert.equal(replay[1]!.object.metadata.resourceVersion, server.resourceVersion);
  await client.request({
    method: "PATCH",
    path: `${CM}/cm-01`,
    body: { data: { a: "1" } },
    contentType: "application/merge-patch+json",
  });
  const live = await reader.next();
  assert.equal(live?.type, "MODIFIED");
  assert.equal(live?.object.data.a, "1");
  assert.equal(live?.object.metadata.resourceVersion, server.resourceVersion);
  await reader.cancel();
  assert.equal(server.openWatches, 0);
});

test("FakeApiServer: watch selectors: objects that stop matching are DELETED, start matching are ADDED", async () => {
  await using server = new FakeApiServer();
  const client = server.client();
  const from = server.resourceVersion;
  const reader = await watch(server, CM, `resourceVersion=${from}&labelSelector=app%3Dweb`);
  server.seed({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "x", namespace: "default", labels: { app: "db" } },
  });
  const patch = (labels: Obj) =>
    client.request({
      method: "PATCH",
      path: `${CM}/x`,
      body: { metadata: { labels } },
      contentType: "application/merge-patch+json",
    });
  await patch({ app: "web" });
  await patch({ app: "web", other: "1" });
  await patch({ app: "db" });
  const events = [await reader.next(), await reader.next(), await reader.next()];
  assert.deepEqual(events.map((e) => e!.type), ["ADDED", "MODIFIED", "DELETED"]);
  assert.equal(
    events[2]!.object.metadata.labels.app,
    "web",
    "DELETED carries the last matching state",
  );
  assert.equal(events[2]!.object.metadata.resourceVersion, server.resourceVersion);
  await reader.cancel();
});

test("FakeApiServer: periodic bookmarks, timeoutSeconds ends the stream normally", async () => {
  await using server = new FakeApiServer({ bookmarkIntervalMs: 20 });
  const from = server.resourceVersion;
  const reader = await watch(
    server,
    CM,
    `resourceVersion=${from}&allowWatchBookmarks=true&timeoutSeconds=1`,
  );
  const first = await reader.next();
  assert.equal(first?.type, "BOOKMARK");
  assert.deepEqual(first?.object, {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { resourceVersion: from },
  });
  const rest = await reader.rest(); // ends by itself after 1 s
  assert.ok(rest.every((e) => e.type === "BOOKMARK"));
  assert.equal(server.openWatches, 0);
});

test("FakeApiServer: bookmarks of typed kinds carry their empty fields, like the real server", async () => {
  await using server = new FakeApiServer();
  const events =
    await (await watch(server, "/api/v1/pods", "allowWatchBookmarks=true&timeoutSeconds=1")).rest();
  assert.deepEqual(events.at(-1)?.object, {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      resourceVersion: server.resourceVersion,
      annotations: { "k8s.io/initial-events-end": "true" },
    },
    spec: { containers: null },
    status: {},
  });
});

test("FakeApiServer: sendInitialEvents=true&resourceVersionMatch=NotOlderThan", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  const events = await (await watch(
    server,
    CM,
    "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
  )).rest();
  assert.deepEqual(events.map((e) => e.type), ["ADDED", "ADDED", "BOOKMARK"]);
  assert.equal(events[2].object.metadata.annotations["k8s.io/initial-events-end"], "true");
  const invalid = await server.fetch(`${BASE}${CM}?watch=1&sendInitialEvents=true`);
  assert.equal(invalid.status, 422);
  assert.equal(
    (await invalid.json()).message,
    'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
  );
});

test("FakeApiServer: watch from a compacted resourceVersion: 200 with one ERROR event 410 Expired", async () => {
  await using server = new FakeApiServer();
  const old = server.resourceVersion;
  seedConfigMaps(server, 1);
  server.compact();
  const res = await server.fetch(`${BASE}${CM}?watch=1&resourceVersion=${old}`);
  assert.equal(res.status, 200);
  const events = await new EventReader(res).rest();
  assert.deepEqual(events, [{
    type: "ERROR",
    object: {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `too old resource version: ${old} (${server.resourceVersion})`,
      reason: "Expired",
      code: 410,
    },
  }]);
  // The current RV still works after compaction.
  const ok = await watch(server, CM, `resourceVersion=${server.resourceVersion}&timeoutSeconds=1`);
  assert.deepEqual(await ok.rest(), []);
  // Too new: silent until the server gets there (like the real server), then events after it.
  const target = Number(server.resourceVersion) + 2;
  const future = await watch(server, CM, `resourceVersion=${target}&timeoutSeconds=1`);
  seedConfigMaps(server, 3, undefined, 10);
  const late = await future.rest();
  assert.deepEqual(late.map((e) => e.object.metadata.name), ["cm-12"]);
});

test("FakeApiServer: aborting a watch errors the body and cleans up; close() ends open watches", async () => {
  const server = new FakeApiServer();
  const controller = new AbortController();
  const reader = await watch(
    server,
    CM,
    `resourceVersion=${server.resourceVersion}`,
    controller.signal,
  );
  assert.equal(server.openWatches, 1);
  controller.abort();
  await assert.rejects(
    reader.next(),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );
  assert.equal(server.openWatches, 0);

  const open = await watch(
    server,
    CM,
    `resourceVersion=${server.resourceVersion}&allowWatchBookmarks=true`,
  );
  assert.equal(server.openWatches, 1);
  await server.close();
  assert.deepEqual(await open.rest(), []);
  assert.equal(server.openWatches, 0);
  await assert.rejects(server.fetch(`${BASE}${CM}`), TypeError);
});

test("FakeApiServer: watch on a single object via its path", async () => {
  await using server = new FakeApiServer();
  seedConfigMaps(server, 2);
  const res = await server.fetch(`${BASE}${CM}/cm-01?watch=true&timeoutSeconds=1`);
  const events = await new EventReader(res).rest();
  assert.deepEqual(events.map((e) => e.object.metadata.name), ["cm-01"]);
  const legacyPath = await server.fetch(
    `${BASE}/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1`,
  );
  assert.equal((await new EventReader(legacyPath).rest()).length, 2);
});
