import { readFileSync } from 'node:fs';
import {
  BadMagicError,
  codeFromWire,
  DataTooLargeError,
  ERROR_CODES,
  type ErrorCode,
  errorFromCode,
  FrameTooLargeError,
  GossipError,
  InvalidArgumentError,
  InvalidIdError,
  MalformedFrameError,
  TsAheadError,
  UnknownFrameError,
  UnsupportedVersionError,
  wireCode,
} from '@gossip/protocol';
import { describe, expect, it } from 'vitest';

const protocolDoc = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const codes = Object.keys(ERROR_CODES) as ErrorCode[];

/** Codes below this number cross the wire; the rest are local (rule E1). */
const FIRST_LOCAL = 100;

/** The rows of the E1 table: `| \`CODE\` | number | scope | ... |`. */
const documentedRows = new Map(
  [...protocolDoc.matchAll(/^\| `(GOSSIP_ERR_[A-Z0-9_]+)` \| (\d+) \| (wire|local) \|/gm)].map((m) => [
    m[1] as string,
    { wire: Number(m[2]), scope: m[3] as string },
  ]),
);

describe('error codes', () => {
  it('errors - the registry is not empty and every code is named GOSSIP_ERR_*', () => {
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) expect(code).toMatch(/^GOSSIP_ERR_[A-Z0-9_]+$/);
  });

  it.each(codes)('docs - PROTOCOL.md mentions %s', (code) => {
    expect(protocolDoc).toContain(code);
  });

  it.each(codes)('docs - the E1 table lists %s with its wire number and scope', (code) => {
    const row = documentedRows.get(code);
    expect(row, `${code} has no row in the E1 table of docs/PROTOCOL.md`).toBeDefined();
    expect(row?.wire).toBe(ERROR_CODES[code]);
    expect(row?.scope).toBe(ERROR_CODES[code] < FIRST_LOCAL ? 'wire' : 'local');
  });

  it('docs - the E1 table lists no code the registry lacks', () => {
    for (const code of documentedRows.keys()) expect(Object.hasOwn(ERROR_CODES, code), code).toBe(true);
  });

  it('errors - wire numbers are unique', () => {
    const numbers = codes.map((code) => ERROR_CODES[code]);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('errors - wire numbers fit the u16 code field', () => {
    for (const code of codes) {
      const n = ERROR_CODES[code];
      expect(Number.isInteger(n) && n >= 0 && n <= 0xffff, code).toBe(true);
    }
  });

  it.each(codes)('errors - codeFromWire(wireCode(%s)) round-trips', (code) => {
    expect(wireCode(code)).toBe(ERROR_CODES[code]);
    expect(codeFromWire(wireCode(code))).toBe(code);
  });

  it('errors - an unknown wire number maps to GOSSIP_ERR_UNKNOWN', () => {
    const used = new Set<number>(Object.values(ERROR_CODES));
    const nextWire = Math.max(...[...used].filter((n) => n < FIRST_LOCAL)) + 1;
    for (const n of [nextWire, 99, 999, 0xffff]) {
      expect(used.has(n)).toBe(false);
      expect(codeFromWire(n)).toBe('GOSSIP_ERR_UNKNOWN');
    }
  });

  it.each(codes)('errors - errorFromCode(%s) builds a GossipError with that code', (code) => {
    const error = errorFromCode(code, 'from a peer');
    expect(error).toBeInstanceOf(GossipError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.message).toBe('from a peer');
    expect(error.name).toBe(error.constructor.name);
  });

  it.each([
    ['GOSSIP_ERR_FRAME_TOO_LARGE', FrameTooLargeError],
    ['GOSSIP_ERR_MALFORMED_FRAME', MalformedFrameError],
    ['GOSSIP_ERR_UNKNOWN_FRAME', UnknownFrameError],
    ['GOSSIP_ERR_BAD_MAGIC', BadMagicError],
    ['GOSSIP_ERR_UNSUPPORTED_VERSION', UnsupportedVersionError],
    ['GOSSIP_ERR_ID_EMPTY', InvalidIdError],
    ['GOSSIP_ERR_ID_TOO_LONG', InvalidIdError],
    ['GOSSIP_ERR_ID_NOT_UTF8', InvalidIdError],
    ['GOSSIP_ERR_DATA_TOO_LARGE', DataTooLargeError],
    ['GOSSIP_ERR_TS_AHEAD', TsAheadError],
    ['GOSSIP_ERR_INVALID_ARGUMENT', InvalidArgumentError],
  ] as const)('errors - errorFromCode(%s) builds its subclass', (code, subclass) => {
    const error = errorFromCode(code, 'x');
    expect(error).toBeInstanceOf(subclass);
    expect(error.code).toBe(code);
    expect(error.name).toBe(subclass.name);
  });

  it('errors - errorFromCode builds a plain GossipError for codes without a subclass', () => {
    for (const code of ['GOSSIP_ERR_UNKNOWN', 'GOSSIP_ERR_SLOW_CONSUMER', 'GOSSIP_ERR_STORE_CORRUPT'] as const) {
      const error = errorFromCode(code, 'x');
      expect(error.constructor).toBe(GossipError);
      expect(error.name).toBe('GossipError');
    }
  });

  it('errors - a cause passed to a subclass is kept', () => {
    const cause = new Error('root');
    expect(new MalformedFrameError('bad', { cause }).cause).toBe(cause);
  });
});
