// The retry policy (_client/retry.ts, _client/status_table.ts): one table of transient / permanent / relist
// statuses, checked against each of its users — the public isTransient, the watch loop's
// recoveryFor, the client's own request retries — and the single Retry-After cap.

import assert from "node:assert/strict";
import { testConfig } from "./_helpers.ts";
import { ApiError, isExpired, isTransient } from "../../errors.ts";
import { Client, type FetchLike } from "../../client.ts";
import { Backoff, MAX_RETRY_AFTER_MS, recoveryFor, retryDelay } from "../../_client/retry.ts";
import { clientRetries, statusClass, TABLED_STATUSES } from "../../_client/status_table.ts";
import { VirtualClock } from "../../testing/mod.ts";
import { test } from "../_test.ts";

const CODES = [...TABLED_STATUSES, 418, 507, 599];

test("retry policy: isTransient agrees with the status table for every code", () => {
  for (const code of CODES) {
    const error = new ApiError({ status: code, message: `HTTP ${code}` });
    assert.equal(isTransient(error), statusClass(code) === "transient", `status ${code}`);
    assert.equal(isExpired(error), statusClass(code) === "relist", `status ${code}`);
  }
  // 408 and 501 are transient everywhere now (the old isTransient left them out).
  assert.equal(isTransient(new ApiError({ status: 408, message: "timeout" })), true);
  assert.equal(isTransient(new ApiError({ status: 501, message: "no" })), true);
  assert.equal(isTransient(new Error("not an ApiError")), false);
});

test("retry policy: the watch loop's recoveryFor agrees with the status table", () => {
  const expected = { transient: "retry", permanent: "fail", relist: "relist" } as const;
  for (const code of CODES) {
    const error = new ApiError({ status: code, message: `HTTP ${code}` });
    assert.equal(recoveryFor(error), expected[statusClass(code)], `status ${code}`);
  }
  // The reason alone also means relist (an ERROR event's Status with reason Gone).
  assert.equal(recoveryFor(new ApiError({ status: 0, reason: "Gone", message: "gone" })), "relist");
  assert.equal(recoveryFor(new TypeError("bug")), "fail");
});

test("retry policy: the client retries exactly the statuses the table says, per method", async () => {
  for (const method of ["GET", "POST"]) {
    for (const code of CODES.filter((c) => c >= 400)) {
      let calls = 0;
      const fetch: FetchLike = () => {
        calls++;
        return Promise.resolve(
          calls === 1
            ? new Response("fail", { status: code, headers: { "Retry-After": "0" } })
            : new Response("{}", { status: 200 }),
        );
      };
      const client = new Client(testConfig(), { fetch, maxRetries: 1, retryBaseMs: 0 });
      const result = await client.request({ method, path: "/x" }).then(
        async (r) => (await r.body?.cancel(), "ok"),
        (e) => e,
      );
      const retried = clientRetries(code, method);
      assert.equal(calls, retried ? 2 : 1, `${method} ${code}`);
      if (retried) assert.equal(result, "ok");
      else assert.ok(result instanceof ApiError && result.status === code, `${method} ${code}`);
      // Transient-or-not, every status the client retries is transient for the loops too.
      if (retried) assert.equal(statusClass(code), "transient");
    }
  }
});

test("retry policy: one Retry-After cap for the client's retries (waited on its clock)", async () => {
  const clock = new VirtualClock();
  let calls = 0;
  const fetch: FetchLike = () =>
    Promise.resolve(
      ++calls === 1
        ? new Response("busy", { status: 429, headers: { "Retry-After": "3600" } })
        : new Response("{}", { status: 200 }),
    );
  const client = new Client(testConfig(), { fetch, clock });
  const pending = client.request({ path: "/x" });
  await clock.advance(MAX_RETRY_AFTER_MS - 1);
  assert.equal(calls, 1, "retried before the cap elapsed");
  await clock.advance(1);
  const response = await pending;
  await response.body?.cancel();
  assert.equal(calls, 2);
});

test("retry policy: the watch loop's Retry-After uses the same cap", () => {
  const backoff = new Backoff({ random: () => 0 });
  const slow = new ApiError({ status: 429, message: "busy", retryAfterSeconds: 3600 });
  assert.equal(retryDelay(slow, backoff), MAX_RETRY_AFTER_MS);
  const soon = new ApiError({ status: 429, message: "busy", retryAfterSeconds: 2 });
  assert.equal(retryDelay(soon, backoff), 2000);
});
