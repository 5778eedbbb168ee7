import { promisify } from 'node:util';
import { deflateSync, inflate, inflateSync, constants as zlibConstants } from 'node:zlib';
import {
  BadMagicError,
  DataTooLargeError,
  GossipError,
  InvalidArgumentError,
  InvalidIdError,
  MalformedFrameError,
  UnknownFrameError,
} from './errors.js';
import { DEFAULT_MAX_DATA_BYTES, DEFAULT_MAX_FRAME_BYTES, MAX_ID_BYTES } from './limits.js';
import { checkData, checkId, checkTs, readId } from './validate.js';

/*
 * The original gossip protocol (docs/PROTOCOL.md, "Legacy protocol", rules L1 to L6), so
 * that clients written for the original Go server can talk to gossipd unchanged. Every
 * integer is big-endian; lengths are u64.
 */

/** The client's handshake starts with these 6 ASCII bytes, followed by `since` as an i64 (rule L1). */
export const LEGACY_MAGIC: Readonly<Uint8Array> = Uint8Array.of(0x47, 0x4f, 0x53, 0x53, 0x49, 0x50);

/** The first byte of a legacy connection: the `G` of `GOSSIP`. A native hello starts with 0x00 (rule L1). */
export const LEGACY_FIRST_BYTE = LEGACY_MAGIC[0] as number;

/** Bytes of the client's handshake: `GOSSIP` and an i64. */
export const LEGACY_HELLO_BYTES = 14;

/** The server's answer to the handshake: `GOSSIP\n` (rule L1). */
export const LEGACY_WELCOME: Readonly<Uint8Array> = Uint8Array.of(0x47, 0x4f, 0x53, 0x53, 0x49, 0x50, 0x0a);

/**
 * What a legacy decoder hands out. `Persisted`, `Transient` and `ReplayDone` are the
 * kind bytes on the wire (rules L2, L3); the two handshakes have no kind byte.
 */
export const LegacyKind = {
  /** Client → server, once, first: `GOSSIP` and since. */
  Hello: 'hello',
  /** Server → client, once, first: `GOSSIP\n`. */
  Welcome: 'welcome',
  /** `M`: a publish (client → server) or a persisted message (server → client). */
  Persisted: 0x4d,
  /** `S`: an emit (client → server) or a transient message (server → client). */
  Transient: 0x53,
  /** `D`, server → client only: the replay is over. */
  ReplayDone: 0x44,
} as const;
export type LegacyKind = (typeof LegacyKind)[keyof typeof LegacyKind];

/** The byte the original client puts before every payload (rule L4). */
export const LegacyTag = {
  /** `=`: the data follows as is. */
  Raw: 0x3d,
  /** `z`: the data follows zlib-compressed (RFC 1950). */
  Zlib: 0x7a,
} as const;
export type LegacyTag = (typeof LegacyTag)[keyof typeof LegacyTag];

/** Data this large or larger is sent deflated (`z`) when that makes it smaller (rule L4). */
export const LEGACY_COMPRESS_MIN_BYTES = 1024;

export interface LegacyHello {
  kind: typeof LegacyKind.Hello;
  since: bigint;
}

export interface LegacyWelcome {
  kind: typeof LegacyKind.Welcome;
}

/** An `M` or `S` frame. `payload` is the data field as sent: the tag byte included (rule L4). */
export interface LegacyMessage {
  kind: typeof LegacyKind.Persisted | typeof LegacyKind.Transient;
  id: string;
  ts: bigint;
  payload: Buffer;
}

export interface LegacyReplayDone {
  kind: typeof LegacyKind.ReplayDone;
}

export type LegacyFrame = LegacyHello | LegacyWelcome | LegacyMessage | LegacyReplayDone;

export interface LegacyDecoderOptions {
  /**
   * Whose bytes are decoded: `'client'` (a server reading a client: the handshake, then
   * `M` and `S`) or `'server'` (a client reading a server: `GOSSIP\n`, then `M`, `S` and `D`).
   */
  from: 'client' | 'server';
  /**
   * Largest payload length (tag included) accepted; a larger declared length fails with
   * `GOSSIP_ERR_DATA_TOO_LARGE` before anything is allocated for it. At most 2^32 - 1.
   * Default: 10 MiB of data plus 64 KiB, as the native maximum frame.
   */
  maxPayloadBytes?: number;
}

