// Internal: decodes the Kubernetes protobuf wire format (`application/vnd.kubernetes.protobuf`)
// straight into the plain objects the API server's JSON gives for the same object. Not exported
// from the package.
//
// A protobuf body is the 4-byte magic `k8s\0` followed by a runtime.Unknown message: its TypeMeta
// (apiVersion, kind) names the message of `raw`, the object itself. The field tables in
// generated/protobuf.ts say, for each message, what JSON name each field number has and how Go's
// encoding/json would have written it (omitempty, omitzero, pointers, inline structs), so that
// the result deep-equals `JSON.parse` of the JSON response: zero values the JSON writes are
// filled in, zero values it omits are left out, Time is RFC 3339 in seconds, MicroTime in
// microseconds, Duration as Go prints it, Quantity its canonical string, IntOrString a number or
// a string, []byte base64, FieldsV1 and RawExtension their embedded JSON (or protobuf object).
// Fields the tables do not know are skipped by their wire type, so a newer server's additions
// never break decoding; they are simply not in the result (as with an older Go client).

import { PROTOBUF_API_VERSIONS, PROTOBUF_MESSAGES } from "../../generated/protobuf.ts";

/** The four bytes every protobuf-encoded Kubernetes object starts with. */
export const PROTOBUF_MAGIC = new Uint8Array([0x6b, 0x38, 0x73, 0x00]);

/** The media type of Kubernetes protobuf. */
export const PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf";

// Field kinds (from the table letters).
const STRING = 1, BOOL = 2, INT32 = 3, INT64 = 4, DOUBLE = 5, BYTES = 6, TIME = 7, MICROTIME = 8;
const DURATION = 9, FIELDSV1 = 10, QUANTITY = 11, INTORSTRING = 12, RAW = 13, MESSAGE = 14;
const WRAPPER = 15, MAP = 16;

const LETTERS: Record<string, number> = {
  s: STRING,
  b: BOOL,
  i: INT32,
  l: INT64,
  g: DOUBLE,
  y: BYTES,
  t: TIME,
  u: MICROTIME,
  d: DURATION,
  f: FIELDSV1,
  q: QUANTITY,
  x: INTORSTRING,
  r: RAW,
  m: MESSAGE,
  W: WRAPPER,
  M: MAP,
};

/** A value kind: a field's, a map value's or a named slice's element. */
interface ValueType {
  kind: number;
  /** MESSAGE: the message (resolved on first use). */
  ref?: string;
  message?: Message;
  /** WRAPPER and MAP: the element or value type. */
  inner?: ValueType;
}

interface Field extends ValueType {
  number: number;
  name: string;
  repeated: boolean;
  pointer: boolean;
  omitempty: boolean;
  omitzero: boolean;
  inline: boolean;
  /** MAP: makes the map objects. */
  makeMap?: PlainConstructor;
}

interface Message {
  /** `core/v1.Pod`. */
  name: string;
  byNumber: (Field | undefined)[];
  /** Fields whose absence still shows in the JSON (zero values), inline ones flattened. */
  defaults: Field[] | undefined;
  fields: Field[];
  /** Adds what the JSON has beyond the fields (see FIXUPS). */
  fixup: ((out: Record<string, unknown>) => void) | undefined;
  /** Makes this message's objects. */
  make: PlainConstructor;
  /** The repeated fields (their arrays are trimmed to size after decoding). */
  repeated: Field[];
}

const messages = new Map<string, Message>();

/** Creates plain objects (`Object.prototype`, no own properties) of one shape family. */
type PlainConstructor = new () => Record<string, unknown>;

/**
 * A constructor of plain objects for one message (or one map field). Objects made by `new` of
 * a function get V8's in-object slack tracking: the first few get generous in-object space and
 * later ones exactly what the first used, so an object with 12 fields is as compact as what
 * `JSON.parse` makes, where `{}` plus 12 stores would spill into a growing property array. The
 * prototype is `Object.prototype` and the constructor adds nothing: the objects are plain
 * objects in every observable way (deep-equal to `JSON.parse`'s). The `this.x` stores that never
 * run tell V8 to expect up to 32 fields.
 */
function plainConstructor(): PlainConstructor {
  const C = function (this: Record<string, unknown>, big?: boolean) {
    if (big) {
      this.a0 =
        this.a1 =
        this.a2 =
        this.a3 =
        this.a4 =
        this.a5 =
        this.a6 =
        this.a7 =
          0;
      this.b0 =
        this.b1 =
        this.b2 =
        this.b3 =
        this.b4 =
        this.b5 =
        this.b6 =
        this.b7 =
          0;
      this.c0 =
        this.c1 =
        this.c2 =
        this.c3 =
        this.c4 =
        this.c5 =
        this.c6 =
        this.c7 =
          0;
      this.d0 =
        this.d1 =
        this.d2 =
        this.d3 =
        this.d4 =
        this.d5 =
        this.d6 =
        this.d7 =
          0;
    }
  } as unknown as PlainConstructor;
  C.prototype = Object.prototype;
  return C;
}

function parseType(spec: string, pkg: string): ValueType {
  const kind = LETTERS[spec[0]];
  if (kind === undefined) throw new TypeError(`protobuf tables: bad type ${spec}`);
  if (kind === MESSAGE) {
    const ref = spec.slice(1);
    return { kind, ref: ref.includes(".") ? ref : `${pkg}.${ref}` };
  }
  if (kind === WRAPPER || kind === MAP) return { kind, inner: parseType(spec.slice(1), pkg) };
  return { kind };
}

/**
 * The compiled table of a message.
 *
 * @param name `<package key>.<Message>`, e.g. `core/v1.Pod`.
 * @returns The message, or undefined when the tables do not have it.
 */
export function messageFor(name: string): Message | undefined {
  const known = messages.get(name);
  if (known) return known;
  const dot = name.lastIndexOf(".");
  const pkg = name.slice(0, dot);
  const spec = PROTOBUF_MESSAGES[pkg]?.[name.slice(dot + 1)];
  if (spec === undefined) return undefined;
  const message: Message = {
    name,
    byNumber: [],
    defaults: undefined,
    fields: [],
    fixup: FIXUPS[name],
    make: plainConstructor(),
    repeated: [],
  };
  messages.set(name, message);
  for (const item of spec ? spec.split(" ") : []) {
    const [number, fieldName, type, flags = ""] = item.split(":");
    const field: Field = {
      ...parseType(type, pkg),
      number: Number(number),
      name: fieldName,
      repeated: flags.includes("r"),
      pointer: flags.includes("p"),
      omitempty: flags.includes("o"),
      omitzero: flags.includes("z"),
      inline: flags.includes("i"),
    };
    if (field.kind === MAP) field.makeMap = plainConstructor();
    message.byNumber[field.number] = field;
    message.fields.push(field);
    if (field.repeated) message.repeated.push(field);
  }
  return message;
}

