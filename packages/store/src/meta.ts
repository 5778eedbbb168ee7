import { randomBytes } from 'node:crypto';
import { GossipError, isEpoch, newEpoch } from '@gossip/protocol';
import { readSmallFile, replaceFile, type StoreFs, writeFully } from './fs.js';

export const META_FILE = 'gossip.meta';
export const LOCK_FILE = 'gossip.lock';

/** What the store keeps beside its segments (docs/STORAGE.md, "Meta file"). */
export interface Meta {
  /** The log's identity, sent to clients as the epoch. */
  epoch: string;
  /** Newest ts of a tombstone compaction dropped; null while none was. */
  horizon: bigint | null;
  /**
   * Segments whose tail must be ignored: after a failed write or fsync the store stops
   * writing into a file and records here where its acknowledged bytes end.
   */
  validLengths: Record<string, number>;
  /**
   * Segment name → bytes the last clean close of that file left complete and fsynced
   * (docs/STORAGE.md, S8). Segments are append-only and compaction writes new files, so
   * the bytes below it stay complete for as long as the file exists: a scan whose valid
   * end falls short of it has found damage (corruption), not a torn write. Written at
   * every clean close, never lowered, and pruned of files that are gone.
   */
  closedLengths: Record<string, number>;
}

export async function loadMeta(fs: StoreFs, dir: string): Promise<Meta | undefined> {
  const raw = await readSmallFile(fs, `${dir}/${META_FILE}`);
  if (!raw) return undefined;
  let json: { format?: number; epoch?: unknown; horizon?: unknown; validLengths?: unknown; closedLengths?: unknown };
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new GossipError('GOSSIP_ERR_STORE_CORRUPT', `${dir}/${META_FILE} is not valid JSON`, { cause: error });
  }
  if (json.format !== 1 || !isEpoch(json.epoch)) {
    throw new GossipError('GOSSIP_ERR_STORE_CORRUPT', `${dir}/${META_FILE} has an unknown format or no epoch`);
  }
  return {
    epoch: json.epoch,
    horizon: typeof json.horizon === 'string' ? BigInt(json.horizon) : null,
    validLengths: lengths(json.validLengths),
    closedLengths: lengths(json.closedLengths),
  };
}

/** A name → byte count map of the meta file; a meta file written before a field existed has none. */
function lengths(raw: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (raw && typeof raw === 'object') {
    for (const [name, n] of Object.entries(raw)) if (Number.isSafeInteger(n) && (n as number) >= 0) out[name] = n;
  }
  return out;
}

/** A new data folder's meta: a new epoch, unless the folder takes an identity it is given. */
export function freshMeta(epoch: string = newEpoch()): Meta {
  return { epoch, horizon: null, validLengths: {}, closedLengths: {} };
}

/** Saves of one meta in progress: each waits for the one before, and writes what the meta holds then. */
const saving = new WeakMap<Meta, Promise<void>>();

/**
 * Replaces the meta file with what `meta` holds. Saves of the same meta (by compaction,
 * a close, a raised horizon) run one after another: two at once would share the
 * temporary file.
 */
export function saveMeta(fs: StoreFs, dir: string, meta: Meta): Promise<void> {
  const before = saving.get(meta) ?? Promise.resolve();
  const save = before.catch(() => undefined).then(() => writeMeta(fs, dir, meta));
  saving.set(meta, save);
  return save;
}

async function writeMeta(fs: StoreFs, dir: string, meta: Meta): Promise<void> {
  const json = {
    format: 1,
    epoch: meta.epoch,
    horizon: meta.horizon === null ? null : meta.horizon.toString(),
    validLengths: meta.validLengths,
    closedLengths: meta.closedLengths,
  };
  await replaceFile(fs, dir, META_FILE, Buffer.from(`${JSON.stringify(json, null, 2)}\n`));
}

/** Locks this process holds, by token: a lock file naming this pid but no held token is stale. */
const held = new Set<string>();

/**
 * Takes the folder's lock file, holding this process's pid and a token. A lock left by
 * a process that no longer runs (or by a store of this process that never closed, in
 * tests that simulate crashes) is taken over; one held by a live store refuses with
 * GOSSIP_ERR_STORE_LOCKED. Returns the token to release it with.
 */
export async function acquireLock(fs: StoreFs, dir: string): Promise<string> {
  const path = `${dir}/${LOCK_FILE}`;
  const token = randomBytes(8).toString('hex');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await fs.open(path, 'create');
      try {
        await writeFully(file, [Buffer.from(`${process.pid} ${token}\n`)], 0);
      } finally {
        await file.close();
      }
      held.add(token);
      return token;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A live process writes its lock file whole; a torn one (a power loss before it
    // reached the disk) names no process and is stale.
    const content = (await readSmallFile(fs, path))?.toString('utf8') ?? '';
    const m = /^(\d+) ([0-9a-f]{16})\n$/.exec(content);
    const holder = Number(m?.[1]);
    const live = !m ? false : holder === process.pid ? held.has(m[2] as string) : holder > 0 && isRunning(holder);
    if (live) {
      throw new GossipError(
        'GOSSIP_ERR_STORE_LOCKED',
        `${dir} is in use by process ${holder} (${path}); stop it, or use another --data-dir`,
      );
    }
    await fs.unlink(path); // stale: its process is gone
  }
  throw new GossipError('GOSSIP_ERR_STORE_LOCKED', `could not take ${path}`);
}

export async function releaseLock(fs: StoreFs, dir: string, token: string): Promise<void> {
  held.delete(token);
  await fs.unlink(`${dir}/${LOCK_FILE}`).catch(() => undefined);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
