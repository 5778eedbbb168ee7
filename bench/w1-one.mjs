// One W1 through @gossip/client against one gossipd build, for timing two builds against
// each other from outside (`farm-bench --vs '<before>' -- <after>`, bench/RESULTS.md,
// "Metrics"): GOSSIPD_MAIN names the build's main.cjs (default: this checkout's), FSYNC
// its --fsync (default interval). One GossipClient, bytes codec, 1,000 in flight refilled
// at half as `pnpm bench:peers` drives W1: 50 k publishes of warm-up, then 400 k over 20 k ids.
import { bytesCodec, GossipClient } from '@gossip/client';
import { Gossipd } from '@gossip/testing';

const d = await Gossipd.start({
  admin: false,
  args: ['--fsync', process.env.FSYNC ?? 'interval'],
  ...(process.env.GOSSIPD_MAIN ? { bin: process.env.GOSSIPD_MAIN } : {}),
});
const c = new GossipClient({
  address: `127.0.0.1:${d.port}`,
  codec: bytesCodec,
  echo: false,
  since: 'now',
  reconnect: () => null,
});
await c.connect();
const ids = Array.from({ length: 20_000 }, (_, i) => `id-${i}`);
const data = new Uint8Array(100);

/** `total` publishes, at most `window` unacknowledged, refilled once half are acked. */
function run(total, window = 1000) {
  let sent = 0;
  let acked = 0;
  return new Promise((resolve, reject) => {
    const pump = () => {
      while (sent < total && sent - acked < window) {
        c.publish(ids[sent % ids.length], data).then(() => {
          acked++;
          if (acked === total) resolve();
          else if (sent - acked < window / 2) pump();
        }, reject);
        sent++;
      }
    };
    pump();
  });
}

await run(50_000);
await run(400_000);
await c.close();
await d.cleanup();