function resolve(type: ValueType): Message {
  let message = type.message;
  if (message === undefined) {
    message = messageFor(type.ref!);
    if (message === undefined) throw new TypeError(`protobuf tables: no message ${type.ref}`);
    type.message = message;
  }
  return message;
}

/** True when the JSON shows this field even when it is absent from the protobuf. */
function showsWhenAbsent(f: Field): boolean {
  if (f.omitzero) return false;
  if (f.repeated || f.pointer || f.kind === MAP || f.kind === WRAPPER || f.kind === BYTES) {
    return !f.omitempty; // nil: omitted, or null
  }
  switch (f.kind) {
    case STRING:
    case BOOL:
    case INT32:
    case INT64:
    case DOUBLE:
      return !f.omitempty;
    default:
      return true; // a struct: encoding/json never omits it
  }
}

function defaultsOf(message: Message): Field[] {
  if (message.defaults) return message.defaults;
  const out: Field[] = [];
  message.defaults = out; // no cycles through value structs in Go, but be safe
  for (const f of message.fields) {
    if (f.inline) out.push(...defaultsOf(resolve(f)));
    else if (showsWhenAbsent(f)) out.push(f);
  }
  return out;
}

function zeroOf(f: Field): unknown {
  if (f.repeated || f.pointer) return null;
  return zeroValue(f);
}

function zeroValue(t: ValueType): unknown {
  switch (t.kind) {
    case STRING:
      return "";
    case BOOL:
      return false;
    case INT32:
    case INT64:
    case DOUBLE:
    case INTORSTRING:
      return 0;
    case DURATION:
      return "0s";
    case QUANTITY:
      return "0";
    case MESSAGE: {
      const m = resolve(t);
      const out = new m.make();
      fillDefaults(out, m);
      return out;
    }
    default:
      return null; // Time, MicroTime, FieldsV1, RawExtension, bytes, maps, named slices
  }
}

function fillDefaults(out: Record<string, unknown>, message: Message): void {
  const defaults = message.defaults ?? defaultsOf(message);
  for (let i = 0; i < defaults.length; i++) {
    const f = defaults[i];
    if (out[f.name] === undefined) out[f.name] = zeroOf(f);
  }
}

// ---------------------------------------------------------------------------------------------
// The reader

const utf8 = new TextDecoder();

/** Short ASCII strings are interned in this many slots (labels, names, images repeat a lot). */
const INTERN_SLOTS = 1 << 13;
const INTERN_MAX_LENGTH = 48;
const interned: string[] = new Array(INTERN_SLOTS).fill("");

let buf: Uint8Array = new Uint8Array(0);
let pos = 0;
/** Fields skipped because the tables do not know them (a newer server's), per decode. */
let unknownFields = 0;

function truncated(what: string): RangeError {
  return new RangeError(`truncated ${what} at byte ${pos}`);
}

function varint32(end: number): number {
  if (pos >= end) throw truncated("varint");
  let b = buf[pos++];
  if (b < 0x80) return b;
  let v = b & 0x7f;
  let shift = 7;
  for (;;) {
    if (pos >= end) throw truncated("varint");
    b = buf[pos++];
    if (shift < 28) v |= (b & 0x7f) << shift;
    else if (shift === 28) v = (v | ((b & 0x0f) << 28)) >>> 0;
    if (b < 0x80) return v >>> 0;
    shift += 7;
    if (shift > 63) throw new RangeError(`varint longer than 10 bytes at byte ${pos}`);
  }
}

/** A varint as a signed 64-bit number (exact up to 2^53). */
function varint64(end: number): number {
  let lo = 0, hi = 0, shift = 0, b: number;
  do {
    if (pos >= end) throw truncated("varint");
    b = buf[pos++];
    if (shift < 28) lo |= (b & 0x7f) << shift;
    else if (shift === 28) {
      lo |= (b & 0x0f) << 28;
      hi |= (b & 0x7f) >> 4;
    } else if (shift < 64) hi |= (b & 0x7f) << (shift - 32);
    shift += 7;
    if (shift > 70) throw new RangeError(`varint longer than 10 bytes at byte ${pos}`);
  } while (b >= 0x80);
  // Small values stay small integers (Smis), not doubles: a double field costs a heap number.
  if (hi === 0 && lo >= 0) return lo;
  return hi * 4294967296 + (lo >>> 0);
}

function length(end: number): number {
  const n = varint32(end);
  if (pos + n > end) throw truncated(`field of ${n} bytes`);
  return n;
}

/** One reusable array of char codes per short length, for String.fromCharCode.apply. */
const codes: number[][] = Array.from(
  { length: INTERN_MAX_LENGTH + 1 },
  (_, n) => new Array(n).fill(0),
);

function string(start: number, n: number): string {
  if (n === 0) return "";
  if (n <= INTERN_MAX_LENGTH) {
    // A cheap hash of the length and a few bytes picks the slot; equality is checked in full.
    const last = start + n - 1;
    let h = Math.imul(n ^ buf[start], 0x01000193);
    h = Math.imul(h ^ buf[last], 0x01000193);
    h = Math.imul(h ^ buf[start + (n >> 1)], 0x01000193);
    h = Math.imul(h ^ buf[last - (n >> 2)], 0x01000193);
    const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
    const known = interned[slot];
    if (known.length === n) {
      // Interned strings are ASCII, so equal char codes mean equal bytes (and ASCII input).
      let j = 0;
      while (j < n && known.charCodeAt(j) === buf[start + j]) j++;
      if (j === n) return known;
    }
    const out = codes[n];
    let i = 0;
    for (; i < n; i++) {
      const c = buf[start + i];
      if (c >= 0x80) break;
      out[i] = c;
    }
    if (i === n) {
      const made = String.fromCharCode.apply(null, out);
      interned[slot] = made;
      return made;
    }
  }
  return utf8.decode(buf.subarray(start, start + n));
}

