// Where the CPU of a cluster edge's publishes goes, by process (bench/RESULTS.md,
// "Cluster", quotes it): a 3-node nats-server cluster, one edge on its first server,
// which leads the edge's stream (3 replicas), and one @gossip/client publishing 100 B to
// 10,000 ids with 1,000 publishes in flight for a while. Prints, over the window after
// a 3 s warm-up, each process's CPU (% of one core, and µs per acked publish, from
// /proc/<pid>/stat) and the rate. On this machine every process shares two cores: the
// edge's µs per publish is what an edge change can move.
//
// Run after `pnpm build`:
//   node bench/edge-cpu.mjs [seconds, 15] [gossipd main.cjs to run, the build's own]...
// With several main.cjs (another build's, copied aside), each runs in turn, in the order given.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bytesCodec, GossipClient } from '@gossip/client';
import { GOSSIPD, Gossipd, NatsCluster } from '@gossip/testing';
import { connect } from '@nats-io/transport-node';

const SECONDS = Number(process.argv[2] ?? 15);
const BINS = process.argv.length > 3 ? process.argv.slice(3) : [GOSSIPD];
const WARM_MS = 3_000;
const WINDOW = 1_000;
const DATA = Buffer.alloc(100, 0x61);
const IDS = Array.from({ length: 10_000 }, (_, i) => `id:${i}`);
const TICKS_PER_S = 100; // USER_HZ

/** CPU ticks (user + system) of `pid` so far. */
function ticks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function once(bin) {
  const nats = await NatsCluster.start();
  const dir = await mkdtemp(join(tmpdir(), 'gossip-edge-cpu-'));
  const edge = await Gossipd.start({
    bin,
    dataDir: dir,
    args: ['--cluster', nats.url(0), '--cluster-name', 'cpu'],
  });
  try {
    while ((await edge.admin('/readyz')).status !== 200) await sleep(20);
    const nc = await connect({ servers: nats.urls });
    await nats.leadStream(nc, 'GOSSIP_cpu', 0);
    await nc.close();
    const processes = [
      ...[0, 1, 2].map((i) => ({ name: `nats-server n${i}${i === 0 ? ' (leader)' : ''}`, pid: nats.pid(i) })),
      { name: 'gossipd edge', pid: edge.child.pid },
      { name: 'client (this process)', pid: process.pid },
    ];
    const c = new GossipClient({
      address: `127.0.0.1:${edge.port}`,
      codec: bytesCodec,
      reconnect: () => null,
      since: 'now',
      echo: false,
    });
    await c.connect();
    let sent = 0;
    let acked = 0;
    let stop = false;
    let failed;
    const done = new Promise((resolve) => {
      const pump = () => {
        if (stop || failed) {
          if (acked === sent || failed) resolve();
          return;
        }
        if (sent - acked > WINDOW / 2) return;
        while (sent - acked < WINDOW) {
          c.publish(IDS[sent++ % IDS.length], DATA).then(
            () => {
              acked++;
              pump();
            },
            (error) => {
              failed = error;
              resolve();
            },
          );
        }
      };
      pump();
    });
    await sleep(WARM_MS);
    const before = new Map(processes.map((p) => [p.pid, ticks(p.pid)]));
    const ackedBefore = acked;
    const t0 = performance.now();
    await sleep(SECONDS * 1000 - WARM_MS);
    const after = new Map(processes.map((p) => [p.pid, ticks(p.pid)]));
    const seconds = (performance.now() - t0) / 1000;
    const n = acked - ackedBefore;
    stop = true;
    await done;
    await c.close();
    if (failed) throw failed;
    console.log(`\n${bin}: ${Math.round(n / seconds)} acked publishes/s over ${seconds.toFixed(1)} s`);
    console.log('| process | CPU (% of a core) | µs per publish |\n| --- | --- | --- |');
    for (const p of processes) {
      const used = ((after.get(p.pid) ?? 0) - (before.get(p.pid) ?? 0)) / TICKS_PER_S;
      console.log(`| ${p.name} | ${Math.round((100 * used) / seconds)} | ${((used * 1e6) / n).toFixed(1)} |`);
    }
  } finally {
    await edge.kill();
    await rm(dir, { recursive: true, force: true });
    await nats.close();
  }
}

for (const bin of BINS) await once(bin);
