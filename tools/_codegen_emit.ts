// From OpenAPI v3 documents to the files of generated/: one module per Go package of
// definitions, `builders.ts` (the static `Api` builders) and `mod.ts` (the re-exports). Pure:
// documents in, file contents out (formatting is left to `deno fmt`, see tools/codegen.ts).

import {
  apiVersionOf,
  capitalize,
  firstSentence,
  type GroupVersionKind,
  gvkKey,
  moduleNameOf,
  namespaceOf,
  qualifiedBuilderName,
  refTarget,
  shortBuilderNames,
  splitDefinitionName,
} from "./_codegen_names.ts";
import {
  compareStrings,
  isDeprecated,
  jsDoc,
  referenceOf,
  renderDefinition,
  type Schema,
  type TypeContext,
} from "./_codegen_types.ts";

/** An operation of an OpenAPI path item (only what the generator reads). */
export interface Operation {
  /** `list`, `get`, `watch`, `watchlist`, … */
  "x-kubernetes-action"?: string;
  /** The kind the operation serves. */
  "x-kubernetes-group-version-kind"?: GroupVersionKind;
  /** Responses by status code. */
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}

/** An OpenAPI v3 document as served under `/openapi/v3/...`. */
export interface OpenApiDocument {
  /** Paths and their operations. */
  paths?: Record<string, Record<string, Operation | unknown>>;
  /** The definitions. */
  components?: { schemas?: Record<string, Schema> };
}

/** A listable resource, from which a builder is generated. */
export interface Resource extends GroupVersionKind {
  /** Plural name used in paths. */
  plural: string;
  /** Whether the resource lives in namespaces. */
  namespaced: boolean;
  /** Full name of the item definition, e.g. `io.k8s.api.core.v1.Pod`. */
  definition: string;
}

/** Inputs besides the documents. */
export interface GenerateOptions {
  /** Kubernetes version the documents come from, e.g. `v1.36.3`, for the headers. */
  kubernetesVersion: string;
  /**
   * Names the package root already exports from hand-written modules; generated types with these
   * names are re-exported only under their qualified alias and in their namespace.
   */
  reservedNames?: Iterable<string>;
}

/** What {@linkcode generate} produces. */
export interface GeneratedFiles {
  /** File name (relative to generated/) → content, sorted by name. */
  files: Map<string, string>;
  /** Counts for the summary. */
  stats: {
    /** Definitions rendered. */
    types: number;
    /** Definitions that are served kinds (with `x-kubernetes-group-version-kind`). */
    kinds: number;
    /** Listable resources (one qualified builder each). */
    resources: number;
    /** Builder methods including short aliases. */
    builders: number;
    /** Modules (one per Go package). */
    modules: number;
    /** Types re-exported under a qualified alias. */
    aliases: string[];
  };
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort(compareStrings)) {
      out[key] = sortKeys((value as Record<string, unknown>)[key]);
    }
    return out;
  }
  return value;
}

/**
 * Merges the definitions of all documents by full name. The same definition appears in many
 * documents; copies may differ only in the kinds they list (`x-kubernetes-group-version-kind`,
 * e.g. `DeleteOptions` in every group), which are united and sorted.
 *
 * @param documents The group-version documents.
 * @returns Definitions sorted by name.
 * @throws {Error} When two copies of a definition differ otherwise.
 */
export function mergeSchemas(documents: OpenApiDocument[]): Map<string, Schema> {
  const merged = new Map<string, Schema>();
  const GVK = "x-kubernetes-group-version-kind";
  for (const doc of documents) {
    for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) {
      const seen = merged.get(name);
      if (!seen) {
        merged.set(name, structuredClone(schema));
        continue;
      }
      const { [GVK]: a, ...restA } = seen;
      const { [GVK]: b, ...restB } = schema;
      if (!deepEqual(restA, restB)) {
        throw new Error(`Definition ${name} differs between OpenAPI documents`);
      }
      const all = [...(a ?? []), ...(b ?? [])];
      if (all.length > 0) {
        const unique = new Map(all.map((g) => [gvkKey(g), g]));
        seen[GVK] = [...unique.keys()].sort(compareStrings).map((k) => unique.get(k)!);
      }
    }
  }
  return new Map([...merged.entries()].sort(([a], [b]) => compareStrings(a, b)));
}

