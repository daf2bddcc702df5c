// Internal: the watch streams of the fake API server (mod.ts): newline-delimited JSON events
// from the history or the live store, bookmarks, timeouts, selector transitions and stream faults.
// Not part of the public API.

import type { Status } from "../errors.ts";
import { clone, type JsonObject, metaOf, metaString } from "./_json.ts";
import { apiVersionOf, type ResourceType, storageIdOf } from "./_resources.ts";
import type { FieldSelector, LabelSelector } from "./_selectors.ts";
import { matchesSelectors } from "./_selectors.ts";
import { failure } from "./_status.ts";
import type { FakeCluster, HistoryEvent } from "./_store.ts";

/** A fault that acts on a watch stream after some events. */
export interface StreamFault {
  /** What happens. */
  kind: "close" | "stall" | "malformed-line" | "truncate" | "bookmark-only" | "expire";
  /** Events written before it acts. */
  after: number;
  /** For `expire`: the reason of the ERROR event. */
  reason?: "Expired" | "Gone";
}

/** What a watch request asks for. */
export interface WatchRequest {
  type: ResourceType;
  namespace?: string;
  name?: string;
  labels: LabelSelector;
  fields: FieldSelector;
  resourceVersion?: string;
  sendInitialEvents?: boolean;
  allowWatchBookmarks: boolean;
  timeoutSeconds?: number;
  bookmarkIntervalMs: number;
  /** The WatchList feature gate: legacy watches (RV unset or "0") get the initial-events-end bookmark. */
  watchList: boolean;
  signal?: AbortSignal;
  fault?: StreamFault;
}

const encoder = new TextEncoder();

/** One open watch. */
export class WatchStream {
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  #cluster: FakeCluster;
  #req: WatchRequest;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  #stalled = false;
  #sent = 0;
  #fromRv = 0;
  // The resourceVersion through which this stream has delivered every event (what a bookmark may
  // claim), and whether it has caught up with the store (then the store's version is safe).
  #progressRv = 0;
  #caughtUp = false;
  #inInitial = false;
  #faultFired = false;
  #unsubscribe: (() => void) | undefined;
  #bookmarkTimer: ReturnType<typeof setInterval> | undefined;
  #timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;
  #onDone: (stream: WatchStream) => void;

