/**
 * The protobuf part of the code generator: reads the `generated.proto` files of the pinned
 * `k8s.io/api` and `k8s.io/apimachinery` modules (from the Go module cache) together with the Go
 * struct tags of the same packages, and writes `generated/protobuf.ts`: one table per protobuf
 * message that tells the decoder in `_client/protobuf/` how each field number maps to the JSON the API
 * server would have sent for the same object.
 *
 * The `.proto` files give the wire schema (field numbers, scalar types, messages, maps); the Go
 * tags give what protobuf cannot: the JSON name, `omitempty`/`omitzero`, `inline`, and whether a
 * field is a pointer (absent means `null`/omitted rather than a zero value). A proto field without
 * its Go field, or a Go type the tables cannot express, fails the generation with its name.
 *
 * @module
 */

import { compareStrings } from "./_codegen_types.ts";

/** The Go module versions the tables come from. */
export interface ProtoModules {
  /** Directory of `k8s.io/api@<version>` in the module cache. */
  api: string;
  /** Directory of `k8s.io/apimachinery@<version>`. */
  apimachinery: string;
  /** The version of both, e.g. `v0.36.3`. */
  version: string;
}

/** The packages of k8s.io/apimachinery whose messages the built-in types use. */
const APIMACHINERY_PACKAGES = [
  "pkg/apis/meta/v1",
  "pkg/runtime",
  "pkg/runtime/schema",
  "pkg/util/intstr",
  "pkg/api/resource",
];

/** k8s.io/api groups that are not served as resources (reviews sent to webhooks, discovery). */
const SKIPPED_GROUPS = new Set(["admission", "imagepolicy", "apidiscovery"]);

/** Messages decoded by hand (`_client/protobuf/`): their JSON is not a struct of their fields. */
const SPECIAL: Record<string, string> = {
  "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "t",
  "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "u",
  "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "d",
  "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "f",
  "k8s.io.apimachinery.pkg.api.resource.Quantity": "q",
  "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "x",
  "k8s.io.apimachinery.pkg.runtime.RawExtension": "r",
};

const SCALARS: Record<string, string> = {
  string: "s",
  bool: "b",
  int32: "i",
  int64: "l",
  bytes: "y",
  double: "g",
};

interface ProtoField {
  rule: "optional" | "repeated" | "map";
  type: string;
  /** For maps: the value type. */
  valueType?: string;
  name: string;
  number: number;
}

interface ProtoMessage {
  name: string;
  fields: ProtoField[];
}

interface ProtoFile {
  package: string;
  goPackage: string;
  messages: ProtoMessage[];
}

/**
 * Parses the subset of proto2 that go-to-protobuf writes: one package, flat messages, optional,
 * repeated and map fields, options and imports (ignored).
 *
 * @param text The file's content.
 * @param where The file name, for errors.
 * @returns The package and its messages.
 */
export function parseProto(text: string, where: string): ProtoFile {
  const clean = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  const pkg = clean.match(/^\s*package\s+([\w.]+)\s*;/m)?.[1];
  const goPackage = clean.match(/option\s+go_package\s*=\s*"([^"]+)"/)?.[1];
  if (!pkg || !goPackage) throw new Error(`${where}: no package or go_package`);
  const messages: ProtoMessage[] = [];
  const re = /\bmessage\s+(\w+)\s*\{([^{}]*)\}/g;
  let m;
  while ((m = re.exec(clean))) {
    const fields: ProtoField[] = [];
    for (const raw of m[2].split(";")) {
      const line = raw.trim();
      if (!line || line.startsWith("option ")) continue;
      let f = line.match(/^(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)(?:\s*\[[^\]]*\])?$/);
      if (f) {
        fields.push({
          rule: f[1] as "optional" | "repeated",
          type: f[2],
          name: f[3],
          number: Number(f[4]),
        });
        continue;
      }
      f = line.match(/^map\s*<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)$/);
      if (f) {
        if (f[1] !== "string") throw new Error(`${where}: ${m[1]}.${f[3]}: map key ${f[1]}`);
        fields.push({ rule: "map", type: "string", valueType: f[2], name: f[3], number: +f[4] });
        continue;
      }
      throw new Error(`${where}: message ${m[1]}: cannot read ${JSON.stringify(line)}`);
    }
    messages.push({ name: m[1], fields });
  }
  const rest = clean.replace(re, "").replace(/\b(syntax|package|import|option)\b[^;]*;/g, "");
  if (rest.trim()) {
    throw new Error(`${where}: unexpected ${JSON.stringify(rest.trim().slice(0, 80))}`);
  }
  return { package: pkg, goPackage, messages };
}

interface GoField {
  goName: string;
  goType: string;
  json: string;
  omitempty: boolean;
  omitzero: boolean;
  inline: boolean;
  protoNumber?: number;
}

