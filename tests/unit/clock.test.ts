import assert from "node:assert/strict";
import { test } from "../_test.ts";
import { systemClock } from "../../clock.ts";
import { VirtualClock } from "../../testing/mod.ts";

test("VirtualClock: sleepers wake in due order, only when time reaches them", async () => {
  const clock = new VirtualClock(1_000);
  const woke: string[] = [];
  clock.sleep(300).then(() => woke.push(`b@${clock.now()}`));
  clock.sleep(100).then(() => woke.push(`a@${clock.now()}`));
  clock.sleep(300).then(() => woke.push(`c@${clock.now()}`));
  assert.equal(clock.pending, 3);
  assert.equal(clock.nextAt, 1_100);
  await clock.advance(99);
  assert.deepEqual(woke, []);
  await clock.advance(1);
  assert.deepEqual(woke, ["a@1100"]);
  await clock.advance(500);
  assert.deepEqual(woke, ["a@1100", "b@1300", "c@1300"]);
  assert.equal(clock.now(), 1_600);
  assert.equal(clock.pending, 0);
});

test("VirtualClock: a sleep started by a woken sleeper fires within the same advance", async () => {
  const clock = new VirtualClock();
  const times: number[] = [];
  (async () => {
    for (let i = 0; i < 3; i++) {
      await clock.sleep(10);
      times.push(clock.now());
    }
  })();
  await clock.advance(25);
  assert.deepEqual(times, [10, 20]);
  assert.equal(await clock.tick(), true);
  assert.deepEqual(times, [10, 20, 30]);
  assert.equal(await clock.tick(), false);
});

test("VirtualClock: abort rejects with the reason and removes the timer", async () => {
  const clock = new VirtualClock();
  const controller = new AbortController();
  const sleeping = clock.sleep(1_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(sleeping, /stop/);
  assert.equal(clock.pending, 0);
  await assert.rejects(clock.sleep(1, controller.signal), /stop/);
  await assert.rejects(clock.advance(-1), RangeError);
});

test("systemClock: sleep resolves, and rejects on abort without leaking its timer", async () => {
  await systemClock.sleep(1);
  const controller = new AbortController();
  const sleeping = systemClock.sleep(60_000, controller.signal);
  controller.abort(new Error("gone"));
  await assert.rejects(sleeping, /gone/);
  assert.ok(Math.abs(systemClock.now() - Date.now()) < 1_000);
});
