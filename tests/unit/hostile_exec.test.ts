// Issue 20: exec (the WebSocket upgrade and its frames) against a hostile server, one raw TCP
// answer per case: an endless response head, a wrong accept key, absurd frame lengths, a frame
// cut short, a refused upgrade that echoes the credentials, a redirect, a huge chunked body,
// invalid UTF-8 in the status channel, a slowloris head. Each must end in an error that names the
// problem (never a hang, a crash or an unhandled rejection), quote no credential, and read a
// bounded amount.

import assert from "node:assert/strict";
import { inspect } from "node:util";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import { execOutput } from "../../exec.ts";
import { type RawConn, RawServer, serverFrame, switchingProtocols } from "./_ws_stub.ts";
import { test } from "../_test.ts";

const TOKEN = "exec-hostile-token-71bd0c";

type Case = [name: string, serve: (conn: RawConn, head: string) => Promise<void>, expect: RegExp];

const key = (head: string) => /sec-websocket-key: (.*)/i.exec(head)![1].trim();

const CASES: Case[] = [
  ["an endless response head", async (conn) => {
    await conn.write("HTTP/1.1 101 Switching Protocols\r\nX-Junk: ");
    await conn.write("j".repeat(70 * 1024));
  }, /response head over 64 KiB/],
  ["a wrong Sec-WebSocket-Accept", async (conn) => {
    await conn.write(switchingProtocols("not-the-key", "v5.channel.k8s.io"));
  }, /accept|Sec-WebSocket/i],
  ["a frame of 2^62 bytes", async (conn, head) => {
    await conn.write(switchingProtocols(key(head), "v5.channel.k8s.io"));
    await conn.write(new Uint8Array([0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0, 1]));
  }, /larger than/],
  ["a frame of 100 MiB", async (conn, head) => {
    await conn.write(switchingProtocols(key(head), "v5.channel.k8s.io"));
    await conn.write(new Uint8Array([0x82, 127, 0, 0, 0, 0, 0x06, 0x40, 0, 0, 1]));
  }, /larger than/],
  ["a frame cut short", async (conn, head) => {
    await conn.write(switchingProtocols(key(head), "v5.channel.k8s.io"));
    await conn.write(new Uint8Array([0x82, 100, 1, 0x61]));
    conn.close();
  }, /middle of a frame|closed before/],
  ["a 401 that echoes the Authorization header", async (conn, head) => {
    const auth = /authorization: (.*)/i.exec(head)?.[1].trim() ?? "";
    const body = JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      code: 401,
      reason: "Unauthorized",
      message: `token ${auth} and ${TOKEN} refused`,
    });
    await conn.write(
      `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
  }, /Unauthorized|refused/],
  ["a 403 in text that echoes the token", async (conn) => {
    const body = `forbidden: ${TOKEN}`;
    await conn.write(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
  }, /403/],
  ["a redirect to another origin", async (conn) => {
    await conn.write(
      "HTTP/1.1 302 Found\r\nlocation: http://attacker.invalid/\r\ncontent-length: 0\r\n\r\n",
    );
  }, /302/],
  ["a refused upgrade with a 1 GiB chunk", async (conn) => {
    await conn.write(
      "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n40000000\r\n",
    );
    await conn.write("e".repeat(80 * 1024));
  }, /500/],
  ["invalid UTF-8 and no JSON on the status channel", async (conn, head) => {
    await conn.write(switchingProtocols(key(head), "v5.channel.k8s.io"));
    await conn.write(serverFrame(2, new Uint8Array([3, 0xff, 0xfe, 0x7b, 0x80])));
    conn.close();
  }, /^exec in pod default\/web: /],
];

for (const [name, serve, expect] of CASES) {
  test(`exec against a hostile server: ${name}`, async () => {
    await using listener = await RawServer.start();
    const serving = (async () => {
      const conn = await listener.accept();
      const head = (await conn.readHead())!;
      await serve(conn, head);
      return conn;
    })();
    await using client = new Client(
      Config.fromUrl(`http://127.0.0.1:${listener.port}`, { credentials: { token: TOKEN } }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer within 5 s")), 5_000);
    });
    const error = await Promise.race([execOutput(client, "web", ["true"]), late]).then(
      () => undefined,
      (e) => e,
    );
    clearTimeout(timer);
    (await serving).destroy();
    assert.ok(error instanceof Error, `${name}: no error`);
    assert.match(error.message, expect, `${name}: ${error.message}`);
    assert.notEqual(error.message, "no answer within 5 s");
    const all = inspect(error, { depth: 10 }) + JSON.stringify(error);
    assert.ok(!all.includes(TOKEN) && !all.includes(TOKEN.slice(0, 12)), all);
    if (error instanceof ApiError) assert.ok(error.message.length > 10);
  });
}

test("exec against a hostile server: a slowloris head ends with the caller's signal", async () => {
  await using listener = await RawServer.start();
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.readHead();
    await conn.write("H");
    return conn;
  })();
  await using client = new Client(Config.fromUrl(`http://127.0.0.1:${listener.port}`));
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(new Error("gave up waiting")), 200);
  await assert.rejects(
    execOutput(client, "web", ["true"], { signal: stop.signal }),
    /gave up waiting/,
  );
  clearTimeout(timer);
  (await serving).destroy();
});
