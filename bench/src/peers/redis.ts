/**
 * redis-server with an append-only file fsynced every second. Each message is
 * `HSET gossip <id> <data>` (the value) plus `PUBLISH gossip:<id> <data>` (the live
 * stream), sent in ioredis pipelines; the ack is the replies. Subscribers PSUBSCRIBE
 * gossip:*; catch-up is HGETALL gossip.
 */
import { Redis } from 'ioredis';
import { asBuffer, type Publisher } from '../publish.js';
import {
  binaryVersion,
  findBinary,
  freePort,
  HOST,
  INSTALL_HINT,
  Proc,
  packageVersion,
  type Server,
  type System,
} from './common.js';

const HASH = 'gossip';

const DESCRIBE =
  'redis-server --bind 127.0.0.1 --port <port> --dir <dir> --appendonly yes --appendfsync everysec --save "": ' +
  'acks after the write to the AOF, fsync every second; per message HSET gossip <id> <data> + PUBLISH gossip:<id> <data> ' +
  'in pipelines, subscribers PSUBSCRIBE gossip:*, catch-up HGETALL gossip';

/** A connection that fails fast instead of queueing or reconnecting. */
async function client(port: number): Promise<Redis> {
  const r = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    noDelay: true,
  });
  r.on('error', () => undefined); // surfaced through the commands' promises
  await r.connect();
  return r;
}

const clientName = () => `ioredis ${packageVersion('ioredis')}`;

export function redis(): System {
  const bin = findBinary('redis-server', 'GOSSIP_PEERS_REDIS');
  return {
    name: 'redis',
    peer: true,
    describe: DESCRIBE,
    client: clientName,
    missing: () => (bin ? null : `redis-server not found; install it with: ${INSTALL_HINT}`),
    versions: () => `${binaryVersion(bin as string, ['--version'])}, ${clientName()}`,

    async start(dataDir: string): Promise<Server> {
      const port = await freePort();
      const args = [
        '--bind',
        HOST,
        '--port',
        String(port),
        '--dir',
        dataDir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--save',
        '',
        '--daemonize',
        'no',
        '--logfile',
        '',
      ];
      return Proc.serve('redis-server', bin as string, args, port);
    },

    async publisher(port: number): Promise<Publisher> {
      const r = await client(port);
      let batch = r.pipeline();
      let inBatch = 0;
      const pub: Publisher = {
        send(id, data) {
          const b = asBuffer(data);
          batch.hset(HASH, id, b).publish(`${HASH}:${id}`, b);
          if (++inBatch >= 1000) pub.flush();
        },
        flush() {
          if (inBatch === 0) return;
          const n = inBatch;
          batch.exec().then(
            (replies) => {
              const failed = replies?.find(([e]) => e);
              if (failed) pub.onError(failed[0] as Error);
              else pub.onAck(n);
            },
            (e: Error) => pub.onError(e),
          );
          batch = r.pipeline();
          inBatch = 0;
        },
        onAck: () => undefined,
        onError: () => undefined,
        close: async () => {
          r.disconnect();
        },
      };
      return pub;
    },

    async subscribe(port, onData) {
      const r = await client(port);
      r.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => onData(message));
      await r.psubscribe(`${HASH}:*`);
      return {
        close: async () => {
          r.disconnect();
        },
      };
    },

    async catchUp(port) {
      const r = await client(port);
      try {
        const all = await r.hgetallBuffer(HASH);
        return Object.keys(all).length;
      } finally {
        r.disconnect();
      }
    },
  };
}
