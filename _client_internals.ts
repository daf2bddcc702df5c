// A narrow window into Client for the streaming subresources (exec, attach, port-forward), which
// upgrade their own connection instead of calling fetch: the same credentials, the same headers
// (Authorization, User-Agent, impersonation) and the same network-error messages as every other
// request. Registered by Client's static initialiser; not exported from mod.ts.

import type { Client } from "./client.ts";
import type { Credentials } from "./config.ts";

/** What the streaming code may use of a Client. */
export interface ClientInternals {
  /** Whether the client was given a custom fetch (a stub or FakeApiServer): no sockets then. */
  usesCustomFetch(client: Client): boolean;
  /** The credentials, with the same error wrapping as a request's. */
  credentials(client: Client, method: string, url: URL, signal?: AbortSignal): Promise<Credentials>;
  /** The request headers for these credentials (Authorization, User-Agent, impersonation). */
  headers(client: Client, credentials: Credentials): Headers;
  /** The error a request would throw for a failure to connect. */
  networkError(
    client: Client,
    cause: unknown,
    method: string,
    url: URL,
    signal?: AbortSignal,
  ): unknown;
}

let internals: ClientInternals | undefined;

/** Called once by Client. */
export function registerClientInternals(value: ClientInternals): void {
  internals = value;
}

/** The registered internals (Client's module is loaded by then). */
export function clientInternals(): ClientInternals {
  if (!internals) throw new Error("Client internals are not registered: import ./client.ts first");
  return internals;
}
