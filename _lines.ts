// Internal: the hot path of every watch, bytes → lines. Not exported from the package.
//
// Bytes are decoded chunk-wise by one streaming TextDecoder (a multi-byte UTF-8 sequence split
// across chunks is completed by the next chunk), newlines are found with indexOf on the decoded
// chunk only, and only the partial last line is carried over. A very long line (10 MB+) that
// arrives in many chunks is accumulated by string concatenation, which V8 keeps as a rope and
// flattens once, when the line is parsed.

/**
 * Splits a stream of UTF-8 bytes into lines (`\n`-terminated, without the `\n`; a trailing `\r`
 * is kept: `JSON.parse` ignores it). A last line without `\n` is returned by `end`.
 */
export class LineDecoder {
  #decoder = new TextDecoder();
  #carry = "";
  #skipBlank: boolean;

  /**
   * Creates a decoder.
   *
   * @param options `skipBlank`: drop empty and whitespace-only lines (for line-delimited JSON).
   *   Default false: every line is returned, including empty ones (for logs).
   */
  constructor(options: { skipBlank?: boolean } = {}) {
    this.#skipBlank = options.skipBlank ?? false;
  }

  /**
   * Feeds one chunk and appends the lines it completes to `out`.
   *
   * @param chunk The bytes.
   * @param out Receives the completed lines (the caller clears and reuses it).
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
      this.#carry += text;
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
    if (start < text.length) this.#carry = text.slice(start);
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
