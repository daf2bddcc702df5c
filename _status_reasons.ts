// Internal: the Kubernetes `reason` the API server pairs with an HTTP status code (as in
// apimachinery's NewGenericServerResponse). Shared by the client (plain-text error bodies) and the
// fake server (injected faults).

const REASONS: Readonly<Record<number, string>> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** The reason for an HTTP status code, or `undefined` for codes without a standard reason. */
export function reasonForCode(code: number): string | undefined {
  return REASONS[code];
}
