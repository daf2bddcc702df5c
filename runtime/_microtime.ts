// Internal: Kubernetes MicroTime, the RFC 3339 timestamp with six fractional digits of Lease
// renew times and Event times (the library's clocks have millisecond resolution).

/**
 * A MicroTime for a time in milliseconds since the epoch, e.g. `2026-12-01T10:00:00.123000Z`.
 *
 * @param ms Milliseconds since the epoch.
 * @returns The timestamp.
 */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, "000Z");
}
