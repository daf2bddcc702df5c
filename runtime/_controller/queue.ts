// Internal: the level-based work queue of a Controller.
//
// It holds keys, not events: a key queued again while it waits is still one entry (its reasons
// are merged); a key is never handed to two workers at once (a key added while it runs is marked
// dirty and queued again when that run ends); at most `concurrency` keys run together. Delayed
// adds (requeues and retries) wait in a heap ordered by due time; one Clock sleep is armed for
// the earliest of them, so a VirtualClock drives it exactly. An optional token bucket limits how
// many runs start per second across all keys.
//
// Priority: every waiting key has a number (higher runs first; 0 for changes, LOW_PRIORITY for
// the initial sync and resyncs). Keys of one priority run in the order they were queued. A key
// queued again while it waits keeps the higher of the two priorities (raising it moves it to the
// back of the higher level; it is never lowered while it waits). The ready keys are kept in one
// FIFO per priority level; moving a key leaves a stale slot behind (told apart by a token) that
// the head skips, and the arrays are compacted as the head advances, so memory stays bounded by
// the keys queued.

import type { Clock } from "../../clock.ts";

/** Why a key is queued, as the reconcile sees it in `ctx.reason`. */
export type QueueReason = string;

/** What kind of delayed add a timer is: a retry is moot after a success, a requeue is not. */
export type TimerKind = "requeue" | "retry";

/** The priority of keys queued by a change, a requeue or a retry (unless a reconcile says otherwise). */
export const NORMAL_PRIORITY = 0;
/** The priority of keys queued by the initial sync and by resyncs (`reconcileAllOn`). */
export const LOW_PRIORITY = -100;

/** How a key is queued: its priority and an opaque cause (the trace context of the change). */
export interface AddOptions {
  /** Higher runs first. Default {@link NORMAL_PRIORITY}. */
  priority?: number;
  /** Kept with the key (the first few of a burst) and handed to the worker. */
  cause?: unknown;
}

/** What the worker gets besides the key and reasons. */
export interface RunInfo {
  /** The priority the key waited at. */
  priority: number;
  /** The causes collected while the key waited, oldest first (at most a few). */
  causes: unknown[];
}

/** A pending timer of a key; `seq` tells a live heap node from a stale one. */
interface Timer {
  at: number;
  seq: number;
  reason: QueueReason;
  priority: number;
  cause: unknown;
}

interface Entry {
  key: string;
  reasons: QueueReason[];
  causes: unknown[];
  /** The priority it waits at (meaningful while queued, or running and dirty). */
  priority: number;
  /** Tells its live ready slot from stale ones. */
  token: number;
  queued: boolean;
  running: boolean;
  dirty: boolean;
  /** The pending requeue (kept through successes: it is never dropped silently). */
  requeue: Timer | undefined;
  /** The pending retry after a failure (moot after a success). */
  retry: Timer | undefined;
}

interface HeapNode {
  at: number;
  seq: number;
  kind: TimerKind;
  entry: Entry;
}

function live(node: HeapNode): boolean {
  return node.entry[node.kind]?.seq === node.seq;
}

/** The FIFO of the keys waiting at one priority. */
interface Level {
  priority: number;
  entries: Entry[];
  tokens: number[];
  head: number;
}

/** Settings of a {@link WorkQueue}. */
export interface WorkQueueOptions {
  clock: Clock;
  concurrency: number;
  /** Global limit of starts: `qps` tokens per second, up to `burst` saved. */
  rateLimit?: { qps: number; burst: number };
  /** Start paused: keys are collected, none runs until {@link WorkQueue.resume}. */
  paused?: boolean;
  /** Runs one key; the promise settles when the run is over (it must not reject). */
  worker: (key: string, reasons: QueueReason[], info: RunInfo) => Promise<void>;
}

/** How many distinct reasons a waiting key remembers. */
const MAX_REASONS = 8;

