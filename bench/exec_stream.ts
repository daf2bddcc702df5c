// Throughput of the streaming subresources' WebSocket path: a loopback server sends 64 MiB of
// exec stdout (64 KiB channel messages, then the Success status); the library's `exec` reads it,
// and for comparison Deno's global WebSocket reads the same frames (possible here because the
// server is plain ws://; against kube-apiserver's TLS it cannot connect, see _client/websocket.ts).
//
//   deno run --allow-net=127.0.0.1 --allow-env --allow-read bench/exec_stream.ts [--mib=64] [--runs=5]

import { parseArgs } from "node:util";
import { Client } from "../client.ts";
import { Config } from "../config.ts";
import { exec } from "../exec.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mib: { type: "string", default: "64" },
    runs: { type: "string", default: "5" },
  },
});
const MESSAGE = 64 * 1024;
const messages = Number(values.mib) * 1024 * 1024 / MESSAGE;
const payload = new Uint8Array(MESSAGE + 1).fill(0x61);
payload[0] = 1; // stdout
const status = new TextEncoder().encode(
  '\x03{"metadata":{},"status":"Success"}',
);

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: () => {},
}, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    protocol: "v5.channel.k8s.io",
  });
  socket.onopen = () => {
    for (let i = 0; i < messages; i++) socket.send(payload);
    socket.send(status);
    socket.close();
  };
  return response;
});
const base = `http://127.0.0.1:${server.addr.port}`;

async function viaLibrary(): Promise<number> {
  await using client = new Client(Config.fromUrl(base));
  await using session = await exec(client, "bench", ["yes"], { stderr: false });
  let bytes = 0;
  for await (const chunk of session.stdout!) bytes += chunk.length;
  await session.result;
  return bytes;
}

function viaGlobalWebSocket(): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(
      `${base.replace("http", "ws")}/api/v1/namespaces/default/pods/x/exec`,
      [
        "v5.channel.k8s.io",
      ],
    );
    ws.binaryType = "arraybuffer";
    let bytes = 0;
    ws.onmessage = (event) => {
      const data = new Uint8Array(event.data as ArrayBuffer);
      if (data[0] === 1) bytes += data.length - 1;
    };
    ws.onerror = () => reject(new Error("WebSocket error"));
    ws.onclose = () => resolve(bytes);
  });
}

const rows: string[] = [];
for (
  const [name, run] of [["exec() (own RFC 6455)", viaLibrary], [
    "global WebSocket",
    viaGlobalWebSocket,
  ]] as const
) {
  const rates: number[] = [];
  for (let i = 0; i < Number(values.runs); i++) {
    const started = performance.now();
    const bytes = await run();
    const seconds = (performance.now() - started) / 1000;
    if (bytes !== messages * MESSAGE) {
      throw new Error(`${name}: got ${bytes} bytes`);
    }
    rates.push(bytes / 1024 / 1024 / seconds);
  }
  rates.sort((a, b) => a - b);
  rows.push(
    `${name.padEnd(24)} median ${rates[rates.length >> 1].toFixed(0)} MiB/s (min ${
      rates[0].toFixed(0)
    }, max ${rates.at(-1)!.toFixed(0)})`,
  );
}
await server.shutdown();
console.log(
  `${values.mib} MiB of exec stdout in 64 KiB messages, ${values.runs} runs each:`,
);
for (const row of rows) console.log("  " + row);
