/**
 * {@linkcode ControllerHarness}: runs controllers against a {@linkcode FakeApiServer} with a
 * {@linkcode VirtualClock}, so that backoff, requeue and debounce tests are instant and exact.
 *
 * @module
 */
import type { KubeObject } from "../api.ts";
import { Client } from "../client.ts";
import type { Controller, ReconcileOutcome } from "../runtime/controller.ts";
import type { Config } from "../config.ts";
import { VirtualClock } from "./virtual_clock.ts";

/**
 * What the harness needs of a server: the `FakeApiServer` of this module satisfies it. (A
 * structural type, so that the harness does not import the entry point that re-exports it.)
 */
export interface HarnessServer {
  /** A config whose client reaches the server. */
  config(): Config;
  /** Answers one request. */
  fetch(input: Request | URL | string, init?: RequestInit): Promise<Response>;
  /** Serves one more resource type (throws when it is served already). */
  registerResource(definition: {
    group: string;
    version: string;
    kind: string;
    plural: string;
    namespaced: boolean;
  }): void;
}

/** A request the harness saw going to the fake server. */
export interface HarnessRequest {
  /** The HTTP method. */
  method: string;
  /** The URL. */
  url: URL;
  /** Whether it is a watch (`watch=1`). */
  watch: boolean;
}

/** Options of {@linkcode ControllerHarness}. */
export interface ControllerHarnessOptions {
  /** The clock (default: a new VirtualClock at 0). Pass it to your controllers as `clock`. */
  clock?: VirtualClock;
  /**
   * Delays every chunk of every watch stream by this many virtual milliseconds: the caches see
   * a write that much later than its writer, as behind a busy API server. Default 0.
   */
  watchLatencyMs?: number;
}

/**
 * Runs controllers against a fake API server on a virtual clock.
 *
 * `harness.client` talks to the server and records every request ({@linkcode
 * ControllerHarness.prototype.requests}); controllers built with `clock: harness.clock` wait
 * only virtual time; {@linkcode ControllerHarness.prototype.settle} lets everything that can run
 * without time passing run; {@linkcode ControllerHarness.prototype.advance} moves time.
 *
 * @example
 * ```ts ignore
 * import { Api, Controller } from "@denokube/kube";
 * import { ControllerHarness, FakeApiServer } from "@denokube/kube/testing";
 *
 * await using server = new FakeApiServer();
 * await using h = new ControllerHarness(server);
 * const seen: string[] = [];
 * h.start(new Controller(h.client, Api.v1ConfigMap(), (cm) => {
 *   seen.push(cm.metadata!.name!);
 * }, { clock: h.clock }));
 * await h.settle();
 * ```
 */