function skip(wire: number, end: number): void {
  switch (wire) {
    case 0:
      varint64(end);
      return;
    case 1:
      pos += 8;
      break;
    case 2: {
      const n = length(end); // (not `pos += length(end)`: that reads pos before the varint)
      pos += n;
      return;
    }
    case 5:
      pos += 4;
      break;
    default:
      throw new RangeError(`unsupported wire type ${wire} at byte ${pos}`);
  }
  if (pos > end) throw truncated("fixed-size field");
}

function double(end: number): number {
  if (pos + 8 > end) throw truncated("double");
  const v = new DataView(buf.buffer, buf.byteOffset + pos, 8).getFloat64(0, true);
  pos += 8;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Special types

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Recently formatted times, direct-mapped by seconds (the same times repeat within objects). */
const TIME_SLOTS = 1024;
const timeSeconds = new Float64Array(TIME_SLOTS).fill(NaN);
const timeTexts: string[] = new Array(TIME_SLOTS).fill("");

/** RFC 3339 in seconds, UTC, as metav1.Time's JSON. */
function formatTime(seconds: number): string {
  const slot = seconds & (TIME_SLOTS - 1);
  if (timeSeconds[slot] === seconds) return timeTexts[slot];
  const d = new Date(seconds * 1000);
  const year = d.getUTCFullYear();
  const text = `${pad(year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${
    pad(d.getUTCHours(), 2)
  }:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}Z`;
  timeSeconds[slot] = seconds;
  timeTexts[slot] = text;
  return text;
}

/** Reads a google.protobuf.Timestamp-shaped message: [seconds, nanos], or undefined if empty. */
function timestamp(end: number): [number, number] | undefined {
  if (pos === end) return undefined;
  let seconds = 0, nanos = 0;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 8) seconds = varint64(end);
    else if (tag === 16) nanos = varint64(end) | 0;
    else skip(tag & 7, end);
  }
  return [seconds, nanos];
}

function time(end: number, micro: boolean): string | null {
  const ts = timestamp(end);
  if (ts === undefined) return null; // the zero time: JSON null
  if (!micro) return formatTime(ts[0]); // Time keeps seconds only
  const base = formatTime(ts[0]);
  return `${base.slice(0, 19)}.${pad(Math.floor(ts[1] / 1000), 6)}Z`;
}

/** Go's time.Duration.String. */
export function formatDuration(nanos: number): string {
  if (nanos === 0) return "0s";
  const neg = nanos < 0;
  let u = Math.abs(nanos);
  let out: string;
  if (u < 1e9) {
    let unit: string, prec: number;
    if (u < 1e3) [unit, prec] = ["ns", 0];
    else if (u < 1e6) [unit, prec] = ["µs", 3];
    else [unit, prec] = ["ms", 6];
    out = fraction(u, prec) + unit;
  } else {
    const seconds = fraction(u % 6e10, 9);
    u = Math.floor(u / 6e10);
    out = `${seconds}s`;
    if (u > 0) {
      out = `${u % 60}m${out}`;
      u = Math.floor(u / 60);
      if (u > 0) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/** v / 10^prec printed with the fraction's trailing zeros (and a bare point) removed. */
function fraction(v: number, prec: number): string {
  const scale = 10 ** prec;
  const whole = Math.floor(v / scale);
  let frac = String(v % scale).padStart(prec, "0").replace(/0+$/, "");
  if (prec === 0) frac = "";
  return frac ? `${whole}.${frac}` : String(whole);
}

function duration(end: number): string {
  let nanos = 0;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 8) nanos = varint64(end);
    else skip(tag & 7, end);
  }
  return formatDuration(nanos);
}

function quantity(end: number): string {
  let text = "";
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 10) {
      const n = length(end);
      text = string(pos, n);
      pos += n;
    } else skip(tag & 7, end);
  }
  return text === "" ? "0" : text;
}

function intOrString(end: number): number | string {
  let type = 0, int = 0, str = "";
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 8) type = varint64(end);
    else if (tag === 16) int = varint64(end) | 0;
    else if (tag === 26) {
      const n = length(end);
      str = string(pos, n);
      pos += n;
    } else skip(tag & 7, end);
  }
  return type === 1 ? str : int;
}

/** The bytes of field 1 of a message (RawExtension.raw, FieldsV1.Raw), as [start, end]. */
function rawBytes(end: number): [number, number] | undefined {
  let found: [number, number] | undefined;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 10) {
      const n = length(end);
      found = [pos, pos + n];
      pos += n;
    } else skip(tag & 7, end);
  }
  return found;
}

function embeddedJson(start: number, end: number): unknown {
  const text = utf8.decode(buf.subarray(start, end));
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new TypeError(`embedded JSON is not valid (${(cause as Error).message})`);
  }
}

function raw(end: number): unknown {
  const range = rawBytes(end);
  if (range === undefined || range[0] === range[1]) return null;
  const [start, stop] = range;
  // A nested protobuf object (a watch event's object) is decoded with its own envelope.
  if (hasMagic(buf, start, stop)) return decodeObject(buf.subarray(start, stop));
  return embeddedJson(start, stop);
}

/**
 * `managedFields[].fieldsV1` (a FieldsV1 message: JSON bytes inside protobuf) is kept as its JSON
 * text until read. Parsing it at decode time cost ~19 % of decoding a pod and ~40 % of its heap (a
 * tree of small objects per field manager, read by almost no one). The property is an own,
 * enumerable accessor that parses the text on first read and then turns itself into a plain data
 * property. Every way of reading the object — property access, `JSON.stringify`, spread,
 * `structuredClone`, deep equality, a Proxy, `Object.create(entry)`, a copy of its property
 * descriptors — gives what `JSON.parse` gives.
 *
 * The text lives on the entry itself, under a non-enumerable symbol (invisible to JSON, spread,
 * `Object.keys` and deep equality). The getter and setter are shared by every entry, so entries
 * keep one hidden class; the getter reads the text through `this`, which a Proxy forwarding its
 * receiver, a prototype chain and a descriptor copy all resolve. (A WeakMap keyed by the entry
 * could not: there `this` is the proxy, the child or the copy. A closure per entry could, but
 * gives every entry a hidden class of its own: +350 B per entry, measured.)
 */
const FIELDS_TEXT: unique symbol = Symbol("kube.fieldsV1.text");

/** Values parsed for entries that could not take a data property (frozen or sealed). */
const parsedInPlace = new WeakMap<object, { value: unknown }>();

function readFields(this: Record<string | symbol, unknown>): unknown {
  const kept = parsedInPlace.get(this);
  if (kept !== undefined) return kept.value;
  const text = this[FIELDS_TEXT];
  if (typeof text !== "string") return null;
  const value = parseFields(text);
  if (Reflect.defineProperty(this, "fieldsV1", dataProperty(value))) {
    Reflect.set(this, FIELDS_TEXT, undefined);
  } else parsedInPlace.set(this, { value });
  return value;
}

