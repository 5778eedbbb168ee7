import { decodeFrame, FrameKind, MAX_EXTENSION_DEPTH } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import { gossipErrorOf } from './support.js';

// The extension of a hello or welcome (docs/PROTOCOL.md, H1): what is one msgpack map of
// the spec's own types, and what is malformed, decided from the bytes.

/** A hello (live only, no epoch) whose extension is `ext` (hex). */
function helloWith(ext: string): Buffer {
  const body = Buffer.concat([
    Buffer.of(FrameKind.Hello, 0x89, 0x47, 0x53, 0x50, 1, 0),
    Buffer.alloc(8 + 16),
    Buffer.from(ext, 'hex'),
  ]);
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length);
  body.copy(frame, 4);
  return frame;
}

/** `n` arrays, one inside the other, around a nil, as the value of key "x". */
const nested = (n: number) => `81a178${'91'.repeat(n)}c0`;

const accepted: [string, string][] = [
  ['the empty map', '80'],
  ['a name', '81a46e616d65a3617070'],
  [
    'every scalar type under unknown keys',
    '86a161c0a162c3a163cd1234a164cb3ff8000000000000a165c40201' + '02a166d3ffffffffffffffff',
  ],
  ['arrays and maps as values', '82a1789201a178a17981a17ac0'],
  ['integer, nil, boolean and float keys', '8401c0c001c301ca3fc0000001'],
  ['a timestamp value (fixext 4, type -1)', '81a174d6ff00000001'],
  ['a timestamp value (fixext 8)', '81a174d7ff0000000000000001'],
  ['a timestamp value (ext 8 of 12 bytes)', '81a174c70cff000000000000000000000001'],
  [`arrays ${MAX_EXTENSION_DEPTH - 1} deep inside the map`, nested(MAX_EXTENSION_DEPTH - 1)],
  ['a map 16 header', 'de0001a16e01'],
  ['a str 8 key', '81d90178c0'],
];

const refused: [string, string][] = [
  ['nil, not a map', 'c0'],
  ['an array, not a map', '90'],
  ['a binary, not a map', 'c40100'],
  ['a map cut short', '81'],
  ['a map and a trailing byte', '8000'],
  ['a string cut short', '81a3616263a56e'],
  ['the never-used byte c1', '81a178c1'],
  ['a binary key', '81c4016b01'],
  ['an array key', '81910101'],
  ['a map key', '818101010101'],
  ['a timestamp key', '81d6ff0000000101'],
  ['an extension type other than the timestamp', '81a178d40501'],
  ['a timestamp of a wrong length', '81a178d5ff0001'],
  [`arrays ${MAX_EXTENSION_DEPTH} deep inside the map`, nested(MAX_EXTENSION_DEPTH)],
  ['arrays 16,000 deep', nested(16_000)],
  ['a map 32 claiming four billion entries', 'dfffffffff01c0'],
];

describe('extension', () => {
  it.each(accepted)('extension - %s is accepted', (_name, ext) => {
    expect(decodeFrame(helloWith(ext)).kind).toBe(FrameKind.Hello);
  });

  it.each(refused)('extension - %s is GOSSIP_ERR_MALFORMED_FRAME', (_name, ext) => {
    expect(gossipErrorOf(() => decodeFrame(helloWith(ext))).code).toBe('GOSSIP_ERR_MALFORMED_FRAME');
  });
});
