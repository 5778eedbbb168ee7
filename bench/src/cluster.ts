/**
 * Cluster mode (docs/CLUSTER.md), every process on this machine: a 3-node nats-server
 * JetStream cluster, streams of 3 replicas, gossipd edges over it.
 *
 * - acked publishes through one edge with @gossip/client, beside nats.js publishing
 *   into a stream of the same replication (and one message kept per subject), with the
 *   same window, payload and ids, through the same NATS server, which leads every one
 *   of their streams, in the same run (goal: the edge ≥ 0.8× nats.js);
 *   one-node gossipd (its defaults) beside both;
 * - fan-out: one publisher on one edge, a subscriber on each of 3 edges;
 * - failover: a subscriber given two edges' addresses, its edge SIGKILLed while another
 *   edge's publisher goes on: kill → first message on the other edge (goal: < 1 s);
 * - catch-up: a new edge joining a stream of GOSSIP_CLUSTER_IDS ids (default 1 M),
 *   spawn → /readyz 200.
 */
import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GossipClient } from '@gossip/client';
import { Gossipd, NatsCluster, natsServerBinary } from '@gossip/testing';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { FanoutBatcher } from '../../apps/gossipd/src/cluster/fanout.js';
import { clientPublisher } from './client-publisher.js';
import { goal, type Row, sleep } from './measure.js';
import { deferred, PAYLOAD_BYTES, type Publisher, windowedPublish } from './publish.js';

const WINDOW = 1_000;
/** The throughput rows run in turn this many times; each row shows its best (this machine is shared and noisy). */
const ROUNDS = 4;
const TOTAL = Number(process.env.GOSSIP_CLUSTER_PUBLISHES ?? 30_000);
const CATCH_UP_IDS = Number(process.env.GOSSIP_CLUSTER_IDS ?? 1_000_000);
const DATA = Buffer.alloc(PAYLOAD_BYTES, 0x61);
const IDS = Array.from({ length: 10_000 }, (_, i) => `id:${i}`);

/** nats.js's own JetStream publish, one per message, as a `Publisher` for windowedPublish. */
function natsPublisher(nc: NatsConnection, prefix: string): Publisher {
  const js = jetstream(nc);
  const pub: Publisher = {
    send: (id, data) =>
      void js.publish(`${prefix}.${Buffer.from(id).toString('base64url')}`, data).then(
        () => pub.onAck(1),
        (e: Error) => pub.onError(e),
      ),
    flush: () => undefined,
    onAck: () => undefined,
    onError: () => undefined,
    close: async () => undefined,
  };
  return pub;
}

/**
 * nats.js doing the stream work an edge does per publish, with nothing of gossip: a
 * compare-and-set on the subject's last sequence with the message id the edges send,
 * and what the stream took published over core NATS, in batches, as the edges' fan-out
 * does (docs/CLUSTER.md, "Following the stream"). Like the one edge of the row beside
 * it, nobody else listens to the fan-out. What the edge's layer costs is its distance
 * from this; the rest is the stream's.
 */
function natsEdgeWorkPublisher(
  nc: NatsConnection,
  prefix: string,
  /** Each subject's last sequence, known from the publishes before (an edge's copy knows it). */
  last: Map<string, number>,
): Publisher {
  const js = jetstream(nc);
  // the edges' own batcher: its layout, its turn and its size limit
  const fanout = new FanoutBatcher(
    (batch) => nc.publish(`${prefix}.fanout`, batch),
    () => (nc.info?.max_payload ?? 1024 * 1024) - 512,
  );
  const pub: Publisher = {
    send: (id, data) => {
      const token = Buffer.from(id).toString('base64url');
      const subject = `${prefix}.id.${token}`;
      const expected = last.get(subject) ?? 0;
      void js.publish(subject, data, { expect: { lastSubjectSequence: expected }, msgID: `${expected}@${token}` }).then(
        (ack) => {
          last.set(subject, ack.seq);
          fanout.add(ack.seq, subject, data);
          pub.onAck(1);
        },
        (e: Error) => pub.onError(e),
      );
    },
    flush: () => undefined,
    onAck: () => undefined,
    onError: () => undefined,
    close: async () => {
      fanout.flush();
    },
  };
  return pub;
}

async function readyEdge(nats: NatsCluster, name: string, servers = nats.urls): Promise<Gossipd> {
  const dir = await mkdtemp(join(tmpdir(), 'gossip-bench-edge-'));
  const d = await Gossipd.start({
    dataDir: dir,
    stderr: 'inherit',
    args: ['--cluster', servers.join(','), '--cluster-name', name],
  });
  for (;;) {
    if ((await d.admin('/readyz')).status === 200) return d;
    await sleep(20);
  }
}

