// crdgen: bad input names file, CRD, version and JSON path; every structural-schema construct is
// generated faithfully (quoted names, collisions, int-or-string, maps, value validations, …);
// and the round trip zod → CRD (defineCustomResource) → generated zod → CRD gives the same
// structural schema, as a seeded property test over randomly built schemas.

import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { z } from "zod";
import { test } from "../_test.ts";
import {
  CrdgenError,
  type CrdgenWarning,
  formatWarning,
  generate,
  parseCrds,
  valueValidations,
} from "../../crdgen/mod.ts";
import {
  type CustomResource,
  type CustomResourceDefinition,
  defineCustomResource,
} from "../../custom_resource.ts";

const DIR = new URL("../.crdgen/unit/", import.meta.url).pathname;

async function importAll(
  files: { fileName: string; code: string }[],
  sub: string,
): Promise<Record<string, unknown>[]> {
  const dir = `${DIR}${sub}/`;
  await mkdir(dir, { recursive: true });
  const modules = [];
  for (const f of files) {
    await writeFile(`${dir}${f.fileName}`, f.code);
    modules.push(await import(`file://${dir}${f.fileName}`));
  }
  return modules;
}

test("crdgen: bad input names the file, the document, the CRD and the JSON path", () => {
  const warnings: CrdgenWarning[] = [];
  assert.throws(
    () => parseCrds("a: [1, 2\nb: c\n", "bad.yaml", warnings),
    (e) => e instanceof CrdgenError && /^bad\.yaml:\d+:\d+: invalid YAML/.test(e.message),
  );
  assert.deepEqual(
    parseCrds("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "a.yaml", warnings),
    [],
  );
  assert.match(
    formatWarning(warnings[0]),
    /^a\.yaml: x: skipped: a ConfigMap \(v1\), not a CustomResourceDefinition$/,
  );
  assert.throws(
    () =>
      parseCrds(
        "apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata: {name: foos.example.com}\n",
        "old.yaml",
        [],
      ),
    /old\.yaml: CustomResourceDefinition foos\.example\.com at \.apiVersion: apiVersion "apiextensions\.k8s\.io\/v1beta1" is not supported/,
  );
  const missing =
    "---\napiVersion: v1\nkind: Namespace\n---\napiVersion: apiextensions.k8s.io/v1\n" +
    "kind: CustomResourceDefinition\nmetadata: {name: foos.example.com}\n" +
    "spec: {group: example.com, names: {kind: Foo, plural: foos}, scope: Namespaced, versions: [{served: true}]}\n";
  assert.throws(
    () => parseCrds(missing, "m.yaml", []),
    /m\.yaml#2: CustomResourceDefinition foos\.example\.com at \.spec\.versions\[0\]\.name: the version's name is missing/,
  );
});

function crdOf(
  schema: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "widgets.example.com" },
    spec: {
      group: "example.com",
      names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
      scope: "Namespaced",
      versions: [
        { name: "v1alpha1", served: false, storage: false },
        {
          name: "v1",
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: "object",
              properties: {
                spec: schema,
                status: { type: "object", properties: { ready: { type: "boolean" } } },
              },
              required: ["spec"],
            },
          },
          ...extra,
        },
      ],
    },
  } as CustomResourceDefinition;
}

