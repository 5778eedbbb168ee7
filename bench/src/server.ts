/**
 * End to end, gossipd in its own process: publish throughput (one pipelined client),
 * fan-out to 10 and 100 subscribers, publish→receive latency at a fixed rate, replay
 * of 1 M ids to a new client, and restart-to-ready with 1 M records (after SIGTERM,
 * from the checkpoint; after SIGKILL, by a scan).
 */
import { once } from 'node:events';
import { FrameKind, MIN_TS, now } from '@gossip/protocol';
import { Daemon } from './daemon.js';
import type { Row } from './measure.js';
import { WireClient } from './wire-client.js';

const DATA = Buffer.alloc(100, 0x61);
const IDS = Array.from({ length: 20_000 }, (_, i) => `id:${i}`);
const WINDOW = 20_000;

/** Publishes `total` messages from one pipelined client; resolves with messages/s once all are acked. */
export async function pipelinedPublish(port: number, total: number, ids: readonly string[] = IDS): Promise<number> {
  let sent = 0;
  let acked = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const ts0 = now();
  const c = await WireClient.connect(port, { since: null, echo: false });
  const pump = () => {
    if (sent - acked > WINDOW / 2) return;
    while (sent < total && sent - acked < WINDOW) {
      c.enc.publish(sent + 1, ids[sent % ids.length] as string, ts0 + BigInt(sent), DATA);
      sent++;
      if (c.enc.pendingBytes >= 64 * 1024) c.flush();
    }
    c.flush();
  };
  c.onFrame = (f) => {
    if (f.kind !== FrameKind.Ack) return;
    if (f.status === 2) throw new Error(`publish refused: ${f.code} ${f.message}`);
    acked++;
    if (acked === total) done();
    else pump();
  };
  const t0 = performance.now();
  pump();
  await finished;
  const rate = (total / (performance.now() - t0)) * 1000;
  c.close();
  return rate;
}

async function publishRate(mode: 'interval' | 'always', total: number): Promise<number> {
  const d = await Daemon.start(['--fsync', mode]);
  try {
    return await pipelinedPublish(d.port, total);
  } finally {
    await d.cleanup();
  }
}

async function fanout(subscribers: number, total: number): Promise<number> {
  const d = await Daemon.start(['--fsync', 'interval']);
  try {
    let received = 0;
    const want = subscribers * total;
    let done: () => void = () => undefined;
    const all = new Promise<void>((r) => {
      done = r;
    });
    const subs = await Promise.all(
      Array.from({ length: subscribers }, () =>
        WireClient.connect(d.port, { since: null }, (f) => {
          if (f.kind === FrameKind.Message && ++received === want) done();
        }),
      ),
    );
    const t0 = performance.now();
    await pipelinedPublish(d.port, total);
    await all;
    const rate = (want / (performance.now() - t0)) * 1000;
    for (const s of subs) s.close();
    return rate;
  } finally {
    await d.cleanup();
  }
}

/** Publishes at `rate` msgs/s for `seconds`; each message carries its send time; subscribers record the delay. */
async function latency(subscribers: number, rate: number, seconds: number): Promise<{ p50: number; p99: number }> {
  const d = await Daemon.start(['--fsync', 'interval']);
  try {
    const samples: number[] = [];
    const subs = await Promise.all(
      Array.from({ length: subscribers }, () =>
        WireClient.connect(d.port, { since: null }, (f) => {
          if (f.kind === FrameKind.Message)
            samples.push(Number(process.hrtime.bigint() - f.data.readBigUInt64BE(0)) / 1e6);
        }),
      ),
    );
    const pub = await WireClient.connect(d.port, { since: null, echo: false });
    const data = Buffer.alloc(100);
    const ts0 = now();
    let sent = 0;
    // Paced by a 1 ms timer, not a spinning loop: the benchmark process must not eat the
    // core the server needs. The first half second warms up (JIT, TCP) and is not counted.
    const send = (n: number) => {
      for (let i = 0; i < n; i++) {
        data.writeBigUInt64BE(process.hrtime.bigint(), 0);
        pub.enc.publish(sent + 1, IDS[sent % IDS.length] as string, ts0 + BigInt(sent), data);
        sent++;
      }
      pub.flush();
    };
    const run = (ms: number) =>
      new Promise<void>((resolve) => {
        const t0 = performance.now();
        let due = 0;
        const timer = setInterval(() => {
          const elapsed = performance.now() - t0;
          const target = Math.floor((Math.min(elapsed, ms) / 1000) * rate);
          send(target - due);
          due = target;
          if (elapsed >= ms) {
            clearInterval(timer);
            resolve();
          }
        }, 1);
      });
    await run(500);
    while (samples.length < sent * subscribers) await new Promise((r) => setTimeout(r, 20));
    samples.length = 0;
    const before = sent;
    await run(seconds * 1000);
    const total = sent - before;
    while (samples.length < total * subscribers) await new Promise((r) => setTimeout(r, 20));
    for (const s of [...subs, pub]) s.close();
    samples.sort((a, b) => a - b);
    return {
      p50: samples[Math.floor(samples.length * 0.5)] as number,
      p99: samples[Math.floor(samples.length * 0.99)] as number,
    };
  } finally {
    await d.cleanup();
  }
}

