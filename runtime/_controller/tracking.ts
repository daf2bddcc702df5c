// Internal: the client a reconcile gets (`ctx.client`): the controller's client, whose write
// verbs also report the objects they wrote (for read-your-own-writes). It is a Proxy of the
// client, so it must stay interchangeable with it where the library keys things by client
// instance: the proxy shares the client's transport (exec, port-forward) and `baseClient()`
// answers the client behind it (shared caches are per client, not per reconcile).

import type { Api, KubeObject } from "../../api.ts";
import type { Client } from "../../client.ts";
import { registerTransport, transportOf } from "../../_client/transport.ts";

const WRITE_VERBS = new Set([
  "create",
  "replace",
  "patch",
  "apply",
  "delete",
  "replaceStatus",
  "patchStatus",
  "patchScale",
]);

const bases = new WeakMap<object, Client>();

/** The client behind a reconcile's `ctx.client` (or the client itself). */
export function baseClient(client: Client): Client {
  return bases.get(client) ?? client;
}

/**
 * Wraps a client so that its write verbs report what they wrote.
 *
 * @param client The controller's client.
 * @param onWrite Called with the Api and the object each successful write answered.
 * @param guard Called before each write; a throw refuses the write before it is sent (fencing).
 */
export function trackingClient(
  client: Client,
  onWrite: (api: Api<KubeObject>, object: KubeObject) => void,
  guard?: () => void,
): Client {
  const base = baseClient(client);
  const proxy = new Proxy(base, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (typeof property === "string" && WRITE_VERBS.has(property)) {
        return async (api: Api<KubeObject>, ...rest: unknown[]) => {
          guard?.();
          const result = await (value as (...args: unknown[]) => Promise<unknown>).call(
            target,
            api,
            ...rest,
          );
          if (result && typeof result === "object" && (result as KubeObject).metadata) {
            const object = result as KubeObject;
            if (object.kind !== "Status") onWrite(api, object);
          }
          return result;
        };
      }
      return value.bind(target);
    },
  });
  bases.set(proxy, base);
  const transport = transportOf(base);
  if (transport) registerTransport(proxy, transport);
  return proxy;
}
