// exec, attach, port-forward and logs through the real kube-apiserver to a KWOK node, each result
// compared with what kubectl prints for the same pod. KWOK runs exec as a local command in a
// scratch directory, serves logs and attach from CRI files, and forwards ports to loopback
// servers started here before the control plane (its configuration is fixed at start).
//
// What KWOK cannot show (a NonZeroExitCode status: it reports a non-zero exit as a 500
// InternalError; closing stdin; a socket breaking mid-frame) is covered by
// tests/unit/exec.test.ts with frames recorded from this setup.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { Client } from "../../client.ts";
import { Config } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import { attach, exec, execOutput, forwardPort, portForward } from "../../exec.ts";
import { e2eRequired } from "../../testenv/build.ts";
import { startControlPlane } from "../../testenv/control_plane.ts";
import { eventually, kubectl, kubectlCacheOf, skipReason } from "./_harness.ts";
import { test } from "../_test.ts";

const NS = "exec-e2e";
const HTTP_PORT = 80;
const ECHO_PORT = 9000;
const decoder = new TextDecoder();

/**
 * What a command wrote to stderr, as kubectl passes it on: without kubectl's own klog lines
 * (`E1201 10:46:00.415952 9194 websocket.go:296] Unknown stream id 1, …`), which it prints
 * now and then on the same stream when a frame races its stream setup.
 */
function kubectlStderr(bytes: Uint8Array): string {
  return decoder.decode(bytes).split(/(?<=\n)/)
    .filter((line) => !/^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ \S+:\d+\] /.test(line))
    .join("");
}
const plugin = new URL("../fixtures/exec_plugin.ts", import.meta.url).pathname;

/** A loopback HTTP server (the pod's port 80) and a raw echo server (port 9000). */
function startTargets() {
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    return new Response(`hello from ${url.pathname}\n`, { headers: { "x-target": "loopback" } });
  });
  const echoListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of echoListener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return {
    httpPort: http.addr.port,
    echoPort: echoListener.addr.port,
    async close() {
      echoListener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by its pipe */ }
      }
      await serving;
      await http.shutdown();
    },
  };
}

async function kubeconfigWithProxy(path: string, proxyUrl: string): Promise<string> {
  // The test environment writes its kubeconfigs as JSON (which is YAML too).
  const kubeconfig = JSON.parse(await Deno.readTextFile(path));
  kubeconfig.clusters[0].cluster["proxy-url"] = proxyUrl;
  return JSON.stringify(kubeconfig);
}

/** A loopback HTTP CONNECT proxy that records the authorities it tunnelled to. */
function startProxy() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const client of listener) {
      conns.add(client);
      (async () => {
        const buffer = new Uint8Array(4096);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await client.read(buffer);
          if (n === null) return;
          head += decoder.decode(buffer.subarray(0, n));
        }
        const authority = head.split(" ")[1];
        seen.push(authority);
        const [hostname, port] = authority.split(":");
        const upstream = await Deno.connect({ hostname, port: Number(port) });
        conns.add(upstream);
        await client.write(new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
        await Promise.all([
          client.readable.pipeTo(upstream.writable).catch(() => {}),
          upstream.readable.pipeTo(client.writable).catch(() => {}),
        ]);
      })().catch(() => {}).finally(() => {
        for (const conn of conns) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      });
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    seen,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await serving;
    },
  };
}

