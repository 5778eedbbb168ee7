import { randomBytes } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import {
  GossipError,
  LEGACY_COMPRESS_MIN_BYTES,
  LEGACY_FIRST_BYTE,
  LEGACY_HELLO_BYTES,
  LEGACY_MAGIC,
  LEGACY_WELCOME,
  LegacyDecoder,
  type LegacyDecoderOptions,
  LegacyEncoder,
  type LegacyFrame,
  LegacyKind,
  LegacyTag,
  MAX_TS,
  MIN_TS,
  unwrapLegacyPayload,
} from '@gossip/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as arb from './arbitraries.js';
import { bytewise, comparable, gossipErrorOf, splitAt } from './support.js';

// The original gossip protocol's codec (docs/PROTOCOL.md, "Legacy protocol", L1 to L6).

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Decodes `chunks` read from `from` and returns the frames, checking the stream ends on a boundary. */
function decode(chunks: readonly Buffer[], options: LegacyDecoderOptions): LegacyFrame[] {
  const frames: LegacyFrame[] = [];
  const d = new LegacyDecoder((f) => frames.push(f), options);
  for (const c of chunks) d.push(c);
  d.end();
  return frames;
}

/** One table of golden bytes drives decode, encode and round-trip checks. */
const GOLDEN: {
  name: string;
  from: 'client' | 'server';
  hex: string;
  frame: LegacyFrame;
  encode: (e: LegacyEncoder) => void;
}[] = [
  {
    name: 'client handshake, since 1700000000000000000',
    from: 'client',
    hex: '474f53534950 17979cfe362a0000',
    frame: { kind: LegacyKind.Hello, since: 1_700_000_000_000_000_000n },
    encode: (e) => e.hello(1_700_000_000_000_000_000n),
  },
  {
    name: 'client handshake, since -2^63',
    from: 'client',
    hex: '474f53534950 8000000000000000',
    frame: { kind: LegacyKind.Hello, since: MIN_TS },
    encode: (e) => e.hello(MIN_TS),
  },
  {
    name: 'server answer GOSSIP\\n',
    from: 'server',
    hex: '474f535349500a',
    frame: { kind: LegacyKind.Welcome },
    encode: (e) => e.welcome(),
  },
  {
    name: 'M, id "k", ts 1700000000000000000, "=v1"',
    from: 'client',
    hex: '4d 0000000000000001 6b 17979cfe362a0000 0000000000000003 3d7631',
    frame: { kind: LegacyKind.Persisted, id: 'k', ts: 1_700_000_000_000_000_000n, payload: Buffer.from('=v1') },
    encode: (e) => e.frame(LegacyKind.Persisted, 'k', 1_700_000_000_000_000_000n, Buffer.from('=v1')),
  },
  {
    name: 'M tombstone: "=" alone',
    from: 'server',
    hex: '4d 0000000000000002 6964 0000000000000005 0000000000000001 3d',
    frame: { kind: LegacyKind.Persisted, id: 'id', ts: 5n, payload: Buffer.from('=') },
    encode: (e) => e.message(LegacyKind.Persisted, 'id', 5n, Buffer.alloc(0)),
  },
  {
    name: 'S, id "é", ts -1, "=x"',
    from: 'server',
    hex: '53 0000000000000002 c3a9 ffffffffffffffff 0000000000000002 3d78',
    frame: { kind: LegacyKind.Transient, id: 'é', ts: -1n, payload: Buffer.from('=x') },
    encode: (e) => e.message(LegacyKind.Transient, 'é', -1n, Buffer.from('x')),
  },
  {
    name: 'M with an empty data field (framing only: no tag)',
    from: 'client',
    hex: '4d 0000000000000001 6b 0000000000000000 0000000000000000',
    frame: { kind: LegacyKind.Persisted, id: 'k', ts: 0n, payload: Buffer.alloc(0) },
    encode: (e) => e.frame(LegacyKind.Persisted, 'k', 0n, Buffer.alloc(0)),
  },
  {
    name: 'D',
    from: 'server',
    hex: '44',
    frame: { kind: LegacyKind.ReplayDone },
    encode: (e) => e.replayDone(),
  },
];

