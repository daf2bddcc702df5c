// exec, attach and port-forward against a stub WebSocket server speaking the channel protocol.
//
// The frames are those recorded from kube-apiserver v1.36.3 in front of KWOK v0.8.0 (tests/e2e/
// exec.test.ts's setup): an empty message opens each output channel, the error channel carries
// one JSON `Status` (`{"metadata":{},"status":"Success"}`, or KWOK's 500 InternalError for a
// non-zero exit), port-forward channels start with the port as 2 little-endian bytes. The
// `NonZeroExitCode` status is the one a real kubelet's remotecommand server writes (KWOK never
// sends it). The e2e tests check the same against the
// real apiserver; these cover what a simulated node cannot show (stdin end-of-file, non-zero exits,
// a socket that breaks mid-stream).

import nodeAssert from "node:assert/strict";
import { ApiError } from "../../errors.ts";
import { attach, exec, execOutput, forwardPort, portForward } from "../../exec.ts";
import { FakeApiServer, VirtualClock } from "../../testing/mod.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { type RawConn, RawServer, statusJson, switchingProtocols, WsStub } from "./_ws_stub.ts";
import { RUNTIME, test } from "../_test.ts";

const SUCCESS = '{"metadata":{},"status":"Success"}';
const EXIT_3 =
  '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}';
function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message ?? "assertion failed");
}
const assertEquals = <T>(actual: T, expected: T) => nodeAssert.deepStrictEqual(actual, expected);
async function assertRejects<E = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    nodeAssert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    if (includes) nodeAssert.ok(String((e as Error).message).includes(includes), String(e));
    return e as E;
  }
  throw new nodeAssert.AssertionError({ message: "expected a rejection" });
}
const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

/**
 * Connects to a local port with node:net, writes `message` (if any), and reads until the peer
 * closes.
 */
function roundTrip(port: number, message: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port }, () => {
      if (message) socket.write(message);
    });
    let got = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => got += chunk);
    // A reset counts as closed: the tests look at what arrived before.
    socket.on("error", () => {});
    socket.on("close", () => resolve(got));
  });
}

async function readAll(stream: ReadableStream<Uint8Array> | undefined): Promise<string> {
  let out = "";
  for await (const chunk of stream!) out += text(chunk);
  return out;
}

test("exec: stdout, stderr and the Success status over v5, with the request kubectl sends", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(1, "");
    ws.send(2, "");
    ws.send(1, "hello\n");
    ws.send(2, "warning\n");
    ws.send(1, "world\n");
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["sh", "-c", "echo hello"], {
    namespace: "apps",
    container: "main",
  });
  const [stdout, stderr, result] = await Promise.all([
    readAll(session.stdout),
    readAll(session.stderr),
    session.result,
  ]);
  assertEquals(stdout, "hello\nworld\n");
  assertEquals(stderr, "warning\n");
  assertEquals(result.exitCode, 0);
  assertEquals(session.protocol, "v5.channel.k8s.io");
  const request = stub.requests[0];
  const url = new URL(request.url);
  assertEquals(url.pathname, "/api/v1/namespaces/apps/pods/web/exec");
  assertEquals(url.searchParams.getAll("command"), ["sh", "-c", "echo hello"]);
  assertEquals(url.searchParams.get("container"), "main");
  assertEquals(url.searchParams.get("stdout"), "true");
  assertEquals(url.searchParams.get("stderr"), "true");
  assertEquals(url.searchParams.get("stdin"), null);
  assertEquals(request.headers.get("authorization"), "Bearer stub-token");
  assertEquals(
    request.headers.get("sec-websocket-protocol"),
    "v5.channel.k8s.io, v4.channel.k8s.io",
  );
  assert(request.headers.get("user-agent")?.startsWith("denokube/"));
});

