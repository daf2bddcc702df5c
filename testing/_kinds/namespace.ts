// Internal: Namespace behaviour of the fake server: the `kubernetes.io/metadata.name` label, the
// `kubernetes` finalizer and `Active` phase, protected system namespaces, and deletion through
// `Terminating` with the namespace controller's cleanup.

import { isObject, type JsonObject, metaOf, quote } from "../_json.ts";
import { failure, StatusError } from "../_status.ts";
import type { KindBehaviour } from "./kind.ts";

const PROTECTED_NAMESPACES = new Set(["default", "kube-system", "kube-public"]);

export const namespaceKind: KindBehaviour = {
  defaults(object, old) {
    const meta = metaOf(object);
    meta.labels = {
      ...(isObject(meta.labels) ? meta.labels : {}),
      "kubernetes.io/metadata.name": String(meta.name),
    };
    if (!old) {
      const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
      object.spec = { finalizers: ["kubernetes"], ...(spec ?? {}) };
      object.status = { phase: "Active" };
    }
  },
  refuseDelete(name) {
    if (!PROTECTED_NAMESPACES.has(name)) return undefined;
    return new StatusError(
      failure(
        403,
        "Forbidden",
        `namespaces ${quote(name)} is forbidden: this namespace may not be deleted`,
        { name, kind: "namespaces" },
      ),
    );
  },
  mark(marked) {
    marked.status = { ...(isObject(marked.status) ? marked.status : {}), phase: "Terminating" };
  },
  finalize(marked, host) {
    host.terminateNamespace(String(metaOf(marked).name));
  },
};
