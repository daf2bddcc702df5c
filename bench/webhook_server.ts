// The TypeScript side of the webhook benchmark (bench/webhook.ts): our WebhookServer on Deno, Node
// or Bun with the same validating handler as bench/webhookgo (controller-runtime), certificates
// from files. Prints "listening" once it answers.
//
//   deno run -A bench/webhook_server.ts <port> <certdir>

import { join } from "node:path";
import process from "node:process";
import { Api, type KubeObject } from "../api.ts";
import { deny, FileCertificates, validate, WebhookServer } from "../webhook/mod.ts";

const [port, certDir] = process.argv.slice(-2);
const foos = Api.dynamic<KubeObject & { spec?: { replicas?: number } }>({
  group: "example.com",
  version: "v1",
  kind: "Foo",
  plural: "foos",
  namespaced: true,
});
const server = new WebhookServer({
  webhooks: [
    validate(foos, (req) => {
      const n = req.object?.spec?.replicas ?? 0;
      return n > 10 ? deny(`spec.replicas must be at most 10, got ${n}`) : undefined;
    }, { path: "/validate" }),
  ],
  certificates: new FileCertificates({
    certFile: join(certDir, "tls.crt"),
    keyFile: join(certDir, "tls.key"),
    pollIntervalMs: 3_600_000,
  }),
  hostname: "127.0.0.1",
  port: Number(port),
});
const stop = new AbortController();
process.on("SIGTERM", () => stop.abort());
const running = server.run(stop.signal);
await server.listening();
console.log("listening");
await running;
