import { endianness } from 'node:os';
import { checksum } from './crc.js';
import { RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES } from './format.js';
import { readSmallFile, replaceFile, type StoreFile, type StoreFs } from './fs.js';
import type { IndexColumns, IndexTable } from './index-table.js';
import type { Corruption } from './recovery.js';
import type { Segment } from './segment.js';

/*
 * The index checkpoint (docs/STORAGE.md, S9): the index as a clean close left it, so
 * the next open loads it instead of scanning every segment. All integers big-endian.
 *
 *   magic "GSPX" (47 53 50 58), u16 version (2), u16 reserved (0)
 *   u32 headerLen, header: UTF-8 JSON { segments, corruptions, entries, idBytes, newestTs }
 *   then the entries column by column, `entries` values each:
 *     u32 segment (position in `segments`), u32 offset, u32 size, i64 ts, u8 tombstone (0 or 1)
 *   then the ids in id order (JavaScript string order), `entries` of them:
 *     u32 order: the entry whose id this is, u16 idLength (UTF-16 code units)
 *   ids: the ids in that order, concatenated, UTF-8 (`idBytes` bytes)
 *   u32 crc: CRC-32 of every byte before it
 *
 * Columns load with a copy and a byte swap each, and the ids with one decode: no
 * per-entry BigInt or string decode, so a load costs little more than its read. With
 * the ids in id order the index takes its id order as it is, checked, rather than sort
 * them, and the strings are made in that order, so that checking it reads memory in
 * order. Version 1 had no order column, and its idLength (then before tombstone) and ids
 * were in entry order: still read, and its ids are sorted once.
 */

export const CHECKPOINT_FILE = 'gossip.index';
const MAGIC = Buffer.from('GSPX', 'latin1');
const VERSION = 2;
/** The version before the order column: still read. */
const VERSION_UNORDERED = 1;
/** Where the fixed fields start; the JSON header follows them, the columns follow it. */
const FIELD = { magic: 0, version: 4, reserved: 6, headerLen: 8, header: 12 } as const;
const CRC_BYTES = 4;
const LITTLE_ENDIAN = endianness() === 'LE';
/** Bytes per entry in the fixed-width columns: of version 1, and of version 2 with the order. */
const COLUMN_BYTES_UNORDERED = 4 + 4 + 4 + 8 + 2 + 1;
const COLUMN_BYTES = COLUMN_BYTES_UNORDERED + 4;

/** A segment as the checkpoint saw it. `stamp` changes whenever the file does (`StoreFile.stamp`). */
export interface CheckpointSegment {
  name: string;
  stamp: string;
  /** Bytes of header and valid records. */
  size: number;
  cleanAsOf: number;
  corrupt: boolean;
}

export interface Checkpoint {
  segments: CheckpointSegment[];
  /** Corrupt stretches the scan that built this index skipped: still on disk, still reported. */
  corruptions: Corruption[];
  /** The index's entries; `seg` holds positions in `segments`. */
  entries: IndexColumns;
  newestTs: bigint | null;
}

interface Header {
  segments: CheckpointSegment[];
  corruptions: Corruption[];
  entries: number;
  idBytes: number;
  newestTs: string | null;
}

export function encodeCheckpoint(c: Checkpoint): Buffer {
  const { ids, seg, off, size, ts, tomb, order, sorted } = c.entries;
  const n = ids.length;
  if (order === null || sorted === null || order.length !== n || sorted.length !== n) {
    throw new Error('a checkpoint needs the entries in id order');
  }
  const idBlob = Buffer.from(sorted.join(''), 'utf8');
  const header = Buffer.from(
    JSON.stringify({
      segments: c.segments,
      corruptions: c.corruptions,
      entries: n,
      idBytes: idBlob.length,
      newestTs: c.newestTs === null ? null : c.newestTs.toString(),
    } satisfies Header),
  );
  const buf = Buffer.allocUnsafe(FIELD.header + header.length + n * COLUMN_BYTES + idBlob.length + CRC_BYTES);
  MAGIC.copy(buf, FIELD.magic);
  buf.writeUInt16BE(VERSION, FIELD.version);
  buf.writeUInt16BE(0, FIELD.reserved);
  buf.writeUInt32BE(header.length, FIELD.headerLen);
  header.copy(buf, FIELD.header);
  let p = FIELD.header + header.length;
  const lengths = new Uint16Array(n);
  for (let j = 0; j < n; j++) lengths[j] = (sorted[j] as string).length;
  for (const [column, width] of columnsInOrder(seg, off, size, ts, lengths, tomb, order)) {
    p = putColumn(buf, p, column, width);
  }
  p += idBlob.copy(buf, p);
  buf.writeUInt32BE(checksum(buf, 0, p), p);
  return buf;
}

