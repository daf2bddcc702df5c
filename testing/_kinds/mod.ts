// Internal: the kind-specific behaviour of the fake server, by storage id (`group/plural`).
// Kinds not listed here get only the generic semantics of the store.

import { crdKind } from "./crd.ts";
import { deploymentKind } from "./deployment.ts";
import type { KindBehaviour } from "./kind.ts";
import { namespaceKind } from "./namespace.ts";
import { podKind } from "./pod.ts";
import { secretKind } from "./secret.ts";
import { serviceKind } from "./service.ts";

export type { KindBehaviour, KindHost } from "./kind.ts";

const KINDS: ReadonlyMap<string, KindBehaviour> = new Map([
  ["/namespaces", namespaceKind],
  ["/pods", podKind],
  ["/secrets", secretKind],
  ["/services", serviceKind],
  ["apps/deployments", deploymentKind],
  ["apiextensions.k8s.io/customresourcedefinitions", crdKind],
]);

const GENERIC: KindBehaviour = {};

/**
 * The behaviour of a storage id.
 *
 * @param storageId `group/plural`, e.g. `/pods`.
 * @returns Its behaviour (empty for kinds without any).
 */
export function kindBehaviour(storageId: string): KindBehaviour {
  return KINDS.get(storageId) ?? GENERIC;
}
