/**
 * Edge cases end to end, gossipd on its defaults in its own process: how long a
 * well-behaved client waits for its pongs while another client runs maximal fetches, and
 * while a legacy client sends a burst of `z` payloads that inflate to --max-data each
 * (docs/PROTOCOL.md, Q1 and L4; issue 14). The pinger is a lean RawClient of
 * @gossip/testing (`Pinger`): @gossip/client exposes no ping.
 *
 * GOSSIP_EDGES_BASELINE=<another build's apps/gossipd/dist/main.cjs> runs the same cases
 * on it as well and fills the baseline and ratio columns.
 */
import { codeFromWire, FrameKind } from '@gossip/protocol';
import { RawClient, wirePublisher } from '@gossip/testing';
import { fmt, type Row } from './measure.js';
import { Pinger } from './pinger.js';
import { windowedPublish } from './publish.js';
import { startGossipd } from './server.js';
import { legacyZBurst } from './z-burst.js';

/**
 * gossipd's default --max-fetch-ids: the largest fetch it accepts. The ids are distinct (a
 * server may answer a repeated id once), so every fetch asks for 655 MB.
 */
const IDS_PER_FETCH = 10_000;
const FETCH_VALUE_BYTES = 64 * 1024;
const FETCH_SECONDS = 3;
/** A fetch still running this long after the last was due is abandoned. */
const FETCH_GRACE_MS = 10_000;

interface FetchRun {
  ping: ReturnType<Pinger['stats']>;
  bytes: number;
  ms: number;
  fetches: number;
  /** How the fetching client was disconnected (it reconnects) or refused, each time. */
  drops: string[];
}

/**
 * One client fetches the IDS_PER_FETCH published ids back to back for
 * FETCH_SECONDS, skimming the results, while a pinger pings every 10 ms. A fetching
 * client the server disconnects (a slow consumer) reconnects and goes on.
 */
async function fetchesUnderPing(port: number): Promise<FetchRun> {
  const ids = Array.from({ length: IDS_PER_FETCH }, (_, i) => `f/${i}`);
  const pinger = await Pinger.start(port);
  const used: RawClient[] = [];
  try {
    const drops: string[] = [];
    let bytes = 0;
    let fetches = 0;
    let reqId = 0;
    // the fetch in flight: settled by its last fetch-result, or by an error ack
    let current: { reqId: number; done: (outcome: string) => void } = { reqId: 0, done: () => undefined };
    const connectFetcher = async () => {
      const c = await RawClient.dial(port, {
        hello: { since: null },
        until: 'replay-done',
        keep: false,
        timeoutMs: 5000,
      });
      c.skim((f) => {
        bytes += 4 + f.length;
        if (f.head.length < 5 || f.head.readUInt32BE(0) !== current.reqId) return;
        if (f.kind === FrameKind.FetchResult && ((f.head[4] as number) & 1) === 0) current.done('complete');
        else if (f.kind === FrameKind.Ack && f.head.length >= 8)
          current.done(`refused: error ack ${codeFromWire(f.head.readUInt16BE(6))}`);
      });
      used.push(c);
      return c;
    };
    const t0 = performance.now();
    const deadline = t0 + FETCH_SECONDS * 1000 + FETCH_GRACE_MS;
    let c = await connectFetcher();
    while (performance.now() - t0 < FETCH_SECONDS * 1000) {
      if (c.ended) c = await connectFetcher();
      const outcome = new Promise<string>((resolve) => {
        current = { reqId: ++reqId, done: resolve };
      });
      c.enc.fetch(reqId, ids);
      c.flush();
      const ended = c.waitEnd(Math.max(0, deadline - performance.now())).then((closed) => (closed ? 'closed' : 'late'));
      const how = await Promise.race([outcome, ended]);
      if (how === 'complete') fetches++;
      else if (how !== 'closed') {
        if (how !== 'late') drops.push(how);
        break;
      }
    }
    const ms = performance.now() - t0;
    const ping = pinger.stats(t0);
    // an error frame right behind the last result still counts
    await new Promise((r) => setTimeout(r, 100));
    for (const u of used) if (u.ended || u.errorCode) drops.push(u.describeEnd() as string);
    return { ping, bytes, ms, fetches, drops };
  } finally {
    pinger.stop();
    for (const u of used) u.close();
  }
}

async function maximalFetches(gossipd: string | undefined): Promise<Row[]> {
  const d = await startGossipd({ bin: gossipd });
  try {
    const pub = await wirePublisher(d.port);
    const names = Array.from({ length: IDS_PER_FETCH }, (_, i) => `f/${i}`);
    await windowedPublish(pub, IDS_PER_FETCH, names, 200, Buffer.alloc(FETCH_VALUE_BYTES, 0x66));
    await pub.close();
    const r = await fetchesUnderPing(d.port);
    const dropped = r.drops.length > 0 ? `, fetcher dropped ${r.drops.length}× (${r.drops[0]})` : '';
    const label = `while a client fetches ${IDS_PER_FETCH / 1000} k × 64 KiB ids back to back`;
    return [
      { bench: 'edges', case: `ping RTT max ${label}`, value: r.ping.max, unit: 'ms' },
      { bench: 'edges', case: `ping RTT p99 ${label}`, value: r.ping.p99, unit: 'ms' },
      {
        bench: 'edges',
        case: `fetch throughput, ${IDS_PER_FETCH / 1000} k × 64 KiB ids per fetch`,
        value: r.bytes / 1e6 / (r.ms / 1000),
        unit: `MB/s (${r.fetches} fetch${r.fetches === 1 ? '' : 'es'} complete${dropped})`,
      },
    ];
  } finally {
    await d.cleanup();
  }
}

async function zBurst(gossipd: string | undefined): Promise<Row[]> {
  const d = await startGossipd({ bin: gossipd });
  try {
    const r = await legacyZBurst(d.port, { messages: 40, timeoutMs: 15_000 });
    const label = `during a legacy burst of ${r.messages} z payloads of 10 MiB`;
    return [
      { bench: 'edges', case: `ping RTT max ${label}`, value: r.ping.max, unit: 'ms' },
      { bench: 'edges', case: `ping RTT p99 ${label}`, value: r.ping.p99, unit: 'ms' },
      {
        bench: 'edges',
        case: 'honest subscriber received (of the burst)',
        value: r.received,
        unit: r.dropped ? `of ${r.messages}, dropped: ${r.dropped}` : `of ${r.messages}`,
      },
    ];
  } finally {
    await d.cleanup();
  }
}

/**
 * The cases on this tree's gossipd; with GOSSIP_EDGES_BASELINE set to another build's
 * apps/gossipd/dist/main.cjs, on that one too, as the baseline column.
 */
export async function edgesBench(): Promise<Row[]> {
  const rows = [...(await maximalFetches(undefined)), ...(await zBurst(undefined))];
  const other = process.env.GOSSIP_EDGES_BASELINE;
  if (!other) return rows;
  const base = [...(await maximalFetches(other)), ...(await zBurst(other))];
  return rows.map((r, i) => {
    const b = base[i];
    if (!b) return r;
    return { ...r, baseline: `${fmt(b.value)} ${b.unit}`, ...(b.value > 0 ? { ratio: r.value / b.value } : {}) };
  });
}
