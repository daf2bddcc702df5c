// TEMPORARY hand-written subset; replaced by `deno task codegen`.
/** ObjectMeta is metadata that all persisted resources must have. */
export interface ObjectMeta {
  /** Name must be unique within a namespace. */
  name?: string;
  /** Namespace defines the space within which each name must be unique. */
  namespace?: string;
  /** An opaque value that represents the internal version of this object. */
  resourceVersion?: string;
  /** UID is the unique in time and space value for this object. */
  uid?: string;
  /** Map of string keys and values used to organize and categorize objects. */
  labels?: Record<string, string>;
  /** Annotations is an unstructured key value map. */
  annotations?: Record<string, string>;
  /** GenerateName is an optional prefix used by the server to generate a unique name. */
  generateName?: string;
  /** A sequence number representing a specific generation of the desired state. */
  generation?: number;
  /** CreationTimestamp is a timestamp representing the server time when this object was created. */
  creationTimestamp?: string;
  /** DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. */
  deletionTimestamp?: string;
  /** ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow. */
  managedFields?: Record<string, unknown>[];
  /** List of objects depended by this object. */
  ownerReferences?: Record<string, unknown>[];
  /** Must be empty before the object is deleted from the registry. */
  finalizers?: string[];
  [key: string]: unknown;
}
/** ListMeta describes metadata that synthetic resources must have. */
export interface ListMeta {
  /** An opaque value that represents the internal version of this list. */
  resourceVersion?: string;
  /** Continue may be set if the user set a limit on the number of items returned. */
  continue?: string;
  /** The number of subsequent items in the list which are not included in this list response. */
  remainingItemCount?: number;
  [key: string]: unknown;
}
