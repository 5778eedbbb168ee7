import { FrameKind, MessageFlags } from '@gossip/protocol';
import { RECORD, RECORD_PREFIX_BYTES, type RecordBatch } from '@gossip/store';

/** A replay batch in wire form: `count` message frames, back to back across `chunks`, to write in order. */
export interface ReplayFrames {
  chunks: Buffer[];
  count: number;
}

/** A frame's header: u32 length (of kind and body), then u8 kind (docs/PROTOCOL.md, "Frames"). */
const FRAME_LENGTH = 0;
const FRAME_KIND = 4;
const FRAME_HEADER_BYTES = 5;
/** A message frame's body starts with its flags byte (M1). */
const FRAME_FLAGS = FRAME_HEADER_BYTES;

/**
 * A batch of `Store.replayRecords` as message frames flagged `Replayed` (docs/PROTOCOL.md,
 * M1 and M2), in the batch's order. A record's body is a message frame's body, byte for
 * byte (docs/STORAGE.md, S10: flags, ts, id length, id, data), so nothing is decoded or
 * encoded: each record's 8-byte prefix (crc, bodyLen) becomes the 5-byte frame header
 * (length, kind), its flags byte becomes `Replayed`, and the frames are packed back to
 * back. The store checked every record (S2) before handing the batch out.
 *
 * When each read buffer holds its records in order and the buffers follow each other
 * (a log replayed in file order, the usual case), the frames are packed where the
 * records lie, one chunk per buffer: a frame is 3 bytes shorter than its record, so it
 * never overtakes a record not yet moved. Otherwise they are copied into one new buffer.
 * Either way the chunks are the caller's, views of buffers nothing else uses.
 */
export function replayFrames(batch: RecordBatch): ReplayFrames {
  // The loops see only arrays and buffers: whatever object the batch is, they stay compiled.
  return packFrames(batch.count, batch.bytes, batch.bufs, batch.buf, batch.at, batch.size);
}

function packFrames(
  count: number,
  bytes: number,
  bufs: readonly Buffer[],
  buf: Uint32Array,
  at: Uint32Array,
  size: Uint32Array,
): ReplayFrames {
  if (count === 0) return { chunks: [], count: 0 };
  if (!packsInPlace(count, buf, at, size)) {
    const frames = Buffer.allocUnsafe(bytes);
    let pos = 0;
    for (let k = 0; k < count; k++) {
      pos = frame(frames, pos, bufs[buf[k] as number] as Buffer, at[k] as number, size[k] as number);
    }
    return { chunks: [frames.subarray(0, pos)], count };
  }
  const chunks: Buffer[] = [];
  let b = buf[0] as number;
  let target = bufs[b] as Buffer;
  let pos = 0;
  for (let k = 0; k < count; k++) {
    if (buf[k] !== b) {
      chunks.push(target.subarray(0, pos));
      b = buf[k] as number;
      target = bufs[b] as Buffer;
      pos = 0;
    }
    pos = frame(target, pos, target, at[k] as number, size[k] as number);
  }
  chunks.push(target.subarray(0, pos));
  return { chunks, count };
}

/**
 * Whether the batch's frames can be packed where its records lie: buffer numbers never
 * go back, and within a buffer each record starts at or past the end of the one before.
 */
function packsInPlace(count: number, buf: Uint32Array, at: Uint32Array, size: Uint32Array): boolean {
  let b = -1;
  let end = 0;
  for (let k = 0; k < count; k++) {
    const bk = buf[k] as number;
    const a = at[k] as number;
    if (bk < b || (bk === b && a < end)) return false;
    b = bk;
    end = a + (size[k] as number);
  }
  return true;
}

/**
 * Writes the record of `recordSize` bytes at `at` of `src` as a replayed message frame
 * at `pos` of `dst` (which may be `src`, with `pos <= at`); returns the frame's end.
 * `copyWithin` makes no object per record, unlike `Buffer#copy`.
 */
function frame(dst: Buffer, pos: number, src: Buffer, at: number, recordSize: number): number {
  const bodyLen = recordSize - RECORD_PREFIX_BYTES;
  // The body first: the header may overwrite the record's own prefix, never its body.
  if (dst === src) dst.copyWithin(pos + FRAME_HEADER_BYTES, at + RECORD.flags, at + recordSize);
  else copyBytes(dst, pos + FRAME_HEADER_BYTES, src, at + RECORD.flags, bodyLen);
  dst[pos + FRAME_LENGTH] = (1 + bodyLen) >>> 24;
  dst[pos + FRAME_LENGTH + 1] = ((1 + bodyLen) >>> 16) & 0xff;
  dst[pos + FRAME_LENGTH + 2] = ((1 + bodyLen) >>> 8) & 0xff;
  dst[pos + FRAME_LENGTH + 3] = (1 + bodyLen) & 0xff;
  dst[pos + FRAME_KIND] = FrameKind.Message;
  dst[pos + FRAME_FLAGS] = MessageFlags.Replayed;
  return pos + FRAME_HEADER_BYTES + bodyLen;
}

/** Up to this, bytes are copied by a loop: cheaper than the view `set` needs. */
const LOOP_COPY_MAX = 32;

function copyBytes(dst: Buffer, to: number, src: Buffer, from: number, n: number): void {
  if (n > LOOP_COPY_MAX) {
    dst.set(src.subarray(from, from + n), to);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i] as number;
}

/**
 * The made-up batch `warmReplayFrames` packs, and how many times: V8 compiles a
 * function once it has been called often enough and run long enough.
 */
const WARM_RECORDS = 64;
const WARM_RECORD_BYTES = 24;
const WARM_ROUNDS = 96;

/**
 * Packs made-up batches each way, so that V8 compiles this file's loops in the
 * background before a process's first replay, rather than run that replay in its
 * interpreter (docs/STORAGE.md, "Replay"). `GossipServer.warm()` runs it: a few
 * milliseconds the first time in a process.
 */
export function warmReplayFrames(): void {
  const n = WARM_RECORDS;
  const half = n / 2;
  const size = new Uint32Array(n).fill(WARM_RECORD_BYTES);
  // In order in one buffer; in order across two; and out of order (copied).
  const one = new Uint32Array(n);
  const two = new Uint32Array(n).fill(1, half);
  const at = Uint32Array.from({ length: n }, (_, k) => k * WARM_RECORD_BYTES);
  const atTwo = Uint32Array.from({ length: n }, (_, k) => (k % half) * WARM_RECORD_BYTES);
  const reversed = at.slice().reverse();
  const bytes = n * WARM_RECORD_BYTES;
  const records = [Buffer.alloc(bytes), Buffer.alloc(bytes)];
  for (let round = 0; round < WARM_ROUNDS; round++) {
    replayFrames({ count: n, bytes, bufs: records, buf: one, at, size });
    replayFrames({ count: n, bytes, bufs: records, buf: two, at: atTwo, size });
    replayFrames({ count: n, bytes, bufs: records, buf: one, at: reversed, size });
  }
}
