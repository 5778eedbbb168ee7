import {
  checkSegmentHeader,
  headerCleanAsOf,
  MAX_RECORD_BODY_BYTES,
  RECORD_FIXED_BODY_BYTES,
  RECORD_PREFIX_BYTES,
  recordCrc,
  SEGMENT_HEADER_BYTES,
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
    if (rest >= RECORD_PREFIX_BYTES + RECORD_FIXED_BODY_BYTES) {
      // The await is skipped while the bytes are already in the buffer: most records are.
      const fixed = RECORD_PREFIX_BYTES + RECORD_FIXED_BODY_BYTES;
      let p = pos >= bufStart && pos + fixed <= bufStart + bufLen ? pos - bufStart : await fill(pos, fixed);
      const bodyLen = view.getUint32(p + 4);
      size = RECORD_PREFIX_BYTES + bodyLen;
      if (bodyLen >= RECORD_FIXED_BODY_BYTES && bodyLen <= MAX_RECORD_BODY_BYTES && size <= rest) {
        const idLen = view.getUint16(p + 17);
        if (validLengths(bodyLen, idLen, size)) {
          p = pos + size <= bufStart + bufLen ? pos - bufStart : await fill(pos, size);
          if (recordCrc(buf, p, bodyLen) === view.getUint32(p)) {
            valid = true;
            if (badFrom >= 0) {
              result.skipped.push({ file: name, offset: badFrom, bytesLost: pos - badFrom });
              badFrom = -1;
            }
            const id = buf.toString('utf8', p + 19, p + 19 + idLen);
            const wait = visit(id, view.getBigInt64(p + 9), pos, size, size - 19 - idLen, buf, p);
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
