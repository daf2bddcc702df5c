/**
 * Time as a seam: everything in this library that waits or reads the time for a timing decision
 * (backoff, requeue, lease expiry) goes through a {@linkcode Clock}, so that tests can drive it
 * with the `VirtualClock` of `@denokube/kube/testing` instead of sleeping.
 *
 * @module
 */

/** A source of time and of timers. */
export interface Clock {
  /** Milliseconds since the epoch (or any fixed origin: only differences matter). */
  now(): number;
  /**
   * Waits `ms` milliseconds. Rejects with the signal's reason when it aborts first; a timer left
   * behind is always cleared.
   *
   * @param ms Milliseconds to wait (negative counts as 0).
   * @param signal Optional abort signal.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The real clock: `Date.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * import { systemClock } from "@denokube/kube";
 * await systemClock.sleep(1);
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
});
