// The subpath skips msgpackr's optional native string extractor: its load probes the
// system for a prebuilt binary (tens of milliseconds of start-up), and extension maps
// are too small to gain from it.
import { Unpackr } from 'msgpackr/unpack';
import {
  BadMagicError,
  codeFromWire,
  FrameTooLargeError,
  GossipError,
  MalformedFrameError,
  UnknownFrameError,
} from './errors.js';
import { checkExtension } from './extension.js';
import { AckStatus, FrameKind } from './frame-kind.js';
import type { FetchEntry, Frame, PrefixSpec } from './frames.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  EPOCH_BYTES,
  HELLO_MAGIC,
  MAX_EXTENSION_BYTES,
  MAX_PREFIX_FIELD_BYTES,
  MAX_TS,
  MIN_TS,
} from './limits.js';
import { readId } from './validate.js';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const ZERO_EPOCH = Buffer.alloc(EPOCH_BYTES);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export interface FrameDecoderOptions {
  /**
   * Largest frame length (kind byte and body) accepted; a larger declared length fails
   * with `GOSSIP_ERR_FRAME_TOO_LARGE` before anything is allocated for it.
   * Default: 10 MiB of data plus 64 KiB.
   */
  maxFrameBytes?: number;
}

/**
 * A resumable decoder: push chunks of any size as they arrive, and it calls `onFrame`
 * once per complete frame, in order (docs/PROTOCOL.md, rule F3).
 *
 * Bad input throws a `GossipError` with a stable code, never another kind of
 * exception, and leaves the decoder failed: every later `push` throws the same
 * error, since the stream has lost its framing. See `frames.ts` for when byte fields
 * are views.
 */
export class FrameDecoder {
  readonly #onFrame: (frame: Frame) => void;
  #maxFrameBytes: number;
  /** Up to 4 bytes of a length split across chunks. */
  readonly #header = Buffer.alloc(4);
  #headerBytes = 0;
  /** The frame being assembled across chunks, sized exactly, and how much of it is filled. */
  #partial: Buffer | null = null;
  #partialBytes = 0;
  #failed: GossipError | null = null;

  constructor(onFrame: (frame: Frame) => void, options: FrameDecoderOptions = {}) {
    this.#onFrame = onFrame;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** The largest frame length accepted; a client raises it to what the server's welcome announces. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = value;
  }

  /** Bytes held for a frame that has not arrived whole yet. */
  get bufferedBytes(): number {
    return this.#headerBytes + this.#partialBytes;
  }

  /** Feeds bytes; calls `onFrame` for each frame they complete. */
  push(chunk: Buffer): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#push(chunk);
    } catch (error) {
      this.#failed =
        error instanceof GossipError ? error : new MalformedFrameError('frame could not be decoded', { cause: error });
      throw this.#failed;
    }
  }

  /** Declares the end of the stream: fails if it stopped inside a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.bufferedBytes > 0) {
      this.#failed = new MalformedFrameError(`stream ended inside a frame (${this.bufferedBytes} bytes buffered)`);
      throw this.#failed;
    }
  }

  #push(chunk: Buffer): void {
    let off = 0;
    const end = chunk.length;
    // Finish what an earlier chunk started.
    while (this.#headerBytes > 0 || this.#partial) {
      if (off === end) return;
      if (!this.#partial) {
        const n = Math.min(4 - this.#headerBytes, end - off);
        chunk.copy(this.#header, this.#headerBytes, off, off + n);
        this.#headerBytes += n;
        off += n;
        if (this.#headerBytes < 4) return;
        this.#headerBytes = 0;
        this.#partial = Buffer.allocUnsafe(this.#checkLength(this.#header.readUInt32BE(0)));
        this.#partialBytes = 0;
      }
      const frame = this.#partial;
      const n = Math.min(frame.length - this.#partialBytes, end - off);
      chunk.copy(frame, this.#partialBytes, off, off + n);
      this.#partialBytes += n;
      off += n;
      if (this.#partialBytes < frame.length) return;
      this.#partial = null;
      this.#partialBytes = 0;
      this.#onFrame(parseFrame(frame, 0, frame.length));
    }
    // Whole frames straight from the chunk: no copies.
    let view: DataView | undefined;
    while (end - off >= 4) {
      const len = this.#checkLength(chunk.readUInt32BE(off));
      if (end - off - 4 < len) break;
      off += 4;
      view ??= new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.#onFrame(parseFrame(chunk, off, off + len, view));
      off += len;
    }
    if (off < end) {
      // Keep the tail for the next chunk.
      if (end - off < 4) {
        chunk.copy(this.#header, 0, off, end);
        this.#headerBytes = end - off;
      } else {
        const len = chunk.readUInt32BE(off);
        this.#partial = Buffer.allocUnsafe(len);
        this.#partialBytes = end - off - 4;
        chunk.copy(this.#partial, 0, off + 4, end);
      }
    }
  }

  #checkLength(len: number): number {
    if (len === 0) throw new MalformedFrameError('frame length is 0: a frame holds at least its kind byte');
    if (len > this.#maxFrameBytes) {
      throw new FrameTooLargeError(
        `frame of ${len} bytes exceeds the maximum of ${this.#maxFrameBytes}: raise --max-frame`,
      );
    }
    return len;
  }
}

/**
 * Decodes one frame's kind and body, `buf[start..end)`, where `end - start` is the
 * frame's declared length (rule F1): the bytes after the 4-byte length. `view`, a
 * DataView over exactly `buf`, may be passed to save making one: V8 reads a bigint
 * through a DataView about three times faster than through `readBigInt64BE`.
 */