async function replayAndRestart(ids: number): Promise<Row[]> {
  const d = await Daemon.start(['--fsync', 'never']);
  const names = Array.from({ length: ids }, (_, i) => `id:${i}`);
  await pipelinedPublish(d.port, ids, names);
  let count = 0;
  const t0 = performance.now();
  const c = await WireClient.connect(d.port, { since: MIN_TS }, (f) => {
    if (f.kind === FrameKind.Message) count++;
  });
  const replayMs = performance.now() - t0;
  c.close();
  await d.stop();
  // After SIGTERM: the clean stop's checkpoint is loaded.
  const again = await Daemon.start([], d.dataDir);
  // After SIGKILL: no checkpoint, every record is scanned.
  again.child.kill('SIGKILL');
  await once(again.child, 'exit');
  const scanned = await Daemon.start([], d.dataDir);
  await scanned.cleanup();
  const label = `${ids / 1e6} M ids`;
  return [
    { bench: 'server', case: `replay ${label} to a new client`, value: (count / replayMs) * 1000, unit: 'messages/s' },
    { bench: 'server', case: `restart to ready after SIGTERM, ${label}`, value: again.startMs, unit: 'ms' },
    { bench: 'server', case: `  of which recovery (checkpoint)`, value: again.recoveryMs, unit: 'ms' },
    { bench: 'server', case: `restart to ready after SIGKILL, ${label}`, value: scanned.startMs, unit: 'ms' },
    { bench: 'server', case: `  of which recovery (scan)`, value: scanned.recoveryMs, unit: 'ms' },
  ];
}

export async function serverBench(): Promise<Row[]> {
  const scale = Number(process.env.GOSSIP_BENCH_SCALE ?? 1);
  const n = Math.round(500_000 * scale);
  const rows: Row[] = [];
  rows.push({
    bench: 'server',
    case: 'publish 100 B, interval, 1 pipelined client',
    value: await publishRate('interval', n),
    unit: 'msgs/s',
  });
  rows.push({
    bench: 'server',
    case: 'publish 100 B, always, 1 pipelined client',
    value: await publishRate('always', n),
    unit: 'msgs/s',
  });
  for (const subs of [10, 100]) {
    const total = Math.round((subs === 10 ? 200_000 : 20_000) * scale);
    rows.push({
      bench: 'server',
      case: `fan-out 1 → ${subs} subscribers`,
      value: await fanout(subs, total),
      unit: 'delivered/s',
    });
  }
  const lat = await latency(10, 10_000, Math.max(1, Math.round(3 * scale)));
  rows.push({ bench: 'server', case: 'publish→receive p50, 10 subs at 10 k msg/s', value: lat.p50, unit: 'ms' });
  rows.push({ bench: 'server', case: 'publish→receive p99, 10 subs at 10 k msg/s', value: lat.p99, unit: 'ms' });
  rows.push(...(await replayAndRestart(Math.round(1_000_000 * scale))));
  return rows;
}