function writeFields(this: Record<string | symbol, unknown>, value: unknown): void {
  if (!Reflect.defineProperty(this, "fieldsV1", dataProperty(value))) {
    throw new TypeError("Cannot assign to fieldsV1 of a frozen object");
  }
  Reflect.set(this, FIELDS_TEXT, undefined);
}

const LAZY_FIELDS: PropertyDescriptor = {
  get: readFields,
  set: writeFields,
  enumerable: true,
  configurable: true,
};

function parseFields(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new TypeError(
      `managedFields[].fieldsV1 is not valid JSON (${(cause as Error).message})`,
    );
  }
}

function dataProperty(value: unknown): PropertyDescriptor {
  return { value, writable: true, enumerable: true, configurable: true };
}

/**
 * Reads a FieldsV1 field into `out[name]`: null when empty, else the lazy accessor above. The
 * text must look like a JSON object (`{…}`); full validity is checked when it is read.
 */
function lazyFieldsV1(out: Record<string, unknown>, name: string, end: number): void {
  const n = length(end);
  const stop = pos + n;
  const range = rawBytes(stop);
  pos = stop;
  if (name !== "fieldsV1" || range === undefined || range[0] === range[1]) {
    out[name] = range === undefined || range[0] === range[1] ? null : embeddedJson(...range);
    return;
  }
  const [start, last] = [range[0], range[1] - 1];
  if (buf[start] !== 0x7b || buf[last] !== 0x7d) {
    throw new TypeError(`embedded JSON is not an object at byte ${start}`);
  }
  Object.defineProperty(out, name, LAZY_FIELDS);
  Object.defineProperty(out, FIELDS_TEXT, {
    value: utf8.decode(buf.subarray(start, range[1])),
    writable: true,
    enumerable: false,
    configurable: true,
  });
}

