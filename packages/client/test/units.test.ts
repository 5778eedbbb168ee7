import * as protocol from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import {
  bytesCodec,
  ERROR_CODES,
  type ErrorCode,
  exponentialBackoff,
  GossipError,
  InvalidIdError,
  jsonCodec,
  msgpackCodec,
  parseAddress,
  utf8Codec,
} from '../src/index.js';
import { RingQueue } from '../src/queue.js';
import { clearTimer, setTimer, setUnrefTimer } from '../src/timers.js';

describe('address', () => {
  it('address - parses host:port, schemes, IPv6 and the default port', () => {
    expect(parseAddress('example.org:9000')).toEqual({ host: 'example.org', port: 9000, tls: false });
    expect(parseAddress('gossip://h:1')).toEqual({ host: 'h', port: 1, tls: false });
    expect(parseAddress('gossips://h:2/')).toEqual({ host: 'h', port: 2, tls: true });
    expect(parseAddress('[::1]:7')).toEqual({ host: '::1', port: 7, tls: false });
    expect(parseAddress('localhost')).toEqual({ host: 'localhost', port: 7420, tls: false });
  });

  it('address - refuses other schemes and bad ports with a coded error', () => {
    for (const bad of ['http://h:1', 'h:0', 'h:70000', 'h:x', '']) {
      expect(() => parseAddress(bad)).toThrow(expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }));
    }
  });
});

describe('backoff', () => {
  it('backoff - grows exponentially up to the cap, with full jitter', () => {
    const top = exponentialBackoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    expect([1, 2, 3, 4, 5, 10].map(top)).toEqual([100, 200, 400, 800, 1000, 1000]);
    const bottom = exponentialBackoff({ random: () => 0 });
    expect(bottom(7)).toBe(0);
    const half = exponentialBackoff({ initialMs: 100, random: () => 0.5 });
    expect(half(3)).toBe(200);
  });

  it('backoff - the default never gives up: a connected client reconnects until close()', () => {
    const s = exponentialBackoff();
    for (const attempt of [1, 2, 10, 100, 10_000, 1_000_000]) {
      const delay = s(attempt);
      expect(delay).not.toBeNull();
      expect(delay).toBeLessThanOrEqual(10_000);
    }
  });

  it('backoff - stops after maxAttempts', () => {
    const s = exponentialBackoff({ maxAttempts: 2, random: () => 1 });
    expect(s(2)).not.toBeNull();
    expect(s(3)).toBeNull();
  });
});

describe('codecs', () => {
  it('codecs - round-trip their values', () => {
    expect(Buffer.from(bytesCodec.decode(bytesCodec.encode(Buffer.from([1, 2, 3]))))).toEqual(Buffer.from([1, 2, 3]));
    expect(utf8Codec.decode(utf8Codec.encode('héllo ✓'))).toBe('héllo ✓');
    const json = jsonCodec<{ a: number[]; b: string | null }>();
    expect(json.decode(json.encode({ a: [1, 2], b: null }))).toEqual({ a: [1, 2], b: null });
    const mp = msgpackCodec<unknown>();
    const value = {
      n: 1,
      big: 2n ** 60n,
      s: 'x',
      nested: [true, null, { d: new Date(0) }],
      bytes: new Uint8Array([9]),
    };
    expect(mp.decode(mp.encode(value))).toEqual(value);
  });

  it('codecs - bytes decode returns a copy that later writes to the source cannot change', () => {
    const src = Buffer.from('abc');
    const out = bytesCodec.decode(src);
    src[0] = 0x7a;
    expect(Buffer.from(out).toString()).toBe('abc');
  });

  it('codecs - a bad payload throws instead of returning garbage', () => {
    expect(() => utf8Codec.decode(Buffer.from([0xff, 0xfe]))).toThrow();
    expect(() => jsonCodec().decode(Buffer.from('{nope'))).toThrow();
    expect(() => msgpackCodec().decode(Buffer.from([0x92, 0x01]))).toThrow();
  });

  it('codecs - refuse values of the wrong type with a coded error', () => {
    expect(() => utf8Codec.encode(5 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
    expect(() => bytesCodec.encode('x' as unknown as Uint8Array)).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
    expect(() => jsonCodec().encode(undefined)).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('queue', () => {
  it('queue - keeps FIFO order across growth and wrap-around', () => {
    const q = new RingQueue<number>();
    const model: number[] = [];
    let next = 0;
    for (let round = 0; round < 200; round++) {
      const pushes = (round * 7) % 23;
      for (let i = 0; i < pushes; i++) {
        q.push(next);
        model.push(next++);
      }
      const shifts = (round * 5) % 19;
      for (let i = 0; i < shifts; i++) expect(q.shift()).toBe(model.shift());
      expect(q.size).toBe(model.length);
    }
    expect(q.drain()).toEqual(model);
    expect(q.shift()).toBeUndefined();
  });

  it('queue - removes matching items and keeps the others in order', () => {
    const q = new RingQueue<number>();
    for (let i = 0; i < 10; i++) q.push(i);
    expect(q.remove((x) => x % 3 === 0)).toEqual([0, 3, 6, 9]);
    expect(q.drain()).toEqual([1, 2, 4, 5, 7, 8]);
  });
});

describe('timers', () => {
  it('timers - setTimer keeps the process alive (the reconnect delay), setUnrefTimer does not (request deadlines)', () => {
    const kept = setTimer(() => undefined, 60_000);
    const weak = setUnrefTimer(() => undefined, 60_000);
    try {
      expect(kept.hasRef()).toBe(true);
      expect(weak.hasRef()).toBe(false);
    } finally {
      clearTimer(kept);
      clearTimer(weak);
    }
  });
});

describe('errors', () => {
  it('errors - the client exports the protocol error classes and codes, so users need not depend on it', () => {
    expect(GossipError).toBe(protocol.GossipError);
    expect(InvalidIdError).toBe(protocol.InvalidIdError);
    expect(ERROR_CODES).toBe(protocol.ERROR_CODES);
    const code: ErrorCode = 'GOSSIP_ERR_NOT_GOSSIP_SERVER';
    expect(ERROR_CODES[code]).toBe(113);
    expect(new protocol.TsAheadError('x')).toBeInstanceOf(GossipError);
  });
});
