import { once } from 'node:events';
import { type AddressInfo, createServer, connect as netConnect, type Socket } from 'node:net';

/** A TCP relay that a test can hold shut. */
export interface Relay {
  readonly port: number;
  /** From now on every new connection is dropped at once: a client behind it keeps retrying. */
  hold(): void;
  release(): void;
  /** Stops accepting and drops every connection it carries. */
  close(): void;
}

export interface RelayOptions {
  /**
   * Carries what `target` sends on the relay's connection number `n` (from 0) to the client,
   * in place of a plain pipe; return false to leave that connection to the pipe.
   */
  downstream?: (n: number, up: Socket, down: Socket) => boolean;
}

/**
 * A relay on a free loopback port to `target`. While held it drops every new connection
 * at once, so a client behind it stays away, retrying by itself, until released.
 */
export async function relay(target: number, options: RelayOptions = {}): Promise<Relay> {
  let held = false;
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    if (held) {
      down.destroy();
      return;
    }
    const up = netConnect(target, '127.0.0.1');
    down.pipe(up);
    if (!options.downstream?.(accepted++, up, down)) up.pipe(down);
    const both = () => {
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', both);
      s.on('close', () => {
        sockets.delete(s);
        both();
      });
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
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
