import { setImmediate as nextTurn } from 'node:timers/promises';
import { type FsyncMode, nodeFs, Store, type StoreFs } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { RECORD_OVERHEAD_BYTES } from '../src/format.js';
import { WRITE_NOW_MAX_BYTES } from '../src/writer.js';
import { forwardFile } from './forward-file.js';
import { rows } from './replay-rows.js';
import { SimDisk } from './sim-disk.js';
import { tempStores } from './temp-stores.js';

/*
 * Blocking writes of small batches (docs/STORAGE.md, S4): a batch of at most
 * WRITE_NOW_MAX_BYTES that waits for no fsync is written on the event loop
 * (`writevNow`), a larger one or any under `always` through the thread pool (`writev`);
 * a blocking write that fails or writes short is handled as an asynchronous one (S6).
 */

const stores = tempStores('gossip-store-write-now-');
const { openStore } = stores;

/** What the next blocking write of a segment does instead of its own: fail with EIO, write only `short` bytes, or write none and say so. */
type Fault = { kind: 'EIO' } | { kind: 'short'; bytes: number } | { kind: 'none' };

/** The real filesystem, counting the segments' blocking and async writes, with faults for the blocking ones. */
function countingFs(): { fs: StoreFs; calls: { writev: number; writevNow: number }; faults: Fault[] } {
  const calls = { writev: 0, writevNow: 0 };
  const faults: Fault[] = [];
  const fs: StoreFs = {
    ...nodeFs,
    async open(path, mode) {
      const f = await nodeFs.open(path, mode);
      if (!path.endsWith('.seg')) return f;
      const writevNow = f.writevNow?.bind(f);
      return forwardFile(f, {
        writev: (buffers, position) => {
          calls.writev++;
          return f.writev(buffers, position);
        },
        writevNow: writevNow
          ? (buffers, position) => {
              calls.writevNow++;
              const fault = faults.shift();
              if (fault?.kind === 'EIO') throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
              if (fault?.kind === 'none') return 0;
              if (fault?.kind === 'short') {
                const first = buffers[0] as Buffer;
                return writevNow([first.subarray(0, Math.min(fault.bytes, first.length))], position);
              }
              return writevNow(buffers, position);
            }
          : undefined,
      });
    },
  };
  return { fs, calls, faults };
}

async function ids(store: Store): Promise<string[]> {
  return (await rows(store)).map(([id]) => id);
}

/** Every record a replay yields: id, ts and the data as text. */
async function records(store: Store): Promise<[string, bigint, string][]> {
  return (await rows(store)).map(([id, ts, hex]) => [id, ts, Buffer.from(hex, 'hex').toString()]);
}

