/**
 * The benchmarks' fake API server, run in its own process so that its CPU time is not charged to
 * the measured client: `deno run --allow-net bench/stream_server.ts` prints `PORT <n>` once it
 * listens on 127.0.0.1.
 *
 * Every response body is built before it is measured (`POST /_prepare?ns=…`) and served from
 * pre-serialized buffers in 64 KiB chunks, so the server costs the same for every client. The
 * namespace in the pod collection path selects the data set:
 *
 * - `w-N`: list = empty (resourceVersion 1); watch from 1 = N events (ADDED, MODIFIED, DELETED
 *   over a pool of up to 10 000 keys), then the stream ends.
 * - `l-N`: list = N pods in pages of 500 (`limit`/`continue`); watch = an idle stream.
 * - `c-N-K`: list = the K pods of `l-K`; watch from the list's version = N MODIFIED events cycling
 *   through the K keys (two revisions per key alternate, so every event changes the object).
 * - `p-R-N`: list = empty; watch from 1 = N events paced at R per second, each stamped with its
 *   send time (`performance.timeOrigin + performance.now()`, ms) in an annotation.
 *
 * A request whose Accept header names `application/vnd.kubernetes.protobuf` gets the same data
 * of `w-N` (watch) and `l-N` (list pages) in Kubernetes protobuf (`;stream=watch` frames for the
 * watch), pre-encoded like the JSON.
 *
 * Any other watch (a re-watch after a stream ended) is idle until the client goes away or its
 * `timeoutSeconds` passes. `GET /clock` answers this process's clock, for offset calibration.
 *
 * @module
 */

import { makePod, prng, SENT_AT_ANNOTATION, SENT_AT_PLACEHOLDER } from "./fixture.ts";
import { encodeObject, encodeWatchFrame } from "../_client/protobuf/encode.ts";

/** Bytes per chunk written to a response. */
const CHUNK = 64 * 1024;
/** Items per list page. */
export const PAGE_SIZE = 500;
/** Resource version of the empty lists that precede a stream. */
const START_RV = "1";

const encoder = new TextEncoder();

/** Concatenates ASCII strings into one buffer without building one huge string. */
class Bytes {
  #parts: Uint8Array[] = [];
  #current = new Uint8Array(16 << 20);
  #used = 0;
  length = 0;

  add(text: string): void {
    if (text.length > this.#current.length - this.#used) {
      this.#parts.push(this.#current.subarray(0, this.#used));
      this.#current = new Uint8Array(Math.max(16 << 20, text.length));
      this.#used = 0;
    }
    const { read, written } = encoder.encodeInto(text, this.#current.subarray(this.#used));
    if (read !== text.length || written !== text.length) throw new Error("fixture is not ASCII");
    this.#used += written;
    this.length += written;
  }

  finish(): Uint8Array {
    this.#parts.push(this.#current.subarray(0, this.#used));
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.#parts) {
      out.set(part, offset);
      offset += part.length;
    }
    this.#parts = [];
    return out;
  }
}

interface ListData {
  pages: Uint8Array[];
  /** The same pages in protobuf. */
  protobufPages: Uint8Array[];
  resourceVersion: string;
  count: number;
  bytes: number;
}

interface WatchData {
  buffer: Uint8Array;
  /** The same events as protobuf frames. */
  protobuf: Uint8Array;
  events: number;
  lastResourceVersion: string;
  alive: number;
  counts: Record<string, number>;
}

interface ChurnData {
  list: ListData;
  cycle: Uint8Array;
  cycleEvents: number;
  events: number;
}

interface PacedData {
  templates: Uint8Array[];
  offsets: number[];
  rate: number;
}

const lists = new Map<number, ListData>();
const watches = new Map<number, WatchData>();
const churns = new Map<string, ChurnData>();
const paced = new Map<string, PacedData>();

function listItem(index: number): string {
  const pod = makePod(index, { resourceVersion: 1000 + index });
  // A list response leaves apiVersion and kind out of its items.
  delete pod.apiVersion;
  delete pod.kind;
  return JSON.stringify(pod);
}

