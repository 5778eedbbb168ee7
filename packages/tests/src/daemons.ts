import { Gossipd } from '@gossip/testing';

/** What a test's clients must do when it ends: close at once, whatever they still hold. */
interface Closable {
  close(options: { timeoutMs: number }): Promise<void>;
}

/**
 * The gossipd processes and clients a test file's tests start, ended after each test:
 * `start` launches gossipd on loopback port 0 (on `dataDir` for a restart) and keeps
 * it; `keep` keeps a client. A file's `afterEach` calls `closeClients`, its own
 * clean-ups, then `stopServers`, which kills every daemon before removing any folder
 * (restarts share one).
 */
export class Daemons {
  readonly #servers: Gossipd[] = [];
  readonly #clients: Closable[] = [];

  async start(args: string[] = [], dataDir?: string): Promise<Gossipd> {
    const d = await Gossipd.start({ args, ...(dataDir ? { dataDir } : {}) });
    this.#servers.push(d);
    return d;
  }

  keep<C extends Closable>(client: C): C {
    this.#clients.push(client);
    return client;
  }

  async closeClients(): Promise<void> {
    await Promise.all(this.#clients.splice(0).map((c) => c.close({ timeoutMs: 0 })));
  }

  async stopServers(): Promise<void> {
    const all = this.#servers.splice(0);
    await Promise.all(all.map((d) => d.kill()));
    await Promise.all(all.map((d) => d.cleanup()));
  }
}