export async function clusterBench(): Promise<Row[]> {
  const rows: Row[] = [];
  const bin = await natsServerBinary();
  const found = await access(bin, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!found) {
    // the other suites still run: this one needs nats-server (Debian: apt-get install nats-server)
    console.warn(`cluster: skipped, no nats-server at ${bin} (apt-get install nats-server, or GOSSIP_NATS_SERVER)`);
    return rows;
  }
  const nats = await NatsCluster.start();
  const edges: Gossipd[] = [];
  const nc = await connect({ servers: nats.urls, noAsyncTraces: true });
  try {
    // --- throughput: one edge, nats.js, one node, in turn, ROUNDS times -----------------
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], num_replicas: 3, max_msgs_per_subject: 1 });
    // as an edge makes its stream (apps/gossipd/src/cluster/edge.ts)
    await jsm.streams.add({
      name: 'WORK',
      subjects: ['work.id.>'],
      num_replicas: 3,
      max_msgs_per_subject: 1,
      duplicate_window: 2e9,
      allow_direct: true,
    });
    // The throughput rows: every publisher on the first server, which leads every stream.
    const nc0 = await connect({ servers: [nats.url(0)], noAsyncTraces: true });
    const edge = await readyEdge(nats, 'bench', [nats.url(0)]);
    edges.push(edge);
    for (const stream of ['BENCH', 'WORK', 'GOSSIP_bench']) await nats.leadStream(nc, stream, 0);
    const single = await Gossipd.start({ stderr: 'inherit', admin: false });
    const rates = { edge: [] as number[], nats: [] as number[], work: [] as number[], single: [] as number[] };
    const workLast = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      const e = await clientPublisher('127.0.0.1', edge.port);
      rates.edge.push(await windowedPublish(e, TOTAL, IDS, WINDOW, DATA));
      await e.close();
      rates.nats.push(await windowedPublish(natsPublisher(nc0, 'bench.id'), TOTAL, IDS, WINDOW, DATA));
      const w = natsEdgeWorkPublisher(nc0, 'work', workLast);
      rates.work.push(await windowedPublish(w, TOTAL, IDS, WINDOW, DATA));
      await w.close();
      const s = await clientPublisher('127.0.0.1', single.port);
      rates.single.push(await windowedPublish(s, TOTAL, IDS, WINDOW, DATA));
      await s.close();
    }
    await single.cleanup();
    await nc0.close();
    const best = (xs: number[]) => Math.max(...xs);
    const ratio = best(rates.edge) / best(rates.nats);
    rows.push({
      bench: 'cluster',
      case: `acked publishes through one edge (@gossip/client, ${WINDOW} in flight, R3)`,
      value: best(rates.edge),
      unit: 'msgs/s',
      baseline: `nats.js into an R3 stream: ${Math.round(best(rates.nats))}/s`,
      ratio,
      goal: goal('≥ 0.8× nats.js', ratio >= 0.8),
    });
    rows.push({
      bench: 'cluster',
      case: `nats.js publishes into an R3 stream (${WINDOW} in flight)`,
      value: best(rates.nats),
      unit: 'msgs/s',
    });
    rows.push({
      bench: 'cluster',
      case: `nats.js doing the edge's stream work: compare-and-set + message id, what the stream took published as the fan-out (${WINDOW} in flight)`,
      value: best(rates.work),
      unit: 'msgs/s',
      baseline: 'the edge',
      ratio: best(rates.work) / best(rates.edge),
    });
    rows.push({
      bench: 'cluster',
      case: `one-node gossipd (@gossip/client, ${WINDOW} in flight, --fsync interval)`,
      value: best(rates.single),
      unit: 'msgs/s',
      baseline: 'the edge',
      ratio: best(rates.single) / best(rates.edge),
    });

    // --- fan-out across 3 edges ---------------------------------------------------------
    const fan = [edge, await readyEdge(nats, 'bench'), await readyEdge(nats, 'bench')];
    edges.push(fan[1] as Gossipd, fan[2] as Gossipd);
    const subs = await Promise.all(
      fan.map(async (d) => {
        const c = new GossipClient({ address: `127.0.0.1:${d.port}`, since: 'now' });
        await c.connect();
        return c;
      }),
    );
    const fanTotal = TOTAL;
    const allIn = deferred();
    let received = 0;
    for (const c of subs)
      c.on('message', () => {
        if (++received === fanTotal * subs.length) allIn.resolve();
      });
    const t0 = performance.now();
    const p = await clientPublisher('127.0.0.1', edge.port);
    await windowedPublish(
      p,
      fanTotal,
      IDS.map((id) => `fan:${id}`),
      WINDOW,
      DATA,
    );
    await allIn.promise;
    const fanRate = (fanTotal * subs.length) / ((performance.now() - t0) / 1000);
    await p.close();
    await Promise.all(subs.map((c) => c.close()));
    rows.push({
      bench: 'cluster',
      case: `fan-out: 1 publisher on one edge, a subscriber on each of 3 edges (${fanTotal} msgs)`,
      value: fanRate,
      unit: 'deliveries/s',
    });

    // --- throughput again, with the two other edges following (applying every message) ----
    const followed: number[] = [];
    for (let round = 0; round < 2; round++) {
      const e = await clientPublisher('127.0.0.1', edge.port);
      followed.push(await windowedPublish(e, TOTAL, IDS, WINDOW, DATA));
      await e.close();
    }
    rows.push({
      bench: 'cluster',
      case: `acked publishes through one edge while 2 more edges follow it, all on this machine (${WINDOW} in flight, R3)`,
      value: best(followed),
      unit: 'msgs/s',
      baseline: `nats.js into an R3 stream, earlier in this run: ${Math.round(best(rates.nats))}/s`,
      ratio: best(followed) / best(rates.nats),
    });

    // --- failover -----------------------------------------------------------------------
    const [a, b] = [fan[1] as Gossipd, fan[2] as Gossipd];
    const sub = new GossipClient({ address: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], since: 'now' });
    await sub.connect();
    const writer = new GossipClient({ address: `127.0.0.1:${b.port}` });
    await writer.connect();
    let stop = false;
    let n = 0;
    const writing = (async () => {
      while (!stop) {
        await writer.publish(`beat:${n++ % 100}`, DATA);
        await sleep(2);
      }
    })();
    await sleep(200);
    let killedAt = 0;
    let moved = false;
    const back = deferred<number>();
    // the first message through the other edge: what the subscriber waited for
    sub.on('connect', () => {
      moved = killedAt > 0;
    });
    sub.on('message', () => {
      if (moved) back.resolve(performance.now() - killedAt);
    });
    killedAt = performance.now();
    await a.kill();
    const failoverMs = await back.promise;
    stop = true;
    await writing;
    await sub.close();
    await writer.close();
    rows.push({
      bench: 'cluster',
      case: 'failover: edge SIGKILLed → its subscriber receives on another edge (default reconnect)',
      value: failoverMs,
      unit: 'ms',
      goal: goal('< 1 s', failoverMs < 1000),
    });

    // --- catch-up of a new edge -----------------------------------------------------------
    // the ids written straight into the stream in the edge's record format (docs/CLUSTER.md, "Records")
    const fill = await readyEdge(nats, 'catchup'); // creates the stream and its epoch
    edges.push(fill);
    const js = jetstream(nc);
    const body = Buffer.alloc(17 + PAYLOAD_BYTES, 0x61);
    body[0] = 1;
    body.writeBigUInt64BE(0n, 9);
    const ts0 = BigInt(Date.now()) * 1_000_000n;
    const t1 = performance.now();
    for (let i = 0; i < CATCH_UP_IDS; i += WINDOW) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(i + WINDOW, CATCH_UP_IDS); j++) {
        const b2 = Buffer.from(body);
        b2.writeBigInt64BE(ts0 + BigInt(j), 1);
        batch.push(js.publish(`gossip.catchup.id.${Buffer.from(`c:${j}`).toString('base64url')}`, b2));
      }
      await Promise.all(batch);
    }
    const fillS = (performance.now() - t1) / 1000;
    const spawned = performance.now();
    const late = await readyEdge(nats, 'catchup');
    edges.push(late);
    const catchUpMs = performance.now() - spawned;
    rows.push({
      bench: 'cluster',
      case: `a new edge catches up on ${CATCH_UP_IDS} ids: spawn → /readyz 200 (filled in ${fillS.toFixed(0)} s)`,
      value: catchUpMs,
      unit: 'ms',
    });
  } finally {
    await nc.close();
    await Promise.all(edges.map((d) => d.kill().then(() => rm(d.dataDir, { recursive: true, force: true }))));
    await nats.close();
  }
  return rows;
}
