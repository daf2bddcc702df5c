/**
 * The Deno implementation of the runtime seam: the only module of the library that uses `Deno.*`.
 *
 * Internal module.
 *
 * @module
 */

import { serveNodeHttps } from "./_node_https.ts";
import type {
  ByteListener,
  ByteStream,
  HttpPool,
  PermissionNeed,
  ProcessOutput,
  RunOptions,
  Runtime,
  ServeHandle,
  ServeHandler,
  TcpTarget,
  TransportOptions,
} from "./types.ts";

function descriptor(need: PermissionNeed): Deno.PermissionDescriptor | undefined {
  switch (need.kind) {
    case "read":
      return need.paths.length > 0 ? { name: "read", path: need.paths[0] } : undefined;
    case "env":
      return need.names.length > 0 ? { name: "env", variable: need.names[0] } : undefined;
    case "run":
      return { name: "run", command: need.command };
    case "net":
      return need.hosts.length > 0 ? { name: "net", host: need.hosts[0] } : undefined;
  }
}

function state(need: PermissionNeed): "granted" | "prompt" | "denied" | "unknown" {
  const d = descriptor(need);
  if (!d) return "unknown";
  try {
    return Deno.permissions.querySync(d).state;
  } catch {
    return "unknown";
  }
}

function granted(need: PermissionNeed): boolean {
  return state(need) === "granted";
}

function canPrompt(): boolean {
  try {
    return Deno.stdin.isTerminal() && Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

function flag(need: PermissionNeed): string {
  switch (need.kind) {
    case "read":
      return `--allow-read=${need.paths.join(",")}`;
    case "env":
      return `--allow-env=${need.names.join(",")}`;
    case "run":
      return `--allow-run=${need.command}`;
    case "net":
      return `--allow-net=${need.hosts.join(",")}`;
  }
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1);
}

function proxyOption(proxyUrl: string): Deno.Proxy {
  const url = new URL(proxyUrl);
  const transport = url.protocol === "socks5:" || url.protocol === "socks5h:"
    ? "socks5"
    : url.protocol === "https:"
    ? "https"
    : "http";
  const proxy: Deno.Proxy = { transport, url: `${url.protocol}//${url.host}` };
  if (url.username) {
    proxy.basicAuth = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  return proxy;
}

function connect(options: TransportOptions): HttpPool {
  const cert = options.clientCertificate;
  if (!options.certificateAuthority && !cert && !options.proxyUrl) {
    // The global fetch and its shared pool; nothing to close.
    return { fetch: (url, init) => fetch(url, init), close() {} };
  }
  // insecureSkipTlsVerify and tlsServerName cannot be applied per client in Deno: the config
  // loader refuses a tls-server-name other than the URL's host, and the client's error for a
  // failed handshake names --unsafely-ignore-certificate-errors.
  const clientOptions: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
  if (options.certificateAuthority) clientOptions.caCerts = [options.certificateAuthority];
  if (cert) {
    clientOptions.cert = cert.cert;
    clientOptions.key = cert.key;
  }
  if (options.proxyUrl) clientOptions.proxy = proxyOption(options.proxyUrl);
  const client = Deno.createHttpClient(clientOptions as Deno.CreateHttpClientOptions);
  return {
    fetch: (url, init) => fetch(url, { ...init, client } as RequestInit),
    close: () => client.close(),
  };
}

async function run(command: string, options: RunOptions): Promise<ProcessOutput> {
  const inherit = options.stderr === "inherit";
  const child = new Deno.Command(command, {
    args: [...options.args],
    env: { ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: inherit ? "inherit" : "piped",
    signal: options.signal,
  }).spawn();
  const max = options.maxStdoutBytes ?? Infinity;
  const collect = async (stream: ReadableStream<Uint8Array>, limit: number) => {
    const chunks: Uint8Array[] = [];
    let kept = 0;
    let overflow = false;
    for await (const chunk of stream) {
      if (overflow) continue;
      if (kept + chunk.length > limit) {
        overflow = true;
        chunks.push(chunk.subarray(0, limit - kept));
        kept = limit;
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        continue;
      }
      kept += chunk.length;
      chunks.push(chunk);
    }
    const out = new Uint8Array(kept);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return { out, overflow };
  };
  const [stdout, stderr, status] = await Promise.all([
    collect(child.stdout, max),
    inherit ? undefined : collect(child.stderr, Infinity),
    child.status,
  ]);
  return {
    success: status.success,
    code: status.code,
    signal: status.signal,
    stdout: stdout.out,
    stderr: stderr?.out ?? new Uint8Array(0),
    ...(stdout.overflow ? { stdoutOverflow: true } : {}),
  };
}

function serve(
  handler: ServeHandler,
  options: { hostname: string; port: number },
): Promise<ServeHandle> {
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen(addr) {
          resolve({ port: addr.port, hostname: addr.hostname, close: () => server.shutdown() });
        },
        onError(error) {
          return new Response(`internal error: ${error instanceof Error ? error.message : error}`, {
            status: 500,
          });
        },
      }, (request) => handler(request));
      // Not `request.signal`: Deno aborts it on successful responses too. A client that goes away
      // cancels the response body instead.
    } catch (e) {
      reject(e);
    }
  });
}

