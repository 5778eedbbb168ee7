import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, type StoreOptions } from '@gossip/store';
import { afterEach, beforeEach } from 'vitest';

/**
 * A fresh temporary folder for each test of the calling file, and `openStore` on it:
 * the stores in `opened` (those `openStore` opened, and any a test adds) are closed,
 * and the folder removed, after each test.
 */
export function tempStores(prefix: string): {
  dir: () => string;
  opened: Store[];
  openStore: (options?: Partial<StoreOptions>) => Promise<Store>;
} {
  let dir = '';
  const opened: Store[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close().catch(() => undefined)));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dir: () => dir,
    opened,
    async openStore(options = {}) {
      const store = await Store.open({ dir, ...options });
      opened.push(store);
      return store;
    },
  };
}
