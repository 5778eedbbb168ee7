import { crc32 } from 'node:zlib';
import { type Frame, FrameDecoder, FrameKind, MessageFlags } from '@gossip/protocol';
import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { checksum } from '../src/crc.js';
import { RECORD_FIXED_BODY_BYTES, RECORD_PREFIX_BYTES, recordBodyLength, writeRecord } from '../src/format.js';
import { frameWindow, KERNEL_WASM, type ReadRecords, spanChecksums } from '../src/kernel.js';
import { assembleKernel } from '../src/kernel-asm.js';
import { type ReplayPlan, ReplayWindow } from '../src/replay.js';
import { framedRows, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * The replay's WebAssembly (src/kernel.ts): the module shipped is the one the assembler
 * makes, its CRCs are zlib's, and its framing keeps exactly the records the JS checks
 * (recordBodyLength in format.ts) keep, as the frames the protocol decoder reads.
 */

describe('the module', () => {
  it('is what assembleKernel makes', () => {
    const assembled = Buffer.from(assembleKernel()).toString('base64');
    // On a change to kernel-asm.ts, paste `assembled` into KERNEL_WASM.
    expect(KERNEL_WASM).toBe(assembled);
  });
});

/** Spans as `ReadRecords`: item k is `length[k]` bytes at `from[k]` of `bufs[bufOf[k]]`. */
function spans(
  bufs: Buffer[],
  bufOf: ArrayLike<number>,
  from: ArrayLike<number>,
  length: ArrayLike<number>,
): ReadRecords {
  const size = Uint32Array.from(length);
  return {
    bufs,
    count: size.length,
    buf: Uint32Array.from(bufOf),
    at: Uint32Array.from(from),
    size,
    bytes: size.reduce((a, b) => a + b, 0),
  };
}

describe('spanChecksums', () => {
  // Many spans fill their buffers: copied in whole; a few do not: copied one by one.
  it.each([
    2000, 20,
  ])("gives zlib's CRC-32 for spans of every length, at any offset, across buffers (%i spans)", (n) => {
    const rng = mulberry32(7);
    const bufs = [0, 1, 5000, 70_000].map((size) => Buffer.from(Array.from({ length: size }, () => (rng() * 256) | 0)));
    const bufOf = new Uint32Array(n);
    const from = new Uint32Array(n);
    const length = new Uint32Array(n);
    for (let k = 0; k < n; k++) {
      const b = 1 + ((rng() * 3) | 0);
      const size = (bufs[b] as Buffer).length;
      // Mostly short spans, as records are; some long ones; every length up to 40.
      const len = k < 41 ? k : rng() < 0.9 ? (rng() * 300) | 0 : (rng() * size) | 0;
      bufOf[k] = b;
      length[k] = Math.min(len, size);
      from[k] = (rng() * (size - (length[k] as number) + 1)) | 0;
    }
    const skip = 4;
    const got = spanChecksums(spans(bufs, bufOf, from, length), skip);
    for (let k = 0; k < n; k++) {
      const b = bufs[bufOf[k] as number] as Buffer;
      const start = from[k] as number;
      const len = length[k] as number;
      const want = len < skip ? 0 : crc32(b.subarray(start + skip, start + len));
      expect(got[k], `span ${k}: ${len} bytes at ${start}`).toBe(want);
      if (len >= skip) expect(checksum(b, start + skip, start + len)).toBe(want);
    }
  });

  it('computes a window past the size the module takes (16 MiB) in JS, to the same values', () => {
    const big = Buffer.alloc(17 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4093) big[i] = i & 0xff;
    const from = [0, 12_345, big.length - 9_000_000];
    const length = [600, 9_000_000, 9_000_000];
    const got = spanChecksums(spans([big], [0, 0, 0], from, length), 4);
    for (let k = 0; k < 3; k++) {
      const start = (from[k] as number) + 4;
      expect(got[k]).toBe(crc32(big.subarray(start, (from[k] as number) + (length[k] as number))));
    }
  });

  it('grows its memory for a window larger than it has seen', () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 0xa5);
    const got = spanChecksums(spans([big], [0], [0], [big.length]), 0);
    expect(got[0]).toBe(crc32(big));
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
    for (const r of mine) bytes += RECORD_PREFIX_BYTES + RECORD_FIXED_BODY_BYTES + Buffer.byteLength(r.id) + gap;
    for (const r of mine) bytes += r.data.length;
    const buf = Buffer.alloc(bytes);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    for (const [i, r] of mine.entries()) {
      const k = g * per + i;
      const end = writeRecord(buf, view, at, r.ts, r.id, Buffer.byteLength(r.id), r.data, true);
      w.pos[k] = posOf(k);
      w.buf[k] = g;
      w.at[k] = at;
      w.size[k] = end - at;
      w.bytes += end - at;
      at = end + gap;
    }
    w.bufs.push(buf);
    w.views.push(view);
  }
  w.count = recs.length;
  const n = posOf(recs.length - 1) + 1;
  const plan: ReplayPlan = { n, changes: 0, slots: new Uint32Array(n), lo: new Uint32Array(n), hi: new Uint32Array(n) };
  for (const [k, ts] of planned.entries()) {
    plan.lo[posOf(k)] = Number(BigInt.asUintN(32, ts));
    plan.hi[posOf(k)] = (Number(BigInt.asUintN(32, ts >> 32n)) ^ 0x80000000) >>> 0;
  }
  return { w, plan };
}

function decode(frames: Buffer): Frame[] {
  const out: Frame[] = [];
  new FrameDecoder((f) => out.push(f)).push(frames);
  return out;
}

describe('frameWindow', () => {
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

  it('frames every record, in window order, as message frames flagged Replayed', () => {
    // Buffers copied in whole (small gaps), and records copied one by one (large gaps).
    const cases = [1, 3].flatMap((groups) =>
      layouts.flatMap((posOf) => [16, 4096].map((gap) => ({ groups, posOf, gap }))),
    );
    for (const { groups, posOf, gap } of cases) {
      const { w, plan } = windowOf(recs, groups, undefined, posOf, gap);
      const got = frameWindow(w, plan);
      expect(got).toBeDefined();
      expect(got?.count).toBe(recs.length);
      expect([...(got?.bad ?? [])]).toEqual([]);
      const frames = decode(got?.frames as Buffer);
      expect(frames).toHaveLength(recs.length);
      for (const [k, f] of frames.entries()) {
        const r = recs[k] as Rec;
        expect(f.kind).toBe(FrameKind.Message);
        if (f.kind !== FrameKind.Message) continue;
        expect({ id: f.id, ts: f.ts, data: Buffer.from(f.data), flags: f.flags }).toEqual({
          id: r.id,
          ts: r.ts,
          data: r.data,
          flags: MessageFlags.Replayed,
        });
      }
    }
  });

  it.each([
    16, 4096,
  ])('reports records that fail their checks, and skips those updated since the plan or gone (gaps of %i)', (gap) => {
    const planned = recs.map((r) => r.ts);
    planned[5] = (planned[5] as bigint) + 1n; // its id moved on: skipped, not bad
    planned[6] = (planned[6] as bigint) + 2n ** 32n; // the same, in the high word only
    const { w, plan } = windowOf(recs, 2, planned, (k) => 7 + 2 * k, gap);
    const at = (k: number) => w.at[k] as number;
    const buf = (k: number) => w.bufs[w.buf[k] as number] as Buffer;
    /** Record k's CRC made to match its bytes again, so that only its length fields can fail it. */
    const fixCrc = (k: number) =>
      buf(k).writeUInt32BE(checksum(buf(k), at(k) + 4, at(k) + (w.size[k] as number)), at(k));
    const flip = at(3) + RECORD_PREFIX_BYTES + 12;
    buf(3).writeUInt8(buf(3).readUInt8(flip) ^ 0x40, flip); // a flipped bit in the body: CRC fails
    buf(8).writeUInt32BE(0, at(8) + 4); // bodyLen 0
    fixCrc(8);
    buf(9).writeUInt16BE(0, at(9) + 17); // idLen 0
    fixCrc(9);
    buf(11).writeUInt32BE((w.size[11] as number) - 7, at(11) + 4); // bodyLen one past the record
    fixCrc(11);
    w.size[12] = 12; // shorter than any record
    buf(13).writeUInt16BE(257, at(13) + 17); // an id longer than MAX_ID_BYTES, inside the body
    fixCrc(13);
    buf(200).writeUInt16BE(0xffff, at(200) + 17); // idLen past the body
    fixCrc(200);
    buf(201).writeUInt16BE(buf(201).readUInt16BE(at(201) + 17) + (recs[201] as Rec).data.length + 1, at(201) + 17);
    fixCrc(201); // idLen one past the body
    w.size[150] = 0; // left out (updated since its cut, or its segment gone)
    // What the JS check the store falls back to finds (before the frames overwrite the first buffer).
    const failsInJs = [...Array(w.count).keys()].filter((k) => {
      const size = w.size[k] as number;
      return (
        size > 0 &&
        recordBodyLength(
          w.views[w.buf[k] as number] as DataView,
          at(k),
          size,
          checksum(buf(k), at(k) + 4, at(k) + size),
        ) < 0
      );
    });
    const got = frameWindow(w, plan);
    expect([...(got?.bad ?? [])]).toEqual([3, 8, 9, 11, 12, 13, 200, 201]);
    expect(failsInJs).toEqual([...(got?.bad ?? [])]);
    const kept = recs.filter((_, k) => ![3, 5, 6, 8, 9, 11, 12, 13, 150, 200, 201].includes(k));
    expect(got?.count).toBe(kept.length);
    const frames = decode(got?.frames as Buffer);
    expect(frames.map((f) => (f.kind === FrameKind.Message ? f.id : ''))).toEqual(kept.map((r) => r.id));
  });

  it('leaves an empty window empty', () => {
    const w = new ReplayWindow(4);
    const got = frameWindow(w, {
      n: 0,
      changes: 0,
      slots: new Uint32Array(0),
      lo: new Uint32Array(0),
      hi: new Uint32Array(0),
    });
    expect(got?.count).toBe(0);
    expect(got?.frames.length).toBe(0);
  });
});

describe('replayFrames past the module', () => {
  const { openStore } = tempStores('gossip-store-kernel-');

  it('replayFrames - a window whose copy would pass 16 MiB is framed in JS, to the same messages', async () => {
    const store = await openStore();
    for (let i = 0; i < 3; i++) await store.append(`big-${i}`, BigInt(i + 1), Buffer.alloc(9 * 1024 * 1024, i + 1));
    const want = await rows(store);
    // One window of batchBytes holds all three: 27 MiB of records.
    expect(await framedRows(store, null, 64 * 1024 * 1024)).toEqual(want);
    expect(want.map(([id]) => id)).toEqual(['big-0', 'big-1', 'big-2']);
  });
});