test("execOutput: a NonZeroExitCode status is the exit code, not an error", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(2, "failing\n");
    ws.send(3, EXIT_3);
  });
  await using client = stub.client();
  const out = await execOutput(client, "web", ["sh", "-c", "echo failing >&2; exit 3"]);
  assertEquals(out, { stdout: "", stderr: "failing\n", exitCode: 3 });
});

test("exec: KWOK's 500 InternalError for a non-zero exit (recorded) rejects with it", async () => {
  const recorded =
    '{"metadata":{},"status":"Failure","message":"Internal error occurred: Internal error occurred: error executing command in container: cmd wait: sh -c echo x; exit 3: exit status 3","reason":"InternalError","details":{"causes":[{"message":"Internal error occurred: error executing command in container: cmd wait: sh -c echo x; exit 3: exit status 3"}]},"code":500}';
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(1, "");
    ws.send(1, "x\n");
    ws.send(3, recorded);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["sh", "-c", "echo x; exit 3"], {
    stderr: false,
  });
  assertEquals(await readAll(session.stdout), "x\n");
  const error = await assertRejects(() => session.result, ApiError);
  assertEquals(error.status, 500);
  assertEquals(error.reason, "InternalError");
  assert(error.message.includes("exit status 3"), error.message);
});

test("exec: a failure status other than an exit code rejects with its ApiError", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(
      3,
      statusJson({
        status: "Failure",
        message: 'container "nope" not found in pod "web"',
        reason: "InternalError",
        code: 500,
      }),
    );
  });
  await using client = stub.client();
  const error = await assertRejects(
    () => execOutput(client, "web", ["true"], { container: "nope" }),
    ApiError,
  );
  assertEquals(error.status, 500);
  assert(error.message.includes('container "nope" not found'), error.message);
  assert(error.message.includes("exec in pod default/web"), error.message);
});