function buildList(n: number): ListData {
  const cached = lists.get(n);
  if (cached) return cached;
  const resourceVersion = String(1000 + n + 1);
  const pages: Uint8Array[] = [];
  const protobufPages: Uint8Array[] = [];
  let bytes = 0;
  for (let start = 0; start < n || (n === 0 && pages.length === 0); start += PAGE_SIZE) {
    const end = Math.min(n, start + PAGE_SIZE);
    const page = pages.length;
    const meta: Record<string, unknown> = { resourceVersion };
    if (end < n) {
      meta.continue = `page-${page + 1}`;
      meta.remainingItemCount = n - end;
    }
    const out = new Bytes();
    out.add(`{"kind":"PodList","apiVersion":"v1","metadata":${JSON.stringify(meta)},"items":[`);
    const items: unknown[] = [];
    for (let i = start; i < end; i++) {
      const item = listItem(i);
      bytes += item.length;
      out.add(i === start ? item : "," + item);
      items.push(JSON.parse(item));
    }
    protobufPages.push(encodeObject({ kind: "PodList", apiVersion: "v1", metadata: meta, items }));
    out.add("]}\n");
    pages.push(out.finish());
    if (n === 0) break;
  }
  const data = { pages, protobufPages, resourceVersion, count: n, bytes };
  lists.set(n, data);
  return data;
}

function buildWatch(n: number): WatchData {
  const cached = watches.get(n);
  if (cached) return cached;
  const pool = Math.max(1, Math.min(10_000, Math.floor(n / 4)));
  const exists = new Uint8Array(pool);
  const revision = new Uint32Array(pool);
  const rand = prngFor(n);
  const counts: Record<string, number> = { ADDED: 0, MODIFIED: 0, DELETED: 0 };
  const out = new Bytes();
  const frames: Uint8Array[] = [];
  let alive = 0;
  let rv = 0;
  for (let i = 0; i < n; i++) {
    const key = i < pool ? i : Math.floor(rand() * pool);
    let type: string;
    if (!exists[key]) {
      type = "ADDED";
      exists[key] = 1;
      alive++;
    } else if (rand() < 0.06) {
      type = "DELETED";
      exists[key] = 0;
      alive--;
    } else {
      type = "MODIFIED";
      revision[key]++;
    }
    counts[type]++;
    rv = 100_000 + i;
    const pod = makePod(key, { resourceVersion: rv, revision: revision[key] });
    const object = JSON.stringify(pod);
    out.add(`{"type":"${type}","object":${object}}\n`);
    frames.push(encodeWatchFrame(type, pod));
  }
  const protobuf = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
  let offset = 0;
  for (const f of frames) {
    protobuf.set(f, offset);
    offset += f.length;
  }
  const data = {
    buffer: out.finish(),
    protobuf,
    events: n,
    lastResourceVersion: String(rv),
    alive,
    counts,
  };
  watches.set(n, data);
  return data;
}

function buildChurn(events: number, keys: number): ChurnData {
  const id = `${events}-${keys}`;
  const cached = churns.get(id);
  if (cached) return cached;
  const list = buildList(keys);
  const out = new Bytes();
  for (let round = 1; round <= 2; round++) {
    for (let key = 0; key < keys; key++) {
      const object = JSON.stringify(
        makePod(key, { resourceVersion: 10_000_000 * round + key, revision: round }),
      );
      out.add(`{"type":"MODIFIED","object":${object}}\n`);
    }
  }
  const data = { list, cycle: out.finish(), cycleEvents: 2 * keys, events };
  churns.set(id, data);
  return data;
}

function buildPaced(rate: number, n: number): PacedData {
  const id = `${rate}-${n}`;
  const cached = paced.get(id);
  if (cached) return cached;
  const pool = Math.max(1, Math.min(1000, n));
  const templates: Uint8Array[] = [];
  const offsets: number[] = [];
  const marker = `"${SENT_AT_ANNOTATION}":"${SENT_AT_PLACEHOLDER}"`;
  for (let i = 0; i < n; i++) {
    const key = i % pool;
    const type = i < pool ? "ADDED" : "MODIFIED";
    const object = JSON.stringify(
      makePod(key, { resourceVersion: 100 + i, revision: Math.floor(i / pool), sentAt: true }),
    );
    const line = `{"type":"${type}","object":${object}}\n`;
    const at = line.indexOf(marker);
    if (at < 0) throw new Error("no send-time placeholder");
    offsets.push(at + marker.length - SENT_AT_PLACEHOLDER.length - 1);
    templates.push(encoder.encode(line));
  }
  const data = { templates, offsets, rate };
  paced.set(id, data);
  return data;
}

