import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { ApiError } from "../../errors.ts";
import { Informer } from "../../informer.ts";
import { listAll, listPage, listSnapshot } from "../../_client/list.ts";
import { list, Sleeps, status, StubServer } from "./_stub_server.ts";
import { test } from "../_test.ts";

const configMaps = Api.v1ConfigMap().within("default");

const expiredContinue = {
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  reason: "Expired",
  code: 410,
  message: "The provided continue parameter is too old",
};

function bare(name: string, resourceVersion: string) {
  // Items of a list response have no apiVersion/kind.
  return { metadata: { name, namespace: "default", resourceVersion } };
}

test("paged list: listPage sends the paging query and fills apiVersion and kind", async () => {
  const stub = new StubServer().push(list([bare("a", "1")], "10", "tok"));
  const page = await listPage(stub.client(), configMaps, {
    limit: 2,
    continue: "prev",
    labelSelector: "x=y",
  });
  const query = stub.requests[0].query;
  assert.equal(query.get("limit"), "2");
  assert.equal(query.get("continue"), "prev");
  assert.equal(query.get("labelSelector"), "x=y");
  assert.equal(page.metadata.continue, "tok");
  assert.deepEqual(page.items[0], { apiVersion: "v1", kind: "ConfigMap", ...bare("a", "1") });
});

test("paged list: an expired continue token restarts the list from scratch and says so", async () => {
  const stub = new StubServer().push(
    list([bare("a", "1"), bare("b", "2")], "10", "t1"),
    status(410, expiredContinue),
    list([bare("x", "20")], "30", "t2"),
    list([bare("y", "21")], "30"),
  );
  const pages = [];
  for await (const page of listAll(stub.client(), configMaps, { pageSize: 2 })) pages.push(page);
  assert.deepEqual(
    pages.map((p) => [p.restart, p.resourceVersion, p.items.map((i) => i.metadata?.name)]),
    [[false, "10", ["a", "b"]], [true, "30", ["x"]], [false, "30", ["y"]]],
  );
  const queries = stub.requests.map((r) => [r.query.get("limit"), r.query.get("continue")]);
  assert.deepEqual(queries, [["2", null], ["2", "t1"], ["2", null], ["2", "t2"]]);
});

test("paged list: listSnapshot never mixes snapshots; a second expiry falls back to one unpaged list", async () => {
  const stub = new StubServer().push(
    list([bare("a", "1")], "10", "t1"),
    status(410, expiredContinue),
    list([bare("b", "2")], "20", "t2"),
    status(410, expiredContinue),
    list([bare("c", "3"), bare("d", "4")], "40"),
  );
  const snapshot = await listSnapshot(stub.client(), configMaps, { pageSize: 1 });
  assert.deepEqual(snapshot.items.map((i) => i.metadata?.name), ["c", "d"]);
  assert.equal(snapshot.resourceVersion, "40");
  assert.equal(stub.requests[4].query.get("limit"), null);
  assert.equal(stub.requests[4].query.get("continue"), null);
});

test("paged list: a 410 on the first page (no continue token) is thrown", async () => {
  const stub = new StubServer().push(status(410, { ...expiredContinue, message: "too old" }));
  await assert.rejects(
    listSnapshot(stub.client(), configMaps, {
      resourceVersion: "1",
      resourceVersionMatch: "Exact",
    }),
    (e: unknown) => e instanceof ApiError && e.expired,
  );
});

test("paged list: Informer.init() after an expired continue token knows only the new snapshot", async () => {
  const stub = new StubServer().push(
    list([bare("a", "1")], "10", "t1"),
    status(410, expiredContinue),
    list([bare("b", "2")], "20"),
    status(410, { ...expiredContinue, message: "too old resource version" }),
    list([], "30"),
  );
  const inf = new Informer(stub.client(), configMaps, {
    pageSize: 1,
    sleep: new Sleeps().sleep,
  });
  await inf.init();
  assert.equal(inf.version(), "20");
  // After a 410 the new list is empty: only b (from the new snapshot) is reported deleted.
  await inf.poll();
  const deleted = [];
  for (let e = inf.pop(); e; e = inf.pop()) {
    assert.equal(e.type, "DELETED");
    if (e.type === "DELETED") deleted.push(e.object.metadata?.name);
  }
  assert.deepEqual(deleted, ["b"]);
  assert.equal(inf.version(), "30");
});