test("exec: stdin is sent on channel 0 and closing it sends the v5 close frame", async () => {
  await using stub = await WsStub.start();
  const received: number[][] = [];
  stub.push(async (ws) => {
    for (;;) {
      const message = await ws.next();
      if (!message) return;
      received.push([...message.subarray(0, 2)]);
      if (message[0] === 255) break; // [255, 0]: stdin closed, like `cat` reading EOF
      ws.send(1, message.subarray(1));
    }
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  const out = await execOutput(client, "web", ["cat"], { stdin: "line one\nline two\n" });
  assertEquals(out.stdout, "line one\nline two\n");
  assertEquals(out.exitCode, 0);
  assertEquals(received.at(-1), [255, 0]);
  assertEquals(new URL(stub.requests[0].url).searchParams.get("stdin"), "true");
});

test("exec: falls back to v4.channel.k8s.io, where stdin cannot be half-closed", async () => {
  await using stub = await WsStub.start();
  const channels: number[] = [];
  stub.push({
    protocol: "v4.channel.k8s.io",
    handler: async (ws) => {
      const message = await ws.next();
      channels.push(message![0]);
      ws.send(1, message!.subarray(1));
      ws.send(3, SUCCESS);
    },
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["cat"], { stdin: true, stderr: false });
  assertEquals(session.protocol, "v4.channel.k8s.io");
  const writer = session.stdin!.getWriter();
  await writer.write(new TextEncoder().encode("ping"));
  await writer.close();
  assertEquals(await readAll(session.stdout), "ping");
  assertEquals((await session.result).exitCode, 0);
  await stub.settle();
  assertEquals(channels, [0]); // no [255, 0] frame on v4
});

test("exec: tty merges stderr and resize sends {Width, Height} on channel 4", async () => {
  await using stub = await WsStub.start();
  let resize = "";
  stub.push(async (ws) => {
    const message = await ws.next();
    assertEquals(message![0], 4);
    resize = text(message!.subarray(1));
    ws.send(1, "80x24\r\n");
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["sh"], { tty: true });
  assertEquals(session.stderr, undefined);
  await session.resize({ width: 120, height: 40 });
  assertEquals(await readAll(session.stdout), "80x24\r\n");
  await session.result;
  assertEquals(JSON.parse(resize), { Width: 120, Height: 40 });
  const query = new URL(stub.requests[0].url).searchParams;
  assertEquals(query.get("tty"), "true");
  assertEquals(query.get("stderr"), null);
  await assertRejects(() => session.resize({ width: 0, height: 1 }), RangeError);
});

test("attach: reads the container's stream from the attach subresource", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(1, "tick 1\n");
    ws.send(1, "tick 2\n");
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await attach(client, { metadata: { name: "web", namespace: "ops" } }, {
    stderr: false,
  });
  assertEquals(await readAll(session.stdout), "tick 1\ntick 2\n");
  assertEquals(new URL(stub.requests[0].url).pathname, "/api/v1/namespaces/ops/pods/web/attach");
  assertEquals(new URL(stub.requests[0].url).searchParams.get("command"), null);
});

test("exec: a refused upgrade is the ApiError of the Status the server sent", async () => {
  await using stub = await WsStub.start();
  const notFound = statusJson({
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message: 'pods "nope" not found',
    reason: "NotFound",
    details: { name: "nope", kind: "pods" },
    code: 404,
  });
  stub.push(
    new Response(notFound, { status: 404, headers: { "content-type": "application/json" } }),
    new Response("plain text forbidden", { status: 403 }),
  );
  await using client = stub.client();
  const error = await assertRejects(() => exec(client, "nope", ["true"]), ApiError);
  assertEquals(error.status, 404);
  assertEquals(error.reason, "NotFound");
  assert(error.message.startsWith('pods "nope" not found (GET http://127.0.0.1:'), error.message);
  assert(!error.message.includes("stub-token"));
  const forbidden = await assertRejects(() => portForward(client, "nope", 80), ApiError);
  assertEquals(forbidden.status, 403);
  assert(forbidden.message.includes("plain text forbidden"), forbidden.message);
});

test("exec: a connection closed before the status is a StreamClosed ApiError on the result and the streams", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(1, "partial");
    ws.close(1011);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["sleep", "100"], { stderr: false });
  const reader = session.stdout!.getReader();
  assertEquals(text((await reader.read()).value), "partial");
  const streamError = await assertRejects(() => reader.read(), ApiError);
  assertEquals(streamError.reason, "StreamClosed");
  const error = await assertRejects(() => session.result, ApiError);
  assertEquals(error.status, 0);
  assert(error.message.includes("closed before the exit status arrived"), error.message);
});

test("exec: a TCP connection that breaks mid-frame is a StreamClosed ApiError", async () => {
  // A raw server: a valid 101, half a frame, then the socket ends.
  await using listener = await RawServer.start();
  const serving = (async () => {
    const conn = await listener.accept();
    const request = (await conn.readHead())!;
    const key = /sec-websocket-key: (.*)/i.exec(request)![1].trim();
    await conn.write(switchingProtocols(key, "v5.channel.k8s.io"));
    // A binary frame announcing 100 bytes on stdout, of which only 4 arrive.
    await conn.write(new Uint8Array([0x82, 100, 1, 0x61, 0x62, 0x63]));
    conn.close();
  })();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`));
  await using session = await exec(client, "web", ["true"], { stderr: false });
  await assertRejects(() => readAll(session.stdout), ApiError);
  const error = await assertRejects(() => session.result, ApiError);
  assertEquals(error.reason, "StreamClosed");
  assert(error.message.includes("in the middle of a frame"), error.message);
  await serving;
});

test("exec: aborting the signal rejects the result with the reason and ends the streams", async () => {
  await using stub = await WsStub.start();
  let resolveEnded!: () => void;
  const ended = { promise: new Promise<void>((resolve) => resolveEnded = resolve) };
  stub.push(async (ws) => {
    ws.send(1, "started\n");
    await ws.next(); // until the client closes
    resolveEnded();
  });
  await using client = stub.client();
  const controller = new AbortController();
  await using session = await exec(client, "web", ["sleep", "100"], {
    stderr: false,
    signal: controller.signal,
  });
  const reader = session.stdout!.getReader();
  assertEquals(text((await reader.read()).value), "started\n");
  controller.abort(new Error("user gave up"));
  await assertRejects(() => session.result, Error, "user gave up");
  await assertRejects(() => reader.read(), Error, "user gave up");
  await ended.promise;
});

test("exec: 4 MiB of output arrives complete and in order, in 64 KiB messages", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    for (let i = 0; i < 64; i++) ws.send(1, new Uint8Array(64 * 1024).fill(i));
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["yes"], { stderr: false });
  const seen: number[] = [];
  let total = 0;
  for await (const chunk of session.stdout!) {
    total += chunk.length;
    for (let i = 0; i < chunk.length; i += 64 * 1024) seen.push(chunk[i]);
  }
  assertEquals(total, 64 * 64 * 1024);
  assertEquals(seen, Array.from({ length: 64 }, (_, i) => i));
  assertEquals((await session.result).exitCode, 0);
});

test("exec: bad input is refused before connecting", async () => {
  await using stub = await WsStub.start();
  await using client = stub.client();
  await assertRejects(() => exec(client, "web", []), TypeError, "non-empty array");
  await assertRejects(
    () => exec(client, "web", ["ls"], { stdout: false, stderr: false }),
    TypeError,
    "at least one of stdin, stdout and stderr",
  );
  await assertRejects(() => exec(client, "a/b", ["ls"]), TypeError, "Invalid Pod name");
  await assertRejects(() => portForward(client, "web", 70000), RangeError);
  assertEquals(stub.requests.length, 0);
  await using fake = new FakeApiServer();
  await assertRejects(() => exec(fake.client(), "web", ["ls"]), TypeError, "custom fetch");
});

test("portForward: strips the port prefix, carries data both ways", async () => {
  await using stub = await WsStub.start();
  stub.push(async (ws) => {
    ws.send(0, new Uint8Array([0x90, 0x1f])); // 8080, little-endian
    ws.send(1, new Uint8Array([0x90, 0x1f]));
    const request = await ws.next();
    assertEquals(request![0], 0);
    ws.send(0, new TextEncoder().encode(`echo:${text(request!.subarray(1))}`));
  });
  await using client = stub.client();
  await using stream = await portForward(client, "web", 8080);
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
  assertEquals(await readAll(stream.readable), "echo:GET / HTTP/1.0\r\n\r\n");
  await stream.closed;
  const url = new URL(stub.requests[0].url);
  assertEquals(url.pathname, "/api/v1/namespaces/default/pods/web/portforward");
  assertEquals(url.searchParams.get("ports"), "8080");
  assertEquals(
    stub.requests[0].headers.get("sec-websocket-protocol"),
    "v4.channel.k8s.io, portforward.k8s.io",
  );
});

test("portForward: the error channel's message rejects closed and the readable", async () => {
  await using stub = await WsStub.start();
  const message =
    "an error occurred forwarding 9999 -> 9999: error forwarding port 9999 to pod 0123, uid : failed to connect to localhost:9999 inside namespace: connection refused";
  stub.push((ws) => {
    ws.send(0, new Uint8Array([0x0f, 0x27]));
    ws.send(1, new Uint8Array([0x0f, 0x27]));
    ws.send(1, message);
  });
  await using client = stub.client();
  await using stream = await portForward(client, "web", 9999);
  const error = await assertRejects(() => stream.closed, ApiError);
  assertEquals(error.reason, "PortForwardFailed");
  assert(error.message.includes("connection refused"), error.message);
  await assertRejects(() => readAll(stream.readable), ApiError);
});

test("forwardPort: each local connection gets its own port-forward stream", async () => {
  await using stub = await WsStub.start();
  const echo = async (ws: import("./_ws_stub.ts").StubSocket) => {
    ws.send(0, new Uint8Array([80, 0]));
    ws.send(1, new Uint8Array([80, 0]));
    const message = await ws.next();
    ws.send(0, message!.subarray(1));
  };
  stub.push(echo, echo);
  await using client = stub.client();
  await using forwarder = await forwardPort(client, "web", { port: 80 });
  assertEquals(forwarder.hostname, "127.0.0.1");
  for (const word of ["first", "second"]) {
    assertEquals(await roundTrip(forwarder.localPort, word), word);
  }
  assertEquals(stub.requests.length, 2);
});

test("forwardPort: a failed forward closes the connection and reaches onError", async () => {
  await using stub = await WsStub.start();
  stub.push(
    (ws) => {
      ws.send(0, new Uint8Array([80, 0]));
      ws.send(1, new Uint8Array([80, 0]));
      ws.send(1, "error forwarding port 80 to pod 0123: connection refused");
    },
    new Response(statusJson({ status: "Failure", reason: "Forbidden", code: 403 }), {
      status: 403,
    }),
  );
  await using client = stub.client();
  const errors: unknown[] = [];
  await using forwarder = await forwardPort(client, "web", {
    port: 80,
    onError: (e) => errors.push(e),
  });
  for (let i = 0; i < 2; i++) {
    // The forwarder closes the connection without an answer.
    assertEquals(await roundTrip(forwarder.localPort, ""), "");
  }
  assertEquals(errors.length, 2);
  assert(
    errors[0] instanceof ApiError && errors[0].reason === "PortForwardFailed",
    String(errors[0]),
  );
  assert(errors[0].message.includes("connection refused"));
  assert(errors[1] instanceof ApiError && errors[1].status === 403, String(errors[1]));
});

test("forwardPort: a local port in use rejects naming it; a closed forwarder frees its port", async () => {
  await using stub = await WsStub.start();
  await using client = stub.client();
  const first = await forwardPort(client, "web", { port: 80 });
  assertEquals(first.hostname, "127.0.0.1");
  assert(first.localPort > 0);
  const error = await assertRejects(
    () => forwardPort(client, "web", { port: 80, localPort: first.localPort }),
    Error,
    `Cannot listen on 127.0.0.1:${first.localPort} to forward a port: the address is already in use`,
  );
  assert(error.cause !== undefined);
  await first.close();
  // Closed, the port is free again, and the forwarder stopped accepting on it.
  await using again = await forwardPort(client, "web", { port: 80, localPort: first.localPort });
  assertEquals(again.localPort, first.localPort);
  await assertRejects(() => forwardPort(client, "web", { port: 0 }), RangeError, "1 to 65535");
  await assertRejects(
    () => forwardPort(client, "web", { port: 80, localPort: -1 }),
    RangeError,
    "0 to 65535",
  );
  await assertRejects(() => forwardPort(client, "a/b", { port: 80 }), TypeError, "Invalid Pod");
  assertEquals(stub.requests.length, 0);
});

test("forwardPort: aborting the signal stops listening and closes the forwarded connections", async () => {
  await using stub = await WsStub.start();
  let resolveOpened!: () => void;
  const opened = { promise: new Promise<void>((resolve) => resolveOpened = resolve) };
  stub.push(async (ws) => {
    ws.send(0, new Uint8Array([80, 0]));
    ws.send(1, new Uint8Array([80, 0]));
    resolveOpened();
    await ws.next(); // until the client closes
  });
  await using client = stub.client();
  const controller = new AbortController();
  const forwarder = await forwardPort(client, "web", { port: 80, signal: controller.signal });
  const local = roundTrip(forwarder.localPort, "");
  await opened.promise;
  controller.abort(new Error("stop"));
  assertEquals(await local, "");
  await forwarder.finished;
  // Nothing listens any more.
  assertEquals(await roundTrip(forwarder.localPort, "x"), "");
  await assertRejects(
    () => forwardPort(client, "web", { port: 80, signal: controller.signal }),
    Error,
    "stop",
  );
});

test("forwardPort: close() ends a kept-alive fetch connection and its stream", async () => {
  await using stub = await WsStub.start();
  let closedByClient = false;
  stub.push(async (ws) => {
    ws.send(0, new Uint8Array([80, 0]));
    ws.send(1, new Uint8Array([80, 0]));
    const request = await ws.next();
    const path = /^GET (\S+)/.exec(text(request!.subarray(1)))![1];
    const body = `hello from ${path}\n`;
    ws.send(
      0,
      `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n` +
        `\r\n${body}`,
    );
    // Like KWOK: the stream stays open until the client closes it.
    while (await ws.next() !== undefined) { /* more requests on the same connection */ }
    closedByClient = true;
  });
  await using client = stub.client();
  const forwarder = await forwardPort(client, "web", { port: 80 });
  const response = await fetch(`http://127.0.0.1:${forwarder.localPort}/kept`);
  assertEquals(await response.text(), "hello from /kept\n");
  await forwarder.close();
  await stub.settle();
  assert(closedByClient);
});

test("exec: aborting while the server has not answered the upgrade rejects at once", async () => {
  // A server that accepts the connection and never answers.
  await using listener = await RawServer.start();
  const accepted = listener.accept();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`));
  const controller = new AbortController();
  const pending = exec(client, "web", ["true"], { signal: controller.signal });
  const conn = await accepted;
  controller.abort(new Error("took too long"));
  await assertRejects(() => pending, Error, "took too long");
  conn.destroy();
});

/** A raw server: answers the upgrade with a valid 101, then hands the connection to `frames`. */
async function rawServer(
  frames: (conn: RawConn) => Promise<void>,
): Promise<{ port: number; done: Promise<void>; close(): Promise<void> }> {
  const listener = await RawServer.start();
  const done = (async () => {
    const conn = await listener.accept();
    const request = (await conn.readHead())!;
    const key = /sec-websocket-key: (.*)/i.exec(request)![1].trim();
    await conn.write(switchingProtocols(key, "v4.channel.k8s.io"));
    try {
      await frames(conn);
    } finally {
      conn.close();
    }
  })();
  return { port: listener.port, done, close: () => listener.close() };
}

/** Reads one masked client frame from a raw connection. */
async function readClientFrame(conn: RawConn): Promise<{ opcode: number; payload: Uint8Array }> {
  const [b0, b1] = await conn.readN(2);
  let length = b1 & 0x7f;
  if (length === 126) {
    const ext = await conn.readN(2);
    length = (ext[0] << 8) | ext[1];
  }
  assert((b1 & 0x80) !== 0, "client frames must be masked");
  const mask = await conn.readN(4);
  const payload = await conn.readN(length);
  for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return { opcode: b0 & 0x0f, payload };
}

test("websocket: a fragmented message with a ping inside is reassembled and the ping answered", async () => {
  let pong: Uint8Array | undefined;
  const server = await rawServer(async (conn) => {
    // [1, "hel"] as a binary frame without FIN, a ping "p!", the continuation "lo" with FIN.
    await conn.write(new Uint8Array([0x02, 4, 1, 0x68, 0x65, 0x6c]));
    await conn.write(new Uint8Array([0x89, 2, 0x70, 0x21]));
    await conn.write(new Uint8Array([0x80, 2, 0x6c, 0x6f]));
    const frame = await readClientFrame(conn);
    assertEquals(frame.opcode, 0xa);
    pong = frame.payload;
    const status = new TextEncoder().encode('\x03{"metadata":{},"status":"Success"}');
    await conn.write(new Uint8Array([0x82, status.length, ...status]));
    await conn.write(new Uint8Array([0x88, 2, 0x03, 0xe8]));
    const close = await readClientFrame(conn);
    assertEquals(close.opcode, 0x8);
  });
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${server.port}`));
  const out = await execOutput(client, "web", ["echo", "hello"]);
  assertEquals(out, { stdout: "hello", stderr: "", exitCode: 0 });
  assertEquals(text(pong), "p!");
  await server.done;
  await server.close();
});

