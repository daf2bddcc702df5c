/**
 * Typed access to CustomResourceDefinitions written by others (Gateway API, cert-manager, …):
 * {@linkcode generate} turns CRDs into TypeScript modules with a zod schema per served version,
 * written-out interfaces with the schema's descriptions as JSDoc, and a ready
 * {@linkcode CustomResource} constant (group, version, plural, kind, scope, subresources) for
 * every client verb, `Reflector`, `Controller` and `client.apply`. The command is
 * `deno run -A jsr:@denokube/kube/crdgen/cli crds.yaml -o gen/`.
 *
 * The output is deterministic (same input, same bytes; formatted as `deno fmt` does) so it can
 * be committed and diffed. What a schema says that zod cannot check is kept in `.meta()` (so
 * `.crd()` of the constant gives the same structural schema back) and noted in the JSDoc (CEL
 * rules); what cannot be represented at all becomes `unknown` with a warning naming the JSON
 * path.
 *
 * @example Generate from a file and write the modules
 * ```ts ignore
 * import { generate, readCrds } from "@denokube/kube/crdgen";
 * import { writeFile } from "node:fs/promises";
 *
 * const { crds, warnings } = await readCrds(["gateway-api/standard-install.yaml"]);
 * const result = await generate(crds);
 * for (const w of [...warnings, ...result.warnings]) console.warn(formatWarning(w));
 * for (const file of result.files) await writeFile(`gen/${file.fileName}`, file.code);
 * ```
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { CustomResource, type CustomResourceDefinition } from "../custom_resource.ts";
import type { Client } from "../client.ts";
import { type CrdgenWarning, emitModule, type EmitOptions } from "./_emit.ts";

export type { CrdgenWarning, EmitOptions } from "./_emit.ts";
export { type RefinementContext, type ValueValidation, valueValidations } from "./validations.ts";

/** A CRD and where it came from. */
export interface CrdSource {
  /** A file path, a URL (with the document's index, e.g. `crds.yaml#2`) or `cluster`. */
  source: string;
  /** The definition. */
  crd: CustomResourceDefinition;
}

/**
 * Bad input: invalid YAML, a definition that is not apiextensions.k8s.io/v1, a missing field.
 * The message names the source (file and document), the CRD and version when known, the JSON
 * path, and what to do.
 */
export class CrdgenError extends Error {
  /** The file, URL or `cluster`. */
  readonly source: string;
  /** The CRD's name, when known. */
  readonly crd: string | undefined;
  /** The JSON path in the document, when known. */
  readonly path: string | undefined;

  /**
   * Creates the error.
   *
   * @param source The file, URL or `cluster`.
   * @param message What is wrong and how to fix it.
   * @param crd The CRD's name.
   * @param path The JSON path.
   * @param options The cause.
   */
  constructor(
    source: string,
    message: string,
    crd?: string,
    path?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${source}${crd ? `: CustomResourceDefinition ${crd}` : ""}${
        path ? ` at ${path}` : ""
      }: ${message}`,
      options,
    );
    this.name = "CrdgenError";
    this.source = source;
    this.crd = crd;
    this.path = path;
  }
}

/**
 * Formats a warning for a terminal: `file: CRD name (version) at path: message`.
 *
 * @param w The warning.
 * @returns One line.
 * @example
 * ```ts
 * import { formatWarning } from "@denokube/kube/crdgen";
 * console.log(formatWarning({ source: "a.yaml", crd: "foos.example.com", message: "…" }));
 * ```
 */
export function formatWarning(w: CrdgenWarning): string {
  return `${w.source}: ${w.crd}${w.version ? ` (${w.version})` : ""}${
    w.path ? ` at ${w.path}` : ""
  }: ${w.message}`;
}

/**
 * Reads the CRDs of a YAML or JSON text (several documents separated by `---`, or a `List`).
 * Documents that are not CustomResourceDefinitions are skipped with a warning.
 *
 * @param text The YAML or JSON text.
 * @param source The file name or URL, for messages.
 * @param warnings Collects the warnings.
 * @returns The definitions, in document order.
 * @throws {CrdgenError} On invalid YAML (with line and column), a v1beta1 definition, or a
 *   definition without group, names, scope or versions.
 * @example
 * ```ts
 * import { type CrdgenWarning, parseCrds } from "@denokube/kube/crdgen";
 * const warnings: CrdgenWarning[] = [];
 * const crds = parseCrds("kind: ConfigMap\napiVersion: v1\n", "a.yaml", warnings);
 * console.log(crds.length, warnings.length); // 0 1
 * ```
 */
export function parseCrds(text: string, source: string, warnings: CrdgenWarning[]): CrdSource[] {
  const out: CrdSource[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, index) => {
    const where = list.length > 1 ? `${source}#${index + 1}` : source;
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const pos = e.linePos?.[0];
      throw new CrdgenError(
        pos ? `${source}:${pos.line}:${pos.col}` : where,
        `invalid YAML: ${e.message.split("\n")[0]}. Fix the file (it must be YAML or JSON)`,
      );
    }
    const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
    if (value === null || value === undefined) return; // an empty document
    collect(value, where, out, warnings);
  });
  return out;
}