/**
 * Parses a checkpoint, checking its checksum and that every entry lies inside a valid
 * segment; returns why it cannot be used instead when it does not hold.
 */
export function decodeCheckpoint(buf: Buffer): Checkpoint | string {
  if (buf.length < FIELD.header + CRC_BYTES || !buf.subarray(FIELD.magic, FIELD.version).equals(MAGIC)) {
    return 'not a checkpoint';
  }
  const version = buf.readUInt16BE(FIELD.version);
  if (version !== VERSION && version !== VERSION_UNORDERED) return `unknown version ${version}`;
  const columnBytes = version === VERSION ? COLUMN_BYTES : COLUMN_BYTES_UNORDERED;
  const end = buf.length - CRC_BYTES;
  if (checksum(buf, 0, end) !== buf.readUInt32BE(end)) return 'checksum mismatch';
  const headerLen = buf.readUInt32BE(FIELD.headerLen);
  const columns = FIELD.header + headerLen;
  if (columns > end) return 'truncated';
  let h: Header;
  try {
    h = JSON.parse(buf.toString('utf8', FIELD.header, columns)) as Header;
  } catch {
    return 'unreadable header';
  }
  if (typeof h !== 'object' || h === null) return 'unreadable header';
  const n = h.entries;
  if (
    !Array.isArray(h.segments) ||
    !h.segments.every(isSegment) ||
    !Array.isArray(h.corruptions) ||
    (h.newestTs !== null && !(typeof h.newestTs === 'string' && /^-?\d+$/.test(h.newestTs))) ||
    !Number.isSafeInteger(n) ||
    n < 0 ||
    !Number.isSafeInteger(h.idBytes) ||
    columns + n * columnBytes + h.idBytes !== end
  ) {
    return 'unreadable header';
  }
  let p = columns;
  const seg = new Uint32Array(n);
  const off = new Uint32Array(n);
  const size = new Uint32Array(n);
  const ts = new BigInt64Array(n);
  const lengths = new Uint16Array(n);
  const tomb = new Uint8Array(n);
  const order = version === VERSION ? new Uint32Array(n) : null;
  for (const [column, width] of columnsInOrder(seg, off, size, ts, lengths, tomb, order)) {
    p = takeColumn(buf, p, column, width);
  }
  const all = buf.toString('utf8', p, p + h.idBytes);
  const segments = h.segments;
  for (let k = 0; k < n; k++) {
    const s = segments[seg[k] as number];
    const o = off[k] as number;
    const z = size[k] as number;
    if (
      !s ||
      s.corrupt ||
      o < SEGMENT_HEADER_BYTES ||
      z < RECORD_OVERHEAD_BYTES + 1 ||
      o + z > s.size ||
      (tomb[k] as number) > 1
    ) {
      return `entry ${k} is out of bounds`;
    }
  }
  // The ids, in the order they lie in the file: entry k's, or (version 2) the j-th in id order, entry order[j]'s.
  const ids = new Array<string>(n);
  const sorted = order === null ? null : new Array<string>(n);
  let at = 0;
  for (let j = 0; j < n; j++) {
    const len = lengths[j] as number;
    if (len === 0 || at + len > all.length) return `id ${j} is out of bounds`;
    const id = all.slice(at, at + len);
    at += len;
    if (order === null || sorted === null) {
      ids[j] = id;
      continue;
    }
    const k = order[j] as number;
    if (k >= n || ids[k] !== undefined) return 'the order is not one of the entries';
    ids[k] = id;
    sorted[j] = id;
  }
  if (at !== all.length) return 'ids do not add up';
  return {
    segments,
    corruptions: h.corruptions,
    entries: { ids, seg, off, size, ts, tomb, order, sorted },
    newestTs: h.newestTs === null ? null : BigInt(h.newestTs),
  };
}

/**
 * Writes the index checkpoint of a clean close (S9): `segments` as they are now, the
 * index's entries pointing into them, and the corruption reports that still apply.
 */
