// Internal: the resource types the fake API server serves (built-in kinds, registered custom
// resources, CRDs) and its discovery documents. Not part of the public API.

import type { JsonObject } from "./_json.ts";

/** A served resource type (one group/version/plural). */
export interface ResourceType {
  /** API group, `""` for core. */
  group: string;
  /** API version. */
  version: string;
  /** Kind, e.g. `Pod`. */
  kind: string;
  /** List kind, e.g. `PodList`. */
  listKind: string;
  /** Plural, e.g. `pods`. */
  plural: string;
  /** Singular, e.g. `pod`. */
  singular: string;
  /** Namespaced or cluster-scoped. */
  namespaced: boolean;
  /** Short names for discovery. */
  shortNames: string[];
  /** Categories for discovery. */
  categories: string[];
  /** Served subresources (only `status` is implemented). */
  subresources: string[];
  /** Built-in (typed) kinds: list items carry no apiVersion/kind; strategic merge patch allowed. */
  builtin: boolean;
  /** Whether metadata.generation is maintained. */
  generation: boolean;
  /** Whether DELETE answers the deleted object (true) or a `Status` (false). */
  returnDeletedObject: boolean;
  /** Field selector fields the kind supports; `undefined` accepts any dotted path. */
  selectableFields: string[] | undefined;
  /** Name validation: `subdomain` (most kinds), `label` (RFC 1123) or `label1035` (services). */
  nameRule: "subdomain" | "label" | "label1035";
  /** The CRD that registered this type, if any. */
  crd?: string;
  /** How an unsupported field selector is worded: `label` (custom conversion) or `known` (default). */
  fieldErrorStyle?: "label" | "known";
  /** Main-resource verbs for discovery, when not {@linkcode RESOURCE_VERBS}. */
  verbs?: string[];
  /** The empty fields the real server encodes in a BOOKMARK object of this (typed) kind. */
  bookmarkFields?: JsonObject;
}

/** `group/version` or `version`. */
export function apiVersionOf(type: { group: string; version: string }): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** The storage identity shared by all versions of a resource: `group/plural`. */
export function storageIdOf(type: { group: string; plural: string }): string {
  return `${type.group}/${type.plural}`;
}

/** The verbs of a main resource. */
export const RESOURCE_VERBS = [
  "create",
  "delete",
  "deletecollection",
  "get",
  "list",
  "patch",
  "update",
  "watch",
];

const META = ["metadata.name", "metadata.namespace"];

interface BuiltinInit {
  group?: string;
  version?: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  subresources?: string[];
  generation?: boolean;
  returnDeletedObject?: boolean;
  /** Exact field selector fields (custom conversion); default: metadata.name and metadata.namespace. */
  fields?: string[];
  nameRule?: ResourceType["nameRule"];
  verbs?: string[];
  bookmarkFields?: JsonObject;
}

function builtin(init: BuiltinInit): ResourceType {
  return {
    group: init.group ?? "",
    version: init.version ?? "v1",
    kind: init.kind,
    listKind: `${init.kind}List`,
    plural: init.plural,
    singular: init.kind.toLowerCase(),
    namespaced: init.namespaced,
    shortNames: init.shortNames ?? [],
    categories: init.categories ?? [],
    subresources: init.subresources ?? [],
    builtin: true,
    generation: init.generation ?? false,
    returnDeletedObject: init.returnDeletedObject ?? false,
    selectableFields: init.fields ?? META,
    fieldErrorStyle: init.fields ? "label" : "known",
    nameRule: init.nameRule ?? "subdomain",
    ...(init.verbs ? { verbs: init.verbs } : {}),
    ...(init.bookmarkFields ? { bookmarkFields: init.bookmarkFields } : {}),
  };
}

