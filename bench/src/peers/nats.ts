/**
 * nats-server with JetStream: a key-value bucket (file storage, history 1), driven by
 * nats.js. W1's ack is kv.put's (the JetStream publish ack); live subscribers are core
 * subscriptions on the bucket's subjects; catch-up is a kv.watch() of the last values,
 * done when the watcher signals it has yielded them all.
 */
import { connect, type KV, type NatsConnection, StorageType } from 'nats';
import { deferred, type Publisher } from '../publish.js';
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

const BUCKET = 'gossip';

const DESCRIBE =
  'nats-server -a 127.0.0.1 -p <port> -js -sd <dir>: JetStream file store with its defaults ' +
  '(acks after the write; fsync on its own schedule, every 2 min by default); ' +
  `KV bucket "${BUCKET}" with history 1, file storage; kv.put per message, core subscribers on $KV.${BUCKET}.>, ` +
  'catch-up by kv.watch()';

/** Opens the bucket; `bindOnly` (for readers) fails instead of creating it, so a restarted server is retried, not refilled. */
async function open(port: number, bindOnly = false): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: `${HOST}:${port}`, reconnect: false, noEcho: true });
  try {
    const kv = await nc
      .jetstream()
      .views.kv(BUCKET, { history: 1, storage: StorageType.File, timeout: 30_000, bindOnly });
    return { nc, kv };
  } catch (e) {
    await nc.close();
    throw e;
  }
}

const clientName = () => `nats (nats.js) ${packageVersion('nats')}`;

export function nats(): System {
  const bin = findBinary('nats-server', 'GOSSIP_PEERS_NATS');
  return {
    name: 'nats',
    peer: true,
    describe: DESCRIBE,
    client: clientName,
    missing: () => {
      if (!bin) return `nats-server not found; install it with: ${INSTALL_HINT}`;
      // JetStream's key-value buckets need nats-server 2.2 or newer
      const m = /v?(\d+)\.(\d+)\./.exec(binaryVersion(bin, ['--version']));
      if (m && (Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 2)))
        return `${bin} is ${m[0]}, too old for JetStream (2.2 or newer)`;
      return null;
    },
    versions: () => `${binaryVersion(bin as string, ['--version'])}, ${clientName()}`,

    async start(dataDir: string): Promise<Server> {
      const port = await freePort();
      return Proc.serve('nats-server', bin as string, ['-a', HOST, '-p', String(port), '-js', '-sd', dataDir], port);
    },

    async publisher(port: number): Promise<Publisher> {
      const { nc, kv } = await open(port);
      const pub: Publisher = {
        send(id, data) {
          kv.put(id, data).then(
            () => pub.onAck(1),
            (e: Error) => pub.onError(e),
          );
        },
        flush: () => undefined, // nats.js batches writes and flushes them itself
        onAck: () => undefined,
        onError: () => undefined,
        close: () => nc.close(),
      };
      return pub;
    },

    async subscribe(port, onData) {
      const nc = await connect({ servers: `${HOST}:${port}`, reconnect: false });
      nc.subscribe(`$KV.${BUCKET}.>`, { callback: (_err, msg) => onData(msg.data) });
      await nc.flush();
      return { close: () => nc.close() };
    },

    async catchUp(port) {
      const { nc, kv } = await open(port, true);
      try {
        let count = 0;
        const initialized = deferred();
        const watch = await kv.watch({ initializedFn: () => initialized.resolve() });
        void (async () => {
          try {
            for await (const e of watch) if (e.operation === 'PUT') count++;
          } catch (err) {
            initialized.reject(err);
          }
        })();
        await initialized.promise;
        watch.stop();
        return count;
      } finally {
        await nc.close();
      }
    },
  };
}
