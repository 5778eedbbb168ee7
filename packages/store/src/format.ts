import { crc32 } from 'node:zlib';
import { MAX_ID_BYTES } from '@gossip/protocol';
import { checksum } from './crc.js';

/*
 * On-disk layout (docs/STORAGE.md). All integers big-endian.
 *
 * Segment file: header, then records back to back.
 *   header (16 bytes): magic "GSPL" (47 53 50 4c), u16 format version, u16 reserved (0),
 *     u64 cleanAsOf: 0 for a segment appended to; for a compaction output, the lowest
 *     sequence number that was not yet sealed when the compaction started (every
 *     record of segments below it was committed, so the output holds none of their
 *     superseded versions)
 *   record: u32 crc, u32 bodyLen, body (offsets: RECORD below)
 *   body:   u8 flags (0), i64 ts, u16 idLen, id (UTF-8), data (the rest of the body):
 *           byte for byte the body of a message frame (docs/STORAGE.md, S10)
 *   crc:    CRC-32 (zlib's polynomial) of everything after it: bodyLen and body
 */

export const SEGMENT_MAGIC = Buffer.from('GSPL', 'latin1');
export const FORMAT_VERSION = 1;

/** Where a segment header's fields start (docs/STORAGE.md, S2). */
export const SEGMENT_HEADER = {
  magic: 0,
  version: 4,
  reserved: 6,
  cleanAsOf: 8,
  /** The first record starts here. */
  end: 16,
} as const;
export const SEGMENT_HEADER_BYTES: number = SEGMENT_HEADER.end;

/**
 * Where a record's fields start, counted from its first byte (docs/STORAGE.md, S2):
 * the one place these offsets are written down. From `flags` on, a record is a message
 * frame's body (S10), so `RECORD.flags` is also where that body starts.
 */
export const RECORD = {
  /** u32: CRC-32 of every byte after it. */
  crc: 0,
  /** u32: bytes after this field. */
  bodyLen: 4,
  /** u8, 0: the body starts here. */
  flags: 8,
  /** i64 */
  ts: 9,
  /** u16 */
  idLen: 17,
  /** idLen bytes of UTF-8, then the data. */
  id: 19,
} as const;
/** crc + bodyLen: the bytes before the body. */
export const RECORD_PREFIX_BYTES: number = RECORD.flags;
/** flags + ts + idLen: the body's fixed fields. */
export const RECORD_FIXED_BODY_BYTES = RECORD.id - RECORD.flags;
export const RECORD_OVERHEAD_BYTES: number = RECORD.id;
/** No record body is ever longer: recovery treats a longer declared length as corruption. */
export const MAX_RECORD_BODY_BYTES = 1024 * 1024 * 1024;

export function segmentHeader(cleanAsOf = 0): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, SEGMENT_HEADER.magic);
  b.writeUInt16BE(FORMAT_VERSION, SEGMENT_HEADER.version);
  b.writeBigUInt64BE(BigInt(cleanAsOf), SEGMENT_HEADER.cleanAsOf);
  return b;
}

export function headerCleanAsOf(b: Buffer): number {
  return Number(b.readBigUInt64BE(SEGMENT_HEADER.cleanAsOf));
}

/** Whether `b` starts with a segment header of a version this code reads. */
export function checkSegmentHeader(b: Buffer): 'ok' | 'short' | 'bad-magic' | 'bad-version' {
  if (b.length < SEGMENT_HEADER_BYTES) return 'short';
  if (!b.subarray(SEGMENT_HEADER.magic, SEGMENT_HEADER.version).equals(SEGMENT_MAGIC)) return 'bad-magic';
  if (b.readUInt16BE(SEGMENT_HEADER.version) !== FORMAT_VERSION) return 'bad-version';
  return 'ok';
}

/**
 * Writes a record at `at` in `target`. With `inline`, the data is copied in too and
 * `target` must have room for the whole record; without, only the prefix, fixed fields
 * and id are written (room for `RECORD_OVERHEAD_BYTES + idBytes`) and the caller
 * writes `data` right after them, as a separate write buffer. The CRC covers the data
 * either way. Returns the offset just past what was written. The body it writes is a
 * message frame's body with flags 0 (docs/STORAGE.md, S10).
 */