export function parseFrame(buf: Buffer, start: number, end: number, view?: DataView): Frame {
  if (end <= start) throw new MalformedFrameError('frame length is 0: a frame holds at least its kind byte');
  const kind = buf[start] as number;
  const p = start + 1;
  switch (kind) {
    case FrameKind.Message:
      return parseMessage(buf, view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength), p, end);
    case FrameKind.Publish:
    case FrameKind.Emit:
      return parsePublish(kind, buf, view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength), p, end);
    case FrameKind.Ack:
      return parseAck(buf, p, end);
    case FrameKind.Hello:
      return parseHello(buf, p, end);
    case FrameKind.Welcome:
      return parseWelcome(buf, p, end);
    case FrameKind.ReplayDone:
      return parseReplayDone(buf, p, end);
    case FrameKind.Resync:
      return parseResync(buf, p, end);
    case FrameKind.Fetch:
      return parseFetch(buf, p, end);
    case FrameKind.FetchResult:
      return parseFetchResult(buf, p, end);
    case FrameKind.Error:
      need(p, end, 2, 'error');
      return { kind, code: codeFromWire(buf.readUInt16BE(p)), message: text(buf, p + 2, end) };
    case FrameKind.Ping:
      exact(p, end, 4, 'ping');
      return { kind, nonce: buf.readUInt32BE(p) };
    case FrameKind.Pong:
      exact(p, end, 12, 'pong');
      return { kind, nonce: buf.readUInt32BE(p), newestTs: buf.readBigInt64BE(p + 4) };
    case FrameKind.Subscribe:
      return parseSubscribe(buf, p, end);
    case FrameKind.Unsubscribe:
      need(p, end, 6, 'unsubscribe');
      return { kind, reqId: buf.readUInt32BE(p), prefix: prefixAt(buf, p + 4, end, 'unsubscribe') };
    case FrameKind.PrefixDone:
      return parsePrefixDone(buf, p, end);
    case FrameKind.PrefixResync:
      return parsePrefixResync(buf, p, end);
    default:
      throw new UnknownFrameError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')}`);
  }
}

/** Decodes a buffer that holds exactly one whole frame, length prefix included. */
export function decodeFrame(frame: Buffer, options: FrameDecoderOptions = {}): Frame {
  let out: Frame | undefined;
  let count = 0;
  const decoder = new FrameDecoder((f) => {
    out = f;
    count++;
  }, options);
  decoder.push(frame);
  decoder.end();
  if (count !== 1 || !out) throw new MalformedFrameError(`expected one frame, found ${count}`);
  return out;
}

function parseMessage(buf: Buffer, view: DataView, p: number, end: number): Frame {
  need(p, end, 11, 'message');
  const flags = buf[p] as number;
  const ts = view.getBigInt64(p + 1);
  const idLen = view.getUint16(p + 9);
  const idEnd = p + 11 + idLen;
  if (idEnd > end) throw new MalformedFrameError(`message id of ${idLen} bytes overruns its frame`);
  return { kind: FrameKind.Message, flags, ts, id: readId(buf, p + 11, idEnd), data: buf.subarray(idEnd, end) };
}