describe('blocking writes of small batches', () => {
  for (const fsync of ['interval', 'never'] as FsyncMode[]) {
    it(`write now - small batches are written blocking, a batch over ${WRITE_NOW_MAX_BYTES} bytes through the thread pool (${fsync})`, async () => {
      const { fs, calls } = countingFs();
      const store = await openStore({ fs, fsync });
      // The segment's header is written as the file is made: count the batches' writes only.
      await store.append('k0', 1n, Buffer.from('value 0'));
      const made = calls.writev;
      for (let i = 1; i < 5; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
      expect([calls.writevNow, calls.writev - made]).toEqual([5, 0]);
      await store.append('big', 10n, Buffer.alloc(WRITE_NOW_MAX_BYTES, 1));
      expect([calls.writevNow, calls.writev - made]).toEqual([5, 1]);
      expect(await ids(store)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'big']);
    });
  }

  it('write now - under always every batch goes through the thread pool, with its fsync', async () => {
    const { fs, calls } = countingFs();
    const store = await openStore({ fs, fsync: 'always' });
    await store.append('k0', 1n, Buffer.from('v'));
    const made = calls.writev;
    for (let i = 1; i < 4; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from('v'));
    expect([calls.writevNow, calls.writev - made]).toEqual([0, 3]);
  });

  it('write now - a failed blocking write fails its batch alone; the next append goes to a new segment; a reopen holds the acked', async () => {
    const { fs, faults } = countingFs();
    const store = await openStore({ fs, fsync: 'interval' });
    await store.append('a', 1n, Buffer.from('a1'));
    faults.push({ kind: 'EIO' });
    const failed = await Promise.all([
      store.append('b', 2n, Buffer.from('b1')).catch((e: { code?: string }) => e.code),
      store.append('a', 3n, Buffer.from('a2')).catch((e: { code?: string }) => e.code),
    ]);
    expect(failed).toEqual(['GOSSIP_ERR_STORE_WRITE', 'GOSSIP_ERR_STORE_WRITE']);
    expect(await ids(store)).toEqual(['a']);
    expect((await store.get('a'))?.data.toString()).toBe('a1');
    // The ts of a failed append is free again, and the store goes on in a new segment.
    expect((await store.append('b', 2n, Buffer.from('b1-again'))).status).toBe('accepted');
    expect(store.stats().segments).toBe(2);
    await store.close();
    const again = await openStore({ fs: nodeFs });
    expect(await records(again)).toEqual([
      ['a', 1n, 'a1'],
      ['b', 2n, 'b1-again'],
    ]);
    expect(again.stats().recovery.corruptions).toEqual([]);
  });

  it('write now - a blocking write that writes nothing fails its batch with GOSSIP_ERR_STORE_WRITE', async () => {
    const { fs, faults } = countingFs();
    const store = await openStore({ fs, fsync: 'interval' });
    await store.append('a', 1n, Buffer.from('a1'));
    faults.push({ kind: 'none' });
    const code = await store.append('b', 2n, Buffer.from('b1')).catch((e: { code?: string }) => e.code);
    expect(code).toBe('GOSSIP_ERR_STORE_WRITE');
    expect(await ids(store)).toEqual(['a']);
    expect((await store.append('b', 2n, Buffer.from('b1'))).status).toBe('accepted');
  });

  it('write now - a short blocking write is completed by the next call, and the batch is acked whole', async () => {
    const { fs, calls, faults } = countingFs();
    const store = await openStore({ fs, fsync: 'interval' });
    faults.push({ kind: 'short', bytes: 7 });
    const results = await Promise.all([
      store.append('a', 1n, Buffer.from('first value')),
      store.append('b', 2n, Buffer.from('second value')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(calls.writevNow).toBe(2);
    await store.close();
    const again = await openStore({ fs: nodeFs });
    expect(await records(again)).toEqual([
      ['a', 1n, 'first value'],
      ['b', 2n, 'second value'],
    ]);
    expect(again.stats().recovery.corruptions).toEqual([]);
  });
});

/** The same on the simulated disk (sim-disk.ts), whose faults land on numbered calls. */
describe('blocking writes on the simulated disk', () => {
  const DIR = '/data';
  const open = (disk: SimDisk) =>
    Store.open({ dir: DIR, fs: disk, fsync: 'interval', fsyncIntervalMs: 3_600_000, compactThreshold: 0 });

  it('write now - a batch of exactly the limit is written blocking, one byte more through the thread pool', async () => {
    const disk = new SimDisk();
    const store = await open(disk);
    await store.append('a', 1n, Buffer.from('a'));
    const blocking = disk.blockingWrites;
    const data = (extra: number) => Buffer.alloc(WRITE_NOW_MAX_BYTES - RECORD_OVERHEAD_BYTES - 1 + extra, 7);
    await store.append('b', 2n, data(0)); // the record is exactly WRITE_NOW_MAX_BYTES: id 'b' is 1 byte
    expect(disk.blockingWrites).toBe(blocking + 1);
    await store.append('c', 3n, data(1));
    expect(disk.blockingWrites).toBe(blocking + 1);
    expect((await store.get('b'))?.data.length).toBe(WRITE_NOW_MAX_BYTES - RECORD_OVERHEAD_BYTES - 1);
    await store.close();
  });

  it('write now - a short blocking write and then a failed one: the batch fails, its partial bytes never show, the next batch goes on in a new segment', async () => {
    const disk = new SimDisk();
    const store = await open(disk);
    await store.append('a', 1n, Buffer.from('a1'));
    const n = disk.mutations + 1;
    disk.faults.push({ call: n, kind: 'short' }, { call: n + 1, kind: 'EIO' });
    const failed = await Promise.all(
      ['b', 'c'].map((id, i) =>
        store.append(id, BigInt(2 + i), Buffer.from(`${id}1`.repeat(20))).catch((e: { code?: string }) => e.code),
      ),
    );
    expect(failed).toEqual(['GOSSIP_ERR_STORE_WRITE', 'GOSSIP_ERR_STORE_WRITE']);
    expect(disk.log.slice(n - 1, n + 1).map((r) => r.op)).toEqual(['writev', 'writev']);
    expect((await store.append('d', 4n, Buffer.from('d1'))).status).toBe('accepted');
    expect(store.stats().segments).toBe(2);
    await store.flush();
    const crashed = disk.crash({ tearLastWrite: false });
    crashed.remove(`${DIR}/gossip.lock`);
    await store.close();
    for (const d of [disk, crashed]) {
      const again = await open(d);
      expect(await records(again)).toEqual([
        ['a', 1n, 'a1'],
        ['d', 4n, 'd1'],
      ]);
      expect(again.stats().recovery.corruptions).toEqual([]);
      await again.close();
    }
  });

  it('write now - batches that piled up behind a write in progress go through writev, the last one alone blocking', async () => {
    const disk = new SimDisk();
    const store = await open(disk);
    await store.append('a', 1n, Buffer.from('a1'));
    const n = disk.mutations + 1;
    const gate = disk.pauseAt(n);
    const first = store.append('b', 2n, Buffer.from('b1'));
    await gate.reached; // the writer waits inside the first batch's writev
    const later: Promise<unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      later.push(store.append(`c${i}`, BigInt(3 + i), Buffer.from('c')));
      await nextTurn(); // each turn's appends close into a batch of their own, queued
    }
    const blocking = disk.blockingWrites;
    gate.release();
    await Promise.all([first, ...later]);
    // Behind the paused write: two batches with another behind them (writev), then the last (blocking).
    expect(disk.blockingWrites - blocking).toBe(1);
    expect(disk.log.slice(n - 1).map((r) => r.op)).toEqual(['writev', 'writev', 'writev', 'writev']);
    expect(await ids(store)).toEqual(['a', 'b', 'c0', 'c1', 'c2']);
    await store.close();
  });

  it('write now - a file without blocking writes takes every batch through writev', async () => {
    const { fs, calls } = countingFs();
    const bare: StoreFs = {
      ...fs,
      async open(path, mode) {
        return forwardFile(await fs.open(path, mode), { writevNow: undefined });
      },
    };
    const store = await openStore({ fs: bare, fsync: 'interval' });
    for (let i = 0; i < 3; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from('v'));
    expect(calls.writevNow).toBe(0);
    expect(await ids(store)).toEqual(['k0', 'k1', 'k2']);
  });
});
