// A loopback TCP proxy for e2e tests that can cut a client off from the API server: `pause()`
// stops forwarding (requests hang, as in a network partition); `resume()` drops the connections
// that saw the pause (their bytes are lost, not delivered late) and forwards new ones again.

interface Link {
  client: Deno.TcpConn;
  upstream: Deno.TcpConn;
  poisoned: boolean;
  closed: boolean;
}

/** A running proxy; stop it with `close()` or `await using`. */
export class TcpProxy implements AsyncDisposable {
  readonly port: number;
  /** Bytes forwarded from the server to the clients so far. */
  bytesDown = 0;
  /** Bytes forwarded from the clients to the server so far. */
  bytesUp = 0;
  #listener: Deno.TcpListener;
  #target: { hostname: string; port: number };
  #links = new Set<Link>();
  #paused = false;
  #gate: Promise<void> = Promise.resolve();
  #open: () => void = () => {};
  #accepting: Promise<void>;
  #pipes = new Set<Promise<void>>();

  constructor(target: { hostname: string; port: number }) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  /** Whether forwarding is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Stops forwarding: every request through the proxy hangs until `resume()`. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    for (const link of this.#links) link.poisoned = true;
    this.#gate = new Promise((resolve) => this.#open = resolve);
  }

  /** Drops the connections that saw the pause and forwards again. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const link of this.#links) if (link.poisoned) this.#drop(link);
    this.#open();
  }

  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // closed
    }
    this.#paused = false;
    this.#open();
    for (const link of this.#links) this.#drop(link);
    await this.#accepting;
    await Promise.allSettled([...this.#pipes]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #drop(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    this.#links.delete(link);
    for (const conn of [link.client, link.upstream]) {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect(this.#target);
      } catch {
        client.close();
        continue;
      }
      const link: Link = { client, upstream, poisoned: this.#paused, closed: false };
      this.#links.add(link);
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        const pipe = this.#pipe(link, from, to);
        this.#pipes.add(pipe);
        pipe.finally(() => this.#pipes.delete(pipe));
      }
    }
  }

  async #pipe(link: Link, from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        while (this.#paused && !link.closed) await this.#gate;
        if (link.closed) break;
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
        if (from === link.upstream) this.bytesDown += n;
        else this.bytesUp += n;
      }
    } catch {
      // a side closed
    } finally {
      this.#drop(link);
    }
  }
}
