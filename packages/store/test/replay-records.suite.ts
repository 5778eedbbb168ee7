import { open, readdir } from 'node:fs/promises';
import { type GossipError, MAX_TS, MIN_TS } from '@gossip/protocol';
import type { RecordBatch, Store, StoreOptions } from '@gossip/store';
import { expect, it } from 'vitest';
import { batchRows, recordRows, rows } from './replay-rows.js';

/** The replay's behaviour, in both forms: decoded messages and records as they lie on disk. */
export function replayRecordsTests(openStore: (options?: Partial<StoreOptions>) => Promise<Store>): void {
  it('replayRecords - the same messages as replay, in ts order, whether the records lie in ts order or not', async () => {
    const store = await openStore({ segmentBytes: 2048, compactThreshold: 0 });
    // In file order and in ts order...
    for (let i = 0; i < 60; i++) await store.append(`in-${i}`, BigInt(1000 + i), Buffer.from(`in ${i}`));
    // ...then appended against ts order, across segments, with updates and tombstones.
    for (let i = 0; i < 60; i++) {
      await store.append(`out-${i % 40}`, BigInt(500 - i), i % 9 === 0 ? Buffer.alloc(0) : Buffer.alloc(i * 3, i));
    }
    await store.append('ключ', 2000n, Buffer.from('é'));
    for (const since of [null, 0n, 470n, 1030n, 2000n, 2001n]) {
      const want = await rows(store, since);
      for (const batchBytes of [1, 300, 1 << 20]) {
        expect(await recordRows(store, since, batchBytes), `since ${since}, batches of ${batchBytes}`).toEqual(want);
      }
    }
  });

  // After the first window (k0) is handed out: k5 is still to be cut; k1 was cut and read ahead.
  it.each([
    ['after the replay started, as replayBatches does', 'k5'],
    ['while its window, already read ahead, waited', 'k1'],
  ])('replayRecords - leaves out an id updated %s', async (_when, updated) => {
    const store = await openStore();
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`old ${i}`));
    const it = store.replayRecords(null, { batchBytes: 1 });
    const first = await it.next();
    const ids = batchRows(first.value as RecordBatch).map(([id]) => id);
    await store.append(updated, 100n, Buffer.from('new'));
    for await (const b of it) ids.push(...batchRows(b).map(([id]) => id));
    expect(ids).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`).filter((id) => id !== updated));
  });

  it('replayRecords - an abort stops it before the last window too', async () => {
    const store = await openStore();
    await store.append('a', 1n, Buffer.from('1'));
    await store.append('b', 2n, Buffer.from('2'));
    const abort = new AbortController();
    const seen: number[] = [];
    const error = await (async () => {
      for await (const b of store.replayRecords(null, { batchBytes: 1, signal: abort.signal })) {
        seen.push(b.count);
        abort.abort();
      }
    })().catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_ABORTED');
    expect(seen).toEqual([1]);
  });

  it('replay - a since outside the 64-bit range: above it nothing, below it everything', async () => {
    const store = await openStore();
    await store.append('a', MIN_TS, Buffer.from('min'));
    await store.append('b', MAX_TS, Buffer.from('max'));
    expect(await rows(store, MAX_TS + 1n)).toEqual([]);
    expect(await rows(store, 2n ** 64n + 3n)).toEqual([]);
    expect((await rows(store, MIN_TS - 5n)).map(([id]) => id)).toEqual(['a', 'b']);
    expect((await rows(store, MAX_TS)).map(([id]) => id)).toEqual(['b']);
  });

  it('replayRecords - an aborted signal stops it', async () => {
    const store = await openStore();
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from('v'));
    const abort = new AbortController();
    const seen: number[] = [];
    const run = (async () => {
      for await (const b of store.replayRecords(null, { batchBytes: 1, signal: abort.signal })) {
        seen.push(b.count);
        if (seen.length === 3) abort.abort();
      }
    })();
    const error = await run.catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_ABORTED');
    expect(seen).toEqual([1, 1, 1]);
  });

  it('replayRecords - leaves out a record that fails its checksum, and goes on', async () => {
    const warns: string[] = [];
    const logger = { info: () => undefined, warn: (_o: object, m: string) => warns.push(m), error: () => undefined };
    const store = await openStore({ logger });
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
    await store.flush();
    const got = await store.get('k3');
    expect(got?.data.toString()).toBe('value 3');
    // Damage k3's data in its segment file, under the open store.
    const name = (await readdir(store.dir)).find((n) => n.endsWith('.seg')) as string;
    const file = await open(`${store.dir}/${name}`, 'r+');
    const bytes = await file.readFile();
    const at = bytes.indexOf('value 3');
    await file.write(Buffer.from('VALUE 3'), 0, 7, at);
    await file.close();
    const others = [0, 1, 2, 4, 5, 6, 7, 8, 9].map((i) => `k${i}`);
    expect((await recordRows(store, null, 1 << 20)).map(([id]) => id)).toEqual(others);
    expect(warns.filter((w) => w.includes('fails its checksum'))).toHaveLength(1);
    const error = await store.get('k3').catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
  });
}