function itemDefinitionOfList(listSchema: Schema | undefined): string | undefined {
  const items = listSchema?.properties?.items;
  const ref = items?.items ? referenceOf(items.items) : undefined;
  return ref === undefined ? undefined : refTarget(ref);
}

/**
 * The listable resources: paths with a `list` action and a kind, without `{name}` (subresources)
 * and without the deprecated `/watch/` prefix. A resource is namespaced when one of its list
 * paths has a `{namespace}` segment. The item type comes from the list response (`FooList.items`),
 * falling back to the definition served as exactly that kind.
 *
 * @param documents The group-version documents.
 * @param schemas The merged definitions.
 * @returns Resources sorted by group (core first), version, kind.
 */
export function collectResources(
  documents: OpenApiDocument[],
  schemas: Map<string, Schema>,
): Resource[] {
  const found = new Map<string, Resource>();
  for (const doc of documents) {
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      const op = item.get as Operation | undefined;
      const gvk = op?.["x-kubernetes-group-version-kind"];
      if (op?.["x-kubernetes-action"] !== "list" || !gvk) continue;
      const segments = path.split("/").filter((s) => s !== "");
      if (segments.includes("watch") || segments.includes("{name}")) continue;
      const plural = segments[segments.length - 1];
      const namespaced = segments.includes("{namespace}");
      const key = `${gvk.group}/${gvk.version}/${plural}`;
      const existing = found.get(key);
      if (existing) {
        if (existing.kind !== gvk.kind) {
          throw new Error(`${path} serves ${gvk.kind}, another path of ${plural} ${existing.kind}`);
        }
        existing.namespaced ||= namespaced;
        continue;
      }
      const response = op.responses?.["200"]?.content?.["application/json"]?.schema;
      const listRef = response ? referenceOf(response) : undefined;
      let definition = listRef ? itemDefinitionOfList(schemas.get(refTarget(listRef))) : undefined;
      if (definition === undefined || !schemas.has(definition)) {
        definition = [...schemas.entries()].find(([, s]) => {
          const gvks = s["x-kubernetes-group-version-kind"] ?? [];
          return gvks.some((g) => gvkKey(g) === gvkKey(gvk));
        })?.[0];
      }
      if (definition === undefined) {
        throw new Error(`No definition found for ${gvkKey(gvk)} (list path ${path})`);
      }
      found.set(key, {
        group: gvk.group,
        version: gvk.version,
        kind: gvk.kind,
        plural,
        namespaced,
        definition,
      });
    }
  }
  return [...found.values()].sort((a, b) =>
    (a.group === "" ? 0 : 1) - (b.group === "" ? 0 : 1) || compareStrings(a.group, b.group) ||
    compareStrings(a.version, b.version) || compareStrings(a.kind, b.kind) ||
    compareStrings(a.plural, b.plural)
  );
}

/**
 * The comment at the top of every generated file.
 *
 * @param kubernetesVersion E.g. `v1.36.3`.
 * @param lines Module-specific lines.
 * @returns `//` comment lines and a blank line.
 */
export function header(kubernetesVersion: string, lines: string[] = []): string {
  const all = [
    `Generated by \`deno task codegen\` (tools/codegen.ts) from the OpenAPI v3 documents of`,
    `Kubernetes ${kubernetesVersion}. Do not edit: regenerate instead.`,
    ...(lines.length > 0 ? ["", ...lines] : []),
  ];
  return `${all.map((l) => (l === "" ? "//" : `// ${l}`)).join("\n")}\n\n`;
}

const TYPES_NOTE = [
  "Objects are plain parsed JSON: the library never decodes them into classes, so fields this",
  "version does not know are kept at run time. The interfaces deliberately have no",
  "`[key: string]: unknown` index signature, so that misspelled fields in object literals are",
  "compile errors; cast (or extend the interface) to reach fields of newer servers.",
  "Quantity, Time and MicroTime stay strings and IntOrString `number | string`, as on the wire.",
];

interface ModulePlan {
  name: string;
  namespace: string;
  pkg: string;
  definitions: string[];
}

