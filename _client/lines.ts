// Internal: the hot path of every watch, bytes → lines. Not exported from the package.
//
// Bytes are decoded chunk-wise by one streaming TextDecoder (a multi-byte UTF-8 sequence split
// across chunks is completed by the next chunk), newlines are found with indexOf on the decoded
// chunk only, and only the partial last line is carried over. A very long line (10 MB+) that
// arrives in many chunks is accumulated by string concatenation, which V8 keeps as a rope and
// flattens once, when the line is parsed.

/**
 * The longest line (in UTF-16 code units, about bytes for JSON) a {@linkcode LineDecoder} keeps
 * by default: 64 Mi. The bound of a watch stream's memory (with the 64 KiB read buffer), the same
 * as the protobuf frame limit. An object in etcd is at most 1.5 MiB by default, so a longer line is
 * a broken or hostile stream, not data; without a bound it grew until V8's string limit (~512 Mi)
 * threw `RangeError: Invalid string length`.
 */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

/** The error of a line longer than the limit (`LineDecoder` drops what it had carried). */
export class LineTooLongError extends RangeError {
  /** The limit that was exceeded. */
  readonly limit: number;

  /** @param limit The limit. */
  constructor(limit: number) {
    super(
      `a line exceeds the limit of ${limit} characters without a newline ` +
        "(a broken stream, or not line-delimited JSON)",
    );
    this.name = "LineTooLongError";
    this.limit = limit;
  }
}

/**
 * Splits a stream of UTF-8 bytes into lines (`\n`-terminated, without the `\n`; a trailing `\r`
 * is kept: `JSON.parse` ignores it). A last line without `\n` is returned by `end`. A line longer
 * than the limit throws {@linkcode LineTooLongError} and drops the carried part.
 */
export class LineDecoder {
  #decoder = new TextDecoder();
  #carry = "";
  #skipBlank: boolean;
  #max: number;

  /**
   * Creates a decoder.
   *
   * @param options `skipBlank`: drop empty and whitespace-only lines (for line-delimited JSON).
   *   Default false: every line is returned, including empty ones (for logs). `maxLineChars`:
   *   the longest line kept (default {@linkcode MAX_LINE_CHARS}).
   */
  constructor(options: { skipBlank?: boolean; maxLineChars?: number } = {}) {
    this.#skipBlank = options.skipBlank ?? false;
    this.#max = options.maxLineChars ?? MAX_LINE_CHARS;
  }

  /**
   * Feeds one chunk and appends the lines it completes to `out`.
   *
   * @param chunk The bytes.
   * @param out Receives the completed lines (the caller clears and reuses it).
   * @throws {LineTooLongError} When a line grows past the limit (the lines before it are in
   *   `out`).
   */
  push(chunk: Uint8Array, out: string[]): void {
    const text = this.#decoder.decode(chunk, { stream: true });
    this.#split(text, out);
  }