/** The work queue; see the module comment. */
export class WorkQueue {
  #clock: Clock;
  #concurrency: number;
  #worker: WorkQueueOptions["worker"];
  #entries = new Map<string, Entry>();
  /** Ready keys by priority, highest first. */
  #levels: Level[] = [];
  #token = 0;
  #heap: HeapNode[] = [];
  #seq = 0;
  #inFlight = 0;
  #depth = 0;
  #stopped = false;
  #paused = false;
  #alarm: AbortController | undefined;
  #alarmAt = Infinity;
  #pumpAt: number | undefined;
  #bucket: { qps: number; burst: number; tokens: number; at: number } | undefined;
  #idle: (() => void)[] = [];

  constructor(options: WorkQueueOptions) {
    if (!(Number.isInteger(options.concurrency) && options.concurrency >= 1)) {
      throw new RangeError(
        `concurrency must be an integer ≥ 1, got ${options.concurrency}`,
      );
    }
    this.#clock = options.clock;
    this.#concurrency = options.concurrency;
    this.#worker = options.worker;
    this.#paused = options.paused ?? false;
    const limit = options.rateLimit;
    if (limit) {
      if (!(limit.qps > 0) || !(limit.burst >= 1)) {
        throw new RangeError(
          `rateLimit needs qps > 0 and burst ≥ 1, got ${JSON.stringify(limit)}`,
        );
      }
      this.#bucket = { ...limit, tokens: limit.burst, at: this.#clock.now() };
    }
  }

  /** Keys waiting to run (not running, not waiting for a timer). */
  get depth(): number {
    return this.#depth;
  }