  constructor(cluster: FakeCluster, req: WatchRequest, onDone: (stream: WatchStream) => void) {
    this.#cluster = cluster;
    this.#req = req;
    this.#onDone = onDone;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.#cleanup();
      },
    });
    this.#start();
  }

  /** Whether the stream has ended (closed, errored or cancelled). */
  get closed(): boolean {
    return this.#closed;
  }

  #matches(object: JsonObject): boolean {
    const { type, namespace, name } = this.#req;
    if (
      type.namespaced && namespace !== undefined && metaString(object, "namespace") !== namespace
    ) {
      return false;
    }
    if (name !== undefined && metaString(object, "name") !== name) return false;
    return matchesSelectors(object, this.#req.labels, this.#req.fields);
  }

  #start(): void {
    const req = this.#req;
    const signal = req.signal;
    if (signal) {
      if (signal.aborted) {
        this.#abort(signal.reason);
        return;
      }
      this.#onAbort = () => this.#abort(signal.reason);
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    if (req.timeoutSeconds !== undefined && req.timeoutSeconds > 0) {
      this.#timeoutTimer = setTimeout(() => this.close(), req.timeoutSeconds * 1000);
    }
    if (req.allowWatchBookmarks && req.bookmarkIntervalMs > 0) {
      this.#bookmarkTimer = setInterval(() => this.#bookmark(false), req.bookmarkIntervalMs);
    }
    this.#checkFault();
    if (this.#closed || this.#stalled) return;

    const cluster = this.#cluster;
    const rvText = req.resourceVersion ?? "";
    const legacy = rvText === "" || rvText === "0";
    let sendInitial = req.sendInitialEvents;
    let endBookmark = false;
    if (sendInitial === undefined && legacy) {
      sendInitial = true;
      endBookmark = req.watchList && req.allowWatchBookmarks;
    } else if (sendInitial === true) {
      endBookmark = req.allowWatchBookmarks;
    }
    let from = cluster.resourceVersion;
    if (!legacy) {
      const requested = Number(rvText);
      // A resourceVersion newer than the server's: the real server keeps the stream open and
      // silent until it catches up; here, events newer than it are sent as they happen.
      if (!sendInitial) {
        if (requested < cluster.watchFloor) {
          this.#error(
            failure(
              410,
              "Expired",
              `too old resource version: ${requested} (${cluster.watchFloor})`,
            ),
          );
          return;
        }
        from = requested;
      }
    }
    this.#fromRv = sendInitial ? cluster.resourceVersion : from;
    this.#progressRv = this.#fromRv;
    this.#unsubscribe = cluster.subscribe({
      storageId: storageIdOf(req.type),
      onEvent: (event) => this.#onEvent(event),
    });
    if (sendInitial) {
      this.#inInitial = true;
      const objects = cluster.snapshot(req.type, cluster.resourceVersion);
      for (const key of [...objects.keys()].sort()) {
        const object = objects.get(key)!;
        if (!this.#matches(object)) continue;
        this.#send({ type: "ADDED", object: cluster.present(req.type, object) });
        if (this.#closed || this.#stalled) return;
      }
      this.#inInitial = false;
      this.#caughtUp = true;
      if (endBookmark) this.#bookmark(true);
    } else {
      for (const event of cluster.eventsAfter(storageIdOf(req.type), from)) {
        this.#onEvent(event);
        if (this.#closed || this.#stalled) return;
      }
      this.#caughtUp = true;
    }
  }

  #onEvent(event: HistoryEvent): void {
    if (this.#closed || this.#stalled || event.rv <= this.#fromRv) return;
    try {
      this.#deliver(event);
    } finally {
      if (event.rv > this.#progressRv) this.#progressRv = event.rv;
    }
  }

  /** The resourceVersion a bookmark may carry now: never past an event not yet delivered. */
  #bookmarkRv(): number {
    if (this.#caughtUp) return this.#cluster.resourceVersion;
    if (this.#progressRv > 0) return this.#progressRv;
    // Nothing replayed yet: the stream is complete through the version the client asked for.
    const requested = Number(this.#req.resourceVersion);
    return requested > 0
      ? Math.min(requested, this.#cluster.resourceVersion)
      : this.#cluster.resourceVersion;
  }

  #deliver(event: HistoryEvent): void {
    const type = this.#req.type;
    const cluster = this.#cluster;
    const oldPasses = event.prev !== undefined && this.#matches(event.prev);
    if (event.type === "DELETED") {
      if (oldPasses) this.#send({ type: "DELETED", object: cluster.present(type, event.object) });
      return;
    }
    const curPasses = this.#matches(event.object);
    if (curPasses && oldPasses) {
      this.#send({ type: "MODIFIED", object: cluster.present(type, event.object) });
    } else if (curPasses) {
      this.#send({ type: "ADDED", object: cluster.present(type, event.object) });
    } else if (oldPasses) {
      // The real watch cache: an object that stops matching is DELETED (its previous state, at
      // the new resourceVersion).
      const gone = clone(event.prev!);
      metaOf(gone).resourceVersion = String(event.rv);
      this.#send({ type: "DELETED", object: cluster.present(type, gone) });
    }
  }

  #bookmark(initialEnd: boolean): void {
    if (this.#closed || this.#stalled || !this.#caughtUp) return;
    const metadata: JsonObject = { resourceVersion: String(this.#bookmarkRv()) };
    if (initialEnd) metadata.annotations = { "k8s.io/initial-events-end": "true" };
    this.#send({ type: "BOOKMARK", object: this.#bookmarkObject(metadata) });
  }

  #bookmarkObject(metadata: JsonObject): JsonObject {
    const type = this.#req.type;
    return {
      kind: type.kind,
      apiVersion: apiVersionOf(type),
      metadata,
      ...clone(type.bookmarkFields ?? {}),
    };
  }

  #send(event: { type: string; object: unknown }): void {
    if (this.#closed || this.#stalled) return;
    const line = JSON.stringify(event) + "\n";
    const fault = this.#req.fault;
    if (fault && !this.#faultFired && fault.kind === "truncate" && this.#sent >= fault.after) {
      this.#faultFired = true;
      this.#write(line.slice(0, Math.max(1, Math.floor(line.length / 2))));
      this.close();
      return;
    }
    this.#write(line);
    this.#sent++;
    this.#checkFault();
  }

  #write(text: string): void {
    try {
      this.#controller.enqueue(encoder.encode(text));
    } catch {
      this.#cleanup();
    }
  }

  #checkFault(): void {
    const fault = this.#req.fault;
    if (!fault || this.#faultFired || this.#sent < fault.after || this.#closed) return;
    switch (fault.kind) {
      case "close":
        this.#faultFired = true;
        this.close();
        return;
      case "stall":
        this.#faultFired = true;
        this.#stall();
        return;
      case "malformed-line":
        this.#faultFired = true;
        this.#write('{"type":"MODIFIED","object":{"kind":"Status" this is not JSON\n');
        return;
      case "bookmark-only": {
        this.#faultFired = true;
        if (this.#inInitial) {
          // Mid initial events there is no version a bookmark could honestly claim.
          this.close();
          return;
        }
        const metadata = { resourceVersion: String(this.#bookmarkRv()) };
        this.#write(
          JSON.stringify({ type: "BOOKMARK", object: this.#bookmarkObject(metadata) }) + "\n",
        );
        this.close();
        return;
      }
      case "expire": {
        this.#faultFired = true;
        const rv = this.#req.resourceVersion || String(this.#cluster.resourceVersion);
        this.#error(
          failure(
            410,
            fault.reason ?? "Expired",
            `too old resource version: ${rv} (${this.#cluster.resourceVersion})`,
          ),
        );
        return;
      }
      case "truncate":
        return; // acts on the next event
    }
  }

  /** Sends an ERROR event with a Status, then ends the stream (what the real server does). */
  #error(status: Status): void {
    this.#write(JSON.stringify({ type: "ERROR", object: status }) + "\n");
    this.close();
  }

  #stall(): void {
    this.#stalled = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#bookmarkTimer);
    clearTimeout(this.#timeoutTimer);
    this.#bookmarkTimer = undefined;
    this.#timeoutTimer = undefined;
  }

  /** Ends the stream normally (the client reads EOF). */
  close(): void {
    if (this.#closed) return;
    this.#cleanup();
    try {
      this.#controller.close();
    } catch {
      // Already closed or cancelled by the reader.
    }
  }

  #abort(reason: unknown): void {
    if (this.#closed) return;
    this.#cleanup();
    try {
      this.#controller.error(
        reason ?? new DOMException("The signal has been aborted", "AbortError"),
      );
    } catch {
      // Already closed.
    }
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#bookmarkTimer);
    clearTimeout(this.#timeoutTimer);
    if (this.#onAbort) this.#req.signal?.removeEventListener("abort", this.#onAbort);
    this.#onAbort = undefined;
    this.#onDone(this);
  }
}
