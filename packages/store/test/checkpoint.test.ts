import { copyFile, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { GossipError } from '@gossip/protocol';
import { CHECKPOINT_FILE, nodeFs, Store, type StoreLogger, type StoreOptions, scanSegment } from '@gossip/store';
import { beforeEach, describe, expect, it } from 'vitest';
import { type Checkpoint, type CheckpointSegment, decodeCheckpoint, encodeCheckpoint } from '../src/checkpoint.js';
import { replayRecordsTests } from './replay-records.suite.js';
import { recordRows, rows } from './replay-rows.js';
import { type MutationRecord, SimDisk } from './sim-disk.js';
import { tempStores } from './temp-stores.js';

/*
 * The index checkpoint (docs/STORAGE.md, S9) and the replay of records as they lie on
 * disk (`replayRecords`), which both lean on the record layout.
 */

const stores = tempStores('gossip-store-ckpt-');
const { openStore, opened } = stores;
let dir: string;
beforeEach(() => {
  dir = stores.dir();
});

const SIM_DIR = '/data';

async function openSim(disk: SimDisk, options: Partial<StoreOptions> = {}): Promise<Store> {
  const store = await Store.open({ dir: SIM_DIR, fs: disk, fsync: 'always', segmentBytes: 1024, ...options });
  opened.push(store);
  return store;
}

function stateOf(store: Store) {
  const s = store.stats();
  return {
    ids: s.ids,
    tombstones: s.tombstones,
    segments: s.segments,
    bytes: s.bytes,
    liveBytes: s.liveBytes,
    newestTs: s.newestTs,
    horizon: s.horizon,
    epoch: s.epoch,
  };
}

/** Several segments, updates, tombstones, multi-byte ids and a compaction output. */
async function fillVaried(store: Store): Promise<void> {
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 25; i++) {
      const id = i % 5 === 0 ? `ключ-${i}` : `k${i}`;
      const data = round === 3 && i % 7 === 0 ? Buffer.alloc(0) : Buffer.from(`v${round}-${i}-${'x'.repeat(i)}`);
      await store.append(id, BigInt(1000 + round * 100 + ((i * 37) % 25)), data);
    }
    if (round === 1) {
      await store.roll();
      await store.compact();
    }
  }
}

function capture(): { logger: StoreLogger; infos: string[]; warns: string[]; reasons: unknown[] } {
  const infos: string[] = [];
  const warns: string[] = [];
  const reasons: unknown[] = [];
  return {
    infos,
    warns,
    reasons,
    logger: {
      info: (f, m) => {
        infos.push(m);
        if ('reason' in f) reasons.push(f.reason);
      },
      warn: (_f, m) => warns.push(m),
      error: () => undefined,
    },
  };
}

