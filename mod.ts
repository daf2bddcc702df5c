/**
 * kube: a Kubernetes client for Deno.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./config.ts";
export * from "./client.ts";
export * from "./api.ts";
