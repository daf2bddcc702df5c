// Internal: the one retry policy of the library. Exponential backoff with jitter, the
// `Retry-After` parsing and its single cap, the classification of failures (transient, permanent,
// relist — from the status table in `_client/status_table.ts`), and the pacer of the watch loop. The
// client's request retries (`_client/transport.ts`), the watch loop (`_client/watcher.ts`) and the public
// `isTransient` (`errors.ts`) all decide from here.

import type { Logger } from "@logtape/logtape";
import { type Clock, systemClock } from "../clock.ts";
import { ApiError } from "../errors.ts";
import { statusClass } from "./status_table.ts";
import { describeError, redactText } from "./redact.ts";

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
  /** Random source in [0, 1). Test seam: leave unset in programs. */
  random?: () => number;
  /** Clock in milliseconds. Test seam: leave unset (the loops pass their {@linkcode Clock}). */
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

/**
 * The longest `Retry-After` honoured, in milliseconds, by the client's request retries and by the
 * watch loop alike: a server asking for more is retried after this long.
 */
export const MAX_RETRY_AFTER_MS = 60_000;

/** What to do after a failure of a list or watch. */
export type Recovery = "relist" | "retry" | "fail";

/**
 * Classifies a failure of a list or watch by the status table:
 *
 * - `relist`: 410 Expired/Gone (as a status or a reason): the resource version is too old.
 * - `retry`: transient: the server could not be reached, the stream broke, stalled or sent a
 *   malformed line (status 0), 408, 429, or any 5xx.
 * - `fail`: anything else (401, 403, 404, 400, 422, …, or a non-API error): permanent.
 *
 * @param error The failure.
 * @returns The recovery.
 */
export function recoveryFor(error: unknown): Recovery {
  if (!(error instanceof ApiError)) return "fail";
  if (error.expired) return "relist";
  switch (statusClass(error.status)) {
    case "transient":
      return "retry";
    case "relist":
      return "relist";
    default:
      return "fail";
  }
}

/**
 * The delay before retrying after a transient failure: the server's `Retry-After` when it sent
 * one (at most {@linkcode MAX_RETRY_AFTER_MS}), else the next backoff step.
 *
 * @param error The failure.
 * @param backoff The backoff sequence.
 * @returns Milliseconds to wait.
 */
export function retryDelay(error: unknown, backoff: Backoff): number {
  const after = error instanceof ApiError ? error.retryAfterSeconds : undefined;
  if (after !== undefined && Number.isFinite(after) && after >= 0) {
    backoff.next(); // a server that asks for patience still counts as a failure
    return Math.min(after * 1000, MAX_RETRY_AFTER_MS);
  }
  return backoff.next();
}

/** A sleep function: waits `ms`, rejects with the signal's reason on abort. */
export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Options of {@linkcode RetryPacer}. */
export interface RetryPacerOptions {
  /** Backoff of retries after transient failures. */
  backoff?: BackoffOptions;
  /** The clock the pacer waits on (and the backoff's reset timer reads). Default the system clock. */
  clock?: Clock;
  /** Test seam kept for older tests: a sleep used instead of `clock.sleep`. */
  sleep?: SleepFn;
}

/**
 * The pace of a watch loop: decides after each failure whether to re-list, retry after a delay,
 * or give up, and waits that delay before the next attempt. One place for the rules, the backoff
 * state and their log lines.
 */
export class RetryPacer {
  #backoff: Backoff;
  #sleep: SleepFn;
  #pending = 0;
  #log: Logger;
  #what: string;

  /**
   * @param options Backoff, clock.
   * @param logger The logger of the loop.
   * @param what What the loop does, for log lines: `Watch` or `Sync`.
   */
  constructor(options: RetryPacerOptions, logger: Logger, what: string) {
    const clock = options.clock ?? systemClock;
    this.#backoff = new Backoff({ now: () => clock.now(), ...options.backoff });
    this.#sleep = options.sleep ?? ((ms, signal) => clock.sleep(ms, signal));
    this.#log = logger;
    this.#what = what;
  }

  /** Waits the delay scheduled by the last failure or idle stream, if any. */
  async wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#pending <= 0) return;
    const delay = this.#pending;
    this.#pending = 0;
    await this.#sleep(delay, signal);
  }

  /** A stream ended without a single event: wait a backoff step so as not to hammer the server. */
  idle(path: string): void {
    this.#pending = this.#backoff.next();
    this.#log.debug("{what} of {path} ended without events; again in {delayMs} ms", {
      what: this.#what,
      path,
      delayMs: Math.round(this.#pending),
    });
  }

  /**
   * A relist is due again although nothing was learned since the last one (the watch after it
   * expired at once): wait a backoff step first, as client-go paces every list-and-watch round,
   * so that a server answering 410 to every watch does not get a storm of LISTs.
   */
  relistTooSoon(path: string): void {
    this.#pending = this.#backoff.next();
    this.#log.warn(
      "The watch of {path} expired again right after a relist; listing again in {delayMs} ms",
      { path, delayMs: Math.round(this.#pending) },
    );
  }

  /** Whether a delay is scheduled for the next {@linkcode RetryPacer.prototype.wait}. */
  get pending(): boolean {
    return this.#pending > 0;
  }

  /**
   * Decides after a failure. Throws the signal's reason when aborted, and the error itself when
   * it is permanent; returns `relist` for an expired resource version, and `retry` (with the
   * delay scheduled for {@linkcode RetryPacer.prototype.wait}) for a transient failure.
   *
   * @param error The failure.
   * @param signal The loop's signal.
   * @param path The collection, for log lines.
   * @param resourceVersion The version that expired, for log lines.
   * @returns `relist` or `retry`.
   */
  decide(
    error: unknown,
    signal: AbortSignal | undefined,
    path: string,
    resourceVersion: string | undefined,
  ): "relist" | "retry" {
    if (signal?.aborted) throw signal.reason;
    switch (recoveryFor(error)) {
      case "relist":
        this.#log.info("Resource version {resourceVersion} of {path} expired: listing again", {
          path,
          resourceVersion: resourceVersion ?? "",
        });
        return "relist";
      case "retry": {
        this.#pending = retryDelay(error, this.#backoff);
        this.#log.warn("{what} of {path} failed ({error}); retrying in {delayMs} ms", {
          what: this.#what,
          path,
          error: describe(error),
          delayMs: Math.round(this.#pending),
        });
        return "retry";
      }
      default:
        this.#log.error("{what} of {path} failed permanently: {error}", {
          what: this.#what,
          path,
          error: describe(error),
        });
        throw error;
    }
  }
}

/**
 * A server-side watch timeout for long-running loops: random in [300, 600] seconds, like
 * client-go, so that many watchers do not reconnect at the same time.
 *
 * @returns Seconds.
 */
export function randomWatchTimeout(): number {
  return 300 + Math.floor(Math.random() * 301);
}

/**
 * A short description of an error for a log line (never includes headers or bodies that could
 * hold credentials).
 *
 * @param error The error.
 * @returns The description.
 */
export function describe(error: unknown): string {
  if (error instanceof ApiError) {
    return `${error.status}${error.reason ? ` ${error.reason}` : ""}: ${redactText(error.message)}`;
  }
  return describeError(error);
}
