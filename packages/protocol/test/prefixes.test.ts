import {
  checkPrefix,
  decodeFrame,
  FrameEncoder,
  FrameKind,
  MAX_EXTENSION_BYTES,
  MAX_PREFIX_BYTES,
  MAX_PREFIX_FIELD_BYTES,
  MAX_TS,
  MIN_TS,
} from '@gossip/protocol';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { gossipErrorOf } from './support.js';

/*
 * Rules B1–B6 at the codec: what the decoder refuses in the prefix frames and in a
 * hello's `prefixes`, and what the encoder refuses to write. The golden table holds the
 * layouts; these are the edges.
 */

const packr = new Packr({ useRecords: false, variableMapSize: true });

/** A frame of `kind` around `body`, its length counting the kind byte. */
function frame(kind: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = kind;
  return Buffer.concat([head, body]);
}

/** A prefix field: u16 length, then the bytes. */
function field(bytes: Buffer, declared = bytes.length): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(declared, 0);
  return Buffer.concat([len, bytes]);
}

/** A hello whose extension is the msgpack of `ext` (no since, no epoch). */
function helloWith(ext: unknown): Buffer {
  return helloWithBytes(packr.pack(ext));
}

/** A hello (magic, version 1, no since, no epoch) whose extension is `ext`. */
function helloWithBytes(ext: Buffer): Buffer {
  const fixed = Buffer.alloc(30);
  fixed.set([0x89, 0x47, 0x53, 0x50, 0x01], 0);
  return frame(FrameKind.Hello, Buffer.concat([fixed, ext]));
}

const subscribeFixed = (): Buffer => Buffer.alloc(4 + 1 + 8 + 16);