describe('legacy constants', () => {
  it('legacy constants - GOSSIP, GOSSIP\\n, and the first byte that tells legacy from native', () => {
    expect(Buffer.from(LEGACY_MAGIC).toString('latin1')).toBe('GOSSIP');
    expect(Buffer.from(LEGACY_WELCOME).toString('latin1')).toBe('GOSSIP\n');
    expect(LEGACY_HELLO_BYTES).toBe(14);
    expect(LEGACY_FIRST_BYTE).toBe('G'.charCodeAt(0));
    expect([LegacyKind.Persisted, LegacyKind.Transient, LegacyKind.ReplayDone]).toEqual(
      ['M', 'S', 'D'].map((c) => c.charCodeAt(0)),
    );
    expect([LegacyTag.Raw, LegacyTag.Zlib]).toEqual(['=', 'z'].map((c) => c.charCodeAt(0)));
  });
});

describe('legacy golden', () => {
  it.each(GOLDEN)('legacy golden decode - $name', (g) => {
    const rest = g.frame.kind === LegacyKind.Hello || g.frame.kind === LegacyKind.Welcome;
    // Frames other than a handshake come after one.
    const lead = rest ? Buffer.alloc(0) : new LegacyEncoder()[g.from === 'client' ? 'hello' : 'welcome'](0n).take();
    const frames = decode([lead, hex(g.hex)], { from: g.from });
    expect(comparable(frames.at(-1))).toEqual(comparable(g.frame));
    expect(frames).toHaveLength(rest ? 1 : 2);
  });

  it.each(GOLDEN)('legacy golden encode - $name', (g) => {
    const e = new LegacyEncoder();
    g.encode(e);
    expect(e.take().toString('hex')).toBe(hex(g.hex).toString('hex'));
    expect(e.pendingBytes).toBe(0);
  });

  it('legacy golden - a whole server stream decodes in one chunk and byte by byte', () => {
    const server = GOLDEN.filter((g) => g.from === 'server');
    const stream = Buffer.concat(server.map((g) => hex(g.hex)));
    const want = server.map((g) => comparable(g.frame));
    expect(decode([stream], { from: 'server' }).map(comparable)).toEqual(want);
    expect(decode(bytewise(stream), { from: 'server' }).map(comparable)).toEqual(want);
  });
});

/** A valid client stream: the handshake, then M and S frames with tagged payloads. */
const clientStream = fc
  .tuple(
    arb.ts,
    fc.array(
      fc.record({
        kind: fc.constantFrom(LegacyKind.Persisted, LegacyKind.Transient),
        id: arb.id,
        ts: arb.ts,
        data: arb.data,
      }),
      { maxLength: 8 },
    ),
  )
  .map(([since, messages]) => {
    const e = new LegacyEncoder({ slabBytes: 64 });
    e.hello(since);
    for (const m of messages) e.message(m.kind, m.id, m.ts, m.data);
    return { bytes: Buffer.from(e.take()), since, messages };
  });

describe('legacy chunking', () => {
  it('legacy chunking - any split of a valid stream decodes to the same frames, payloads unwrapping to the data', () => {
    fc.assert(
      fc.property(clientStream, fc.array(fc.nat(), { maxLength: 12 }), ({ bytes, since, messages }, cuts) => {
        const chunks = splitAt(
          bytes,
          cuts.map((c) => c % (bytes.length + 1)),
        );
        const frames = decode(chunks, { from: 'client' });
        expect(frames[0]).toEqual({ kind: LegacyKind.Hello, since });
        const got = frames.slice(1).map((f) => {
          if (f.kind !== LegacyKind.Persisted && f.kind !== LegacyKind.Transient) throw new Error('not a message');
          return { kind: f.kind, id: f.id, ts: f.ts, data: unwrapLegacyPayload(f.payload).toString('hex') };
        });
        expect(got).toEqual(messages.map((m) => ({ ...m, data: m.data.toString('hex') })));
      }),
      { numRuns: 500 },
    );
  });

  it('legacy chunking - a whole payload in one chunk is a view of it; a split one is a copy of exactly its length', () => {
    const e = new LegacyEncoder();
    const bytes = e.hello(0n).frame(LegacyKind.Persisted, 'k', 1n, Buffer.from('=hello')).take();
    const whole = decode([bytes], { from: 'client' })[1] as { payload: Buffer };
    expect(whole.payload.buffer).toBe(bytes.buffer);
    const split = decode([bytes.subarray(0, bytes.length - 2), bytes.subarray(bytes.length - 2)], {
      from: 'client',
    })[1] as {
      payload: Buffer;
    };
    expect(split.payload.toString()).toBe('=hello');
    expect(split.payload.buffer).not.toBe(bytes.buffer);
    expect(split.payload.length).toBe(6);
  });
});