function parsePublish(
  kind: typeof FrameKind.Publish | typeof FrameKind.Emit,
  buf: Buffer,
  view: DataView,
  p: number,
  end: number,
): Frame {
  need(p, end, 14, kind === FrameKind.Publish ? 'publish' : 'emit');
  const reqId = view.getUint32(p);
  const ts = view.getBigInt64(p + 4);
  const idLen = view.getUint16(p + 12);
  const idEnd = p + 14 + idLen;
  if (idEnd > end) throw new MalformedFrameError(`id of ${idLen} bytes overruns its frame`);
  return { kind, reqId, ts, id: readId(buf, p + 14, idEnd), data: buf.subarray(idEnd, end) };
}

function parseAck(buf: Buffer, p: number, end: number): Frame {
  need(p, end, 8, 'ack');
  const status = buf[p + 4] as number;
  const durability = buf[p + 5] as number;
  if (status > AckStatus.Error) throw new MalformedFrameError(`ack status ${status} is not 0, 1 or 2`);
  // durability is open to new values (Conventions, "Open values"): one this side does not know is handed on
  const wire = buf.readUInt16BE(p + 6);
  return {
    kind: FrameKind.Ack,
    reqId: buf.readUInt32BE(p),
    status: status as AckStatus,
    durability,
    code: status === AckStatus.Error ? codeFromWire(wire) : null,
    message: text(buf, p + 8, end),
  };
}

function parseHello(buf: Buffer, p: number, end: number): Frame {
  need(p, end, 14 + EPOCH_BYTES, 'hello');
  for (let i = 0; i < HELLO_MAGIC.length; i++) {
    if (buf[p + i] !== HELLO_MAGIC[i])
      throw new BadMagicError('hello does not start with the gossip magic 89 47 53 50');
  }
  const flags = buf[p + 5] as number;
  const ext = extension(buf, p + 14 + EPOCH_BYTES, end, 'hello');
  return {
    kind: FrameKind.Hello,
    version: buf[p + 4] as number,
    since: flags & 0x01 ? buf.readBigInt64BE(p + 6) : null,
    epoch: flags & 0x02 ? buf.toString('hex', p + 14, p + 14 + EPOCH_BYTES) : null,
    echo: (flags & 0x04) === 0,
    name: optionalString(ext, 'name'),
    token: optionalString(ext, 'token'),
    prefixes: helloPrefixes(ext),
  };
}

/**
 * The hello's `prefixes` (rule B2): an array of `[prefix, since]` pairs, prefix a string,
 * since an integer in the i64 range or nil. Undefined when absent. A prefix needs no
 * length check here: the extension holds at most MAX_EXTENSION_BYTES, under what a
 * prefix field can carry, and the server checks its own `maxPrefixBytes` (B1).
 */
function helloPrefixes(ext: Record<string, unknown>): PrefixSpec[] | undefined {
  if (!Object.hasOwn(ext, 'prefixes')) return undefined;
  const list = ext.prefixes;
  if (!Array.isArray(list)) throw new MalformedFrameError('hello prefixes must be an array');
  return list.map((entry, i): PrefixSpec => {
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new MalformedFrameError(`hello prefixes[${i}] must be a [prefix, since] pair`);
    }
    const [prefix, since] = entry as [unknown, unknown];
    if (typeof prefix !== 'string') throw new MalformedFrameError(`hello prefixes[${i}] prefix must be a string`);
    return { prefix, since: helloSince(since, i) };
  });
}

function helloSince(since: unknown, i: number): bigint | null {
  if (since === null) return null;
  if (typeof since === 'number' && Number.isSafeInteger(since)) return BigInt(since);
  if (typeof since === 'bigint' && since >= MIN_TS && since <= MAX_TS) return since;
  throw new MalformedFrameError(`hello prefixes[${i}] since must be nil or an integer in the signed 64-bit range`);
}

function parseSubscribe(buf: Buffer, p: number, end: number): Frame {
  const fixed = 4 + 1 + 8 + EPOCH_BYTES + 2;
  need(p, end, fixed, 'subscribe');
  const flags = buf[p + 4] as number;
  return {
    kind: FrameKind.Subscribe,
    reqId: buf.readUInt32BE(p),
    prefix: prefixAt(buf, p + fixed - 2, end, 'subscribe'),
    since: flags & 0x01 ? buf.readBigInt64BE(p + 5) : null,
    epoch: flags & 0x02 ? buf.toString('hex', p + 13, p + 13 + EPOCH_BYTES) : null,
  };
}

