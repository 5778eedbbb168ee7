import { open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GossipError } from '@gossip/protocol';
import {
  type Corruption,
  classifyTail,
  META_FILE,
  nodeFs,
  RECORD_OVERHEAD_BYTES,
  type ScanResult,
  Store,
  type StoreLogger,
  scanSegment,
} from '@gossip/store';
import { beforeEach, describe, expect, it } from 'vitest';
import { leaveAsKilled } from './kill-folder.js';
import { SimDisk } from './sim-disk.js';
import { tempStores } from './temp-stores.js';

/*
 * Damage to bytes a clean close had fsynced is corruption, not a torn write
 * (docs/STORAGE.md, S8, `closedLengths` of the meta file): reported, kept on disk, the
 * segment sealed. Bytes written after the last clean close can still be torn, and are
 * cut as before.
 */

const stores = tempStores('gossip-store-clean-');
const { openStore, opened } = stores;
let dir: string;
beforeEach(() => {
  dir = stores.dir();
});

const d = (s: string) => Buffer.from(s);
const val = (i: number) => `value ${i} ${'x'.repeat(40)}`;

async function segFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
}

async function recordsOf(name: string): Promise<{ id: string; offset: number; size: number }[]> {
  const file = await nodeFs.open(join(dir, name), 'read');
  try {
    const out: { id: string; offset: number; size: number }[] = [];
    await scanSegment(file, name, await file.size(), (id, _ts, offset, size) => {
      out.push({ id, offset, size });
    });
    return out;
  } finally {
    await file.close();
  }
}

/**
 * A store with ten records, closed cleanly: its one segment's name and path, its size as
 * the close left it, and where its records lie.
 */
async function cleanlyClosed(): Promise<{
  name: string;
  path: string;
  size: number;
  records: { id: string; offset: number; size: number }[];
}> {
  const store = await openStore();
  for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), d(val(i)));
  await store.close();
  const [name] = await segFiles();
  const path = join(dir, name as string);
  return { name: name as string, path, size: (await stat(path)).size, records: await recordsOf(name as string) };
}

/** Overwrites 8 bytes of a file at `at` with bytes that differ from each of them. */
async function damage(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, at);
    for (let i = 0; i < 8; i++) b[i] = (b[i] as number) ^ 0x5a;
    await fh.write(b, 0, 8, at);
  } finally {
    await fh.close();
  }
}

async function closedLengths(): Promise<Record<string, number>> {
  return JSON.parse((await readFile(join(dir, META_FILE))).toString('utf8')).closedLengths;
}

async function expectCorruptOpen(options: object): Promise<GossipError> {
  const error = await Store.open({ dir, ...options, corruption: 'fail' }).then(
    () => undefined,
    (e: unknown) => e as GossipError,
  );
  expect(error).toBeInstanceOf(GossipError);
  expect(error?.code).toBe('GOSSIP_ERR_STORE_CORRUPT');
  return error as GossipError;
}

/** A logger that keeps every line. */
function recordingLogger(): StoreLogger & { lines: { level: string; msg: string; fields: object }[] } {
  const lines: { level: string; msg: string; fields: object }[] = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ level: 'info', msg, fields }),
    warn: (fields, msg) => lines.push({ level: 'warn', msg, fields }),
    error: (fields, msg) => lines.push({ level: 'error', msg, fields }),
  };
}

