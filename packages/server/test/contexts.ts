import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, type StoreOptions } from '@gossip/store';
import { afterEach, beforeEach } from 'vitest';
import { TokenSet } from '../src/auth.js';
import type { ResolvedOptions, ServerContext } from '../src/context.js';
import { RefusalLog } from '../src/events.js';
import { DEFAULTS } from '../src/options.js';
import { emptyStats } from '../src/stats.js';

/**
 * A fresh temporary folder for each test of the calling file, and `openStore` on it;
 * the stores it opened are closed, and the folder removed, after each test.
 */
export function tempStores(prefix: string): (options?: Partial<StoreOptions>) => Promise<Store> {
  let dir = '';
  const stores: Store[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });
  return async (options = {}) => {
    const store = await Store.open({ dir, ...options });
    stores.push(store);
    return store;
  };
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A server context over `store`, as the handlers see it, with no server and no socket:
 * the defaults with `options` over them, a silent log, no tokens, and broadcasts and
 * publishes that go nowhere unless `parts` says where.
 */
export function testContext(
  store: Store,
  options: Partial<ResolvedOptions> = {},
  parts: Partial<ServerContext> = {},
): ServerContext {
  const resolved: ResolvedOptions = { ...DEFAULTS, ...options };
  return {
    store,
    options: resolved,
    tokens: new TokenSet([]),
    stats: emptyStats(),
    log: silent,
    refusals: new RefusalLog(silent),
    authFailuresLog: new RefusalLog(silent),
    maxFrameBytes: store.maxDataBytes + 65_536,
    serverName: 'gossipd/test',
    maxSkewNs: BigInt(resolved.maxSkewMs) * 1_000_000n,
    latestAllowedTs: () => 1_000_000n,
    broadcast: () => undefined,
    stored: () => undefined,
    append: (id, ts, data) => store.append(id, ts, data),
    ...parts,
  };
}