interface GoPackage {
  structs: Map<string, GoField[]>;
  /** Named types declared as slices (`type Verbs []string`). */
  sliceTypes: Set<string>;
  groupName?: string;
}

function tagValue(tags: string, key: string): string | undefined {
  return tags.match(new RegExp(`(?:^|\\s)${key}:"([^"]*)"`))?.[1];
}

/**
 * Reads the struct declarations of one Go package: field names, types and `json`/`protobuf`
 * tags. Only what the tables need; the files are gofmt'ed, one field per line.
 *
 * @param files File name → content of the package's non-test Go files.
 * @returns The structs, the slice-typed names and the package's `GroupName`.
 */
export function parseGoPackage(files: Map<string, string>): GoPackage {
  const structs = new Map<string, GoField[]>();
  const sliceTypes = new Set<string>();
  let groupName: string | undefined;
  for (const [name, text] of files) {
    const group = text.match(/^const GroupName\s*=\s*"([^"]*)"/m);
    if (group) groupName = group[1];
    for (const alias of text.matchAll(/^type (\w+) \[\]\S+$/gm)) sliceTypes.add(alias[1]);
    const re = /^type (\w+) struct ?\{(?:\}|\n([\s\S]*?)^\})/gm;
    let m;
    while ((m = re.exec(text))) {
      const fields: GoField[] = [];
      for (const line of (m[2] ?? "").split("\n")) {
        const t = line.trim();
        if (!t || t.startsWith("//")) continue;
        const f = t.match(/^(?:(\w+)\s+)?([^\s`]+)\s*(?:`([^`]*)`)?\s*(?:\/\/.*)?$/);
        if (!f) {
          // Not an API type's field (several names, func types): only protobuf fields matter.
          if (t.includes('protobuf:"')) {
            throw new Error(`${name}: struct ${m[1]}: cannot read ${JSON.stringify(t)}`);
          }
          continue;
        }
        const goType = f[2];
        const goName = f[1] ?? goType.replace(/^\*/, "").replace(/^\w+\./, "");
        const tags = f[3] ?? "";
        const json = tagValue(tags, "json");
        const proto = tagValue(tags, "protobuf");
        const [jsonName, ...opts] = (json ?? "").split(",");
        fields.push({
          goName,
          goType,
          json: json === undefined ? goName : jsonName,
          omitempty: opts.includes("omitempty"),
          omitzero: opts.includes("omitzero"),
          inline: opts.includes("inline") || (!f[1] && json === undefined),
          protoNumber: proto && proto !== "-" ? Number(proto.split(",")[1]) : undefined,
        });
      }
      structs.set(m[1], fields);
    }
  }
  return { structs, sliceTypes, groupName };
}

async function readGoPackage(dir: string): Promise<GoPackage> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const n = entry.name;
    if (!entry.isFile || !n.endsWith(".go") || n.endsWith("_test.go")) continue;
    if (n.startsWith("zz_generated") || n.endsWith(".pb.go")) continue;
    files.set(n, await Deno.readTextFile(`${dir}/${n}`));
  }
  return parseGoPackage(files);
}

/** What the generator produced. */
export interface ProtobufTables {
  /** `protobuf.ts` → its source (not yet formatted). */
  source: string;
  /** Counts, for the summary line. */
  stats: { packages: number; messages: number; fields: number; kinds: number };
}

/** A short key of a proto package: `core/v1`, `meta/v1`, `runtime`, `intstr`, … */
function packageKey(pkg: string): string {
  if (pkg.startsWith("k8s.io.api.")) return pkg.slice("k8s.io.api.".length).replace(".", "/");
  const tail = pkg.replace("k8s.io.apimachinery.pkg.", "");
  if (tail === "apis.meta.v1") return "meta/v1";
  return tail.split(".").pop()!;
}

/**
 * Generates the decoder tables.
 *
 * @param modules Where the pinned modules are.
 * @returns The source of `generated/protobuf.ts` and counts.
 */
