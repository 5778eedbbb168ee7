import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';

/**
 * `n` distinct loopback ports that were free a moment ago, for a program that must be told
 * its ports before it starts (a cluster whose routes name each other). Every listener stays
 * open until all are chosen, so the kernel cannot hand out the same port twice; another
 * process may still take one before the program binds it, which its start must report.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}
