import { checksum, RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES } from './format.js';
import type { Corruption } from './recovery.js';

/*
 * The index checkpoint (docs/STORAGE.md, "Index checkpoint"): the index as a clean
 * close left it, so the next open loads it instead of scanning every segment. All
 * integers big-endian.
 *
 *   magic "GSPX" (47 53 50 58), u16 version, u16 reserved (0)
 *   u32 headerLen, header: UTF-8 JSON, { segments, corruptions, entries }
 *   entries × (u32 segment (position in `segments`), u32 offset, u32 size, i64 ts,
 *              u8 tombstone (0 or 1), u16 idLen, id (UTF-8))
 *   u32 crc: CRC-32 of every byte before it
 */

export const CHECKPOINT_FILE = 'gossip.index';
const MAGIC = Buffer.from('GSPX', 'latin1');
const VERSION = 1;
const ENTRY_FIXED_BYTES = 23;

/** A segment as the checkpoint saw it. `stamp` changes whenever the file does (`StoreFile.stamp`). */
export interface CheckpointSegment {
  name: string;
  stamp: string;
  /** Bytes of header and valid records. */
  size: number;
  cleanAsOf: number;
  corrupt: boolean;
}

/** The index's entries, column by column: entry k is `ids[k]` in `segments[segment[k]]`. */
export interface CheckpointEntries {
  ids: string[];
  segment: Uint32Array;
  offset: Uint32Array;
  size: Uint32Array;
  ts: BigInt64Array;
  tomb: Uint8Array;
}

export interface Checkpoint {
  segments: CheckpointSegment[];
  /** Corrupt stretches the scan that built this index skipped: still on disk, still reported. */
  corruptions: Corruption[];
  entries: CheckpointEntries;
}

export function encodeCheckpoint(c: Checkpoint): Buffer {
  const { ids, segment, offset, size, ts, tomb } = c.entries;
  const n = ids.length;
  const header = Buffer.from(
    JSON.stringify({ segments: c.segments, corruptions: c.corruptions, entries: n } satisfies CheckpointHeader),
  );
  let idBytes = 0;
  for (const id of ids) idBytes += Buffer.byteLength(id);
  const buf = Buffer.allocUnsafe(12 + header.length + n * ENTRY_FIXED_BYTES + idBytes + 4);
  MAGIC.copy(buf, 0);
  buf.writeUInt16BE(VERSION, 4);
  buf.writeUInt16BE(0, 6);
  buf.writeUInt32BE(header.length, 8);
  header.copy(buf, 12);
  let p = 12 + header.length;
  for (let k = 0; k < n; k++) {
    buf.writeUInt32BE(segment[k] as number, p);
    buf.writeUInt32BE(offset[k] as number, p + 4);
    buf.writeUInt32BE(size[k] as number, p + 8);
    buf.writeBigInt64BE(ts[k] as bigint, p + 12);
    buf[p + 20] = tomb[k] as number;
    const len = buf.write(ids[k] as string, p + 23, 'utf8');
    buf.writeUInt16BE(len, p + 21);
    p += ENTRY_FIXED_BYTES + len;
  }
  buf.writeUInt32BE(checksum(buf, 0, p), p);
  return buf;
}

interface CheckpointHeader {
  segments: CheckpointSegment[];
  corruptions: Corruption[];
  entries: number;
}

/**
 * Parses a checkpoint, checking its checksum and that every entry lies inside a valid
 * segment; returns why it cannot be used instead when it does not hold.
 */
export function decodeCheckpoint(buf: Buffer): Checkpoint | string {
  if (buf.length < 16 || !buf.subarray(0, 4).equals(MAGIC)) return 'not a checkpoint';
  if (buf.readUInt16BE(4) !== VERSION) return `unknown version ${buf.readUInt16BE(4)}`;
  const end = buf.length - 4;
  if (checksum(buf, 0, end) !== buf.readUInt32BE(end)) return 'checksum mismatch';
  const headerLen = buf.readUInt32BE(8);
  if (12 + headerLen > end) return 'truncated';
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + headerLen)) as CheckpointHeader;
  } catch {
    return 'unreadable header';
  }
  const segments = header.segments;
  const n = header.entries;
  if (!Array.isArray(segments) || !Array.isArray(header.corruptions) || !Number.isSafeInteger(n) || n < 0) {
    return 'unreadable header';
  }
  const entries: CheckpointEntries = {
    ids: new Array<string>(n),
    segment: new Uint32Array(n),
    offset: new Uint32Array(n),
    size: new Uint32Array(n),
    ts: new BigInt64Array(n),
    tomb: new Uint8Array(n),
  };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 12 + headerLen;
  for (let k = 0; k < n; k++) {
    if (p + ENTRY_FIXED_BYTES > end) return 'truncated';
    const seg = view.getUint32(p);
    const off = view.getUint32(p + 4);
    const size = view.getUint32(p + 8);
    const idLen = view.getUint16(p + 21);
    const s = segments[seg];
    if (
      !s ||
      s.corrupt ||
      off < SEGMENT_HEADER_BYTES ||
      size < RECORD_OVERHEAD_BYTES + idLen ||
      off + size > s.size ||
      idLen === 0 ||
      p + ENTRY_FIXED_BYTES + idLen > end
    ) {
      return `entry ${k} is out of bounds`;
    }
    entries.segment[k] = seg;
    entries.offset[k] = off;
    entries.size[k] = size;
    entries.ts[k] = view.getBigInt64(p + 12);
    entries.tomb[k] = buf[p + 20] as number;
    entries.ids[k] = buf.toString('utf8', p + 23, p + 23 + idLen);
    p += ENTRY_FIXED_BYTES + idLen;
  }
  if (p !== end) return 'trailing bytes';
  return { segments, corruptions: header.corruptions, entries };
}