export async function generateProtobuf(modules: ProtoModules): Promise<ProtobufTables> {
  const dirs: { dir: string; group?: string }[] = [];
  for (const p of APIMACHINERY_PACKAGES) dirs.push({ dir: `${modules.apimachinery}/${p}` });
  const groups: string[] = [];
  for await (const g of Deno.readDir(modules.api)) if (g.isDirectory) groups.push(g.name);
  for (const group of groups.sort(compareStrings)) {
    if (SKIPPED_GROUPS.has(group)) continue;
    const versions: string[] = [];
    for await (const v of Deno.readDir(`${modules.api}/${group}`)) {
      if (v.isDirectory && /^v\d+$/.test(v.name)) versions.push(v.name);
    }
    for (const v of versions.sort(compareStrings)) {
      dirs.push({ dir: `${modules.api}/${group}/${v}`, group });
    }
  }

  const files: { proto: ProtoFile; go: GoPackage; dir: string }[] = [];
  for (const { dir } of dirs) {
    const protoPath = `${dir}/generated.proto`;
    const proto = parseProto(await Deno.readTextFile(protoPath), protoPath);
    files.push({ proto, go: await readGoPackage(dir), dir });
  }
  const byPackage = new Map(files.map((f) => [f.proto.package, f]));
  const messageIndex = new Map<string, ProtoMessage>();
  for (const f of files) {
    for (const m of f.proto.messages) messageIndex.set(`${f.proto.package}.${m.name}`, m);
  }

  const errors: string[] = [];
  const unmatched = new Map<string, string>();
  const referenced = new Set<string>();
  let fieldCount = 0;
  const packageTables: string[] = [];
  const kinds: string[] = [];

  const resolve = (type: string, pkg: string): string => {
    if (type.startsWith(".")) return type.slice(1);
    return `${pkg}.${type}`;
  };
  const refOf = (full: string, pkg: string): string => {
    const owner = full.slice(0, full.lastIndexOf("."));
    const name = full.slice(owner.length + 1);
    return owner === pkg ? name : `${packageKey(owner)}.${name}`;
  };

  for (const file of files) {
    const pkg = file.proto.package;
    const lines: string[] = [];
    for (const message of file.proto.messages) {
      const full = `${pkg}.${message.name}`;
      if (SPECIAL[full]) continue;
      const goFields = file.go.structs.get(message.name);
      if (!goFields) {
        // Timestamp (inside Time) and the like: no Go struct, decoded by the special kinds.
        if (pkg.endsWith("meta.v1") && ["Timestamp", "Fields"].includes(message.name)) continue;
        if (message.name === "Unknown" || message.name === "TypeMeta") {
          // runtime.Unknown and runtime.TypeMeta are read by the envelope decoder.
        } else if (message.fields.length === 1 && message.fields[0].name === "items") {
          continue; // A wrapper of a named slice type (Verbs, ExtraValue): inlined as "W".
        } else {
          // No Go struct (meta.v1.Patch, core.v1.List): an error only if a field refers to it.
          unmatched.set(full, `${full}: no Go struct ${message.name} in ${file.dir}`);
          continue;
        }
      }
      const specs: string[] = [];
      for (const field of message.fields) {
        const go = goFields?.find((g) => g.protoNumber === field.number) ??
          (goFields ? undefined : {
            goName: field.name,
            goType: field.type === "bytes" ? "[]byte" : field.type,
            json: field.name,
            omitempty: true,
            omitzero: false,
            inline: false,
          });
        if (!go) {
          unmatched.set(
            full,
            `${full}.${field.name} (${field.number}): no Go field with this number`,
          );
          continue;
        }
        if (go.json === "-") continue;
        const type = (t: string): string | undefined => {
          if (SCALARS[t]) return SCALARS[t];
          const target = resolve(t, pkg);
          if (SPECIAL[target]) return SPECIAL[target];
          referenced.add(target);
          const msg = messageIndex.get(target);
          if (!msg) {
            errors.push(`${full}.${field.name}: unknown type ${t}`);
            return undefined;
          }
          const owner = byPackage.get(target.slice(0, target.lastIndexOf(".")))!;
          if (
            msg.fields.length === 1 && msg.fields[0].name === "items" &&
            msg.fields[0].rule === "repeated" && owner.go.sliceTypes.has(msg.name)
          ) {
            const inner = type(msg.fields[0].type);
            return inner && `W${inner}`;
          }
          return `m${refOf(target, pkg)}`;
        };
        let kind = field.rule === "map" ? type(field.valueType!) : type(field.type);
        if (!kind) continue;
        if (field.rule === "map") kind = `M${kind}`;
        let flags = "";
        if (field.rule === "repeated") flags += "r";
        if (go.goType.startsWith("*")) flags += "p";
        if (go.omitempty) flags += "o";
        if (go.omitzero) flags += "z";
        if (go.inline) {
          if (!kind.startsWith("m")) errors.push(`${full}.${field.name}: inline non-message`);
          flags += "i";
        }
        if (field.rule === "repeated" && !go.goType.startsWith("[]")) {
          errors.push(`${full}.${field.name}: repeated but Go type ${go.goType}`);
        }
        const jsonName = go.inline ? field.name : go.json;
        if (!/^[\w$-]+$/.test(jsonName)) errors.push(`${full}: odd JSON name ${jsonName}`);
        specs.push(`${field.number}:${jsonName}:${kind}${flags ? `:${flags}` : ""}`);
        fieldCount++;
      }
      lines.push(`    ${message.name}: ${JSON.stringify(specs.join(" "))},`);
    }
    const key = packageKey(pkg);
    const groupName = file.go.groupName;
    const version = pkg.split(".").pop()!;
    let apiVersion = "";
    if (pkg.startsWith("k8s.io.api.")) {
      if (groupName === undefined) errors.push(`${file.dir}: no GroupName`);
      apiVersion = groupName ? `${groupName}/${version}` : version;
      kinds.push(`  ${JSON.stringify(apiVersion)}: ${JSON.stringify(key)},`);
    } else if (key === "meta/v1") {
      kinds.push(`  "meta.k8s.io/v1": "meta/v1",`);
    }
    packageTables.push(`  ${JSON.stringify(key)}: {\n${lines.join("\n")}\n  },`);
  }
  for (const [name, error] of unmatched) if (referenced.has(name)) errors.push(error);
  if (errors.length > 0) {
    throw new Error(`protobuf codegen failed:\n  ${errors.slice(0, 40).join("\n  ")}`);
  }
  const source = [
    "// Generated by `deno task codegen` (tools/codegen.ts, tools/_codegen_protobuf.ts) from the",
    `// generated.proto files and Go struct tags of k8s.io/api and k8s.io/apimachinery ${modules.version}.`,
    "// Do not edit: regenerate instead.",
    "//",
    "// One table per protobuf message, read by the decoder in _client/protobuf/: each field is",
    '// "number:jsonName:type[:flags]". Types: s string, b bool, i int32, l int64, g double,',
    "// y bytes (base64 in JSON), t Time, u MicroTime, d Duration, f FieldsV1, q Quantity,",
    "// x IntOrString, r RawExtension, m<Ref> a message (Ref is local or <package>.<Name>),",
    "// W<type> a named slice type (its JSON is the array), M<type> a map with string keys.",
    "// Flags: r repeated, p Go pointer, o omitempty, z omitzero, i inline (JSON embeds it).",
    "",
    "/** The Go module version of k8s.io/api and k8s.io/apimachinery the tables come from. */",
    `export const PROTOBUF_MODULE_VERSION = ${JSON.stringify(modules.version)};`,
    "",
    "/** Message tables by package key, then message name. */",
    "export const PROTOBUF_MESSAGES: Record<string, Record<string, string>> = {",
    ...packageTables,
    "};",
    "",
    "/** apiVersion → package key: the kinds of that group version are its message names. */",
    "export const PROTOBUF_API_VERSIONS: Record<string, string> = {",
    ...kinds,
    "};",
    "",
  ].join("\n");
  return {
    source,
    stats: {
      packages: files.length,
      messages: [...messageIndex.keys()].length,
      fields: fieldCount,
      kinds: kinds.length,
    },
  };
}

