// Internal: Deployment behaviour of the fake server: `spec.replicas: 1` and an empty status.

import { isObject, type JsonObject } from "../_json.ts";
import type { KindBehaviour } from "./kind.ts";

export const deploymentKind: KindBehaviour = {
  defaults(object, old) {
    const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
    if (!spec) return;
    if (spec.replicas === undefined) spec.replicas = 1;
    if (!old) object.status = {};
  },
};