export function writeRecord(
  target: Buffer,
  view: DataView,
  at: number,
  ts: bigint,
  id: string,
  idBytes: number,
  data: Uint8Array,
  inline: boolean,
): number {
  const bodyLen = RECORD_FIXED_BODY_BYTES + idBytes + data.byteLength;
  view.setUint32(at + RECORD.bodyLen, bodyLen);
  target[at + RECORD.flags] = 0;
  view.setBigInt64(at + RECORD.ts, ts);
  view.setUint16(at + RECORD.idLen, idBytes);
  const idAt = at + RECORD.id;
  if (idBytes === id.length) {
    // ASCII (byte length equals UTF-16 length only then): a loop beats a native call for short ids.
    for (let i = 0; i < idBytes; i++) target[idAt + i] = id.charCodeAt(i);
  } else {
    target.write(id, idAt, idBytes, 'utf8');
  }
  let end = idAt + idBytes;
  if (inline) {
    target.set(data, end);
    end += data.byteLength;
    view.setUint32(at + RECORD.crc, checksum(target, at + RECORD.bodyLen, end));
  } else {
    view.setUint32(at + RECORD.crc, crc32(data, crc32(target.subarray(at + RECORD.bodyLen, end))));
  }
  return end;
}

/** A record read back: its fields, `data` a view of `buf`. */
export interface ParsedRecord {
  id: string;
  ts: bigint;
  data: Buffer;
}

/**
 * Whether a record's length fields hold (docs/STORAGE.md, S2): `bodyLen` is the rest of
 * its `size` bytes, and an id of 1 to MAX_ID_BYTES bytes fits in the body.
 */
export function validLengths(bodyLen: number, idLen: number, size: number): boolean {
  return (
    bodyLen + RECORD_PREFIX_BYTES === size &&
    idLen >= 1 &&
    idLen <= MAX_ID_BYTES &&
    RECORD_FIXED_BODY_BYTES + idLen <= bodyLen
  );
}

/**
 * The body length of the record of `size` bytes at `at`, whose bytes after its crc
 * field have the CRC `crc`; -1 unless it is a valid record (S2).
 */
export function recordBodyLength(view: DataView, at: number, size: number, crc: number): number {
  if (size < RECORD_OVERHEAD_BYTES + 1) return -1;
  const bodyLen = view.getUint32(at + RECORD.bodyLen);
  return validLengths(bodyLen, view.getUint16(at + RECORD.idLen), size) && crc === view.getUint32(at + RECORD.crc)
    ? bodyLen
    : -1;
}

/** Parses and checks the record at `at` in `buf`; undefined if it is not a valid record of `size` bytes. */
export function parseRecord(
  buf: Buffer,
  at: number,
  size: number,
  view: DataView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
): ParsedRecord | undefined {
  if (at + size > buf.length || size < RECORD_OVERHEAD_BYTES + 1) return undefined;
  const bodyLen = recordBodyLength(view, at, size, recordCrc(buf, at, size - RECORD_PREFIX_BYTES));
  if (bodyLen < 0) return undefined;
  return readRecord(buf, view, at, size);
}

/** The fields of the record of `size` bytes at `at`, already checked; `data` is a view of `buf`. */
export function readRecord(buf: Buffer, view: DataView, at: number, size: number): ParsedRecord {
  const idEnd = at + RECORD.id + view.getUint16(at + RECORD.idLen);
  return {
    id: buf.toString('utf8', at + RECORD.id, idEnd),
    ts: view.getBigInt64(at + RECORD.ts),
    data: buf.subarray(idEnd, at + size),
  };
}

/** The CRC a record at `at` should carry, computed from its bytes. */
export function recordCrc(buf: Uint8Array, at: number, bodyLen: number): number {
  return checksum(buf, at + RECORD.bodyLen, at + RECORD_PREFIX_BYTES + bodyLen);
}

/** Where a segment sits in the log: the sequence numbers it covers and its compaction generation. */
export interface SegmentRange {
  first: number;
  last: number;
  gen: number;
}

/**
 * Segment file names: `<first>-<last>-<gen>.seg`, sequence numbers zero-padded to 20
 * digits and the generation to 6, so names sort in log order. An appended segment
 * covers one sequence number at generation 0; a compaction output covers the range of
 * its inputs at one generation more than the newest of them.
 */
export function segmentName(first: number, last: number, gen: number): string {
  return `${pad(first, 20)}-${pad(last, 20)}-${pad(gen, 6)}.seg`;
}

const NAME_RE = /^(\d{20})-(\d{20})-(\d{6})\.seg$/;

export function parseSegmentName(name: string): SegmentRange | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  const gen = Number(m[3]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first > last) return undefined;
  return { first, last, gen };
}

/**
 * Whether segment `a` replaces `b`: a compaction output covers the ranges of its
 * inputs at a higher generation, so an input found beside it is a leftover of a crash
 * between the output's rename and the inputs' deletion.
 */
export function replaces(a: SegmentRange, b: SegmentRange): boolean {
  return a.first <= b.first && b.last <= a.last && a.gen > b.gen;
}

function pad(n: number, width: number): string {
  return n.toString().padStart(width, '0');
}
