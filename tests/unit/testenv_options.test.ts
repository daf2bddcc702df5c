// The test environment's KWOK options are checked before anything starts: a bad rule is a
// RangeError that names the field, and no process or directory is made (no binaries needed).

import assert from "node:assert/strict";
import { startControlPlane } from "../../testenv/control_plane.ts";
import { test } from "../_test.ts";

const target = { address: "127.0.0.1", port: 8080 };

test("testenv: port-forward targets must be on loopback", async () => {
  await assert.rejects(
    startControlPlane({
      build: false,
      kwok: {
        portForward: [{ namespace: "a", target }, {
          namespace: "b",
          target: { address: "10.1.2.3", port: 80 },
        }],
      },
    }),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message.startsWith("kwok.portForward[1].target.address is 10.1.2.3") &&
      e.message.includes("only to loopback"),
  );
  await assert.rejects(
    startControlPlane({
      build: false,
      kwok: { portForward: [{ namespace: "a", target: { address: "::1", port: 70000 } }] },
    }),
    /kwok\.portForward\[0\]\.target\.port is 70000/,
  );
});

test("testenv: exec needs a namespace; nodes a whole number", async () => {
  await assert.rejects(
    startControlPlane({ build: false, kwok: { exec: [{ namespace: "" }] } }),
    (e: unknown) =>
      e instanceof RangeError && /^kwok\.exec\[0\]\.namespace is empty/.test(e.message),
  );
  await assert.rejects(
    startControlPlane({ build: false, cluster: "full", kwok: { nodes: 1.5 } }),
    /kwok\.nodes is 1\.5/,
  );
});

test("testenv: feature gates are checked before anything starts", async () => {
  await assert.rejects(
    startControlPlane({
      build: false,
      featureGates: { ShardedListAndWatch: true, "bad=gate": true },
    }),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message.startsWith("featureGates.bad=gate must be a gate name"),
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    startControlPlane({ build: false, featureGates: { ShardedListAndWatch: "yes" as any } }),
    (e: unknown) => e instanceof RangeError && e.message.includes('got "yes"'),
  );
});