describe('index checkpoint', () => {
  it('checkpoint - a clean close writes it; the next open loads it, consumes it and holds what a scan finds', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    await fillVaried(store);
    const want = await rows(store);
    const wantState = stateOf(store);
    await store.close();
    expect(await readdir(dir)).toContain(CHECKPOINT_FILE);

    const loaded = await openStore(opts);
    expect(loaded.stats().recovery).toMatchObject({ checkpoint: true, records: wantState.ids, corruptions: [] });
    expect(await readdir(dir), 'consumed by the open').not.toContain(CHECKPOINT_FILE);
    expect(await rows(loaded)).toEqual(want);
    expect(stateOf(loaded)).toEqual(wantState);
    expect((await loaded.get('ключ-5'))?.data.toString()).toBe('v3-5-xxxxx');
    await loaded.close();

    await rm(join(dir, CHECKPOINT_FILE));
    const scanned = await openStore(opts);
    expect(scanned.stats().recovery.checkpoint).toBe(false);
    expect(await rows(scanned)).toEqual(want);
    expect(stateOf(scanned)).toEqual(wantState);
  });

  it('checkpoint - appends after a load go on in the same segment, and a crash after them is recovered by a scan', async () => {
    const disk = new SimDisk();
    const first = await openSim(disk);
    for (let i = 0; i < 5; i++) await first.append(`a${i}`, BigInt(i + 1), Buffer.from(`one ${i}`));
    await first.close();
    const second = await openSim(disk);
    expect(second.stats().recovery.checkpoint).toBe(true);
    for (let i = 0; i < 5; i++) await second.append(`a${i}`, BigInt(i + 10), Buffer.from(`two ${i}`));
    await second.append('b', 20n, Buffer.from('new'));
    const want = await rows(second);
    expect(disk.list(SIM_DIR)).not.toContain(CHECKPOINT_FILE);

    const third = await openSim(disk.crash());
    expect(third.stats().recovery.checkpoint).toBe(false);
    expect(await rows(third)).toEqual(want);
  });

  it('checkpoint - not used once a segment changed after the close: the scan finds the change', async () => {
    const disk = new SimDisk();
    const store = await openSim(disk);
    for (let i = 0; i < 20; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
    await store.close();
    // Someone writes a byte into a record, through the filesystem: the file's stamp changes.
    const name = disk.list(SIM_DIR).find((n) => n.endsWith('.seg')) as string;
    const f = await disk.open(`${SIM_DIR}/${name}`, 'write');
    await f.writev([Buffer.from([0xee])], 40);
    await f.close();
    const { logger, infos } = capture();
    const again = await openSim(disk, { logger });
    expect(infos).toContain('index checkpoint not used: scanning the segments');
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect(again.stats().recovery.corruptions).toHaveLength(1);
  });

  it('checkpoint - a damaged or stale checkpoint is ignored and the segments are scanned', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`v${i}`));
    await store.close();
    const stale = join(dir, 'stale.index');
    await copyFile(join(dir, CHECKPOINT_FILE), stale);

    // Damaged: one byte of an entry flipped; its checksum catches it.
    const fh = await open(join(dir, CHECKPOINT_FILE), 'r+');
    const size = (await fh.stat()).size;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, size - 10);
    b[0] = (b[0] as number) ^ 0x01;
    await fh.write(b, 0, 1, size - 10);
    await fh.close();
    const damaged = await openStore(opts);
    expect(damaged.stats().recovery.checkpoint).toBe(false);
    expect(damaged.stats().ids).toBe(10);
    for (let i = 10; i < 40; i++) await damaged.append(`k${i}`, BigInt(i + 1), Buffer.from(`v${i}`));
    const want = await rows(damaged);
    await damaged.close();

    // Stale: the checkpoint of an older close, which knows neither the new segments nor their records.
    await copyFile(stale, join(dir, CHECKPOINT_FILE));
    await rm(stale);
    const again = await openStore(opts);
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect(await rows(again)).toEqual(want);
  });

  it('checkpoint - bytes rotting after a clean close: the load trusts the index, and reads refuse the record', async () => {
    const disk = new SimDisk();
    const store = await openSim(disk);
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
    await store.close();
    const name = disk.list(SIM_DIR).find((n) => n.endsWith('.seg')) as string;
    const file = await disk.open(`${SIM_DIR}/${name}`, 'read');
    let k3 = 0;
    await scanSegment(file, name, await file.size(), (id, _ts, offset, size) => {
      if (id === 'k3') k3 = offset + size - 2; // in its data
    });
    await file.close();
    disk.rot(`${SIM_DIR}/${name}`, k3);

    const { logger, warns } = capture();
    const again = await openSim(disk, { logger });
    expect(again.stats().recovery.checkpoint).toBe(true);
    const error = await again.get('k3').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GossipError);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    const ids = (await rows(again)).map(([id]) => id);
    expect(ids).toEqual(['k0', 'k1', 'k2', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
    expect((await recordRows(again, null, 1 << 20)).map(([id]) => id)).toEqual(ids);
    expect(warns.filter((w) => w.includes('fails its checksum'))).toHaveLength(2);
    expect((await again.get('k4'))?.data.toString()).toBe('value 4');
  });

  it('checkpoint - corruption a scan reported stays reported after a load; corruption fail still refuses', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    for (let i = 0; i < 40; i++)
      await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i} ${'z'.repeat(20)}`));
    await store.close();
    await rm(join(dir, CHECKPOINT_FILE));
    const names = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
    const older = names[0] as string;
    const fh = await open(join(dir, older), 'r+');
    await fh.write(Buffer.from([0xff, 0xff]), 0, 2, 60);
    await fh.close();

    const scanned = await openStore(opts);
    const reported = scanned.stats().recovery.corruptions;
    expect(reported.length).toBeGreaterThan(0);
    await scanned.close();
    const loaded = await openStore(opts);
    expect(loaded.stats().recovery).toMatchObject({ checkpoint: true, corruptions: reported });
    await loaded.close();

    const refused = await Store.open({ dir, ...opts, corruption: 'fail' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GossipError);
    expect((refused as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
  });

  it('checkpoint - not written when the close cannot fsync the log', async () => {
    const disk = new SimDisk();
    const store = await openSim(disk, { fsync: 'never' });
    await store.append('a', 1n, Buffer.from('x'));
    const failing = disk.mutations + 1;
    disk.faults.push({ call: failing, kind: 'EIO' });
    await store.close();
    expect(disk.log.find((r) => r.call === failing)?.op, "the close's fsync of the tail failed").toBe('sync');
    expect(disk.list(SIM_DIR)).not.toContain(CHECKPOINT_FILE);
    const again = await openSim(disk);
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect(await rows(again)).toEqual([['a', 1n, Buffer.from('x').toString('hex')]]);
  });
  it('checkpoint - a close that cannot write it still closes cleanly; the next open scans', async () => {
    const workload = async (disk: SimDisk) => {
      const store = await openSim(disk);
      for (let i = 0; i < 5; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`v${i}`));
      await store.close();
    };
    // A clean run finds the call that creates the checkpoint's temporary file...
    const clean = new SimDisk();
    await workload(clean);
    const create = clean.log.find((r) => r.op === 'create' && r.path.endsWith(`${CHECKPOINT_FILE}.tmp`));
    expect(create).toBeDefined();
    // ...and the same run on a disk that is full right then.
    const disk = new SimDisk({ faultAt: { call: (create as MutationRecord).call, kind: 'ENOSPC' } });
    await workload(disk);
    expect(disk.list(SIM_DIR)).not.toContain(CHECKPOINT_FILE);
    expect(disk.list(SIM_DIR)).not.toContain('gossip.lock');
    const again = await openSim(disk);
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect((await rows(again)).map(([id]) => id)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
  });

  it('checkpoint - not written after a background fsync failed, even if the close fsyncs', async () => {
    const disk = new SimDisk();
    const store = await openSim(disk, { fsync: 'interval', fsyncIntervalMs: 5 });
    await store.append('a', 1n, Buffer.from('x'));
    disk.faults.push({ call: disk.mutations + 1, kind: 'EIO' }); // the background fsync of the tail
    while (store.stats().ioErrors === 0) await new Promise((r) => setTimeout(r, 5));
    await store.close();
    expect(disk.list(SIM_DIR)).not.toContain(CHECKPOINT_FILE);
    const again = await openSim(disk);
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect((await rows(again)).map(([id]) => id)).toEqual(['a']);
  });

  it('checkpoint - one whose checksum holds but whose header is not an object is ignored', async () => {
    const opts = { compactThreshold: 0 };
    const store = await openStore(opts);
    await store.append('a', 1n, Buffer.from('x'));
    await store.close();
    const header = Buffer.from('null');
    const body = Buffer.alloc(12 + header.length);
    body.write('GSPX', 0, 'latin1');
    body.writeUInt16BE(1, 4);
    body.writeUInt32BE(header.length, 8);
    header.copy(body, 12);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    await writeFile(join(dir, CHECKPOINT_FILE), Buffer.concat([body, crc]));
    const { logger, infos } = capture();
    const again = await openStore({ ...opts, logger });
    expect(infos).toContain('index checkpoint not used: scanning the segments');
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect((await rows(again)).map(([id]) => id)).toEqual(['a']);
  });
  it.each([
    [[-5n, -(2n ** 40n), 3n], 3n],
    [[-(2n ** 40n), -5n, -(2n ** 33n)], -5n],
    [[2n ** 32n - 1n, 2n ** 32n, 1n], 2n ** 32n],
  ])('checkpoint - the newest ts it records is the newest of %s', async (tss, newest) => {
    const store = await openStore();
    for (const [i, ts] of tss.entries()) await store.append(`k${i}`, ts, Buffer.from('v'));
    await store.close();
    const again = await openStore();
    expect(again.stats().recovery.checkpoint).toBe(true);
    expect(again.newestTs).toBe(newest);
  });

  it('checkpoint - one that decodes but names an id twice is ignored, and nothing of it is kept', async () => {
    const store = await openStore();
    for (const id of ['ab', 'cd', 'ef']) await store.append(id, 1n, Buffer.from(id));
    const want = await rows(store);
    await store.close();
    const path = join(dir, CHECKPOINT_FILE);
    const ckpt = decodeCheckpoint(await readFile(path));
    if (typeof ckpt === 'string') throw new Error(ckpt);
    // Ids lie in the file in id order ('ab', 'cd', 'ef'): the second is written as the first again.
    (ckpt.entries.sorted as string[])[1] = 'ab';
    await writeFile(path, encodeCheckpoint(ckpt));
    const { logger, reasons } = capture();
    const again = await openStore({ logger });
    expect(reasons).toEqual(['an id repeats']);
    expect(again.stats().recovery.checkpoint).toBe(false);
    expect(await rows(again)).toEqual(want);
  });
});

describe('decodeCheckpoint', () => {
  // Every reason a checkpoint file is refused (the open then scans). The CRC is made
  // to match after each change, so that the check under test is the one that refuses.
  const good: Checkpoint = {
    segments: [{ name: 'a.seg', stamp: '1:2', size: 1000, cleanAsOf: 0, corrupt: false }],
    corruptions: [],
    entries: {
      ids: ['ab', 'c'],
      seg: Uint32Array.of(0, 0),
      off: Uint32Array.of(16, 100),
      size: Uint32Array.of(40, 40),
      ts: BigInt64Array.of(5n, -7n),
      tomb: Uint8Array.of(0, 1),
      order: Uint32Array.of(0, 1),
      sorted: ['ab', 'c'],
    },
    newestTs: 5n,
  };
  const reseal = (buf: Buffer) => {
    buf.writeUInt32BE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
    return buf;
  };
  const headerLen = (buf: Buffer) => buf.readUInt32BE(8);
  /** The idLength column: after the u32 seg, off and size, i64 ts, u8 tombstone and u32 order columns of both entries. */
  const lengthsAt = (buf: Buffer) => 12 + headerLen(buf) + 2 * (4 + 4 + 4 + 8 + 1 + 4);
  const withHeader = (edit: (h: Record<string, unknown>) => void) => {
    const buf = encodeCheckpoint(good);
    const h = JSON.parse(buf.toString('utf8', 12, 12 + headerLen(buf))) as Record<string, unknown>;
    edit(h);
    const json = Buffer.from(JSON.stringify(h));
    const out = Buffer.concat([buf.subarray(0, 8), Buffer.alloc(4), json, buf.subarray(12 + headerLen(buf))]);
    out.writeUInt32BE(json.length, 8);
    return reseal(out);
  };
  const withEntries = (edit: (c: Checkpoint) => void) => {
    const c = structuredClone(good);
    edit(c);
    return encodeCheckpoint(c);
  };

  it('decodeCheckpoint - reads back what encodeCheckpoint wrote', () => {
    expect(decodeCheckpoint(encodeCheckpoint(good))).toEqual(good);
  });

  it.each<[string, () => Buffer]>([
    ['not a checkpoint', () => reseal(Buffer.concat([Buffer.from('GSPY'), encodeCheckpoint(good).subarray(4)]))],
    ['unknown version 3', () => reseal(Buffer.from(encodeCheckpoint(good)).fill(3, 5, 6))],
    [
      'checksum mismatch',
      () => {
        const buf = Buffer.from(encodeCheckpoint(good));
        buf.writeUInt8(buf.readUInt8(buf.length - 1) ^ 0xff, buf.length - 1);
        return buf;
      },
    ],
    [
      'truncated',
      () => {
        const buf = Buffer.from(encodeCheckpoint(good));
        buf.writeUInt32BE(buf.length, 8);
        return reseal(buf);
      },
    ],
    [
      'unreadable header',
      () => {
        const buf = Buffer.from(encodeCheckpoint(good));
        buf.fill('{', 12, 14);
        return reseal(buf);
      },
    ],
    [
      'unreadable header',
      () =>
        withHeader((h) => {
          h.entries = 3;
        }),
    ],
    [
      'unreadable header',
      () =>
        withHeader((h) => {
          h.segments = [{ name: 'a.seg', stamp: '1:2', size: '1000' }];
        }),
    ],
    [
      'unreadable header',
      () =>
        withHeader((h) => {
          h.newestTs = 'soon';
        }),
    ],
    [
      'entry 1 is out of bounds',
      () =>
        withEntries((c) => {
          c.entries.off[1] = 990;
        }),
    ],
    [
      'entry 0 is out of bounds',
      () =>
        withEntries((c) => {
          c.entries.off[0] = 4;
        }),
    ],
    [
      'entry 0 is out of bounds',
      () =>
        withEntries((c) => {
          (c.segments[0] as CheckpointSegment).corrupt = true;
        }),
    ],
    [
      'entry 1 is out of bounds',
      () =>
        withEntries((c) => {
          c.entries.tomb[1] = 2;
        }),
    ],
    [
      'ids do not add up',
      () => {
        const buf = Buffer.from(encodeCheckpoint(good));
        buf.writeUInt16BE(1, lengthsAt(buf)); // 'ab' read as 'a', 'c' as 'b': one char left over
        return reseal(buf);
      },
    ],
  ])('decodeCheckpoint - refuses one with %s', (reason, make) => {
    expect(decodeCheckpoint(make())).toBe(reason);
  });
});

describe('replayRecords', () => replayRecordsTests(openStore));

// The real filesystem's stamps, so a checkpoint written by nodeFs is judged by them.
describe('nodeFs stamps', () => {
  it('checkpoint - a stamp changes when a file is written, and not when it is only read', async () => {
    const path = join(dir, 'f');
    const f = await nodeFs.open(path, 'create');
    await f.writev([Buffer.from('abc')], 0);
    const s1 = await f.stamp();
    await f.read(Buffer.alloc(3), 0, 3, 0);
    expect(await f.stamp()).toBe(s1);
    await f.writev([Buffer.from('abcd')], 0);
    expect(await f.stamp()).not.toBe(s1);
    await f.close();
  });
});
