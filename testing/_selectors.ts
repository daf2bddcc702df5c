// Internal: label and field selectors of the fake API server (mod.ts), with the grammar of
// k8s.io/apimachinery/pkg/labels and pkg/fields. Not part of the public API.

import { getDotted, type JsonObject, metaMap } from "./_json.ts";
import { badRequest } from "./_status.ts";

/** One requirement of a label selector. */
interface LabelRequirement {
  key: string;
  op: "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";
  values: string[];
}

/** A parsed label selector. */
export interface LabelSelector {
  /** The requirements, all of which must hold. */
  readonly requirements: readonly LabelRequirement[];
  /** Whether the labels satisfy the selector. */
  matches(labels: Record<string, string>): boolean;
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function validKey(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    const name = key.slice(slash + 1);
    return prefix.length > 0 && prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) &&
      name.length <= 63 && NAME.test(name);
  }
  return key.length > 0 && key.length <= 63 && NAME.test(key);
}

function validValue(value: string): boolean {
  return value === "" || (value.length <= 63 && NAME.test(value));
}

type Token =
  | { t: "id"; v: string }
  | { t: "op"; v: string }
  | { t: "("; v: string }
  | { t: ")"; v: string }
  | { t: ","; v: string }
  | { t: "end"; v: string };

function lex(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
    } else if (c === "(" || c === ")" || c === ",") {
      tokens.push({ t: c, v: c } as Token);
      i++;
    } else if (c === "=" || c === "!" || c === ">" || c === "<") {
      const two = input.slice(i, i + 2);
      if (two === "==" || two === "!=") {
        tokens.push({ t: "op", v: two });
        i += 2;
      } else {
        tokens.push({ t: "op", v: c });
        i++;
      }
    } else {
      let j = i;
      while (j < input.length && !" \t\n\r(),=!<>".includes(input[j])) j++;
      tokens.push({ t: "id", v: input.slice(i, j) });
      i = j;
    }
  }
  tokens.push({ t: "end", v: "" });
  return tokens;
}

/**
 * Parses a label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1`).
 *
 * @param input The selector text; empty selects everything.
 * @returns The selector.
 * @throws {StatusError} 400 BadRequest when malformed.
 */
