/**
 * gossipd: the daemon in its own process (src/daemon.ts), driven by the bench's lean
 * WireClient; W1 and the fan-out's publisher are the server suite's pipelinedPublish.
 */
import { AckStatus, FrameKind, MIN_TS, now } from '@gossip/protocol';
import { Daemon } from '../daemon.js';
import { pipelinedPublish } from '../server.js';
import { WireClient } from '../wire-client.js';
import { type Publisher, packageVersion, type Server, type System, track } from './common.js';

export function gossipd(fsync: 'interval' | 'always'): System {
  return {
    name: fsync === 'interval' ? 'gossipd' : 'gossipd (always)',
    describe:
      fsync === 'interval'
        ? 'gossipd --fsync interval (ack after write, fsync every 100 ms: the default)'
        : 'gossipd --fsync always (ack after the fsync of the group commit that holds the write)',
    // unused: W1 and W2 use the server suite's pipelinedPublish (20 k)
    window: 20_000,
    missing: () => null,
    versions: () => `gossipd ${packageVersion('gossipd')} (bench WireClient over @gossip/protocol)`,

    async start(dataDir: string): Promise<Server> {
      const d = await Daemon.start(['--fsync', fsync], dataDir);
      track(d.child);
      return { port: d.port, stop: () => d.stop() };
    },

    pipelined: (port, total, ids) => pipelinedPublish(port, total, ids),

    async publisher(port: number): Promise<Publisher> {
      const c = await WireClient.connect(port, { since: null, echo: false });
      const ts0 = now();
      let seq = 0;
      const pub: Publisher = {
        send(id, data) {
          seq++;
          c.enc.publish(seq, id, ts0 + BigInt(seq), data);
          if (c.enc.pendingBytes >= 64 * 1024) c.flush();
        },
        flush: () => c.flush(),
        onAck: () => undefined,
        onError: () => undefined,
        close: async () => c.close(),
      };
      c.onFrame = (f) => {
        if (f.kind !== FrameKind.Ack) return;
        if (f.status === AckStatus.Error) pub.onError(new Error(`publish refused: ${f.code} ${f.message}`));
        else pub.onAck(1);
      };
      c.socket.on('error', (e) => pub.onError(e));
      return pub;
    },

    async subscribe(port, onData) {
      const c = await WireClient.connect(port, { since: null }, (f) => {
        if (f.kind === FrameKind.Message) onData(f.data);
      });
      return { close: async () => c.close() };
    },

    async catchUp(port) {
      let count = 0;
      const c = await WireClient.connect(port, { since: MIN_TS }, (f) => {
        if (f.kind === FrameKind.Message) count++;
      });
      c.close();
      return count;
    },
  };
}
