import { decodeFrame, type Frame, FrameEncoder, FrameKind } from '@gossip/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as arb from './arbitraries.js';
import { bytewise, comparable, decodeChunks, encodeFrame, splitAt } from './support.js';

function encodeAll(frames: readonly Frame[], slabBytes?: number): Buffer {
  const e = new FrameEncoder(slabBytes === undefined ? {} : { slabBytes });
  for (const f of frames) encodeFrame(e, f);
  return e.take();
}

function bigPublish(data: Buffer): Frame {
  return { kind: FrameKind.Publish, reqId: 1, ts: 1n, id: 'big', data };
}

describe('round-trip', () => {
  it.each(Object.entries(arb.BY_KIND))('round-trip - any %s frame decodes to what was encoded', (_kind, frameArb) => {
    fc.assert(
      fc.property(frameArb, (f: Frame) => {
        const bytes = encodeAll([f]);
        const decoded = decodeFrame(bytes);
        expect(comparable(decoded)).toEqual(comparable(f));
        // And back: the decoded frame encodes to the very same bytes.
        expect(encodeAll([decoded]).equals(bytes)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('stream', () => {
  const frames = fc.array(arb.frame, { minLength: 1, maxLength: 30 });

  it('stream - many frames split at arbitrary points decode to the same frames in order', () => {
    fc.assert(
      fc.property(
        frames.chain((fs) => {
          const bytes = encodeAll(fs);
          // Repeated cuts make empty chunks; cuts at 0 and at the end make empty first and last chunks.
          return fc.tuple(
            fc.constant(fs),
            fc.constant(bytes),
            fc.array(fc.nat({ max: bytes.length }), { maxLength: 40 }),
          );
        }),
        ([fs, bytes, cuts]) => {
          expect(decodeChunks(splitAt(bytes, cuts)).map(comparable)).toEqual(fs.map(comparable));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('stream - one-byte chunks with empty chunks between them decode to the same frames', () => {
    fc.assert(
      fc.property(frames, fc.infiniteStream(fc.boolean()), (fs, empties) => {
        const chunks: Buffer[] = [];
        for (const b of bytewise(encodeAll(fs))) {
          if (empties.next().value) chunks.push(Buffer.alloc(0));
          chunks.push(b);
        }
        expect(decodeChunks(chunks).map(comparable)).toEqual(fs.map(comparable));
      }),
      { numRuns: 50 },
    );
  });

  it('stream - chunk sizes drawn from a list, cycled, decode to the same frames', () => {
    fc.assert(
      fc.property(frames, fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 10 }), (fs, sizes) => {
        fc.pre(sizes.some((n) => n > 0));
        const bytes = encodeAll(fs);
        const chunks: Buffer[] = [];
        for (let off = 0, i = 0; off < bytes.length; i++) {
          const n = sizes[i % sizes.length] as number;
          chunks.push(bytes.subarray(off, off + n));
          off += n;
        }
        expect(decodeChunks(chunks).map(comparable)).toEqual(fs.map(comparable));
      }),
      { numRuns: 200 },
    );
  });

  it('stream - frames assembled across chunks keep their bytes when the chunks are reused', () => {
    fc.assert(
      fc.property(frames, (fs) => {
        // Copies, so each chunk is its own buffer that a network layer could recycle.
        const chunks = bytewise(encodeAll(fs)).map((c) => Buffer.from(c));
        const decoded = decodeChunks(chunks);
        for (const c of chunks) c.fill(0xee);
        expect(decoded.map(comparable)).toEqual(fs.map(comparable));
      }),
      { numRuns: 50 },
    );
  });
});

describe('encoder', () => {
  it('encoder - take() after several frames returns bytes that decode to all of them', () => {
    fc.assert(
      fc.property(
        fc.array(arb.frame, { minLength: 1, maxLength: 20 }),
        fc.constantFrom(16, 256, 64 * 1024),
        (fs, slabBytes) => {
          const e = new FrameEncoder({ slabBytes });
          for (const f of fs) encodeFrame(e, f);
          expect(e.pendingBytes).toBeGreaterThan(0);
          const bytes = e.take();
          expect(e.pendingBytes).toBe(0);
          expect(e.take().length).toBe(0);
          expect(decodeChunks([bytes]).map(comparable)).toEqual(fs.map(comparable));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('encoder - successive take() calls return consecutive batches', () => {
    fc.assert(
      fc.property(fc.array(fc.array(arb.frame, { maxLength: 6 }), { minLength: 1, maxLength: 6 }), (batches) => {
        const e = new FrameEncoder({ slabBytes: 128 });
        const taken: Buffer[] = [];
        for (const batch of batches) {
          for (const f of batch) encodeFrame(e, f);
          taken.push(e.take());
        }
        taken.forEach((bytes, i) => {
          expect(decodeChunks([bytes]).map(comparable)).toEqual((batches[i] as Frame[]).map(comparable));
        });
      }),
      { numRuns: 100 },
    );
  });

  it('encoder - a view returned by take() is never overwritten by later encoding, across slab growth', () => {
    const big = fc.integer({ min: 64 * 1024, max: 300 * 1024 }).map((n) => Buffer.alloc(n, 0xab));
    const step = fc.record({
      frame: fc.oneof({ weight: 4, arbitrary: arb.frame }, { weight: 1, arbitrary: big.map(bigPublish) }),
      take: fc.boolean(),
      discard: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(arb.frame, { minLength: 1, maxLength: 10 }),
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(16, 1024, 64 * 1024),
        (first, steps, slabBytes) => {
          const e = new FrameEncoder({ slabBytes });
          for (const f of first) encodeFrame(e, f);
          const view = e.take();
          const views: [Buffer, Buffer][] = [[view, Buffer.from(view)]];
          for (const s of steps) {
            encodeFrame(e, s.frame);
            // Later batches are taken too, and some unsent frames dropped: neither may touch a taken view.
            if (s.discard) e.discard();
            else if (s.take) {
              const v = e.take();
              views.push([v, Buffer.from(v)]);
            }
          }
          encodeFrame(e, bigPublish(Buffer.alloc(200 * 1024, 0xcd)));
          for (const [v, copy] of views) expect(v.equals(copy)).toBe(true);
          expect(decodeChunks([view]).map(comparable)).toEqual(first.map(comparable));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('encoder - a taken view survives a frame larger than the whole slab', () => {
    const e = new FrameEncoder({ slabBytes: 64 });
    e.ping(1).pong(2, -3n);
    const view = e.take();
    const copy = Buffer.from(view);
    e.message(0, 'x', 1n, Buffer.alloc(1024 * 1024, 0x5a));
    e.ping(3);
    const next = e.take();
    e.ping(4);
    expect(view.equals(copy)).toBe(true);
    expect(decodeChunks([next]).length).toBe(2);
    expect(decodeChunks([view]).map((f) => f.kind)).toEqual([FrameKind.Ping, FrameKind.Pong]);
  });
});
