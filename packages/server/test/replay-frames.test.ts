import { type Frame, FrameDecoder, FrameEncoder, FrameKind, MessageFlags } from '@gossip/protocol';
import type { RecordBatch, Store } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { type ReplayFrames, replayFrames } from '../src/replay-frames.js';
import { tempStores } from './contexts.js';

/*
 * The replay's framing (src/replay-frames.ts): the store's records (docs/STORAGE.md,
 * S10) become message frames flagged Replayed (docs/PROTOCOL.md, M1, M2), byte for byte
 * what the protocol's encoder makes, packed where the records lie or copied.
 */

const openTempStore = tempStores('gossip-replay-frames-');

function openStore(): Promise<Store> {
  return openTempStore({ segmentBytes: 4096, compactThreshold: 0 });
}

type Row = [string, bigint, string];

function decode(frames: ReplayFrames): Frame[] {
  const out: Frame[] = [];
  const decoder = new FrameDecoder((f) => out.push(f));
  for (const c of frames.chunks) decoder.push(c);
  decoder.end();
  return out;
}

function messageRows(frames: Frame[]): Row[] {
  return frames.map((f) => {
    if (f.kind !== FrameKind.Message) throw new Error(`frame kind ${f.kind} in a replay`);
    expect(f.flags).toBe(MessageFlags.Replayed);
    return [f.id, f.ts, Buffer.from(f.data).toString('hex')];
  });
}

async function replayRows(store: Store, since: bigint | null): Promise<Row[]> {
  const out: Row[] = [];
  for await (const m of store.replay(since)) out.push([m.id, m.ts, m.data.toString('hex')]);
  return out;
}

/**
 * A batch's records copied into buffers of their own, in their batch order, `per` to a
 * buffer with `gap` bytes around each; the new batch lists them in `order`.
 */
function rearranged(batch: RecordBatch, order: number[], per: number, gap: number): RecordBatch {
  const n = batch.count;
  const bufs: Buffer[] = [];
  const placedIn = new Uint32Array(n);
  const placedAt = new Uint32Array(n);
  for (let g = 0; g * per < n; g++) {
    const mine = [...Array(n).keys()].slice(g * per, (g + 1) * per);
    const b = Buffer.alloc(mine.reduce((bytes, k) => bytes + (batch.size[k] as number) + gap, gap));
    let p = gap;
    for (const k of mine) {
      const z = batch.size[k] as number;
      (batch.bufs[batch.buf[k] as number] as Buffer).copy(b, p, batch.at[k] as number, (batch.at[k] as number) + z);
      placedIn[k] = bufs.length;
      placedAt[k] = p;
      p += z + gap;
    }
    bufs.push(b);
  }
  const buf = Uint32Array.from(order, (k) => placedIn[k] as number);
  const at = Uint32Array.from(order, (k) => placedAt[k] as number);
  const size = Uint32Array.from(order, (k) => batch.size[k] as number);
  return { count: order.length, bytes: size.reduce((a, b) => a + b, 0), bufs, buf, at, size };
}

describe('replayFrames', () => {
  it('replayFrames - the same messages as replay, flagged Replayed, with each batch its count of frames', async () => {
    const store = await openStore();
    for (let i = 0; i < 80; i++) await store.append(`in-${i}`, BigInt(1000 + i), Buffer.alloc(i * 5, i));
    // Against ts order, across segments, with updates, tombstones and a UTF-8 id.
    for (let i = 0; i < 60; i++) await store.append(`out-${i % 40}`, BigInt(500 - i), Buffer.alloc(i % 9 ? i : 0, 7));
    await store.append('ключ', 2000n, Buffer.from('é'));
    for (const since of [null, 470n, 1030n, 2001n]) {
      for (const batchBytes of [1, 700, 1 << 20]) {
        const got: Row[] = [];
        for await (const batch of store.replayRecords(since, { batchBytes })) {
          const frames = replayFrames(batch);
          const decoded = decode(frames);
          expect(decoded).toHaveLength(frames.count);
          expect(frames.count).toBe(batch.count);
          got.push(...messageRows(decoded));
        }
        expect(got, `since ${since}, batches of ${batchBytes}`).toEqual(await replayRows(store, since));
      }
    }
  });

  it('replayFrames - each frame is byte for byte what FrameEncoder makes of the message', async () => {
    const store = await openStore();
    const messages: [string, bigint, Buffer][] = [
      ['a', 1n, Buffer.from('on')],
      ['flags/checkout', 1_700_000_000_000_000_000n, Buffer.alloc(0)],
      ['é/ключ', -5n, Buffer.alloc(300, 0xab)],
      ['x'.repeat(256), 2n ** 63n - 1n, Buffer.from([0])],
    ];
    for (const [id, ts, data] of messages) await store.append(id, ts, data);
    const enc = new FrameEncoder();
    for (const [id, ts, data] of [...messages].sort((x, y) => (x[1] < y[1] ? -1 : 1))) {
      enc.message(MessageFlags.Replayed, id, ts, data);
    }
    const want = Buffer.from(enc.take());
    const got: Buffer[] = [];
    for await (const batch of store.replayRecords(null)) got.push(...replayFrames(batch).chunks);
    expect(Buffer.concat(got).toString('hex')).toBe(want.toString('hex'));
  });

  it('replayFrames - packs in place when the records lie in order, copies otherwise, to the same bytes', async () => {
    const store = await openStore();
    for (let i = 0; i < 50; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.alloc((i * 37) % 200, i));
    let batch: RecordBatch | undefined;
    for await (const b of store.replayRecords(null)) batch = rearranged(b, [...Array(b.count).keys()], b.count, 0);
    const all = batch as RecordBatch;
    expect(all.count).toBe(50);
    const n = all.count;
    const want = Buffer.concat(replayFrames(rearranged(all, [...Array(n).keys()], n, 0)).chunks);
    expect(decode({ chunks: [want], count: n })).toHaveLength(n);
    const inOrder = [...Array(n).keys()];
    const cases: [string, number[], number, number, boolean][] = [
      ['one buffer', inOrder, n, 0, true],
      ['buffers of 7, with gaps', inOrder, 7, 33, true],
      ['out of order', [...inOrder].reverse(), 7, 5, false],
      ['records behind each other in one buffer', [1, 0, ...inOrder.slice(2)], n, 0, false],
    ];
    for (const [what, order, per, gap, inPlace] of cases) {
      const b = rearranged(all, order, per, gap);
      const frames = replayFrames(b);
      expect(frames.count, what).toBe(n);
      const placed = frames.chunks.every((c) =>
        b.bufs.some((r) => r.buffer === c.buffer && r.byteOffset === c.byteOffset),
      );
      expect(placed, what).toBe(inPlace);
      const expected = order.map((k) => messageRows(decode({ chunks: [want], count: n }))[k]);
      expect(messageRows(decode(frames)), what).toEqual(expected);
    }
  });

  it('replayFrames - an empty batch is no frames', () => {
    const empty = {
      count: 0,
      bytes: 0,
      bufs: [],
      buf: new Uint32Array(0),
      at: new Uint32Array(0),
      size: new Uint32Array(0),
    };
    expect(replayFrames(empty)).toEqual({ chunks: [], count: 0 });
  });
});
