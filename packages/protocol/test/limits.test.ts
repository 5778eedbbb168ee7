import {
  checkData,
  checkId,
  checkMessageTs,
  checkTs,
  DEFAULT_MAX_DATA_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrame,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  MAX_FETCH_IDS,
  MAX_ID_BYTES,
  MAX_TS,
  MIN_TS,
} from '@gossip/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { uncheckedEncoder as uncheckedFromSource } from '../src/testing.js';
import { bytewise, decodeChunks, gossipErrorOf } from './support.js';

/*
 * vitest resolves '@gossip/protocol' to src, but tsc resolves it through the package's
 * exports to dist, where FrameEncoder is a distinct class to the type checker. Both are
 * the same code: one cast here, rather than one per call.
 */
const uncheckedEncoder = (): FrameEncoder => uncheckedFromSource() as unknown as FrameEncoder;

afterEach(() => {
  vi.restoreAllMocks();
});

const ids256: [string, string][] = [
  ['ASCII', 'a'.repeat(256)],
  ['2-byte UTF-8', 'é'.repeat(128)],
  ['3-byte UTF-8', `${'€'.repeat(85)}a`],
  ['4-byte UTF-8', '😀'.repeat(64)],
];

const ids257: [string, string][] = [
  ['ASCII', 'a'.repeat(257)],
  ['2-byte UTF-8', `${'é'.repeat(128)}a`],
  ['3-byte UTF-8 crossing the limit', `${'a'.repeat(254)}€`],
  ['4-byte UTF-8 crossing the limit', `${'a'.repeat(253)}😀`],
];

/** Every encoder method that writes an id, called with `id`. */
const idWriters: [string, (e: FrameEncoder, id: string) => unknown][] = [
  ['publish', (e, id) => e.publish(1, id, 1n, Buffer.of(1))],
  ['emit', (e, id) => e.emit(0, id, 1n, Buffer.of(1))],
  ['message', (e, id) => e.message(0, id, 1n, Buffer.of(1))],
  ['fetch', (e, id) => e.fetch(1, ['ok', id])],
  ['fetch-result', (e, id) => e.fetchResult(1, false, [{ id, found: false }])],
];

/** The id under test in a frame written by one of `idWriters`. */
function idOf(f: Frame): string | undefined {
  if ('id' in f) return f.id;
  if (f.kind === FrameKind.Fetch) return f.ids[1];
  if (f.kind === FrameKind.FetchResult) return f.entries[0]?.id;
  return undefined;
}

describe('id', () => {
  it.each(ids256)('id - 256 bytes of %s is accepted by checkId and every encoder method', (_what, id) => {
    expect(Buffer.byteLength(id)).toBe(MAX_ID_BYTES);
    expect(checkId(id)).toBe(256);
    for (const [method, write] of idWriters) {
      const e = new FrameEncoder();
      write(e, id);
      expect(idOf(decodeFrame(e.take())), method).toBe(id);
    }
  });

  it.each(ids257)('id - 257 bytes of %s is refused with GOSSIP_ERR_ID_TOO_LONG', (_what, id) => {
    expect(Buffer.byteLength(id)).toBe(MAX_ID_BYTES + 1);
    expect(gossipErrorOf(() => checkId(id)).code).toBe('GOSSIP_ERR_ID_TOO_LONG');
    for (const [method, write] of idWriters) {
      expect(gossipErrorOf(() => write(new FrameEncoder(), id)).code, method).toBe('GOSSIP_ERR_ID_TOO_LONG');
    }
  });

  it('id - a string of a million characters is refused with GOSSIP_ERR_ID_TOO_LONG', () => {
    expect(gossipErrorOf(() => checkId('a'.repeat(1_000_000))).code).toBe('GOSSIP_ERR_ID_TOO_LONG');
  });

  it('id - empty is refused with GOSSIP_ERR_ID_EMPTY', () => {
    expect(gossipErrorOf(() => checkId('')).code).toBe('GOSSIP_ERR_ID_EMPTY');
    for (const [method, write] of idWriters) {
      expect(gossipErrorOf(() => write(new FrameEncoder(), '')).code, method).toBe('GOSSIP_ERR_ID_EMPTY');
    }
  });

  it.each([
    ['a lone high surrogate', '\uD800'],
    ['a lone low surrogate inside', 'a\uDC00b'],
    ['a high surrogate at the end', 'user:\uD83D'],
    ['surrogates in the wrong order', '\uDE00\uD83D'],
  ])('id - %s is refused with GOSSIP_ERR_ID_NOT_UTF8', (_what, id) => {
    expect(gossipErrorOf(() => checkId(id)).code).toBe('GOSSIP_ERR_ID_NOT_UTF8');
    for (const [method, write] of idWriters) {
      expect(gossipErrorOf(() => write(new FrameEncoder(), id)).code, method).toBe('GOSSIP_ERR_ID_NOT_UTF8');
    }
  });

  it('id - a refused id leaves nothing half-written: earlier frames stay, nothing of the bad one is pending', () => {
    const e = new FrameEncoder({ slabBytes: 64 });
    e.ping(1);
    const before = e.pendingBytes;
    for (const id of ['', 'a'.repeat(300), '\uD800']) {
      expect(() => e.publish(1, id, 1n, Buffer.alloc(100))).toThrow();
      expect(e.pendingBytes).toBe(before);
    }
    e.ping(2);
    expect(decodeChunks([e.take()])).toEqual([
      { kind: FrameKind.Ping, nonce: 1 },
      { kind: FrameKind.Ping, nonce: 2 },
    ]);
  });

  it('id - checkId refuses a value that is not a string with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    expect(gossipErrorOf(() => checkId(42 as unknown as string)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
  });
});

