// Internal: comparing resource versions, where Kubernetes documents them as comparable.
//
// Since Kubernetes 1.35 (KEP-5504, part of the conformance requirements), the resource versions
// the kube-apiserver hands out are decimal integers that increase monotonically within one
// resource type (group + resource) and can be compared (client-go:
// k8s.io/apimachinery/pkg/util/resourceversion.CompareResourceVersion). Anything else (an
// aggregated API server with its own versions, an older server that does not promise it) is
// treated as opaque: the comparison answers `undefined` and callers fall back to equality.

const DECIMAL = /^[1-9][0-9]*$/;

/** Whether a resource version has the comparable form (a decimal integer without leading 0). */
export function isComparable(rv: string | undefined): rv is string {
  return rv !== undefined && DECIMAL.test(rv);
}

/**
 * Compares two resource versions of the same resource type.
 *
 * @returns negative when `a` is older, 0 when equal, positive when newer; `undefined` when either
 *   is not in the comparable form.
 */
export function compareResourceVersions(
  a: string | undefined,
  b: string | undefined,
): number | undefined {
  if (!isComparable(a) || !isComparable(b)) return undefined;
  // Integers of any length: the longer one is larger; same length compares as text.
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
