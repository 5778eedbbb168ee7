/**
 * gossipd: the daemon in its own process (src/daemon.ts), driven by the bench's lean
 * WireClient; W1 and the fan-out's publisher keep the server suite's pipelinedPublish
 * window (PIPELINE_WINDOW).
 */
import { FrameKind, MIN_TS } from '@gossip/protocol';
import { Daemon } from '../daemon.js';
import { PIPELINE_WINDOW } from '../server.js';
import { WireClient, wirePublisher } from '../wire-client.js';
import { packageVersion, type Server, type System, track } from './common.js';

export function gossipd(fsync: 'interval' | 'always'): System {
  return {
    name: fsync === 'interval' ? 'gossipd' : 'gossipd (always)',
    peer: false,
    // the default configuration runs every workload; --fsync always only W1, as a row of its own
    w1Only: fsync === 'always',
    describe:
      fsync === 'interval'
        ? 'gossipd --fsync interval (ack after write, fsync every 100 ms: the default)'
        : 'gossipd --fsync always (ack after the fsync of the group commit that holds the write)',
    window: PIPELINE_WINDOW,
    missing: () => null,
    versions: () => `gossipd ${packageVersion('gossipd')} (bench WireClient over @gossip/protocol)`,

    async start(dataDir: string): Promise<Server> {
      // tracked from the spawn: a daemon that never gets ready is still killed at exit
      const d = await Daemon.start(['--fsync', fsync], dataDir, { onSpawn: track });
      return { port: d.port, stop: () => d.stop() };
    },

    publisher: (port) => wirePublisher(port),

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
