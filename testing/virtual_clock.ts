/**
 * A {@linkcode Clock} whose time moves only when a test says so.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
}

/**
 * A virtual clock for deterministic tests of timing logic (backoff, requeue, leases): `sleep()`
 * never touches a real timer; {@linkcode VirtualClock.advance} moves time forward and wakes the
 * sleepers due by then, in order, letting the code they wake run (microtasks and their follow-up
 * sleeps) before the next one fires.
 *
 * @example
 * ```ts
 * import { VirtualClock } from "@denokube/kube/testing";
 * const clock = new VirtualClock();
 * let woke = false;
 * clock.sleep(1_000).then(() => woke = true);
 * await clock.advance(999); // woke === false
 * await clock.advance(1); // woke === true
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  /**
   * Creates a clock that stands still until {@linkcode VirtualClock.advance} moves it.
   *
   * @param start The initial time in milliseconds (default 0).
   */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /**
   * Waits until the virtual time has moved `ms` further.
   *
   * @param ms Milliseconds to wait.
   * @param signal Rejects with its reason when aborted first.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer: Timer = {
        at: this.#now + Math.max(0, ms),
        seq: this.#seq++,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#timers.push(timer);
    });
  }

  /** How many sleepers are waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the next sleeper is due, or `undefined` when none waits. */
  get nextAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.#timers) if (next === undefined || t.at < next) next = t.at;
    return next;
  }

  /**
   * Moves time forward by `ms`, waking every sleeper due by then in order of due time (then of
   * sleep order). Between wakes, the woken code runs until it waits again, so a sleep started by a
   * woken sleeper fires in the same call when it is due within the window.
   *
   * @param ms Milliseconds to move forward (≥ 0).
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`VirtualClock.advance: ms must be ≥ 0, got ${ms}`);
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#earliest();
      if (!next || next.at > end) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      if (next.at > this.#now) this.#now = next.at;
      next.resolve();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /**
   * Advances to the next due sleeper (if any) and wakes it, with everything due at the same time.
   *
   * @returns `false` when no sleeper was waiting.
   */
  async tick(): Promise<boolean> {
    await settle();
    const at = this.nextAt;
    if (at === undefined) return false;
    await this.advance(Math.max(0, at - this.#now));
    return true;
  }

  /**
   * Lets pending promise callbacks run without moving time.
   */
  async flush(): Promise<void> {
    await settle();
  }

  #earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets promise chains run: a macrotask turn, which drains every microtask queued before it. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
