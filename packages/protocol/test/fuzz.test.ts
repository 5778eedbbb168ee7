import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrame,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  GossipError,
  MAX_EXTENSION_BYTES,
  parseFrame,
} from '@gossip/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as arb from './arbitraries.js';
import { encodeFrame, gossipErrorOf, splitAt } from './support.js';

/*
 * Whatever the bytes, the decoder either decodes them or throws a GossipError with a
 * stable code: never another exception, never a hang. Every input here is bounded, so a
 * hang would show as the test's timeout.
 */

const KINDS = Object.values(FrameKind);

function expectGossipError(error: unknown): asserts error is GossipError {
  expect(error).toBeInstanceOf(GossipError);
  expect((error as GossipError).code).toMatch(/^GOSSIP_ERR_[A-Z0-9_]+$/);
}

/** Pushes `chunks` then ends; returns the error if one was thrown, after checking the decoder stays failed with it. */
function feed(chunks: readonly Buffer[], maxFrameBytes: number): GossipError | null {
  const decoder = new FrameDecoder(() => {}, { maxFrameBytes });
  try {
    for (const chunk of chunks) decoder.push(chunk);
    decoder.end();
    return null;
  } catch (error) {
    expectGossipError(error);
    // The stream has lost its framing: every later call throws the very same error.
    expect(gossipErrorOf(() => decoder.push(Buffer.alloc(0)))).toBe(error);
    expect(gossipErrorOf(() => decoder.push(Buffer.from('0000000505deadbeef', 'hex')))).toBe(error);
    expect(gossipErrorOf(() => decoder.end())).toBe(error);
    return error;
  }
}

/** Bytes plus arbitrary cut points into them. */
function chunked(bytes: fc.Arbitrary<Buffer>): fc.Arbitrary<readonly Buffer[]> {
  return bytes.chain((b) =>
    fc.oneof(
      fc.array(fc.nat({ max: b.length }), { maxLength: 12 }).map((cuts) => splitAt(b, cuts)),
      fc.constant([b]),
      fc.constant([...b].map((byte) => Buffer.of(byte))),
    ),
  );
}

const maxFrameBytes = fc.constantFrom(16, 300, 64 * 1024, DEFAULT_MAX_FRAME_BYTES);

/** A length prefix that matches, then a kind (mostly a known one) and random body bytes. */
const framed = fc
  .tuple(
    fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...KINDS) }, { weight: 1, arbitrary: arb.u8 }),
    fc.uint8Array({ maxLength: 120 }),
  )
  .map(([kind, body]) => {
    const out = Buffer.alloc(5 + body.length);
    out.writeUInt32BE(1 + body.length, 0);
    out[4] = kind;
    out.set(body, 5);
    return out;
  });

type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'length'; frame: number; delta: number }
  | { op: 'length-any'; frame: number; value: number }
  | { op: 'kind'; frame: number; kind: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 0xff }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: arb.u8 }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('length' as const), frame: fc.nat(), delta: fc.integer({ min: -16, max: 16 }) }),
  fc.record({ op: fc.constant('length-any' as const), frame: fc.nat(), value: arb.u32 }),
  fc.record({ op: fc.constant('kind' as const), frame: fc.nat(), kind: arb.u8 }),
);

/** Encodes frames and applies mutations; frame starts are tracked so length and kind mutations hit real headers. */
function mutate(frames: readonly Frame[], mutations: readonly Mutation[]): Buffer {
  const starts: number[] = [];
  const e = new FrameEncoder();
  for (const f of frames) {
    starts.push(e.pendingBytes);
    encodeFrame(e, f);
  }
  let b = Buffer.from(e.take());
  for (const m of mutations) {
    const at = (n: number) => n % Math.max(b.length, 1);
    const start = (n: number) => starts[n % starts.length] as number;
    switch (m.op) {
      case 'flip':
        if (b.length > 0) b[at(m.at)] = (b[at(m.at)] as number) ^ m.mask;
        break;
      case 'set':
        if (b.length > 0) b[at(m.at)] = m.value;
        break;
      case 'truncate':
        b = b.subarray(0, at(m.at));
        break;
      case 'extend':
        b = Buffer.concat([b, m.bytes]);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at(m.at)), m.bytes, b.subarray(at(m.at))]);
        break;
      case 'length': {
        const s = start(m.frame);
        if (s + 4 <= b.length) b.writeUInt32BE(Math.min(0xffffffff, Math.max(0, b.readUInt32BE(s) + m.delta)), s);
        break;
      }
      case 'length-any': {
        const s = start(m.frame);
        if (s + 4 <= b.length) b.writeUInt32BE(m.value, s);
        break;
      }
      case 'kind': {
        const s = start(m.frame);
        if (s + 4 < b.length) b[s + 4] = m.kind;
        break;
      }
    }
  }
  return b;
}

