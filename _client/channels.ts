// The Kubernetes channel protocol over one WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
// every binary message starts with a channel byte. exec/attach use 0 stdin, 1 stdout, 2 stderr,
// 3 error (the final `Status`), 4 resize; v5 adds 255 "close", `[255, channel]`, which half-closes
// stdin. Port-forward uses 2·i for the data of port i and 2·i+1 for its errors, and the first
// message of each channel carries the port number (2 bytes, little-endian) instead of data.
//
// Backpressure: the demultiplexer reads the next message only when the channel it last fed has
// room (1 MiB buffered by default) *and someone reads that channel*: a consumer that reads stdout
// slowly slows the WebSocket (and the remote process) instead of filling memory. A channel nobody
// has started reading (its stream is not locked) never blocks the others: once its buffer is full
// it is errored with a RangeError saying so, and the rest — the final status included — goes on.

import { getLogger } from "@logtape/logtape";
import type { WebSocketConnection } from "./websocket.ts";
import { ApiError } from "../errors.ts";

const log = getLogger(["kube", "exec"]);

/** Channel numbers of exec and attach. */
export const STDIN = 0, STDOUT = 1, STDERR = 2, ERROR = 3, RESIZE = 4, CLOSE = 255;

const CHANNEL_NAMES: Record<number, string> = { 1: "stdout", 2: "stderr", 0: "the data channel" };
const MAX_COLLECTED = 64 * 1024;

/** Options of {@linkcode ChannelMux}. */
export interface ChannelMuxOptions {
  /** The channels whose data is exposed as streams. */
  readable: number[];
  /** Channels whose first message is a 2-byte port number to drop (port-forward). */
  portPrefixed?: boolean;
  /** Channels whose data is kept in memory instead (the error channel: a small Status). */
  collect?: number[];
  /** What runs over the connection, for error messages, e.g. `exec in pod default/web`. */
  what: string;
  /** Bytes buffered per channel before reading pauses (or an unread channel overflows). 1 MiB. */
  highWaterMark?: number;
}

/**
 * Splits the messages of one WebSocket into per-channel byte streams and writes framed messages.
 */
export class ChannelMux {
  readonly #ws: WebSocketConnection;
  readonly #controllers = new Map<number, ReadableStreamDefaultController<Uint8Array>>();
  readonly #streams = new Map<number, ReadableStream<Uint8Array>>();
  readonly #cancelled = new Set<number>();
  readonly #seen = new Set<number>();
  readonly #collected = new Map<number, Uint8Array[]>();
  readonly #portPrefixed: boolean;
  readonly #what: string;
  readonly #highWaterMark: number;
  #wake: (() => void) | undefined;
  /** Resolves when the WebSocket ended cleanly; rejects when reading it failed. */
  readonly done: Promise<void>;