test({
  name: "exec: a missing --allow-net names the exact flag, for the API server and the local port",
  // Deno's permission flags; Node's permission model does not gate the network.
  ignore: RUNTIME !== "deno",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const root = new URL("../../", import.meta.url);
      const script = `${dir}/no_net.ts`;
      await Deno.writeTextFile(
        script,
        `import { Client } from "${new URL("client.ts", root)}";
import { Config } from "${new URL("config.ts", root)}";
import { exec, forwardPort } from "${new URL("exec.ts", root)}";
const client = new Client(Config.fromUrl("https://127.0.0.1:6443", { credentials: { token: "t" } }));
for (const attempt of [() => exec(client, "web", ["true"]), () => forwardPort(client, "web", { port: 80, localPort: 8080 })]) {
  try { await attempt(); } catch (e) { console.log(e instanceof Deno.errors.NotCapable, (e as Error).message); }
}`,
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--config", new URL("deno.json", root).pathname]
          .concat(["--allow-read", "--allow-env", script]),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      assert(lines.length === 2, new TextDecoder().decode(out.stderr));
      assert(
        lines[0].startsWith("true ") && lines[0].includes("--allow-net=127.0.0.1:6443"),
        lines[0],
      );
      assert(
        lines[1].startsWith("true ") && lines[1].includes("--allow-net=127.0.0.1:8080"),
        lines[1],
      );
      assert(!lines.join("").includes('token: "t"'));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

test("exec: an unread stdout does not block the result; it errors once 1 MiB is buffered", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    for (let i = 0; i < 64; i++) ws.send(1, new Uint8Array(64 * 1024).fill(i)); // 4 MiB
    ws.send(2, "a little stderr\n");
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["yes"]);
  // Nobody reads stdout: the status still arrives, and so does stderr.
  assertEquals((await session.result).exitCode, 0);
  assertEquals(await readAll(session.stderr), "a little stderr\n");
  const error = await assertRejects(() => readAll(session.stdout), RangeError, "stdout");
  assert(error.message.includes("nobody read it"), error.message);
});

test("exec: a small unread output can still be read after the result", async () => {
  await using stub = await WsStub.start();
  stub.push((ws) => {
    ws.send(1, "first\n");
    ws.send(1, "second\n");
    ws.send(3, SUCCESS);
  });
  await using client = stub.client();
  await using session = await exec(client, "web", ["true"], { stderr: false });
  assertEquals((await session.result).exitCode, 0);
  assertEquals(await readAll(session.stdout), "first\nsecond\n");
});

test("exec: a refusal whose body never arrives is still the refusal's ApiError", async () => {
  await using listener = await RawServer.start();
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.readHead();
    await conn.write("HTTP/1.1 404 Not Found\r\nContent-Length: 100\r\n\r\n");
    conn.close();
  })();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`));
  const error = await assertRejects(() => exec(client, "web", ["true"]), ApiError);
  assertEquals(error.status, 404);
  await serving;
});

test("exec: a server that never answers the upgrade times out on the client's clock", async () => {
  await using listener = await RawServer.start();
  const accepted = listener.accept();
  const clock = new VirtualClock();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`), {
    clock,
  });
  const pending = exec(client, "web", ["true"], { timeoutMs: 5_000 });
  const conn = await accepted;
  await clock.advance(4_999);
  let done = false;
  pending.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(done, false);
  await clock.advance(1);
  const error = await assertRejects(() => pending, ApiError, "within 5000 ms");
  assertEquals(error.reason, "Timeout");
  assertEquals(error.status, 0);
  conn.destroy();
});