/** The fixture's PRNG, on a stream of its own per seed. */
function prngFor(seed: number): () => number {
  return prng(seed ^ 0x5bd1e995);
}

// ---------------------------------------------------------------------------------------------
// Responses

const JSON_HEADERS = { "content-type": "application/json" };
const PROTOBUF = "application/vnd.kubernetes.protobuf";
const PROTOBUF_HEADERS = { "content-type": PROTOBUF };
const PROTOBUF_WATCH_HEADERS = { "content-type": `${PROTOBUF};stream=watch` };

/** Streams `buffer` in 64 KiB chunks (subarrays: nothing is copied or re-encoded). */
function chunked(buffer: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= buffer.length) {
        controller.close();
        return;
      }
      controller.enqueue(buffer.subarray(offset, offset + CHUNK));
      offset += CHUNK;
    },
  }, { highWaterMark: 4 });
}

/** Streams `cycle` again and again until `events` lines went out (events % cycle lines === 0). */
function cycled(
  cycle: Uint8Array,
  cycleEvents: number,
  events: number,
): ReadableStream<Uint8Array> {
  const rounds = Math.max(1, Math.ceil(events / cycleEvents));
  let round = 0;
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= cycle.length) {
        round++;
        offset = 0;
      }
      if (round >= rounds) {
        controller.close();
        return;
      }
      controller.enqueue(cycle.subarray(offset, offset + CHUNK));
      offset += CHUNK;
    },
  }, { highWaterMark: 4 });
}

/** A watch that sends nothing until the client leaves or `timeoutSeconds` passes. */
function idle(timeoutSeconds: number): ReadableStream<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      timer = setTimeout(() => controller.close(), timeoutSeconds * 1000);
    },
    cancel() {
      clearTimeout(timer);
    },
  });
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Sends event i at start + i/rate, each stamped with the time it is handed to the socket. */
function pacedStream(data: PacedData): ReadableStream<Uint8Array> {
  const { templates, offsets, rate } = data;
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      const start = performance.now();
      let next = 0;
      while (next < templates.length && !cancelled) {
        const due = start + (next * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const current = performance.now();
        while (next < templates.length && start + (next * 1000) / rate <= current) {
          const line = templates[next].slice();
          const stamp = now().toFixed(6).padStart(SENT_AT_PLACEHOLDER.length, "0");
          encoder.encodeInto(stamp, line.subarray(offsets[next]));
          controller.enqueue(line);
          next++;
        }
      }
      if (!cancelled) controller.close();
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 1 << 30 });
}

function status(code: number, message: string): Response {
  return new Response(
    JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, code }),
    { status: code, headers: JSON_HEADERS },
  );
}

function emptyList(): Response {
  return new Response(
    `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"${START_RV}"},"items":[]}`,
    { headers: JSON_HEADERS },
  );
}

function listResponse(list: ListData, query: URLSearchParams, protobuf = false): Response {
  const limit = Number(query.get("limit") ?? 0);
  if (limit !== PAGE_SIZE) return status(400, `this fake serves limit=${PAGE_SIZE} only`);
  const token = query.get("continue");
  const page = token ? Number(token.replace("page-", "")) : 0;
  if (!(page >= 0 && page < list.pages.length)) return status(410, "continue token expired");
  if (protobuf) {
    return new Response(chunked(list.protobufPages[page]), { headers: PROTOBUF_HEADERS });
  }
  return new Response(chunked(list.pages[page]), { headers: JSON_HEADERS });
}

