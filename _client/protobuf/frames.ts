// Internal: the framing of a protobuf watch stream (`application/vnd.kubernetes.protobuf;
// stream=watch`), bytes → frames. Each frame is a 4-byte big-endian length and that many bytes
// (one metav1.WatchEvent). Not exported from the package.
//
// A frame that lies inside one chunk is returned as a subarray of it (no copy); one split across
// chunks is assembled once, into one of two reused buffers (most pods are split: the API server
// writes 4 KiB chunks and a pod's frame is ~4 KB, so a fresh buffer per frame was an allocation
// per object). The frames of a push are therefore valid only until the next push: the caller
// decodes them first (the watch decoder does). Frames larger than the reused buffers get a
// buffer of their own.

/** The largest frame accepted: 64 MiB, the same bound as a JSON watch line (`MAX_LINE_CHARS`).
 * The API server's own limit on a request body is 3 MiB and objects in etcd are at most 1.5 MiB
 * by default; a watch frame holds one object. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Frames up to this size are assembled in the decoder's two reused buffers. */
export const REUSED_FRAME_BYTES = 256 * 1024;

/** Splits a byte stream into length-delimited frames. */
export class FrameDecoder {
  /** The frame being assembled across chunks (its buffer may be smaller than the frame while a
   * large frame arrives), its size, and how much of it has arrived. */
  #partial: Uint8Array | undefined;
  #partialSize = 0;
  /** The two assembly buffers, grown on demand up to REUSED_FRAME_BYTES; `#next` is the one a
   * new partial frame uses (never the one a frame of the current push was completed in). */
  #buffers: [Uint8Array | undefined, Uint8Array | undefined] = [undefined, undefined];
  #next = 0;
  #filled = 0;
  /** Bytes of a length prefix split across chunks. */
  #header = new Uint8Array(4);
  #headerFilled = 0;
  #max: number;

  /**
   * Creates a decoder.
   *
   * @param maxFrameBytes Frames longer than this are an error (default {@linkcode MAX_FRAME_BYTES}).
   */
  constructor(maxFrameBytes = MAX_FRAME_BYTES) {
    this.#max = maxFrameBytes;
  }

  /**
   * Feeds one chunk and appends the frames it completes to `out`.
   *
   * @param chunk The bytes.
   * @param out Receives the completed frames (the caller clears and reuses it). They are valid
   *   until the next `push`: a frame assembled across chunks lives in a reused buffer.
   * @throws {RangeError} When a length prefix exceeds the maximum frame size.
   */
  push(chunk: Uint8Array, out: Uint8Array[]): void {
    let at = 0;
    const n = chunk.length;
    while (at < n) {
      if (this.#partial !== undefined) {
        const need = this.#partialSize - this.#filled;
        const take = Math.min(need, n - at);
        if (this.#filled + take > this.#partial.length) this.#grow(this.#filled + take);
        this.#partial.set(chunk.subarray(at, at + take), this.#filled);
        this.#filled += take;
        at += take;
        if (this.#filled === this.#partialSize) {
          out.push(this.#partial.subarray(0, this.#partialSize));
          this.#partial = undefined;
        }
        continue;
      }
      let size: number;
      if (this.#headerFilled === 0 && n - at >= 4) {
        size =
          ((chunk[at] << 24) | (chunk[at + 1] << 16) | (chunk[at + 2] << 8) | chunk[at + 3]) >>>
          0;
        at += 4;
      } else {
        while (this.#headerFilled < 4 && at < n) this.#header[this.#headerFilled++] = chunk[at++];
        if (this.#headerFilled < 4) return;
        const h = this.#header;
        size = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
        this.#headerFilled = 0;
      }
      if (size > this.#max) {
        throw new RangeError(
          `watch frame of ${size} bytes exceeds the limit of ${this.#max} bytes ` +
            "(a corrupt stream, or not a protobuf watch)",
        );
      }
      if (n - at >= size) {
        out.push(chunk.subarray(at, at + size));
        at += size;
      } else {
        this.#partial = this.#assembly(size);
        this.#partialSize = size;
        this.#filled = 0;
      }
    }
  }

  /**
   * A buffer of exactly `size` bytes for a frame split across chunks: a view of the next reused
   * buffer, which then alternates (the frame completed from the previous partial, still in the
   * caller's `out`, lives in the other one).
   */
  #assembly(size: number): Uint8Array {
    // A large frame starts with room for what a read can bring and doubles as its bytes arrive.
    if (size > REUSED_FRAME_BYTES) return new Uint8Array(REUSED_FRAME_BYTES);
    const i = this.#next;
    this.#next = 1 - i;
    let buffer = this.#buffers[i];
    if (buffer === undefined || buffer.length < size) {
      let capacity = Math.max(buffer?.length ?? 0, 16 * 1024);
      while (capacity < size) capacity *= 2;
      this.#buffers[i] = buffer = new Uint8Array(Math.min(capacity, REUSED_FRAME_BYTES));
    }
    return buffer.subarray(0, size);
  }

  /** Grows the buffer of a large partial frame to hold at least `needed` bytes (at most its size). */
  #grow(needed: number): void {
    let capacity = this.#partial!.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, this.#partialSize));
    grown.set(this.#partial!.subarray(0, this.#filled));
    this.#partial = grown;
  }

  /**
   * Ends the input.
   *
   * @throws {RangeError} When the stream ended inside a frame (it was truncated).
   */
  end(): void {
    if (this.#partial !== undefined) {
      const length = this.#partialSize;
      const filled = this.#filled;
      this.#partial = undefined;
      throw new RangeError(`the watch stream ended inside a frame (${filled} of ${length} bytes)`);
    }
    if (this.#headerFilled > 0) {
      const filled = this.#headerFilled;
      this.#headerFilled = 0;
      throw new RangeError(`the watch stream ended inside a frame's length (${filled} of 4 bytes)`);
    }
  }
}
