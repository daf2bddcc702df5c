// Internal: Service behaviour of the fake server: `type`, `sessionAffinity` and a cluster IP
// that an update keeps.

import { isObject, type JsonObject } from "../_json.ts";
import type { KindBehaviour } from "./kind.ts";

export const serviceKind: KindBehaviour = {
  defaults(object, old, host) {
    const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
    if (!spec) return;
    if (spec.type === undefined) spec.type = "ClusterIP";
    if (spec.sessionAffinity === undefined) spec.sessionAffinity = "None";
    if (old && isObject(old.spec)) {
      const oldSpec = old.spec as JsonObject;
      if (spec.clusterIP === undefined) spec.clusterIP = oldSpec.clusterIP;
      if (spec.clusterIPs === undefined) spec.clusterIPs = oldSpec.clusterIPs;
    } else if (spec.type !== "ExternalName" && spec.clusterIP === undefined) {
      spec.clusterIP = host.nextServiceIp();
      spec.clusterIPs = [spec.clusterIP];
    }
  },
};
