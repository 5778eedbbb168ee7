import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, type Store } from '@gossip/store';

/**
 * Leaves `dir` as a `kill -9` of `store` would leave it now: every append made so far
 * is in the files (in the OS, as after a process kill), but no clean close ran, so the
 * meta file does not record the segments' lengths and no checkpoint is written. The
 * files are copied aside while the store is open and put back once it has closed (a
 * store of this process cannot be killed; its lock would still be held).
 */
export async function leaveAsKilled(store: Store, dir: string): Promise<void> {
  await store.flush();
  const aside = await mkdtemp(join(tmpdir(), 'gossip-killed-'));
  try {
    await cp(dir, aside, { recursive: true });
    await store.close();
    await rm(dir, { recursive: true, force: true });
    await cp(aside, dir, { recursive: true });
    // The pid in it would be this live process: a real kill leaves a stale lock, taken over on open.
    await rm(join(dir, LOCK_FILE), { force: true });
  } finally {
    await rm(aside, { recursive: true, force: true });
  }
}