test("crdgen: structural constructs, names, warnings with JSON paths, parse, .crd()", async () => {
  const crd = crdOf({
    type: "object",
    description: "A widget. Ends a comment */ here.",
    required: ["size"],
    properties: {
      size: { type: "integer", format: "int32", minimum: 1, maximum: 10, default: 3 },
      "app.kubernetes.io/name": { type: "string", maxLength: 63 },
      "foo-bar": { type: "object", properties: { a: { type: "string" } } },
      fooBar: { type: "object", properties: { b: { type: "string" } } },
      quantity: {
        "x-kubernetes-int-or-string": true,
        anyOf: [{ type: "integer" }, { type: "string" }],
        pattern:
          "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
      },
      labels: { type: "object", additionalProperties: { type: "string" } },
      free: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      template: {
        type: "object",
        "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true,
      },
      mode: { type: "string", enum: ["Fast", "Safe"], nullable: true },
      when: { type: "string", format: "date-time" },
      cidr: { type: "string", format: "cidr" },
      caseless: { type: "string", pattern: "(?i)^abc$" },
      re2only: { type: "string", pattern: "^a\\z" },
      oddExtension: { type: "string", "x-kubernetes-frobnicate": true },
      untyped: { description: "no type" },
      ports: {
        type: "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        items: {
          type: "object",
          required: ["name"],
          properties: { name: { type: "string" }, port: { type: "integer" } },
        },
      },
      target: {
        type: "object",
        oneOf: [{ required: ["a"] }, { required: ["b"] }],
        properties: { a: { type: "string" }, b: { type: "string" } },
        "x-kubernetes-validations": [{ rule: "self.a != 'x'", message: "a must not be x" }],
      },
    },
  });
  const { files, warnings } = await generate([{ source: "w.yaml", crd }]);
  assert.deepEqual(
    warnings.map(formatWarning),
    [
      "w.yaml: widgets.example.com (v1) at .spec.oddExtension: unknown extension x-kubernetes-frobnicate: copied into the schema's .meta() as it is, not checked by the generated schema. Check its spelling, or ignore this warning for an extension newer than this generator",
      'w.yaml: widgets.example.com (v1) at .spec.re2only: the pattern "^a\\\\z" is not a JavaScript regular expression: the generated schema does not check it (the API server does)',
      "w.yaml: widgets.example.com (v1) at .spec.untyped: a node without type is not structural (add type, x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields): typed unknown",
    ],
  );
  const code = files[0].code;
  assert.match(code, /"app\.kubernetes\.io\/name"\?: string;/);
  assert.match(code, /export interface WidgetV1SpecFooBar \{/);
  assert.match(code, /export interface WidgetV1SpecFooBar2 \{/);
  assert.match(code, /Ends a comment \*\\\/ here\./);
  assert.match(code, /A quantity, e\.g\. `500m`/);
  assert.match(code, /- `self\.a != 'x'`: a must not be x/);
  assert.match(code, /Version v1alpha1 is not served/);
  // What could not be represented says so where the field is declared, too.
  assert.match(
    code,
    /\* crdgen: a node without type is not structural[^\n]*\n\s*\*\/\n\s*untyped\?: unknown;/,
  );
  // Without descriptions in the schemas, the interfaces keep them.
  const lean = (await generate([{ source: "w.yaml", crd }], { descriptions: false })).files[0].code;
  assert.doesNotMatch(lean, /description:/);
  assert.match(lean, /A widget\. Ends a comment/);
  const [module] = await importAll(files, "constructs");
  const Widget = module.Widget as CustomResource<Record<string, unknown>, unknown>;
  assert.equal(module.WidgetV1, Widget);
  const ok = {
    metadata: { name: "w" },
    spec: {
      quantity: "500m",
      mode: null,
      ports: [{ name: "a" }],
      target: { a: "y" },
      caseless: "ABC",
    },
  };
  assert.equal(Widget.parse({ ...ok, spec: { ...ok.spec, size: 4 } }).spec.size, 4);
  // size is required with a default: the server fills it in, so a stored object always has it.
  assert.throws(() => Widget.parse(ok), /spec\.size: required, but missing/);
  (ok.spec as Record<string, unknown>).size = 3;
  for (
    const [spec, field] of [
      [{ ...ok.spec, size: 11 }, /spec\.size/],
      [{ ...ok.spec, quantity: "5 apples" }, /spec\.quantity/],
      [{ ...ok.spec, target: { a: "1", b: "2" } }, /spec\.target: oneOf: matches 2/],
      [{ ...ok.spec, mode: "Slow" }, /spec\.mode/],
      [{ ...ok.spec, when: "yesterday" }, /spec\.when/],
      [{ ...ok.spec, labels: { a: 1 } }, /spec\.labels\.a/],
    ] as const
  ) {
    assert.throws(() => Widget.parse({ ...ok, spec }), field);
  }
  // The same input gives the same bytes.
  assert.equal((await generate([{ source: "w.yaml", crd }])).files[0].code, code);
  // The structural schema survives: .crd() gives back what came in (but the unrepresentable node).
  const back = Widget.crd().spec.versions[0].schema!.openAPIV3Schema.properties!.spec;
  const sent = structuredClone(crd.spec.versions[1].schema!.openAPIV3Schema.properties!.spec);
  sent.properties!.untyped = {
    description: "no type",
    "x-kubernetes-preserve-unknown-fields": true,
  };
  // A nullable enum comes back in the form the API server can check (the server checks enum
  // even on null, and allOf not): the same values, in allOf.
  sent.properties!.mode = { type: "string", nullable: true, allOf: [{ enum: ["Fast", "Safe"] }] };
  assert.deepEqual(back, sent);
  await rm(DIR, { recursive: true, force: true });
});

test("crdgen: valueValidations checks what zod cannot, and skips null", () => {
  const schema = z.object({ a: z.string().optional(), b: z.string().optional() }).nullable()
    .superRefine(
      valueValidations({ oneOf: [{ required: ["a"] }, { required: ["b"] }], maxProperties: 1 }),
    );
  assert.equal(schema.safeParse({ a: "x" }).success, true);
  assert.equal(schema.safeParse(null).success, true);
  assert.equal(schema.safeParse({}).success, false);
  const not = z.object({ t: z.string() }).superRefine(
    valueValidations({ properties: { t: { not: { enum: ["x"] } } } }),
  );
  assert.equal(not.safeParse({ t: "x" }).success, false);
  assert.equal(not.safeParse({ t: "y" }).success, true);
});

// ---------------------------------------------------------------------------------------------
// The round trip, over random schemas

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// deno-lint-ignore no-explicit-any
type Zod = any;

function randomSchemas(seed: number) {
  const r = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const chance = (p: number) => r() < p;
  let fieldNo = 0;
  const leaf = (): Zod => {
    switch (Math.floor(r() * 13)) {
      case 0: {
        let s = z.string();
        if (chance(0.5)) s = s.min(1);
        if (chance(0.5)) s = s.max(20);
        if (chance(0.4)) s = s.regex(/^[a-z][a-z0-9-]*$/);
        return s;
      }
      case 1:
        return pick([
          z.email(),
          z.iso.datetime({ offset: true }),
          z.ipv4(),
          z.uuidv4(),
          z.base64(),
        ]);
      case 2: {
        let n = z.int();
        if (chance(0.5)) n = n.min(0);
        if (chance(0.5)) n = n.max(100);
        return n;
      }
      case 3:
        return z.int32().min(-5);
      case 4:
        return z.number().gt(0).lt(1);
      case 5:
        return z.boolean();
      case 6:
        return z.enum(["A", "B", "C"].slice(0, 1 + Math.floor(r() * 3)));
      case 7:
        return z.literal([1, 2]);
      case 8:
        return z.union([z.int(), z.string().regex(/^[0-9]+%$/)]);
      case 9:
        return z.enum(["x", "y"]).nullable();
      case 10:
        return z.float64().multipleOf(0.5);
      case 11:
        return z.unknown();
      default:
        return z.string().describe(`field ${fieldNo}: "quoted", multi\nline`);
    }
  };
  const node = (depth: number): Zod => {
    const k = depth >= 3 ? 0 : Math.floor(r() * 7);
    switch (k) {
      case 1:
        return object(depth + 1);
      case 2: {
        const item = chance(0.5) ? leaf() : object(depth + 1);
        let a = z.array(item);
        if (chance(0.3)) a = a.min(1);
        if (chance(0.3)) a = a.max(5);
        if (item._zod.def.type === "string" && chance(0.5)) {
          return a.meta({ "x-kubernetes-list-type": "set" });
        }
        return a;
      }
      case 3:
        return z.record(z.string(), chance(0.5) ? leaf() : object(depth + 1));
      case 4:
        return z.discriminatedUnion("kind", [
          z.object({ kind: z.literal("git"), url: z.string() }),
          z.object({ kind: z.literal("s3"), bucket: z.string(), region: z.string().optional() }),
        ]);
      case 5:
        return z.array(z.object({ name: z.string(), port: z.int() })).meta({
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
        });
      default:
        return leaf();
    }
  };
  const object = (depth: number): Zod => {
    const shape: Record<string, Zod> = {};
    const n = 1 + Math.floor(r() * 5);
    for (let i = 0; i < n; i++) {
      const key = pick([
        "name",
        "size",
        "app.kubernetes.io/part",
        "x-y",
        "nested",
        "items",
        "_z",
        `f${fieldNo++}`,
      ]);
      let s = node(depth);
      const t = s._zod.def.type;
      if (chance(0.2) && ["string", "number", "boolean"].includes(t)) {
        s = s.default(t === "string" ? "d" : t === "number" ? 1 : true);
      } else if (chance(0.4)) s = s.optional();
      if (chance(0.2) && t !== "unknown") s = s.nullable();
      if (chance(0.3)) s = s.describe(`The ${key}. */ @see`);
      shape[key] = s;
    }
    let o: Zod = chance(0.2) ? z.looseObject(shape) : z.object(shape);
    if (chance(0.2)) {
      o = o.meta({ "x-kubernetes-validations": [{ rule: "size(self) > 0", message: "empty" }] });
    }
    if (chance(0.1)) o = o.meta({ "x-kubernetes-map-type": "atomic" });
    return o;
  };
  return { spec: object(0), status: chance(0.6) ? object(1) : undefined };
}

/** `required` is a set: generated objects list their fields sorted, zod shapes in their order. */
function sortRequired<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortRequired) as T;
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = k === "required" && Array.isArray(v) ? [...v].sort() : sortRequired(v);
  }
  return out as T;
}

