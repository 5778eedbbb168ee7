/**
 * The W1 floor: @gossip/client publishing, with the run's window, to a Node server that only
 * acks (../ack-server.ts: no store, no index, no fan-out). Its figure is the most any gossipd
 * could reach through the SDK on this machine; the W1 goals are read against it.
 */
import { fileURLToPath } from 'node:url';
import { clientPublisher } from '../client-publisher.js';
import { freePort, HOST, Proc, packageVersion, type System } from './common.js';

const ACK_SERVER = fileURLToPath(new URL('./ack-server.js', import.meta.url));

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
    start: async () => {
      const port = await freePort();
      return Proc.serve('the ack-only floor', process.execPath, [ACK_SERVER, String(port)], port);
    },
    publisher: (port) => clientPublisher(HOST, port, { codec: 'bytes' }),
    subscribe: () => Promise.reject(new Error('the ack-only floor runs W1 only')),
    catchUp: () => Promise.reject(new Error('the ack-only floor runs W1 only')),
  };
}
