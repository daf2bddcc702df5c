// The backoff layer: 800 ms doubling to 30 s with jitter (also at the cap), reset after 2 min.

import assert from "node:assert/strict";
import { Backoff, parseRetryAfter } from "../../_client/retry.ts";
import { test } from "../_test.ts";

test("retry policy: backoff: doubles from 800 ms to the 30 s cap; jitter stays on at the cap", () => {
  let now = 0;
  const noJitter = new Backoff({ random: () => 0, now: () => now });
  const delays = Array.from({ length: 8 }, () => noJitter.next());
  assert.deepEqual(delays, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
  const spread = new Backoff({ random: () => 0.999, now: () => now });
  for (let i = 0; i < 10; i++) spread.next();
  // At the cap the delay still varies, so many clients do not retry in lockstep.
  assert.ok(spread.next() > 30_000);
  assert.ok(spread.next() < 45_000);
  now += 120_000; // two minutes of health
  assert.equal(noJitter.next(), 800);
});

test("retry policy: parseRetryAfter: seconds, HTTP dates, garbage", () => {
  assert.equal(parseRetryAfter("7"), 7);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.equal(parseRetryAfter(null), undefined);
});
