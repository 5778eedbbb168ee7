import {
  checkSegmentHeader,
  headerCleanAsOf,
  MAX_RECORD_BODY_BYTES,
  parseSegmentName,
  RECORD,
  RECORD_FIXED_BODY_BYTES,
  RECORD_OVERHEAD_BYTES,
  RECORD_PREFIX_BYTES,
  recordCrc,
  replaces,
  SEGMENT_HEADER_BYTES,
  type SegmentRange,
  validLengths,
} from './format.js';
import type { StoreFile } from './fs.js';

const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Called for each valid record, in file order: the record is `buf[at..at + size)`, its
 * data the last `dataLen` bytes of that. `buf` is the scan's read buffer, valid until
 * the visitor returns or, if it returns a promise, until that settles. No views are
 * made per record: recovery visits millions.
 */
export type RecordVisitor = (
  id: string,
  ts: bigint,
  offset: number,
  size: number,
  dataLen: number,
  buf: Buffer,
  at: number,
) => void | Promise<void>;

/** A stretch of a segment that held no valid record. */
export interface Corruption {
  file: string;
  offset: number;
  bytesLost: number;
}

export interface ScanResult {
  records: number;
  /** Offset just past the last valid record. */
  validEnd: number;
  /** Invalid stretches found before `validEnd` and skipped. */
  skipped: Corruption[];
  /** Bytes after `validEnd` that held no valid record (a torn or corrupt tail). */
  tailBytes: number;
  header: ReturnType<typeof checkSegmentHeader>;
  /** The header's cleanAsOf (0 when the header is not valid). */
  cleanAsOf: number;
}

/**
 * Reads a segment from start to `end`, checking every record's length and checksum.
 * An invalid stretch is skipped by searching forward, byte by byte, for the next valid
 * record and reported in `skipped`; an invalid stretch that no valid record follows is
 * the tail (`tailBytes`: a torn write in the newest segment). Reads are large and
 * sequential.
 */