/** A prefix-done (B5): the fields of a replay-done (R2), then the prefix. */
function parsePrefixDone(buf: Buffer, p: number, end: number): Frame {
  need(p, end, DONE_BYTES + 2, 'prefix-done');
  const done = doneFields(buf, p, 'prefix-done');
  return { kind: FrameKind.PrefixDone, prefix: prefixAt(buf, p + DONE_BYTES, end, 'prefix-done'), ...done };
}

/** A prefix-resync (B6): the fields of a resync (R3), then the prefix. */
function parsePrefixResync(buf: Buffer, p: number, end: number): Frame {
  need(p, end, RESYNC_BYTES + 2, 'prefix-resync');
  const resync = resyncFields(buf, p);
  return { kind: FrameKind.PrefixResync, prefix: prefixAt(buf, p + RESYNC_BYTES, end, 'prefix-resync'), ...resync };
}

/** The `u16 length, bytes` prefix at `at` that must end exactly at the frame's end (rules B3–B6). */
function prefixAt(buf: Buffer, at: number, end: number, what: string): string {
  const n = buf.readUInt16BE(at);
  if (at + 2 + n !== end) {
    throw new MalformedFrameError(`${what} prefix of ${n} bytes does not end its frame (${end - at - 2} bytes left)`);
  }
  return readId(buf, at + 2, end, 'prefix');
}

function parseWelcome(buf: Buffer, p: number, end: number): Frame {
  const fixed = 2 + EPOCH_BYTES + 26;
  need(p, end, fixed, 'welcome');
  const q = p + 2 + EPOCH_BYTES;
  const ext = extension(buf, p + fixed, end, 'welcome');
  const pingIntervalMs = ext.pingIntervalMs;
  if (pingIntervalMs !== undefined && (typeof pingIntervalMs !== 'number' || !(pingIntervalMs >= 0))) {
    throw new MalformedFrameError('welcome pingIntervalMs must be a non-negative number');
  }
  const epoch = buf.subarray(p + 2, q);
  if (epoch.equals(ZERO_EPOCH)) throw new MalformedFrameError('welcome carries an all-zero epoch');
  return {
    kind: FrameKind.Welcome,
    version: buf[p] as number,
    epoch: epoch.toString('hex'),
    newestTs: buf.readBigInt64BE(q),
    horizon: (buf[p + 1] as number) & 0x01 ? buf.readBigInt64BE(q + 8) : null,
    maxIdBytes: buf.readUInt16BE(q + 16),
    maxDataBytes: buf.readUInt32BE(q + 18),
    maxFrameBytes: buf.readUInt32BE(q + 22),
    server: optionalString(ext, 'server'),
    pingIntervalMs,
    maxFetchIds: positiveInt(ext, 'maxFetchIds'),
    maxPrefixes: positiveInt(ext, 'maxPrefixes'),
    maxPrefixBytes: positiveInt(ext, 'maxPrefixBytes', MAX_PREFIX_FIELD_BYTES),
  };
}

function parseReplayDone(buf: Buffer, p: number, end: number): Frame {
  exact(p, end, DONE_BYTES, 'replay-done');
  return { kind: FrameKind.ReplayDone, ...doneFields(buf, p, 'replay-done') };
}

function parseResync(buf: Buffer, p: number, end: number): Frame {
  exact(p, end, RESYNC_BYTES, 'resync');
  return { kind: FrameKind.Resync, ...resyncFields(buf, p) };
}

/** Bytes of the fields a replay-done (R2) and a prefix-done (B5) share: flags, count, newestTs. */
const DONE_BYTES = 17;
/** Bytes of the fields a resync (R3) and a prefix-resync (B6) share: reason, flags, horizon. */
const RESYNC_BYTES = 10;

/** The replay-done fields at `p` (R2, B5); `what` names the frame in errors. */
function doneFields(buf: Buffer, p: number, what: string): { snapshot: boolean; count: number; newestTs: bigint } {
  const count = buf.readBigUInt64BE(p + 1);
  if (count > MAX_SAFE) throw new MalformedFrameError(`${what} count ${count} is beyond 2^53`);
  return {
    snapshot: ((buf[p] as number) & 0x01) !== 0,
    count: Number(count),
    newestTs: buf.readBigInt64BE(p + 9),
  };
}

/** The resync fields at `p` (R3, B6). */
function resyncFields(buf: Buffer, p: number): { reason: number; horizon: bigint | null } {
  // the reason is open to new values (Conventions, "Open values"): one this side does not know is handed on
  const reason = buf[p] as number;
  return {
    reason,
    horizon: (buf[p + 1] as number) & 0x01 ? buf.readBigInt64BE(p + 2) : null,
  };
}

