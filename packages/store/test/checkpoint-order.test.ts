import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CHECKPOINT_FILE, type Store, type StoreLogger } from '@gossip/store';
import { beforeEach, describe, expect, it } from 'vitest';
import { type Checkpoint, decodeCheckpoint, encodeCheckpoint } from '../src/checkpoint.js';
import { IndexTable } from '../src/index-table.js';
import { expectPrefixReplays, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * The id order in the index checkpoint (docs/STORAGE.md, S9): version 2 holds the ids
 * in id order and the index takes that order as it is; version 1, without it, is still
 * read and its ids sorted once; an order that does not hold is sorted or refused, never
 * trusted.
 */

const stores = tempStores('gossip-store-ckpt-order-');
const { openStore } = stores;
let dir: string;
beforeEach(() => {
  dir = stores.dir();
});

const OPTS = { segmentBytes: 2048, compactThreshold: 0 };
const PREFIXES = ['', 'k', 'k1', 'k1/', 'k12', 'ключ', 'ключ-1', '\u00ff', '😀', 'zz'];
const SORTED_LOG = 'index checkpoint: ids sorted into id order';

/** Several segments, ids with shared prefixes and of different lengths, updates, tombstones and a compaction output. */
async function fill(store: Store): Promise<void> {
  let ts = 1000n;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 60; i++) {
      const id = [`k${i}`, `k${i % 7}/${i}`, `ключ-${i}`, `\u00ff${i}`, `😀${i}`][i % 5] as string;
      const data = round === 2 && i % 9 === 0 ? Buffer.alloc(0) : Buffer.from(`v${round}-${id}`);
      await store.append(id, ts++, data);
    }
    if (round === 0) {
      await store.roll();
      await store.compact();
    }
  }
}

function capture(): { logger: StoreLogger; infos: { fields: object; message: string }[]; reasons: unknown[] } {
  const infos: { fields: object; message: string }[] = [];
  const reasons: unknown[] = [];
  return {
    infos,
    reasons,
    logger: {
      info: (fields, message) => {
        infos.push({ fields, message });
        if ('reason' in fields) reasons.push(fields.reason);
      },
      warn: () => undefined,
      error: () => undefined,
    },
  };
}

/**
 * A version 1 checkpoint, as the encoder before the order column wrote it: the header,
 * then the columns segment u32, offset u32, size u32, ts i64, idLength u16, tombstone u8,
 * each for every entry, then the ids in entry order, UTF-8, then the CRC-32 of it all.
 */
function encodeVersion1(c: Checkpoint): Buffer {
  const { ids, seg, off, size, ts, tomb } = c.entries;
  const n = ids.length;
  const idBlob = Buffer.from(ids.join(''), 'utf8');
  const header = Buffer.from(
    JSON.stringify({
      segments: c.segments,
      corruptions: c.corruptions,
      entries: n,
      idBytes: idBlob.length,
      newestTs: c.newestTs === null ? null : c.newestTs.toString(),
    }),
  );
  const buf = Buffer.alloc(12 + header.length + n * (4 + 4 + 4 + 8 + 2 + 1) + idBlob.length + 4);
  buf.write('GSPX', 0, 'latin1');
  buf.writeUInt16BE(1, 4);
  buf.writeUInt16BE(0, 6);
  buf.writeUInt32BE(header.length, 8);
  header.copy(buf, 12);
  let p = 12 + header.length;
  for (let k = 0; k < n; k++) p = buf.writeUInt32BE(seg[k] as number, p);
  for (let k = 0; k < n; k++) p = buf.writeUInt32BE(off[k] as number, p);
  for (let k = 0; k < n; k++) p = buf.writeUInt32BE(size[k] as number, p);
  for (let k = 0; k < n; k++) p = buf.writeBigInt64BE(ts[k] as bigint, p);
  for (let k = 0; k < n; k++) p = buf.writeUInt16BE((ids[k] as string).length, p);
  for (let k = 0; k < n; k++) p = buf.writeUInt8(tomb[k] as number, p);
  p += idBlob.copy(buf, p);
  buf.writeUInt32BE(crc32(buf.subarray(0, p)), p);
  return buf;
}

/** The checkpoint a clean close just wrote, decoded. */
async function readCheckpointFile(): Promise<{ raw: Buffer; ckpt: Checkpoint }> {
  const raw = await readFile(join(dir, CHECKPOINT_FILE));
  const ckpt = decodeCheckpoint(raw);
  if (typeof ckpt === 'string') throw new Error(ckpt);
  return { raw, ckpt };
}

/** A store filled (`fill`) and closed cleanly: its full replay, and the checkpoint the close wrote. */
async function filledCheckpoint(): Promise<{ want: Awaited<ReturnType<typeof rows>>; raw: Buffer; ckpt: Checkpoint }> {
  const store = await openStore(OPTS);
  await fill(store);
  const want = await rows(store);
  await store.close();
  return { want, ...(await readCheckpointFile()) };
}

/** Every id reads back as the replay has it, and every prefix replays as the full replay filtered. */
async function expectIdsRight(store: Store, want: Awaited<ReturnType<typeof rows>>): Promise<void> {
  expect(await rows(store)).toEqual(want);
  for (const [id, ts, data] of want) {
    const got = await store.get(id);
    expect(got?.ts, `get(${id})`).toBe(ts);
    expect(got?.data.toString('hex'), `get(${id})`).toBe(data);
  }
  const mid = (want[want.length >> 1] as (typeof want)[number])[1];
  await expectPrefixReplays(store, PREFIXES, [null, mid]);
}

