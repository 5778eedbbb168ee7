/**
 * Client: the rate at which a GossipClient applies a replay of 1 M ids into its
 * GossipState view, against gossipd in its own process.
 */
import { bytesCodec, GossipClient, GossipState } from '@gossip/client';
import type { Row } from './measure.js';
import { pipelinedPublish, startGossipd } from './server.js';

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
    const client = new GossipClient({ address: `127.0.0.1:${d.port}`, codec: bytesCodec, since: 'all' });
    const view = new GossipState(client);
    const t0 = performance.now();
    await client.connect();
    const ms = performance.now() - t0;
    if (view.size !== ids) throw new Error(`state view holds ${view.size} ids, expected ${ids}`);
    await client.close();
    return [
      {
        bench: 'client',
        case: `replay ${ids / 1e6} M ids into a GossipState`,
        value: (ids / ms) * 1000,
        unit: 'messages/s',
      },
    ];
  } finally {
    await d.cleanup();
  }
}
