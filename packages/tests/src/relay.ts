import { once } from 'node:events';
import { type AddressInfo, createServer, connect as netConnect } from 'node:net';

/** A TCP relay that a test can hold shut. */
export interface Relay {
  readonly port: number;
  /** From now on every new connection is dropped at once: a client behind it keeps retrying. */
  hold(): void;
  release(): void;
  close(): void;
}

/**
 * A relay on a free loopback port to `target`. While held it drops every new connection
 * at once, so a client behind it stays away, retrying by itself, until released.
 */
export async function relay(target: number): Promise<Relay> {
  let held = false;
  const server = createServer((down) => {
    if (held) {
      down.destroy();
      return;
    }
    const up = netConnect(target, '127.0.0.1');
    down.pipe(up);
    up.pipe(down);
    const both = () => {
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('error', both);
      s.on('close', both);
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
    },
    close: () => server.close(),
  };
}
