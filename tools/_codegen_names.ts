// Naming rules of the code generator: OpenAPI definition names → files, namespaces and type
// names; group/version/kind → builder names. Pure functions, unit-tested in
// tests/unit/codegen_names.test.ts.

/** A definition name split into its Go package and its type name. */
export interface DefinitionName {
  /** The package part, e.g. `io.k8s.api.core.v1`. */
  pkg: string;
  /** The type name, e.g. `Pod`. */
  name: string;
}

/**
 * Splits an OpenAPI definition name at its last dot.
 *
 * @param definition E.g. `io.k8s.api.core.v1.Pod`.
 * @returns `{ pkg: "io.k8s.api.core.v1", name: "Pod" }`.
 */
export function splitDefinitionName(definition: string): DefinitionName {
  const dot = definition.lastIndexOf(".");
  if (dot <= 0 || dot === definition.length - 1) {
    throw new Error(`Unexpected OpenAPI definition name ${JSON.stringify(definition)}`);
  }
  return { pkg: definition.slice(0, dot), name: definition.slice(dot + 1) };
}

/** The definition name a `$ref` points to (`#/components/schemas/<name>`). */
export function refTarget(ref: string): string {
  const prefix = "#/components/schemas/";
  if (!ref.startsWith(prefix)) throw new Error(`Unsupported $ref ${JSON.stringify(ref)}`);
  return decodeURIComponent(ref.slice(prefix.length));
}

const VERSION = /^v\d+(?:(?:alpha|beta)\d+)?$/;

function snake(parts: string[]): string {
  return parts.join("_").replace(/[^A-Za-z0-9]+/g, "_").toLowerCase();
}

/**
 * The file (without `.ts`) that holds a Go package's definitions:
 *
 * - `io.k8s.api.<group>.<version>` → `<group>_<version>` (`core_v1`, `apps_v1`)
 * - `io.k8s.<repo>.pkg.apis.<group>.<version>` → `<group>_<version>` (`meta_v1`,
 *   `apiextensions_v1`, `apiregistration_v1`)
 * - other `io.k8s.apimachinery.pkg.*` packages → `apimachinery_<last segment>`
 *   (`apimachinery_resource` for Quantity, `apimachinery_intstr`, `apimachinery_runtime`,
 *   `apimachinery_version`)
 *
 * @param pkg The package part of a definition name.
 * @returns The module base name, lower snake case.
 */
export function moduleNameOf(pkg: string): string {
  const parts = pkg.split(".");
  const last = parts[parts.length - 1];
  if (parts[0] === "io" && parts[1] === "k8s") {
    if (parts[2] === "api" && VERSION.test(last) && parts.length >= 5) {
      return snake(parts.slice(3));
    }
    const apis = parts.indexOf("apis");
    if (apis > 0 && parts[apis - 1] === "pkg" && VERSION.test(last) && apis < parts.length - 2) {
      return snake(parts.slice(apis + 1));
    }
    if (parts[2] === "apimachinery" && parts[3] === "pkg" && parts.length > 4) {
      return snake(["apimachinery", last]);
    }
    return snake(parts.slice(2));
  }
  return snake(parts);
}

/** Upper-cases the first character. */
export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * lowerCamelCase of words separated by `_`, `-`, `.` or other non-alphanumerics; the first word
 * is kept lower case, the others capitalized (`core_v1` → `coreV1`,
 * `flowcontrol.apiserver` → `flowcontrolApiserver`).
 *
 * @param text The words.
 * @returns The camel-cased identifier.
 */
export function camel(text: string): string {
  const words = text.split(/[^A-Za-z0-9]+/).filter((w) => w !== "");
  return words.map((w, i) => (i === 0 ? w.charAt(0).toLowerCase() + w.slice(1) : capitalize(w)))
    .join("");
}

/**
 * The namespace under which a module's types are re-exported: the camel-cased module name
 * (`core_v1` → `coreV1`, `apimachinery_intstr` → `apimachineryIntstr`).
 *
 * @param moduleName A name from {@linkcode moduleNameOf}.
 * @returns The namespace identifier.
 */
export function namespaceOf(moduleName: string): string {
  return camel(moduleName);
}

