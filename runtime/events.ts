/**
 * {@linkcode EventRecorder}: records Kubernetes Events (`events.k8s.io/v1`) about objects, the
 * way `kubectl events` and `kubectl describe` show them: repeated events become one event with a
 * growing `series.count`, and a spam limit per object keeps a crash-looping controller from
 * flooding the API server.
 *
 * @example Record an event about a Deployment
 * ```ts ignore
 * import { Api, Client, EventRecorder } from "@denokube/kube";
 * await using client = await Client.infer();
 * const recorder = new EventRecorder(client, { reportingController: "example.com/web" });
 * const web = await client.get(Api.appsV1Deployment().within("default"), "web");
 * await recorder.publish(web, { reason: "Scaled", action: "Scale", note: "scaled to 3" });
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { Api, type KubeObject } from "../api.ts";
import type { Client } from "../client.ts";
import { type Clock, systemClock } from "../clock.ts";
import { isNotFound } from "../errors.ts";
import { microTime } from "./_microtime.ts";
import { envNeed, isGranted } from "../_client/permissions.ts";
import { runtime } from "../_platform/mod.ts";

const log = getLogger(["kube", "events"]);

/** The `events.k8s.io/v1` Event resource. */
export const EVENTS_API: Api<KubeEvent> = new Api<KubeEvent>({
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
});

/** A reference to an object, as in an Event's `regarding` and `related`. */
export interface EventObjectReference {
  /** `group/version` of the object. */
  apiVersion?: string;
  /** Kind of the object. */
  kind?: string;
  /** Name of the object. */
  name?: string;
  /** Namespace of the object (absent for cluster-scoped objects). */
  namespace?: string;
  /** UID of the object. */
  uid?: string;
  /** Resource version of the object when the event was recorded. */
  resourceVersion?: string;
  /** A field of the object the event is about, e.g. `spec.containers{web}`. */
  fieldPath?: string;
}

/** An `events.k8s.io/v1` Event as stored. */
export interface KubeEvent extends KubeObject {
  /** When the event first happened (MicroTime, RFC 3339 with microseconds). */
  eventTime: string;
  /** The controller that reported it, e.g. `clux.dev/foo-controller`. */
  reportingController: string;
  /** The instance of that controller, e.g. its pod name. */
  reportingInstance: string;
  /** What the controller did or failed to do, e.g. `Apply`. */
  action: string;
  /** Why, in UpperCamelCase, e.g. `InvalidSpec`. */
  reason: string;
  /** `Normal` or `Warning`. */
  type?: "Normal" | "Warning";
  /** Human-readable description (at most 1 kB). */
  note?: string;
  /** The object the event is about. */
  regarding?: EventObjectReference;
  /** A second object involved, if any. */
  related?: EventObjectReference;
  /** Present once the event happened more than once. */
  series?: { count: number; lastObservedTime: string };
}

/** What to record: see {@linkcode EventRecorder.prototype.publish}. */
export interface EventInit {
  /** `Normal` (default) or `Warning`. */
  type?: "Normal" | "Warning";
  /** Why, in UpperCamelCase, e.g. `Applied`, `InvalidSpec` (required, ≤ 128 characters). */
  reason: string;
  /** What was done or attempted, e.g. `Apply`, `Cleanup` (required, ≤ 128 characters). */
  action: string;
  /** Human-readable description; cut to 1 kB. */
  note?: string;
  /** A second object involved, e.g. the Deployment a Foo created. */
  related?: KubeObject;
}

/** Options of {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  /** `reportingController` of every event, e.g. `clux.dev/foo-controller` (required). */
  reportingController: string;
  /**
   * `reportingInstance`: which replica of the controller. Default: `$POD_NAME` when readable,
   * else the controller name with a random suffix.
   */
  reportingInstance?: string;
  /** Clock for event times, series windows and the spam limit. Default: the system clock. */
  clock?: Clock;
  /**
   * Repeats of the same event (same object, type, reason, action, note) within this many
   * milliseconds of the previous occurrence update the event's series instead of making a new
   * event. Default 360 000 (6 minutes, like client-go).
   */
  seriesWindowMs?: number;
  /**
   * Spam limit per regarding object: at most `burst` events at once, refilled by one every
   * `refillMs`. Events over the limit are dropped (logged at debug). Default burst 25, refill
   * 300 000 ms (client-go's event spam filter).
   */
  spamLimit?: { burst: number; refillMs: number };
}

