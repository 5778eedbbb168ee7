/**
 * `pnpm bench`: runs every benchmark and prints one table.
 * Select some with `GOSSIP_BENCH=protocol,store`.
 */
import { cpus } from 'node:os';
import { clientBench } from './client.js';
import { clusterBench } from './cluster.js';
import { edgesBench } from './edges.js';
import { printTable, type Row } from './measure.js';
import { prefixesBench } from './prefixes.js';
import { protocolBench } from './protocol.js';
import { serverBench } from './server.js';
import { storeBench } from './store.js';

const suites: Record<string, () => Row[] | Promise<Row[]>> = {
  protocol: protocolBench,
  store: storeBench,
  server: serverBench,
  client: clientBench,
  edges: edgesBench,
  prefixes: prefixesBench,
  cluster: clusterBench,
};

const wanted = (process.env.GOSSIP_BENCH ?? Object.keys(suites).join(',')).split(',');
const rows: Row[] = [];
for (const name of wanted) {
  const suite = suites[name.trim()];
  if (!suite) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(suites).join(', ')}`);
  rows.push(...(await suite()));
}
const cpu = cpus()[0]?.model ?? 'unknown cpu';
console.log(`\ngossip benchmarks — node ${process.version}, ${cpus().length} × ${cpu}\n`);
printTable(rows);
