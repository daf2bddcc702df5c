// The test environment itself: a component of the control plane that dies is reported with its
// last log lines, by assertHealthy() and logs(), and stop() still stops the rest.

import assert from "node:assert/strict";
import { e2eRequired } from "../../testenv/build.ts";
import { startControlPlane } from "../../testenv/control_plane.ts";
import { skipReason } from "./_harness.ts";
import { test } from "../_test.ts";

test({
  name: "e2e: testenv: a component that dies is reported with its last log lines",
  ignore: skipReason !== undefined && !e2eRequired(),
  async fn() {
    await using cp = await startControlPlane({ kwok: { nodes: 1 } });
    assert.deepEqual(cp.components, ["etcd", "kube-apiserver", "kwok"]);
    await cp.assertHealthy();
    Deno.kill(cp.pids().kwok, "SIGKILL");
    let error: unknown;
    for (let i = 0; i < 100 && error === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      error = await cp.assertHealthy().then(() => undefined, (e) => e);
    }
    assert.ok(error instanceof Error, "assertHealthy() rejects once kwok is gone");
    assert.match(error.message, /kwok exited \(signal SIGKILL\)\. Last log lines of .*kwok\.log:/);
    assert.match(error.message, /kwok-node-0/, "the log lines are kwok's");
    assert.match(await cp.logs(5), /--- kwok \(DIED\) ---/);
    assert.doesNotMatch(await cp.logs(5), /kube-apiserver \(DIED\)/);
  },
});
