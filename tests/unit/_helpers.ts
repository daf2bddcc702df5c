// Helpers shared by the unit tests (instead of a copy in each file).

import assert from "node:assert/strict";
import type { KubeObject } from "../../api.ts";
import { Config } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import type { WatchEvent } from "../../watch.ts";
import { protobufFetch } from "./_protobuf_wire.ts";

/**
 * Awaits a promise that must reject with an ApiError, and returns the error.
 *
 * @param promise The request.
 * @returns The error.
 */
export async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return e;
  }
  assert.fail("expected the request to fail");
}

/**
 * Events as short strings: `ADDED:name@rv`, `BOOKMARK:rv`, `ERROR`.
 *
 * @param list The events.
 * @returns One string per event.
 */
export function summary<T extends KubeObject>(list: WatchEvent<T>[]): string[] {
  return list.map((e) =>
    e.type === "BOOKMARK"
      ? `BOOKMARK:${e.resourceVersion}`
      : e.type === "ERROR"
      ? "ERROR"
      : `${e.type}:${e.object.metadata?.name}@${e.object.metadata?.resourceVersion}`
  );
}

/**
 * A configuration for `https://k8s.test:6443` with a token, for clients with a stub `fetch`.
 *
 * @param overrides Fields to replace.
 * @returns The configuration.
 */
export function testConfig(
  overrides: Partial<ConstructorParameters<typeof Config>[0]> = {},
): Config {
  return new Config({
    cluster: {
      server: "https://k8s.test:6443",
      insecureSkipTlsVerify: false,
      disableCompression: false,
    },
    credentials: { token: "t" },
    namespace: "default",
    ...overrides,
  });
}

/**
 * A small seeded pseudo-random source (mulberry32), so randomized tests replay exactly from their
 * seed.
 *
 * @param seed The seed.
 * @returns Numbers in [0, 1).
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Set by {@linkcode runCompact}; module state, so each test file (or bundle) has its own. */
let compactStore = false;

/**
 * The Reflector store the shared reflector tests run with: `{}` (the objects store), or
 * `{ store: "compact" }` when a `*_compact.test.ts` file re-runs them (it calls
 * {@linkcode runCompact} before importing them); the StubServer then answers protobuf.
 *
 * @returns Options to spread into the Reflector's.
 */
export function testStore(): { store?: "compact" } {
  return compactRun() ? { store: "compact" } : {};
}

/** Whether the tests of this module graph run with the compact store. */
export function compactRun(): boolean {
  return compactStore;
}

/** Makes the tests imported after this call run with the compact store (see {@linkcode testStore}). */
export function runCompact(): void {
  compactStore = true;
}

/**
 * The server a ControllerHarness should use: the FakeApiServer itself, or with the compact store
 * (see {@linkcode testStore}) the same server answering protobuf to protobuf requests.
 *
 * @param server The fake server.
 * @returns The server for the harness.
 */
export function harnessServer<S extends HarnessServerLike>(server: S): HarnessServerLike {
  if (!compactRun()) return server;
  return {
    config: () => server.config(),
    fetch: protobufFetch((input, init) => server.fetch(input, init)),
    registerResource: (definition) => server.registerResource(definition),
  };
}

/** What ControllerHarness needs of a server (`testing/controller_harness.ts`'s HarnessServer). */
export interface HarnessServerLike {
  config(): Config;
  fetch(input: Request | URL | string, init?: RequestInit): Promise<Response>;
  registerResource(definition: {
    group: string;
    version: string;
    kind: string;
    plural: string;
    namespaced: boolean;
  }): void;
}