describe('legacy limits', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return b;
  };
  const handshake = new LegacyEncoder().hello(0n).take();

  it('legacy limits - an id length over 256 (up to 2^64-1) fails as soon as it is read, before any allocation', () => {
    for (const len of [257n, 2n ** 32n, 2n ** 40n, 2n ** 64n - 1n]) {
      const bytes = Buffer.concat([Buffer.from('M'), u64(len)]);
      const d = new LegacyDecoder(() => {}, { from: 'client' });
      d.push(handshake);
      const alloc = vi.spyOn(Buffer, 'allocUnsafe');
      const error = gossipErrorOf(() => d.push(bytes));
      expect(error.code).toBe('GOSSIP_ERR_ID_TOO_LONG');
      expect(alloc).not.toHaveBeenCalled();
      vi.restoreAllMocks();
    }
  });

  it('legacy limits - a data length over the maximum fails as soon as it is read, before any allocation', () => {
    const head = Buffer.concat([Buffer.from('M'), u64(1n), Buffer.from('k'), u64(0n)]);
    for (const len of [1001n, 2n ** 32n, 2n ** 40n, 2n ** 64n - 1n]) {
      const d = new LegacyDecoder(() => {}, { from: 'client', maxPayloadBytes: 1000 });
      d.push(handshake);
      // The length split over chunks too: the check waits for its last byte, not for data.
      const bytes = Buffer.concat([head, u64(len)]);
      const alloc = vi.spyOn(Buffer, 'allocUnsafe');
      const error = gossipErrorOf(() => {
        d.push(bytes.subarray(0, bytes.length - 3));
        d.push(bytes.subarray(bytes.length - 3));
      });
      expect(error.code).toBe('GOSSIP_ERR_DATA_TOO_LARGE');
      // The limit is the maximum frame, not the data's: the message names the right option.
      expect(error.message).toContain('--max-frame');
      expect(alloc).not.toHaveBeenCalled();
      vi.restoreAllMocks();
    }
  });

  it('legacy limits - a payload at the maximum is accepted, and a split one is allocated once, at its length', () => {
    const frames: LegacyFrame[] = [];
    const d = new LegacyDecoder((f) => frames.push(f), { from: 'client', maxPayloadBytes: 1000 });
    d.push(handshake);
    const frame = new LegacyEncoder().frame(LegacyKind.Persisted, 'k', 0n, Buffer.alloc(1000, 1)).take();
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    d.push(frame.subarray(0, 40));
    d.push(frame.subarray(40));
    expect(alloc.mock.calls).toEqual([[1000]]);
    expect(frames).toHaveLength(2);
  });

  it('legacy limits - an empty id and an id that is not UTF-8 are refused with their codes', () => {
    const d1 = new LegacyDecoder(() => {}, { from: 'client' });
    d1.push(handshake);
    expect(gossipErrorOf(() => d1.push(Buffer.concat([Buffer.from('S'), u64(0n)]))).code).toBe('GOSSIP_ERR_ID_EMPTY');
    const d2 = new LegacyDecoder(() => {}, { from: 'client' });
    d2.push(handshake);
    expect(gossipErrorOf(() => d2.push(Buffer.concat([Buffer.from('M'), u64(2n), Buffer.of(0xed, 0xa0)]))).code).toBe(
      'GOSSIP_ERR_ID_NOT_UTF8',
    );
  });

  it('legacy limits - maxPayloadBytes must fit in 32 bits', () => {
    expect(gossipErrorOf(() => new LegacyDecoder(() => {}, { from: 'client', maxPayloadBytes: 2 ** 32 })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });
});