export async function writeCheckpoint(
  fs: StoreFs,
  dir: string,
  segments: readonly Segment[],
  index: IndexTable,
  reported: readonly Corruption[],
): Promise<void> {
  const position = new Map<number, number>();
  const described: CheckpointSegment[] = [];
  for (const seg of segments) {
    position.set(seg.handle, described.length);
    const stamp = await (seg.file as StoreFile).stamp();
    described.push({ name: seg.name, stamp, size: seg.size, cleanAsOf: seg.cleanAsOf, corrupt: seg.corrupt });
  }
  const entries = index.columns();
  for (let k = 0; k < entries.seg.length; k++) {
    const at = position.get(entries.seg[k] as number);
    if (at === undefined) throw new Error(`index entry ${entries.ids[k]} points at no segment`);
    entries.seg[k] = at;
  }
  const names = new Set(described.map((s) => s.name));
  const corruptions = reported.filter((c) => names.has(c.file));
  // What a scan would find: the newest ts the index holds.
  const newestTs = index.newest();
  await replaceFile(
    fs,
    dir,
    CHECKPOINT_FILE,
    encodeCheckpoint({ segments: described, corruptions, entries, newestTs }),
  );
}

/**
 * The checkpoint in `dir`, if it describes exactly `files` (the segment files an open
 * found, in log order), each unchanged since the close that wrote it (S9); otherwise
 * why it cannot be used. With `refuseCorrupt` (`corruption: 'fail'`), one that carries
 * corruption reports is not used, so the open fails as its scan would.
 */
export async function readCheckpoint(
  fs: StoreFs,
  dir: string,
  files: readonly { name: string; file: StoreFile }[],
  refuseCorrupt: boolean,
): Promise<Checkpoint | string> {
  let ckpt: Checkpoint | string;
  try {
    const raw = await readSmallFile(fs, `${dir}/${CHECKPOINT_FILE}`);
    ckpt = raw ? decodeCheckpoint(raw) : 'missing';
  } catch (error) {
    return `unreadable: ${(error as Error).message}`;
  }
  if (typeof ckpt === 'string') return ckpt;
  if (ckpt.segments.length !== files.length) return 'the segments changed';
  if (ckpt.corruptions.length > 0 && refuseCorrupt) return 'corruption: fail';
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as (typeof files)[number];
    const c = ckpt.segments[i] as CheckpointSegment;
    if (c.name !== f.name || c.stamp !== (await f.file.stamp())) return `${f.name} changed`;
  }
  return ckpt;
}

function isSegment(s: unknown): s is CheckpointSegment {
  if (typeof s !== 'object' || s === null) return false;
  const c = s as Record<string, unknown>;
  return (
    typeof c.name === 'string' &&
    typeof c.stamp === 'string' &&
    Number.isSafeInteger(c.size) &&
    Number.isSafeInteger(c.cleanAsOf) &&
    typeof c.corrupt === 'boolean'
  );
}

type Column = Uint8Array | Uint16Array | Uint32Array | BigInt64Array;

/**
 * The fixed-width columns in file order, each with its width in bytes. Version 2 (with
 * `order`): the entries' columns, then the order and the ids' lengths in id order;
 * version 1 (`order` null): the lengths, in entry order, before the tombstones.
 */
function columnsInOrder(
  seg: Uint32Array,
  off: Uint32Array,
  size: Uint32Array,
  ts: BigInt64Array,
  lengths: Uint16Array,
  tomb: Uint8Array,
  order: Uint32Array | null,
): [Column, 1 | 2 | 4 | 8][] {
  if (order === null) {
    return [
      [seg, 4],
      [off, 4],
      [size, 4],
      [ts, 8],
      [lengths, 2],
      [tomb, 1],
    ];
  }
  return [
    [seg, 4],
    [off, 4],
    [size, 4],
    [ts, 8],
    [tomb, 1],
    [order, 4],
    [lengths, 2],
  ];
}

/** Copies a column into `buf` at `p`, big-endian; returns the offset after it. */
function putColumn(buf: Buffer, p: number, column: Column, width: 1 | 2 | 4 | 8): number {
  const bytes = Buffer.from(column.buffer, column.byteOffset, column.byteLength);
  bytes.copy(buf, p);
  swap(buf.subarray(p, p + bytes.length), width);
  return p + bytes.length;
}

/** Fills `column` from `buf` at `p`, big-endian; returns the offset after it. */
function takeColumn(buf: Buffer, p: number, column: Column, width: 1 | 2 | 4 | 8): number {
  const bytes = Buffer.from(column.buffer, column.byteOffset, column.byteLength);
  buf.copy(bytes, 0, p, p + bytes.length);
  swap(bytes, width);
  return p + bytes.length;
}

/** Big-endian bytes to the host's order and back: a swap on a little-endian host. */
function swap(b: Buffer, width: 1 | 2 | 4 | 8): void {
  if (!LITTLE_ENDIAN || width === 1) return;
  if (width === 2) b.swap16();
  else if (width === 4) b.swap32();
  else b.swap64();
}
