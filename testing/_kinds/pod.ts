// Internal: Pod behaviour of the fake server: the initial `Pending` status and QoS class,
// container validation, and graceful deletion (marked, then removed, as for a pod on no node).

import { isObject, type JsonObject } from "../_json.ts";
import { type FieldError, required } from "../_status.ts";
import type { KindBehaviour } from "./kind.ts";

export const podKind: KindBehaviour = {
  defaults(object, old) {
    if (old) return;
    const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
    const containers = Array.isArray(spec?.containers) ? spec.containers as JsonObject[] : [];
    const hasResources = containers.some((c) =>
      isObject(c?.resources) && Object.keys(c.resources as JsonObject).length > 0
    );
    object.status = { phase: "Pending", qosClass: hasResources ? "Burstable" : "BestEffort" };
  },
  validate(object) {
    const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
    const errors: FieldError[] = [];
    const containers = spec?.containers;
    if (!Array.isArray(containers) || containers.length === 0) {
      errors.push(required("spec.containers"));
    } else {
      containers.forEach((c, i) => {
        if (!isObject(c) || typeof c.name !== "string" || c.name === "") {
          errors.push(required(`spec.containers[${i}].name`));
        }
        if (!isObject(c) || typeof c.image !== "string" || c.image === "") {
          errors.push(required(`spec.containers[${i}].image`));
        }
      });
    }
    return errors;
  },
  graceful: true,
};
