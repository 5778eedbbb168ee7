/**
 * What the cluster test files share: per test, a real 3-node nats-server JetStream
 * cluster (NatsCluster), gossipd edges over it, @gossip/client clients of them, and,
 * when a test fails, what its edges warned of.
 */
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { GossipClient } from '@gossip/client';
import { type Gossipd, NatsCluster } from '@gossip/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach } from 'vitest';
import { harness } from './harness.js';

/** Polls `check` until it returns something other than undefined, or fails after `ms`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const bytes = (s: string) => Buffer.from(s);

/** The value of a family without labels on `d`'s /metrics (NaN when it has none). */
export async function metric(d: Gossipd, family: string): Promise<number> {
  const { text: metrics } = await d.admin('/metrics');
  return Number(new RegExp(`^${family} (\\S+)$`, 'm').exec(metrics)?.[1]);
}
export const text = (v: Uint8Array | undefined) => (v === undefined ? undefined : Buffer.from(v).toString());

export function clusterKit() {
  const h = harness();
  const clusters: NatsCluster[] = [];
  /** What this test's edges logged at warn and above, from their start: shown when the test fails. */
  let warned: string[] = [];
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' || process.env.GOSSIP_TEST_TRACE)
      for (const l of warned.slice(-30)) console.log(l);
    warned = [];
    await Promise.all(clusters.splice(0).map((c) => c.close()));
  });

  let names = 0;
  /** A cluster name of its own per test: each test's log is its own stream. */
  const clusterName = () => `t${process.pid}x${++names}`;

  /** A 3-node cluster of this test; `args`: more flags for every node (auth, TLS). */
  async function natsCluster(args: string[] = []): Promise<NatsCluster> {
    const c = await NatsCluster.start({ dir: await h.tmp('gossip-nats-'), args });
    clusters.push(c);
    return c;
  }

  async function readyz(d: Gossipd): Promise<{ status: number; text: string }> {
    return d.admin('/readyz');
  }

  /**
   * Starts an edge of `nats` and waits until it has caught up: in `dataDir` (a new folder
   * unless given), with more `args`, given `servers` instead of the cluster's own
   * addresses (a proxy's), and `env` added to its environment.
   */
  async function edge(
    nats: NatsCluster,
    name: string,
    {
      dataDir,
      args = [],
      servers = nats.urls,
      env = {},
    }: { dataDir?: string; args?: string[]; servers?: string[]; env?: Record<string, string> } = {},
  ): Promise<Gossipd> {
    const d = await h.start({
      ...(dataDir ? { dataDir } : {}),
      env,
      args: ['--cluster', servers.join(','), '--cluster-name', name, ...args],
      onLog: (l) => {
        if ((l.level ?? 0) < 40) return;
        const { msg, time, pid, hostname, ...fields } = l as typeof l & Record<string, unknown>;
        warned.push(`edge of ${name}: ${msg} ${JSON.stringify(fields).slice(0, 300)}`);
      },
    });
    // a new edge catches up before it is ready: under a loaded CI machine that may take a while
    await eventually(
      `edge on ${d.port} ready`,
      async () => ((await readyz(d)).status === 200 ? true : undefined),
      120_000,
    );
    return d;
  }

  function client(...edges: Gossipd[]): GossipClient {
    return h.keep(
      new GossipClient({
        address: edges.map((e) => `127.0.0.1:${e.port}`),
        since: 'all',
        reconnect: (attempt) => Math.min(50 * 2 ** attempt, 500),
        publishTimeoutMs: 30_000,
      }),
    );
  }

  /**
   * A TCP proxy to one NATS server, whose link can be cut (its connections closed, new
   * ones refused) and restored: an edge behind it is cut off from the cluster while the
   * rest goes on.
   */
  async function natsProxy(target: string) {
    const { hostname, port } = new URL(target);
    const sockets = new Set<Socket>();
    let cut = false;
    const server = createServer((inbound) => {
      if (cut) {
        inbound.destroy();
        return;
      }
      const outbound = netConnect(Number(port), hostname);
      for (const [s, other] of [
        [inbound, outbound],
        [outbound, inbound],
      ] as const) {
        sockets.add(s);
        s.pipe(other);
        s.on('error', () => other.destroy());
        s.on('close', () => {
          sockets.delete(s);
          other.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    h.keep({
      close: async () => {
        for (const s of sockets) s.destroy();
        server.close();
      },
    });
    return {
      url: `nats://127.0.0.1:${address.port}`,
      cut() {
        cut = true;
        for (const s of sockets) s.destroy();
      },
      restore() {
        cut = false;
      },
    };
  }

  /** What JetStream holds of a cluster's stream. */
  async function streamState(nats: NatsCluster, name: string) {
    const nc = await connect({ servers: nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(`GOSSIP_${name}`);
      return { ...info.state, leader: info.cluster?.leader, replicas: info.config.num_replicas };
    } finally {
      await nc.close();
    }
  }

  /** A cluster of its own, a log name of its own, and two ready edges of that log. */
  async function twoEdges(args: string[] = []) {
    const nats = await natsCluster();
    const name = clusterName();
    const a = await edge(nats, name, { args });
    const b = await edge(nats, name, { args });
    return { nats, name, a, b };
  }

  return { h, natsCluster, clusterName, readyz, edge, twoEdges, client, streamState, natsProxy };
}
