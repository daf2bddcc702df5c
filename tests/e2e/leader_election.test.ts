// Leader election against the real kube-apiserver: three operator processes (separate `deno`
// subprocesses, tests/e2e/_lease_operator.ts) on one Lease, each reaching the API server through
// its own loopback TCP proxy so that the test can cut one off.
//
// Lease settings of this test (to keep CI short; the unit tests cover client-go's defaults):
// lease 5 s, renew deadline 3 s, retry 0.5 s (acquire attempts jittered up to 0.5 × 2.2 = 1.1 s).
// The 2 s between renew deadline and lease duration is the margin a cut-off leader has to stop
// before another may start (client-go's defaults: 5 s).
//
// Pass/fail is the safety order (a new leader starts only after the old one stopped, for the
// reason expected) and deterministic evidence (the released lease was observed empty); the times
// are printed for the notes and only checked against generous bounds, so that a loaded 2-core CI
// machine cannot fail them.
//
// Every write of a leader is an append "identity#transition@ms" to one ConfigMap (read, then
// update with the resourceVersion), so the ConfigMap holds the writes in commit order; the
// processes also print when their leader-only work starts and stops.

import assert from "node:assert/strict";
import { Api } from "../../api.ts";
import { e2eTest, kubectl, uniqueNamespace } from "./_harness.ts";
import { TcpProxy } from "./_tcp_proxy.ts";

const LEASE_MS = 5_000;
const RENEW_DEADLINE_MS = 3_000;
const RETRY_MS = 500;
const JITTER = 1.2;
/** Slack of the upper bounds: process scheduling and HTTP round trips on a loaded machine. */
const GENEROUS_MS = 10_000;

interface OpEvent {
  event: string;
  identity: string;
  transition?: number;
  at: number;
  error?: string;
  /** Of "stop": why the leader-only work was stopped. */
  reason?: string;
  /** Of "leader": the holder this replica saw ("" = released). */
  leader?: string;
}

class Operator {
  readonly events: OpEvent[] = [];
  child!: Deno.ChildProcess;
  proxy!: TcpProxy;
  killedAt: number | undefined;
  #reading: Promise<void> = Promise.resolve();
  constructor(readonly identity: string) {}

  async start(kubeconfig: string, namespace: string, target: { hostname: string; port: number }) {
    this.proxy = new TcpProxy(target);
    const config = JSON.parse(await Deno.readTextFile(kubeconfig));
    config.clusters[0].cluster.server = `https://127.0.0.1:${this.proxy.port}`;
    const path = await Deno.makeTempFile({ prefix: `kubeconfig-${this.identity}-` });
    await Deno.writeTextFile(path, JSON.stringify(config));
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./_lease_operator.ts", import.meta.url).pathname,
        path,
        namespace,
        this.identity,
      ],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          const event = JSON.parse(line) as OpEvent;
          this.events.push(event);
          if (event.event === "error") console.error(`${this.identity}: ${event.error}`);
        }
      }
      await Deno.remove(path).catch(() => {});
    })();
    await waitFor(
      () => this.events.some((e) => e.event === "ready"),
      60_000,
      `${this.identity} ready`,
    );
  }

  starts(after = 0): OpEvent[] {
    return this.events.filter((e) => e.event === "start" && e.at >= after);
  }

  /**
   * Sends `signal`; returns the time just before (what the next leader is searched and measured
   * from: nothing the signal causes can come earlier). For SIGKILL, the end of the process's term
   * is the time after the call returned: it may have run (and stamped a write) until then.
   */
  kill(signal: Deno.Signal): number {
    const before = Date.now();
    this.child.kill(signal);
    if (signal === "SIGKILL") this.killedAt = Date.now();
    return before;
  }

  get leading(): boolean {
    const last = this.events.filter((e) => e.event === "start" || e.event === "stop").at(-1);
    return last?.event === "start" && this.killedAt === undefined;
  }

  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // exited
    }
    const status = await this.child.status;
    await this.#reading;
    await this.proxy.close();
    return status;
  }
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