describe('clean close', () => {
  it('clean close - the meta file records each segment length as the close left it', async () => {
    const store = await openStore({ segmentBytes: 1024, compactThreshold: 0 });
    for (let i = 0; i < 40; i++) await store.append(`k${i}`, BigInt(i + 1), d(val(i)));
    await store.close();
    const sizes: Record<string, number> = {};
    for (const name of await segFiles()) sizes[name] = (await stat(join(dir, name))).size;
    expect(Object.keys(sizes).length).toBeGreaterThan(1);
    expect(await closedLengths()).toEqual(sizes);
  });

  it('clean close - 8 bytes overwritten near the end of the newest segment are corruption: reported, kept, the segment sealed', async () => {
    const { name, path, size, records } = await cleanlyClosed();
    const last = records[9] as { id: string; offset: number; size: number };
    expect(last.id).toBe('k9');
    await damage(path, size - 20);

    const logger = recordingLogger();
    const again = await openStore({ logger });
    const { recovery } = again.stats();
    expect(recovery.checkpoint).toBe(false); // the damage changed the file's stamp
    expect(recovery.corruptions).toEqual([{ file: name, offset: last.offset, bytesLost: last.size }]);
    expect(recovery.truncatedBytes).toBe(0);
    expect((await stat(path)).size).toBe(size);
    const errors = logger.lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toContain('corrupt');
    expect(errors[0]?.fields).toMatchObject({ file: name, offset: last.offset, bytesLost: last.size });
    expect(logger.lines.some((l) => l.msg.includes('torn tail'))).toBe(false);
    // The undamaged records are served; the damaged one never is.
    for (let i = 0; i < 9; i++) expect((await again.get(`k${i}`))?.data.toString()).toBe(val(i));
    expect(await again.get('k9')).toBeUndefined();

    // The damaged file takes no more appends: a new one does.
    await again.append('k9', 100n, d('again'));
    await again.append('new', 101n, d('new'));
    expect(await segFiles()).toHaveLength(2);
    expect((await stat(path)).size).toBe(size);
    await again.close();
    expect((await closedLengths())[name as string]).toBe(size); // never lowered

    const third = await openStore();
    expect(third.stats().recovery.corruptions).toEqual(recovery.corruptions); // still on disk, still reported
    expect((await third.get('k9'))?.data.toString()).toBe('again');
    expect((await third.get('new'))?.data.toString()).toBe('new');
    expect((await third.get('k3'))?.data.toString()).toBe(val(3));
    expect((await stat(path)).size).toBe(size);
  });

  it("clean close - corruption 'fail' refuses the open with GOSSIP_ERR_STORE_CORRUPT, changing nothing", async () => {
    const { name, path, size, records } = await cleanlyClosed();
    const last = records[9] as { id: string; offset: number; size: number };
    await damage(path, size - 20);

    const error = await expectCorruptOpen({});
    expect(error.message).toContain(name);
    expect(error.message).toContain(`offset ${last.offset}`);
    expect((await stat(path)).size).toBe(size);
    // The refused open released the lock and cut nothing: a skipping open reports it.
    const again = await openStore();
    expect(again.stats().recovery).toMatchObject({ truncatedBytes: 0 });
    expect(again.stats().recovery.corruptions).toHaveLength(1);
  });

  it('clean close - the damaged segment stays sealed and reported through a checkpoint load', async () => {
    const { path, size } = await cleanlyClosed();
    await damage(path, size - 20);
    await (await openStore()).close(); // reports it, appends nothing, writes a checkpoint

    const loaded = await openStore();
    expect(loaded.stats().recovery.checkpoint).toBe(true);
    expect(loaded.stats().recovery.corruptions).toHaveLength(1);
    await loaded.append('after', 50n, d('after'));
    expect(await segFiles()).toHaveLength(2);
    expect((await stat(path)).size).toBe(size);
  });

  it('clean close - a segment shorter than its clean close is corruption, not a torn tail', async () => {
    const { name, path, size, records } = await cleanlyClosed();
    const last = records[9] as { id: string; offset: number; size: number };
    await truncate(path, size - 3);

    const again = await openStore();
    expect(again.stats().recovery.corruptions).toEqual([{ file: name, offset: last.offset, bytesLost: last.size }]);
    expect(again.stats().recovery.truncatedBytes).toBe(0);
    expect((await stat(path)).size).toBe(size - 3);
  });

  it('clean close - 8 bytes overwritten in a record appended after a clean reopen, then killed: a torn tail, truncated', async () => {
    const { name, path, size: closedSize } = await cleanlyClosed();

    const reopened = await openStore();
    await reopened.append('late', 50n, d(val(50)));
    await leaveAsKilled(reopened, dir);
    const size = (await stat(path)).size;
    const late = (await recordsOf(name as string))[10] as { id: string; offset: number; size: number };
    expect(late).toMatchObject({ id: 'late', offset: closedSize });
    await damage(path, size - 20);

    const logger = recordingLogger();
    const again = await openStore({ logger, corruption: 'fail' });
    expect(again.stats().recovery).toMatchObject({ truncatedBytes: late.size, corruptions: [] });
    expect((await stat(path)).size).toBe(closedSize);
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('torn tail'))).toBe(true);
    expect(await again.get('late')).toBeUndefined();
    for (let i = 0; i < 10; i++) expect((await again.get(`k${i}`))?.data.toString()).toBe(val(i));
    // Not sealed: appends go on in the same file.
    await again.append('late', 60n, d('sixty'));
    expect(await segFiles()).toEqual([name]);
  });

  it('clean close - damage below the clean length and a torn write past it: the damage reported, the torn write cut', async () => {
    const { name, path, size: closedSize, records } = await cleanlyClosed();
    const last = records[9] as { id: string; offset: number; size: number };

    const reopened = await openStore();
    await reopened.append('late', 50n, d(val(50)));
    await leaveAsKilled(reopened, dir);
    const size = (await stat(path)).size;
    await truncate(path, size - 5); // the late record, torn
    await damage(path, closedSize - 20); // the last record the clean close vouched for

    const again = await openStore();
    expect(again.stats().recovery.corruptions).toEqual([
      { file: name, offset: last.offset, bytesLost: closedSize - last.offset },
    ]);
    expect(again.stats().recovery.truncatedBytes).toBe(size - 5 - closedSize);
    expect((await stat(path)).size).toBe(closedSize);
  });

  it('clean close - appends after a clean reopen torn by a power loss are truncated, never reported', async () => {
    const disk = new SimDisk();
    const sim = (fsync: 'always' | 'never') => Store.open({ dir: '/data', fs: disk, fsync });
    const first = await sim('always');
    for (let i = 0; i < 10; i++) await first.append(`k${i}`, BigInt(i + 1), d(val(i)));
    await first.close();
    const second = await sim('never');
    opened.push(second);
    await second.append('late', 50n, d(val(50)));
    await second.append('later', 51n, d(val(51)));
    await second.flush(); // written and fsynced...
    await second.append('torn', 52n, d(val(52))); // ...and this one only written when the power goes
    await new Promise<void>((resolve) => setImmediate(resolve));
    const crashed = disk.crash({ tearLastWrite: true, rng: () => 0.5 });
    const third = await Store.open({ dir: '/data', fs: crashed, fsync: 'always', corruption: 'fail' });
    opened.push(third);
    expect(third.stats().recovery.corruptions).toEqual([]);
    expect(third.stats().recovery.truncatedBytes).toBeGreaterThan(0);
    expect((await third.get('later'))?.data.toString()).toBe(val(51));
    expect(await third.get('torn')).toBeUndefined();
  });
});

