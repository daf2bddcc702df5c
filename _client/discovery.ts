// Internal: the discovery cache behind `Client.discover()`: apiVersion + kind → resource, from
// the server's APIResourceList documents, cached per group-version and refreshed on a miss.

import type { ResourceDescriptor } from "./api_factory.ts";

/** One entry of an APIResourceList, as served by `/api/v1` or `/apis/<group>/<version>`. */
interface ApiResource {
  name: string;
  singularName?: string;
  namespaced: boolean;
  kind: string;
  verbs: string[];
  shortNames?: string[];
}

/** What discovery tells about a resource type. */
export interface DiscoveredResource extends ResourceDescriptor {
  /** The verbs the server allows, e.g. `get`, `list`, `watch`, `patch`. */
  verbs: string[];
  /** Subresources such as `status` and `scale`. */
  subresources: string[];
  /** Short names, e.g. `po` for pods. */
  shortNames: string[];
  /** The singular name. */
  singular: string;
}

/** Fetches an APIResourceList for a group-version path; injected by the client. */
export type FetchResourceList = (path: string) => Promise<{ resources: ApiResource[] }>;

/** Caches discovery per group-version. */
export class DiscoveryCache {
  #fetch: FetchResourceList;
  #byGroupVersion = new Map<string, Promise<Map<string, DiscoveredResource>>>();

  constructor(fetch: FetchResourceList) {
    this.#fetch = fetch;
  }

  /** Resolves a kind of a group-version; refreshes the group-version once on a miss. */
  async resolve(apiVersion: string, kind: string): Promise<DiscoveredResource | undefined> {
    for (const refresh of [false, true]) {
      if (refresh) this.#byGroupVersion.delete(apiVersion);
      const kinds = await this.#load(apiVersion);
      const found = kinds.get(kind);
      if (found) return found;
    }
    return undefined;
  }

  /** Forgets everything (e.g. after CRDs changed). */
  clear(): void {
    this.#byGroupVersion.clear();
  }

  #load(apiVersion: string): Promise<Map<string, DiscoveredResource>> {
    let entry = this.#byGroupVersion.get(apiVersion);
    if (!entry) {
      const slash = apiVersion.indexOf("/");
      const group = slash >= 0 ? apiVersion.slice(0, slash) : "";
      const version = slash >= 0 ? apiVersion.slice(slash + 1) : apiVersion;
      const path = group ? `/apis/${group}/${version}` : `/api/${version}`;
      entry = this.#fetch(path).then((list) => index(list.resources ?? [], group, version));
      // A failed look-up is not cached.
      entry.catch(() => this.#byGroupVersion.delete(apiVersion));
      this.#byGroupVersion.set(apiVersion, entry);
    }
    return entry;
  }
}

function index(
  resources: ApiResource[],
  group: string,
  version: string,
): Map<string, DiscoveredResource> {
  const byKind = new Map<string, DiscoveredResource>();
  const subresources = new Map<string, string[]>();
  for (const r of resources) {
    const slash = r.name.indexOf("/");
    if (slash >= 0) {
      const parent = r.name.slice(0, slash);
      subresources.set(parent, [...(subresources.get(parent) ?? []), r.name.slice(slash + 1)]);
    }
  }
  for (const r of resources) {
    if (r.name.includes("/") || byKind.has(r.kind)) continue;
    byKind.set(r.kind, {
      group,
      version,
      kind: r.kind,
      plural: r.name,
      namespaced: r.namespaced,
      verbs: r.verbs ?? [],
      subresources: subresources.get(r.name) ?? [],
      shortNames: r.shortNames ?? [],
      singular: r.singularName || r.kind.toLowerCase(),
    });
  }
  return byKind;
}
