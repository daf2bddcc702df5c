// TEMPORARY hand-written subset; replaced by `deno task codegen`.
import type { Api, KubeObject } from "../api.ts";
import { makeApi } from "../_api_factory.ts";

/** Static builders for the built-in resource types. */
export class ApiBuilders {
  /** Pods (core/v1). @returns The descriptor. */
  static v1Pod(): Api<KubeObject> {
    return makeApi({ group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true });
  }
  /** Namespaces (core/v1). @returns The descriptor. */
  static v1Namespace(): Api<KubeObject> {
    return makeApi({ group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false });
  }
  /** Nodes (core/v1). @returns The descriptor. */
  static v1Node(): Api<KubeObject> {
    return makeApi({ group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false });
  }
  /** ConfigMaps (core/v1). @returns The descriptor. */
  static v1ConfigMap(): Api<KubeObject> {
    return makeApi({ group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true });
  }
  /** Deployments (apps/v1). @returns The descriptor. */
  static appsV1Deployment(): Api<KubeObject> {
    return makeApi({ group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true });
  }
}