/*
 * Ids on the wire: the unchecked encoder writes an ASCII placeholder of the right length,
 * then the test overwrites it with the bytes under test.
 */
const badUtf8: [string, string][] = [
  ['a byte that never starts UTF-8', 'ff'],
  ['a lone continuation byte', '80'],
  ['an overlong NUL', 'c080'],
  ['an encoded surrogate (CESU-8)', 'eda080'],
  ['a truncated 3-byte sequence', 'e282'],
  ['a truncated sequence before ASCII', 'e28261'],
  ['a code point beyond U+10FFFF', 'f4908080'],
  ['a 5-byte form', 'f888808080'],
];

/** Writes a frame holding the id `placeholder`, then puts `bytes` where the placeholder was. */
function patchId(write: (e: FrameEncoder, id: string) => unknown, bytes: Buffer): Buffer {
  const placeholder = 'Q'.repeat(bytes.length);
  const e = uncheckedEncoder();
  write(e, placeholder);
  const frame = Buffer.from(e.take());
  const at = frame.indexOf(placeholder);
  expect(at).toBeGreaterThan(4);
  bytes.copy(frame, at);
  return frame;
}

describe('id on the wire', () => {
  it.each(badUtf8)('id on the wire - %s is refused with GOSSIP_ERR_ID_NOT_UTF8', (_what, hex) => {
    for (const [method, write] of idWriters) {
      const frame = patchId(write, Buffer.from(hex, 'hex'));
      expect(gossipErrorOf(() => decodeFrame(frame)).code, method).toBe('GOSSIP_ERR_ID_NOT_UTF8');
      // Split over chunks, the same frame fails the same way.
      expect(gossipErrorOf(() => decodeChunks(bytewise(frame))).code, method).toBe('GOSSIP_ERR_ID_NOT_UTF8');
    }
  });

  it('id on the wire - a real U+FFFD in an id decodes fine', () => {
    for (const id of ['\uFFFD', 'a\uFFFDb', `${'\uFFFD'.repeat(85)}a`]) {
      for (const [method, write] of idWriters) {
        const e = new FrameEncoder();
        write(e, id);
        expect(idOf(decodeFrame(e.take())), method).toBe(id);
      }
    }
  });

  it('id on the wire - a real U+FFFD next to invalid bytes is still refused', () => {
    const frame = patchId(idWriters[0]![1], Buffer.from('efbfbdff', 'hex'));
    expect(gossipErrorOf(() => decodeFrame(frame)).code).toBe('GOSSIP_ERR_ID_NOT_UTF8');
  });

  it('id on the wire - the unchecked encoder emits a 257-byte id that the decoder decodes (the server refuses it)', () => {
    const id = 'a'.repeat(MAX_ID_BYTES + 1);
    const f = decodeFrame(uncheckedEncoder().publish(5, id, 1n, Buffer.of(1)).take());
    expect(f).toMatchObject({ kind: FrameKind.Publish, reqId: 5, id });
  });

  it('id on the wire - the unchecked encoder emits an empty id that the decoder decodes', () => {
    const f = decodeFrame(uncheckedEncoder().publish(5, '', 1n, Buffer.of(1)).take());
    expect(f).toMatchObject({ kind: FrameKind.Publish, id: '' });
  });

  it('id on the wire - the unchecked encoder still refuses an id the u16 length cannot hold', () => {
    expect(gossipErrorOf(() => uncheckedEncoder().publish(5, 'a'.repeat(0x10000), 1n, Buffer.of(1))).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });
});

describe('data', () => {
  it('data - checkData accepts exactly the maximum and refuses one byte more with GOSSIP_ERR_DATA_TOO_LARGE', () => {
    for (const max of [0, 1, 1024, DEFAULT_MAX_DATA_BYTES]) {
      expect(() => checkData(new Uint8Array(max), max)).not.toThrow();
      expect(gossipErrorOf(() => checkData(new Uint8Array(max + 1), max)).code).toBe('GOSSIP_ERR_DATA_TOO_LARGE');
    }
  });

  it('data - checkData accepts empty data (a tombstone)', () => {
    expect(() => checkData(new Uint8Array(0), DEFAULT_MAX_DATA_BYTES)).not.toThrow();
  });

  it('data - checkData refuses a value that is not a Uint8Array with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    expect(gossipErrorOf(() => checkData('abc' as unknown as Uint8Array, 10)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
  });
});