export function parseLabelSelector(input: string): LabelSelector {
  const tokens = lex(input);
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];
  const fail = (detail: string): never => {
    throw badRequest(`unable to parse requirement: ${detail}`);
  };
  const requirements: LabelRequirement[] = [];
  if (peek().t === "end") return makeLabelSelector(requirements);
  for (;;) {
    let token = next();
    if (token.t === "op" && token.v === "!") {
      const key = next();
      if (key.t !== "id") fail(`found '${key.v}', expected: identifier after '!'`);
      if (!validKey(key.v)) fail(`invalid label key ${JSON.stringify(key.v)}`);
      requirements.push({ key: key.v, op: "!", values: [] });
    } else {
      if (token.t !== "id") fail(`found '${token.v}', expected: !, identifier`);
      const key = token.v;
      if (!validKey(key)) fail(`invalid label key ${JSON.stringify(key)}`);
      token = peek();
      if (token.t === "," || token.t === "end") {
        requirements.push({ key, op: "exists", values: [] });
      } else if (token.t === "op") {
        next();
        const value = peek().t === "id" ? next().v : "";
        let op: LabelRequirement["op"];
        switch (token.v) {
          case "=":
          case "==":
            op = "=";
            break;
          case "!=":
            op = "!=";
            break;
          case ">":
            op = "gt";
            break;
          case "<":
            op = "lt";
            break;
          default:
            return fail(`found '${token.v}', expected: in, notin, =, ==, !=, gt, lt`);
        }
        if ((op === "gt" || op === "lt") && !/^-?\d+$/.test(value)) {
          fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
        }
        if (!validValue(value)) fail(`invalid label value ${JSON.stringify(value)}`);
        requirements.push({ key, op, values: [value] });
      } else if (token.t === "id" && (token.v === "in" || token.v === "notin")) {
        next();
        if (next().t !== "(") fail(`found '${tokens[pos - 1].v}', expected: '('`);
        if (peek().t === "end") fail(`found '', expected: ',', ')' or identifier`);
        const values: string[] = [];
        for (;;) {
          const value = peek().t === "id" ? next().v : "";
          if (!validValue(value)) fail(`invalid label value ${JSON.stringify(value)}`);
          values.push(value);
          const sep = next();
          if (sep.t === ")") break;
          if (sep.t !== ",") fail(`found '${sep.v}', expected: ',', ')' or identifier`);
        }
        requirements.push({ key, op: token.v as "in" | "notin", values });
      } else {
        fail(`found '${token.v}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    }
    const sep = next();
    if (sep.t === "end") break;
    if (sep.t !== ",") fail(`found '${sep.v}', expected: ',' or 'end of string'`);
  }
  return makeLabelSelector(requirements);
}

function makeLabelSelector(requirements: LabelRequirement[]): LabelSelector {
  return {
    requirements,
    matches(labels: Record<string, string>): boolean {
      return requirements.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        const value = labels[r.key];
        switch (r.op) {
          case "=":
            return has && value === r.values[0];
          case "!=":
            return !has || value !== r.values[0];
          case "in":
            return has && r.values.includes(value);
          case "notin":
            return !has || !r.values.includes(value);
          case "exists":
            return has;
          case "!":
            return !has;
          case "gt":
          case "lt": {
            if (!has || !/^-?\d+$/.test(value)) return false;
            const n = Number(value);
            const limit = Number(r.values[0]);
            return r.op === "gt" ? n > limit : n < limit;
          }
        }
      });
    },
  };
}

/** One term of a field selector. */
export interface FieldRequirement {
  /** Dotted field path, e.g. `status.phase`. */
  field: string;
  /** `=` (also written `==`) or `!=`. */
  op: "=" | "!=";
  /** The value. */
  value: string;
}

/** A parsed field selector. */
export interface FieldSelector {
  /** The terms, all of which must hold. */
  readonly requirements: readonly FieldRequirement[];
  /** Whether an object satisfies the selector. */
  matches(object: JsonObject): boolean;
  /** The value a term requires with `=`, for `metadata.name` and `metadata.namespace` fast paths. */
  exact(field: string): string | undefined;
}

function splitUnescaped(input: string, sep: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === "\\" && i + 1 < input.length) {
      current += c + input[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function unescape(value: string): string {
  return value.replace(/\\(.)/g, "$1");
}

/**
 * Parses a field selector (`metadata.name=x,status.phase!=Running`).
 *
 * @param input The selector text; empty selects everything.
 * @param supported The field paths the kind supports, or `undefined` to accept any dotted path.
 * @returns The selector.
 * @throws {StatusError} 400 BadRequest when malformed or a field is not supported.
 */
export function parseFieldSelector(
  input: string,
  supported?: readonly string[],
  errorStyle: "label" | "known" = "label",
): FieldSelector {
  const requirements: FieldRequirement[] = [];
  if (input.trim() !== "") {
    for (const part of splitUnescaped(input, ",")) {
      const match = /^([^=!]*?)\s*(==|!=|=)\s*(.*)$/s.exec(part.replace(/^\s+/, ""));
      if (!match || match[1] === "") {
        throw badRequest(`invalid selector: '${input}'; can't understand '${part}'`);
      }
      const field = match[1].trim();
      const op = match[2] === "!=" ? "!=" : "=";
      if (supported !== undefined && !supported.includes(field)) {
        throw badRequest(
          errorStyle === "known"
            ? `${
              JSON.stringify(field)
            } is not a known field selector: only "metadata.name", "metadata.namespace"`
            : `field label not supported: ${field}`,
        );
      }
      requirements.push({ field, op, value: unescape(match[3]) });
    }
  }
  return {
    requirements,
    matches(object: JsonObject): boolean {
      return requirements.every((r) => {
        const actual = fieldValue(object, r.field);
        return r.op === "=" ? actual === r.value : actual !== r.value;
      });
    },
    exact(field: string): string | undefined {
      return requirements.find((r) => r.field === field && r.op === "=")?.value;
    },
  };
}

/**
 * The string value of a selectable field of an object (`""` when missing).
 *
 * @param object The object.
 * @param field Dotted path.
 * @returns The value as the real server's field set renders it.
 */
export function fieldValue(object: JsonObject, field: string): string {
  if (field === "spec.host") field = "spec.nodeName";
  const value = getDotted(object, field);
  if (value === undefined || value === null) {
    // The real server renders a missing boolean (e.g. spec.unschedulable) as "false".
    return field === "spec.unschedulable" || field === "spec.hostNetwork" ? "false" : "";
  }
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && field === "status.podIPs") {
    return value.map((v) => (v && typeof v === "object" ? String((v as JsonObject).ip ?? "") : ""))
      .join(",");
  }
  return JSON.stringify(value);
}

/**
 * Tells whether an object matches both selectors.
 *
 * @param object The object.
 * @param labels The label selector.
 * @param fields The field selector.
 * @returns `true` when both match.
 */
export function matchesSelectors(
  object: JsonObject,
  labels: LabelSelector,
  fields: FieldSelector,
): boolean {
  return labels.matches(metaMap(object, "labels")) && fields.matches(object);
}
