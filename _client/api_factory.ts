// Internal: lets the generated builders construct `Api` instances without a runtime import cycle
// between `api.ts` and `generated/builders.ts`. `api.ts` registers the constructor when it loads.

/** What identifies a resource type. */
export interface ResourceDescriptor {
  /** API group, `""` for the core group. */
  group: string;
  /** API version, e.g. `v1`. */
  version: string;
  /** Kind, e.g. `Pod`. */
  kind: string;
  /** Plural resource name used in paths, e.g. `pods`. */
  plural: string;
  /** Whether objects of this kind live in namespaces. */
  namespaced: boolean;
}

let factory: ((descriptor: ResourceDescriptor) => unknown) | undefined;

/** Registers the function that turns a descriptor into an `Api`. Called once by `api.ts`. */
export function registerApiFactory(make: (descriptor: ResourceDescriptor) => unknown): void {
  factory = make;
}

/** Makes an `Api` for a descriptor. */
export function makeApi<A>(descriptor: ResourceDescriptor): A {
  if (!factory) throw new Error("api.ts was not loaded: import Api from the package root");
  return factory(descriptor) as A;
}
