/**
 * Subscriptions by prefix (docs/PROTOCOL.md, B1–B7), end to end against gossipd, through
 * @gossip/client as users run it (GossipClients publishing with 1,000 in flight, as in the
 * peers run, and subscribing):
 * - fan-out by prefix: 1,000 subscribers each on a prefix of its own, one publisher over
 *   all the prefixes; delivered messages/s and gossipd's CPU per delivered message, beside
 *   the same subscribers unscoped (each then receives every message, and the 1,000
 *   clients in this one process bound that figure);
 * - the replay of a prefix holding 1,000 ids in a store of 1 M ids, from subscribe() to
 *   its prefix-done, beside the full replay of the same store (goal: under 5 ms); the
 *   wire client's figure beside it is the server's ceiling;
 * - the cost of matching alone: publish throughput with 1,000 connected subscribers
 *   whose prefixes match none of the published ids, beside no subscribers (goal: within
 *   10 %).
 * Filling the stores is not measured and uses the server suite's wire publisher.
 */
import { readFileSync } from 'node:fs';
import { bytesCodec, GossipClient } from '@gossip/client';
import { FrameKind, MIN_TS } from '@gossip/protocol';
import { type Gossipd, RawClient } from '@gossip/testing';
import { clientPublisher } from './client-publisher.js';
import type { Row } from './measure.js';
import { PAYLOAD_BYTES, windowedPublish } from './publish.js';
import { pipelinedPublish, startGossipd } from './server.js';

const IDS = Array.from({ length: 20_000 }, (_, i) => `id:${i}`);

const SUBSCRIBERS = 1_000;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime: 100 on Linux. */
const CLOCK_TICKS = 100;

/** CPU time `pid` has used, user and system, in ms (Linux /proc). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name, which may hold spaces, inside parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1000;
}

/** Unacknowledged publishes of the publisher, as in the peers run (GOSSIP_PEERS_WINDOW's default). */
const WINDOW = 1_000;
const DATA = Buffer.alloc(PAYLOAD_BYTES, 0x61);

/**
 * `n` GossipClients, client i made with `prefixes(i)` (none: unscoped), live only;
 * resolves once each is connected. `onMessage` counts their 'message' events.
 */
async function subscribers(
  d: Gossipd,
  n: number,
  prefixes: (i: number) => string[] | undefined,
  onMessage: () => void,
): Promise<GossipClient<Uint8Array>[]> {
  const clients: GossipClient<Uint8Array>[] = [];
  // In groups, so the accept queue never overflows.
  for (let i = 0; i < n; i += 100) {
    const group = Array.from({ length: Math.min(100, n - i) }, (_, k) => {
      const p = prefixes(i + k);
      const c = new GossipClient({
        address: `127.0.0.1:${d.port}`,
        codec: bytesCodec,
        since: 'now',
        reconnect: () => null,
        ...(p === undefined ? {} : { prefixes: p }),
      });
      c.on('message', onMessage);
      return c.connect().then(() => c);
    });
    clients.push(...(await Promise.all(group)));
  }
  return clients;
}

/** One GossipClient publishing `total` messages over `ids`, `WINDOW` in flight; msgs/s. */
async function publish(d: Gossipd, total: number, ids: readonly string[]): Promise<number> {
  const pub = await clientPublisher('127.0.0.1', d.port);
  try {
    return await windowedPublish(pub, total, ids, WINDOW, DATA);
  } finally {
    await pub.close();
  }
}

/** Delivered messages/s and gossipd's CPU µs per delivered message, for one publisher's `total` messages over `ids`. */
async function fanout(scoped: boolean, total: number): Promise<{ rate: number; cpuUs: number }> {
  const d = await startGossipd({ args: ['--fsync', 'interval'] });
  try {
    const ids = Array.from({ length: 20_000 }, (_, i) => `p${i % SUBSCRIBERS}/k${i}`);
    let received = 0;
    const want = scoped ? total : total * SUBSCRIBERS;
    let done: () => void = () => undefined;
    const all = new Promise<void>((r) => {
      done = r;
    });
    const subs = await subscribers(
      d,
      SUBSCRIBERS,
      (i) => (scoped ? [`p${i}/`] : undefined),
      () => {
        if (++received === want) done();
      },
    );
    const cpu0 = cpuMs(d.child.pid as number);
    const t0 = performance.now();
    await publish(d, total, ids);
    await all;
    const ms = performance.now() - t0;
    const cpu = cpuMs(d.child.pid as number) - cpu0;
    await Promise.all(subs.map((s) => s.close()));
    return { rate: (want / ms) * 1000, cpuUs: (cpu * 1000) / want };
  } finally {
    await d.cleanup();
  }
}

