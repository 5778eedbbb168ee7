import { crc32 } from 'node:zlib';
import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { checksum } from '../src/crc.js';
import { RECORD, RECORD_OVERHEAD_BYTES, RECORD_PREFIX_BYTES, recordBodyLength, writeRecord } from '../src/format.js';
import { checkWindow, type ReplayPlan, ReplayWindow, warmReplay, windowMessages } from '../src/replay.js';
import { batchRows, recordRows, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * The replay's per-record work (src/replay.ts, `checkWindow`): its crcs are zlib's, and
 * it keeps exactly the records that are valid (S2, `recordBodyLength` in format.ts) and
 * still planned, in window order.
 */

describe('checksum', () => {
  it("gives zlib's CRC-32 for spans of every length, at any offset", () => {
    const rng = mulberry32(7);
    const bufs = [5000, 70_000].map((size) => Buffer.from(Array.from({ length: size }, () => (rng() * 256) | 0)));
    for (let k = 0; k < 2000; k++) {
      const b = bufs[k & 1] as Buffer;
      // Mostly short spans, as records are; some long ones; every length up to 40.
      const len = Math.min(k < 41 ? k : rng() < 0.9 ? (rng() * 300) | 0 : (rng() * b.length) | 0, b.length);
      const start = (rng() * (b.length - len + 1)) | 0;
      expect(checksum(b, start, start + len), `${len} bytes at ${start}`).toBe(crc32(b.subarray(start, start + len)));
    }
  });

  it("gives zlib's CRC-32 for a span of many MiB", () => {
    const big = Buffer.alloc(9 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = i & 0xff;
    expect(checksum(big, 12_345, big.length)).toBe(crc32(big.subarray(12_345)));
  });
});

interface Rec {
  id: string;
  ts: bigint;
  data: Buffer;
}

/**
 * A window over `recs` as the store lays one out: records in `groups` read buffers,
 * `gap` bytes (of dead records) between neighbours, item k at plan position `posOf(k)`,
 * planned with its own ts unless `planned` says otherwise.
 */
function windowOf(
  recs: Rec[],
  groups: number,
  planned: bigint[] = recs.map((r) => r.ts),
  posOf: (k: number) => number = (k) => k,
  gap = 16,
) {
  const w = new ReplayWindow(recs.length);
  const per = Math.ceil(recs.length / groups);
  for (let g = 0; g < groups; g++) {
    const mine = recs.slice(g * per, (g + 1) * per);
    let bytes = 0;
    for (const r of mine) bytes += RECORD_OVERHEAD_BYTES + Buffer.byteLength(r.id) + gap + r.data.length;
    const buf = Buffer.alloc(bytes);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    for (const [i, r] of mine.entries()) {
      const k = g * per + i;
      const end = writeRecord(buf, view, at, r.ts, r.id, Buffer.byteLength(r.id), r.data, true);
      w.pos[k] = posOf(k);
      w.seg[k] = 1;
      w.off[k] = 1000 + k;
      w.buf[k] = g;
      w.at[k] = at;
      w.size[k] = end - at;
      w.bytes += end - at;
      at = end + gap;
    }
    w.addBuffer(buf);
  }
  w.count = recs.length;
  const n = posOf(recs.length - 1) + 1;
  const plan: ReplayPlan = {
    n,
    changes: 0,
    drops: 0,
    prefix: '',
    visited: 0,
    slots: new Uint32Array(n),
    lo: new Uint32Array(n),
    hi: new Uint32Array(n),
  };
  for (const [k, ts] of planned.entries()) {
    plan.lo[posOf(k)] = Number(BigInt.asUintN(32, ts));
    plan.hi[posOf(k)] = (Number(BigInt.asUintN(32, ts >> 32n)) ^ 0x80000000) >>> 0;
  }
  return { w, plan };
}

const hex = (r: Rec) => [r.id, r.ts, r.data.toString('hex')];

describe('checkWindow', () => {
  const rng = mulberry32(11);
  const recs: Rec[] = Array.from({ length: 300 }, (_, k) => ({
    id: k % 7 === 0 ? `ид-${k}` : `id-${k}`,
    ts: BigInt(k) * 1_000_003n - 5_000_000n + (k % 3 === 0 ? -(2n ** 40n) : 0n),
    // Every 10th a tombstone: idLen is then bodyLen - 11 exactly; 13 with room for a 257-byte id.
    data: Buffer.from(
      Array.from({ length: k % 10 === 0 ? 0 : k === 13 ? 300 : (rng() * 200) | 0 }, () => (rng() * 256) | 0),
    ),
  }));
  // Plan positions: dense from 0, with gaps from past 0, and sparse (ids updated since the plan).
  const layouts: ((k: number) => number)[] = [(k) => k, (k) => 1000 + 3 * k, (k) => 5000 * k];

  it('keeps every valid record, in window order, as a record batch', () => {
    const cases = [1, 3].flatMap((groups) =>
      layouts.flatMap((posOf) => [16, 4096].map((gap) => ({ groups, posOf, gap }))),
    );
    for (const { groups, posOf, gap } of cases) {
      const { w, plan } = windowOf(recs, groups, undefined, posOf, gap);
      const bad: number[] = [];
      checkWindow(w, plan, (_w, k) => bad.push(k));
      expect(bad).toEqual([]);
      expect(w.count).toBe(recs.length);
      expect(batchRows(w)).toEqual(recs.map(hex));
      expect(windowMessages(w).map((m) => [m.id, m.ts, m.data.toString('hex')])).toEqual(recs.map(hex));
    }
  });

  it.each([
    16, 4096,
  ])('reports records that fail their checks, and leaves out those updated since the plan or gone (gaps of %i)', (gap) => {
    const planned = recs.map((r) => r.ts);
    planned[5] = (planned[5] as bigint) + 1n; // its id moved on: left out, not bad
    planned[6] = (planned[6] as bigint) + 2n ** 32n; // the same, in the high word only
    const { w, plan } = windowOf(recs, 2, planned, (k) => 7 + 2 * k, gap);
    const at = (k: number) => w.at[k] as number;
    const buf = (k: number) => w.bufs[w.buf[k] as number] as Buffer;
    /** Record k's CRC made to match its bytes again, so that only its length fields can fail it. */
    const fixCrc = (k: number) =>
      buf(k).writeUInt32BE(checksum(buf(k), at(k) + RECORD.bodyLen, at(k) + (w.size[k] as number)), at(k));
    const flip = at(3) + RECORD_PREFIX_BYTES + 12;
    buf(3).writeUInt8(buf(3).readUInt8(flip) ^ 0x40, flip); // a flipped bit in the body: CRC fails
    buf(8).writeUInt32BE(0, at(8) + RECORD.bodyLen); // bodyLen 0
    fixCrc(8);
    buf(9).writeUInt16BE(0, at(9) + RECORD.idLen); // idLen 0
    fixCrc(9);
    buf(11).writeUInt32BE((w.size[11] as number) - 7, at(11) + RECORD.bodyLen); // bodyLen one past the record
    fixCrc(11);
    w.size[12] = 12; // shorter than any record
    buf(13).writeUInt16BE(257, at(13) + RECORD.idLen); // an id longer than MAX_ID_BYTES, inside the body
    fixCrc(13);
    buf(200).writeUInt16BE(0xffff, at(200) + RECORD.idLen); // idLen past the body
    fixCrc(200);
    const idLen201 = buf(201).readUInt16BE(at(201) + RECORD.idLen);
    buf(201).writeUInt16BE(idLen201 + (recs[201] as Rec).data.length + 1, at(201) + RECORD.idLen);
    fixCrc(201); // idLen one past the body
    w.size[150] = 0; // left out (updated since its cut, or its segment gone)
    // What the format's own check finds.
    const failsAlone = [...Array(w.count).keys()].filter((k) => {
      const size = w.size[k] as number;
      const view = w.views[w.buf[k] as number] as DataView;
      return size > 0 && recordBodyLength(view, at(k), size, checksum(buf(k), at(k) + 4, at(k) + size)) < 0;
    });
    const bad: number[] = [];
    checkWindow(w, plan, (_w, k) => bad.push(k));
    expect(bad).toEqual([3, 8, 9, 11, 12, 13, 200, 201]);
    expect(failsAlone).toEqual(bad);
    const kept = recs.filter((_, k) => ![3, 5, 6, 8, 9, 11, 12, 13, 150, 200, 201].includes(k));
    expect(w.count).toBe(kept.length);
    expect(batchRows(w)).toEqual(kept.map(hex));
  });

  it('leaves an empty window empty', () => {
    const w = new ReplayWindow(4);
    checkWindow(
      w,
      {
        n: 0,
        changes: 0,
        drops: 0,
        prefix: '',
        visited: 0,
        slots: new Uint32Array(0),
        lo: new Uint32Array(0),
        hi: new Uint32Array(0),
      },
      () => {
        throw new Error('no record to report');
      },
    );
    expect(w.count).toBe(0);
    expect(w.bytes).toBe(0);
  });

  it('warmReplay - checks its made-up window without a complaint and keeps every record of it', () => {
    const bad: number[] = [];
    expect(warmReplay((_w, k) => bad.push(k))).toBe(16);
    expect(bad).toEqual([]);
  });
});

describe('replayRecords of large records', () => {
  const { openStore } = tempStores('gossip-store-replay-check-');

  it('replayRecords - a window of 27 MiB of records: the same messages as replay', async () => {
    const store = await openStore();
    for (let i = 0; i < 3; i++) await store.append(`big-${i}`, BigInt(i + 1), Buffer.alloc(9 * 1024 * 1024, i + 1));
    const want = await rows(store);
    // One window of batchBytes holds all three.
    expect(await recordRows(store, null, 64 * 1024 * 1024)).toEqual(want);
    expect(want.map(([id]) => id)).toEqual(['big-0', 'big-1', 'big-2']);
  });
});
