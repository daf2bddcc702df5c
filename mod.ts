/**
 * kube: a Kubernetes client for Deno.
 *
 * - {@linkcode Config} finds the cluster the way kubectl does; {@linkcode Client} talks to it.
 * - {@linkcode Api} builds typed resource descriptors: `Api.v1Pod().within("default")`.
 * - {@linkcode watch}, {@linkcode Informer} and {@linkcode Reflector} follow changes and keep a
 *   cache in sync, recovering from every failure on their own.
 * - {@linkcode exec}, {@linkcode attach}, {@linkcode portForward} and {@linkcode forwardPort}
 *   reach into pods over WebSocket, authenticated like every other request.
 *
 * @example Cache the pods of a namespace
 * ```ts ignore
 * import { Api, Client, Reflector } from "@denokube/kube";
 *
 * await using client = await Client.infer();
 * const reflector = new Reflector(client, Api.v1Pod().within("default"));
 * await reflector.init();
 * for (const [key, pod] of reflector.read()) console.log(key, pod.status?.phase);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export { type Clock, systemClock } from "./clock.ts";
export * from "./config.ts";
export * from "./client.ts";
export * from "./api.ts";
export * from "./selector.ts";
export {
  type BookmarkWatchEvent,
  type ErrorWatchEvent,
  INITIAL_EVENTS_END_ANNOTATION,
  isObjectEvent,
  MALFORMED_WATCH_EVENT,
  type ObjectWatchEvent,
  watch,
  WATCH_STALLED,
  type WatchEvent,
  type WatchEventType,
  type WatchOptions,
} from "./watch.ts";
export * from "./informer.ts";
export * from "./reflector.ts";
export * from "./custom_resource.ts";
export {
  attach,
  type AttachOptions,
  exec,
  EXEC_PROTOCOLS,
  type ExecOptions,
  type ExecOutput,
  execOutput,
  type ExecOutputOptions,
  type ExecResult,
  type ExecSession,
  forwardPort,
  type ForwardPortOptions,
  type PodRef,
  PORT_FORWARD_PROTOCOLS,
  portForward,
  type PortForwarder,
  type PortForwardOptions,
  type PortForwardStream,
  type TerminalSize,
} from "./exec.ts";
export * from "./generated/mod.ts";