function prepare(ns: string): Record<string, unknown> {
  let m;
  if ((m = ns.match(/^w-(\d+)$/))) {
    const w = buildWatch(Number(m[1]));
    return {
      bytes: w.buffer.length,
      events: w.events,
      lastResourceVersion: w.lastResourceVersion,
      alive: w.alive,
      counts: w.counts,
    };
  }
  if ((m = ns.match(/^l-(\d+)$/))) {
    const l = buildList(Number(m[1]));
    return { count: l.count, itemBytes: l.bytes, pages: l.pages.length };
  }
  if ((m = ns.match(/^c-(\d+)-(\d+)$/))) {
    const c = buildChurn(Number(m[1]), Number(m[2]));
    return { events: c.events, cycleBytes: c.cycle.length, cycleEvents: c.cycleEvents };
  }
  if ((m = ns.match(/^p-(\d+)-(\d+)$/))) {
    const p = buildPaced(Number(m[1]), Number(m[2]));
    return { events: p.templates.length, rate: p.rate };
  }
  throw new Error(`unknown data set ${ns}`);
}

function handle(request: Request): Response {
  const url = new URL(request.url);
  if (url.pathname === "/clock") return new Response(String(now()));
  if (url.pathname === "/_prepare" && request.method === "POST") {
    const ns = url.searchParams.get("ns") ?? "";
    try {
      return Response.json(prepare(ns));
    } catch (e) {
      return status(400, String(e));
    }
  }
  const match = url.pathname.match(/^\/api\/v1\/namespaces\/([a-z0-9-]+)\/pods$/);
  if (!match || request.method !== "GET") return status(404, `not found: ${url.pathname}`);
  const ns = match[1];
  const query = url.searchParams;
  const isWatch = query.get("watch") === "1" || query.get("watch") === "true";
  const rv = query.get("resourceVersion") ?? "";
  const timeoutSeconds = Number(query.get("timeoutSeconds") ?? 1800) || 1800;
  const protobuf = (request.headers.get("accept") ?? "").includes(PROTOBUF);
  let m;
  if ((m = ns.match(/^w-(\d+)$/))) {
    const data = watches.get(Number(m[1]));
    if (!data) return status(404, `data set ${ns} not prepared`);
    if (!isWatch) return emptyList();
    if (rv !== START_RV) return new Response(idle(timeoutSeconds), { headers: JSON_HEADERS });
    if (protobuf) {
      return new Response(chunked(data.protobuf), { headers: PROTOBUF_WATCH_HEADERS });
    }
    return new Response(chunked(data.buffer), { headers: JSON_HEADERS });
  }
  if ((m = ns.match(/^l-(\d+)$/))) {
    const data = lists.get(Number(m[1]));
    if (!data) return status(404, `data set ${ns} not prepared`);
    if (isWatch) return new Response(idle(timeoutSeconds), { headers: JSON_HEADERS });
    return listResponse(data, query, protobuf);
  }
  if ((m = ns.match(/^c-(\d+)-(\d+)$/))) {
    const data = churns.get(`${m[1]}-${m[2]}`);
    if (!data) return status(404, `data set ${ns} not prepared`);
    if (!isWatch) return listResponse(data.list, query);
    if (rv !== data.list.resourceVersion) {
      return new Response(idle(timeoutSeconds), { headers: JSON_HEADERS });
    }
    return new Response(cycled(data.cycle, data.cycleEvents, data.events), {
      headers: JSON_HEADERS,
    });
  }
  if ((m = ns.match(/^p-(\d+)-(\d+)$/))) {
    const data = paced.get(`${m[1]}-${m[2]}`);
    if (!data) return status(404, `data set ${ns} not prepared`);
    if (!isWatch) return emptyList();
    if (rv !== START_RV) return new Response(idle(timeoutSeconds), { headers: JSON_HEADERS });
    return new Response(pacedStream(data), { headers: JSON_HEADERS });
  }
  return status(404, `unknown data set ${ns}`);
}

if (import.meta.main) {
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(`PORT ${port}`),
  }, handle);
  // Ends with the parent: the parent closes our stdin (or dies).
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* drain */ }
    Deno.exit(0);
  })();
}