/** Full replay of a 1 M-id store, and replays of a prefix that holds 1,000 of its ids (median of 9). */
async function prefixReplay(ids: number): Promise<{ fullMs: number; prefixMs: number; clientMs: number }> {
  const d = await startGossipd({ args: ['--fsync', 'never'] });
  try {
    // Every thousandth id is under hot/: its records lie all over the log.
    const every = Math.round(ids / 1_000);
    const names = Array.from({ length: ids }, (_, i) => (i % every === 0 ? `hot/${i}` : `bulk/${i}`));
    await pipelinedPublish(d.port, ids, names);
    let full = 0;
    const t0 = performance.now();
    const all = await RawClient.dial(d.port, {
      hello: { since: MIN_TS },
      until: 'replay-done',
      keep: false,
      onFrame: (f) => {
        if (f.kind === FrameKind.Message) full++;
      },
    });
    const fullMs = performance.now() - t0;
    all.close();
    if (full !== ids) throw new Error(`the full replay sent ${full} of ${ids} ids`);
    // One connection that holds no prefix, then subscribes to hot/ and drops it again.
    let count = 0;
    let ended: (() => void) | undefined;
    let acked: (() => void) | undefined;
    const c = await RawClient.dial(d.port, {
      hello: { prefixes: [] },
      until: 'welcome',
      keep: false,
      onFrame: (f) => {
        if (f.kind === FrameKind.Message) count++;
        else if (f.kind === FrameKind.PrefixDone) ended?.();
        else if (f.kind === FrameKind.Ack) acked?.();
      },
    });
    const times: number[] = [];
    let reqId = 1;
    for (let round = 0; round < 9; round++) {
      count = 0;
      const prefixDone = new Promise<void>((r) => {
        ended = r;
      });
      const t1 = performance.now();
      c.send(c.enc.subscribe(reqId++, 'hot/', MIN_TS, null).take());
      await prefixDone;
      times.push(performance.now() - t1);
      if (count !== 1_000) throw new Error(`the replay of hot/ sent ${count} messages, not 1,000`);
      const unsubscribed = new Promise<void>((r) => {
        acked = r;
      });
      c.send(c.enc.unsubscribe(reqId++, 'hot/').take());
      await unsubscribed;
    }
    c.close();
    times.sort((a, b) => a - b);
    // The same through @gossip/client, as users run it: subscribe() resolves at the prefix's prefix-done.
    const client = new GossipClient({ address: `127.0.0.1:${d.port}`, codec: bytesCodec, prefixes: [] });
    await client.connect();
    let seen = 0;
    client.on('message', () => {
      seen++;
    });
    const viaClient: number[] = [];
    for (let round = 0; round < 9; round++) {
      seen = 0;
      const t1 = performance.now();
      await client.subscribe('hot/', { since: 'all' });
      viaClient.push(performance.now() - t1);
      if (seen !== 1_000) throw new Error(`the client's replay of hot/ gave ${seen} messages, not 1,000`);
      await client.unsubscribe('hot/');
    }
    await client.close();
    viaClient.sort((a, b) => a - b);
    return { fullMs, prefixMs: times[4] as number, clientMs: viaClient[4] as number };
  } finally {
    await d.cleanup();
  }
}

