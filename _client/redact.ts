// Internal: the one redaction policy of the library, for every text that may leave the process
// (an error message, a log record, an answer of the operator's own endpoints) and that was not
// written by the library itself (an exception's message, a server's error body, a health check's
// reason).
//
// The first rule is structural, not textual: a credential never reaches a message in the first
// place (exec plugin output is never quoted, its stderr goes to the process's stderr as client-go
// does, a malformed watch line is described, not quoted, `Config` hides the proxy password). This
// module is the second line: it masks what still looks like a credential — `Bearer`/`Basic`
// values, JWTs, PEM private keys, `token`/`password`/`secret` key-value pairs in JSON, headers or
// query strings, the password of a URL — and any known secret string it is given.

/** What a masked value is replaced with. */
export const REDACTED = "[redacted]";

const PRIVATE_KEY =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const AUTH_SCHEME = /\b(bearer|basic)(\s+)[^\s"',;]+/gi;
// A JWT (JWS compact form): base64url header starting `eyJ` (`{"`), payload, optional signature.
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*/g;
// `"access_token": "…"`, `password=…`, `X-Api-Key: …`, `client_secret=…&`.
const SECRET_PAIR =
  /((?:["']?)[\w.-]*(?:token|secret|passw(?:or)?d|passwd|api[_-]?key|credential|authorization|cookie)[\w.-]*["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&"'}]+)/gi;
// The password of `scheme://user:password@host`.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]+@/gi;

/**
 * Masks what looks like a credential in a text: PEM private keys, `Bearer`/`Basic` values, JWTs,
 * values of `token`/`password`/`secret`/`api-key`/`authorization` keys (JSON, headers, query
 * strings), URL passwords, and every known secret of 6 characters or more.
 *
 * @param text The text (a message from elsewhere: an exception, a server body, a check reason).
 * @param known Secret strings to mask wherever they appear (tokens, keys, passwords in use).
 * @returns The text with each secret replaced by `[redacted]`.
 */
export function redactText(text: string, known: readonly string[] = []): string {
  let out = text;
  if (known.length > 0) {
    for (const s of [...known].sort((a, b) => b.length - a.length)) {
      if (s.length >= 6) out = out.replaceAll(s, REDACTED);
    }
  }
  out = out.replace(PRIVATE_KEY, "[redacted private key]");
  out = out.replace(URL_PASSWORD, `$1${REDACTED}@`);
  out = out.replace(AUTH_SCHEME, `$1$2${REDACTED}`);
  out = out.replace(SECRET_PAIR, (match, key: string, value: string) => {
    const quote = value[0] === '"' || value[0] === "'" ? value[0] : "";
    // An unquoted lower-case word is prose (`token: expected a string`), not a value.
    if (quote === "" && (/^[a-z]+$/.test(value) || /^(bearer|basic)$/i.test(value))) return match;
    return `${key}${quote}${REDACTED}${quote}`;
  });
  out = out.replace(JWT, REDACTED);
  return out;
}

/**
 * A URL without its password (`http://user:[redacted]@proxy:3128`), for messages and inspection.
 * Text that is not a URL is returned through {@linkcode redactText}.
 *
 * @param url The URL.
 * @returns The URL with the password masked.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === "") return url;
    parsed.password = REDACTED;
    return parsed.href.replace(encodeURIComponent(REDACTED), REDACTED);
  } catch {
    return redactText(url);
  }
}

/**
 * The message of an error for a text that leaves the process: its class (`ApiError`, `TypeError`)
 * and its redacted message.
 *
 * @param error Anything thrown.
 * @returns A short, redacted description.
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${redactText(error.message)}`;
  return redactText(String(error));
}

/**
 * An error safe to keep as a `cause`: the error itself when neither its message nor those of its
 * causes hold anything to mask, else a copy (same class name and `code`, redacted message, the
 * cause chain copied the same way, at most 10 deep).
 *
 * @param error Anything thrown (a runtime's network error).
 * @param known Secret strings to mask.
 * @param depth How deep in a cause chain this error is (the recursion's bound).
 * @returns The error, or its redacted copy.
 */
export function redactError(error: unknown, known: readonly string[] = [], depth = 0): unknown {
  if (!(error instanceof Error) || depth >= 10) return error;
  const message = redactText(error.message, known);
  const cause = redactError(error.cause, known, depth + 1);
  if (message === error.message && cause === error.cause) return error;
  const copy = new Error(message, cause === undefined ? undefined : { cause });
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) (copy as { code?: unknown }).code = code;
  return copy;
}