  /**
   * Ends the input: flushes the decoder and appends the last line if it was not terminated.
   *
   * @param out Receives the remaining line, if any.
   */
  end(out: string[]): void {
    const rest = this.#decoder.decode();
    if (rest) this.#split(rest, out);
    const last = this.#carry;
    this.#carry = "";
    if (last.length > 0 && !(this.#skipBlank && isBlank(last))) out.push(last);
  }

  #split(text: string, out: string[]): void {
    let nl = text.indexOf("\n");
    if (nl === -1) {
      this.#keep(this.#carry + text);
      return;
    }
    const skip = this.#skipBlank;
    let line = this.#carry.length === 0 ? text.slice(0, nl) : this.#carry + text.slice(0, nl);
    this.#carry = "";
    if (!(skip && isBlank(line))) out.push(line);
    let start = nl + 1;
    while ((nl = text.indexOf("\n", start)) !== -1) {
      line = text.slice(start, nl);
      if (!(skip && isBlank(line))) out.push(line);
      start = nl + 1;
    }
    if (start < text.length) this.#keep(text.slice(start));
  }

  #keep(partial: string): void {
    if (partial.length > this.#max) {
      this.#carry = "";
      throw new LineTooLongError(this.#max);
    }
    this.#carry = partial;
  }
}

/** True for an empty or whitespace-only line; cheap for the usual `{`-first line. */
function isBlank(line: string): boolean {
  if (line.length === 0) return true;
  const first = line.charCodeAt(0);
  // Not space, tab, CR: the line has content (the common case, decided on one character).
  if (first !== 32 && first !== 9 && first !== 13) return false;
  return line.trim().length === 0;
}

/** The size of the one buffer a {@linkcode ChunkReader} reads into. */
export const CHUNK_BUFFER_BYTES = 64 * 1024;

/**
 * Reads the chunks of a response body into one reused buffer, when the body is a byte stream
 * (a BYOB reader; Deno's and undici's fetch bodies are), else chunk by chunk as the stream gives
 * them.
 *
 * Why: Deno's fetch body, read with a default reader, allocates a fresh 64 KiB `ArrayBuffer` for
 * every read, and the API server sends a watch in chunks of at most 4 KiB (one flush per event).
 * A watch list of 3,000 pods (11.8 MB) thus allocated ~190 MB of external memory, which drove the
 * garbage collector and the peak RSS of a sync (measured: RSS 154 vs 89 MiB reading the same
 * stream, external memory 57 vs 1.8 MB). With one buffer a read allocates nothing.
 *
 * The bytes a read returns are valid only until the next `read()`: the caller must copy what it
 * keeps (the line and frame decoders do: they decode strings, or copy a partial frame).
 */
export class ChunkReader {
  #byob: ReadableStreamBYOBReader | undefined;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #buffer: Uint8Array<ArrayBuffer> | undefined;
  #failure: { error: unknown } | undefined;

  /**
   * @param body The response body (the reader locks it).
   * @param bufferBytes The size of the reused buffer (default {@linkcode CHUNK_BUFFER_BYTES}).
   */
  constructor(body: ReadableStream<Uint8Array>, bufferBytes = CHUNK_BUFFER_BYTES) {
    try {
      this.#byob = body.getReader({ mode: "byob" });
      this.#buffer = new Uint8Array(bufferBytes);
    } catch {
      // Not a byte stream (a stream built in JS, some runtimes): chunks as the stream gives them.
      this.#reader = body.getReader();
    }
  }

  /** Whether reads go into one reused buffer (a BYOB reader). */
  get reusesBuffer(): boolean {
    return this.#byob !== undefined;
  }

  /**
   * Reads the next chunk.
   *
   * @returns The bytes (valid until the next read), or undefined at the end of the body.
   */
  async read(): Promise<Uint8Array | undefined> {
    if (this.#reader !== undefined) {
      for (;;) {
        const { done, value } = await this.#reader.read();
        if (done) return undefined;
        if (value.length > 0) return value;
      }
    }
    const byob = this.#byob!;
    for (;;) {
      // A failed read has transferred the buffer away: every later read repeats its error (not a
      // confusing "detached ArrayBuffer").
      if (this.#failure !== undefined) throw this.#failure.error;
      const buffer = this.#buffer;
      if (buffer === undefined) return undefined;
      // The read transfers the buffer; the answer is a view of it, reused for the next read.
      let result: Awaited<ReturnType<typeof byob.read<Uint8Array<ArrayBuffer>>>>;
      try {
        result = await byob.read(buffer);
      } catch (error) {
        this.#failure = { error };
        this.#buffer = undefined;
        throw error;
      }
      const { done, value } = result;
      this.#buffer = value === undefined ? undefined : new Uint8Array(value.buffer);
      if (done) return undefined;
      if (value!.length > 0) return value;
    }
  }

  /**
   * Cancels the body (a no-op on a finished one; releases the connection of an unfinished one).
   *
   * @param reason Why.
   */
  cancel(reason?: unknown): Promise<void> {
    return (this.#byob ?? this.#reader)!.cancel(reason);
  }
}