test("crdgen: round trip zod → CRD → generated zod → CRD keeps the structural schema (seeded)", async () => {
  const seed = Number(process.env.CRDGEN_SEED ?? 20261205);
  const count = 40;
  const originals: CustomResource<unknown, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const { spec, status } = randomSchemas(seed + i);
    // Every fourth kind also has the scale subresource, printer columns and selectable fields.
    const scaled = i % 4 === 0;
    originals.push(
      defineCustomResource({
        group: "roundtrip.example.com",
        version: i % 2 ? "v1" : "v2beta1",
        kind: `Rt${i}`,
        namespaced: i % 3 !== 0,
        spec: scaled ? spec.extend({ replicas: z.int().min(0), selector: z.string() }) : spec,
        status: scaled ? (status ?? z.object({})).extend({ replicas: z.int().optional() }) : status,
        shortNames: [`rt${i}`],
        categories: ["roundtrip"],
        ...(scaled
          ? {
            scale: { labelSelectorPath: ".spec.selector" },
            printerColumns: [
              { name: "Replicas", type: "integer" as const, jsonPath: ".spec.replicas" },
              { name: "Age", type: "date" as const, jsonPath: ".metadata.creationTimestamp" },
            ],
            selectableFields: [".spec.selector"],
          }
          : {}),
      }) as CustomResource<unknown, unknown>,
    );
  }
  const { files, warnings } = await generate(originals.map((o) => o.crd()), { format: false });
  assert.deepEqual(warnings, []);
  const modules = await importAll(files, "roundtrip");
  const byKind = new Map(files.map((f, i) => [f.kind, modules[i]]));
  for (let i = 0; i < count; i++) {
    const original = originals[i];
    const file = files.find((f) => f.kind === original.kind)!;
    const generated = byKind.get(original.kind)![file.exportName] as CustomResource<
      unknown,
      unknown
    >;
    assert.deepEqual(
      sortRequired(generated.crd()),
      sortRequired(original.crd()),
      `seed ${seed + i} (CRDGEN_SEED=${seed}, schema ${i}): the regenerated CRD differs`,
    );
  }
  await rm(DIR, { recursive: true, force: true });
});