function collect(value: unknown, where: string, out: CrdSource[], warnings: CrdgenWarning[]) {
  if (typeof value !== "object" || Array.isArray(value) || value === null) {
    throw new CrdgenError(
      where,
      "the document is not an object: expected a CustomResourceDefinition",
    );
  }
  const o = value as Record<string, unknown>;
  if (typeof o.kind === "string" && o.kind.endsWith("List") && Array.isArray(o.items)) {
    o.items.forEach((item, i) => collect(item, `${where} items[${i}]`, out, warnings));
    return;
  }
  const name = (o.metadata as { name?: unknown } | undefined)?.name;
  const crdName = typeof name === "string" ? name : undefined;
  if (o.kind !== "CustomResourceDefinition") {
    warnings.push({
      source: where,
      crd: crdName ?? "(unnamed)",
      message: `skipped: a ${String(o.kind ?? "document without kind")} (${
        String(o.apiVersion ?? "no apiVersion")
      }), not a CustomResourceDefinition`,
    });
    return;
  }
  if (o.apiVersion !== "apiextensions.k8s.io/v1") {
    throw new CrdgenError(
      where,
      `apiVersion ${JSON.stringify(o.apiVersion)} is not supported: use an ` +
        "apiextensions.k8s.io/v1 definition (Kubernetes ≥ 1.16 serves them; `kubectl get crd " +
        "<name> -o yaml` prints one)",
      crdName,
      ".apiVersion",
    );
  }
  const spec = o.spec as Record<string, unknown> | undefined;
  const need = (ok: boolean, path: string, what: string) => {
    if (!ok) throw new CrdgenError(where, `${what} is missing or invalid`, crdName, path);
  };
  need(!!spec && typeof spec === "object", ".spec", "spec");
  need(typeof spec!.group === "string", ".spec.group", "the group (a string)");
  const names = spec!.names as Record<string, unknown> | undefined;
  need(!!names && typeof names === "object", ".spec.names", "names");
  need(typeof names!.kind === "string", ".spec.names.kind", "the kind");
  need(typeof names!.plural === "string", ".spec.names.plural", "the plural");
  need(spec!.scope === "Namespaced" || spec!.scope === "Cluster", ".spec.scope", "scope");
  need(
    Array.isArray(spec!.versions) && spec!.versions.length > 0,
    ".spec.versions",
    "the versions (a non-empty list)",
  );
  (spec!.versions as unknown[]).forEach((v, i) => {
    const version = v as Record<string, unknown>;
    need(typeof version?.name === "string", `.spec.versions[${i}].name`, "the version's name");
    const schema = (version.schema as { openAPIV3Schema?: unknown } | undefined)?.openAPIV3Schema;
    if (schema !== undefined) {
      need(
        typeof schema === "object" && schema !== null && !Array.isArray(schema),
        `.spec.versions[${i}].schema.openAPIV3Schema`,
        "the schema (an object)",
      );
    }
  });
  out.push({ source: where, crd: value as CustomResourceDefinition });
}