const mutated = fc
  .tuple(fc.array(arb.frame, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([frames, mutations]) => mutate(frames, mutations));

describe('fuzz', () => {
  it('fuzz - random bytes in random chunks decode or throw a GossipError', { timeout: 10_000 }, () => {
    fc.assert(
      fc.property(
        chunked(fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a))),
        maxFrameBytes,
        (chunks, max) => {
          feed(chunks, max);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('fuzz - well-framed random bodies of every kind decode or throw a GossipError', { timeout: 10_000 }, () => {
    let decoded = 0;
    let failed = 0;
    fc.assert(
      fc.property(
        chunked(fc.array(framed, { minLength: 1, maxLength: 4 }).map((fs) => Buffer.concat(fs))),
        (chunks) => {
          if (feed(chunks, DEFAULT_MAX_FRAME_BYTES)) failed++;
          else decoded++;
        },
      ),
      { numRuns: 3000 },
    );
    // Both outcomes must be reached, or the generator is not exercising the parsers.
    expect(decoded).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(0);
  });

  it(
    'fuzz - mutated valid frames (flipped, truncated, extended, re-lengthed, re-kinded) decode or throw a GossipError',
    {
      timeout: 10_000,
    },
    () => {
      const codes = new Set<string>();
      fc.assert(
        fc.property(chunked(mutated), maxFrameBytes, (chunks, max) => {
          const error = feed(chunks, max);
          if (error) codes.add(error.code);
        }),
        { numRuns: 3000 },
      );
      expect(codes).toContain('GOSSIP_ERR_MALFORMED_FRAME');
      expect(codes).toContain('GOSSIP_ERR_UNKNOWN_FRAME');
      expect(codes).toContain('GOSSIP_ERR_FRAME_TOO_LARGE');
    },
  );

  it('fuzz - parseFrame on any kind and body returns a frame or throws a GossipError of its own', () => {
    // parseFrame is not behind the decoder's safety net (which wraps stray exceptions
    // as malformed): a RangeError or TypeError here would be a parser bug.
    fc.assert(
      fc.property(framed, fc.nat({ max: 16 }), (frame, pad) => {
        const buf = Buffer.concat([Buffer.alloc(pad, 0xaa), frame.subarray(4), Buffer.alloc(pad, 0xbb)]);
        try {
          parseFrame(buf, pad, buf.length - pad);
        } catch (error) {
          expectGossipError(error);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('fuzz - parseFrame of an empty range is malformed, not a TypeError', () => {
    expect(gossipErrorOf(() => parseFrame(Buffer.alloc(0), 0, 0)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    expect(gossipErrorOf(() => parseFrame(Buffer.of(0x0c), 1, 1)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });
});

describe('decoder failure', () => {
  it('decoder failure - after a throw, every push and end throws the same error', () => {
    const decoder = new FrameDecoder(() => {});
    const first = gossipErrorOf(() => decoder.push(Buffer.from('00000001ff', 'hex')));
    expect(first.code).toBe('GOSSIP_ERR_UNKNOWN_FRAME');
    expect(gossipErrorOf(() => decoder.push(Buffer.from('000000050c00000001', 'hex')))).toBe(first);
    expect(gossipErrorOf(() => decoder.push(Buffer.alloc(0)))).toBe(first);
    expect(gossipErrorOf(() => decoder.end())).toBe(first);
  });

  it('decoder failure - frames before the bad one are delivered, none after it', () => {
    const seen: Frame[] = [];
    const decoder = new FrameDecoder((f) => seen.push(f));
    const good = new FrameEncoder().ping(1).take();
    const stream = Buffer.concat([good, Buffer.from('0000000100', 'hex'), good]);
    expect(gossipErrorOf(() => decoder.push(stream)).code).toBe('GOSSIP_ERR_UNKNOWN_FRAME');
    expect(seen).toEqual([{ kind: FrameKind.Ping, nonce: 1 }]);
  });

  it('decoder failure - an exception from the frame handler leaves the decoder failed with a GossipError', () => {
    const decoder = new FrameDecoder(() => {
      throw new TypeError('handler bug');
    });
    const error = gossipErrorOf(() => decoder.push(new FrameEncoder().ping(1).take()));
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(gossipErrorOf(() => decoder.push(Buffer.alloc(0)))).toBe(error);
  });
});

/** A hello or welcome frame whose msgpack extension is replaced by `ext`. */
function withExtension(frame: Buffer, ext: Buffer): Buffer {
  // Encoded without optional fields, the extension is the one byte 0x80 (an empty map) at the end.
  expect(frame[frame.length - 1]).toBe(0x80);
  const out = Buffer.concat([frame.subarray(0, -1), ext]);
  out.writeUInt32BE(out.length - 4, 0);
  return out;
}

const hello = () => new FrameEncoder().hello({ since: 1n }).take();
const welcome = () =>
  new FrameEncoder()
    .welcome({
      epoch: '0123456789abcdef0123456789abcdef',
      newestTs: 1n,
      horizon: null,
      maxIdBytes: 256,
      maxDataBytes: 1024,
      maxFrameBytes: 2048,
    })
    .take();

describe('extension', () => {
  const notMaps: [string, string][] = [
    ['the never-used byte 0xc1', 'c1'],
    ['a truncated str8', 'd9ff61'],
    ['a truncated map', '82a46e616d65'],
    ['an unknown extension type', 'd40501'],
    ['a map followed by stray bytes', '80ff'],
    ['an integer', '05'],
    ['a string', 'a3616263'],
    ['an array', '93010203'],
    ['nil', 'c0'],
    ['a boolean', 'c3'],
    ['binary bytes', 'c40101'],
    ['a msgpack timestamp', 'd6ff00000001'],
  ];

  it.each(notMaps)('extension - a hello extension that is %s is malformed', (_what, hex) => {
    expect(gossipErrorOf(() => decodeFrame(withExtension(hello(), Buffer.from(hex, 'hex')))).code).toBe(
      'GOSSIP_ERR_MALFORMED_FRAME',
    );
  });

  it.each(notMaps)('extension - a welcome extension that is %s is malformed', (_what, hex) => {
    expect(gossipErrorOf(() => decodeFrame(withExtension(welcome(), Buffer.from(hex, 'hex')))).code).toBe(
      'GOSSIP_ERR_MALFORMED_FRAME',
    );
  });

  it.each([
    ['a hello name that is an integer', hello, '81a46e616d6501'],
    ['a hello name that is nil', hello, '81a46e616d65c0'],
    ['a hello name that is a map', hello, '81a46e616d6580'],
    ['a hello token that is a boolean', hello, '81a5746f6b656ec3'],
    ['a welcome server that is an array', welcome, '81a673657276657290'],
    ['a welcome pingIntervalMs that is a string', welcome, '81ae70696e67496e74657276616c4d73a131'],
    ['a welcome pingIntervalMs that is negative', welcome, '81ae70696e67496e74657276616c4d73ff'],
    ['a welcome maxFetchIds that is a string', welcome, '81ab6d61784665746368496473a131'],
    ['a welcome maxFetchIds of 0', welcome, '81ab6d6178466574636849647300'],
    ['a welcome maxFetchIds that is negative', welcome, '81ab6d61784665746368496473ff'],
    ['a welcome maxFetchIds that is not an integer', welcome, '81ab6d61784665746368496473cb3ff8000000000000'],
  ])('extension - %s is malformed', (_what, make, hex) => {
    expect(gossipErrorOf(() => decodeFrame(withExtension(make(), Buffer.from(hex, 'hex')))).code).toBe(
      'GOSSIP_ERR_MALFORMED_FRAME',
    );
  });

  it('extension - unknown keys are ignored, so newer peers can add fields', () => {
    const f = decodeFrame(withExtension(hello(), Buffer.from('82a46e616d65a161a3666f6fc3', 'hex')));
    expect(f).toMatchObject({ kind: FrameKind.Hello, name: 'a', token: undefined });
  });

  it('extension - an empty extension (no bytes at all) is an empty map', () => {
    const f = decodeFrame(withExtension(hello(), Buffer.alloc(0)));
    expect(f).toMatchObject({ kind: FrameKind.Hello, name: undefined, token: undefined, since: 1n });
  });

  it('extension - one over MAX_EXTENSION_BYTES is malformed, even when it is a valid map', () => {
    const pad = 'x'.repeat(MAX_EXTENSION_BYTES);
    const big = Buffer.concat([
      Buffer.from('81a3706164da', 'hex'),
      Buffer.from([pad.length >> 8, pad.length & 0xff]),
      Buffer.from(pad),
    ]);
    expect(gossipErrorOf(() => decodeFrame(withExtension(hello(), big))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('extension - the encoder refuses a name that would make the extension too large', () => {
    const e = new FrameEncoder();
    expect(gossipErrorOf(() => e.hello({ name: 'x'.repeat(MAX_EXTENSION_BYTES) })).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
    expect(e.pendingBytes).toBe(0);
  });

  it('extension - random bytes as a hello or welcome extension decode or throw a GossipError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (ext, isHello) => {
        try {
          decodeFrame(withExtension(isHello ? hello() : welcome(), Buffer.from(ext)));
        } catch (error) {
          expectGossipError(error);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