/** The built-in kinds, with the field selectors, subresources and delete answers of the real server. */
export function builtinTypes(): ResourceType[] {
  return [
    builtin({
      kind: "Namespace",
      plural: "namespaces",
      namespaced: false,
      shortNames: ["ns"],
      subresources: ["status"],
      returnDeletedObject: true,
      fields: ["metadata.name", "status.phase"],
      nameRule: "label",
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      bookmarkFields: { spec: {}, status: {} },
    }),
    builtin({
      kind: "Pod",
      plural: "pods",
      namespaced: true,
      shortNames: ["po"],
      categories: ["all"],
      subresources: ["status"],
      generation: true,
      returnDeletedObject: true,
      bookmarkFields: { spec: { containers: null }, status: {} },
      fields: [
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
        "spec.host",
      ],
    }),
    builtin({ kind: "ConfigMap", plural: "configmaps", namespaced: true, shortNames: ["cm"] }),
    builtin({
      kind: "Secret",
      plural: "secrets",
      namespaced: true,
      fields: ["metadata.name", "metadata.namespace", "type"],
    }),
    builtin({
      kind: "Service",
      plural: "services",
      namespaced: true,
      shortNames: ["svc"],
      categories: ["all"],
      subresources: ["status"],
      returnDeletedObject: true,
      fields: ["metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"],
      nameRule: "label1035",
      bookmarkFields: { spec: {}, status: { loadBalancer: {} } },
    }),
    builtin({
      kind: "ServiceAccount",
      plural: "serviceaccounts",
      namespaced: true,
      shortNames: ["sa"],
      returnDeletedObject: true,
    }),
    builtin({
      kind: "Node",
      plural: "nodes",
      namespaced: false,
      shortNames: ["no"],
      subresources: ["status"],
      fields: ["metadata.name", "spec.unschedulable"],
      bookmarkFields: {
        spec: {},
        status: {
          daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
          nodeInfo: {
            machineID: "",
            systemUUID: "",
            bootID: "",
            kernelVersion: "",
            osImage: "",
            containerRuntimeVersion: "",
            kubeletVersion: "",
            kubeProxyVersion: "",
            operatingSystem: "",
            architecture: "",
          },
        },
      },
    }),
    builtin({
      kind: "Event",
      plural: "events",
      namespaced: true,
      shortNames: ["ev"],
      bookmarkFields: {
        involvedObject: {},
        source: {},
        firstTimestamp: null,
        lastTimestamp: null,
        eventTime: null,
        reportingComponent: "",
        reportingInstance: "",
      },
      fields: [
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
      ],
    }),
    builtin({
      group: "apps",
      kind: "Deployment",
      plural: "deployments",
      namespaced: true,
      shortNames: ["deploy"],
      categories: ["all"],
      subresources: ["status"],
      generation: true,
      bookmarkFields: {
        spec: {
          replicas: 0,
          selector: null,
          template: { metadata: {}, spec: { containers: null } },
          strategy: {},
        },
        status: {},
      },
    }),
    builtin({
      group: "coordination.k8s.io",
      kind: "Lease",
      plural: "leases",
      namespaced: true,
      bookmarkFields: { spec: {} },
    }),
    builtin({
      group: "apiextensions.k8s.io",
      kind: "CustomResourceDefinition",
      plural: "customresourcedefinitions",
      namespaced: false,
      shortNames: ["crd", "crds"],
      categories: ["api-extensions"],
      subresources: ["status"],
      generation: true,
      bookmarkFields: {
        spec: { group: "", names: { plural: "", kind: "" }, scope: "", versions: null },
        status: { conditions: null, acceptedNames: { plural: "", kind: "" }, storedVersions: null },
      },
    }),
  ];
}