interface SeriesEntry {
  name: string;
  namespace: string;
  count: number;
  lastAt: number;
}

/** How many series the recorder remembers (oldest forgotten first). */
const MAX_SERIES = 4096;
const MAX_NOTE_BYTES = 1024;

/**
 * Records `events.k8s.io/v1` Events. Publishing never throws: a failure to write an event is
 * logged (events are best effort, as in every Kubernetes controller) and counted.
 *
 * Cluster-scoped objects (Nodes, Namespaces, cluster-scoped custom resources) get their events
 * in the `default` namespace, as client-go does.
 *
 * @example
 * ```ts ignore
 * import { Client, EventRecorder } from "@denokube/kube";
 * await using client = await Client.infer();
 * const recorder = new EventRecorder(client, { reportingController: "example.com/ctl" });
 * await recorder.publish(node, { type: "Warning", reason: "DiskPressure", action: "Check" });
 * ```
 */
export class EventRecorder {
  /** The `reportingController` of the events. */
  readonly reportingController: string;
  /** The `reportingInstance` of the events. */
  readonly reportingInstance: string;
  #client: Client;
  #clock: Clock;
  #window: number;
  #spam: { burst: number; refillMs: number };
  #series = new Map<string, SeriesEntry>();
  #buckets = new Map<string, { tokens: number; at: number }>();
  #counts = { created: 0, updated: 0, dropped: 0, failed: 0 };
  #inFlight = new Map<string, Promise<void>>();

  /**
   * Creates a recorder.
   *
   * @param client The client that writes the events.
   * @param options Reporting controller and instance, clock, series window, spam limit.
   */
  constructor(client: Client, options: EventRecorderOptions) {
    if (!options?.reportingController) {
      throw new TypeError(
        'EventRecorder needs a reportingController, e.g. { reportingController: "example.com/my-controller" }',
      );
    }
    this.#client = client;
    this.reportingController = options.reportingController.slice(0, 128);
    this.reportingInstance = (options.reportingInstance ?? defaultInstance(
      this.reportingController,
    )).slice(0, 128);
    this.#clock = options.clock ?? systemClock;
    this.#window = options.seriesWindowMs ?? 360_000;
    this.#spam = options.spamLimit ?? { burst: 25, refillMs: 300_000 };
  }