function fieldsV1(end: number): unknown {
  const range = rawBytes(end);
  if (range === undefined || range[0] === range[1]) return null;
  return embeddedJson(range[0], range[1]);
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function base64(start: number, end: number): string {
  let out = "";
  let i = start;
  for (; i + 2 < end; i += 3) {
    const n = (buf[i] << 16) | (buf[i + 1] << 8) | buf[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (end - i === 1) {
    const n = buf[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (end - i === 2) {
    const n = (buf[i] << 16) | (buf[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Reads one length-delimited value of a kind (everything but the varint scalars). */
function value(t: ValueType, end: number): unknown {
  const n = length(end);
  const stop = pos + n;
  let v: unknown;
  switch (t.kind) {
    case STRING:
      v = string(pos, n);
      pos = stop;
      return v;
    case BYTES:
      v = base64(pos, stop);
      pos = stop;
      return v;
    case MESSAGE: {
      const m = resolve(t);
      return message(m, stop, new m.make());
    }
    case TIME:
      v = time(stop, false);
      break;
    case MICROTIME:
      v = time(stop, true);
      break;
    case DURATION:
      v = duration(stop);
      break;
    case QUANTITY:
      v = quantity(stop);
      break;
    case INTORSTRING:
      v = intOrString(stop);
      break;
    case RAW:
      v = raw(stop);
      break;
    case FIELDSV1:
      v = fieldsV1(stop);
      break;
    case WRAPPER:
      v = wrapper(t.inner!, stop);
      break;
    default:
      throw new TypeError(`protobuf tables: kind ${t.kind} is not length-delimited`);
  }
  pos = stop;
  return v;
}

function scalar(kind: number, end: number): unknown {
  switch (kind) {
    case BOOL:
      return varint64(end) !== 0;
    case INT32:
      return varint64(end) | 0;
    case INT64:
      return varint64(end);
    case DOUBLE:
      return double(end);
  }
  throw new TypeError(`protobuf tables: kind ${kind} is not a scalar`);
}

function isEmpty(f: Field, v: unknown): boolean {
  switch (f.kind) {
    case STRING:
    case BYTES:
    case BOOL:
    case INT32:
    case INT64:
    case DOUBLE:
    case WRAPPER:
      return f.omitempty && (v === "" || v === 0 || v === false || v === null);
    case TIME:
    case MICROTIME:
      return f.omitzero && v === null;
  }
  return false;
}

function isVarintKind(kind: number): boolean {
  return kind === BOOL || kind === INT32 || kind === INT64;
}

/** A named slice type (Verbs, ExtraValue): a message whose field 1 repeats the elements. */
function wrapper(inner: ValueType, end: number): unknown[] | null {
  const items: unknown[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag >>> 3 !== 1) {
      skip(tag & 7, end);
      continue;
    }
    if ((tag & 7) === 2) items.push(value(inner, end));
    else items.push(scalar(inner.kind, end));
  }
  return items.length > 0 ? items : null;
}

function setKey(out: Record<string, unknown>, key: string, v: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(out, key, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else out[key] = v;
}

function mapEntry(t: ValueType, end: number, out: Record<string, unknown>): void {
  const n = length(end);
  const stop = pos + n;
  let key = "";
  let v: unknown = undefined;
  while (pos < stop) {
    const tag = varint32(stop);
    if (tag === 10) {
      const len = length(stop);
      key = string(pos, len);
      pos += len;
    } else if (tag >>> 3 === 2) {
      v = (tag & 7) === 2 ? value(t, stop) : scalar(t.kind, stop);
    } else skip(tag & 7, stop);
  }
  setKey(out, key, v === undefined ? zeroValue(t) : v);
}

function message(m: Message, end: number, out: Record<string, unknown>): Record<string, unknown> {
  const byNumber = m.byNumber;
  let f: Field | undefined;
  let grown = false;
  try {
    while (pos < end) {
      const tag = varint32(end);
      const wire = tag & 7;
      f = byNumber[tag >>> 3];
      if (f === undefined) {
        unknownFields++;
        skip(wire, end);
        continue;
      }
      const kind = f.kind;
      if (kind === MAP) {
        if (wire !== 2) {
          skip(wire, end);
          continue;
        }
        let map = out[f.name] as Record<string, unknown> | undefined;
        if (map === undefined || map === null) out[f.name] = map = new f.makeMap!();
        mapEntry(f.inner!, end, map);
        continue;
      }
      if (f.inline) {
        if (wire !== 2) {
          skip(wire, end);
          continue;
        }
        const n = length(end);
        message(resolve(f), pos + n, out);
        continue;
      }
      let v: unknown;
      if (wire === 2) {
        if (isVarintKind(kind) || kind === DOUBLE) {
          // A packed repeated scalar.
          const n = length(end);
          const stop = pos + n;
          let list = out[f.name] as unknown[] | undefined;
          if (!list) out[f.name] = list = [];
          while (pos < stop) list.push(scalar(kind, stop));
          grown = true;
          continue;
        }
        if (kind === FIELDSV1 && !f.repeated) {
          lazyFieldsV1(out, f.name, end);
          continue;
        }
        v = value(f, end);
      } else if (wire === 0 && isVarintKind(kind)) {
        v = scalar(kind, end);
      } else if (wire === 1 && kind === DOUBLE) {
        v = double(end);
      } else {
        unknownFields++; // a wire type the tables do not expect for this field
        skip(wire, end);
        continue;
      }
      if (f.repeated) {
        const list = out[f.name] as unknown[] | undefined;
        if (list) {
          list.push(v);
          grown = true;
        } else out[f.name] = [v];
        continue;
      }
      // encoding/json drops empty scalars of omitempty fields, and zero times of omitzero ones;
      // the protobuf encoder writes them anyway. Structs (Quantity, Time…) are never "empty".
      if (!f.pointer && (f.omitempty || f.omitzero) && isEmpty(f, v)) continue;
      out[f.name] = v;
    }
  } catch (e) {
    if (e instanceof Error && f) e.message = `${m.name}.${f.name}: ${e.message}`;
    throw e;
  }
  // Arrays grown by push have spare capacity (up to 16 slots); JSON.parse makes them exact.
  if (grown) {
    const repeated = m.repeated;
    for (let i = 0; i < repeated.length; i++) {
      const list = out[repeated[i].name] as unknown[] | undefined;
      if (list !== undefined && list !== null && list.length > 1) {
        out[repeated[i].name] = list.slice();
      }
    }
  }
  fillDefaults(out, m);
  if (m.fixup !== undefined) m.fixup(out);
  return out;
}

/**
 * What the API server's JSON has beyond the protobuf fields: apps/v1 sets the TypeMeta of a
 * StatefulSet's volumeClaimTemplates when it converts the object for output, and protobuf has no
 * field for an embedded object's TypeMeta.
 */
const FIXUPS: Record<string, (out: Record<string, unknown>) => void> = {
  "apps/v1.StatefulSetSpec": (spec) => {
    const templates = spec.volumeClaimTemplates as Record<string, unknown>[] | undefined;
    if (!templates) return;
    for (let i = 0; i < templates.length; i++) {
      if (templates[i].kind === undefined) {
        templates[i] = { apiVersion: "v1", kind: "PersistentVolumeClaim", ...templates[i] };
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Envelopes

function hasMagic(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  return end - start >= 4 && bytes[start] === 0x6b && bytes[start + 1] === 0x38 &&
    bytes[start + 2] === 0x73 && bytes[start + 3] === 0;
}

/** The parts of a runtime.Unknown. */
interface Unknown {
  apiVersion: string;
  kind: string;
  raw: [number, number];
  contentEncoding: string;
  contentType: string;
}

function typeMeta(end: number, into: Unknown): void {
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 10 || tag === 18) {
      const n = length(end);
      const s = string(pos, n);
      pos += n;
      if (tag === 10) into.apiVersion = s;
      else into.kind = s;
    } else skip(tag & 7, end);
  }
}

function unknown(end: number): Unknown {
  const u: Unknown = {
    apiVersion: "",
    kind: "",
    raw: [pos, pos],
    contentEncoding: "",
    contentType: "",
  };
  while (pos < end) {
    const tag = varint32(end);
    if (tag === 10) {
      const n = length(end);
      typeMeta(pos + n, u);
    } else if (tag === 18) {
      const n = length(end);
      u.raw = [pos, pos + n];
      pos += n;
    } else if (tag === 26 || tag === 34) {
      const n = length(end);
      const s = string(pos, n);
      pos += n;
      if (tag === 26) u.contentEncoding = s;
      else u.contentType = s;
    } else skip(tag & 7, end);
  }
  return u;
}

/**
 * The message table for a kind, or undefined when this library has no protobuf decoder for it.
 *
 * @param apiVersion `v1`, `apps/v1`, …
 * @param kind `Pod`, `PodList`, …
 * @returns The message.
 */
export function messageForKind(apiVersion: string, kind: string): Message | undefined {
  const pkg = PROTOBUF_API_VERSIONS[apiVersion];
  if (pkg === undefined) return undefined;
  return messageFor(`${pkg}.${kind}`) ??
    // Status, WatchEvent and the option kinds are meta/v1 messages under every group version.
    (pkg !== "meta/v1" ? messageFor(`meta/v1.${kind}`) : undefined);
}

/**
 * Tells whether this library can decode a kind from protobuf.
 *
 * @param apiVersion The group version.
 * @param kind The kind (and `<kind>List`, for lists).
 * @returns True when both are in the tables.
 */
export function canDecode(apiVersion: string, kind: string): boolean {
  return messageForKind(apiVersion, kind) !== undefined;
}

/** What a decode skipped. */
export interface DecodeStats {
  /** Fields the tables do not know (added to the API after the pinned version), skipped. */
  unknownFields: number;
}

/**
 * Decodes a protobuf-encoded object (`k8s\0` + runtime.Unknown) into the plain object its JSON
 * would parse to.
 *
 * @param bytes The body.
 * @param stats Receives the count of skipped unknown fields.
 * @returns The object, with `kind` and `apiVersion` from the envelope.
 * @throws {TypeError} When the bytes are not a Kubernetes protobuf object, or its kind is not
 *   in the tables, or a field is malformed (the message names the field and the byte).
 */
export function decodeObject(
  bytes: Uint8Array,
  stats?: DecodeStats,
): Record<string, unknown> {
  if (stats !== undefined) {
    const before = unknownFields;
    try {
      return decodeObject(bytes);
    } finally {
      stats.unknownFields += unknownFields - before;
    }
  }
  if (!hasMagic(bytes)) {
    throw new TypeError(
      `not a Kubernetes protobuf object: it does not start with "k8s\\0" (${bytes.length} bytes)`,
    );
  }
  const saved = buf, savedPos = pos;
  buf = bytes;
  pos = 4;
  let u: Unknown | undefined;
  try {
    u = unknown(bytes.length);
    if (u.contentEncoding) {
      throw new TypeError(`unsupported contentEncoding ${JSON.stringify(u.contentEncoding)}`);
    }
    const m = messageForKind(u.apiVersion, u.kind);
    if (m === undefined) {
      throw new TypeError(`no protobuf decoder for apiVersion ${u.apiVersion}, kind ${u.kind}`);
    }
    const out = new m.make();
    if (u.kind) out.kind = u.kind;
    if (u.apiVersion) out.apiVersion = u.apiVersion;
    pos = u.raw[0];
    message(m, u.raw[1], out);
    if (pos !== u.raw[1]) throw new RangeError(`message ends at byte ${pos}, not ${u.raw[1]}`);
    // The API server's JSON writes an empty list's items as [] (it makes the slice), while the
    // protobuf of an empty list has no items at all.
    if (out.items === null && u.kind.endsWith("List")) out.items = [];
    return out;
  } catch (e) {
    if (e instanceof RangeError || (e instanceof TypeError && !e.message.startsWith("Malformed"))) {
      const what = u?.kind ? `${u.apiVersion}/${u.kind}` : "object";
      throw new TypeError(`Malformed protobuf ${what} (${bytes.length} bytes): ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    buf = saved;
    pos = savedPos;
  }
}

/** A decoded watch event, before the watch gives it its final shape. */
export interface RawWatchEvent {
  type: string;
  object: Record<string, unknown>;
}

/**
 * Decodes one frame of a protobuf watch stream: a metav1.WatchEvent (with or without the
 * `k8s\0` envelope) whose object is a RawExtension holding a protobuf (or JSON) object.
 *
 * @param frame The frame's bytes (without the 4-byte length).
 * @returns The event type and the decoded object.
 * @throws {TypeError} When the frame is malformed.
 */
export function decodeWatchEvent(frame: Uint8Array): RawWatchEvent {
  return decodeEventWith(
    frame,
    (_type, start, stop) =>
      hasMagic(buf, start, stop)
        ? decodeObject(buf.subarray(start, stop))
        : embeddedJson(start, stop),
  );
}

/**
 * The one walk over a watch event's envelope (`k8s\0` + runtime.Unknown around a
 * `metav1.WatchEvent`): its type and the byte range of its object, which `objectAt` decodes (in
 * full, or compact). The decoder's state is saved and restored around it, and any failure is a
 * `TypeError` starting "Malformed protobuf watch event" with the frame's size.
 *
 * @param frame One frame's bytes.
 * @param objectAt Decodes the object at `buf[start, stop)` (a nested protobuf or JSON object).
 * @returns The event.
 */
function decodeEventWith(
  frame: Uint8Array,
  objectAt: (type: string, start: number, stop: number) => unknown,
): RawWatchEvent {
  const saved = buf, savedPos = pos;
  buf = frame;
  pos = 0;
  let end = frame.length;
  try {
    if (hasMagic(frame)) {
      pos = 4;
      const u = unknown(end);
      pos = u.raw[0];
      end = u.raw[1];
    }
    let type = "";
    let range: [number, number] | undefined;
    while (pos < end) {
      const tag = varint32(end);
      if (tag === 10) {
        const n = length(end);
        type = string(pos, n);
        pos += n;
      } else if (tag === 18) {
        const n = length(end);
        const stop = pos + n;
        range = rawBytes(stop);
        pos = stop;
      } else skip(tag & 7, end);
    }
    const object = range !== undefined && range[0] !== range[1]
      ? objectAt(type, range[0], range[1])
      : null;
    if (object === null || typeof object !== "object") {
      throw new TypeError("the event has no object");
    }
    return { type, object: object as Record<string, unknown> };
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith("Malformed")) {
      throw new TypeError(`Malformed protobuf watch event (${frame.length} bytes): ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    buf = saved;
    pos = savedPos;
  }
}

// ---------------------------------------------------------------------------------------------
// Compact objects: the bytes an object came in, plus a decoded header (the compact store)

/**
 * The ObjectMeta fields a compact object's header keeps: what keys, indexes, selectors, the
 * controller's owner mapping and its read-your-writes check read. Annotations, finalizers,
 * managedFields and the timestamps (but `deletionTimestamp`) stay in the bytes.
 */
export const HEADER_FIELDS: readonly string[] = [
  "name",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "labels",
  "ownerReferences",
  "deletionTimestamp",
];

/**
 * An object kept as the protobuf bytes it came in (its message, without the `k8s\0` envelope)
 * with only {@linkcode HEADER_FIELDS} of its metadata decoded. It stands in for the object in
 * the watch loop (which reads the key and the resource version); {@linkcode decodeCompact} gives
 * the object itself.
 */
export class CompactObject {
  /** The object's apiVersion. */
  apiVersion: string;
  /** The object's kind. */
  kind: string;
  /** The header: {@linkcode HEADER_FIELDS} of the metadata. */
  metadata: Record<string, unknown>;
  /** The message bytes (one copy per object). */
  readonly bytes: Uint8Array;
  /** The message table that decodes them. */
  readonly message: Message;

  /**
   * Wraps bytes and their header.
   *
   * @param apiVersion The apiVersion.
   * @param kind The kind.
   * @param metadata The header.
   * @param bytes The message bytes.
   * @param message Their message table.
   */
  constructor(
    apiVersion: string,
    kind: string,
    metadata: Record<string, unknown>,
    bytes: Uint8Array,
    message: Message,
  ) {
    this.apiVersion = apiVersion;
    this.kind = kind;
    this.metadata = metadata;
    this.bytes = bytes;
    this.message = message;
  }
}

let headerMessage: Message | undefined;

/** ObjectMeta restricted to the header fields (the other fields are skipped by their wire type). */
function headerMeta(): Message {
  if (headerMessage !== undefined) return headerMessage;
  const full = messageFor("meta/v1.ObjectMeta");
  if (full === undefined) throw new TypeError("protobuf tables: no meta/v1.ObjectMeta");
  const fields = full.fields.filter((f) => HEADER_FIELDS.includes(f.name));
  const byNumber: (Field | undefined)[] = [];
  for (const f of fields) byNumber[f.number] = f;
  headerMessage = {
    name: "meta/v1.ObjectMeta",
    byNumber,
    defaults: [],
    fields,
    fixup: undefined,
    make: plainConstructor(),
    repeated: fields.filter((f) => f.repeated),
  };
  return headerMessage;
}

/** The number of a message's `metadata` field (0 when it has none), cached per message. */
const metadataNumbers = new WeakMap<Message, number>();

function metadataNumber(m: Message): number {
  let n = metadataNumbers.get(m);
  if (n === undefined) {
    const f = m.fields.find((f) => f.name === "metadata" && f.kind === MESSAGE);
    n = f !== undefined && f.ref === "meta/v1.ObjectMeta" ? f.number : 0;
    metadataNumbers.set(m, n);
  }
  return n;
}

/**
 * A compact object of the message in `buf[start, end)`: a copy of the bytes and the decoded
 * header. Leaves `pos` at `end`.
 */
function compactAt(
  m: Message,
  apiVersion: string,
  kind: string,
  start: number,
  end: number,
  strip = false,
): CompactObject {
  const metaNumber = metadataNumber(m);
  const meta = headerMeta();
  let header: Record<string, unknown> | undefined;
  const before = unknownFields; // the fields the header skips are not unknown
  pos = start;
  while (pos < end) {
    const tag = varint32(end);
    if (tag >>> 3 === metaNumber && (tag & 7) === 2) {
      const n = length(end);
      header = message(meta, pos + n, header ?? new meta.make());
    } else skip(tag & 7, end);
  }
  unknownFields = before;
  if (pos !== end) throw new RangeError(`message ends at byte ${pos}, not ${end}`);
  const bytes = strip ? withoutManagedFields(metaNumber, start, end) : buf.slice(start, end);
  pos = end;
  return new CompactObject(apiVersion, kind, header ?? {}, bytes, m);
}

let managedFieldsTag = -1;

/**
 * A copy of the message in `buf[start, end)` without `metadata.managedFields` (what
 * `stripManagedFields` removes from a decoded object, removed from the bytes): the metadata
 * field's length prefix is rewritten, everything else copied as it is.
 */
function withoutManagedFields(metaNumber: number, start: number, end: number): Uint8Array {
  if (managedFieldsTag < 0) {
    const f = messageFor("meta/v1.ObjectMeta")?.fields.find((f) => f.name === "managedFields");
    managedFieldsTag = f === undefined ? 0 : (f.number << 3) | 2;
  }
  let lengthAt = -1, metaStart = 0, metaEnd = 0;
  pos = start;
  while (pos < end) {
    const tag = varint32(end);
    if (tag >>> 3 === metaNumber && (tag & 7) === 2) {
      lengthAt = pos;
      const n = length(end);
      metaStart = pos;
      metaEnd = pos += n;
    } else skip(tag & 7, end);
  }
  const drop: number[] = [];
  let removed = 0;
  pos = metaStart;
  while (lengthAt >= 0 && pos < metaEnd) {
    const at = pos;
    const tag = varint32(metaEnd);
    skip(tag & 7, metaEnd);
    if (tag === managedFieldsTag) {
      drop.push(at, pos);
      removed += pos - at;
    }
  }
  if (removed === 0) return buf.slice(start, end);
  let size = metaEnd - metaStart - removed;
  const prefix: number[] = [];
  do {
    prefix.push(size > 0x7f ? (size & 0x7f) | 0x80 : size);
    size = Math.floor(size / 128);
  } while (size > 0);
  const out = new Uint8Array(end - start - removed - (metaStart - lengthAt) + prefix.length);
  out.set(buf.subarray(start, lengthAt), 0);
  let at = lengthAt - start;
  out.set(prefix, at);
  at += prefix.length;
  let from = metaStart;
  for (let i = 0; i < drop.length; i += 2) {
    out.set(buf.subarray(from, drop[i]), at);
    at += drop[i] - from;
    from = drop[i + 1];
  }
  out.set(buf.subarray(from, end), at);
  return out;
}

/**
 * Decodes a compact object in full: the plain object {@linkcode decodeObject} gives for the
 * same bytes.
 *
 * @param object The compact object.
 * @returns A new plain object.
 * @throws {TypeError} When the bytes are malformed (they decoded at sync, so this is a bug).
 */
export function decodeCompact(object: CompactObject): Record<string, unknown> {
  const saved = buf, savedPos = pos;
  const bytes = object.bytes;
  buf = bytes;
  pos = 0;
  try {
    const m = object.message;
    const out = new m.make();
    out.kind = object.kind;
    out.apiVersion = object.apiVersion;
    message(m, bytes.length, out);
    if (pos !== bytes.length) {
      throw new RangeError(`message ends at byte ${pos}, not ${bytes.length}`);
    }
    return out;
  } catch (e) {
    throw malformed(object, bytes.length, e);
  } finally {
    buf = saved;
    pos = savedPos;
  }
}

/** Per message: the clone that skips its lazy fields, and those fields (see decodeCompactLazy). */
const lazyPlans = new WeakMap<Message, { rest: Message; lazy: Field[] } | null>();

/**
 * The lazy plan of a message: its singular, non-inline message fields (`metadata`, `spec`,
 * `status`) are decoded on first read; the rest (scalars, lists, maps) at once.
 */
function lazyPlan(m: Message): { rest: Message; lazy: Field[] } | null {
  let plan = lazyPlans.get(m);
  if (plan !== undefined) return plan;
  const lazy = m.fields.filter((f) => f.kind === MESSAGE && !f.repeated && !f.inline);
  if (lazy.length === 0 || m.fixup !== undefined) plan = null;
  else {
    const byNumber = m.byNumber.slice();
    for (const f of lazy) byNumber[f.number] = undefined;
    const fields = m.fields.filter((f) => !lazy.includes(f));
    // The zero values the JSON shows (an absent spec is `{}`) stay those of the whole message.
    plan = { rest: { ...m, byNumber, fields, defaults: defaultsOf(m) }, lazy };
  }
  lazyPlans.set(m, plan);
  return plan;
}

/**
 * Like {@linkcode decodeCompact}, but the object's top-level message fields (`metadata`, `spec`,
 * `status`, …) are decoded on first read: each is an own enumerable accessor that decodes its
 * part of the bytes and then becomes a plain data property (the way `fieldsV1` is lazy). Every
 * read (access, `JSON.stringify`, spread, `structuredClone`, deep equality) gives what
 * {@linkcode decodeCompact} gives; a reconcile that reads the metadata and the spec never decodes
 * the status.
 *
 * @param object The compact object.
 * @param fail Turns a failure of a later (lazy) decode into the error to throw.
 * @returns A new object.
 * @throws {TypeError} When the bytes are malformed.
 */
export function decodeCompactLazy(
  object: CompactObject,
  fail: (error: Error) => Error,
): Record<string, unknown> {
  const m = object.message;
  const plan = lazyPlan(m);
  if (plan === null) return decodeCompact(object);
  const saved = buf, savedPos = pos;
  const bytes = object.bytes;
  buf = bytes;
  pos = 0;
  const before = unknownFields;
  try {
    const out = new m.make();
    out.kind = object.kind;
    out.apiVersion = object.apiVersion;
    message(plan.rest, bytes.length, out);
    unknownFields = before;
    // Where each lazy field is (the last occurrence wins, as when decoding at once).
    const ranges: [Field, number, number][] = [];
    pos = 0;
    while (pos < bytes.length) {
      const tag = varint32(bytes.length);
      const f = m.byNumber[tag >>> 3];
      if (f !== undefined && (tag & 7) === 2 && plan.lazy.includes(f)) {
        const n = length(bytes.length);
        const existing = ranges.findIndex((r) => r[0] === f);
        if (existing >= 0) ranges.splice(existing, 1);
        ranges.push([f, pos, pos + n]);
        pos += n;
      } else skip(tag & 7, bytes.length);
    }
    for (const [f, start, end] of ranges) lazyField(out, f, bytes, start, end, object, fail);
    return out;
  } catch (e) {
    throw malformed(object, bytes.length, e);
  } finally {
    buf = saved;
    pos = savedPos;
  }
}

function lazyField(
  out: Record<string, unknown>,
  f: Field,
  bytes: Uint8Array,
  start: number,
  end: number,
  object: CompactObject,
  fail: (error: Error) => Error,
): void {
  const name = f.name;
  const settle = (value: unknown) =>
    Object.defineProperty(out, name, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  Object.defineProperty(out, name, {
    get() {
      const saved = buf, savedPos = pos;
      buf = bytes;
      pos = start;
      let value: Record<string, unknown>;
      try {
        const inner = resolve(f);
        value = message(inner, end, new inner.make());
      } catch (e) {
        throw fail(
          new TypeError(
            `Malformed protobuf ${object.apiVersion}/${object.kind} (${bytes.length} bytes): ${
              (e as Error).message
            }`,
            { cause: e },
          ),
        );
      } finally {
        buf = saved;
        pos = savedPos;
      }
      settle(value);
      return value;
    },
    set: settle,
    enumerable: true,
    configurable: true,
  });
}

/**
 * Like {@linkcode decodeWatchEvent}, but the object of an ADDED, MODIFIED or DELETED event is a
 * {@linkcode CompactObject} when it is a protobuf object this library can decode (BOOKMARK and
 * ERROR objects, and JSON objects, are decoded as usual).
 *
 * @param frame The frame's bytes (without the 4-byte length).
 * @param strip Drop `metadata.managedFields` from the kept bytes.
 * @returns The event type and its object.
 * @throws {TypeError} When the frame is malformed.
 */
export function decodeWatchEventCompact(frame: Uint8Array, strip = false): RawWatchEvent {
  return decodeEventWith(frame, (type, start, stop) => {
    if (!hasMagic(buf, start, stop)) return embeddedJson(start, stop);
    if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") {
      pos = start + 4;
      const u = unknown(stop);
      const m = u.contentEncoding ? undefined : messageForKind(u.apiVersion, u.kind);
      if (m !== undefined && metadataNumber(m) !== 0) {
        return compactAt(m, u.apiVersion, u.kind, u.raw[0], u.raw[1], strip);
      }
    }
    return decodeObject(buf.subarray(start, stop));
  });
}

/**
 * Like {@linkcode decodeObject} for a list (`…List`), but its items are
 * {@linkcode CompactObject}s (with the list's apiVersion and the item kind). A body that is not
 * a list of objects with metadata is decoded as usual.
 *
 * @param bytes The body.
 * @param stats Receives the count of skipped unknown fields.
 * @param strip Drop `metadata.managedFields` from the kept bytes.
 * @returns The list.
 * @throws {TypeError} When the bytes are malformed.
 */
export function decodeCompactList(
  bytes: Uint8Array,
  stats?: DecodeStats,
  strip = false,
): Record<string, unknown> {
  if (stats !== undefined) {
    const before = unknownFields;
    try {
      return decodeCompactList(bytes, undefined, strip);
    } finally {
      stats.unknownFields += unknownFields - before;
    }
  }
  if (!hasMagic(bytes)) return decodeObject(bytes);
  const saved = buf, savedPos = pos;
  buf = bytes;
  pos = 4;
  let u: Unknown | undefined;
  try {
    u = unknown(bytes.length);
    const m = u.contentEncoding || !u.kind.endsWith("List")
      ? undefined
      : messageForKind(u.apiVersion, u.kind);
    const items = m?.fields.find((f) => f.name === "items" && f.kind === MESSAGE && f.repeated);
    const item = items === undefined ? undefined : resolve(items);
    if (m === undefined || items === undefined || item === undefined || !metadataNumber(item)) {
      return decodeObject(bytes);
    }
    // The list without its items (ListMeta), then the items as compact objects.
    const rest: Message = { ...m, byNumber: m.byNumber.slice(), defaults: [] };
    rest.byNumber[items.number] = undefined;
    const out = new m.make();
    out.kind = u.kind;
    out.apiVersion = u.apiVersion;
    pos = u.raw[0];
    message(rest, u.raw[1], out);
    const kind = u.kind.slice(0, -4);
    const list: CompactObject[] = [];
    const itemTag = (items.number << 3) | 2;
    pos = u.raw[0];
    const end = u.raw[1];
    while (pos < end) {
      const tag = varint32(end);
      if (tag === itemTag) {
        const n = length(end);
        list.push(compactAt(item, u.apiVersion, kind, pos, pos + n, strip));
      } else skip(tag & 7, end);
    }
    unknownFields -= list.length; // the items `rest` skipped
    out.items = list;
    return out;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("Malformed")) throw e;
    const what = u?.kind ? `${u.apiVersion}/${u.kind}` : "object";
    throw new TypeError(
      `Malformed protobuf ${what} (${bytes.length} bytes): ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    buf = saved;
    pos = savedPos;
  }
}

/** The error of an object whose protobuf bytes do not decode: its kind, size and the cause. */
function malformed(
  object: { apiVersion?: string; kind?: string },
  length: number,
  cause: unknown,
): TypeError {
  return new TypeError(
    `Malformed protobuf ${object.apiVersion}/${object.kind} (${length} bytes): ${
      (cause as Error).message
    }`,
    { cause },
  );
}