test("crdgen cli: writes the modules, --check reports drift, usage and input errors", async () => {
  const { main } = await import("../../crdgen/cli.ts");
  const dir = `${DIR}cli/`;
  await mkdir(dir, { recursive: true });
  const lines: string[] = [];
  const out = { log: (l: string) => lines.push(l), error: (l: string) => lines.push(l) };
  const crd = crdOf({ type: "object", properties: { a: { type: "string" } } });
  await writeFile(`${dir}crd.json`, JSON.stringify(crd));
  assert.equal(await main([`${dir}crd.json`, "-o", `${dir}gen`], out), 0);
  assert.match(lines.join("\n"), /widgets\.example\.com\.ts: Widget \(Widget\)/);
  assert.equal(await main([`${dir}crd.json`, "-o", `${dir}gen`, "--check"], out), 0);
  await writeFile(`${dir}gen/widgets.example.com.ts`, "// edited by hand\n");
  lines.length = 0;
  assert.equal(await main([`${dir}crd.json`, "-o", `${dir}gen`, "--check"], out), 1);
  assert.match(lines.join("\n"), /widgets\.example\.com\.ts: would change/);
  assert.equal(await main([`${dir}crd.json`], out), 2);
  assert.equal(await main(["-o", dir, "--crd", "x"], out), 2);
  lines.length = 0;
  assert.equal(await main([`${dir}missing.yaml`, "-o", dir], out), 1);
  assert.match(lines.join("\n"), /missing\.yaml: cannot read/);
  await rm(DIR, { recursive: true, force: true });
});