/**
 * Reads CRDs from files, directories (their `.yaml`, `.yml` and `.json` files, sorted) and
 * `http(s)://` URLs.
 *
 * @param inputs Paths and URLs.
 * @returns The definitions and the warnings (skipped documents).
 * @throws {CrdgenError} When an input cannot be read or parsed, naming it.
 * @example
 * ```ts ignore
 * const { crds } = await readCrds(["config/crd/standard", "https://example.com/crds.yaml"]);
 * ```
 */
export async function readCrds(
  inputs: string[],
): Promise<{ crds: CrdSource[]; warnings: CrdgenWarning[] }> {
  const crds: CrdSource[] = [];
  const warnings: CrdgenWarning[] = [];
  for (const input of inputs) {
    if (/^https?:\/\//.test(input)) {
      let text: string;
      try {
        const response = await fetch(input);
        if (!response.ok) {
          await response.body?.cancel();
          throw new Error(`HTTP ${response.status} ${response.statusText}`);
        }
        text = await response.text();
      } catch (e) {
        throw new CrdgenError(
          input,
          `cannot fetch: ${(e as Error).message}`,
          undefined,
          undefined,
          {
            cause: e,
          },
        );
      }
      crds.push(...parseCrds(text, input, warnings));
      continue;
    }
    let files: string[];
    try {
      const info = await stat(input);
      files = info.isDirectory()
        ? (await readdir(input)).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) =>
          join(input, f)
        )
        : [input];
    } catch (e) {
      throw new CrdgenError(input, `cannot read: ${(e as Error).message}`, undefined, undefined, {
        cause: e,
      });
    }
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (e) {
        throw new CrdgenError(file, `cannot read: ${(e as Error).message}`, undefined, undefined, {
          cause: e,
        });
      }
      crds.push(...parseCrds(text, file, warnings));
    }
  }
  return { crds, warnings };
}

/** Which CRDs {@linkcode fetchCrds} reads from the cluster. */
export interface CrdSelector {
  /** CRD names, e.g. `httproutes.gateway.networking.k8s.io`. */
  names?: string[];
  /** API groups: every CRD of these groups, e.g. `gateway.networking.k8s.io`. */
  groups?: string[];
}

/**
 * Reads CRDs from a live cluster, by name or by group (both may be given; nothing given means
 * every CRD).
 *
 * @param client The client.
 * @param selector The names and groups.
 * @param signal Aborts the reads.
 * @returns The definitions, sorted by name.
 * @throws {CrdgenError} When a named CRD does not exist or a group has none.
 * @example
 * ```ts ignore
 * await using client = await Client.infer();
 * const crds = await fetchCrds(client, { groups: ["cert-manager.io"] });
 * ```
 */
export async function fetchCrds(
  client: Client,
  selector: CrdSelector = {},
  signal?: AbortSignal,
): Promise<CrdSource[]> {
  const api = CustomResource.crdApi();
  const out = new Map<string, CustomResourceDefinition>();
  for (const name of selector.names ?? []) {
    try {
      out.set(name, await client.get(api, name, { signal }));
    } catch (e) {
      throw new CrdgenError("cluster", `cannot read: ${(e as Error).message}`, name, undefined, {
        cause: e,
      });
    }
  }
  const groups = selector.groups ?? [];
  if (groups.length > 0 || (selector.names ?? []).length === 0) {
    const list = await client.list(api, { signal });
    const found = new Set<string>();
    for (const crd of list.items) {
      if (groups.length === 0 || groups.includes(crd.spec.group)) {
        out.set(crd.metadata!.name!, crd);
        found.add(crd.spec.group);
      }
    }
    for (const group of groups) {
      if (!found.has(group)) {
        throw new CrdgenError(
          "cluster",
          `no CustomResourceDefinition of group ${group} is installed (kubectl get crd lists them)`,
        );
      }
    }
  }
  return [...out.keys()].sort().map((name) => ({ source: "cluster", crd: out.get(name)! }));
}

