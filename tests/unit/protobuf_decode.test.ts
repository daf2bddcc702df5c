// The protobuf decoder on hand-made bytes: the special types (Time, MicroTime, Duration,
// Quantity, IntOrString, RawExtension, FieldsV1, bytes), Go's JSON zero-value rules, unknown
// fields of every wire type, and malformed input. The real-apiserver parity test
// (tests/e2e/protobuf_parity.test.ts) checks the same decoder against the server's own JSON.

import assert from "node:assert/strict";
import { decodeObject, decodeWatchEvent, formatDuration } from "../../_client/protobuf/decode.ts";
import { encodeMessage, encodeObject, encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import { test } from "../_test.ts";

const text = new TextEncoder();

/** Minimal protobuf writer for hand-made messages. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function field(number: number, bytes: Uint8Array | number[]): number[] {
  return [...varint(number * 8 + 2), ...varint(bytes.length), ...bytes];
}
function envelope(apiVersion: string, kind: string, raw: number[]): Uint8Array {
  const typeMeta = [...field(1, text.encode(apiVersion)), ...field(2, text.encode(kind))];
  return new Uint8Array([0x6b, 0x38, 0x73, 0, ...field(1, typeMeta), ...field(2, raw)]);
}

test("Go's time.Duration.String formats", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [1, "1ns"],
    [1500, "1.5µs"],
    [300e6, "300ms"],
    [1.5e9, "1.5s"],
    [60e9, "1m0s"],
    [3600e9, "1h0m0s"],
    [3723.5e9, "1h2m3.5s"],
    [-90e9, "-1m30s"],
    [100 * 3600e9, "100h0m0s"],
  ];
  for (const [nanos, want] of cases) assert.equal(formatDuration(nanos), want, String(nanos));
});

test("a pod round-trips through the tables with the JSON zero-value rules", () => {
  const pod = {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      name: "p",
      namespace: "default",
      creationTimestamp: "2025-06-01T08:00:00Z",
      labels: JSON.parse('{"a":"b","__proto__":"safe"}'),
      generation: 9007199254740991,
    },
    spec: {
      containers: [{
        name: "c",
        image: "i",
        resources: { limits: { cpu: "1500m" }, requests: { memory: "0" } },
        ports: [{ containerPort: 80, protocol: "TCP" }],
        livenessProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 3 },
      }],
      priority: -5,
      securityContext: { runAsUser: 0 },
    },
    status: {
      startTime: "2025-06-01T08:00:01Z",
      conditions: [{ type: "Ready", status: "True", lastTransitionTime: null }],
    },
  };
  const decoded = decodeObject(encodeObject(pod)) as typeof pod & Record<string, unknown>;
  assert.equal(decoded.metadata.generation, 9007199254740991);
  assert.equal(decoded.spec.priority, -5);
  assert.equal(Object.getPrototypeOf(decoded.metadata.labels), Object.prototype);
  assert.equal(Object.hasOwn(decoded.metadata.labels, "__proto__"), true);
  assert.equal(decoded.metadata.labels["__proto__" as "a"], "safe");
  const c = decoded.spec.containers[0] as Record<string, unknown>;
  // Pointer zero kept (runAsUser: 0), Quantity kept, IntOrString as string.
  assert.deepEqual(decoded.spec.securityContext, { runAsUser: 0 });
  assert.deepEqual(c.resources, { limits: { cpu: "1500m" }, requests: { memory: "0" } });
  assert.deepEqual(c.livenessProbe, {
    httpGet: { path: "/", port: "http" },
    periodSeconds: 3,
  });
  // Non-omitempty fields the JSON always has: Container.name; a nil non-omitempty slice is null.
  assert.equal(c.name, "c");
  // A zero Time that is not omitzero is null; omitempty strings that are empty are absent.
  const condition = (decoded.status.conditions as Record<string, unknown>[])[0];
  assert.equal(condition.lastTransitionTime, null);
  assert.equal("reason" in condition, false);
  assert.equal("hostIP" in (decoded.status as Record<string, unknown>), false);
  assert.equal(decoded.status.startTime, "2025-06-01T08:00:01Z");
});

test("MicroTime keeps microseconds; Time drops sub-seconds; both are UTC RFC 3339", () => {
  const lease = {
    kind: "Lease",
    apiVersion: "coordination.k8s.io/v1",
    metadata: { name: "l", creationTimestamp: "2025-06-01T08:00:00Z" },
    spec: { acquireTime: "2025-06-01T08:00:00.000001Z", renewTime: "1999-12-31T23:59:59.999999Z" },
  };
  const decoded = decodeObject(encodeObject(lease)) as typeof lease;
  assert.equal(decoded.spec.acquireTime, "2025-06-01T08:00:00.000001Z");
  assert.equal(decoded.spec.renewTime, "1999-12-31T23:59:59.999999Z");
  // A Time with nanos on the wire (a Go client may send them): JSON has seconds only.
  const ts = [8, ...varint(1748764800), 16, ...varint(123456789)];
  const meta = field(8, ts); // ObjectMeta.creationTimestamp
  const decodedTime = decodeObject(envelope("v1", "ConfigMap", field(1, meta)));
  assert.deepEqual(decodedTime.metadata, { creationTimestamp: "2025-06-01T08:00:00Z" });
});

test("RawExtension holds JSON or a nested protobuf object; FieldsV1 its JSON", () => {
  const revision = {
    kind: "ControllerRevision",
    apiVersion: "apps/v1",
    metadata: {
      name: "r",
      managedFields: [{ manager: "m", fieldsType: "FieldsV1", fieldsV1: { "f:data": {} } }],
    },
    data: { spec: { n: 1.5, s: "x", z: null, l: [1, "a"] } },
    revision: 3,
  };
  assert.deepEqual(decodeObject(encodeObject(revision)), revision);
  // A watch event's object is a RawExtension with a k8s\0 envelope inside.
  const frame = encodeWatchFrame("MODIFIED", revision);
  assert.deepEqual(decodeWatchEvent(frame.subarray(4)), { type: "MODIFIED", object: revision });
});

test("bytes are base64, named slices are arrays, empty lists have items: []", () => {
  const secret = {
    kind: "Secret",
    apiVersion: "v1",
    metadata: { name: "s" },
    data: { a: "AAECAwQF/w==", b: "", c: "YQ==", d: "YWI=" },
    type: "Opaque",
  };
  assert.deepEqual(decodeObject(encodeObject(secret)), secret);
  const review = {
    kind: "SubjectAccessReview",
    apiVersion: "authorization.k8s.io/v1",
    metadata: {},
    spec: { user: "u", extra: { x: ["a", "b"] } },
    status: { allowed: false },
  };
  assert.deepEqual(decodeObject(encodeObject(review)), review);
  const empty = decodeObject(envelope("v1", "PodList", field(1, [])));
  assert.deepEqual(empty, { kind: "PodList", apiVersion: "v1", metadata: {}, items: [] });
});

test("unknown fields of every wire type are skipped; known ones still decoded", () => {
  const cm = encodeMessage("core/v1.ConfigMap", { metadata: { name: "x" }, data: { k: "v" } });
  const unknown = [
    ...[0x98, 0x06], // field 99, varint
    ...varint(2 ** 40),
    ...[0xa1, 0x06], // field 100, fixed64
    ...[1, 2, 3, 4, 5, 6, 7, 8],
    ...[0xaa, 0x06, 3, 9, 9, 9], // field 101, bytes
    ...[0xb5, 0x06, 1, 2, 3, 4], // field 102, fixed32
  ];
  const stats = { unknownFields: 0 };
  const decoded = decodeObject(envelope("v1", "ConfigMap", [...unknown, ...cm, ...unknown]), stats);
  assert.equal(stats.unknownFields, 8);
  assert.deepEqual(decoded, {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: { name: "x" },
    data: { k: "v" },
  });
});

test("malformed input throws a TypeError naming the kind, the field and the byte", () => {
  const raw = encodeMessage("core/v1.ConfigMap", { metadata: { name: "abc" }, data: { k: "v" } });
  // Cut anywhere inside the object (but not at a field boundary of the outermost message).
  for (let cut = 1; cut < raw.length; cut++) {
    const bytes = envelope("v1", "ConfigMap", [...raw.subarray(0, cut)]);
    let error: unknown;
    try {
      decodeObject(bytes);
    } catch (e) {
      error = e;
    }
    if (error === undefined) continue; // a clean field boundary: a shorter, valid object
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /^Malformed protobuf v1\/ConfigMap \(\d+ bytes\): /);
    assert.match(error.message, /truncated .* at byte \d+/);
  }
  const truncatedName = envelope("v1", "ConfigMap", field(1, [10, 3, 97]));
  assert.throws(
    () => decodeObject(truncatedName),
    /core\/v1\.ConfigMap\.metadata: meta\/v1\.ObjectMeta\.name: truncated field of 3 bytes/,
  );
  assert.throws(() => decodeObject(text.encode('{"kind":"Pod"}')), /does not start with "k8s\\0"/);
  assert.throws(
    () => decodeObject(envelope("example.com/v1", "Foo", [])),
    /no protobuf decoder for apiVersion example.com\/v1, kind Foo/,
  );
  // Group wire types (3, 4) do not occur in Kubernetes messages: an error, not a guess.
  assert.throws(() => decodeObject(envelope("v1", "ConfigMap", [0x0b])), /wire type 3/);
  assert.throws(() => decodeWatchEvent(new Uint8Array([10, 5, 65])), /Malformed protobuf watch/);
});

test("FieldsV1 is parsed on first read: an own enumerable accessor that becomes a data property, equal to JSON in every reading", () => {
  const fields = { "f:metadata": { "f:labels": { "f:app": {}, ".": {} } }, "f:data": {} };
  const configMap = {
    kind: "ConfigMap",
    apiVersion: "v1",
    metadata: {
      name: "c",
      managedFields: [
        { manager: "a", operation: "Apply", fieldsType: "FieldsV1", fieldsV1: fields },
        { manager: "b", operation: "Update", fieldsType: "FieldsV1", fieldsV1: { "f:data": {} } },
        { manager: "c", operation: "Update", fieldsType: "FieldsV1", fieldsV1: { "f:x": {} } },
      ],
    },
    data: { k: "v" },
  };
  const bytes = encodeObject(configMap);
  type Entry = Record<string, unknown>;
  const entries = () => (decodeObject(bytes).metadata as { managedFields: Entry[] }).managedFields;

  // Unread: an accessor, enumerable, in JSON's key order.
  const [first, second, third] = entries();
  const before = Object.getOwnPropertyDescriptor(first, "fieldsV1")!;
  assert.equal(typeof before.get, "function");
  assert.equal(before.enumerable, true);
  assert.deepEqual(Object.keys(first), Object.keys(configMap.metadata.managedFields[0]));
  // Read: the parsed value, then a plain data property holding the same object.
  const read = first.fieldsV1;
  assert.deepEqual(read, fields);
  const after = Object.getOwnPropertyDescriptor(first, "fieldsV1")!;
  assert.equal(after.get, undefined);
  assert.equal(after.value, read);
  assert.equal(first.fieldsV1, read, "parsed once");
  // Written before any read: the written value wins, and no parse happens later.
  second.fieldsV1 = { replaced: true };
  assert.deepEqual(second.fieldsV1, { replaced: true });
  assert.equal(Object.getOwnPropertyDescriptor(second, "fieldsV1")!.writable, true);
  // Deleted before any read: gone.
  assert.equal(delete third.fieldsV1, true);
  assert.equal("fieldsV1" in third, false);

  // Every other way of reading gives exactly what JSON gives, unread properties included.
  assert.equal(JSON.stringify(decodeObject(bytes)), JSON.stringify(configMap));
  assert.deepEqual(structuredClone(decodeObject(bytes)), configMap);
  assert.deepEqual({ ...entries()[0] }, configMap.metadata.managedFields[0]);
  assert.deepEqual(decodeObject(bytes), configMap);

  // A frozen object still reads (parsed once, kept aside) and refuses writes.
  const frozen = Object.freeze(entries()[1]);
  assert.deepEqual(frozen.fieldsV1, { "f:data": {} });
  assert.equal(frozen.fieldsV1, frozen.fieldsV1);
  assert.throws(() => {
    (frozen as Entry).fieldsV1 = {};
  }, TypeError);

  // Read with another `this`: through a Proxy that forwards the receiver (as reactive stores do),
  // through an object whose prototype is the entry, and from a copy of its property descriptors.
  // Each gives the decoded value, and a write through the Proxy lands on the entry.
  const proxied = entries()[0];
  const proxy = new Proxy(proxied, {
    get: (target, key, receiver) => Reflect.get(target, key, receiver),
  });
  assert.deepEqual(proxy.fieldsV1, fields);
  assert.deepEqual(proxied.fieldsV1, fields);
  assert.deepEqual(Object.create(entries()[0]).fieldsV1, fields);
  const copied = Object.defineProperties({}, Object.getOwnPropertyDescriptors(entries()[0]));
  assert.deepEqual((copied as Entry).fieldsV1, fields);
  assert.equal(JSON.stringify(copied), JSON.stringify(configMap.metadata.managedFields[0]));
  const target = entries()[1];
  const writable = new Proxy(target, {
    set: (t, key, value, receiver) => Reflect.set(t, key, value, receiver),
  });
  writable.fieldsV1 = { viaProxy: true };
  assert.deepEqual(target.fieldsV1, { viaProxy: true });
});

test("FieldsV1 that is not a JSON object fails at decode; invalid JSON inside braces fails when read, naming the field", () => {
  const entry = (json: string) => [
    ...field(1, text.encode("m")), // ManagedFieldsEntry.manager
    ...field(7, field(1, text.encode(json))), // ManagedFieldsEntry.fieldsV1 → FieldsV1.Raw
  ];
  const object = (json: string) => envelope("v1", "ConfigMap", field(1, field(17, entry(json)))); // ObjectMeta.managedFields
  assert.throws(() => decodeObject(object("[1]")), /fieldsV1: embedded JSON is not an object/);
  const decoded = decodeObject(object("{nope}")) as {
    metadata: { managedFields: { fieldsV1?: unknown }[] };
  };
  assert.throws(
    () => decoded.metadata.managedFields[0].fieldsV1,
    /managedFields\[\]\.fieldsV1 is not valid JSON/,
  );
  const empty = decodeObject(object("")) as typeof decoded;
  assert.equal(empty.metadata.managedFields[0].fieldsV1, null);
});