describe('legacy bad input', () => {
  const handshake = new LegacyEncoder().hello(0n).take();

  it.each([
    ['an unknown kind byte', 'client', Buffer.concat([handshake, Buffer.from('X')]), 'GOSSIP_ERR_UNKNOWN_FRAME'],
    ['a D from a client', 'client', Buffer.concat([handshake, Buffer.from('D')]), 'GOSSIP_ERR_UNEXPECTED_FRAME'],
    ['a handshake that is not GOSSIP', 'client', Buffer.from('GOSSIX\0\0\0\0\0\0\0\0'), 'GOSSIP_ERR_BAD_MAGIC'],
    ['an answer that is not GOSSIP\\n', 'server', Buffer.from('GOSSIP!'), 'GOSSIP_ERR_BAD_MAGIC'],
    ['a native hello', 'client', Buffer.from('000000200189475350', 'hex'), 'GOSSIP_ERR_BAD_MAGIC'],
  ] as const)('legacy bad input - %s fails with its code', (_name, from, bytes, code) => {
    expect(gossipErrorOf(() => decode([bytes], { from })).code).toBe(code);
  });

  it('legacy bad input - a wrong handshake fails at its first wrong byte, without waiting for 14', () => {
    const d = new LegacyDecoder(() => {}, { from: 'client' });
    d.push(Buffer.from('GO'));
    expect(gossipErrorOf(() => d.push(Buffer.from('X'))).code).toBe('GOSSIP_ERR_BAD_MAGIC');
  });

  it('legacy bad input - a stream that ends inside the handshake or a frame is malformed; between frames it is fine', () => {
    const frame = new LegacyEncoder().frame(LegacyKind.Persisted, 'k', 0n, Buffer.from('=v')).take();
    const whole = Buffer.concat([handshake, frame]);
    for (let cut = 1; cut < whole.length; cut++) {
      if (cut === handshake.length) continue;
      expect(gossipErrorOf(() => decode([whole.subarray(0, cut)], { from: 'client' })).code).toBe(
        'GOSSIP_ERR_MALFORMED_FRAME',
      );
    }
    expect(decode([handshake], { from: 'client' })).toHaveLength(1);
    expect(decode([whole], { from: 'client' })).toHaveLength(2);
    expect(decode([], { from: 'client' })).toHaveLength(0);
  });

  it('legacy bad input - after an error every push and end throw the same error; frames before it were delivered', () => {
    const frames: LegacyFrame[] = [];
    const d = new LegacyDecoder((f) => frames.push(f), { from: 'server' });
    const first = gossipErrorOf(() => d.push(Buffer.from('GOSSIP\nDDX')));
    expect(first.code).toBe('GOSSIP_ERR_UNKNOWN_FRAME');
    expect(frames.map((f) => f.kind)).toEqual([LegacyKind.Welcome, LegacyKind.ReplayDone, LegacyKind.ReplayDone]);
    expect(gossipErrorOf(() => d.push(Buffer.from('D')))).toBe(first);
    expect(gossipErrorOf(() => d.end())).toBe(first);
  });

  it('legacy bad input - an exception from the frame handler leaves the decoder failed with a GossipError', () => {
    const d = new LegacyDecoder(
      () => {
        throw new TypeError('handler bug');
      },
      { from: 'server' },
    );
    const error = gossipErrorOf(() => d.push(Buffer.from('GOSSIP\n')));
    expect(error.cause).toBeInstanceOf(TypeError);
  });
});