const TLS_DIR = new URL("../fixtures/tls/", import.meta.url);
const pem = (name: string) => readFileSync(new URL(name, TLS_DIR), "utf8");

/** A kubeconfig for `server` with a bearer token and the given cluster fields. */
function tlsKubeconfig(server: string, cluster: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, ...cluster } }],
    users: [{ name: "u", user: { token: "stub-token" } }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    "current-context": "x",
  });
}

const b64 = (text: string) => btoa(text);
const success = (ws: import("./_ws_stub.ts").StubSocket) => {
  ws.send(1, "secure\n");
  ws.send(3, SUCCESS);
};

test({
  name: "exec over TLS: tls-server-name is the name the upgrade socket verifies (Node, Bun)",
  // Deno refuses a tls-server-name other than the host when the config is loaded.
  ignore: RUNTIME === "deno",
  async fn() {
    // The certificate names apiserver.internal only, not 127.0.0.1.
    await using stub = await WsStub.start({ cert: pem("renamed.crt"), key: pem("renamed.key") });
    stub.push(success);
    const ca = b64(pem("ca.crt"));
    const connect = async (cluster: Record<string, unknown>) =>
      new Client(await Config.fromKubeconfigString(tlsKubeconfig(stub.url, cluster)));
    await using byName = await connect({
      "certificate-authority-data": ca,
      "tls-server-name": "apiserver.internal",
    });
    const out = await execOutput(byName, "web", ["echo", "secure"]);
    assertEquals(out, { stdout: "secure\n", stderr: "", exitCode: 0 });
    assertEquals(stub.requests.length, 1);
    // The same CA without the name: the certificate does not match 127.0.0.1.
    await using byHost = await connect({ "certificate-authority-data": ca });
    const refused = await assertRejects(() => execOutput(byHost, "web", ["true"]), ApiError);
    assertEquals(refused.status, 0);
    await using wrongName = await connect({
      "certificate-authority-data": ca,
      "tls-server-name": "other.internal",
    });
    await assertRejects(() => execOutput(wrongName, "web", ["true"]), ApiError);
    // Neither refused handshake reached the HTTP layer.
    assertEquals(stub.requests.length, 1);
  },
});

