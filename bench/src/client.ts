/**
 * Client: how fast a GossipClient applies a replay of 1 M ids into its GossipState view,
 * against gossipd in its own process: the time from connect() to the view holding every
 * id (the replay read, sent, decoded and applied), and that as messages applied per second.
 */
import { bytesCodec, GossipClient, GossipState } from '@gossip/client';
import { goal, type Row } from './measure.js';
import { pipelinedPublish, startGossipd } from './server.js';

/** Issue 17's goals at 1 M ids: the view filled in 1 s, the replay applied at 2 M messages/s. */
const GOAL_MS_PER_MILLION = 1000;
const GOAL_APPLIED_PER_S = 2_000_000;
const RUNS = 3;

export async function clientBench(): Promise<Row[]> {
  const scale = Number(process.env.GOSSIP_BENCH_SCALE ?? 1);
  const ids = Math.round(1_000_000 * scale);
  const d = await startGossipd({ args: ['--fsync', 'never'] });
  try {
    await pipelinedPublish(
      d.port,
      ids,
      Array.from({ length: ids }, (_, i) => `id:${i}`),
    );
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < RUNS; r++) {
      const client = new GossipClient({
        address: `127.0.0.1:${d.port}`,
        codec: bytesCodec,
        since: 'all',
        reconnect: () => null,
      });
      const view = new GossipState(client);
      try {
        const t0 = performance.now();
        await client.connect();
        const ms = performance.now() - t0;
        if (view.size !== ids) throw new Error(`state view holds ${view.size} ids, expected ${ids}`);
        best = Math.min(best, ms);
      } finally {
        await client.close();
      }
    }
    const rate = (ids / best) * 1000;
    const goalMs = (GOAL_MS_PER_MILLION * ids) / 1e6;
    return [
      {
        bench: 'client',
        case: `replay ${ids / 1e6} M ids into a GossipState, connect() to every id (best of ${RUNS})`,
        value: best,
        unit: 'ms',
        goal: goal(`≤ ${goalMs} ms`, best <= goalMs),
      },
      {
        bench: 'client',
        case: '  the same as messages applied per second',
        value: rate,
        unit: 'messages/s',
        goal: goal(`≥ ${GOAL_APPLIED_PER_S / 1e6} M/s`, rate >= GOAL_APPLIED_PER_S),
      },
    ];
  } finally {
    await d.cleanup();
  }
}
