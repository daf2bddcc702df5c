// Internal: the framing of a protobuf watch stream (`application/vnd.kubernetes.protobuf;
// stream=watch`), bytes → frames. Each frame is a 4-byte big-endian length and that many bytes
// (one metav1.WatchEvent). Not exported from the package.
//
// A frame that lies inside one chunk is returned as a subarray of it (no copy); one split across
// chunks is assembled once, into a buffer of exactly its size.

/** The largest frame accepted (the API server's own limit on a request body is 3 MiB; objects
 * in etcd are at most 1.5 MiB by default, but a list of them is larger). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** Splits a byte stream into length-delimited frames. */
export class FrameDecoder {
  /** The frame being assembled across chunks, and how much of it has arrived. */
  #partial: Uint8Array | undefined;
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
   * @param out Receives the completed frames (the caller clears and reuses it).
   * @throws {RangeError} When a length prefix exceeds the maximum frame size.
   */
  push(chunk: Uint8Array, out: Uint8Array[]): void {
    let at = 0;
    const n = chunk.length;
    while (at < n) {
      if (this.#partial !== undefined) {
        const need = this.#partial.length - this.#filled;
        const take = Math.min(need, n - at);
        this.#partial.set(chunk.subarray(at, at + take), this.#filled);
        this.#filled += take;
        at += take;
        if (this.#filled === this.#partial.length) {
          out.push(this.#partial);
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
        this.#partial = new Uint8Array(size);
        this.#filled = 0;
      }
    }
  }

  /**
   * Ends the input.
   *
   * @throws {RangeError} When the stream ended inside a frame (it was truncated).
   */
  end(): void {
    if (this.#partial !== undefined) {
      const { length } = this.#partial;
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