describe('legacy fuzz', () => {
  function feed(chunks: readonly Buffer[], from: 'client' | 'server', maxPayloadBytes: number): GossipError | null {
    const d = new LegacyDecoder(() => {}, { from, maxPayloadBytes });
    try {
      for (const c of chunks) d.push(c);
      d.end();
      return null;
    } catch (error) {
      expect(error).toBeInstanceOf(GossipError);
      expect((error as GossipError).code).toMatch(/^GOSSIP_ERR_[A-Z0-9_]+$/);
      expect(gossipErrorOf(() => d.push(Buffer.from('M')))).toBe(error);
      return error as GossipError;
    }
  }

  const chunked = (bytes: fc.Arbitrary<Buffer>) =>
    bytes.chain((b) =>
      fc.oneof(
        fc.array(fc.nat({ max: b.length }), { maxLength: 12 }).map((cuts) => splitAt(b, cuts)),
        fc.constant([b]),
        fc.constant(bytewise(b)),
      ),
    );

  /** Mostly plausible bytes: a valid handshake, then kind bytes, lengths and bodies drawn at random. */
  const plausible = fc
    .tuple(
      fc.constantFrom('client' as const, 'server' as const),
      fc.array(
        fc.oneof(
          fc.constantFrom(...'MSDz=G'.split('').map((c) => Buffer.from(c))),
          fc.bigInt({ min: 0n, max: 300n }).map((v) => {
            const b = Buffer.alloc(8);
            b.writeBigUInt64BE(v);
            return b;
          }),
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => {
            const b = Buffer.alloc(8);
            b.writeBigUInt64BE(v);
            return b;
          }),
          fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
        ),
        { maxLength: 12 },
      ),
    )
    .map(([from, parts]) => ({
      from,
      bytes: Buffer.concat([
        from === 'client' ? Buffer.concat([LEGACY_MAGIC, Buffer.alloc(8)]) : Buffer.from(LEGACY_WELCOME),
        ...parts,
      ]),
    }));

  it('legacy fuzz - random bytes in random chunks decode or throw a GossipError', () => {
    fc.assert(
      fc.property(
        chunked(fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a))),
        fc.constantFrom('client' as const, 'server' as const),
        fc.constantFrom(0, 16, 1024),
        (chunks, from, max) => {
          feed(chunks, from, max);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('legacy fuzz - plausible streams after a valid handshake decode or throw a GossipError, reaching both', () => {
    const codes = new Set<string>();
    let decoded = 0;
    fc.assert(
      fc.property(
        plausible.chain(({ from, bytes }) => chunked(fc.constant(bytes)).map((chunks) => ({ from, chunks }))),
        ({ from, chunks }) => {
          const error = feed(chunks, from, 64);
          if (error) codes.add(error.code);
          else decoded++;
        },
      ),
      { numRuns: 3000 },
    );
    expect(decoded).toBeGreaterThan(0);
    expect(codes).toContain('GOSSIP_ERR_UNKNOWN_FRAME');
    expect(codes).toContain('GOSSIP_ERR_ID_TOO_LONG');
    expect(codes).toContain('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('legacy fuzz - unwrapping random payloads returns data or throws a GossipError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
          fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.concat([Buffer.from('z'), Buffer.from(a)])),
          arb.data.map((d) => Buffer.concat([Buffer.from('z'), deflateSync(d)])),
        ),
        fc.constantFrom(0, 10, 4096),
        (payload, max) => {
          try {
            expect(unwrapLegacyPayload(payload, max).length).toBeLessThanOrEqual(max);
          } catch (error) {
            expect(error).toBeInstanceOf(GossipError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('legacy payload', () => {
  it('legacy payload - "=" gives the data (a view), "=" alone a tombstone', () => {
    const p = Buffer.from('=abc');
    const data = unwrapLegacyPayload(p, 10);
    expect(data.toString()).toBe('abc');
    expect(data.buffer).toBe(p.buffer);
    expect(unwrapLegacyPayload(Buffer.from('='), 10).length).toBe(0);
  });

  it('legacy payload - "z" gives the inflated data, up to and including the maximum', () => {
    const data = Buffer.alloc(1000, 'a');
    const z = Buffer.concat([Buffer.from('z'), deflateSync(data)]);
    expect(unwrapLegacyPayload(z, 1000).equals(data)).toBe(true);
    expect(unwrapLegacyPayload(Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(0))]), 0).length).toBe(0);
  });

  it.each([
    ['no tag', Buffer.alloc(0), 10, 'GOSSIP_ERR_MALFORMED_FRAME'],
    ['an unknown tag', Buffer.from('#abc'), 10, 'GOSSIP_ERR_MALFORMED_FRAME'],
    ['"z" with bytes that are not zlib', Buffer.from('zabc'), 10, 'GOSSIP_ERR_MALFORMED_FRAME'],
    ['"z" alone', Buffer.from('z'), 10, 'GOSSIP_ERR_MALFORMED_FRAME'],
    [
      '"z" cut short',
      Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(100, 1)).subarray(0, 6)]),
      1000,
      'GOSSIP_ERR_MALFORMED_FRAME',
    ],
    ['"=" over the maximum', Buffer.from('=abcd'), 3, 'GOSSIP_ERR_DATA_TOO_LARGE'],
    [
      '"z" one byte over the maximum',
      Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(1001))]),
      1000,
      'GOSSIP_ERR_DATA_TOO_LARGE',
    ],
    [
      '"z" with anything under a maximum of 0',
      Buffer.concat([Buffer.from('z'), deflateSync(Buffer.of(1))]),
      0,
      'GOSSIP_ERR_DATA_TOO_LARGE',
    ],
  ] as const)('legacy payload - %s is refused', (_name, payload, max, code) => {
    const error = gossipErrorOf(() => unwrapLegacyPayload(payload, max));
    expect(error.code).toBe(code);
    if (code === 'GOSSIP_ERR_DATA_TOO_LARGE') expect(error.message).toContain('--max-data');
  });

  it('legacy payload - a compression bomb is refused without inflating it all', () => {
    // 64 MiB of zeros deflate to about 64 KiB; inflating stops at the maximum.
    const bomb = Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(64 * 1024 * 1024))]);
    expect(bomb.length).toBeLessThan(128 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    expect(gossipErrorOf(() => unwrapLegacyPayload(bomb, 1024 * 1024)).code).toBe('GOSSIP_ERR_DATA_TOO_LARGE');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('legacy encoder', () => {
  it('legacy encoder - "=" under 1 KiB, "z" from 1 KiB when smaller, "=" when deflating does not help', () => {
    // A server stream starts with its answer: the frame is decoded after one.
    const encode = (data: Buffer) =>
      decode([Buffer.from(LEGACY_WELCOME), new LegacyEncoder().message(LegacyKind.Persisted, 'k', 0n, data).take()], {
        from: 'server',
      })[1] as { payload: Buffer };
    const small = Buffer.alloc(LEGACY_COMPRESS_MIN_BYTES - 1, 'a');
    expect(encode(small).payload[0]).toBe(LegacyTag.Raw);
    const big = Buffer.alloc(LEGACY_COMPRESS_MIN_BYTES, 'a');
    const z = encode(big).payload;
    expect(z[0]).toBe(LegacyTag.Zlib);
    expect(unwrapLegacyPayload(z, big.length).equals(big)).toBe(true);
    const noise = randomBytes(4096);
    const raw = encode(noise).payload;
    expect(raw[0]).toBe(LegacyTag.Raw);
    expect(raw.subarray(1).equals(noise)).toBe(true);
  });

  it('legacy encoder - refuses ids and ts it cannot send, leaving nothing behind', () => {
    const e = new LegacyEncoder();
    expect(gossipErrorOf(() => e.message(LegacyKind.Persisted, '', 0n, Buffer.alloc(0))).code).toBe(
      'GOSSIP_ERR_ID_EMPTY',
    );
    expect(gossipErrorOf(() => e.message(LegacyKind.Persisted, 'x'.repeat(257), 0n, Buffer.alloc(0))).code).toBe(
      'GOSSIP_ERR_ID_TOO_LONG',
    );
    expect(gossipErrorOf(() => e.frame(LegacyKind.Persisted, 'k', MAX_TS + 1n, Buffer.alloc(0))).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
    expect(gossipErrorOf(() => e.hello(MIN_TS - 1n)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    expect(e.pendingBytes).toBe(0);
  });

  it('legacy encoder - bytes taken are never written again, across slabs', () => {
    const e = new LegacyEncoder({ slabBytes: 32 });
    const first = e.message(LegacyKind.Persisted, 'a', 1n, Buffer.from('one')).take();
    const copy = Buffer.from(first);
    for (let i = 0; i < 20; i++) e.message(LegacyKind.Transient, `id${i}`, BigInt(i), Buffer.alloc(i, i));
    e.take();
    expect(first.equals(copy)).toBe(true);
  });
});
