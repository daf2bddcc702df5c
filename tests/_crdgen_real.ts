// Shared by the unit and e2e tests of crdgen on real CRDs: generates the modules of the pinned
// Gateway API and cert-manager CRDs into tests/.crdgen/ (git-ignored; inside the repository so
// that `@denokube/kube` and `zod` resolve as they do for users), imports them, and reads the
// Gateway API's own example objects.

import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { CustomResource } from "../custom_resource.ts";
import type { KubeObject } from "../api.ts";
import { type CrdSource, generate, type GeneratedFile, readCrds } from "../crdgen/mod.ts";
import type { CrdgenWarning } from "../crdgen/_emit.ts";
import { type CrdModuleDirs, crdModuleDirs } from "../testenv/crd_modules.ts";

/** Where the generated modules are written. */
export const OUT_DIR = new URL("./.crdgen/real/", import.meta.url).pathname;

/** The generated modules, imported. */
export interface RealModules {
  dirs: CrdModuleDirs;
  crds: CrdSource[];
  readWarnings: CrdgenWarning[];
  files: GeneratedFile[];
  warnings: CrdgenWarning[];
  /** `group/version/Kind` → the generated constant. */
  resources: Map<string, CustomResource<unknown, unknown>>;
  /** The Gateway API's example objects (file, object). */
  examples: { file: string; object: KubeObject & Record<string, unknown> }[];
}

/**
 * Generates, writes and imports the modules of the real CRDs.
 *
 * @returns Everything the tests need.
 */
export async function realModules(): Promise<RealModules> {
  const dirs = await crdModuleDirs();
  const { crds, warnings: readWarnings } = await readCrds([dirs.gatewayCrds, dirs.certManagerCrds]);
  const { files, warnings } = await generate(crds);
  await rm(OUT_DIR, { recursive: true, force: true });
  await mkdir(OUT_DIR, { recursive: true });
  for (const file of files) await writeFile(join(OUT_DIR, file.fileName), file.code);
  // README's typed HTTPRoute controller, type-checked against the generated module.
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("A typed HTTPRoute controller"));
  const example = /```ts ignore\n([\s\S]*?)```/.exec(section)?.[1];
  if (!example) throw new Error("README.md: the typed HTTPRoute controller example is missing");
  await writeFile(join(OUT_DIR, "readme_controller.ts"), example.replaceAll("./gen/", "./"));
  const resources = new Map<string, CustomResource<unknown, unknown>>();
  for (const file of files) {
    const module = await import(`file://${join(OUT_DIR, file.fileName)}`) as Record<
      string,
      unknown
    >;
    for (const value of Object.values(module)) {
      const r = value as CustomResource<unknown, unknown>;
      if (r && typeof r === "object" && typeof r.parse === "function" && r.group) {
        resources.set(`${r.group}/${r.version}/${r.kind}`, r);
      }
    }
  }
  const examples: RealModules["examples"] = [];
  for (const file of await yamlFiles(dirs.gatewayExamples)) {
    for (
      const doc of parseAllDocuments(await readFile(file, "utf8")) as unknown as {
        toJS(): unknown;
      }[]
    ) {
      const object = doc.toJS() as KubeObject & Record<string, unknown>;
      if (object && typeof object === "object" && object.kind) {
        examples.push({ file: file.slice(dirs.gatewayExamples.length + 1), object });
      }
    }
  }
  return { dirs, crds, readWarnings, files, warnings, resources, examples };
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (
    const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1
    )
  ) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out;
}

/**
 * The generated constant of an object's apiVersion and kind.
 *
 * @param m The modules.
 * @param object The object.
 * @returns The constant, or undefined for kinds not generated (Services, Namespaces, …).
 */
export function resourceOf(
  m: RealModules,
  object: KubeObject,
): CustomResource<unknown, unknown> | undefined {
  return m.resources.get(`${object.apiVersion}/${object.kind}`);
}
