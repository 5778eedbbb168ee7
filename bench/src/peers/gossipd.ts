/**
 * gossipd: the daemon in its own process (@gossip/testing's launcher), driven by @gossip/client, the SDK
 * its users run, as each peer is driven by its own Node client: GossipClient.publish() with
 * the bytes codec, subscribers with `since: 'now'` counting 'message' events, catch-up into
 * a GossipState. Every client is made with `reconnect: () => null`, so a dropped connection
 * fails the run instead of being retried, as the peers' clients are made.
 *
 * Beside it, the server's ceiling: the same daemon driven by a lean RawClient of @gossip/testing
 * with the server suite's window (PIPELINE_WINDOW), for W1 and the W2 fan-out only.
 */
import { bytesCodec, GossipClient, GossipState } from '@gossip/client';
import { FrameKind } from '@gossip/protocol';
import { wirePublisher } from '@gossip/testing';
import { clientPublisher } from '../client-publisher.js';
import { PIPELINE_WINDOW, startGossipd, subscriber } from '../server.js';
import { HOST, packageVersion, type Server, type System, track } from './common.js';

type Fsync = 'interval' | 'always';

const DESCRIBE: Record<Fsync, string> = {
  interval: 'gossipd --fsync interval (ack after write, fsync every 100 ms: the default)',
  always: 'gossipd --fsync always (ack after the fsync of the group commit that holds the write)',
};

const clientName = () => `@gossip/client ${packageVersion('@gossip/client')}`;

async function start(fsync: Fsync, dataDir: string): Promise<Server> {
  // tracked from the spawn: a daemon that never gets ready is still killed at exit
  const d = await startGossipd({ args: ['--fsync', fsync], dataDir, onSpawn: track });
  return {
    port: d.port,
    stop: async () => {
      await d.stop();
    },
  };
}

/** A GossipClient on `port` that fails instead of reconnecting; `since` defaults to 'all', as the SDK's does. */
function client(port: number, options: { since?: 'now'; echo?: boolean } = {}): GossipClient<Uint8Array> {
  return new GossipClient({ address: `${HOST}:${port}`, codec: bytesCodec, reconnect: () => null, ...options });
}

/**
 * gossipd under `fsync`, driven by @gossip/client with the bytes codec; `--fsync always`,
 * and the publisher with the JSON codec (`codec: 'json'`), run W1 only, as rows of their own.
 */
export function gossipd(fsync: Fsync, codec: 'bytes' | 'json' = 'bytes'): System {
  const json = codec === 'json';
  return {
    name: json ? 'gossipd (json)' : fsync === 'interval' ? 'gossipd' : 'gossipd (always)',
    peer: false,
    only: fsync === 'always' || json ? ['w1'] : undefined,
    describe: json ? `${DESCRIBE[fsync]}, published with the JSON codec` : DESCRIBE[fsync],
    client: clientName,
    missing: () => null,
    versions: () => `gossipd ${packageVersion('gossipd')}, ${clientName()}`,
    start: (dataDir) => start(fsync, dataDir),
    publisher: (port) => clientPublisher(HOST, port, { codec }),

    async subscribe(port, onData) {
      const c = client(port, { since: 'now' });
      c.on('message', (m) => onData(m.data));
      await c.connect();
      return { close: () => c.close() };
    },

    async catchUp(port) {
      const c = client(port);
      const state = new GossipState(c);
      try {
        // resolves once the replay is done: by then the state holds every id replayed
        await c.connect();
        return state.size;
      } finally {
        await c.close();
      }
    },
  };
}

/** The server alone: gossipd (default durability) driven by the lean RawClient with 20 k in flight, W1 and W2 fan-out. */
export function gossipdCeiling(): System {
  return {
    name: 'gossipd (raw wire)',
    peer: false,
    only: ['w1', 'w2 fan-out'],
    describe: `${DESCRIBE.interval}, driven by the lean RawClient of @gossip/testing: the server's ceiling`,
    client: () => `@gossip/testing RawClient over @gossip/protocol ${packageVersion('@gossip/protocol')}`,
    window: PIPELINE_WINDOW,
    missing: () => null,
    versions: () => `gossipd ${packageVersion('gossipd')} (@gossip/testing RawClient over @gossip/protocol)`,
    start: (dataDir) => start('interval', dataDir),
    publisher: (port) => wirePublisher(port),

    async subscribe(port, onData) {
      const c = await subscriber(port, { since: null }, (f) => {
        if (f.kind === FrameKind.Message) onData(f.data);
      });
      return { close: async () => c.close() };
    },

    async catchUp() {
      throw new Error('the raw server-ceiling row runs W1 and W2 fan-out only');
    },
  };
}