describe('classifyTail', () => {
  const scan = (validEnd: number, tailBytes: number, header: ScanResult['header'] = 'ok'): ScanResult => ({
    records: 1,
    validEnd,
    skipped: [],
    tailBytes,
    header,
    cleanAsOf: 0,
  });
  const c = (offset: number, bytesLost: number): Corruption => ({ file: 's', offset, bytesLost });

  it('classifyTail - every case of docs/STORAGE.md S8', () => {
    const cases: [string, ReturnType<typeof classifyTail>, ReturnType<typeof classifyTail>][] = [
      ['newest, clean end', classifyTail('s', scan(100, 0), { newest: true }), { kind: 'none', tornBytes: 0 }],
      [
        'newest, no clean close',
        classifyTail('s', scan(100, 7), { newest: true }),
        { kind: 'torn', cutTo: 100, tornBytes: 7 },
      ],
      [
        'newest, tail past the clean close',
        classifyTail('s', scan(100, 7), { newest: true, closedLength: 80 }),
        { kind: 'torn', cutTo: 100, tornBytes: 7 },
      ],
      [
        'newest, tail inside the clean close',
        classifyTail('s', scan(60, 40), { newest: true, closedLength: 100 }),
        { kind: 'corrupt', corruption: c(60, 40), tornBytes: 0 },
      ],
      [
        'newest, damage inside, torn past',
        classifyTail('s', scan(60, 50), { newest: true, closedLength: 100 }),
        { kind: 'corrupt', corruption: c(60, 40), cutTo: 100, tornBytes: 10 },
      ],
      [
        'newest, shorter than its clean close at a record boundary',
        classifyTail('s', scan(60, 0), { newest: true, closedLength: 100 }),
        { kind: 'corrupt', corruption: c(60, 40), tornBytes: 0 },
      ],
      [
        'older, invalid tail',
        classifyTail('s', scan(100, 7), { newest: false }),
        { kind: 'corrupt', corruption: c(100, 7), tornBytes: 0 },
      ],
      [
        'older, sealed after a failure',
        classifyTail('s', scan(100, 7), { newest: false, validLength: 107 }),
        { kind: 'torn', tornBytes: 7 },
      ],
      [
        'older, inside its clean close despite a valid length',
        classifyTail('s', scan(60, 47), { newest: false, validLength: 107, closedLength: 107 }),
        { kind: 'corrupt', corruption: c(60, 47), tornBytes: 0 },
      ],
      [
        'newest header never written',
        classifyTail('s', scan(0, 3, 'short'), { newest: true }),
        { kind: 'torn', cutTo: 0, tornBytes: 3 },
      ],
      [
        'newest header lost after a clean close',
        classifyTail('s', scan(0, 3, 'short'), { newest: true, closedLength: 100 }),
        { kind: 'corrupt', corruption: c(0, 3), tornBytes: 0 },
      ],
      [
        'older bad header',
        classifyTail('s', scan(0, 90, 'bad-magic'), { newest: false }),
        { kind: 'corrupt', corruption: c(0, 90), tornBytes: 0 },
      ],
    ];
    for (const [label, got, want] of cases) expect(got, label).toEqual(want);
  });
});

