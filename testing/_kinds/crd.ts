// Internal: CustomResourceDefinition behaviour of the fake server: defaults of names, conversion
// and the initial status, validation of names, scope and versions, Established at once after a
// write, and deletion through the apiextensions finalizer.

import { isObject, type JsonObject, metaString } from "../_json.ts";
import { type FieldError, invalidValue, notSupported, required } from "../_status.ts";
import type { KindBehaviour } from "./kind.ts";

export const crdKind: KindBehaviour = {
  defaults(object, old) {
    const spec = isObject(object.spec) ? object.spec as JsonObject : undefined;
    if (!spec) return;
    if (isObject(spec.names) && typeof spec.names.kind === "string") {
      const names = spec.names as JsonObject;
      if (!names.singular) names.singular = String(names.kind).toLowerCase();
      if (!names.listKind) names.listKind = `${names.kind}List`;
    }
    if (spec.conversion === undefined) spec.conversion = { strategy: "None" };
    if (!old) {
      const versions = Array.isArray(spec.versions) ? spec.versions as JsonObject[] : [];
      const storage = versions.find((v) => v?.storage === true)?.name;
      object.status = {
        conditions: null,
        acceptedNames: { plural: "", kind: "" },
        storedVersions: storage === undefined ? [] : [storage],
      };
    }
  },
  validate(object) {
    const errors: FieldError[] = [];
    const spec = isObject(object.spec) ? object.spec as JsonObject : {};
    const names = isObject(spec.names) ? spec.names as JsonObject : {};
    const group = typeof spec.group === "string" ? spec.group : "";
    const plural = typeof names.plural === "string" ? names.plural : "";
    if (!group) errors.push(required("spec.group"));
    if (!plural) errors.push(required("spec.names.plural"));
    if (typeof names.kind !== "string" || names.kind === "") {
      errors.push(required("spec.names.kind"));
    }
    const name = metaString(object, "name");
    if (group && plural && name !== `${plural}.${group}`) {
      errors.push(invalidValue("metadata.name", name, `must be spec.names.plural+"."+spec.group`));
    }
    if (spec.scope !== "Namespaced" && spec.scope !== "Cluster") {
      errors.push(notSupported("spec.scope", String(spec.scope ?? ""), ["Cluster", "Namespaced"]));
    }
    const versions = Array.isArray(spec.versions) ? spec.versions as JsonObject[] : [];
    if (versions.length === 0) {
      errors.push(
        required("spec.versions", "must have exactly one version marked as storage version"),
      );
    } else if (versions.filter((v) => v?.storage === true).length !== 1) {
      errors.push(
        invalidValue(
          "spec.versions",
          versions.map((v) => v?.name),
          "must have exactly one version marked as storage version",
        ),
      );
    }
    return errors;
  },
  finalize(marked, host) {
    host.terminateCrd(marked);
  },
  afterWrite(object, host) {
    host.establishCrd(object);
  },
  afterDelete(object, host) {
    host.forgetCrd(metaString(object, "name"));
  },
};