  /**
   * @param ws The open WebSocket.
   * @param options The channels to expose.
   */
  constructor(ws: WebSocketConnection, options: ChannelMuxOptions) {
    this.#ws = ws;
    this.#portPrefixed = options.portPrefixed ?? false;
    this.#what = options.what;
    const highWaterMark = options.highWaterMark ?? 1024 * 1024;
    this.#highWaterMark = highWaterMark;
    for (const id of options.collect ?? []) this.#collected.set(id, []);
    for (const id of options.readable) {
      this.#streams.set(
        id,
        new ReadableStream<Uint8Array>({
          start: (controller) => {
            this.#controllers.set(id, controller);
          },
          pull: () => {
            this.#wake?.();
          },
          cancel: () => {
            this.#cancelled.add(id);
            this.#controllers.delete(id);
            this.#wake?.();
          },
        }, new ByteLengthQueuingStrategy({ highWaterMark })),
      );
    }
    this.done = this.#pump();
    this.done.catch(() => {});
  }

  /**
   * The stream of one channel's data.
   *
   * @param id The channel.
   * @returns Its stream.
   */
  readable(id: number): ReadableStream<Uint8Array> {
    const stream = this.#streams.get(id);
    if (!stream) throw new Error(`Channel ${id} is not read`);
    return stream;
  }

  /**
   * The data received so far on a collected channel, as text.
   *
   * @param id The channel.
   * @returns The text.
   */
  collected(id: number): string {
    const decoder = new TextDecoder();
    return (this.#collected.get(id) ?? []).map((c) => decoder.decode(c, { stream: true })).join(
      "",
    ) +
      decoder.decode();
  }

  /**
   * Sends data on a channel.
   *
   * @param id The channel.
   * @param data The payload.
   */
  async send(id: number, data: Uint8Array): Promise<void> {
    // Pieces of at most 32 KiB, like kubectl's, so one big write does not hold the socket.
    for (let offset = 0; offset < data.length || offset === 0; offset += 32 * 1024) {
      const piece = data.subarray(offset, offset + 32 * 1024);
      const message = new Uint8Array(piece.length + 1);
      message[0] = id;
      message.set(piece, 1);
      try {
        await this.#ws.send(message);
      } catch (cause) {
        throw new ApiError({
          status: 0,
          reason: "StreamClosed",
          message: `Sending to ${this.#what} failed: the connection is closed (${
            cause instanceof Error ? cause.message : cause
          })`,
          cause,
        });
      }
      if (data.length === 0) break;
    }
  }

  /**
   * A writable that sends each chunk on a channel.
   *
   * @param id The channel.
   * @param onClose Called when the writer closes (v5: half-close the channel).
   * @returns The writable.
   */
  writable(id: number, onClose?: () => Promise<void>): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (chunk.length) await this.send(id, chunk);
      },
      close: async () => {
        await onClose?.();
      },
    });
  }

  /**
   * Ends every channel stream: closed, or errored with `reason`.
   *
   * @param reason The error to put on the streams; undefined closes them cleanly.
   */
  end(reason?: unknown): void {
    for (const [id, controller] of this.#controllers) {
      try {
        if (reason === undefined) controller.close();
        else controller.error(reason);
      } catch {
        // Already closed or errored.
      }
      this.#controllers.delete(id);
    }
    this.#wake?.();
  }

  async #pump(): Promise<void> {
    const reader = this.#ws.messages.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (value.length === 0) continue;
        const id = value[0];
        let data = value.subarray(1);
        if (this.#portPrefixed && !this.#seen.has(id)) {
          this.#seen.add(id);
          data = data.subarray(2);
        }
        if (data.length === 0) continue;
        const kept = this.#collected.get(id);
        if (kept) {
          // A Status is small; a server that streams more on it is cut at 64 KiB.
          if (kept.reduce((n, c) => n + c.length, 0) < MAX_COLLECTED) kept.push(data.slice());
          continue;
        }
        const controller = this.#controllers.get(id);
        if (!controller) {
          if (!this.#cancelled.has(id) && !this.#streams.has(id)) {
            log.debug("Dropped {bytes} bytes on unexpected channel {id}", {
              bytes: data.length,
              id,
            });
          }
          continue;
        }
        controller.enqueue(data);
        const stream = this.#streams.get(id)!;
        while ((controller.desiredSize ?? 1) <= 0 && this.#controllers.get(id) === controller) {
          if (!stream.locked) {
            // Nobody reads this channel: waiting for it would stall every other channel and the
            // final status. Give it up with an error that says what to do.
            this.#controllers.delete(id);
            this.#cancelled.add(id);
            controller.error(
              new RangeError(
                `${this.#what}: more than ${this.#highWaterMark} bytes arrived on ${
                  CHANNEL_NAMES[id] ?? `channel ${id}`
                } while nobody read it; start reading (or cancel) every stream you ask for ` +
                  `before awaiting the result, or do not ask for it`,
              ),
            );
            log.warn("{what}: {channel} overflowed unread; its further data is dropped", {
              what: this.#what,
              channel: CHANNEL_NAMES[id] ?? `channel ${id}`,
            });
            break;
          }
          await new Promise<void>((resolve) => this.#wake = resolve);
          this.#wake = undefined;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }
}