describe('index checkpoint id order', () => {
  it('checkpoint - a close writes version 2, ids in id order; the index takes that order as it is', async () => {
    const { raw, ckpt } = await filledCheckpoint();
    expect(raw.readUInt16BE(4)).toBe(2);
    const { ids, order, sorted } = ckpt.entries;
    expect(sorted).toEqual([...ids].sort());
    expect(Array.from(order as Uint32Array, (k) => ids[k])).toEqual(sorted);

    const index = new IndexTable();
    expect(index.restore(ckpt.entries, ckpt.newestTs)).toBe('ordered');
    expect(index.orderProblem()).toBeUndefined();
    const under = ids.filter((id) => id.startsWith('k1'));
    expect(under.length).toBeGreaterThan(0);
    expect(index.plan(null, 'k1').n).toBe(under.length);

    const { logger, infos } = capture();
    const loaded = await openStore({ ...OPTS, logger });
    expect(loaded.stats().recovery.checkpoint).toBe(true);
    expect(infos.map((i) => i.message)).not.toContain(SORTED_LOG);
  });

  it('checkpoint - a version 1 checkpoint still opens: ids sorted once, every id readable, prefix replays right', async () => {
    const { want, ckpt } = await filledCheckpoint();
    const v1 = encodeVersion1(ckpt);
    await writeFile(join(dir, CHECKPOINT_FILE), v1);

    const old = decodeCheckpoint(v1);
    if (typeof old === 'string') throw new Error(old);
    expect(old.entries.order).toBeNull();
    expect(old.entries.sorted).toBeNull();
    expect(old.entries.ids).toEqual(ckpt.entries.ids);
    expect(old.entries.ts).toEqual(ckpt.entries.ts);
    const index = new IndexTable();
    expect(index.restore(old.entries, old.newestTs)).toBe('sorted');
    expect(index.orderProblem()).toBeUndefined();
    for (const id of old.entries.ids) expect(index.slotOf(id), id).toBeDefined();

    const { logger, infos } = capture();
    const loaded = await openStore({ ...OPTS, logger });
    expect(loaded.stats().recovery).toMatchObject({ checkpoint: true, records: want.length });
    expect(infos.find((i) => i.message === SORTED_LOG)?.fields).toEqual({ ids: want.length, ordered: false });
    await expectIdsRight(loaded, want);

    // The order is kept from then on, and the next close writes version 2.
    await loaded.append('k1/new', 5000n, Buffer.from('new'));
    await loaded.append('k1', 5001n, Buffer.alloc(0));
    const after = await rows(loaded);
    await expectPrefixReplays(loaded, PREFIXES, [null]);
    await loaded.close();
    expect((await readCheckpointFile()).raw.readUInt16BE(4)).toBe(2);
    const again = await openStore(OPTS);
    await expectIdsRight(again, after);
  });

  it('checkpoint - a version 2 checkpoint whose ids are not in id order is sorted once: ids still right', async () => {
    const { want, ckpt } = await filledCheckpoint();
    // Two ids trade places in the order, each still naming its own entry: the file holds
    // every id at its entry, but not in id order.
    const order = ckpt.entries.order as Uint32Array;
    const sorted = ckpt.entries.sorted as string[];
    const [a, b] = [3, sorted.length - 5];
    [order[a], order[b]] = [order[b] as number, order[a] as number];
    [sorted[a], sorted[b]] = [sorted[b] as string, sorted[a] as string];
    const tampered = encodeCheckpoint(ckpt);
    await writeFile(join(dir, CHECKPOINT_FILE), tampered);

    const decoded = decodeCheckpoint(tampered);
    if (typeof decoded === 'string') throw new Error(decoded);
    expect(decoded.entries.ids).toEqual(ckpt.entries.ids);
    const index = new IndexTable();
    expect(index.restore(decoded.entries, decoded.newestTs)).toBe('sorted');
    expect(index.orderProblem()).toBeUndefined();

    const { logger, infos } = capture();
    const loaded = await openStore({ ...OPTS, logger });
    expect(loaded.stats().recovery.checkpoint).toBe(true);
    expect(infos.find((i) => i.message === SORTED_LOG)?.fields).toEqual({ ids: want.length, ordered: true });
    await expectIdsRight(loaded, want);
  });

  it('checkpoint - a version 2 checkpoint whose order names an entry twice is not used; the open scans', async () => {
    const { want, ckpt } = await filledCheckpoint();
    const order = ckpt.entries.order as Uint32Array;
    order[7] = order[8] as number;
    const tampered = encodeCheckpoint(ckpt);
    expect(decodeCheckpoint(tampered)).toBe('the order is not one of the entries');
    await writeFile(join(dir, CHECKPOINT_FILE), tampered);

    const { logger, reasons } = capture();
    const scanned = await openStore({ ...OPTS, logger });
    expect(reasons).toEqual(['the order is not one of the entries']);
    expect(scanned.stats().recovery.checkpoint).toBe(false);
    await expectIdsRight(scanned, want);
  });

  it('checkpoint - an order entry past the entries is refused', async () => {
    const { ckpt } = await filledCheckpoint();
    (ckpt.entries.order as Uint32Array)[0] = ckpt.entries.ids.length;
    expect(decodeCheckpoint(encodeCheckpoint(ckpt))).toBe('the order is not one of the entries');
  });

  it('checkpoint - an index whose order is being rebuilt (a scan under way) refuses to make one', () => {
    const index = new IndexTable();
    index.deferOrder();
    index.load('a', 1n, 1, 16, 40, false, { seg: 0, size: 0 });
    expect(() => index.columns()).toThrow(/being rebuilt/);
    index.sortOrder();
    expect(index.columns().sorted).toEqual(['a']);
    expect(index.orderProblem()).toBeUndefined();
  });
});
