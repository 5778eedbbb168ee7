// Feature flags kept live in every service: a GossipState is a Map of id → { value, ts }
// that the client fills with the stored state, keeps current, and rebuilds after a reconnect.
import { GossipClient, GossipState, jsonCodec } from '@gossip/client';

const address = process.env.GOSSIP_ADDRESS ?? '127.0.0.1:7420';
const client = new GossipClient({ address, codec: jsonCodec(), prefixes: ['flags/'], name: 'feature-flags' });
const flags = new GossipState(client);

const enabled = (name) => flags.get(`flags/${name}`)?.on === true;

flags.on('change', (id, now, before) => {
  console.log(`${id}: ${JSON.stringify(before?.value ?? null)} -> ${JSON.stringify(now?.value ?? null)}`);
});

await client.connect(); // resolves once the stored flags are in `flags`
console.log(`${flags.size} flags known; checkout ${enabled('checkout') ? 'on' : 'off'}`);

// Flip the flag, as an admin tool would; every service with a GossipState sees the change.
const changed = new Promise((resolve) => flags.once('change', resolve));
const result = await client.publish('flags/checkout', { on: !enabled('checkout'), rollout: 0.1 });
console.log(`publish: ${result.status} (${result.durability})`);
await changed;
console.log(`checkout is now ${enabled('checkout') ? 'on' : 'off'}`);

await client.close();