/**
 * The group part of a builder name: the group without a `.k8s.io` suffix, camel-cased at dots
 * and dashes (`""` → `""`, `apps` → `apps`, `rbac.authorization.k8s.io` → `rbacAuthorization`,
 * `flowcontrol.apiserver.k8s.io` → `flowcontrolApiserver`).
 *
 * @param group The API group.
 * @returns The camel-cased group.
 */
export function groupCamel(group: string): string {
  return camel(group.replace(/\.k8s\.io$/, ""));
}

/**
 * The group-qualified builder name `<groupCamel><Version><Kind>` (`appsV1Deployment`,
 * `rbacAuthorizationV1ClusterRole`); for the core group, where the group part is empty,
 * `<version><Kind>` (`v1Pod`).
 *
 * @param group The API group (`""` for core).
 * @param version The version, e.g. `v1`.
 * @param kind The kind, e.g. `Deployment`.
 * @returns The builder name.
 */
export function qualifiedBuilderName(group: string, version: string, kind: string): string {
  const g = groupCamel(group);
  return g === "" ? `${version}${kind}` : `${g}${capitalize(version)}${kind}`;
}

/**
 * The short builder name `<version><Kind>` (`v1Deployment`), used for core kinds and for group
 * kinds whose version and kind no other group serves.
 *
 * @param version The version.
 * @param kind The kind.
 * @returns The builder name.
 */
export function shortBuilderName(version: string, kind: string): string {
  return `${version}${kind}`;
}

/** A served group/version/kind. */
export interface GroupVersionKind {
  /** API group, `""` for core. */
  group: string;
  /** Version. */
  version: string;
  /** Kind. */
  kind: string;
}

/**
 * Decides which resources get a short builder name: core kinds always (their qualified name is
 * already short), a group kind when exactly one group serves its version and kind and the core
 * group does not.
 *
 * @param resources The served kinds.
 * @returns Map from `group/version/kind` key (see {@linkcode gvkKey}) to short name, for those
 *   that get one besides their qualified name.
 */
export function shortBuilderNames(resources: GroupVersionKind[]): Map<string, string> {
  const byShort = new Map<string, GroupVersionKind[]>();
  for (const r of resources) {
    const short = shortBuilderName(r.version, r.kind);
    const list = byShort.get(short) ?? [];
    if (!list.some((x) => gvkKey(x) === gvkKey(r))) list.push(r);
    byShort.set(short, list);
  }
  const result = new Map<string, string>();
  for (const [short, list] of byShort) {
    if (list.some((r) => r.group === "")) continue; // core wins; its name is short already
    if (list.length === 1) result.set(gvkKey(list[0]), short);
  }
  return result;
}

/**
 * A stable key of a group/version/kind.
 *
 * @param gvk The group, version and kind.
 * @returns `group/version/kind`.
 */
export function gvkKey(gvk: GroupVersionKind): string {
  return `${gvk.group}/${gvk.version}/${gvk.kind}`;
}

/**
 * The `apiVersion` of a group and version: `v1` for core, `apps/v1` otherwise.
 *
 * @param group The group.
 * @param version The version.
 * @returns The apiVersion string.
 */
export function apiVersionOf(group: string, version: string): string {
  return group === "" ? version : `${group}/${version}`;
}

const ABBREVIATIONS = /(?:^|[\s(])(?:e\.g|i\.e|vs|cf)\.$/i;

/**
 * The first sentence of a description: up to the first `.`, `!` or `?` followed by whitespace or
 * the end (skipping abbreviations like `e.g.`), or up to the first blank line; whitespace
 * collapsed.
 *
 * @param description The text.
 * @returns The first sentence, or `""`.
 */
export function firstSentence(description: string | undefined): string {
  if (!description) return "";
  const paragraph = description.trim().split(/\n\s*\n/)[0];
  const text = paragraph.replace(/\s+/g, " ").trim();
  const end = /[.!?](?=\s|$)/g;
  for (let m = end.exec(text); m !== null; m = end.exec(text)) {
    const candidate = text.slice(0, m.index + 1);
    if (ABBREVIATIONS.test(candidate)) continue;
    return candidate;
  }
  return text;
}

/** Whether a string can be used as a TypeScript property name without quotes. */
export function isIdentifier(name: string): boolean {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name);
}

/**
 * A property key as written in an interface: bare when it is an identifier, quoted otherwise.
 *
 * @param name The JSON property name.
 * @returns The key.
 */
export function propertyKey(name: string): string {
  return isIdentifier(name) ? name : JSON.stringify(name);
}
