/**
 * HTTPS serving on `node:https` (Deno and Node): the operator's webhook server. The certificate is
 * replaced with `setSecureContext`, so new handshakes present the new one while open connections
 * and requests in flight keep the old one; the body limit and the timeouts are the server's own.
 *
 * Internal module.
 *
 * @module
 */

import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Socket } from "node:net";
import type { ServeHandler, TlsServeHandle, TlsServeOptions } from "./types.ts";

/**
 * Serves HTTPS on `node:https`.
 *
 * @param handler Answers requests.
 * @param options Address, certificate, limits and timeouts.
 * @returns The running server.
 */
export function serveNodeHttps(
  handler: ServeHandler,
  options: TlsServeOptions,
): Promise<TlsServeHandle> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({
    cert: options.cert,
    key: options.key,
    // Slowloris: the headers, then the whole request, must arrive within these.
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    keepAliveTimeout: options.idleTimeoutMs,
  }, (req, res) => {
    answer(handler, req, res, options).catch((e) => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(`internal error: ${e instanceof Error ? e.name : "unknown"}`);
      } else {
        res.destroy();
      }
    });
  });
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // A TLS handshake that fails (a client that does not trust us) is the client's problem: keep
  // serving.
  server.on("tlsClientError", () => {});
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        hostname: options.hostname,
        setCertificate(cert: string, key: string): Promise<void> {
          // Throws on a key that does not match the certificate; the old context stays.
          server.setSecureContext({ cert, key });
          return Promise.resolve();
        },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Idle kept-alive connections would hold close() open until their timeout.
            server.closeIdleConnections?.();
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}

async function answer(
  handler: ServeHandler,
  req: IncomingMessage,
  res: ServerResponse,
  options: TlsServeOptions,
): Promise<void> {
  const method = req.method ?? "GET";
  const declared = Number(req.headers["content-length"] ?? "NaN");
  if (declared > options.maxBodyBytes) {
    tooLarge(res, options.maxBodyBytes);
    return;
  }
  let body: Uint8Array | undefined;
  if (method !== "GET" && method !== "HEAD") {
    const chunks: Uint8Array[] = [];
    let length = 0;
    for await (const chunk of req) {
      length += (chunk as Uint8Array).length;
      if (length > options.maxBodyBytes) {
        tooLarge(res, options.maxBodyBytes);
        return;
      }
      chunks.push(chunk as Uint8Array);
    }
    body = new Uint8Array(length);
    let offset = 0;
    for (const c of chunks) {
      body.set(c, offset);
      offset += c.length;
    }
  }
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const request = new Request(new URL(req.url ?? "/", `https://${options.hostname}`), {
    method,
    headers,
    body: body as BodyInit | undefined,
  });
  const response = await handler(request);
  const out = new Uint8Array(await response.arrayBuffer());
  const outHeaders: Record<string, string> = { "content-length": String(out.length) };
  response.headers.forEach((value, key) => {
    outHeaders[key] = value;
  });
  res.writeHead(response.status, outHeaders);
  res.end(out);
}

function tooLarge(res: ServerResponse, limit: number): void {
  res.writeHead(413, { "content-type": "text/plain", connection: "close" });
  res.end(`request body larger than ${limit} bytes`);
}