// Decoder steps: which field is being read.
const HELLO = 0;
const KIND = 1;
const ID_LEN = 2;
const ID = 3;
const TS = 4;
const PAYLOAD_LEN = 5;
const PAYLOAD = 6;

const EMPTY = Buffer.alloc(0);
const U32 = 2 ** 32;

/**
 * A resumable decoder of the original protocol: push chunks of any size, and it calls
 * `onFrame` once per complete frame, in order. Like `FrameDecoder`, it checks every
 * declared length against its limit (256 for ids, `maxPayloadBytes` for payloads)
 * before allocating anything, throws only `GossipError`s with stable codes, and stays
 * failed after its first error. A payload is a view of the chunk it arrived in when it
 * arrived whole, or a buffer allocated for it alone; copy it before keeping it long.
 */
export class LegacyDecoder {
  readonly #onFrame: (frame: LegacyFrame) => void;
  readonly #from: 'client' | 'server';
  readonly #maxPayloadBytes: number;
  #step = HELLO;
  /** Bytes the current field needs, and how many of them are gathered in #scratch or #payload. */
  #need: number;
  #have = 0;
  /** Fixed fields and ids split across chunks (an id is at most 256 bytes). */
  readonly #scratch = Buffer.alloc(MAX_ID_BYTES);
  /** The payload being assembled across chunks, allocated once its length has been checked. */
  #payload: Buffer | null = null;
  #kind: LegacyMessage['kind'] = LegacyKind.Persisted;
  #id = '';
  #ts = 0n;
  #failed: GossipError | null = null;

  constructor(onFrame: (frame: LegacyFrame) => void, options: LegacyDecoderOptions) {
    this.#onFrame = onFrame;
    this.#from = options.from;
    this.#maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isSafeInteger(this.#maxPayloadBytes) || this.#maxPayloadBytes < 0 || this.#maxPayloadBytes >= U32)
      throw new InvalidArgumentError(
        `maxPayloadBytes must be an integer from 0 to 2^32-1, got ${this.#maxPayloadBytes}`,
      );
    this.#need = this.#from === 'client' ? LEGACY_HELLO_BYTES : LEGACY_WELCOME.length;
  }

