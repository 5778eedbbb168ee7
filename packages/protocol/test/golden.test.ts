import { decodeFrame, FrameEncoder, FrameKind, parseFrame } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import { GOLDEN, goldenBytes } from './golden.js';
import { bytewise, comparable, decodeChunks, encodeFrame } from './support.js';

describe('golden', () => {
  it('golden - the table covers every frame kind', () => {
    const covered = new Set(GOLDEN.map((g) => g.frame.kind));
    for (const kind of Object.values(FrameKind)) expect(covered, `kind 0x${kind.toString(16)}`).toContain(kind);
  });

  it('golden - each entry is one whole frame whose length prefix counts kind and body', () => {
    for (const g of GOLDEN) {
      const bytes = goldenBytes(g.hex);
      expect(bytes.readUInt32BE(0), g.name).toBe(bytes.length - 4);
      expect(bytes[4], g.name).toBe(g.frame.kind);
    }
  });
});

describe('golden encode', () => {
  it.each(GOLDEN)('golden encode - $name', (g) => {
    const e = new FrameEncoder();
    g.encode(e);
    expect(e.take().toString('hex')).toBe(goldenBytes(g.hex).toString('hex'));
    expect(e.pendingBytes).toBe(0);
  });

  it('golden encode - every frame of the table into one encoder gives their bytes back to back', () => {
    const e = new FrameEncoder({ slabBytes: 32 });
    for (const g of GOLDEN) g.encode(e);
    expect(e.take().toString('hex')).toBe(Buffer.concat(GOLDEN.map((g) => goldenBytes(g.hex))).toString('hex'));
  });
});

describe('golden decode', () => {
  it.each(GOLDEN)('golden decode - $name', (g) => {
    expect(comparable(decodeFrame(goldenBytes(g.hex)))).toEqual(comparable(g.frame));
  });

  it.each(GOLDEN)('golden decode - $name, through parseFrame on the bytes after the length', (g) => {
    const bytes = goldenBytes(g.hex);
    expect(comparable(parseFrame(bytes, 4, bytes.length))).toEqual(comparable(g.frame));
  });

  it('golden decode - the whole table as one stream, in one chunk and byte by byte', () => {
    const stream = Buffer.concat(GOLDEN.map((g) => goldenBytes(g.hex)));
    const want = GOLDEN.map((g) => comparable(g.frame));
    expect(decodeChunks([stream]).map(comparable)).toEqual(want);
    expect(decodeChunks(bytewise(stream)).map(comparable)).toEqual(want);
  });

  it('golden decode - byte fields are Buffers', () => {
    for (const g of GOLDEN) {
      const f = decodeFrame(goldenBytes(g.hex));
      if ('data' in f) expect(Buffer.isBuffer(f.data), g.name).toBe(true);
      if (f.kind === FrameKind.FetchResult) {
        for (const entry of f.entries) if (entry.found) expect(Buffer.isBuffer(entry.data), g.name).toBe(true);
      }
    }
  });
});

describe('golden round-trip', () => {
  it.each(GOLDEN)('golden round-trip - $name: decode then encode gives the same bytes', (g) => {
    const bytes = goldenBytes(g.hex);
    const e = new FrameEncoder();
    encodeFrame(e, decodeFrame(bytes));
    expect(e.take().toString('hex')).toBe(bytes.toString('hex'));
  });

  it.each(GOLDEN)('golden round-trip - $name: encode then decode gives the same frame', (g) => {
    const e = new FrameEncoder();
    g.encode(e);
    expect(comparable(decodeFrame(e.take()))).toEqual(comparable(g.frame));
  });
});
