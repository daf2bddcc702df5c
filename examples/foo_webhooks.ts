// The Foo operator's admission webhooks (examples/foo_operator.ts): a validating webhook that
// refuses spec.replicas above 10 with a message kubectl prints, and a defaulting one that sets
// spec.replicas to 1 when it is missing. Served by a WebhookServer (examples/deploy/foo_operator.ts
// with WEBHOOK_SERVICE set, and act 3 of `deno task demo`), or called in-process by the
// FakeApiServer (`server.addAdmissionWebhooks(fooWebhooks())`).
//
// Outside this repository, import from "@denokube/kube/webhook".

import { type AdmissionWebhook, deny, mutate, validate } from "../webhook/mod.ts";
import { FOOS, MAX_REPLICAS } from "./foo_operator.ts";

/**
 * The Foo webhooks.
 *
 * @returns The validating and the defaulting webhook.
 */
export function fooWebhooks(): AdmissionWebhook[] {
  return [
    validate(FOOS, (req) => {
      const replicas = req.object?.spec.replicas ?? 1;
      if (replicas > MAX_REPLICAS) {
        return deny(
          `spec.replicas is ${replicas}, more than the ${MAX_REPLICAS} this operator allows: ` +
            `set spec.replicas to 0–${MAX_REPLICAS}`,
          { reason: "Invalid", code: 422 },
        );
      }
      return undefined;
    }, { name: "validate-foos.clux.dev" }),
    mutate(FOOS, (foo) => {
      foo.spec.replicas ??= 1;
    }, { name: "default-foos.clux.dev" }),
  ];
}