  /** Bytes held for a field that has not arrived whole yet. */
  get bufferedBytes(): number {
    return this.#have;
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

  /** Declares the end of the stream: fails if it stopped inside the handshake or a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#have > 0 || (this.#step !== KIND && this.#step !== HELLO)) {
      this.#failed = new MalformedFrameError('stream ended inside a legacy frame');
      throw this.#failed;
    }
  }

  #push(chunk: Buffer): void {
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      const need = this.#need;
      let buf: Buffer;
      let at: number;
      if (this.#have === 0 && end - off >= need) {
        // The whole field is in this chunk: read it in place.
        buf = chunk;
        at = off;
        off += need;
      } else {
        // A payload's buffer is allocated only now: its length was checked when it was read.
        if (this.#step === PAYLOAD && this.#payload === null) this.#payload = Buffer.allocUnsafe(need);
        const into = this.#step === PAYLOAD ? (this.#payload as Buffer) : this.#scratch;
        const n = Math.min(need - this.#have, end - off);
        chunk.copy(into, this.#have, off, off + n);
        this.#have += n;
        off += n;
        // A wrong handshake fails at its first wrong byte, not once 14 bytes have come.
        if (this.#step === HELLO) this.#checkMagic(into, 0, this.#have);
        if (this.#have < need) return;
        this.#have = 0;
        buf = into;
        at = 0;
      }
      this.#field(buf, at, need);
    }
  }

  /** One complete field, `buf[at..at+n)`: decode it and move to the next. */
  #field(buf: Buffer, at: number, n: number): void {
    switch (this.#step) {
      case HELLO:
        this.#checkMagic(buf, at, n);
        this.#next(KIND, 1);
        if (this.#from === 'client') this.#onFrame({ kind: LegacyKind.Hello, since: buf.readBigInt64BE(at + 6) });
        else this.#onFrame({ kind: LegacyKind.Welcome });
        return;
      case KIND: {
        const kind = buf[at] as number;
        if (kind === LegacyKind.Persisted || kind === LegacyKind.Transient) {
          this.#kind = kind;
          this.#next(ID_LEN, 8);
        } else if (kind === LegacyKind.ReplayDone && this.#from === 'server') {
          this.#onFrame({ kind: LegacyKind.ReplayDone });
        } else if (kind === LegacyKind.ReplayDone) {
          throw new GossipError('GOSSIP_ERR_UNEXPECTED_FRAME', 'D (end of replay) is sent by the server only');
        } else {
          throw new UnknownFrameError(
            `unknown legacy frame kind 0x${kind.toString(16).padStart(2, '0')}: expected M or S${this.#from === 'server' ? ' or D' : ''}`,
          );
        }
        return;
      }
      case ID_LEN: {
        const hi = buf.readUInt32BE(at);
        const lo = buf.readUInt32BE(at + 4);
        if (hi !== 0 || lo > MAX_ID_BYTES) {
          throw new InvalidIdError(
            'GOSSIP_ERR_ID_TOO_LONG',
            `id length ${u64(hi, lo)} is over the maximum of ${MAX_ID_BYTES} bytes`,
          );
        }
        if (lo === 0) throw new InvalidIdError('GOSSIP_ERR_ID_EMPTY', 'id is empty: ids are 1 to 256 bytes of UTF-8');
        this.#next(ID, lo);
        return;
      }
      case ID:
        this.#id = readId(buf, at, at + n);
        this.#next(TS, 8);
        return;
      case TS:
        this.#ts = buf.readBigInt64BE(at);
        this.#next(PAYLOAD_LEN, 8);
        return;
      case PAYLOAD_LEN: {
        const hi = buf.readUInt32BE(at);
        const lo = buf.readUInt32BE(at + 4);
        if (hi !== 0 || lo > this.#maxPayloadBytes) {
          throw new DataTooLargeError(
            `data length ${u64(hi, lo)} is over the maximum of ${this.#maxPayloadBytes}: raise --max-frame`,
          );
        }
        if (lo === 0) this.#message(EMPTY);
        else this.#next(PAYLOAD, lo);
        return;
      }
      default: {
        // PAYLOAD: a view of the chunk, or the buffer allocated for it (then exactly n bytes).
        const payload = buf === this.#payload ? buf : buf.subarray(at, at + n);
        this.#payload = null;
        this.#message(payload);
      }
    }
  }

  #message(payload: Buffer): void {
    this.#next(KIND, 1);
    this.#onFrame({ kind: this.#kind, id: this.#id, ts: this.#ts, payload });
  }

  #next(step: number, need: number): void {
    this.#step = step;
    this.#need = need;
  }

  /** Checks the first `n` bytes of a handshake at `buf[at..]`. */
  #checkMagic(buf: Buffer, at: number, n: number): void {
    const magic = this.#from === 'client' ? LEGACY_MAGIC : LEGACY_WELCOME;
    for (let i = 0; i < Math.min(n, magic.length); i++) {
      if (buf[at + i] !== magic[i]) {
        throw new BadMagicError(
          this.#from === 'client'
            ? 'the legacy handshake must start with GOSSIP'
            : 'the server did not answer the handshake with GOSSIP\\n',
        );
      }
    }
  }
}