function parseFetch(buf: Buffer, p: number, end: number): Frame {
  need(p, end, 6, 'fetch');
  const count = buf.readUInt16BE(p + 4);
  const ids: string[] = [];
  let q = p + 6;
  for (let i = 0; i < count; i++) {
    need(q, end, 2, 'fetch id');
    const n = buf.readUInt16BE(q);
    if (q + 2 + n > end) throw new MalformedFrameError(`fetch id of ${n} bytes overruns its frame`);
    ids.push(readId(buf, q + 2, q + 2 + n));
    q += 2 + n;
  }
  if (q !== end) throw new MalformedFrameError(`fetch has ${end - q} bytes after its ids`);
  return { kind: FrameKind.Fetch, reqId: buf.readUInt32BE(p), ids };
}

function parseFetchResult(buf: Buffer, p: number, end: number): Frame {
  need(p, end, 7, 'fetch-result');
  const count = buf.readUInt16BE(p + 5);
  const entries: FetchEntry[] = [];
  let q = p + 7;
  for (let i = 0; i < count; i++) {
    need(q, end, 3, 'fetch-result entry');
    const n = buf.readUInt16BE(q);
    if (q + 3 + n > end) throw new MalformedFrameError(`fetch-result id of ${n} bytes overruns its frame`);
    const entryId = readId(buf, q + 2, q + 2 + n);
    q += 2 + n;
    const found = buf[q++] as number;
    if (found === 0) {
      entries.push({ id: entryId, found: false });
    } else if (found === 1) {
      need(q, end, 12, 'fetch-result entry');
      const ts = buf.readBigInt64BE(q);
      const len = buf.readUInt32BE(q + 8);
      if (q + 12 + len > end) throw new MalformedFrameError(`fetch-result data of ${len} bytes overruns its frame`);
      entries.push({ id: entryId, found: true, ts, data: buf.subarray(q + 12, q + 12 + len) });
      q += 12 + len;
    } else {
      throw new MalformedFrameError(`fetch-result found byte ${found} is not 0 or 1`);
    }
  }
  if (q !== end) throw new MalformedFrameError(`fetch-result has ${end - q} bytes after its entries`);
  return {
    kind: FrameKind.FetchResult,
    reqId: buf.readUInt32BE(p),
    more: ((buf[p + 4] as number) & 0x01) !== 0,
    entries,
  };
}

function need(p: number, end: number, n: number, what: string): void {
  if (end - p < n) throw new MalformedFrameError(`${what} frame is ${end - p} bytes, shorter than its fixed ${n}`);
}

function exact(p: number, end: number, n: number, what: string): void {
  if (end - p !== n) throw new MalformedFrameError(`${what} frame body is ${end - p} bytes, not ${n}`);
}

function text(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, end);
}

function extension(buf: Buffer, start: number, end: number, what: string): Record<string, unknown> {
  if (start === end) return {};
  if (end - start > MAX_EXTENSION_BYTES)
    throw new MalformedFrameError(`${what} extension is ${end - start} bytes, over ${MAX_EXTENSION_BYTES}`);
  // What H1 allows is decided from the bytes; msgpackr then reads only what it was asked to.
  checkExtension(buf, start, end, what);
  let value: unknown;
  try {
    value = unpackr.unpack(buf.subarray(start, end));
  } catch (error) {
    throw new MalformedFrameError(`${what} extension is not valid msgpack`, { cause: error });
  }
  // Only a plain object is a map: msgpackr turns bin, timestamps and the unused byte 0xc1 into other objects.
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new MalformedFrameError(`${what} extension is not a msgpack map`);
  }
  return value as Record<string, unknown>;
}

/** A welcome key that, when present, is an integer from 1 to `max` (rules W1, B1). */
function positiveInt(ext: Record<string, unknown>, key: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = Object.hasOwn(ext, key) ? ext[key] : undefined;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? 'of at least 1' : `from 1 to ${max}`;
    throw new MalformedFrameError(`welcome ${key} must be an integer ${range}`);
  }
  return v;
}

function optionalString(ext: Record<string, unknown>, key: string): string | undefined {
  const v = Object.hasOwn(ext, key) ? ext[key] : undefined;
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new MalformedFrameError(`extension field ${key} must be a string`);
  return v;
}
