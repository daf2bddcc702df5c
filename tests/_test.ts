// One test API for every runtime: `test()` registers a Deno test (with the op and resource
// sanitizers on) on Deno, and a node:test test on Node and Bun (`node --test`, `bun test`).
// Test files import `test` from here instead of calling `Deno.test`, so the same files run on
// all three runtimes.

import * as nodeTest from "node:test";

/** The context handed to a test: steps run one after another inside it. */
export interface TestContext {
  /** The test's (or step's) name. */
  name: string;
  /**
   * Runs a step and waits for it; a failing step fails the test.
   *
   * @param name The step's name.
   * @param fn The step.
   * @returns Whether it passed.
   */
  step(name: string, fn: (t: TestContext) => void | Promise<void>): Promise<boolean>;
}

/** A test's function. */
export type TestFn = (t: TestContext) => void | Promise<void>;

/** A test definition, as `Deno.test` takes it. */
export interface TestDefinition {
  /** The name. */
  name: string;
  /** The test. */
  fn: TestFn;
  /** Skip it. */
  ignore?: boolean;
  /** Run only the tests marked `only`. */
  only?: boolean;
  /** Deno only: check that no async operation is left running (default true). */
  sanitizeOps?: boolean;
  /** Deno only: check that no resource is left open (default true). */
  sanitizeResources?: boolean;
  /** Deno only: check that the test does not exit the process (default true). */
  sanitizeExit?: boolean;
}

/** Which runtime the tests run on. */
export const RUNTIME: "deno" | "node" | "bun" =
  typeof (globalThis as { Deno?: { version?: { deno?: string } } }).Deno?.version?.deno ===
      "string"
    ? "deno"
    : (globalThis as { Bun?: unknown }).Bun !== undefined
    ? "bun"
    : "node";

interface DenoTestContext {
  name: string;
  step(name: string, fn: (t: DenoTestContext) => void | Promise<void>): Promise<boolean>;
}

interface DenoLike {
  test(definition: {
    name: string;
    fn: (t: DenoTestContext) => void | Promise<void>;
    ignore?: boolean;
    only?: boolean;
    sanitizeOps?: boolean;
    sanitizeResources?: boolean;
    sanitizeExit?: boolean;
  }): void;
}

type NodeContext = {
  name: string;
  test: (name: string, fn: (t: NodeContext) => unknown) => Promise<unknown>;
};

function wrapNode(t: NodeContext): TestContext {
  return {
    name: t.name,
    async step(name, fn) {
      let ok = true;
      await t.test(name, async (inner) => {
        try {
          await fn(wrapNode(inner));
        } catch (e) {
          ok = false;
          throw e;
        }
      });
      return ok;
    },
  };
}

/**
 * Registers a test.
 *
 * @param nameOrDefinition The name, or the whole definition.
 * @param fn The test, when a name was given.
 */
export function test(nameOrDefinition: string | TestDefinition, fn?: TestFn): void {
  const def: TestDefinition = typeof nameOrDefinition === "string"
    ? { name: nameOrDefinition, fn: fn! }
    : nameOrDefinition;
  if (RUNTIME === "deno") {
    const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;
    deno.test({ ...def, fn: (t) => def.fn(t) });
    return;
  }
  const options: { skip?: boolean; only?: boolean } = {};
  if (def.ignore) options.skip = true;
  if (def.only) options.only = true;
  nodeTest.test(def.name, options, (t) => def.fn(wrapNode(t as unknown as NodeContext)));
}
