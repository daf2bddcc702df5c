/**
 * Exponential backoff with jitter, as a separate layer that the client's retries and the
 * watch loops share.
 *
 * @module
 */

/** Settings of a {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay in milliseconds. Default 800 (client-go's reflector). */
  initialMs?: number;
  /** Largest delay in milliseconds. Default 30 000. */
  maxMs?: number;
  /** Multiplier applied after each failure. Default 2. */
  factor?: number;
  /** Fraction of random jitter added to each delay (0.5 → up to +50 %). Default 0.5. */
  jitter?: number;
  /** After this many milliseconds without a failure, the delay resets. Default 120 000. */
  resetAfterMs?: number;
  /** Random source in [0, 1), replaceable for tests. */
  random?: () => number;
  /** Clock in milliseconds, replaceable for tests. */
  now?: () => number;
}

/**
 * Computes successive retry delays: `initialMs` doubling up to `maxMs`, each then stretched by up
 * to `jitter` (so at most `maxMs * (1 + jitter)`), and back to `initialMs` after `resetAfterMs`
 * of health.
 */
export class Backoff {
  #initial: number;
  #max: number;
  #factor: number;
  #jitter: number;
  #resetAfter: number;
  #random: () => number;
  #now: () => number;
  #current: number;
  #lastFailure = -Infinity;

  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 800;
    this.#max = options.maxMs ?? 30_000;
    this.#factor = options.factor ?? 2;
    this.#jitter = options.jitter ?? 0.5;
    this.#resetAfter = options.resetAfterMs ?? 120_000;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#current = this.#initial;
  }

  /** Returns the delay before the next attempt and advances the sequence. */
  next(): number {
    const now = this.#now();
    if (now - this.#lastFailure >= this.#resetAfter) this.#current = this.#initial;
    this.#lastFailure = now;
    const base = this.#current;
    this.#current = Math.min(this.#max, this.#current * this.#factor);
    // Jitter is applied after the cap, so that clients at the cap do not retry in lockstep.
    return base * (1 + this.#jitter * this.#random());
  }

  /** Starts again from the initial delay. */
  reset(): void {
    this.#current = this.#initial;
    this.#lastFailure = -Infinity;
  }
}

/**
 * Waits for `ms` milliseconds, or rejects with the signal's reason when it aborts first. The timer
 * is always cleared.
 *
 * @param ms Milliseconds to wait.
 * @param signal Optional abort signal.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
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
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Parses a `Retry-After` header (seconds, or an HTTP date) into seconds.
 *
 * @param value The header value.
 * @param now The current time in milliseconds.
 * @returns Seconds to wait, or `undefined` when absent or unparseable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