  /**
   * How many events were created, series updated, dropped by the spam limit, and failed to be
   * written.
   *
   * @returns Plain numbers.
   */
  counts(): { created: number; updated: number; dropped: number; failed: number } {
    return { ...this.#counts };
  }

  /**
   * Records an event about an object: a new Event, or the next occurrence of a series.
   *
   * @param regarding The object the event is about (needs `metadata.name`; `apiVersion` and
   *   `kind` make the reference useful for `kubectl describe`).
   * @param event Type, reason, action, note and an optional related object.
   * @param options `signal` aborts the write (the event is then not recorded).
   * @returns Resolves when the event is written (or dropped, aborted, or failed and logged).
   *
   * @example
   * ```ts ignore
   * await recorder.publish(foo, { type: "Warning", reason: "InvalidSpec", action: "Validate", note: "spec.replicas < 0" });
   * ```
   */
  async publish(
    regarding: KubeObject,
    event: EventInit,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const name = regarding?.metadata?.name;
    if (!name) {
      throw new TypeError("EventRecorder.publish: the regarding object has no metadata.name");
    }
    if (!event?.reason || !event.action) {
      throw new TypeError(
        'EventRecorder.publish: an event needs a reason and an action, e.g. { reason: "Applied", action: "Apply" }',
      );
    }
    const ref = referenceOf(regarding);
    const namespace = ref.namespace ?? "default";
    const note = event.note === undefined ? undefined : truncateNote(event.note);
    const type = event.type ?? "Normal";
    const related = event.related ? referenceOf(event.related) : undefined;
    const now = this.#clock.now();
    const objectKey = `${ref.apiVersion}/${ref.kind}/${namespace}/${name}/${ref.uid ?? ""}`;
    const seriesKey = JSON.stringify([
      objectKey,
      type,
      event.reason,
      event.action,
      note ?? "",
      related ? `${related.kind}/${related.namespace ?? ""}/${related.name}` : "",
    ]);
    if (!this.#allow(objectKey, now)) {
      this.#counts.dropped++;
      log.debug("Dropped event {reason} about {object}: over the spam limit", {
        reason: event.reason,
        object: `${ref.kind} ${namespace}/${name}`,
      });
      return;
    }
    // Occurrences of one series are written one after the other: a second publish while the
    // first one's create is in flight becomes its count 2, not a second Event.
    const previous = this.#inFlight.get(seriesKey);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    this.#inFlight.set(seriesKey, mine);
    if (previous) await previous;
    const signal = options.signal;
    const api = EVENTS_API.within(namespace);
    const series = this.#series.get(seriesKey);
    try {
      signal?.throwIfAborted();
      if (series && now - series.lastAt <= this.#window) {
        series.count++;
        series.lastAt = now;
        try {
          await this.#client.patch(api, series.name, {
            series: { count: series.count, lastObservedTime: microTime(now) },
          }, { signal });
          this.#counts.updated++;
          return;
        } catch (e) {
          if (!isNotFound(e)) throw e;
          // The event expired (the server keeps events an hour): start a new one.
        }
      }
      const created = await this.#client.create(api, {
        metadata: { name: `${name}.${eventSuffix(now)}`, namespace },
        eventTime: microTime(now),
        reportingController: this.reportingController,
        reportingInstance: this.reportingInstance,
        action: event.action.slice(0, 128),
        reason: event.reason.slice(0, 128),
        type,
        note,
        regarding: ref,
        related,
      }, { signal });
      this.#counts.created++;
      this.#series.delete(seriesKey);
      this.#series.set(seriesKey, {
        name: created.metadata?.name ?? "",
        namespace,
        count: 1,
        lastAt: now,
      });
      if (this.#series.size > MAX_SERIES) {
        this.#series.delete(this.#series.keys().next().value!);
      }
    } catch (e) {
      if (signal?.aborted) return; // the caller gave up: not a failure to report
      this.#counts.failed++;
      log.warn("Could not record event {reason} about {object}: {error}", {
        reason: event.reason,
        object: `${ref.kind} ${namespace}/${name}`,
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      release();
      if (this.#inFlight.get(seriesKey) === mine) this.#inFlight.delete(seriesKey);
    }
  }

  /** The spam limit: a token bucket per regarding object. */
  #allow(objectKey: string, now: number): boolean {
    const { burst, refillMs } = this.#spam;
    let bucket = this.#buckets.get(objectKey);
    if (!bucket) {
      bucket = { tokens: burst, at: now };
      this.#buckets.set(objectKey, bucket);
      if (this.#buckets.size > MAX_SERIES) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / refillMs);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

/**
 * The reference an Event keeps of an object.
 *
 * @param object The object.
 * @returns Its apiVersion, kind, name, namespace, uid and resourceVersion.
 */
function referenceOf(object: KubeObject): EventObjectReference {
  const meta = object.metadata ?? {};
  const ref: EventObjectReference = {
    apiVersion: object.apiVersion,
    kind: object.kind,
    name: meta.name,
  };
  if (meta.namespace) ref.namespace = meta.namespace;
  if (meta.uid) ref.uid = meta.uid;
  if (meta.resourceVersion) ref.resourceVersion = meta.resourceVersion;
  return ref;
}

/** The name suffix client-go uses: the time in nanoseconds, in hexadecimal. */
function eventSuffix(ms: number): string {
  const random = Math.floor(Math.random() * 1_000_000);
  return (BigInt(Math.floor(ms)) * 1_000_000n + BigInt(random)).toString(16);
}

function truncateNote(note: string): string {
  const bytes = new TextEncoder().encode(note);
  if (bytes.length <= MAX_NOTE_BYTES) return note;
  // Cut on a character boundary.
  return new TextDecoder().decode(bytes.slice(0, MAX_NOTE_BYTES - 3)).replace(/\uFFFD$/, "") +
    "...";
}

function defaultInstance(controller: string): string {
  if (isGranted(envNeed("POD_NAME"))) {
    const pod = runtime().env("POD_NAME");
    if (pod) return pod;
  }
  const base = controller.replace(/[^a-zA-Z0-9.-]/g, "-");
  return `${base}-${crypto.randomUUID().slice(0, 8)}`;
}
