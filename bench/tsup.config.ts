import { defineConfig } from 'tsup';
import { base } from '../tsup.base.js';

export default defineConfig({
  ...base,
  entry: { run: 'src/run.ts', peers: 'src/peers.ts', attacks: 'src/attacks.ts', 'ack-server': 'src/ack-server.ts' },
  // the peers' clients are devDependencies: load them from node_modules, do not bundle them
  external: ['mqtt', 'nats', 'ioredis'],
  dts: false,
});
