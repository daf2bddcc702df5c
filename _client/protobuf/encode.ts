// Internal: the inverse of decode.ts, for the tests and the benchmarks (a server that speaks
// protobuf without a real API server, fault injection on frames). It encodes the plain JSON
// shape of a built-in object with the same generated tables, the way the API server's Go encoder
// does: every non-pointer field is written, even when zero. Not exported from the package.

import { messageForKind, PROTOBUF_MAGIC } from "./decode.ts";
import { PROTOBUF_MESSAGES } from "../../generated/protobuf.ts";

const text = new TextEncoder();

/** A growable byte buffer with protobuf primitives. */
class Writer {
  bytes: Uint8Array<ArrayBuffer> = new Uint8Array(1024);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }

  varint(v: number): void {
    this.#room(10);
    if (v < 0) {
      // Two's complement over 64 bits, as Go writes a negative int32/int64.
      let lo = v % 4294967296;
      let hi = Math.floor(v / 4294967296);
      if (lo < 0) lo += 4294967296;
      hi = (hi + 4294967296) % 4294967296;
      for (let i = 0; i < 9; i++) {
        this.bytes[this.length++] = (lo & 0x7f) | 0x80;
        lo = (lo >>> 7) | ((hi & 0x7f) << 25);
        hi >>>= 7;
      }
      this.bytes[this.length++] = 1;
      return;
    }
    while (v >= 0x80) {
      this.bytes[this.length++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.bytes[this.length++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  raw(b: Uint8Array): void {
    this.#room(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }

  bytesField(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.raw(b);
  }

  double(v: number): void {
    this.#room(8);
    new DataView(this.bytes.buffer).setFloat64(this.length, v, true);
    this.length += 8;
  }

  finish(): Uint8Array<ArrayBuffer> {
    return this.bytes.slice(0, this.length);
  }
}

function sub(fill: (w: Writer) => void): Uint8Array<ArrayBuffer> {
  const w = new Writer();
  fill(w);
  return w.finish();
}

interface Spec {
  number: number;
  name: string;
  type: string;
  flags: string;
}

function specs(name: string): Spec[] {
  const dot = name.lastIndexOf(".");
  const table = PROTOBUF_MESSAGES[name.slice(0, dot)]?.[name.slice(dot + 1)];
  if (table === undefined) throw new TypeError(`no protobuf table for ${name}`);
  return table
    ? table.split(" ").map((item) => {
      const [number, field, type, flags = ""] = item.split(":");
      return { number: Number(number), name: field, type, flags };
    })
    : [];
}

function refName(type: string, pkg: string): string {
  const ref = type.slice(1);
  return ref.includes(".") ? ref : `${pkg}.${ref}`;
}

function base64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function timestamp(value: unknown, micro: boolean): Uint8Array {
  if (value === null || value === undefined) return new Uint8Array(0);
  const ms = Date.parse(String(value));
  if (Number.isNaN(ms)) throw new TypeError(`not a time: ${value}`);
  const seconds = Math.floor(ms / 1000);
  let nanos = 0;
  if (micro) {
    const frac = String(value).match(/\.(\d+)/)?.[1] ?? "";
    nanos = Number((frac + "000000000").slice(0, 9));
  }
  return sub((w) => {
    w.tag(1, 0);
    w.varint(seconds);
    if (nanos) {
      w.tag(2, 0);
      w.varint(nanos);
    }
  });
}

/** Go's time.ParseDuration for what formatDuration prints. */
function parseDuration(s: string): number {
  if (s === "0" || s === "0s") return 0;
  const units: Record<string, number> = {
    ns: 1,
    "µs": 1e3,
    us: 1e3,
    ms: 1e6,
    s: 1e9,
    m: 6e10,
    h: 3.6e12,
  };
  let total = 0;
  const neg = s.startsWith("-");
  for (const m of s.replace(/^-/, "").matchAll(/([\d.]+)(ns|µs|us|ms|s|m|h)/g)) {
    total += Number(m[1]) * units[m[2]];
  }
  return Math.round(neg ? -total : total);
}

/** The bytes of one value of a kind (length-delimited kinds only). */
function valueBytes(type: string, value: unknown, pkg: string): Uint8Array {
  switch (type[0]) {
    case "s":
      return text.encode(String(value ?? ""));
    case "y":
      return base64Bytes(String(value ?? ""));
    case "t":
      return timestamp(value, false);
    case "u":
      return timestamp(value, true);
    case "d":
      return sub((w) => {
        w.tag(1, 0);
        w.varint(parseDuration(String(value)));
      });
    case "q":
      return sub((w) => w.bytesField(1, text.encode(String(value))));
    case "x":
      return sub((w) => {
        if (typeof value === "string") {
          w.tag(1, 0);
          w.varint(1);
          w.tag(2, 0);
          w.varint(0);
          w.bytesField(3, text.encode(value));
        } else {
          w.tag(1, 0);
          w.varint(0);
          w.tag(2, 0);
          w.varint(Number(value ?? 0));
          w.bytesField(3, new Uint8Array(0));
        }
      });
    case "r":
    case "f":
      if (value === null || value === undefined) return new Uint8Array(0);
      return sub((w) => w.bytesField(1, text.encode(JSON.stringify(value))));
    case "m":
      return encodeMessage(refName(type, pkg), (value ?? {}) as Record<string, unknown>);
    case "W":
      return sub((w) => {
        for (const item of (value ?? []) as unknown[]) writeOne(w, 1, type.slice(1), item, pkg);
      });
  }
  throw new TypeError(`cannot encode type ${type}`);
}

function writeOne(w: Writer, number: number, type: string, value: unknown, pkg: string): void {
  switch (type[0]) {
    case "b":
      w.tag(number, 0);
      w.varint(value ? 1 : 0);
      return;
    case "i":
    case "l":
      w.tag(number, 0);
      w.varint(Number(value ?? 0));
      return;
    case "g":
      w.tag(number, 1);
      w.double(Number(value ?? 0));
      return;
  }
  w.bytesField(number, valueBytes(type, value, pkg));
}

/**
 * Encodes the JSON shape of a message.
 *
 * @param name `<package key>.<Message>`, e.g. `core/v1.Pod`.
 * @param object The object (as JSON would parse it).
 * @returns The message's bytes (no envelope).
 */
export function encodeMessage(name: string, object: Record<string, unknown>): Uint8Array {
  const pkg = name.slice(0, name.lastIndexOf("."));
  const w = new Writer();
  for (const f of specs(name)) {
    if (f.flags.includes("i")) {
      w.bytesField(f.number, encodeMessage(refName(f.type, pkg), object));
      continue;
    }
    const value = object[f.name];
    if (f.type[0] === "M") {
      if (!value) continue;
      const inner = f.type.slice(1);
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        w.bytesField(
          f.number,
          sub((e) => {
            e.bytesField(1, text.encode(key));
            writeOne(e, 2, inner, v, pkg);
          }),
        );
      }
      continue;
    }
    if (f.flags.includes("r")) {
      for (const item of (value ?? []) as unknown[]) writeOne(w, f.number, f.type, item, pkg);
      continue;
    }
    const nilable = f.flags.includes("p") || f.type[0] === "W" || f.type[0] === "y";
    if ((value === undefined || value === null) && nilable) continue;
    if (value === undefined && (f.type[0] === "r" || f.type[0] === "f")) continue;
    writeOne(w, f.number, f.type, value, pkg);
  }
  return w.finish();
}

/**
 * Encodes an object with the `k8s\0` envelope, as the API server sends it.
 *
 * @param object A built-in object with `apiVersion` and `kind`.
 * @returns The bytes.
 */
export function encodeObject(object: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  const apiVersion = String(object.apiVersion ?? "");
  const kind = String(object.kind ?? "");
  const message = messageForKind(apiVersion, kind);
  if (!message) throw new TypeError(`no protobuf table for ${apiVersion}/${kind}`);
  const w = new Writer();
  w.raw(PROTOBUF_MAGIC);
  w.bytesField(
    1,
    sub((t) => {
      t.bytesField(1, text.encode(apiVersion));
      t.bytesField(2, text.encode(kind));
    }),
  );
  w.bytesField(2, encodeMessage(message.name, object));
  w.bytesField(3, new Uint8Array(0));
  w.bytesField(4, new Uint8Array(0));
  return w.finish();
}

/**
 * Encodes one frame of a protobuf watch stream (length prefix included).
 *
 * @param type The event type.
 * @param object The object (with apiVersion and kind).
 * @returns The frame.
 */
export function encodeWatchFrame(
  type: string,
  object: Record<string, unknown>,
): Uint8Array<ArrayBuffer> {
  const event = sub((w) => {
    w.bytesField(1, text.encode(type));
    w.bytesField(2, sub((r) => r.bytesField(1, encodeObject(object))));
  });
  const frame = new Uint8Array(4 + event.length);
  new DataView(frame.buffer).setUint32(0, event.length);
  frame.set(event, 4);
  return frame;
}