test("crdgen: reads CRDs from a URL; an HTTP error names the URL", async () => {
  const { createServer } = await import("node:http");
  const { readCrds } = await import("../../crdgen/mod.ts");
  const yaml = `---\n${JSON.stringify(crdOf({ type: "object" }))}\n---\n`;
  const server = createServer((req, res) => {
    if (req.url === "/crds.yaml") res.end(yaml);
    else {
      res.statusCode = 404;
      res.end("not found");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  try {
    const { crds } = await readCrds([`http://127.0.0.1:${port}/crds.yaml`]);
    assert.deepEqual(crds.map((c) => [c.source, c.crd.metadata?.name]), [
      [`http://127.0.0.1:${port}/crds.yaml#1`, "widgets.example.com"],
    ]);
    await assert.rejects(
      readCrds([`http://127.0.0.1:${port}/gone.yaml`]),
      /gone\.yaml: cannot fetch: HTTP 404/,
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("crdgen: arbitrary JSON in schema positions gives warnings, never a crash (seeded)", async () => {
  const r = prng(Number(process.env.CRDGEN_SEED ?? 7));
  const keys = [
    "type",
    "properties",
    "items",
    "additionalProperties",
    "enum",
    "required",
    "nullable",
    "default",
    "anyOf",
    "oneOf",
    "pattern",
    "format",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
    "$ref",
    "a-b",
  ];
  const anything = (depth: number): unknown => {
    switch (Math.floor(r() * (depth > 3 ? 5 : 8))) {
      case 0:
        return null;
      case 1:
        return Math.floor(r() * 10) - 3;
      case 2:
        return ["string", "object", "array", "integer", "number", "boolean", "date"][
          Math.floor(r() * 7)
        ];
      case 3:
        return r() < 0.5;
      case 4:
        return "(?P<x>[a-z]+)\\z";
      case 5:
        return Array.from({ length: Math.floor(r() * 3) }, () => anything(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = Math.floor(r() * 5); i > 0; i--) {
          o[keys[Math.floor(r() * keys.length)]] = anything(depth + 1);
        }
        return o;
      }
    }
  };
  for (let i = 0; i < 300; i++) {
    const crd = crdOf({ type: "object", properties: { x: anything(0), y: anything(0) } });
    crd.metadata!.name = `widgets${i}.example.com`;
    const { files } = await generate([crd]); // formatted: dprint refuses code that does not parse
    assert.equal(files.length, 1);
    // The module loads: defineCustomResource accepts what was generated.
    if (i < 60) await importAll(files, "fuzz");
  }
  await rm(DIR, { recursive: true, force: true });
});
