/**
 * The W1 floor: @gossip/client publishing, with the run's window, to a Node server that only
 * acks (../ack-server.ts: no store, no index, no fan-out). Its figure is the most any gossipd
 * could reach through the SDK on this machine; the W1 goals are read against it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { clientPublisher } from '../client-publisher.js';
import { HOST, packageVersion, type Server, type System, track } from './common.js';

const ACK_SERVER = fileURLToPath(new URL('./ack-server.js', import.meta.url));

async function start(): Promise<Server> {
  const child = spawn(process.execPath, [ACK_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  track(child);
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`the ack-only server exited (${code ?? signal}) before listening`)),
    );
  });
  return {
    port,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

export function ackFloor(): System {
  const client = () => `@gossip/client ${packageVersion('@gossip/client')}`;
  return {
    name: 'ack-only floor',
    peer: false,
    only: ['w1'],
    describe: 'a Node server that acks each publish at once, with no store (bench/src/ack-server.ts)',
    client,
    missing: () => null,
    versions: () => `bench/src/ack-server.ts over @gossip/protocol ${packageVersion('@gossip/protocol')}, ${client()}`,
    start: () => start(),
    publisher: (port) => clientPublisher(HOST, port, { codec: 'bytes' }),
    subscribe: () => Promise.reject(new Error('the ack-only floor runs W1 only')),
    catchUp: () => Promise.reject(new Error('the ack-only floor runs W1 only')),
  };
}