describe('clean close - the lengths kept', () => {
  it('clean close - compaction drops the lengths of the segments it replaced; an open drops those of files gone', async () => {
    const store = await openStore({ segmentBytes: 1024, compactThreshold: 0 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) await store.append(`k${i}`, BigInt(round * 100 + i + 1), d(val(i)));
    }
    await store.close();
    const before = await closedLengths();
    expect(Object.keys(before).length).toBeGreaterThan(2);

    const again = await openStore({ segmentBytes: 1024, compactThreshold: 0 });
    await again.compact();
    await again.close();
    const after = await closedLengths();
    const files = await segFiles();
    // Only files that exist have a length; the compacted inputs are gone, and so are theirs.
    expect(Object.keys(after).sort()).toEqual([...files].sort());
    for (const name of Object.keys(before)) if (!files.includes(name)) expect(after[name]).toBeUndefined();

    // A length left in the meta file for a file that is gone is dropped by the next open and close.
    const meta = JSON.parse((await readFile(join(dir, META_FILE))).toString('utf8'));
    meta.closedLengths['99999999999999999999-99999999999999999999-000000.seg'] = 4096;
    await writeFile(join(dir, META_FILE), JSON.stringify(meta));
    await (await openStore({ segmentBytes: 1024, compactThreshold: 0 })).close();
    expect(Object.keys(await closedLengths()).sort()).toEqual([...(await segFiles())].sort());
  });
});

describe('record bytes', () => {
  it('record bytes - what get(id) reads for an id, from memory: its record; none for an unknown id', async () => {
    const store = await openStore();
    await store.append('abc', 1n, d('x'.repeat(100)));
    expect(store.recordBytes('abc')).toBe(RECORD_OVERHEAD_BYTES + 3 + 100);
    expect(store.recordBytes('nope')).toBeUndefined();
    await store.append('abc', 2n, d(''));
    expect(store.recordBytes('abc')).toBe(RECORD_OVERHEAD_BYTES + 3);
  });
});
