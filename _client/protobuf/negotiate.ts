// Internal: content negotiation as client-go does it. A request for a built-in kind (one the
// generated tables know) sends `Accept: application/vnd.kubernetes.protobuf, application/json`;
// the body is then decoded by the Content-Type the server chose, so a server (or an aggregated
// API, or a proxy) that answers JSON is still understood. Custom resources and anything else
// without a protobuf encoding are asked for JSON only. Not exported from the package.

import { canDecode, decodeObject, type DecodeStats, PROTOBUF_MEDIA_TYPE } from "./decode.ts";

export type { DecodeStats } from "./decode.ts";

/** The Accept header of a protobuf-first request. */
export const PROTOBUF_ACCEPT = `${PROTOBUF_MEDIA_TYPE}, application/json`;

/**
 * The wire format of a client's reads of built-in kinds: `protobuf` (Kubernetes protobuf, with
 * JSON as the fallback, as client-go) or `json`. See `ClientOptions.wireFormat`.
 */
export type WireFormat = "json" | "protobuf";

/**
 * The Accept header for a read of `kind` in `apiVersion`, or undefined for plain JSON.
 *
 * @param format The client's wire format.
 * @param apiVersion The group version.
 * @param kind The kind read (`Pod`, or `PodList` for a list).
 * @returns The header value, or undefined.
 */
export function acceptFor(
  format: WireFormat | undefined,
  apiVersion: string,
  kind: string,
): string | undefined {
  return format === "protobuf" && canDecode(apiVersion, kind) ? PROTOBUF_ACCEPT : undefined;
}

/**
 * Whether a Content-Type is Kubernetes protobuf (with or without `;stream=watch`).
 *
 * @param contentType The header value.
 * @returns True for `application/vnd.kubernetes.protobuf…`.
 */
export function isProtobuf(contentType: string | null): boolean {
  return contentType !== null && contentType.startsWith(PROTOBUF_MEDIA_TYPE);
}

/**
 * Decodes a protobuf body.
 *
 * @param bytes The body.
 * @param stats Receives the count of fields skipped because the tables do not know them.
 * @returns The object, in the shape its JSON would parse to.
 */
export function decodeProtobufBody(bytes: Uint8Array, stats?: DecodeStats): unknown {
  return decodeObject(bytes, stats);
}