describe('ts', () => {
  it('ts - checkTs accepts MIN_TS, MAX_TS and 0', () => {
    for (const ts of [MIN_TS, MAX_TS, 0n, -1n]) expect(() => checkTs(ts)).not.toThrow();
  });

  it('ts - checkTs refuses values outside int64 with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    for (const ts of [MIN_TS - 1n, MAX_TS + 1n, 2n ** 64n, -(2n ** 100n)]) {
      expect(gossipErrorOf(() => checkTs(ts)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    }
  });

  it('ts - checkTs refuses a number with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    expect(gossipErrorOf(() => checkTs(Date.now() as unknown as bigint)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
  });

  it('ts - checkMessageTs accepts int64 but -2^63, which is GOSSIP_ERR_TS_RESERVED (P4)', () => {
    for (const ts of [MIN_TS + 1n, MAX_TS, 0n, -1n]) expect(() => checkMessageTs(ts)).not.toThrow();
    expect(gossipErrorOf(() => checkMessageTs(MIN_TS)).code).toBe('GOSSIP_ERR_TS_RESERVED');
  });

  it('ts - checkMessageTs refuses values outside int64 and non-bigints with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    for (const ts of [MIN_TS - 1n, MAX_TS + 1n, 2n ** 64n, 5, Date.now(), '1', null, undefined]) {
      expect(gossipErrorOf(() => checkMessageTs(ts)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    }
    expect(gossipErrorOf(() => checkMessageTs(5, 'the ts of k')).message).toContain('the ts of k');
  });
});

/** A publish frame whose declared length (kind byte and body) is exactly `len`. */
function publishOfLength(len: number): Buffer {
  const overhead = 1 + 4 + 8 + 2 + 1; // kind, reqId, ts, id length, id 'x'
  return new FrameEncoder().publish(1, 'x', 1n, Buffer.alloc(len - overhead, 0x61)).take();
}

