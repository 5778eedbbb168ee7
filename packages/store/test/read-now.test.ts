import { readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { GossipError } from '@gossip/protocol';
import { nodeFs, type StoreFile, type StoreFs } from '@gossip/store';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Segment } from '../src/segment.js';
import { forwardFile } from './forward-file.js';
import { rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * The replay's blocking small reads (docs/STORAGE.md, "Replay", step 2; replay.ts,
 * "Reads"): `Segment.readNow` reads all it was asked for or fails as `Segment.read`
 * does, and a replay that meets a failed blocking read fails with it, leaving no read of
 * its window failing unhandled.
 */

const stores = tempStores('gossip-store-read-now-');
const { openStore } = stores;

/** A file of `bytes` whose blocking read hands out at most `chunk` bytes a call. */
function memoryFile(bytes: Buffer, chunk: number, blocking = true): StoreFile {
  const readNow = (buffer: Buffer, offset: number, length: number, position: number): number => {
    const n = Math.max(0, Math.min(length, chunk, bytes.length - position));
    bytes.copy(buffer, offset, position, position + n);
    return n;
  };
  return {
    read: async (buffer, offset, length, position) => readNow(buffer, offset, length, position),
    ...(blocking ? { readNow } : {}),
    writev: async () => 0,
    sync: async () => undefined,
    truncate: async () => undefined,
    size: async () => bytes.length,
    stamp: async () => String(bytes.length),
    close: async () => undefined,
  };
}

function segmentOf(file: StoreFile): Segment {
  const seg = new Segment(1, 1, 1, 0);
  seg.file = file;
  return seg;
}

describe('Segment.readNow', () => {
  const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

  it('readNow - reads across short reads until it has every byte asked for', () => {
    const seg = segmentOf(memoryFile(bytes, 7));
    const buf = Buffer.alloc(40);
    expect(seg.readNow(buf, 50, 40)).toBe(true);
    expect(buf).toEqual(bytes.subarray(50, 90));
  });

  it('readNow - a file that ends before the bytes asked for is GOSSIP_ERR_STORE_CORRUPT, and the file is unpinned', async () => {
    const seg = segmentOf(memoryFile(bytes, 7));
    const error = (() => {
      try {
        seg.readNow(Buffer.alloc(40), 80, 40);
      } catch (e) {
        return e as GossipError;
      }
      return undefined;
    })();
    expect(error?.code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    expect(error?.message).toContain(seg.name);
    // Unpinned: a retire closes the file at once, and a later read is refused as closed.
    seg.retire();
    await seg.close();
    expect(() => seg.readNow(Buffer.alloc(1), 0, 1)).toThrow(/closed/);
  });

  it('readNow - the async read says the same of the same short file', async () => {
    const seg = segmentOf(memoryFile(bytes, 7));
    const error = await seg.read(Buffer.alloc(40), 80, 40).catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
  });

  it('readNow - a file without blocking reads says false, having read nothing', () => {
    const seg = segmentOf(memoryFile(bytes, 7, false));
    const buf = Buffer.alloc(4, 0xee);
    expect(seg.readNow(buf, 0, 4)).toBe(false);
    expect(buf).toEqual(Buffer.alloc(4, 0xee));
  });
});

/**
 * The real filesystem, counting blocking and async reads (the async ones kept in
 * `reads`), and failing them with EIO while `fail` is set.
 */
function countingFs(): {
  fs: StoreFs;
  calls: { read: number; readNow: number };
  reads: Promise<number>[];
  fail: { on: boolean };
} {
  const calls = { read: 0, readNow: 0 };
  const reads: Promise<number>[] = [];
  const fail = { on: false };
  const eio = () => Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
  const fs: StoreFs = {
    ...nodeFs,
    async open(path, mode) {
      const f = await nodeFs.open(path, mode);
      const readNow = f.readNow?.bind(f);
      return forwardFile(f, {
        read: (buffer, offset, length, position) => {
          calls.read++;
          const failing = fail.on;
          const read = f.read(buffer, offset, length, position).then((n) => {
            if (failing) throw eio();
            return n;
          });
          reads.push(read);
          return read;
        },
        readNow: readNow
          ? (buffer, offset, length, position) => {
              calls.readNow++;
              if (fail.on) throw eio();
              return readNow(buffer, offset, length, position);
            }
          : undefined,
      });
    },
  };
  return { fs, calls, reads, fail };
}

describe('replay through blocking reads', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  /**
   * Runs `fn` with `performance.now()` standing still: a window reads small groups
   * blocking only within a 2 ms budget, which a loaded machine (CI) can spend before the
   * read these tests count. With the clock stopped the budget always holds.
   */
  async function clockStill<T>(fn: () => Promise<T>): Promise<T> {
    const now = vi.spyOn(performance, 'now').mockReturnValue(performance.now());
    try {
      return await fn();
    } finally {
      now.mockRestore();
    }
  }

  it('replay - small records are read blocking; a segment shorter than the index says is GOSSIP_ERR_STORE_CORRUPT', async () => {
    const { fs, calls } = countingFs();
    const store = await openStore({ fs });
    for (let i = 0; i < 5; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
    await store.flush();
    calls.read = 0;
    expect((await clockStill(() => rows(store))).map(([id]) => id)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(calls.readNow).toBeGreaterThan(0);
    expect(calls.read).toBe(0);

    // Cut the last record short under the open store: the blocking read meets the end of the file.
    const path = join(store.dir, (await readdir(store.dir)).find((n) => n.endsWith('.seg')) as string);
    await truncate(path, (await stat(path)).size - 3);
    const error = await clockStill(() => rows(store)).catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    expect(calls.read).toBe(0);
  });

  it('replay - a failed blocking read fails the replay, and the window’s reads in flight fail handled', async () => {
    const { fs, calls, reads, fail } = countingFs();
    const store = await openStore({ fs, segmentBytes: 1024 });
    // A large record (read through the thread pool), then small ones in later segments (read blocking).
    await store.append('big', 1n, Buffer.alloc(20 * 1024, 1));
    for (let i = 0; i < 3; i++) await store.append(`small-${i}`, BigInt(2 + i), Buffer.from(`v${i}`));
    await store.flush();
    calls.read = 0;
    calls.readNow = 0;
    reads.length = 0;
    fail.on = true;
    const error = await clockStill(() => rows(store)).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('EIO');
    expect(calls.read).toBe(1);
    expect(calls.readNow).toBe(1);
    // The read still in flight when the blocking one failed fails too: once it has, and
    // the rejections queued by then have been reported, none may be unhandled.
    expect(await Promise.allSettled(reads)).toMatchObject([{ status: 'rejected' }]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
    fail.on = false;
    expect((await rows(store)).map(([id]) => id)).toEqual(['big', 'small-0', 'small-1', 'small-2']);
  });
});