e2eTest("leader election: three operator processes on one Lease", async ({ cp, client, t }) => {
  const namespace = uniqueNamespace("lease");
  await client.create(Api.v1Namespace(), { metadata: { name: namespace } });
  await client.create(Api.v1ConfigMap().within(namespace), {
    metadata: { name: "ledger" },
    data: { log: "" },
  });
  const url = new URL(cp.server);
  const target = { hostname: url.hostname, port: Number(url.port) };
  const ops: Operator[] = [];
  const spawn = async (identity: string) => {
    const op = new Operator(identity);
    ops.push(op);
    await op.start(cp.kubeconfigPath, namespace, target);
    return op;
  };
  const leaders = () => ops.filter((o) => o.leading);
  const nextStart = async (after: number, what: string) => {
    let found: { op: Operator; event: OpEvent } | undefined;
    await waitFor(
      () => {
        for (const op of ops) {
          const event = op.starts(after)[0];
          if (event && (!found || event.at < found.event.at)) found = { op, event };
        }
        return found !== undefined;
      },
      30_000,
      what,
    );
    return found!;
  };
  const measured: Record<string, number> = {};

  try {
    await Promise.all(["op-1", "op-2", "op-3"].map(spawn));
    await nextStart(0, "a first leader");
    /** The one leader now (after waiting for there to be exactly one). */
    const theLeader = async () => {
      await waitFor(() => leaders().length === 1, 30_000, "one leader");
      return leaders()[0];
    };

    await t.step(
      "SIGKILL the leader: another leads within lease duration + retry period",
      async () => {
        const leader = await theLeader();
        const killedAt = leader.kill("SIGKILL");
        const next = await nextStart(killedAt, "a leader after SIGKILL");
        assert.notEqual(next.op, leader);
        measured.sigkill = next.event.at - killedAt;
        // The killed leader renewed less than a renew deadline before it died, and a standby
        // counts the lease duration from when it saw that renew: no takeover before the lease
        // could have expired.
        assert.ok(
          measured.sigkill >= LEASE_MS - RENEW_DEADLINE_MS,
          `takeover ${measured.sigkill} ms after SIGKILL: before the lease expired`,
        );
        assert.ok(
          measured.sigkill <= LEASE_MS + RETRY_MS * (1 + JITTER) + GENEROUS_MS,
          `takeover after SIGKILL took ${measured.sigkill} ms`,
        );
        await spawn("op-4");
      },
    );

    await t.step(
      "SIGTERM the leader: it releases, another leads within about a retry period",
      async () => {
        const old = await theLeader();
        const termAt = old.kill("SIGTERM");
        const next = await nextStart(termAt, "a leader after SIGTERM");
        measured.sigterm = next.event.at - termAt;
        assert.ok(
          measured.sigterm <= RETRY_MS * (1 + JITTER) + GENEROUS_MS,
          `takeover after SIGTERM took ${measured.sigterm} ms`,
        );
        assert.equal((await old.child.status).code, 0);
        assert.ok(old.events.some((e) => e.event === "exit"));
        // Its last term ended because of the SIGTERM (the process has exited: no later events).
        const stopped = old.events.filter((e) => e.event === "stop").at(-1);
        assert.ok(stopped && stopped.at >= old.starts().at(-1)!.at);
        assert.match(stopped.reason ?? "", /SIGTERM/, JSON.stringify(stopped));
        assert.ok(
          next.event.at >= stopped!.at,
          "the new leader started before the old one stopped",
        );
        // Handed over, not expired: the next leader saw the released (empty) lease before leading.
        const sawReleased = next.op.events.find((e) =>
          e.event === "leader" && e.leader === "" && e.at >= termAt && e.at <= next.event.at
        );
        assert.ok(sawReleased, `${next.op.identity} never saw the lease released`);
        await spawn("op-5");
      },
    );

    await t.step(
      "cut the leader off: it stops within the renew deadline, before the next leader starts",
      async () => {
        const old = await theLeader();
        const cutAt = Date.now();
        old.proxy.pause();
        await waitFor(
          () => old.events.some((e) => e.event === "stop" && e.at >= cutAt),
          RENEW_DEADLINE_MS + GENEROUS_MS,
          "the cut-off leader to stop",
        );
        const stopped = old.events.find((e) => e.event === "stop" && e.at >= cutAt)!;
        const stoppedAt = stopped.at;
        measured.cutStop = stoppedAt - cutAt;
        // It gave up by itself at its renew deadline (it cannot have seen another holder).
        assert.match(stopped.reason ?? "", /renew deadline/, JSON.stringify(stopped));
        assert.ok(
          measured.cutStop <= RENEW_DEADLINE_MS + GENEROUS_MS,
          `stopped ${measured.cutStop} ms after the cut`,
        );
        const next = await nextStart(cutAt, "a leader after the cut");
        assert.notEqual(next.op, old);
        measured.cutTakeover = next.event.at - cutAt;
        measured.cutGap = next.event.at - stoppedAt;
        assert.ok(
          next.event.at >= stoppedAt,
          `the new leader started ${stoppedAt - next.event.at} ms before the old one stopped`,
        );
        assert.ok(
          measured.cutTakeover >= LEASE_MS - RENEW_DEADLINE_MS,
          `taken over ${measured.cutTakeover} ms after the cut: before the lease expired`,
        );
        old.proxy.resume();
        await new Promise((r) => setTimeout(r, 2 * RETRY_MS * (1 + JITTER)));
        assert.equal(old.leading, false, "the reconnected replica stays a standby");
      },
    );

    await t.step("an API server restart does not create two leaders", async () => {
      const before = Date.now();
      await cp.restartApiServer();
      measured.restartMs = Date.now() - before;
      await waitFor(() => leaders().length === 1, 30_000, "one leader after the restart");
      await new Promise((r) => setTimeout(r, LEASE_MS));
      // (Leadership may change hands meanwhile; that no two terms overlap is checked below.)
      assert.ok(leaders().length <= 1, `leaders: ${leaders().map((o) => o.identity)}`);
      await waitFor(() => leaders().length === 1, 30_000, "one leader before shutdown");
    });
  } finally {
    // Standbys first, so that nobody campaigns when the leader releases the lease on SIGTERM: a
    // standby's takeover write in flight when its own SIGTERM aborts it may still land, leaving a
    // holder that never releases (and the check of an empty holder below flaky).
    const standbys = ops.filter((o) => !o.leading);
    await Promise.all(standbys.map((o) => o.stop()));
    await Promise.all(ops.filter((o) => !standbys.includes(o)).map((o) => o.stop()));
  }

  await t.step(
    "no two writers overlapped: terms, ledger order, kubectl's view of the Lease",
    async () => {
      // Terms from the processes' own reports (one machine: one clock).
      const terms: { id: string; transition: number; from: number; to: number }[] = [];
      for (const op of ops) {
        let open: OpEvent | undefined;
        for (const e of op.events) {
          if (e.event === "start") open = e;
          if (e.event === "stop" && open) {
            terms.push({ id: op.identity, transition: open.transition!, from: open.at, to: e.at });
            open = undefined;
          }
        }
        if (open) {
          terms.push({
            id: op.identity,
            transition: open.transition!,
            from: open.at,
            to: op.killedAt ?? Infinity,
          });
        }
      }
      terms.sort((a, b) => a.from - b.from);
      assert.ok(terms.length >= 4, `expected at least 4 terms, got ${terms.length}`);
      for (let i = 1; i < terms.length; i++) {
        assert.ok(
          terms[i].from >= terms[i - 1].to,
          `terms overlap: ${JSON.stringify(terms[i - 1])} and ${JSON.stringify(terms[i])}`,
        );
      }
      // The ledger, read by kubectl: commit order. Each writer term is one contiguous block, and
      // every write lies inside its writer's term.
      const log = await kubectl(
        cp.kubeconfigPath,
        "get",
        "configmap",
        "ledger",
        "-n",
        namespace,
        "-o",
        "jsonpath={.data.log}",
      );
      const writes = log.trim().split("\n").map((line) => {
        const [, writer, transition, at] = line.match(/^(.+)#(\d+)@(\d+)$/)!;
        return { writer: `${writer}#${transition}`, id: writer, at: Number(at) };
      });
      assert.ok(writes.length > 20, `only ${writes.length} writes`);
      const blocks: string[] = [];
      for (const w of writes) if (blocks.at(-1) !== w.writer) blocks.push(w.writer);
      assert.equal(
        new Set(blocks).size,
        blocks.length,
        `interleaved writers: ${blocks.join(" → ")}`,
      );
      for (const w of writes) {
        // (A replica that lost the lease and took it back before anyone else keeps its
        // transition number: one writer, two terms.)
        const term = terms.find((x) =>
          `${x.id}#${x.transition}` === w.writer && x.from <= w.at && w.at <= x.to
        );
        assert.ok(term, `write ${JSON.stringify(w)} outside its writer's terms`);
      }
      const lease = JSON.parse(
        await kubectl(
          cp.kubeconfigPath,
          "get",
          "lease",
          "lease-e2e",
          "-n",
          namespace,
          "-o",
          "json",
        ),
      );
      assert.equal(lease.spec.holderIdentity, "", "the last replica released the lease on SIGTERM");
      const transitions = blocks.map((b) => Number(b.split("#")[1]));
      assert.ok(transitions.every((n, i) => i === 0 || n > transitions[i - 1]), `${transitions}`);
      assert.ok(lease.spec.leaseTransitions >= transitions.at(-1)!);
      console.log(
        `leader election e2e: takeover after SIGKILL ${measured.sigkill} ms, after SIGTERM ${measured.sigterm} ms; cut-off leader stopped after ${measured.cutStop} ms, next leader started ${measured.cutTakeover} ms after the cut (${measured.cutGap} ms after the old one stopped); apiserver restart ${measured.restartMs} ms; ${writes.length} writes in ${blocks.length} terms (${
          blocks.join(" → ")
        })`,
      );
    },
  );
});