export class ControllerHarness implements AsyncDisposable {
  /** The fake server. */
  readonly server: HarnessServer;
  /** The virtual clock. */
  readonly clock: VirtualClock;
  /** A client of the server whose requests are recorded. */
  readonly client: Client;
  /** Every request made through {@linkcode ControllerHarness.prototype.client}, in order. */
  readonly requests: HarnessRequest[] = [];
  /** Every outcome of every started controller, in order. */
  readonly outcomes: ReconcileOutcome[] = [];
  #runs: {
    name: string;
    stop: AbortController;
    done: Promise<unknown>;
    off: () => void;
    ended: boolean;
  }[] = [];
  #latency: number;

  /**
   * Creates a harness on a server. Registers `events.k8s.io/v1` Events on it (for the event
   * recorder) when they are not served yet.
   *
   * @param server The fake server.
   * @param options Clock and watch latency.
   */
  constructor(server: HarnessServer, options: ControllerHarnessOptions = {}) {
    this.server = server;
    this.clock = options.clock ?? new VirtualClock();
    this.#latency = options.watchLatencyMs ?? 0;
    try {
      server.registerResource({
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
      });
    } catch {
      // Already served.
    }
    const fetch = (input: Request | URL | string, init?: RequestInit) => this.#fetch(input, init);
    this.client = new Client(server.config(), { fetch, maxRetries: 0 });
  }

  /**
   * How many watch requests were made, optionally for one plural resource.
   *
   * @param plural e.g. `configmaps`.
   * @returns The count.
   */
  watchRequests(plural?: string): number {
    return this.requests.filter((r) =>
      r.watch && (plural === undefined || r.url.pathname.endsWith(`/${plural}`))
    ).length;
  }

  /**
   * Starts a controller (its `run`), recording its outcomes. It stops with
   * {@linkcode ControllerHarness.prototype.stop}.
   *
   * @param controller A controller built with `clock: harness.clock` and `harness.client`.
   * @returns The promise of its run (settles after stop).
   */
  start<T extends KubeObject>(controller: Controller<T>): Promise<void> {
    const stop = new AbortController();
    const off = controller.onOutcome((outcome) => this.outcomes.push(outcome));
    const done = controller.run(stop.signal);
    done.catch(() => {});
    const run = { name: controller.name, stop, done, off, ended: false };
    done.finally(() => run.ended = true).catch(() => {});
    this.#runs.push(run);
    return done;
  }

  /**
   * Lets every promise, stream and reconcile that can go on without time passing go on: returns
   * when a few rounds in a row produced no request and no outcome.
   *
   * @param maxRounds Upper bound of macrotask rounds. Default 200.
   */
  async settle(maxRounds = 200): Promise<void> {
    let quiet = 0;
    let last = -1;
    for (let i = 0; i < maxRounds && quiet < 5; i++) {
      await this.clock.flush();
      const mark = this.requests.length * 1_000_003 + this.outcomes.length;
      quiet = mark === last ? quiet + 1 : 0;
      last = mark;
    }
  }

  /**
   * Moves virtual time forward (waking sleepers in order), then settles.
   *
   * @param ms Milliseconds.
   */
  async advance(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    // Step through every due timer, settling in between: a woken reconcile may start streams
    // and schedule sooner timers.
    for (;;) {
      await this.settle();
      const next = this.clock.nextAt;
      if (next === undefined || next > end) break;
      await this.clock.advance(Math.max(0, next - this.clock.now()));
    }
    await this.clock.advance(Math.max(0, end - this.clock.now()));
    await this.settle();
  }

  /**
   * Stops every started controller and waits for their runs to end (rejections are returned,
   * not thrown).
   *
   * @returns The errors of runs that rejected.
   */
  async stop(): Promise<unknown[]> {
    const runs = this.#runs;
    this.#runs = [];
    for (const run of runs) run.stop.abort();
    const errors: unknown[] = [];
    // A grace period runs on the virtual clock: keep time moving until every run ended.
    let finished = false;
    const all = Promise.allSettled(runs.map((r) => r.done)).then((results) => {
      finished = true;
      for (const r of results) if (r.status === "rejected") errors.push(r.reason);
    });
    for (let round = 0; !finished; round++) {
      if (round === 10_000) {
        throw new Error(
          `ControllerHarness.stop: controller ${
            runs.filter((r) => !r.ended).map((r) => r.name).join(", ")
          } did not stop (a reconcile that ignores ctx.signal?)`,
        );
      }
      await this.settle(20);
      if (finished) break;
      if (!(await this.clock.tick())) await this.clock.flush();
    }
    await all;
    for (const run of runs) run.off();
    return errors;
  }

  /** Stops the controllers (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #fetch(input: Request | URL | string, init?: RequestInit): Promise<Response> {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : String(input));
    const watch = url.searchParams.get("watch") === "1" || url.searchParams.get("watch") === "true";
    this.requests.push({ method: init?.method ?? request?.method ?? "GET", url, watch });
    const response = await this.server.fetch(input, init);
    if (!watch || this.#latency <= 0 || !response.body) return response;
    const clock = this.clock;
    const latency = this.#latency;
    const delayed = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          await clock.sleep(latency);
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(delayed, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }
}