  /** Keys waiting for a timer (requeue or retry). */
  get scheduled(): number {
    const keys = new Set<Entry>();
    for (const node of this.#heap) if (live(node)) keys.add(node.entry);
    return keys.size;
  }

  /** Runs in progress. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether the key is running now. */
  isRunning(key: string): boolean {
    return this.#entries.get(key)?.running ?? false;
  }

  /** The earliest pending timer of a key, if any. */
  timerOf(key: string): { at: number; kind: TimerKind } | undefined {
    const entry = this.#entries.get(key);
    const { requeue, retry } = entry ?? {};
    if (retry && (!requeue || retry.at < requeue.at)) return { at: retry.at, kind: "retry" };
    return requeue ? { at: requeue.at, kind: "requeue" } : undefined;
  }

  /** Whether a retry timer of the key is pending. */
  hasRetry(key: string): boolean {
    return this.#entries.get(key)?.retry !== undefined;
  }

  /** The priority a waiting key would run at (`undefined` when it does not wait). */
  priorityOf(key: string): number | undefined {
    const entry = this.#entries.get(key);
    return entry && (entry.queued || (entry.running && entry.dirty)) ? entry.priority : undefined;
  }

  /**
   * Queues a key now. A waiting key is not queued twice (it keeps the higher priority); a
   * running key runs again after.
   */
  add(key: string, reason: QueueReason, options: AddOptions = {}): void {
    if (this.#stopped) return;
    const priority = options.priority ?? NORMAL_PRIORITY;
    const entry = this.#entry(key);
    const waiting = entry.queued || (entry.running && entry.dirty);
    const raised = waiting && priority > entry.priority;
    const known = entry.reasons.indexOf(reason);
    if (raised) {
      // The reason that raised it comes first: it is why the key runs now.
      if (known >= 0) entry.reasons.splice(known, 1);
      entry.reasons.unshift(reason);
      if (entry.reasons.length > MAX_REASONS) entry.reasons.length = MAX_REASONS;
    } else if (known < 0 && entry.reasons.length < MAX_REASONS) {
      entry.reasons.push(reason);
    }
    if (options.cause !== undefined && entry.causes.length < MAX_REASONS) {
      if (raised) entry.causes.unshift(options.cause);
      else entry.causes.push(options.cause);
      if (entry.causes.length > MAX_REASONS) entry.causes.length = MAX_REASONS;
    }
    if (!waiting || raised) entry.priority = priority;
    if (entry.running) {
      entry.dirty = true;
      return;
    }
    if (!entry.queued) {
      entry.queued = true;
      this.#depth++;
      this.#push(entry);
    } else if (raised) {
      this.#push(entry); // its old slot goes stale
    }
    this.#pump();
  }

  /**
   * Queues a key after `delayMs`. A key has one requeue and one retry timer, each keeping its
   * earliest time (a later one is ignored, an earlier one replaces it); the two are independent,
   * so a retry never replaces a pending requeue.
   */
  addAfter(
    key: string,
    reason: QueueReason,
    delayMs: number,
    kind: TimerKind,
    options: AddOptions = {},
  ): void {
    if (this.#stopped) return;
    if (!(delayMs > 0)) {
      this.add(key, reason, options);
      return;
    }
    const entry = this.#entry(key);
    const at = this.#clock.now() + delayMs;
    const pending = entry[kind];
    if (pending !== undefined && pending.at <= at) return;
    const timer: Timer = {
      at,
      seq: ++this.#seq,
      reason,
      priority: options.priority ?? NORMAL_PRIORITY,
      cause: options.cause,
    };
    entry[kind] = timer;
    heapPush(this.#heap, { at, seq: timer.seq, kind, entry });
    this.#arm();
  }

  /** Drops the "run again" mark of a running key (its reasons too). */
  clearDirty(key: string): void {
    const entry = this.#entries.get(key);
    if (entry?.running) {
      entry.dirty = false;
      entry.reasons = [];
      entry.causes = [];
    }
  }

  /** Cancels the key's pending timer when it is a retry (after a success). */
  cancelRetry(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) {
      entry.retry = undefined;
      this.#maybeDrop(entry);
    }
  }

  /** Forgets a key: no pending timer, not queued (a running key finishes its run). */
  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#clearTimer(entry);
    entry.dirty = false;
    entry.reasons = [];
    entry.causes = [];
    if (entry.queued) {
      entry.queued = false; // skipped when it reaches the head
      this.#depth--;
    }
    this.#maybeDrop(entry);
  }

  /** Starts handing out keys (after construction with `paused`). */
  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  /** Stops handing out keys and drops every timer; runs in progress go on. */
  stop(): void {
    this.#stopped = true;
    this.#alarm?.abort();
    this.#alarm = undefined;
    this.#alarmAt = Infinity;
    this.#heap = [];
    this.#notifyIdle();
  }

  /** Resolves when no run is in progress (after {@link WorkQueue.stop}: for good). */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #entry(key: string): Entry {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = {
        key,
        reasons: [],
        causes: [],
        priority: NORMAL_PRIORITY,
        token: 0,
        queued: false,
        running: false,
        dirty: false,
        requeue: undefined,
        retry: undefined,
      };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  #clearTimer(entry: Entry): void {
    entry.requeue = undefined;
    entry.retry = undefined;
  }