function planModules(schemas: Map<string, Schema>): Map<string, ModulePlan> {
  const modules = new Map<string, ModulePlan>();
  for (const definition of schemas.keys()) {
    const { pkg } = splitDefinitionName(definition);
    const name = moduleNameOf(pkg);
    const plan = modules.get(name);
    if (plan && plan.pkg !== pkg) {
      throw new Error(`Packages ${plan.pkg} and ${pkg} would both be written to ${name}.ts`);
    }
    if (name === "builders" || name === "mod") {
      throw new Error(`Package ${pkg} would overwrite generated/${name}.ts`);
    }
    const entry = plan ?? { name, namespace: namespaceOf(name), pkg, definitions: [] };
    entry.definitions.push(definition);
    modules.set(name, entry);
  }
  for (const plan of modules.values()) {
    plan.definitions.sort((a, b) =>
      compareStrings(splitDefinitionName(a).name, splitDefinitionName(b).name)
    );
  }
  return new Map([...modules.entries()].sort(([a], [b]) => compareStrings(a, b)));
}

function renderModule(
  plan: ModulePlan,
  schemas: Map<string, Schema>,
  kubernetesVersion: string,
): string {
  const local = new Set(plan.definitions.map((d) => splitDefinitionName(d).name));
  const external = new Set<string>();
  const placeholder = (definition: string) => `\uE000${definition}\uE000`;
  const ctx: TypeContext = {
    ref(definition) {
      if (!schemas.has(definition)) {
        throw new Error(`Unresolved reference to ${definition} in ${plan.pkg}`);
      }
      const { pkg, name } = splitDefinitionName(definition);
      if (pkg === plan.pkg) return name;
      external.add(definition);
      return placeholder(definition);
    },
  };
  let body = "";
  for (const definition of plan.definitions) {
    body += "\n" + renderDefinition(definition, schemas.get(definition)!, ctx);
  }
  // Imported names: aliased when they clash with a local name or another import.
  const count = new Map<string, number>();
  for (const d of external) {
    const { name } = splitDefinitionName(d);
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  const localName = new Map<string, string>();
  const imports = new Map<string, string[]>();
  for (const d of [...external].sort(compareStrings)) {
    const { pkg, name } = splitDefinitionName(d);
    const module = moduleNameOf(pkg);
    const alias = local.has(name) || count.get(name)! > 1
      ? `${capitalize(namespaceOf(module))}${name}`
      : name;
    localName.set(d, alias);
    const list = imports.get(module) ?? [];
    list.push(alias === name ? name : `${name} as ${alias}`);
    imports.set(module, list);
  }
  body = body.replace(/\uE000([^\uE000]+)\uE000/g, (_, d: string) => localName.get(d)!);
  const importLines = [...imports.entries()].sort(([a], [b]) => compareStrings(a, b)).map((
    [module, names],
  ) => `import type { ${names.sort(compareStrings).join(", ")} } from "./${module}.ts";\n`).join(
    "",
  );
  return header(kubernetesVersion, [
    `Types of the Go package ${plan.pkg}.`,
    "",
    ...TYPES_NOTE,
  ]) + importLines + body;
}

function builderDoc(resource: Resource, schema: Schema, shortOf?: string): string {
  const what = firstSentence(schema.description) || `${resource.kind} objects.`;
  const scope = resource.namespaced ? "namespaced" : "cluster-scoped";
  const group = resource.group === "" ? '`""` (core)' : `\`${resource.group}\``;
  const lines = [
    shortOf ? `Short form of \`${shortOf}()\`: ${what}` : what,
    "",
    `Group ${group}, version \`${resource.version}\`, kind \`${resource.kind}\`, plural ` +
    `\`${resource.plural}\`, ${scope} (\`apiVersion: ${
      apiVersionOf(resource.group, resource.version)
    }\`).`,
  ];
  const returns = resource.namespaced
    ? `@returns The descriptor, for all namespaces until narrowed with \`.within(namespace)\`.`
    : "@returns The descriptor.";
  const tags = [returns];
  if (isDeprecated(schema.description)) {
    const note = /(?:Deprecated|DEPRECATED)[:.]\s*([\s\S]*)$/.exec(schema.description!)?.[1];
    const sentence = firstSentence(note);
    tags.push(sentence ? `@deprecated ${sentence}` : "@deprecated");
  }
  return jsDoc(lines.join("\n"), "  ", tags);
}

function renderBuilders(
  resources: Resource[],
  schemas: Map<string, Schema>,
  kubernetesVersion: string,
): { text: string; count: number } {
  const shorts = shortBuilderNames(resources);
  const namespaces = new Map<string, string>();
  const names = new Set<string>();
  let methods = "";
  let count = 0;
  for (const r of resources) {
    const { pkg, name } = splitDefinitionName(r.definition);
    const module = moduleNameOf(pkg);
    const ns = namespaceOf(module);
    namespaces.set(ns, module);
    const type = `Api<${ns}.${name}>`;
    const descriptor = `{ group: ${JSON.stringify(r.group)}, version: ${
      JSON.stringify(r.version)
    }, kind: ${JSON.stringify(r.kind)}, plural: ${
      JSON.stringify(r.plural)
    }, namespaced: ${r.namespaced} }`;
    const qualified = qualifiedBuilderName(r.group, r.version, r.kind);
    const short = shorts.get(gvkKey(r));
    const schema = schemas.get(r.definition)!;
    for (
      const [method, doc] of [
        [qualified, builderDoc(r, schema)],
        ...(short ? [[short, builderDoc(r, schema, qualified)]] : []),
      ]
    ) {
      if (names.has(method)) throw new Error(`Two builders are named ${method}`);
      names.add(method);
      count++;
      methods +=
        `\n${doc}  static ${method}(): ${type} {\n    return makeApi(${descriptor});\n  }\n`;
    }
  }
  const imports = [...namespaces.entries()].sort(([a], [b]) => compareStrings(a, b)).map((
    [ns, module],
  ) => `import type * as ${ns} from "./${module}.ts";\n`).join("");
  const text = header(kubernetesVersion, [
    "Static builders of `Api` descriptors for every listable built-in resource. `Api` extends",
    "`ApiBuilders`, so they are called as `Api.v1Pod()`, `Api.appsV1Deployment()`. Names: always",
    "`<group><Version><Kind>` (group without `.k8s.io`, camel-cased; empty for core), plus the",
    "short `<version><Kind>` when exactly one group serves that version and kind (core wins).",
  ]) +
    `import type { Api } from "../api.ts";\nimport { makeApi } from "../_client/api_factory.ts";\n${imports}\n` +
    jsDoc(
      `Static builders of {@linkcode Api} descriptors for the ${resources.length} listable ` +
        `built-in resources of Kubernetes ${kubernetesVersion}, e.g. \`Api.v1Pod()\`, ` +
        "`Api.appsV1Deployment()`, `Api.rbacAuthorizationV1ClusterRole()`.\n\n" +
        "Each is named `<group><Version><Kind>` (the group without `.k8s.io`, camel-cased; " +
        "nothing for the core group) and, when exactly one group serves that version and kind " +
        "(the core group wins), also `<version><Kind>` (`Api.v1Deployment()`).",
    ) +
    `export class ApiBuilders {${methods}}\n`;
  return { text, count };
}

/** How one definition is re-exported from generated/mod.ts. */
export interface ExportPlan {
  /** Definitions exported under their own name: name → definition. */
  byName: Map<string, string>;
  /** Definitions exported under a qualified alias: alias → definition. */
  aliases: Map<string, string>;
}

/**
 * Decides the root-level names of the types. A name defined in exactly one package is exported
 * as is; a name several packages define is exported from core/v1 when core has it, otherwise from
 * none. Names the hand-written modules export are never used. Every type that does not get its
 * own name is exported under the alias `<Namespace><Name>` (`EventsV1Event`,
 * `AutoscalingV2HorizontalPodAutoscaler`, `MetaV1Status`): `deno doc --lint` requires every
 * type that a root-level type references to be exported at the root, and namespaces do not
 * count.
 *
 * @param definitions All definition names.
 * @param reserved Names taken by the hand-written modules.
 * @returns The plan.
 */
export function planExports(definitions: Iterable<string>, reserved: Set<string>): ExportPlan {
  const byTypeName = new Map<string, string[]>();
  for (const d of definitions) {
    const { name } = splitDefinitionName(d);
    byTypeName.set(name, [...(byTypeName.get(name) ?? []), d]);
  }
  const byName = new Map<string, string>();
  const unnamed: string[] = [];
  for (const [name, list] of byTypeName) {
    let chosen: string | undefined;
    if (!reserved.has(name)) {
      if (list.length === 1) chosen = list[0];
      else chosen = list.find((d) => splitDefinitionName(d).pkg === "io.k8s.api.core.v1");
    }
    if (chosen) byName.set(name, chosen);
    unnamed.push(...list.filter((d) => d !== chosen));
  }
  const aliases = new Map<string, string>();
  for (const d of unnamed.sort(compareStrings)) {
    const { pkg, name } = splitDefinitionName(d);
    const alias = `${capitalize(namespaceOf(moduleNameOf(pkg)))}${name}`;
    if (byName.has(alias) || aliases.has(alias) || reserved.has(alias)) {
      throw new Error(`The alias ${alias} of ${d} is taken`);
    }
    aliases.set(alias, d);
  }
  return {
    byName: new Map([...byName.entries()].sort(([a], [b]) => compareStrings(a, b))),
    aliases: new Map([...aliases.entries()].sort(([a], [b]) => compareStrings(a, b))),
  };
}

function renderIndex(
  modules: Map<string, ModulePlan>,
  plan: ExportPlan,
  reserved: Set<string>,
  kubernetesVersion: string,
): string {
  const perModule = new Map<string, string[]>();
  const add = (definition: string, exported: string) => {
    const { pkg, name } = splitDefinitionName(definition);
    const module = moduleNameOf(pkg);
    const list = perModule.get(module) ?? [];
    list.push(name === exported ? name : `${name} as ${exported}`);
    perModule.set(module, list);
  };
  for (const [name, d] of plan.byName) add(d, name);
  for (const [alias, d] of plan.aliases) add(d, alias);
  const exportedName = (entry: string) => entry.split(" as ").pop()!;
  let text = header(kubernetesVersion, [
    "Re-exports of the generated types for the package root. A type name defined by one package",
    "is exported as is; of a name several packages define, core/v1's wins and the others are",
    "exported as `<Namespace><Name>` (e.g. `EventsV1Event`, `AutoscalingV2HorizontalPodAutoscaler`);",
    "names the hand-written modules export (e.g. `Status`, `WatchEvent`) are left to them and the",
    "generated types exported as `MetaV1Status`, …. Every package is also a namespace: `coreV1.Pod`.",
  ]);
  for (const [module, names] of [...perModule.entries()].sort(([a], [b]) => compareStrings(a, b))) {
    names.sort((a, b) => compareStrings(exportedName(a), exportedName(b)));
    text += `export type { ${names.join(", ")} } from "./${module}.ts";\n`;
  }
  for (const m of modules.values()) {
    if (reserved.has(m.namespace)) {
      throw new Error(`The namespace ${m.namespace} is taken by a hand-written export`);
    }
    text += `\n${jsDoc(`The types of the Go package \`${m.pkg}\`, as \`${m.namespace}.<Name>\`.`)}`;
    text += `export type * as ${m.namespace} from "./${m.name}.ts";\n`;
  }
  return text;
}

/**
 * Generates all files of generated/ from the OpenAPI documents.
 *
 * @param documents The documents (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`, …).
 * @param options The Kubernetes version and the names taken by hand-written modules.
 * @returns File contents by name, and counts.
 */
export function generate(documents: OpenApiDocument[], options: GenerateOptions): GeneratedFiles {
  const schemas = mergeSchemas(documents);
  const resources = collectResources(documents, schemas);
  const modules = planModules(schemas);
  const reserved = new Set(options.reservedNames ?? []);
  const files = new Map<string, string>();
  for (const plan of modules.values()) {
    files.set(`${plan.name}.ts`, renderModule(plan, schemas, options.kubernetesVersion));
  }
  const builders = renderBuilders(resources, schemas, options.kubernetesVersion);
  files.set("builders.ts", builders.text);
  const exportsPlan = planExports(schemas.keys(), reserved);
  files.set("mod.ts", renderIndex(modules, exportsPlan, reserved, options.kubernetesVersion));
  const kinds =
    [...schemas.values()].filter((s) => (s["x-kubernetes-group-version-kind"] ?? []).length > 0)
      .length;
  return {
    files: new Map([...files.entries()].sort(([a], [b]) => compareStrings(a, b))),
    stats: {
      types: schemas.size,
      kinds,
      resources: resources.length,
      builders: builders.count,
      modules: modules.size,
      aliases: [...exportsPlan.aliases.keys()],
    },
  };
}