async function goEnv(name: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("go", {
      args: ["env", name],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    const value = new TextDecoder().decode(out.stdout).trim();
    return out.success && value ? value : undefined;
  } catch {
    return undefined;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Finds the pinned k8s.io/api and k8s.io/apimachinery in the Go module cache (the version the
 * test environment's go.mod pins), downloading them with `go mod download` when missing.
 *
 * @param goModUrl The go.mod whose pins count (testenv/apiserver/go.mod).
 * @returns The directories, or undefined with the reason when Go or the modules are missing.
 */
export async function findProtoModules(
  goModUrl: URL,
): Promise<ProtoModules | { missing: string }> {
  const goMod = await Deno.readTextFile(goModUrl);
  const version = goMod.match(/^\s*k8s\.io\/api\s+(v\S+)/m)?.[1];
  const machinery = goMod.match(/^\s*k8s\.io\/apimachinery\s+(v\S+)/m)?.[1];
  if (!version || version !== machinery) {
    return { missing: `${goModUrl.pathname} pins no matching k8s.io/api and apimachinery` };
  }
  const cache = (await goEnv("GOMODCACHE")) ??
    (Deno.env.get("HOME") ? `${Deno.env.get("HOME")}/go/pkg/mod` : undefined);
  if (!cache) return { missing: "Go is not installed (go env GOMODCACHE failed)" };
  const api = `${cache}/k8s.io/api@${version}`;
  const apimachinery = `${cache}/k8s.io/apimachinery@${version}`;
  if (!(await isDir(api)) || !(await isDir(apimachinery))) {
    try {
      const out = await new Deno.Command("go", {
        args: ["mod", "download", `k8s.io/api@${version}`, `k8s.io/apimachinery@${version}`],
        cwd: new URL(".", goModUrl),
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        return {
          missing: `go mod download k8s.io/api@${version} failed: ${
            new TextDecoder().decode(out.stderr).slice(-300)
          }`,
        };
      }
    } catch {
      return { missing: "Go is not installed (go mod download failed)" };
    }
  }
  return { api, apimachinery, version };
}
