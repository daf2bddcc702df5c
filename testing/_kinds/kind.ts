// Internal: what a kind may add to the fake server's generic store — defaults, validation, and
// what a delete does — so that the store has no namespace/pod/CRD branches. One file per kind
// (`namespace.ts`, `pod.ts`, …); `mod.ts` maps storage ids to them.

import type { JsonObject } from "../_json.ts";
import type { FieldError, StatusError } from "../_status.ts";

/** What the store offers to kind behaviour: the clock, and the controllers the API server runs. */
export interface KindHost {
  /** The server's clock. */
  now(): Date;
  /** A fresh cluster IP for a service. */
  nextServiceIp(): string;
  /** What the namespace controller does: delete the content, then the namespace. */
  terminateNamespace(name: string): void;
  /** Removes a terminating namespace once nothing is left in it. */
  finishNamespaceIfEmpty(name: string): void;
  /** What the apiextensions finalizer does: delete the custom resources, then the CRD. */
  terminateCrd(crd: JsonObject): void;
  /** Registers the served versions of a CRD and marks it Established. */
  establishCrd(crd: JsonObject): void;
  /** Stops serving a deleted CRD's resources. */
  forgetCrd(name: string): void;
}

/** Kind-specific behaviour; every member is optional. */
export interface KindBehaviour {
  /** Defaulting, like the registry strategies (`old` is undefined on create). */
  defaults?(object: JsonObject, old: JsonObject | undefined, host: KindHost): void;
  /** Validation beyond names (a small subset of the real rules). */
  validate?(object: JsonObject): FieldError[];
  /** A delete the server refuses outright (e.g. a protected namespace). */
  refuseDelete?(name: string): StatusError | undefined;
  /**
   * Deleting always goes through a finalizing phase (even without `metadata.finalizers`): the
   * object is marked (`deletionTimestamp`, then `mark`), and `finalize` runs what the server's
   * controller does.
   */
  finalize?(marked: JsonObject, host: KindHost): void;
  /** Changes the mark of a finalizing delete (default: `deletionGracePeriodSeconds: 0`). */
  mark?(marked: JsonObject): void;
  /** Graceful deletion: the object is first marked (MODIFIED), then removed (pods). */
  graceful?: boolean;
  /** After a committed create or update. */
  afterWrite?(object: JsonObject, host: KindHost): void;
  /** After a committed removal. */
  afterDelete?(object: JsonObject, host: KindHost): void;
}