/** Compares Kubernetes versions by priority (v1 > v1beta2 > v1beta1 > v1alpha1 > other). */
export function compareVersions(a: string, b: string): number {
  const rank = (v: string): [number, number, number] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    const stage = m[2] === undefined ? 3 : m[2] === "beta" ? 2 : 1;
    return [stage, Number(m[1]), Number(m[3] ?? 0)];
  };
  const ra = rank(a);
  const rb = rank(b);
  for (let i = 0; i < 3; i++) {
    if (ra[i] !== rb[i]) return rb[i] - ra[i];
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The set of served types, indexed for routing and discovery. */
export class ResourceRegistry {
  #types = new Map<string, ResourceType>();

  /** Adds or replaces a type. */
  add(type: ResourceType): void {
    this.#types.set(`${type.group}/${type.version}/${type.plural}`, type);
  }

  /** Removes the types a CRD registered. */
  removeCrd(crdName: string): ResourceType[] {
    const removed: ResourceType[] = [];
    for (const [key, type] of this.#types) {
      if (type.crd === crdName) {
        this.#types.delete(key);
        removed.push(type);
      }
    }
    return removed;
  }

  /** Finds a type by group, version and plural. */
  get(group: string, version: string, plural: string): ResourceType | undefined {
    return this.#types.get(`${group}/${version}/${plural}`);
  }

  /** All types. */
  all(): ResourceType[] {
    return [...this.#types.values()];
  }

  /** Whether a group/version is served. */
  hasGroupVersion(group: string, version: string): boolean {
    return this.all().some((t) => t.group === group && t.version === version);
  }

  /** Finds the types of a kind (any version), optionally in one apiVersion. */
  byKind(kind: string, apiVersion?: string): ResourceType[] {
    return this.all().filter((t) =>
      (t.kind === kind || t.plural === kind) &&
      (apiVersion === undefined || apiVersionOf(t) === apiVersion)
    );
  }

  /** The served versions of each group, preferred first. */
  groups(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const type of this.all()) {
      if (type.group === "") continue;
      const versions = groups.get(type.group) ?? [];
      if (!versions.includes(type.version)) versions.push(type.version);
      groups.set(type.group, versions);
    }
    for (const versions of groups.values()) versions.sort(compareVersions);
    return groups;
  }
}

/** `/api`: the APIVersions document. */
export function apiVersionsDocument(host: string): JsonObject {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: host }],
  };
}

function groupDocument(name: string, versions: string[]): JsonObject {
  const entries = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: entries, preferredVersion: entries[0] };
}

/** `/apis`: the APIGroupList document. */
export function apiGroupListDocument(registry: ResourceRegistry): JsonObject {
  const groups = [...registry.groups()].sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: groups.map(([name, versions]) => groupDocument(name, versions)),
  };
}

/** `/apis/<group>`: the APIGroup document, or `undefined` when the group is not served. */
export function apiGroupDocument(
  registry: ResourceRegistry,
  group: string,
): JsonObject | undefined {
  const versions = registry.groups().get(group);
  if (!versions) return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...groupDocument(group, versions) };
}

/** `/api/v1` or `/apis/<group>/<version>`: the APIResourceList document. */
export function apiResourceListDocument(
  registry: ResourceRegistry,
  group: string,
  version: string,
): JsonObject {
  const resources: JsonObject[] = [];
  const types = registry.all().filter((t) => t.group === group && t.version === version)
    .sort((a, b) => (a.plural < b.plural ? -1 : 1));
  for (const type of types) {
    const entry: JsonObject = {
      name: type.plural,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: type.verbs ?? RESOURCE_VERBS,
    };
    if (type.shortNames.length) entry.shortNames = type.shortNames;
    if (type.categories.length) entry.categories = type.categories;
    resources.push(entry);
    for (const sub of [...type.subresources].sort()) {
      resources.push({
        name: `${type.plural}/${sub}`,
        singularName: "",
        namespaced: type.namespaced,
        kind: type.kind,
        verbs: ["get", "patch", "update"],
      });
    }
  }
  const doc: JsonObject = { kind: "APIResourceList" };
  if (group) doc.apiVersion = "v1";
  doc.groupVersion = group ? `${group}/${version}` : version;
  doc.resources = resources;
  return doc;
}
