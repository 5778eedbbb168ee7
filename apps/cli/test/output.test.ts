import { MAX_TS, MIN_TS } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import { humanId, humanLine, humanValue, isoTime, jsonData } from '../src/output.js';

describe('cli output', () => {
  it('cli output - isoTime keeps all nine digits of the fraction, before 1970 too', () => {
    expect(isoTime(0n)).toBe('1970-01-01T00:00:00.000000000Z');
    expect(isoTime(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
    expect(isoTime(-1n)).toBe('1969-12-31T23:59:59.999999999Z');
    expect(isoTime(-1_000_000n)).toBe('1969-12-31T23:59:59.999000000Z');
    // every signed 64-bit ts has a time
    expect(isoTime(MAX_TS)).toBe('2262-04-11T23:47:16.854775807Z');
    expect(isoTime(MIN_TS)).toBe('1677-09-21T00:12:43.145224192Z');
  });

  it('cli output - an id reads as one word, or as a JSON string when it would not', () => {
    expect(humanId('flags/checkout')).toBe('flags/checkout');
    expect(humanId('a b')).toBe('"a b"');
    expect(humanId('say "hi"')).toBe('"say \\"hi\\""');
    expect(humanId('line\nbreak')).toBe('"line\\nbreak"');
    expect(humanId('')).toBe('""');
    expect(humanId('é/ü')).toBe('é/ü');
    // what a terminal would act on, or show reordered, is escaped
    expect(humanId('a\u009b2Jb')).toBe('"a\\u009b2Jb"');
    expect(humanId('x\u202ey')).toBe('"x\\u202ey"');
    expect(humanId('del\u007f')).toBe('"del\\u007f"');
    expect(humanId('a\u200bb')).toBe('"a\\u200bb"');
  });

  it('cli output - a value is a JSON string, base64:… or (deleted), never one for another', () => {
    expect(humanValue(Buffer.from('on'))).toBe('"on"');
    expect(humanValue(Buffer.from('(deleted)'))).toBe('"(deleted)"');
    expect(humanValue(Buffer.from('two\nlines'))).toBe('"two\\nlines"');
    expect(humanValue(Buffer.from([0xff, 0x00]))).toBe('base64:/wA=');
    expect(humanValue(Buffer.from('base64:/wA='))).toBe('"base64:/wA="');
    expect(humanValue(new Uint8Array(0))).toBe('(deleted)');
    expect(humanValue(undefined)).toBe('(deleted)');
    expect(humanValue(Buffer.from('\u001b[31mred'))).toBe('"\\u001b[31mred"');
    expect(humanValue(Buffer.from('a\u202eb'))).toBe('"a\\u202eb"');
    // a leading byte order mark is part of the value, shown escaped
    expect(humanValue(Buffer.from([0xef, 0xbb, 0xbf, 0x61]))).toBe('"\\ufeffa"');
    // what hides or looks like something else: zero-width, no-break space, separators, an Arabic mark, a tag
    expect(humanValue(Buffer.from('a\u200bb\u00a0c\u2028d\u061ce'))).toBe('"a\\u200bb\\u00a0c\\u2028d\\u061ce"');
    expect(humanValue(Buffer.from('x\u{e0041}'))).toBe('"x\\udb40\\udc41"');
    expect(humanValue(Buffer.from('a b'))).toBe('"a b"');
    // the joiners of one emoji and of Persian words, and a subdivision flag, stay as they are
    const kept = '👨\u200d👩\u200d👧 می\u200cخواهم \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}';
    expect(humanValue(Buffer.from(kept))).toBe(JSON.stringify(kept));
    expect(humanId('👨\u200d👩')).toBe('👨\u200d👩');
    expect(humanLine('a b', 5n, Buffer.from('v'), true)).toBe('1970-01-01T00:00:00.000000005Z "a b" "v" (transient)\n');
  });

  it('cli output - JSON carries UTF-8 as value and anything else as base64, from a view into a larger buffer', () => {
    const block = Buffer.from([0x61, 0xff, 0x62, 0x63]);
    expect(jsonData(block.subarray(2))).toEqual({ value: 'bc' });
    expect(jsonData(block.subarray(1, 3))).toEqual({ base64: Buffer.from([0xff, 0x62]).toString('base64') });
  });
});
