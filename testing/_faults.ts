// Internal: fault injection rules of the fake API server (mod.ts). The public types are
// re-exported from mod.ts, where each fault is documented.

/** A verb a fault can target. */
export type FaultVerb =
  | "get"
  | "list"
  | "watch"
  | "create"
  | "update"
  | "patch"
  | "delete"
  | "deletecollection"
  | "discovery"
  | "any";

/** The request a fault rule is matched against. */
export interface FaultRequest {
  /** The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or `discovery` for everything else. */
  verb: string;
  /** The HTTP method. */
  method: string;
  /** The full URL. */
  url: URL;
  /** API group (`""` for core), when the path names a resource. */
  group?: string;
  /** API version, when the path names a resource. */
  version?: string;
  /** The plural resource name, e.g. `pods`. */
  resource?: string;
  /** The namespace of the path, if any. */
  namespace?: string;
  /** The object name of the path, if any. */
  name?: string;
  /** The subresource of the path, e.g. `status`. */
  subresource?: string;
}

/**
 * What an injected fault does. See {@linkcode FakeApiServer.prototype.inject} for the exact
 * behaviour of each one.
 */
export type Fault =
  | "close"
  | "stall"
  | "malformed-line"
  | "truncate"
  | "reset"
  | "bookmark-only"
  | {
    /** The HTTP status to answer. */
    status: number;
    /** The `Retry-After` header, in seconds. */
    retryAfter?: number;
    /** A raw body (sent as `text/plain`) instead of a `Status` object. */
    body?: string;
    /** The `reason` of the `Status` body (default: the one the real server pairs with the code). */
    reason?: string;
    /** The `message` of the `Status` body. */
    message?: string;
  }
  | {
    /** A 410: `true` or `"Expired"` for reason `Expired`, `"Gone"` for reason `Gone`. */
    expire: true | "Expired" | "Gone";
    /** For a watch: answer HTTP 410 instead of a 200 stream with an ERROR event. */
    http?: boolean;
  };

/** A fault injection rule; see {@linkcode FakeApiServer.prototype.inject}. */
export interface FaultRule {
  /** Which requests: a verb, several verbs, `"any"`, or a predicate. */
  on: FaultVerb | readonly FaultVerb[] | ((request: FaultRequest) => boolean);
  /** Only requests for this plural resource (e.g. `pods`). */
  resource?: string;
  /**
   * For faults that act inside a watch stream (`close`, `stall`, `malformed-line`, `truncate`,
   * `bookmark-only`, and `expire` without `http`): the number of events written on the stream
   * before the fault acts. For every other fault: the number of matching requests let through
   * before the fault acts. Default 0.
   */
  after?: number;
  /** How many requests the fault acts on; `Infinity` for all. Default 1. */
  times?: number;
  /** What happens. */
  fault: Fault;
}

/** A handle on an injected fault. */
export interface FaultHandle extends Disposable {
  /** Removes the fault. */
  remove(): void;
  /** How many requests the fault has acted on. */
  readonly hits: number;
  /** Whether the fault has used up its `times`. */
  readonly done: boolean;
}

/** Faults that act inside a watch stream (their `after` counts events). */
export const STREAM_FAULTS = new Set([
  "close",
  "stall",
  "malformed-line",
  "truncate",
  "bookmark-only",
]);

/** Whether a fault acts inside the stream when the request is a watch. */
export function isStreamFault(fault: Fault): boolean {
  if (typeof fault === "string") return STREAM_FAULTS.has(fault);
  return "expire" in fault && !fault.http;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  hits: number;
  removed: boolean;
}

/** The installed rules, matched in order. */
export class FaultTable {
  #rules: ActiveRule[] = [];

  /** Installs a rule. */
  add(rule: FaultRule): FaultHandle {
    if (rule.after !== undefined && (!Number.isInteger(rule.after) || rule.after < 0)) {
      throw new RangeError(`inject: after must be a non-negative integer, got ${rule.after}`);
    }
    const times = rule.times ?? 1;
    if (!(times > 0)) throw new RangeError(`inject: times must be positive, got ${rule.times}`);
    const active: ActiveRule = { rule, seen: 0, hits: 0, removed: false };
    this.#rules.push(active);
    const remove = () => {
      active.removed = true;
      this.#rules = this.#rules.filter((r) => r !== active);
    };
    return {
      remove,
      [Symbol.dispose]: remove,
      get hits() {
        return active.hits;
      },
      get done() {
        return active.removed || active.hits >= times;
      },
    };
  }

  /** Removes every rule. */
  clear(): void {
    for (const r of this.#rules) r.removed = true;
    this.#rules = [];
  }

  /**
   * Finds the fault for a request and counts it. Answers the fault and, for stream faults, the
   * number of events before it acts.
   */
  match(request: FaultRequest): { fault: Fault; after: number } | undefined {
    for (const active of this.#rules) {
      const { rule } = active;
      if (active.hits >= (rule.times ?? 1)) continue;
      if (!matchesOn(rule, request)) continue;
      const fault = rule.fault;
      if (request.verb === "watch" && isStreamFault(fault)) {
        active.hits++;
        return { fault, after: rule.after ?? 0 };
      }
      if (request.verb !== "watch" && fault === "bookmark-only") continue;
      active.seen++;
      if (active.seen <= (rule.after ?? 0)) continue;
      active.hits++;
      return { fault, after: 0 };
    }
    return undefined;
  }
}

function matchesOn(rule: FaultRule, request: FaultRequest): boolean {
  if (rule.resource !== undefined && rule.resource !== request.resource) return false;
  const on = rule.on;
  if (typeof on === "function") return on(request);
  const verbs: readonly string[] = typeof on === "string" ? [on] : on;
  return verbs.includes("any") || verbs.includes(request.verb);
}
