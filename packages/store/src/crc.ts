import { crc32 } from 'node:zlib';

/**
 * CRC-32, zlib's polynomial (reflected 0xedb88320): slicing-by-8 tables, table k
 * (entries 256k..256k+255) the CRC of a byte followed by k zero bytes.
 */
export const CRC_TABLE = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n] as number;
    for (let k = 1; k < 8; k++) {
      c = (t[c & 0xff] as number) ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();
const JS_CRC_MAX = 1024;

/**
 * CRC-32 of `buf[start..end)`, the same value as `zlib.crc32`. Records are mostly
 * small, and for them a table-driven loop costs less than a native call plus the view
 * it needs; large ones go to zlib.
 */
export function checksum(buf: Uint8Array, start: number, end: number): number {
  if (end - start > JS_CRC_MAX) return crc32(buf.subarray(start, end));
  const t = CRC_TABLE;
  let c = -1;
  let s = start;
  while (end - s >= 8) {
    c ^=
      (buf[s] as number) |
      ((buf[s + 1] as number) << 8) |
      ((buf[s + 2] as number) << 16) |
      ((buf[s + 3] as number) << 24);
    c =
      (t[1792 + (c & 0xff)] as number) ^
      (t[1536 + ((c >>> 8) & 0xff)] as number) ^
      (t[1280 + ((c >>> 16) & 0xff)] as number) ^
      (t[1024 + (c >>> 24)] as number) ^
      (t[768 + (buf[s + 4] as number)] as number) ^
      (t[512 + (buf[s + 5] as number)] as number) ^
      (t[256 + (buf[s + 6] as number)] as number) ^
      (t[buf[s + 7] as number] as number);
    s += 8;
  }
  while (s < end) c = (t[(c ^ (buf[s++] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