describe('frame length', () => {
  it('frame length - a frame of exactly maxFrameBytes decodes, whole and split', () => {
    for (const max of [100, 4096]) {
      const frame = publishOfLength(max);
      expect(frame.readUInt32BE(0)).toBe(max);
      expect(decodeFrame(frame, { maxFrameBytes: max })).toMatchObject({ kind: FrameKind.Publish, id: 'x' });
      expect(decodeChunks(bytewise(frame), max)).toHaveLength(1);
      expect(decodeChunks([frame.subarray(0, 2), frame.subarray(2, 9), frame.subarray(9)], max)).toHaveLength(1);
    }
  });

  it('frame length - a frame of exactly the default maximum decodes with the default options', () => {
    const frame = publishOfLength(DEFAULT_MAX_FRAME_BYTES);
    const f = decodeFrame(frame);
    expect(f.kind === FrameKind.Publish && f.data.length).toBe(DEFAULT_MAX_FRAME_BYTES - 16);
    expect(gossipErrorOf(() => decodeFrame(publishOfLength(DEFAULT_MAX_FRAME_BYTES + 1))).code).toBe(
      'GOSSIP_ERR_FRAME_TOO_LARGE',
    );
  });

  it('frame length - one byte over maxFrameBytes throws GOSSIP_ERR_FRAME_TOO_LARGE on its header, before allocating', () => {
    const frame = publishOfLength(101);
    const chunk = Buffer.concat([new FrameEncoder().ping(1).take(), frame.subarray(0, 20)]);
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    // The header alone, in one chunk.
    const d1 = new FrameDecoder(() => {}, { maxFrameBytes: 100 });
    expect(gossipErrorOf(() => d1.push(frame.subarray(0, 4))).code).toBe('GOSSIP_ERR_FRAME_TOO_LARGE');
    // The header byte by byte: the fourth byte fails.
    const d2 = new FrameDecoder(() => {}, { maxFrameBytes: 100 });
    for (let i = 0; i < 3; i++) d2.push(frame.subarray(i, i + 1));
    expect(gossipErrorOf(() => d2.push(frame.subarray(3, 4))).code).toBe('GOSSIP_ERR_FRAME_TOO_LARGE');
    // Header and part of the body, after a whole frame in the same chunk.
    const d3 = new FrameDecoder(() => {}, { maxFrameBytes: 100 });
    expect(gossipErrorOf(() => d3.push(chunk)).code).toBe('GOSSIP_ERR_FRAME_TOO_LARGE');
    expect(alloc).not.toHaveBeenCalled();
  });

  it('frame length - the 4-byte header of a 4 GiB frame throws at once, with nothing allocated or buffered', () => {
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    const decoder = new FrameDecoder(() => {});
    const error = gossipErrorOf(() => decoder.push(Buffer.from('ffffffff', 'hex')));
    expect(error.code).toBe('GOSSIP_ERR_FRAME_TOO_LARGE');
    expect(error.message).toContain('--max-frame');
    expect(decoder.bufferedBytes).toBe(0);
    expect(alloc).not.toHaveBeenCalled();
  });

  it('frame length - 0 throws GOSSIP_ERR_MALFORMED_FRAME, whole and split', () => {
    expect(gossipErrorOf(() => decodeFrame(Buffer.from('00000000', 'hex'))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    const decoder = new FrameDecoder(() => {});
    decoder.push(Buffer.from('0000', 'hex'));
    expect(gossipErrorOf(() => decoder.push(Buffer.from('0000', 'hex'))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('frame length - decodeFrame refuses bytes that hold two frames', () => {
    const two = new FrameEncoder().ping(1).ping(2).take();
    expect(gossipErrorOf(() => decodeFrame(two)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it.each([
    ['ping', (e: FrameEncoder) => e.ping(1)],
    ['pong', (e: FrameEncoder) => e.pong(1, 2n)],
    ['replay-done', (e: FrameEncoder) => e.replayDone(1, 2n, true)],
    ['resync', (e: FrameEncoder) => e.resync(1, 2n)],
  ])('frame length - a %s body one byte short or one byte long is malformed', (_what, write) => {
    const e = new FrameEncoder();
    write(e);
    const frame = e.take();
    for (const wrong of [frame.subarray(0, -1), Buffer.concat([frame, Buffer.of(0)])]) {
      const copy = Buffer.from(wrong);
      copy.writeUInt32BE(copy.length - 4, 0);
      expect(gossipErrorOf(() => decodeFrame(copy)).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    }
  });
});

describe('frame kind', () => {
  it.each([0x00, 0x12, 0x7f, 0x80, 0xff])('frame kind - 0x%s is refused with GOSSIP_ERR_UNKNOWN_FRAME', (kind) => {
    const frame = Buffer.from([0, 0, 0, 5, kind, 0, 0, 0, 0]);
    expect(gossipErrorOf(() => decodeFrame(frame)).code).toBe('GOSSIP_ERR_UNKNOWN_FRAME');
  });

  it('frame kind - an unknown kind is refused even with an empty body', () => {
    expect(gossipErrorOf(() => decodeFrame(Buffer.from('00000001ee', 'hex'))).code).toBe('GOSSIP_ERR_UNKNOWN_FRAME');
  });
});

describe('hello magic', () => {
  it.each([0, 1, 2, 3])('hello magic - a wrong byte %i of the magic is refused with GOSSIP_ERR_BAD_MAGIC', (i) => {
    const frame = Buffer.from(new FrameEncoder().hello({ name: 'n' }).take());
    frame[5 + i] = (frame[5 + i] as number) ^ 0x20;
    expect(gossipErrorOf(() => decodeFrame(frame)).code).toBe('GOSSIP_ERR_BAD_MAGIC');
  });

  it('hello magic - the original protocol\'s ASCII "GOSSIP" is refused with GOSSIP_ERR_BAD_MAGIC', () => {
    const body = Buffer.concat([Buffer.from('GOSSIP1\n', 'ascii'), Buffer.alloc(30)]);
    const frame = Buffer.concat([Buffer.alloc(4), Buffer.of(FrameKind.Hello), body]);
    frame.writeUInt32BE(frame.length - 4, 0);
    expect(gossipErrorOf(() => decodeFrame(frame)).code).toBe('GOSSIP_ERR_BAD_MAGIC');
  });

  it('hello magic - a hello too short for its fixed fields is malformed', () => {
    expect(gossipErrorOf(() => decodeFrame(Buffer.from('000000050189475350', 'hex'))).code).toBe(
      'GOSSIP_ERR_MALFORMED_FRAME',
    );
  });
});

describe('decoder end', () => {
  it('decoder end - inside a length header throws GOSSIP_ERR_MALFORMED_FRAME', () => {
    const decoder = new FrameDecoder(() => {});
    decoder.push(Buffer.from('0000', 'hex'));
    expect(decoder.bufferedBytes).toBe(2);
    expect(gossipErrorOf(() => decoder.end()).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('decoder end - inside a frame body throws GOSSIP_ERR_MALFORMED_FRAME', () => {
    const frame = new FrameEncoder().publish(1, 'k', 1n, Buffer.alloc(10)).take();
    for (const cut of [5, 10, frame.length - 1]) {
      const decoder = new FrameDecoder(() => {});
      decoder.push(frame.subarray(0, cut));
      expect(gossipErrorOf(() => decoder.end()).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
    }
  });

  it('decoder end - at a frame boundary succeeds, and may be called again', () => {
    const seen: unknown[] = [];
    const decoder = new FrameDecoder((f) => seen.push(f));
    decoder.end();
    decoder.push(new FrameEncoder().ping(9).take());
    decoder.end();
    decoder.end();
    expect(seen).toEqual([{ kind: FrameKind.Ping, nonce: 9 }]);
  });
});

describe('fetch', () => {
  it('fetch - more than 65535 ids or entries is refused with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    expect(MAX_FETCH_IDS).toBe(0xffff); // the u16 count of Q1
    const ids = Array.from({ length: MAX_FETCH_IDS + 1 }, () => 'a');
    expect(gossipErrorOf(() => new FrameEncoder().fetch(1, ids)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
    const entries = ids.map((id) => ({ id, found: false as const }));
    expect(gossipErrorOf(() => new FrameEncoder().fetchResult(1, false, entries)).code).toBe(
      'GOSSIP_ERR_INVALID_ARGUMENT',
    );
  });

  it('fetch - 65535 ids round-trip', () => {
    const ids = Array.from({ length: MAX_FETCH_IDS }, (_, i) => `id${i}`);
    const f = decodeFrame(new FrameEncoder().fetch(1, ids).take());
    expect(f.kind === FrameKind.Fetch && f.ids).toEqual(ids);
  });
});

describe('welcome', () => {
  const welcome = (maxFetchIds: number) =>
    new FrameEncoder().welcome({
      epoch: '0123456789abcdef0123456789abcdef',
      newestTs: MIN_TS,
      horizon: null,
      maxIdBytes: MAX_ID_BYTES,
      maxDataBytes: DEFAULT_MAX_DATA_BYTES,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      maxFetchIds,
    });

  it.each([
    0,
    -1,
    1.5,
    Number.NaN,
  ])('welcome - the encoder refuses a maxFetchIds of %s with GOSSIP_ERR_INVALID_ARGUMENT (W1: an integer of at least 1)', (n) => {
    expect(gossipErrorOf(() => welcome(n)).code).toBe('GOSSIP_ERR_INVALID_ARGUMENT');
  });

  it.each([1, 10_000, 65_535, 1_000_000])('welcome - a maxFetchIds of %i round-trips', (n) => {
    const f = decodeFrame(welcome(n).take());
    expect(f).toMatchObject({ kind: FrameKind.Welcome, maxFetchIds: n });
  });
});