describe('prefix frames', () => {
  it('prefix frames - a prefix field that stops short of the frame end, or runs past it, is malformed', () => {
    const cases = [
      frame(FrameKind.Subscribe, Buffer.concat([subscribeFixed(), field(Buffer.from('ab'), 1)])),
      frame(FrameKind.Subscribe, Buffer.concat([subscribeFixed(), field(Buffer.from('ab'), 3)])),
      frame(FrameKind.Unsubscribe, Buffer.concat([Buffer.alloc(4), field(Buffer.from('ab'), 1)])),
      frame(FrameKind.PrefixDone, Buffer.concat([Buffer.alloc(17), field(Buffer.from('ab'), 5)])),
      frame(FrameKind.PrefixResync, Buffer.concat([Buffer.of(1, 0), Buffer.alloc(8), field(Buffer.from(''), 1)])),
    ];
    for (const f of cases) expect(gossipErrorOf(() => decodeFrame(f)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('prefix frames - bodies shorter than their fixed fields are malformed', () => {
    for (const [kind, fixed] of [
      [FrameKind.Subscribe, 31],
      [FrameKind.Unsubscribe, 6],
      [FrameKind.PrefixDone, 19],
      [FrameKind.PrefixResync, 12],
    ] as const) {
      const f = frame(kind, Buffer.alloc(fixed - 1));
      expect(gossipErrorOf(() => decodeFrame(f)).code, `kind ${kind}`).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    }
  });

  it('prefix frames - a prefix that is not UTF-8 is GOSSIP_ERR_ID_NOT_UTF8', () => {
    const bad = Buffer.from([0x66, 0xc3]); // "f" and half of a 2-byte sequence
    const cases = [
      frame(FrameKind.Subscribe, Buffer.concat([subscribeFixed(), field(bad)])),
      frame(FrameKind.Unsubscribe, Buffer.concat([Buffer.alloc(4), field(bad)])),
      frame(FrameKind.PrefixDone, Buffer.concat([Buffer.alloc(17), field(Buffer.from([0xed, 0xa0, 0x80]))])),
    ];
    for (const f of cases) expect(gossipErrorOf(() => decodeFrame(f)).code).toBe('GOSSIP_ERR_ID_NOT_UTF8');
  });

  it('prefix frames - a prefix-resync reason this version does not know is handed on (an open value); a prefix-done count beyond 2^53 is malformed', () => {
    const resync = frame(
      FrameKind.PrefixResync,
      Buffer.concat([Buffer.of(4, 0), Buffer.alloc(8), field(Buffer.alloc(0))]),
    );
    expect(decodeFrame(resync)).toEqual({ kind: FrameKind.PrefixResync, prefix: '', reason: 4, horizon: null });
    const done = Buffer.concat([Buffer.alloc(17), field(Buffer.from('x'))]);
    done.writeBigUInt64BE(2n ** 53n, 1);
    expect(gossipErrorOf(() => decodeFrame(frame(FrameKind.PrefixDone, done))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('prefix frames - the longest prefix the wire holds round-trips; one byte more cannot be encoded', () => {
    const longest = 'p'.repeat(MAX_PREFIX_FIELD_BYTES);
    const e = new FrameEncoder();
    const f = decodeFrame(e.subscribe(1, longest, null, null).take());
    expect(f).toMatchObject({ kind: FrameKind.Subscribe, prefix: longest });
    expect(gossipErrorOf(() => e.unsubscribe(1, `${longest}p`)).code).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
    expect(e.pendingBytes).toBe(0);
  });

  it('prefix frames - every prefix frame takes 65,535 bytes of UTF-8 and refuses one more, counting bytes, not characters', () => {
    const longest = `${'é'.repeat((MAX_PREFIX_FIELD_BYTES - 1) / 2)}p`; // 65,535 bytes in 32,768 code units
    const writers = [
      (e: FrameEncoder, prefix: string) => e.subscribe(1, prefix, 5n, null),
      (e: FrameEncoder, prefix: string) => e.unsubscribe(1, prefix),
      (e: FrameEncoder, prefix: string) => e.prefixDone(prefix, 1, 5n, false),
      (e: FrameEncoder, prefix: string) => e.prefixResync(prefix, 1, null),
    ];
    for (const write of writers) {
      const e = new FrameEncoder();
      expect(decodeFrame(write(e, longest).take())).toMatchObject({ prefix: longest });
      expect(gossipErrorOf(() => write(e, `${longest}p`)).code).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
      expect(e.pendingBytes).toBe(0);
    }
  });

  it('prefix frames - the encoder refuses a lone surrogate, a ts outside i64 and a bad reqId, writing nothing', () => {
    const e = new FrameEncoder();
    expect(gossipErrorOf(() => e.subscribe(1, 'a\uD800', null, null)).code).toBe('GOSSIP_ERR_ID_NOT_UTF8');
    expect(gossipErrorOf(() => e.subscribe(1, 'a', MAX_TS + 1n, null)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    expect(gossipErrorOf(() => e.subscribe(2 ** 32, 'a', null, null)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    expect(gossipErrorOf(() => e.subscribe(1, 'a', null, 'not-an-epoch')).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    expect(e.pendingBytes).toBe(0);
  });
});

describe('hello prefixes', () => {
  it('hello prefixes - absent means the one prefix "", an empty array means none', () => {
    expect(decodeFrame(new FrameEncoder().hello().take())).toMatchObject({ prefixes: undefined });
    expect(decodeFrame(helloWith({ prefixes: [] }))).toMatchObject({ prefixes: [] });
  });

  it('hello prefixes - since may be any msgpack integer width, or nil', () => {
    const f = decodeFrame(
      helloWith({
        prefixes: [
          ['a', 5],
          ['b', -3],
          ['c', 70_000],
          ['d', MIN_TS],
          ['e', MAX_TS],
          ['f', null],
        ],
      }),
    );
    expect(f).toMatchObject({
      prefixes: [
        { prefix: 'a', since: 5n },
        { prefix: 'b', since: -3n },
        { prefix: 'c', since: 70_000n },
        { prefix: 'd', since: MIN_TS },
        { prefix: 'e', since: MAX_TS },
        { prefix: 'f', since: null },
      ],
    });
  });

  it.each([
    ['not an array', { prefixes: 'flags/' }],
    ['a map', { prefixes: { a: 1 } }],
    ['an entry that is a string', { prefixes: ['flags/'] }],
    ['an entry of one element', { prefixes: [['flags/']] }],
    ['an entry of three elements', { prefixes: [['flags/', null, 1]] }],
    ['a prefix that is a number', { prefixes: [[7, null]] }],
    ['a since that is a string', { prefixes: [['a', '5']] }],
    ['a since that is a fraction', { prefixes: [['a', 1.5]] }],
    ['a since that is a boolean', { prefixes: [['a', true]] }],
    ['a since beyond i64 (uint64)', { prefixes: [['a', 2n ** 64n - 1n]] }],
  ])('hello prefixes - %s is malformed', (_name, ext) => {
    const error = gossipErrorOf(() => decodeFrame(helloWith(ext)));
    expect(error.code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    expect(error.message).toMatch(/prefixes/);
  });

  it('hello prefixes - a string in the extension that is not UTF-8 is malformed', () => {
    const ext = (b: number) => Buffer.from([0x81, 0xa8, ...Buffer.from('prefixes'), 0x91, 0x92, 0xa2, 0x66, b, 0xc0]);
    expect(decodeFrame(helloWithBytes(ext(0x67)))).toMatchObject({ prefixes: [{ prefix: 'fg', since: null }] });
    expect(gossipErrorOf(() => decodeFrame(helloWithBytes(ext(0xc3)))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('hello prefixes - bounded by the extension cap: the longest prefix that fits decodes, one byte more is refused', () => {
    // The map (1 byte), its key "prefixes" (9), the array of one pair (1), the pair (1), str 16's header (3), nil (1).
    const longest = 'p'.repeat(MAX_EXTENSION_BYTES - 16);
    const fits = helloWith({ prefixes: [[longest, null]] });
    expect(decodeFrame(fits)).toMatchObject({ prefixes: [{ prefix: longest, since: null }] });
    const over = helloWith({ prefixes: [[`${longest}p`, null]] });
    expect(gossipErrorOf(() => decodeFrame(over)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    const e = new FrameEncoder();
    expect(gossipErrorOf(() => e.hello({ prefixes: [{ prefix: `${longest}p`, since: null }] })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
    expect(e.pendingBytes).toBe(0);
  });

  it('hello prefixes - the encoder refuses a bad prefix or since before writing anything', () => {
    const e = new FrameEncoder();
    expect(gossipErrorOf(() => e.hello({ prefixes: [{ prefix: 'a\uDC00', since: null }] })).code).toBe(
      'GOSSIP_ERR_ID_NOT_UTF8',
    );
    expect(gossipErrorOf(() => e.hello({ prefixes: [{ prefix: 'a', since: MIN_TS - 1n }] })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
    expect(e.pendingBytes).toBe(0);
  });
});

describe('welcome prefix limits', () => {
  const welcome = {
    epoch: '0123456789abcdef0123456789abcdef',
    newestTs: 0n,
    horizon: null,
    maxIdBytes: 256,
    maxDataBytes: 1024,
    maxFrameBytes: 2048,
  };

  it.each([0, -1, 1.5, 2 ** 53])('welcome prefix limits - the encoder refuses a maxPrefixes of %s', (v) => {
    expect(gossipErrorOf(() => new FrameEncoder().welcome({ ...welcome, maxPrefixes: v })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });

  it.each([0, 65_536, 2.5])('welcome prefix limits - the encoder refuses a maxPrefixBytes of %s', (v) => {
    expect(gossipErrorOf(() => new FrameEncoder().welcome({ ...welcome, maxPrefixBytes: v })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });

  it('welcome prefix limits - the edges of their domain round-trip', () => {
    for (const limits of [
      { maxPrefixes: 1, maxPrefixBytes: 1 },
      { maxPrefixes: Number.MAX_SAFE_INTEGER, maxPrefixBytes: MAX_PREFIX_FIELD_BYTES },
    ]) {
      expect(decodeFrame(new FrameEncoder().welcome({ ...welcome, ...limits }).take())).toMatchObject(limits);
    }
  });

  it('welcome prefix limits - a decoded welcome refuses limits out of their domain', () => {
    const bytes = new FrameEncoder().welcome({ ...welcome, server: 'x' }).take();
    // The same welcome with its extension swapped for one carrying a bad value.
    const fixed = bytes.subarray(5, 5 + 44);
    for (const ext of [{ maxPrefixes: 0 }, { maxPrefixes: '64' }, { maxPrefixBytes: 65_536 }, { maxPrefixBytes: -1 }]) {
      const f = frame(FrameKind.Welcome, Buffer.concat([fixed, packr.pack(ext)]));
      expect(gossipErrorOf(() => decodeFrame(f)).code, JSON.stringify(ext)).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    }
  });
});

describe('checkPrefix', () => {
  it('checkPrefix - counts UTF-8 bytes against the limit, the empty prefix included', () => {
    expect(checkPrefix('', MAX_PREFIX_BYTES)).toBe(0);
    expect(checkPrefix('é'.repeat(128), MAX_PREFIX_BYTES)).toBe(256);
    expect(gossipErrorOf(() => checkPrefix(`${'é'.repeat(128)}a`, MAX_PREFIX_BYTES)).code).toBe(
      'GOSSIP_ERR_PREFIX_TOO_LONG',
    );
    expect(gossipErrorOf(() => checkPrefix('a'.repeat(300), MAX_PREFIX_BYTES)).code).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
    expect(gossipErrorOf(() => checkPrefix(5 as unknown as string, MAX_PREFIX_BYTES)).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });
});