test({
  name: "e2e: exec, attach, port-forward and logs through kube-apiserver to a KWOK node",
  ignore: skipReason !== undefined && !e2eRequired(),
  async fn(t) {
    if (skipReason !== undefined) throw new Error(`real-cluster tests required but: ${skipReason}`);
    const targets = startTargets();
    const proxy = startProxy();
    const dir = await Deno.makeTempDir();
    try {
      await using cp = await startControlPlane({
        cluster: "full",
        extraTokens: [{ token: "exec-token-2", user: "exec-user", groups: ["system:masters"] }],
        kwok: {
          exec: [{ namespace: NS, env: { GREETING: "hello from env" } }],
          logs: [{ namespace: NS, containers: ["side"] }, { namespace: NS }],
          portForward: [
            {
              namespace: NS,
              ports: [HTTP_PORT],
              target: { address: "127.0.0.1", port: targets.httpPort },
            },
            {
              namespace: NS,
              ports: [ECHO_PORT],
              target: { address: "127.0.0.1", port: targets.echoPort },
            },
          ],
        },
      });
      using _cache = kubectlCacheOf(cp);
      const kube = (...args: string[]) => kubectl(cp.kubeconfigPath, ...args);
      await using certClient = new Client(await Config.fromKubeconfig({ path: cp.kubeconfigPath }));
      await using tokenClient = new Client(
        await Config.fromKubeconfig({ path: cp.tokenKubeconfigPath }),
      );
      const clients = { "client certificate": certClient, "bearer token": tokenClient };
      const kwok = cp.kwok!;

      await certClient.create(Api.v1Namespace(), { metadata: { name: NS } });
      const pods = Api.v1Pod().within(NS);
      await certClient.create(pods, {
        metadata: { name: "web" },
        spec: {
          containers: [
            { name: "main", image: "registry.invalid/web:1" },
            { name: "side", image: "registry.invalid/side:1" },
          ],
        },
      });
      await eventually("web runs", async () => {
        assert.equal((await certClient.get(pods, "web")).status?.phase, "Running");
      });
      const main = { namespace: NS, container: "main" };

      for (const [auth, client] of Object.entries(clients)) {
        await t.step(
          `exec (${auth}): stdout, stderr, env and working dir, as kubectl`,
          async () => {
            const echo = await execOutput(client, "web", ["echo", "hello", "world"], main);
            assert.deepEqual(echo, { stdout: "hello world\n", stderr: "", exitCode: 0 });
            assert.equal(
              echo.stdout,
              await kube("exec", "-n", NS, "web", "-c", "main", "--", "echo", "hello", "world"),
            );

            const script = "echo out; echo oops >&2; echo $GREETING; pwd";
            const both = await execOutput(client, "web", ["sh", "-c", script], main);
            assert.equal(
              both.stdout,
              `out\nhello from env\n${kwok.execWorkDir(NS, "web", "main")}\n`,
            );
            assert.equal(both.stderr, "oops\n");
            const viaKubectl = await new Deno.Command("kubectl", {
              args: ["--kubeconfig", cp.kubeconfigPath, "exec", "-n", NS, "web", "-c", "main"]
                .concat(["--", "sh", "-c", script]),
            }).output();
            assert.equal(both.stdout, decoder.decode(viaKubectl.stdout));
            assert.equal(both.stderr, kubectlStderr(viaKubectl.stderr));
          },
        );
      }

      await t.step("exec with stdin: the command reads what is written", async () => {
        const out = await execOutput(certClient, "web", ["head", "-n", "1"], {
          ...main,
          stdin: "first line\nsecond line\n",
        });
        assert.deepEqual(out, { stdout: "first line\n", stderr: "", exitCode: 0 });
      });

      await t.step("exec with tty: a terminal of the size sent on the resize channel", async () => {
        // KWOK loses a tty's output unless a size arrives first (kubectl sends one at once),
        // and it crashes on tty without stdin, which kubectl never sends either. The command
        // waits 1 s for the size, sent right after the upgrade (room for a loaded machine).
        await using session = await exec(
          certClient,
          "web",
          ["sh", "-c", "sleep 1; tty; stty size; sleep 0.5"],
          { ...main, tty: true, stdin: true },
        );
        assert.equal(session.stderr, undefined);
        await session.resize({ width: 123, height: 45 });
        const output = await new Response(session.stdout).text();
        assert.equal((await session.result).exitCode, 0);
        assert.match(output, /^\/dev\/pts\/\d+\r\n45 123\r\n$/);
        assert.equal(session.protocol, "v5.channel.k8s.io");
      });

      await t.step("exec: a non-zero exit (KWOK reports it as a 500) is an ApiError", async () => {
        const error = await execOutput(certClient, "web", ["sh", "-c", "exit 3"], main).catch((
          e,
        ) => e);
        assert.ok(error instanceof ApiError, String(error));
        assert.equal(error.status, 500);
        assert.match(error.message, /exit status 3/);
      });

      await t.step(
        "exec errors: no pod, no container, forbidden, each a clear ApiError",
        async () => {
          for (const client of Object.values(clients)) {
            const missing = await execOutput(client, "nope", ["true"], { namespace: NS }).catch((
              e,
            ) => e);
            assert.ok(missing instanceof ApiError, String(missing));
            assert.equal(missing.status, 404);
            assert.equal(missing.message.split(" (")[0], 'pods "nope" not found');
          }
          const noContainer = await execOutput(certClient, "web", ["true"], {
            namespace: NS,
            container: "nope",
          }).catch((e) => e);
          assert.ok(noContainer instanceof ApiError);
          assert.equal(noContainer.status, 400);
          assert.match(noContainer.message, /container nope is not valid for pod web/);
          const kubectlSays = await new Deno.Command("kubectl", {
            args: ["--kubeconfig", cp.kubeconfigPath, "exec", "-n", NS, "web", "-c", "nope", "--"]
              .concat(["true"]),
          }).output();
          assert.match(
            decoder.decode(kubectlSays.stderr),
            /container nope is not valid for pod web/,
          );

          await using viewer = new Client(
            await Config.fromKubeconfig({ path: cp.viewerKubeconfigPath }),
          );
          for (
            const attempt of [
              () => exec(viewer, "web", ["true"], main),
              () => attach(viewer, "web", main),
              () => portForward(viewer, "web", HTTP_PORT, { namespace: NS }),
            ]
          ) {
            const forbidden = await attempt().catch((e) => e);
            assert.ok(forbidden instanceof ApiError, String(forbidden));
            assert.equal(forbidden.status, 403);
            assert.match(forbidden.message, /User "viewer" cannot (get|create) resource "pods\//);
          }
        },
      );

      await t.step(
        "exec with an exec-plugin token (a stale one is refreshed after a 401)",
        async () => {
          const path = `${dir}/kubeconfig-exec`;
          const countFile = `${dir}/count`;
          await Deno.writeTextFile(
            path,
            JSON.stringify({
              apiVersion: "v1",
              kind: "Config",
              clusters: [{
                name: "c",
                cluster: { server: cp.server, "certificate-authority": cp.caPath },
              }],
              users: [{
                name: "u",
                user: {
                  exec: {
                    apiVersion: "client.authentication.k8s.io/v1",
                    command: Deno.execPath(),
                    args: ["run", "--allow-env", "--allow-read", "--allow-write", plugin]
                      .concat(["--token=exec-token", `--count-file=${countFile}`]),
                    interactiveMode: "Never",
                  },
                },
              }],
              contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
              "current-context": "c",
            }),
          );
          await using client = new Client(await Config.fromKubeconfig({ path }));
          const out = await execOutput(client, "web", ["echo", "plugin"], main);
          assert.equal(out.stdout, "plugin\n");
          // Run 1 gave the stale exec-token-1 (401 on the upgrade), run 2 the accepted one.
          assert.equal((await Deno.readTextFile(countFile)).trim().split("\n").length, 2);
        },
      );

      await t.step("exec through an HTTP CONNECT proxy, with the client certificate", async () => {
        const path = `${dir}/kubeconfig-proxy`;
        await Deno.writeTextFile(path, await kubeconfigWithProxy(cp.kubeconfigPath, proxy.url));
        await using client = new Client(await Config.fromKubeconfig({ path }));
        assert.equal(client.config.cluster.proxyUrl, proxy.url);
        const out = await execOutput(client, "web", ["echo", "proxied"], main);
        assert.equal(out.stdout, "proxied\n");
        assert.deepEqual(proxy.seen, [new URL(cp.server).host]);
      });

      await t.step("attach reads the lines the container writes", async () => {
        await using session = await attach(certClient, "web", { ...main, stderr: false });
        const reader = session.stdout!.pipeThrough(new TextDecoderStream()).getReader();
        const target = { namespace: NS, pod: "web", container: "main" };
        // attach follows the file from the moment KWOK opened it, which is after the upgrade:
        // write until the first line shows (bounded), then every line written is read in order.
        let pending = reader.read();
        let first = "";
        for (let attempt = 0; attempt < 20 && !first; attempt++) {
          await kwok.appendLog(target, [`warm-up ${attempt}`]);
          const got = await Promise.race([
            pending,
            new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 500)),
          ]);
          if (got) {
            first = got.value ?? "";
            pending = reader.read();
          }
        }
        assert.match(first, /^warm-up \d+\n/);
        await kwok.appendLog(target, ["attached 1", "attached 2"]);
        let seen = "";
        while (!seen.includes("attached 2\n")) {
          seen += (await pending).value;
          pending = reader.read();
        }
        assert.match(seen, /(warm-up \d+\n)*attached 1\nattached 2\n$/);
        assert.match(
          await kube("logs", "-n", NS, "web", "-c", "main", "--tail=2"),
          /^attached 1\nattached 2\n$/,
        );
        await reader.cancel();
        pending.catch(() => {});
      });

      for (const [auth, client] of Object.entries(clients)) {
        await t.step(`port-forward (${auth}): an HTTP request, and 1 MiB both ways`, async () => {
          await using http = await portForward(client, "web", HTTP_PORT, { namespace: NS });
          const writer = http.writable.getWriter();
          await writer.write(
            new TextEncoder().encode(
              "GET /via-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
          );
          // KWOK does not close the stream when the target closes its connection (nothing can
          // half-close in this protocol): read up to the end of the body, as fetch would.
          const httpReader = http.readable.pipeThrough(new TextDecoderStream()).getReader();
          let response = "";
          while (!response.endsWith("hello from /via-stream\n")) {
            const { value, done } = await httpReader.read();
            assert.ok(!done, `the stream ended early: ${response}`);
            response += value;
          }
          assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
          assert.match(response, /x-target: loopback/);
          assert.match(response, /content-length: 23\r\n/);
          await httpReader.cancel();
          await http.close();
          await http.closed;

          const size = 1024 * 1024;
          const payload = new Uint8Array(size).map((_, i) => (i * 7) % 251);
          await using echo = await portForward(client, "web", ECHO_PORT, { namespace: NS });
          const sending = echo.writable.getWriter().write(payload);
          const back = new Uint8Array(size);
          let received = 0;
          const reader = echo.readable.getReader();
          while (received < size) {
            const { value, done } = await reader.read();
            assert.ok(!done, `the stream ended after ${received} bytes`);
            back.set(value, received);
            received += value.length;
          }
          await sending;
          assert.equal(received, size);
          assert.deepEqual(back, payload);
          await reader.cancel();
        });
      }

      await t.step("forwardPort serves fetch like kubectl port-forward does", async () => {
        await using forwarder = await forwardPort(certClient, "web", {
          port: HTTP_PORT,
          namespace: NS,
        });
        const ours = await fetch(`http://127.0.0.1:${forwarder.localPort}/same`);
        const ourBody = await ours.text();
        const child = new Deno.Command("kubectl", {
          args: ["--kubeconfig", cp.kubeconfigPath, "port-forward", "-n", NS, "pod/web"]
            .concat([`:${HTTP_PORT}`]),
          stdout: "piped",
          stderr: "null",
        }).spawn();
        try {
          const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
          let banner = "";
          while (!/127\.0\.0\.1:(\d+) ->/.test(banner)) banner += (await lines.read()).value;
          const kubectlPort = /127\.0\.0\.1:(\d+) ->/.exec(banner)![1];
          const theirs = await fetch(`http://127.0.0.1:${kubectlPort}/same`);
          assert.equal(ourBody, await theirs.text());
          assert.equal(ours.headers.get("x-target"), theirs.headers.get("x-target"));
          await lines.cancel();
        } finally {
          child.kill();
          await child.status;
        }
        assert.equal(ourBody, "hello from /same\n");
      });

      await t.step("logs: each option gives what kubectl logs prints", async () => {
        const now = Date.now();
        const old = (ms: number) => new Date(now - ms).toISOString();
        await Deno.writeTextFile(
          kwok.logFile(NS, "web", "side"),
          `${old(7_200_000)} stdout F two hours ago\n${
            old(1_800_000)
          } stderr F half an hour ago\n` +
            `${old(1_000)} stdout F just now\n`,
        );
        const cases: [Record<string, unknown>, string[]][] = [
          [{}, []],
          [{ tailLines: 2 }, ["--tail=2"]],
          [{ sinceSeconds: 3600 }, ["--since=1h"]],
          [{ timestamps: true }, ["--timestamps"]],
          [{ limitBytes: 20 }, ["--limit-bytes=20"]],
        ];
        for (const [options, flags] of cases) {
          const ours = await certClient.logs("web", {
            namespace: NS,
            container: "side",
            ...options,
          });
          assert.equal(ours, await kube("logs", "-n", NS, "web", "-c", "side", ...flags));
        }
        assert.equal(
          await certClient.logs("web", { namespace: NS, container: "side", sinceSeconds: 3600 }),
          "half an hour ago\njust now\n",
        );
        assert.equal(
          await tokenClient.logs("web", { namespace: NS, container: "side", tailLines: 1 }),
          "just now\n",
        );
        // previous: KWOK keeps no terminated container, so both clients get the same answer.
        const previous = await certClient.logs("web", { ...main, previous: true }).then(
          (text) => ({ text }),
          (e: ApiError) => ({ status: e.status, message: e.message.split(" (GET")[0] }),
        );
        const kubectlPrevious = await new Deno.Command("kubectl", {
          args: ["--kubeconfig", cp.kubeconfigPath, "logs", "-n", NS, "web", "-c", "main"]
            .concat(["--previous"]),
        }).output();
        if ("text" in previous) {
          assert.equal(previous.text, decoder.decode(kubectlPrevious.stdout));
        } else {
          assert.ok(!kubectlPrevious.success);
          assert.ok(
            decoder.decode(kubectlPrevious.stderr).includes(previous.message.slice(0, 40)),
            `${previous.message} vs ${decoder.decode(kubectlPrevious.stderr)}`,
          );
        }
        const missing = await certClient.logs("nope", { namespace: NS }).catch((e) => e);
        assert.ok(missing instanceof ApiError && missing.status === 404, String(missing));
      });

      await t.step(
        "followLogs sees appended lines, survives a quiet stream, ends on abort",
        async () => {
          const target = { namespace: NS, pod: "web", container: "side" };
          const controller = new AbortController();
          const lines = certClient.followLogs("web", {
            namespace: NS,
            container: "side",
            tailLines: 1,
            signal: controller.signal,
          });
          assert.equal((await lines.next()).value, "just now");
          await kwok.appendLog(target, ["appended 1"]);
          assert.equal((await lines.next()).value, "appended 1");
          // Quiet for a while: the follow stays open.
          const next = lines.next();
          const quiet = await Promise.race([
            next.then(() => "line"),
            new Promise((resolve) => setTimeout(() => resolve("quiet"), 1500)),
          ]);
          assert.equal(quiet, "quiet");
          await kwok.appendLog(target, ["after the quiet"]);
          assert.equal((await next).value, "after the quiet");
          controller.abort();
          assert.deepEqual(await lines.next(), { done: true, value: undefined });
        },
      );

      await t.step(
        "examples/pod_exec.ts and port_forward.ts run with their header's flags",
        async () => {
          const repo = new URL("../../", import.meta.url).pathname;
          const flagsOf = async (file: string, net: string) => {
            const first = (await Deno.readTextFile(`${repo}/${file}`)).split("\n")[0];
            const match = first.match(/^\/\/ deno run (.*?) (examples\/\S+\.ts)\b/);
            assert.ok(match, first);
            return match[1].split(" ").map((flag) => {
              assert.match(flag, /^--allow-(env|read|net)(=|$)/);
              if (flag.startsWith("--allow-read=")) {
                return `${flag.replace("$HOME", Deno.env.get("HOME") ?? "")},${cp.dir}`;
              }
              return flag === "--allow-net" ? `--allow-net=${net}` : flag;
            });
          };
          const env = { KUBECONFIG: cp.kubeconfigPath, NO_COLOR: "1" };
          const host = new URL(cp.server).host;
          const script = "echo from the example; echo to stderr >&2";
          const run = await new Deno.Command(Deno.execPath(), {
            args: ["run", ...await flagsOf("examples/pod_exec.ts", host), "examples/pod_exec.ts"]
              .concat(["web", "-n", NS, "-c", "main", "--", "sh", "-c", script]),
            cwd: repo,
            env,
            stdin: "null",
          }).output();
          const viaKubectl = await new Deno.Command("kubectl", {
            args: ["--kubeconfig", cp.kubeconfigPath, "exec", "-n", NS, "web", "-c", "main", "--"]
              .concat(["sh", "-c", script]),
          }).output();
          assert.equal(run.code, 0, decoder.decode(run.stderr));
          assert.equal(decoder.decode(run.stdout), decoder.decode(viaKubectl.stdout));
          assert.equal(decoder.decode(run.stderr), kubectlStderr(viaKubectl.stderr));

          // The API server and the local listener are both on 127.0.0.1 here.
          const child = new Deno.Command(Deno.execPath(), {
            args: ["run", ...await flagsOf("examples/port_forward.ts", "127.0.0.1")]
              .concat(["examples/port_forward.ts", "web", `0:${HTTP_PORT}`, "-n", NS])
              .concat(["--exit-after=60"]),
            cwd: repo,
            env,
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          let output = "";
          const reading = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
            new WritableStream({ write: (chunk) => void (output += chunk) }),
          );
          const errors = new Response(child.stderr).text();
          try {
            await eventually("the forwarder listens", () => {
              assert.match(output, /Forwarding from 127\.0\.0\.1:\d+ -> 80\n/);
            }, 20_000);
            const port = /127\.0\.0\.1:(\d+) ->/.exec(output)![1];
            const response = await fetch(`http://127.0.0.1:${port}/example`);
            assert.equal(await response.text(), "hello from /example\n");
          } finally {
            child.kill("SIGINT");
          }
          const status = await child.status;
          await reading;
          assert.equal(status.code, 0, await errors);
          assert.match(output, /Stopped\.\n$/);
        },
      );

      await certClient.delete(Api.v1Namespace(), NS);
      await cp.assertHealthy();
    } finally {
      await proxy.close();
      await targets.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