/** Options of {@linkcode generate}. */
export interface GenerateOptions extends EmitOptions {
  /**
   * Format the modules as `deno fmt` does (line width 100), with dprint's TypeScript plugin
   * (the formatter `deno fmt` is built on). Default true.
   */
  format?: boolean;
}

/** One generated module. */
export interface GeneratedFile {
  /** The file name: the CRD's name plus `.ts`, e.g. `httproutes.gateway.networking.k8s.io.ts`. */
  fileName: string;
  /** The CRD's name. */
  crd: string;
  /** The kind. */
  kind: string;
  /** The exported name of the preferred version's constant, e.g. `HTTPRoute`. */
  exportName: string;
  /** The TypeScript source. */
  code: string;
}

/**
 * Generates one TypeScript module per CRD (sorted by CRD name). Each has, per served version
 * `V` of kind `K`: `KVSpec`/`KVStatus` (a zod schema and an interface of the same name),
 * `KV` (a {@linkcode CustomResource} from `defineCustomResource`, and the object type), and
 * `K`/`KSpec`/`KStatus` for the storage version.
 *
 * @param crds Definitions, or definitions with their sources.
 * @param options Import specifiers, descriptions, formatting.
 * @returns The files and the warnings (each names source, CRD, version and JSON path).
 * @throws {CrdgenError} When two inputs define the same CRD differently.
 * @example
 * ```ts ignore
 * const { files, warnings } = await generate((await readCrds(["crds.yaml"])).crds);
 * ```
 */
export async function generate(
  crds: (CrdSource | CustomResourceDefinition)[],
  options: GenerateOptions = {},
): Promise<{ files: GeneratedFile[]; warnings: CrdgenWarning[] }> {
  const warnings: CrdgenWarning[] = [];
  const byName = new Map<string, CrdSource>();
  for (const item of crds) {
    const entry: CrdSource = "crd" in item && "source" in item
      ? item as CrdSource
      : { source: "(argument)", crd: item as CustomResourceDefinition };
    const name = entry.crd.metadata?.name ??
      `${entry.crd.spec.names.plural}.${entry.crd.spec.group}`;
    const seen = byName.get(name);
    if (seen && JSON.stringify(seen.crd.spec) !== JSON.stringify(entry.crd.spec)) {
      throw new CrdgenError(
        entry.source,
        `defined differently in ${seen.source}: give each CRD once`,
        name,
      );
    }
    byName.set(name, entry);
  }
  const format = options.format === false ? undefined : await formatter();
  const files: GeneratedFile[] = [];
  for (const name of [...byName.keys()].sort()) {
    const { source, crd } = byName.get(name)!;
    const module = emitModule(crd, source, options, warnings);
    const code = format ? format(module.fileName, module.code) : module.code;
    files.push({ ...module, code });
  }
  return { files, warnings };
}

let cachedFormatter: ((fileName: string, code: string) => string) | undefined;

async function formatter(): Promise<(fileName: string, code: string) => string> {
  if (cachedFormatter) return cachedFormatter;
  const [{ createFromBuffer }, { getPath }] = await Promise.all([
    import("@dprint/formatter"),
    import("@dprint/typescript"),
  ]);
  const wasm = await readFile(getPath());
  const f = createFromBuffer(new Uint8Array(wasm));
  f.setConfig({}, { deno: true, lineWidth: 100 });
  cachedFormatter = (fileName, code) => f.formatText({ filePath: fileName, fileText: code });
  return cachedFormatter;
}
