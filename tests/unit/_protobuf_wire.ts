// A fetch wrapper that answers protobuf the way the API server does, from a JSON-only server (the
// StubServer, FakeApiServer): when a request asks for protobuf and the answer is a 200 JSON body
// of a built-in kind, the body becomes `k8s\0` + runtime.Unknown, and a watch's JSON lines become
// length-prefixed protobuf WatchEvent frames, chunk by chunk (cancelling the new body cancels the
// old one). Everything else passes through. It lets the compact store's tests run the existing
// scripts over real protobuf bytes.

import { encodeObject, encodeWatchFrame } from "../../_client/protobuf/encode.ts";
import { canDecode } from "../../_client/protobuf/decode.ts";

const PB = "application/vnd.kubernetes.protobuf";

type Fetch = (input: Request | URL | string, init?: RequestInit) => Promise<Response>;

/**
 * Wraps a fetch so that its JSON answers are sent as protobuf to protobuf requests.
 *
 * @param inner The JSON server's fetch.
 * @returns The wrapped fetch.
 */
export function protobufFetch(inner: Fetch): Fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
    const url = new URL(input instanceof Request ? input.url : String(input));
    const response = await inner(input, init);
    const type = response.headers.get("content-type") ?? "";
    const json = type === "" || type.startsWith("application/json");
    if (!headers.get("accept")?.startsWith(PB) || response.status !== 200 || !json) return response;
    const watch = url.searchParams.get("watch");
    if (watch === "1" || watch === "true") {
      return new Response(response.body!.pipeThrough(linesToFrames()), {
        status: 200,
        headers: { "content-type": `${PB};stream=watch` },
      });
    }
    const body = await response.json();
    if (body && typeof body === "object" && body.kind === "List" && body.items?.length) {
      body.kind = `${body.items[0].kind}List`;
    }
    if (!body?.kind || !body.apiVersion || !canDecode(body.apiVersion, body.kind)) {
      return Response.json(body, { status: 200 });
    }
    return new Response(encodeObject(body), { status: 200, headers: { "content-type": PB } });
  };
}

/** JSON watch lines → protobuf frames. */
function linesToFrames(): TransformStream<Uint8Array, Uint8Array> {
  const text = new TextDecoder();
  let pending = "";
  const frame = (line: string, out: TransformStreamDefaultController<Uint8Array>) => {
    if (line.trim() === "") return;
    const event = JSON.parse(line) as { type: string; object: Record<string, unknown> };
    // The API server's protobuf Status always has its TypeMeta.
    if (event.object?.kind === "Status") event.object.apiVersion ??= "v1";
    out.enqueue(encodeWatchFrame(event.type, event.object));
  };
  return new TransformStream({
    transform(chunk, out) {
      pending += text.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) frame(line, out);
    },
    flush(out) {
      pending += text.decode();
      if (pending) frame(pending, out);
    },
  });
}