export async function scanSegment(
  file: StoreFile,
  name: string,
  end: number,
  visit: RecordVisitor,
): Promise<ScanResult> {
  const head = Buffer.alloc(SEGMENT_HEADER_BYTES);
  const got = await readAt(file, head, 0, Math.min(SEGMENT_HEADER_BYTES, end));
  const header = checkSegmentHeader(head.subarray(0, got));
  const result: ScanResult = {
    records: 0,
    validEnd: got,
    skipped: [],
    tailBytes: 0,
    header,
    cleanAsOf: header === 'ok' ? headerCleanAsOf(head) : 0,
  };
  if (header !== 'ok') {
    result.validEnd = 0;
    result.tailBytes = end;
    return result;
  }
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let bufStart = SEGMENT_HEADER_BYTES; // file offset of buf[0]
  let bufLen = 0;
  let pos = SEGMENT_HEADER_BYTES; // file offset of the next record
  let badFrom = -1; // start of an invalid stretch being skipped

  // Makes buf hold at least `need` bytes from file offset `at` (or up to `end`).
  const fill = async (at: number, need: number): Promise<number> => {
    if (at >= bufStart && at + need <= bufStart + bufLen) return at - bufStart;
    const want = Math.min(Math.max(need, CHUNK_BYTES), end - at);
    if (buf.length < want) {
      buf = Buffer.allocUnsafe(want);
      view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    bufStart = at;
    bufLen = await readAt(file, buf, at, want);
    return 0;
  };

  while (pos < end) {
    const rest = end - pos;
    let valid = false;
    let size = 0;
    if (rest >= RECORD_OVERHEAD_BYTES) {
      // The await is skipped while the bytes are already in the buffer: most records are.
      const fixed = RECORD_OVERHEAD_BYTES;
      let p = pos >= bufStart && pos + fixed <= bufStart + bufLen ? pos - bufStart : await fill(pos, fixed);
      const bodyLen = view.getUint32(p + RECORD.bodyLen);
      size = RECORD_PREFIX_BYTES + bodyLen;
      if (bodyLen >= RECORD_FIXED_BODY_BYTES && bodyLen <= MAX_RECORD_BODY_BYTES && size <= rest) {
        const idLen = view.getUint16(p + RECORD.idLen);
        if (validLengths(bodyLen, idLen, size)) {
          p = pos + size <= bufStart + bufLen ? pos - bufStart : await fill(pos, size);
          if (recordCrc(buf, p, bodyLen) === view.getUint32(p + RECORD.crc)) {
            valid = true;
            if (badFrom >= 0) {
              result.skipped.push({ file: name, offset: badFrom, bytesLost: pos - badFrom });
              badFrom = -1;
            }
            const id = buf.toString('utf8', p + RECORD.id, p + RECORD.id + idLen);
            const wait = visit(id, view.getBigInt64(p + RECORD.ts), pos, size, size - RECORD.id - idLen, buf, p);
            if (wait) await wait;
            result.records++;
            pos += size;
            result.validEnd = pos;
          }
        }
      }
    }
    if (valid) continue;
    if (badFrom < 0) badFrom = pos;
    pos++;
  }
  // An invalid stretch that no valid record followed is the tail: lost from validEnd on.
  result.tailBytes = end - result.validEnd;
  return result;
}

async function readAt(file: StoreFile, buf: Buffer, position: number, length: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await file.read(buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

export { readAt };

/** What the meta file says of one segment, and whether it is the newest (docs/STORAGE.md, S8). */
export interface TailContext {
  /** The newest segment: the only one appends go on in, so the only one a write can have torn. */
  newest: boolean;
  /** `validLengths[name]` of the meta file: the file was sealed after a failure at this length. */
  validLength?: number | undefined;
  /** `closedLengths[name]` of the meta file: a clean close left this many bytes complete and fsynced. */
  closedLength?: number | undefined;
}

/** A segment file of a data folder, its name parsed. */
export type SegmentFile = SegmentRange & { name: string };

/**
 * The segment files of a folder as an open sees them (docs/STORAGE.md, S1, S8): those
 * it keeps, in log order (the last is the newest), and the leftovers of an interrupted
 * compaction, segments a present one replaces, which it removes. Other names are not
 * segments. The one reading both recovery and `gossip inspect` make of a folder.
 */
export function segmentFiles(names: readonly string[]): { keep: SegmentFile[]; leftovers: SegmentFile[] } {
  const found: SegmentFile[] = [];
  for (const name of names) {
    const range = parseSegmentName(name);
    if (range) found.push({ name, ...range });
  }
  const keep: SegmentFile[] = [];
  const leftovers: SegmentFile[] = [];
  for (const f of found) (found.some((o) => replaces(o, f)) ? leftovers : keep).push(f);
  keep.sort((a, b) => a.first - b.first);
  return { keep, leftovers };
}

/** Where a scan of a segment of `size` bytes stops: its valid length, for one sealed after a failure (S6). */
export function scanEnd(size: number, validLength: number | undefined): number {
  return validLength === undefined ? size : Math.min(validLength, size);
}

/** What the bytes after a scan's last valid record are, and what recovery does with them. */
export interface TailVerdict {
  /**
   * `none`: nothing is missing. `torn`: a write that never finished (the newest
   * segment's bytes past its last clean close, or any of a segment sealed after a
   * failure): cut off, never reported as corruption. `corrupt`: bytes the store had
   * known to be complete failed their checks (an older segment's tail, anything below a
   * clean close's length, a bad header): reported, and kept on disk.
   */
  kind: 'none' | 'torn' | 'corrupt';
  /** The stretch reported when `kind` is `corrupt`. */
  corruption?: Corruption;
  /**
   * Where recovery cuts the newest segment (0: the file is removed, a segment created
   * just before a crash); undefined when nothing is cut. A corrupt newest segment can
   * still be cut at its clean close's length, past which a write was torn.
   */
  cutTo?: number;
  /** Bytes of a torn write: past `cutTo`, or ignored in a sealed segment. */
  tornBytes: number;
}

/**
 * Classifies the end of a segment's scan (docs/STORAGE.md, S8). The one rule both
 * recovery and `gossip inspect` apply, so they never disagree on what is torn and what
 * is corrupt. `scan` covers the file up to its valid length when it has one.
 */
export function classifyTail(name: string, scan: ScanResult, ctx: TailContext): TailVerdict {
  const end = scan.validEnd + scan.tailBytes;
  const closed = ctx.closedLength;
  if (scan.header !== 'ok') {
    if (ctx.newest && end <= SEGMENT_HEADER_BYTES && closed === undefined) {
      // Created but never written: a crash between creating the file and fsyncing its header.
      return { kind: 'torn', cutTo: 0, tornBytes: end };
    }
    return { kind: 'corrupt', corruption: { file: name, offset: 0, bytesLost: end }, tornBytes: 0 };
  }
  const validEnd = scan.validEnd;
  if (closed !== undefined && validEnd < closed) {
    // Short of what a clean close fsynced: damage, whatever follows. Past that length
    // only the newest segment took writes since, so only there can a write have torn.
    if (ctx.newest && end > closed) {
      return {
        kind: 'corrupt',
        corruption: { file: name, offset: validEnd, bytesLost: closed - validEnd },
        cutTo: closed,
        tornBytes: end - closed,
      };
    }
    return {
      kind: 'corrupt',
      corruption: { file: name, offset: validEnd, bytesLost: Math.max(end, closed) - validEnd },
      tornBytes: 0,
    };
  }
  if (scan.tailBytes === 0) return { kind: 'none', tornBytes: 0 };
  if (ctx.newest) return { kind: 'torn', cutTo: validEnd, tornBytes: scan.tailBytes };
  // A segment sealed after a failure may hold acknowledged bytes that never reached the
  // disk (S6); any other older segment was fsynced before it was sealed.
  if (ctx.validLength !== undefined) return { kind: 'torn', tornBytes: scan.tailBytes };
  return { kind: 'corrupt', corruption: { file: name, offset: validEnd, bytesLost: scan.tailBytes }, tornBytes: 0 };
}