/** Publish throughput with `subs` subscribers connected on prefixes none of the published ids has. */
async function publishBeside(subs: number, total: number): Promise<number> {
  const d = await startGossipd({ args: ['--fsync', 'interval'] });
  try {
    let stray = 0;
    const clients = await subscribers(
      d,
      subs,
      (i) => [`none${i}/`],
      () => {
        stray++;
      },
    );
    const rate = await publish(d, total, IDS);
    await Promise.all(clients.map((c) => c.close()));
    if (stray !== 0) throw new Error(`${stray} messages reached subscribers whose prefixes match none`);
    return rate;
  } finally {
    await d.cleanup();
  }
}

/** gossipd's resident memory per id once it holds `ids` ids (one 100-byte record each), over its empty start. */
export async function rssPerId(ids: number, bin?: string): Promise<{ perId: number; idBytes: number }> {
  const d = await startGossipd({ args: ['--fsync', 'never'], ...(bin === undefined ? {} : { bin }) });
  try {
    const settle = () => new Promise((r) => setTimeout(r, 1_000));
    await settle();
    const before = (await d.memory()).rss;
    const names = Array.from({ length: ids }, (_, i) => `id:${i}`);
    await pipelinedPublish(d.port, ids, names);
    await settle();
    const after = (await d.memory()).rss;
    const idBytes = names.reduce((n, id) => n + id.length, 0) / ids;
    return { perId: (after - before) / ids, idBytes };
  } finally {
    await d.cleanup();
  }
}

export async function prefixesBench(): Promise<Row[]> {
  const scale = Number(process.env.GOSSIP_BENCH_SCALE ?? 1);
  const rows: Row[] = [];
  const scoped = await fanout(true, Math.round(200_000 * scale));
  const unscoped = await fanout(false, Math.round(2_000 * scale));
  rows.push(
    { bench: 'prefixes', case: '1,000 subscribers, a prefix each: delivered', value: scoped.rate, unit: 'msgs/s' },
    { bench: 'prefixes', case: '  gossipd CPU per delivered message', value: scoped.cpuUs, unit: 'µs' },
    { bench: 'prefixes', case: '1,000 subscribers, unscoped: delivered', value: unscoped.rate, unit: 'msgs/s' },
    { bench: 'prefixes', case: '  gossipd CPU per delivered message', value: unscoped.cpuUs, unit: 'µs' },
  );
  const replay = await prefixReplay(Math.round(1_000_000 * scale));
  rows.push(
    {
      bench: 'prefixes',
      case: 'replay of a prefix of 1,000 ids in 1 M, @gossip/client (goal < 5 ms)',
      value: replay.clientMs,
      unit: 'ms',
      baseline: `full replay ${replay.fullMs.toFixed(0)} ms`,
      ratio: replay.clientMs / replay.fullMs,
    },
    {
      bench: 'prefixes',
      case: '  the same, wire client (server ceiling)',
      value: replay.prefixMs,
      unit: 'ms',
    },
  );
  const rssIds = Math.round(2_000_000 * scale);
  // GOSSIP_BENCH_BEFORE names another build's main.cjs: measured beside this one, in the same run.
  const before = process.env.GOSSIP_BENCH_BEFORE;
  const rssBefore = before === undefined ? undefined : await rssPerId(rssIds, before);
  const rss = await rssPerId(rssIds);
  rows.push({
    bench: 'prefixes',
    case: `gossipd RSS per id at ${(2 * scale).toFixed(1)} M ids (ids of ${rss.idBytes.toFixed(1)} B)`,
    value: rss.perId,
    unit: 'bytes',
    ...(rssBefore === undefined
      ? {}
      : { baseline: `before: ${rssBefore.perId.toFixed(0)} B`, ratio: rss.perId / rssBefore.perId }),
  });
  const n = Math.round(500_000 * scale);
  // Alternated, best of two each: the machine is shared.
  let none = 0;
  let beside = 0;
  for (let round = 0; round < 2; round++) {
    none = Math.max(none, await publishBeside(0, n));
    beside = Math.max(beside, await publishBeside(SUBSCRIBERS, n));
  }
  rows.push({
    bench: 'prefixes',
    case: 'publish beside 1,000 non-matching scoped subscribers (goal ≥ 0.9×)',
    value: beside,
    unit: 'msgs/s',
    baseline: `none: ${(none / 1000).toFixed(0)} k/s`,
    ratio: beside / none,
  });
  return rows;
}
