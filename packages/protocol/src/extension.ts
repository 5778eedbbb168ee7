import { isUtf8 } from 'node:buffer';
import { MalformedFrameError } from './errors.js';

/** Arrays and maps inside a hello's or welcome's extension, at most, the map itself counted (H1). */
export const MAX_EXTENSION_DEPTH = 32;

/** The msgpack timestamp, the one extension type the msgpack spec defines itself (−1). */
const TIMESTAMP_TYPE = 0xff;

/**
 * Checks that `buf[start..end)` is what H1 allows as an extension: exactly one msgpack
 * map, of the msgpack spec's own types (nil, booleans, integers, floats, strings,
 * binaries, arrays, maps, the timestamp), whose map keys are scalars (not binaries,
 * arrays, maps or timestamps), nested at most `MAX_EXTENSION_DEPTH` deep. Anything else
 * is `GOSSIP_ERR_MALFORMED_FRAME`, decided here from the bytes alone, so that every
 * implementation can tell the same extensions apart, whatever its msgpack library reads.
 */
export function checkExtension(buf: Buffer, start: number, end: number, what: string): void {
  const first = buf[start] as number;
  const isMap = (first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf;
  if (!isMap) throw new MalformedFrameError(`${what} extension is not a msgpack map`);
  const after = skip(buf, start, end, 1, false, what);
  if (after !== end) throw new MalformedFrameError(`${what} extension has ${end - after} bytes after its map`);
}

/** Skips the value at `p` (a map key when `key`); returns where the next one starts. */
function skip(buf: Buffer, p: number, end: number, depth: number, key: boolean, what: string): number {
  const need = (n: number) => {
    if (p + n > end) throw new MalformedFrameError(`${what} extension ends inside a msgpack value`);
  };
  need(1);
  const b = buf[p] as number;
  if (b <= 0x7f || b >= 0xe0) return p + 1; // positive and negative fixint
  if (b <= 0x8f) return items(buf, p + 1, end, (b & 0x0f) * 2, depth, key, true, what);
  if (b <= 0x9f) return items(buf, p + 1, end, b & 0x0f, depth, key, false, what);
  if (b <= 0xbf) return text(p + 1, b & 0x1f);
  switch (b) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return p + 1;
    case 0xc4: // bin 8, 16, 32
    case 0xc5:
    case 0xc6:
      if (key) throw new MalformedFrameError(`${what} extension has a binary map key`);
      return bytes(p + 1 + (1 << (b - 0xc4)), length(1 << (b - 0xc4)));
    case 0xc7: // ext 8, 16, 32
    case 0xc8:
    case 0xc9: {
      const n = length(1 << (b - 0xc7));
      return timestamp(p + 1 + (1 << (b - 0xc7)), n);
    }
    case 0xca: // float 32, 64
      return bytes(p + 1, 4);
    case 0xcb:
      return bytes(p + 1, 8);
    case 0xcc: // uint 8 to 64
    case 0xd0: // int 8 to 64
      return bytes(p + 1, 1);
    case 0xcd:
    case 0xd1:
      return bytes(p + 1, 2);
    case 0xce:
    case 0xd2:
      return bytes(p + 1, 4);
    case 0xcf:
    case 0xd3:
      return bytes(p + 1, 8);
    case 0xd4: // fixext 1, 2, 4, 8, 16
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return timestamp(p + 1, 1 << (b - 0xd4));
    case 0xd9: // str 8, 16, 32
    case 0xda:
    case 0xdb:
      return text(p + 1 + (1 << (b - 0xd9)), length(1 << (b - 0xd9)));
    case 0xdc: // array 16, 32
    case 0xdd:
      return items(buf, p + 1 + (2 << (b - 0xdc)), end, length(2 << (b - 0xdc)), depth, key, false, what);
    case 0xde: // map 16, 32
    case 0xdf:
      return items(buf, p + 1 + (2 << (b - 0xde)), end, length(2 << (b - 0xde)) * 2, depth, key, true, what);
    default: // 0xc1: never used
      throw new MalformedFrameError(`${what} extension holds the never-used msgpack byte c1`);
  }

  /** The big-endian length of `size` bytes right after the type byte. */
  function length(size: number): number {
    need(1 + size);
    return size === 1 ? (buf[p + 1] as number) : size === 2 ? buf.readUInt16BE(p + 1) : buf.readUInt32BE(p + 1);
  }

  /** `n` bytes of payload at `at`. */
  function bytes(at: number, n: number): number {
    if (at + n > end) throw new MalformedFrameError(`${what} extension ends inside a msgpack value`);
    return at + n;
  }

  /** A string's `n` bytes at `at`: UTF-8, as msgpack's str type is. */
  function text(at: number, n: number): number {
    const after = bytes(at, n);
    if (!isUtf8(buf.subarray(at, after)))
      throw new MalformedFrameError(`${what} extension holds a string that is not UTF-8`);
    return after;
  }

  /** An extension value of `n` data bytes whose type byte is at `at`: only the timestamp, only as a value. */
  function timestamp(at: number, n: number): number {
    need(at - p + 1);
    if (key || buf[at] !== TIMESTAMP_TYPE || (n !== 4 && n !== 8 && n !== 12)) {
      throw new MalformedFrameError(
        `${what} extension holds a msgpack extension type other than the timestamp, or one as a map key`,
      );
    }
    return bytes(at + 1, n);
  }
}

/** Skips `count` values after a container's header at `p`; for a map every other one is a key. */
function items(
  buf: Buffer,
  p: number,
  end: number,
  count: number,
  depth: number,
  key: boolean,
  map: boolean,
  what: string,
): number {
  if (p > end) throw new MalformedFrameError(`${what} extension ends inside a msgpack value`);
  if (key) throw new MalformedFrameError(`${what} extension has an array or a map as a map key`);
  if (depth > MAX_EXTENSION_DEPTH) {
    throw new MalformedFrameError(`${what} extension nests deeper than ${MAX_EXTENSION_DEPTH} arrays and maps`);
  }
  let q = p;
  // Each value is at least one byte: a count larger than what is left fails on the way.
  for (let i = 0; i < count; i++) q = skip(buf, q, end, depth + 1, map && i % 2 === 0, what);
  return q;
}
