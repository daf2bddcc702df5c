/**
 * The crdgen command: generates a TypeScript module per CustomResourceDefinition from YAML or
 * JSON files, directories, URLs, or a live cluster.
 *
 * ```sh
 * deno run -A jsr:@denokube/kube/crdgen/cli config/crd/standard -o gen/
 * deno run -A jsr:@denokube/kube/crdgen/cli --cluster --group cert-manager.io -o gen/
 * ```
 *
 * Options: `-o, --out <dir>` (required), `--cluster` (read CRDs through the kubeconfig),
 * `--crd <name>` and `--group <group>` (repeatable, with `--cluster`), `--no-descriptions`
 * (leave descriptions out of the zod schemas; the interfaces keep them), `--import <specifier>`
 * (where generated code imports `defineCustomResource` from; default `@denokube/kube`),
 * `--check` (write nothing; exit 1 when a file would change: for CI). Warnings go to stderr.
 *
 * @example Run it from code
 * ```ts ignore
 * import { main } from "@denokube/kube/crdgen/cli";
 * const code = await main(["crds.yaml", "-o", "gen"]);
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { Client } from "../client.ts";
import {
  type CrdgenWarning,
  type CrdSource,
  fetchCrds,
  formatWarning,
  generate,
  readCrds,
} from "./mod.ts";

const USAGE = `usage: crdgen <file|dir|url>... -o <dir> [options]
       crdgen --cluster [--crd <name>]... [--group <group>]... -o <dir> [options]

  -o, --out <dir>       where to write one module per CRD (<plural>.<group>.ts)
  --cluster             read the CRDs from the cluster of the kubeconfig (KUBECONFIG, ~/.kube/config)
  --crd <name>          with --cluster: this CRD (repeatable)
  --group <group>       with --cluster: every CRD of this group (repeatable)
  --no-descriptions     keep descriptions out of the zod schemas (the interfaces keep them)
  --import <specifier>  where generated code imports @denokube/kube from
  --check               write nothing; exit 1 when a generated file would change
  -h, --help            this text`;

/**
 * Runs the command.
 *
 * @param args The arguments (without the program name).
 * @param out Where messages go (default: stdout/stderr).
 * @returns The exit code: 0 done, 1 check found changes or an error, 2 usage error.
 * @example
 * ```ts ignore
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(
  args: string[],
  out: { log(line: string): void; error(line: string): void } = console,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: "string", short: "o" },
        cluster: { type: "boolean" },
        crd: { type: "string", multiple: true },
        group: { type: "string", multiple: true },
        "no-descriptions": { type: "boolean" },
        import: { type: "string" },
        check: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    out.error(`crdgen: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.log(USAGE);
    return 0;
  }
  if (!values.out) {
    out.error(`crdgen: -o <dir> is missing\n${USAGE}`);
    return 2;
  }
  if (!values.cluster && positionals.length === 0) {
    out.error(`crdgen: name CRD files, directories or URLs, or use --cluster\n${USAGE}`);
    return 2;
  }
  if (!values.cluster && (values.crd || values.group)) {
    out.error("crdgen: --crd and --group select CRDs of a cluster: add --cluster");
    return 2;
  }
  try {
    const crds: CrdSource[] = [];
    const warnings: CrdgenWarning[] = [];
    if (positionals.length > 0) {
      const read = await readCrds(positionals);
      crds.push(...read.crds);
      warnings.push(...read.warnings);
    }
    if (values.cluster) {
      // No `await using` here: Node 20 and 22 cannot parse it.
      const client = await Client.infer();
      try {
        crds.push(...await fetchCrds(client, { names: values.crd, groups: values.group }));
      } finally {
        client.close();
      }
    }
    if (crds.length === 0) {
      for (const w of warnings) out.error(`warning: ${formatWarning(w)}`);
      out.error("crdgen: no CustomResourceDefinition found in the input");
      return 1;
    }
    const result = await generate(crds, {
      descriptions: !values["no-descriptions"],
      ...(values.import ? { kubeImport: values.import } : {}),
    });
    for (const w of [...warnings, ...result.warnings]) out.error(`warning: ${formatWarning(w)}`);
    let changed = 0;
    if (!values.check) await mkdir(values.out, { recursive: true });
    for (const file of result.files) {
      const path = join(values.out, file.fileName);
      const old = await readFile(path, "utf8").catch(() => undefined);
      if (old === file.code) continue;
      changed++;
      if (values.check) out.error(`${path}: would change`);
      else {
        await writeFile(path, file.code);
        out.log(`${path}: ${file.kind} (${file.exportName})`);
      }
    }
    if (values.check) return changed > 0 ? 1 : 0;
    out.log(`crdgen: ${result.files.length} modules, ${changed} written`);
    return 0;
  } catch (e) {
    out.error(`crdgen: ${(e as Error).message}`);
    return 1;
  }
}

// deno-lint-ignore no-explicit-any
const meta = import.meta as any;
if (meta.main === true || (meta.main === undefined && isEntry())) {
  process.exitCode = await main(process.argv.slice(2));
}

function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  const url = new URL(meta.url as string);
  return url.protocol === "file:" && decodeURIComponent(url.pathname) === entry;
}