async function connectTcp(target: TcpTarget): Promise<ByteStream> {
  if (target.tls?.insecureSkipTlsVerify || target.tls?.serverName) {
    // Deno.connectTls has neither; the config loader refuses tls-server-name on Deno already.
    throw new TypeError(
      "Deno cannot skip TLS verification or verify against another name per connection " +
        "(insecure-skip-tls-verify, tls-server-name): run on Node or Bun, or fix the certificate",
    );
  }
  if (target.tls?.cert && target.tls.key) {
    // Deno.startTls cannot present a client certificate, so this connection keeps Nagle's
    // algorithm on (TlsConn has no setNoDelay): each exec/attach/port-forward stream waits one
    // delayed ACK (~40 ms) more than with the path below.
    const conn = await Deno.connectTls({
      hostname: target.hostname,
      port: target.port,
      caCerts: target.tls.caCerts,
      alpnProtocols: ["http/1.1"],
      cert: target.tls.cert,
      key: target.tls.key,
    });
    return connToByteStream(conn);
  }
  // TCP_NODELAY, as Go (kubectl) and our Node/Bun sockets do: Deno.connect leaves Nagle on, and a
  // small write behind an unacknowledged one then waits for the server's delayed ACK, which
  // measured ~45 ms per exec round trip (57 ms → 12 ms with it). Deno.connectTls offers no way to
  // set it, hence connect + startTls (same roots, name check and ALPN) when no client cert is sent.
  const tcp = await Deno.connect({ hostname: target.hostname, port: target.port });
  try {
    tcp.setNoDelay(true);
  } catch {
    // Best effort: a socket that cannot take the option still works, only slower.
  }
  if (!target.tls) return connToByteStream(tcp);
  try {
    const conn = await Deno.startTls(tcp, {
      hostname: target.hostname,
      caCerts: target.tls.caCerts,
      alpnProtocols: ["http/1.1"],
    });
    return connToByteStream(conn);
  } catch (e) {
    try {
      tcp.close();
    } catch {
      // Already closed by the failed handshake.
    }
    throw e;
  }
}

function connToByteStream(conn: Deno.Conn): ByteStream {
  let closed = false;
  return {
    readable: conn.readable,
    writable: conn.writable,
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed by a finished readable and writable.
      }
    },
  };
}

// deno-lint-ignore require-await
async function listenTcp(hostname: string, port: number): Promise<ByteListener> {
  const listener = Deno.listen({ hostname, port, transport: "tcp" });
  let closed = false;
  return {
    port: listener.addr.port,
    hostname: listener.addr.hostname,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        let conn: Deno.Conn;
        try {
          conn = await listener.accept();
        } catch (e) {
          if (closed || e instanceof Deno.errors.BadResource) return;
          throw e;
        }
        yield connToByteStream(conn);
      }
    },
  };
}

/**
 * Creates the runtime seam on Deno (call it only on Deno).
 *
 * @returns The runtime.
 */
export function createDenoRuntime(): Runtime {
  return {
    name: "deno",
    version: Deno.version.deno,
    os: Deno.build.os,
    supports: { insecureSkipTlsVerify: false, tlsServerName: false, socks5Proxy: true },
    env: (name) => Deno.env.get(name),
    readTextFile: (path) => Deno.readTextFile(path),
    run,
    connect,
    serve,
    serveTls: serveNodeHttps,
    connectTcp,
    listenTcp,
    onSignal(signal, listener) {
      Deno.addSignalListener(signal, listener);
      return () => Deno.removeSignalListener(signal, listener);
    },
    exit: (code) => Deno.exit(code),
    isAddrInUse: (error) => error instanceof Deno.errors.AddrInUse,
    isNotFound: (error) => error instanceof Deno.errors.NotFound,
    isPermissionError: (error) =>
      error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied,
    // PermissionDenied is what Deno 1.x threw for a missing permission; in Deno 2 it usually
    // means the operating system refused: then Deno reports the permission as granted.
    grantedAnyway: (error, need) => error instanceof Deno.errors.PermissionDenied && granted(need),
    isGranted: granted,
    permissionState: state,
    canPrompt,
    permissionDenied: (message, cause) => new Deno.errors.NotCapable(message, { cause }),
    flag,
    permissionError: (need, what, cause) =>
      new Deno.errors.NotCapable(
        `${capitalize(what)} needs a Deno permission that was not granted: run again with ${
          flag(need)
        }.`,
        { cause },
      ),
    notFoundError: (message) => new Deno.errors.NotFound(message),
  };
}