  #maybeDrop(entry: Entry): void {
    if (!entry.queued && !entry.running && !entry.requeue && !entry.retry) {
      this.#entries.delete(entry.key);
    }
  }

  /** Puts a queued entry at the back of its priority's FIFO. */
  #push(entry: Entry): void {
    entry.token = ++this.#token;
    const levels = this.#levels;
    let i = 0;
    while (i < levels.length && levels[i].priority > entry.priority) i++;
    let level = levels[i];
    if (level === undefined || level.priority !== entry.priority) {
      level = { priority: entry.priority, entries: [], tokens: [], head: 0 };
      levels.splice(i, 0, level);
    }
    level.entries.push(entry);
    level.tokens.push(entry.token);
  }

  /** The first live ready entry (stale slots are dropped on the way), without taking it. */
  #peek(): Entry | undefined {
    const levels = this.#levels;
    while (levels.length > 0) {
      const level = levels[0];
      while (level.head < level.entries.length) {
        const entry = level.entries[level.head];
        if (entry.queued && entry.token === level.tokens[level.head]) return entry;
        level.head++;
      }
      levels.shift();
    }
    return undefined;
  }

  /** Takes the entry {@link WorkQueue.#peek} answered. */
  #take(): void {
    const level = this.#levels[0];
    level.head++;
    if (level.head === level.entries.length) {
      this.#levels.shift();
    } else if (level.head > 1024 && level.head * 2 > level.entries.length) {
      level.entries = level.entries.slice(level.head);
      level.tokens = level.tokens.slice(level.head);
      level.head = 0;
    }
  }

  #pump(): void {
    while (!this.#stopped && !this.#paused && this.#inFlight < this.#concurrency) {
      const entry = this.#peek();
      if (entry === undefined) break;
      const wait = this.#takeToken();
      if (wait > 0) {
        this.#pumpAt = this.#clock.now() + wait;
        this.#arm();
        return;
      }
      this.#take();
      this.#start(entry);
    }
  }

  #start(entry: Entry): void {
    entry.queued = false;
    this.#depth--;
    entry.running = true;
    const reasons = entry.reasons;
    const info: RunInfo = { priority: entry.priority, causes: entry.causes };
    entry.reasons = [];
    entry.causes = [];
    this.#inFlight++;
    this.#worker(entry.key, reasons, info).finally(() => this.#finish(entry));
  }

  #finish(entry: Entry): void {
    this.#inFlight--;
    entry.running = false;
    if (entry.dirty && !this.#stopped) {
      entry.dirty = false;
      entry.queued = true;
      this.#depth++;
      this.#push(entry);
    } else {
      entry.dirty = false;
      this.#maybeDrop(entry);
    }
    if (this.#inFlight === 0) this.#notifyIdle();
    this.#pump();
  }

  #notifyIdle(): void {
    if (this.#inFlight !== 0) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const resolve of waiters) resolve();
  }

  /** Takes a token of the global rate limit; answers how long to wait when there is none. */
  #takeToken(): number {
    const bucket = this.#bucket;
    if (!bucket) return 0;
    const now = this.#clock.now();
    bucket.tokens = Math.min(bucket.burst, bucket.tokens + ((now - bucket.at) * bucket.qps) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / bucket.qps);
  }

  /** Arms one Clock sleep for the earliest timer or rate-limit wait. */
  #arm(): void {
    if (this.#stopped) return;
    while (this.#heap.length > 0 && !live(this.#heap[0])) {
      heapPop(this.#heap);
    }
    const at = Math.min(this.#heap[0]?.at ?? Infinity, this.#pumpAt ?? Infinity);
    if (at === this.#alarmAt) return;
    this.#alarm?.abort();
    this.#alarm = undefined;
    this.#alarmAt = at;
    if (at === Infinity) return;
    const alarm = new AbortController();
    this.#alarm = alarm;
    this.#clock.sleep(Math.max(0, at - this.#clock.now()), alarm.signal).then(
      () => {
        if (this.#alarm !== alarm) return;
        this.#alarm = undefined;
        this.#alarmAt = Infinity;
        this.#fire();
      },
      () => {},
    );
  }

  #fire(): void {
    const now = this.#clock.now();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const node = heapPop(this.#heap)!;
      if (!live(node)) continue;
      const entry = node.entry;
      const timer = entry[node.kind]!;
      entry[node.kind] = undefined;
      this.add(entry.key, timer.reason, { priority: timer.priority, cause: timer.cause });
    }
    if (this.#pumpAt !== undefined && this.#pumpAt <= now) {
      this.#pumpAt = undefined;
      this.#pump();
    }
    this.#arm();
  }
}

function less(a: HeapNode, b: HeapNode): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function heapPush(heap: HeapNode[], node: HeapNode): void {
  heap.push(node);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!less(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function heapPop(heap: HeapNode[]): HeapNode | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length > 0 && last) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l], heap[m])) m = l;
      if (r < heap.length && less(heap[r], heap[m])) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  }
  return top;
}