test({
  name:
    "exec over TLS: insecure-skip-tls-verify skips verification on the upgrade socket (Node, Bun)",
  // Deno can skip verification only for the whole process (--unsafely-ignore-certificate-errors).
  ignore: RUNTIME === "deno",
  async fn() {
    await using stub = await WsStub.start({ cert: pem("server.crt"), key: pem("server.key") });
    stub.push(success);
    await using strict = new Client(await Config.fromKubeconfigString(tlsKubeconfig(stub.url, {})));
    await assertRejects(() => execOutput(strict, "web", ["true"]), ApiError);
    await using insecure = new Client(
      await Config.fromKubeconfigString(
        tlsKubeconfig(stub.url, { "insecure-skip-tls-verify": true }),
      ),
    );
    const out = await execOutput(insecure, "web", ["echo", "secure"]);
    assertEquals(out, { stdout: "secure\n", stderr: "", exitCode: 0 });
    assertEquals(stub.requests.length, 1);
  },
});

test("exec over TLS: the kubeconfig's CA is trusted on the upgrade socket", async () => {
  await using stub = await WsStub.start({ cert: pem("server.crt"), key: pem("server.key") });
  stub.push(success);
  await using client = new Client(
    await Config.fromKubeconfigString(
      tlsKubeconfig(stub.url, { "certificate-authority-data": b64(pem("ca.crt")) }),
    ),
  );
  const out = await execOutput(client, "web", ["echo", "secure"]);
  assertEquals(out, { stdout: "secure\n", stderr: "", exitCode: 0 });
});