function u64(hi: number, lo: number): string {
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

export interface LegacyEncoderOptions {
  /** Size of each slab frames are written into. Default 64 KiB. */
  slabBytes?: number;
}

/**
 * Encodes the original protocol's frames into a slab; `take()` returns a view of what
 * was encoded since the last call, which the encoder never writes again (as
 * `FrameEncoder.take()`): write the same bytes to many sockets.
 */
export class LegacyEncoder {
  readonly #slabBytes: number;
  #slab: Buffer;
  #start = 0;
  #pos = 0;

  constructor(options: LegacyEncoderOptions = {}) {
    this.#slabBytes = options.slabBytes ?? 64 * 1024;
    if (!Number.isSafeInteger(this.#slabBytes) || this.#slabBytes < 1)
      throw new InvalidArgumentError(`slabBytes must be a positive integer, got ${this.#slabBytes}`);
    this.#slab = Buffer.allocUnsafe(this.#slabBytes);
  }

  /** Bytes encoded and not yet taken. */
  get pendingBytes(): number {
    return this.#pos - this.#start;
  }

  /** Returns everything encoded since the last call, as one buffer that is yours. */
  take(): Buffer {
    const out = this.#slab.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return out;
  }

  /** The client's handshake: `GOSSIP` and since (rule L1). */
  hello(since: bigint): this {
    checkTs(since);
    const p = this.#reserve(LEGACY_HELLO_BYTES);
    this.#slab.set(LEGACY_MAGIC, p);
    this.#slab.writeBigInt64BE(since, p + LEGACY_MAGIC.length);
    this.#pos = p + LEGACY_HELLO_BYTES;
    return this;
  }

  /** The server's answer to the handshake: `GOSSIP\n` (rule L1). */
  welcome(): this {
    const p = this.#reserve(LEGACY_WELCOME.length);
    this.#slab.set(LEGACY_WELCOME, p);
    this.#pos = p + LEGACY_WELCOME.length;
    return this;
  }

  /** `D`: the end of the replay (rule L3). */
  replayDone(): this {
    const p = this.#reserve(1);
    this.#slab[p] = LegacyKind.ReplayDone;
    this.#pos = p + 1;
    return this;
  }

  /** An `M` or `S` frame whose payload goes out exactly as given, tag and all (rule L2). */
  frame(kind: LegacyMessage['kind'], id: string, ts: bigint, payload: Uint8Array): this {
    const p = this.#head(kind, id, ts, payload.byteLength);
    this.#slab.set(payload, p);
    this.#pos = p + payload.byteLength;
    return this;
  }

  /**
   * An `M` or `S` frame carrying `data` the way the original client expects it: tagged
   * `=`, or `z` and deflated when the data is at least 1 KiB and deflating makes it
   * smaller (rule L4). An empty `data` (a tombstone) goes out as `=` alone.
   */
  message(kind: LegacyMessage['kind'], id: string, ts: bigint, data: Uint8Array): this {
    const deflated = data.byteLength >= LEGACY_COMPRESS_MIN_BYTES ? deflateSync(data, DEFLATE) : undefined;
    const zipped = deflated !== undefined && deflated.length < data.byteLength;
    const body = zipped ? deflated : data;
    const p = this.#head(kind, id, ts, 1 + body.byteLength);
    this.#slab[p] = zipped ? LegacyTag.Zlib : LegacyTag.Raw;
    this.#slab.set(body, p + 1);
    this.#pos = p + 1 + body.byteLength;
    return this;
  }

  /** Writes kind, id and ts and the payload's length; returns where the payload goes. */
  #head(kind: LegacyMessage['kind'], id: string, ts: bigint, payloadBytes: number): number {
    if (kind !== LegacyKind.Persisted && kind !== LegacyKind.Transient)
      throw new InvalidArgumentError(`a legacy message is M (0x4d) or S (0x53), got ${kind}`);
    const idBytes = checkId(id);
    checkTs(ts);
    const p = this.#reserve(1 + 8 + idBytes + 8 + 8 + payloadBytes);
    const s = this.#slab;
    s[p] = kind;
    s.writeUInt32BE(0, p + 1);
    s.writeUInt32BE(idBytes, p + 5);
    s.write(id, p + 9, 'utf8');
    let q = p + 9 + idBytes;
    s.writeBigInt64BE(ts, q);
    s.writeUInt32BE(Math.floor(payloadBytes / U32), q + 8);
    s.writeUInt32BE(payloadBytes >>> 0, q + 12);
    q += 16;
    return q;
  }

  /** Room for `n` more bytes; returns where they go. Never overwrites what `take()` handed out. */
  #reserve(n: number): number {
    if (this.#slab.length - this.#pos < n) {
      const pending = this.#pos - this.#start;
      let size = this.#slabBytes;
      while (size < pending + n) size *= 2;
      const next = Buffer.allocUnsafe(size);
      this.#slab.copy(next, 0, this.#start, this.#pos);
      this.#slab = next;
      this.#start = 0;
      this.#pos = pending;
    }
    return this.#pos;
  }
}

/** Fast deflate: a broadcast is compressed in the event loop, once per tick. */
const DEFLATE = { level: zlibConstants.Z_BEST_SPEED };

/**
 * The data a legacy payload carries (rule L4): the bytes after `=`, or the inflated
 * bytes after `z`, at most `maxDataBytes` of them. Inflating stops at `maxDataBytes`,
 * so a small payload that would inflate to gigabytes (a compression bomb) costs no
 * more than `maxDataBytes` of memory. Throws `GOSSIP_ERR_MALFORMED_FRAME` for a payload
 * with no tag or an unknown one, or `z` data that is not zlib; `GOSSIP_ERR_DATA_TOO_LARGE`
 * when the data is over `maxDataBytes`. The `=` result is a view of `payload`.
 */
export function unwrapLegacyPayload(payload: Uint8Array, maxDataBytes: number = DEFAULT_MAX_DATA_BYTES): Buffer {
  const buf = taggedPayload(payload);
  if (buf[0] === LegacyTag.Raw) return rawData(buf, maxDataBytes);
  try {
    // maxOutputLength must be at least 1; a limit of 0 is checked below.
    return checkInflated(inflateSync(buf.subarray(1), { maxOutputLength: Math.max(1, maxDataBytes) }), maxDataBytes);
  } catch (error) {
    throw inflateError(error, maxDataBytes);
  }
}

const inflateAsync = promisify(inflate);

/**
 * `unwrapLegacyPayload` with the `z` inflate run off the event loop, on libuv's
 * threadpool: a server inflating untrusted payloads does not stall its other clients
 * for as long as an inflate takes. The same results and errors; `=` answers at once.
 */
export async function inflateLegacyPayload(
  payload: Uint8Array,
  maxDataBytes: number = DEFAULT_MAX_DATA_BYTES,
): Promise<Buffer> {
  const buf = taggedPayload(payload);
  if (buf[0] === LegacyTag.Raw) return rawData(buf, maxDataBytes);
  try {
    return checkInflated(
      await inflateAsync(buf.subarray(1), { maxOutputLength: Math.max(1, maxDataBytes) }),
      maxDataBytes,
    );
  } catch (error) {
    throw inflateError(error, maxDataBytes);
  }
}

/** The payload as a Buffer, its tag checked to be `=` or `z`. */
function taggedPayload(payload: Uint8Array): Buffer {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (buf.length === 0) {
    throw new MalformedFrameError('legacy payload has no tag: an empty data field must be "=" (a tombstone)');
  }
  const tag = buf[0] as number;
  if (tag !== LegacyTag.Raw && tag !== LegacyTag.Zlib) {
    throw new MalformedFrameError(
      `legacy payload tag 0x${tag.toString(16).padStart(2, '0')} is neither "=" (raw) nor "z" (zlib)`,
    );
  }
  return buf;
}

function rawData(buf: Buffer, maxDataBytes: number): Buffer {
  const data = buf.subarray(1);
  checkData(data, maxDataBytes);
  return data;
}

function checkInflated(data: Buffer, maxDataBytes: number): Buffer {
  if (data.length > maxDataBytes) throw inflatesTooLarge(maxDataBytes);
  return data;
}

function inflateError(error: unknown, maxDataBytes: number): GossipError {
  if (error instanceof GossipError) return error;
  // zlib throws a RangeError once the output passes maxOutputLength.
  if (error instanceof RangeError) return inflatesTooLarge(maxDataBytes, error);
  return new MalformedFrameError('legacy "z" payload is not valid zlib data', { cause: error });
}

function inflatesTooLarge(max: number, cause?: unknown): DataTooLargeError {
  return new DataTooLargeError(
    `"z" data inflates to more than the maximum of ${max} bytes: raise --max-data`,
    cause === undefined ? undefined : { cause },
  );
}
