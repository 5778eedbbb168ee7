// Presence with emit: a transient message reaches the clients connected now, is never
// stored and never replayed, so a client that connects later does not see who was online.
import { GossipClient, utf8Codec } from '@gossip/client';

const address = process.env.GOSSIP_ADDRESS ?? '127.0.0.1:7420';
const alice = new GossipClient({ address, codec: utf8Codec, since: 'now', name: 'alice' });
const bob = new GossipClient({ address, codec: utf8Codec, since: 'now', prefixes: ['presence/'], name: 'bob' });
await Promise.all([alice.connect(), bob.connect()]);

const seen = new Promise((resolve) => {
  bob.on('message', (m) => {
    if (m.transient && m.id === 'presence/alice') resolve(m);
  });
});
alice.emit('presence/alice', 'online');
const m = await seen;
console.log(`bob saw ${m.id} ${m.value} (transient: ${m.transient})`);

// Nothing was stored: a fetch finds no presence/alice.
const [stored] = await bob.fetch(['presence/alice']);
console.log(`stored: ${stored.found}`);

await Promise.all([alice.close(), bob.close()]);
