import { Packr } from 'msgpackr/pack'; // the subpath: see decoder.ts
import type { Epoch } from './epoch.js';
import { checkEpoch } from './epoch.js';
import { type ErrorCode, InvalidArgumentError, InvalidIdError, wireCode } from './errors.js';
import { type AckStatus, type Durability, FrameKind, type ResyncReason } from './frame-kind.js';
import type { FetchEntry, HelloOptions, PrefixSpec, WelcomeOptions } from './frames.js';
import {
  EPOCH_BYTES,
  HELLO_MAGIC,
  MAX_EXTENSION_BYTES,
  MAX_FETCH_IDS,
  MAX_ID_BYTES,
  MAX_PREFIX_FIELD_BYTES,
  MAX_TS,
  MIN_TS,
  PROTOCOL_VERSION,
} from './limits.js';
import { checkPrefix, checkTs } from './validate.js';

const DEFAULT_SLAB_BYTES = 64 * 1024;
const HEADER_BYTES = 5; // u32 length + u8 kind (rule F1)
/** Bytes of a replay-done's fields (flags, count, newestTs: R2), which a prefix-done starts with (B5). */
const DONE_BYTES = 17;
/** Bytes of a resync's fields (reason, flags, horizon: R3), which a prefix-resync starts with (B6). */
const RESYNC_BYTES = 10;

const packr = new Packr({ useRecords: false, variableMapSize: true });

export interface FrameEncoderOptions {
  /** Size of each slab frames are written into. Default 64 KiB. */
  slabBytes?: number;
  /**
   * Skip the id checks (length, UTF-8). Only for tests that must send what a
   * well-behaved client never would; reached through `@gossip/protocol/testing`.
   */
  unchecked?: boolean;
}

/**
 * Encodes frames into a slab and hands them out with `take()`.
 *
 * Frames are appended one after another, so many frames written in one tick come out
 * of `take()` as one buffer: one `socket.write()` for all of them. `take()` returns a
 * view of the slab that the encoder never writes again: it is yours to keep, to queue
 * or to write to many sockets. When a slab is full the encoder starts a new one (twice
 * as large if one frame needs it), so a view never pins more than one slab.
 */
export class FrameEncoder {
  #slabBytes: number;
  #slab: Buffer;
  /** Over `#slab`: V8 writes a bigint through a DataView about three times faster than `writeBigInt64BE`. */
  #view: DataView;
  #start = 0;
  #pos = 0;
  readonly #unchecked: boolean;

  constructor(options: FrameEncoderOptions = {}) {
    this.#slabBytes = options.slabBytes ?? DEFAULT_SLAB_BYTES;
    // A slab of 0 bytes would make #grow double 0 forever.
    if (!Number.isSafeInteger(this.#slabBytes) || this.#slabBytes < 1)
      throw new InvalidArgumentError(`slabBytes must be a positive integer, got ${this.#slabBytes}`);
    this.#slab = Buffer.allocUnsafe(this.#slabBytes);
    this.#view = viewOf(this.#slab);
    this.#unchecked = options.unchecked ?? false;
  }

  /** Bytes encoded and not yet taken. */
  get pendingBytes(): number {
    return this.#pos - this.#start;
  }

  /** Returns every frame encoded since the last call, as one buffer that is yours. */
  take(): Buffer {
    const out = this.#slab.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return out;
  }

  /** Drops what was encoded since the last `take()`. */
  discard(): void {
    this.#pos = this.#start;
  }

  /** A message frame (rule M1). `flags` is a sum of `MessageFlags`. */
  message(flags: number, id: string, ts: bigint, data: Uint8Array): this {
    checkWireTs(ts);
    const p = this.#open(FrameKind.Message, 1 + 8 + 2 + id.length * 3 + data.byteLength);
    const s = this.#slab;
    s[p] = flags;
    this.#view.setBigInt64(p + 1, ts);
    const end = this.#id(id, p + 9);
    s.set(data, end);
    return this.#close(end + data.byteLength);
  }

  /** A publish frame (rule P1). */
  publish(reqId: number, id: string, ts: bigint, data: Uint8Array): this {
    checkReqId(reqId);
    checkWireTs(ts);
    const p = this.#open(FrameKind.Publish, 4 + 8 + 2 + id.length * 3 + data.byteLength);
    const s = this.#slab;
    this.#view.setUint32(p, reqId);
    this.#view.setBigInt64(p + 4, ts);
    const end = this.#id(id, p + 12);
    s.set(data, end);
    return this.#close(end + data.byteLength);
  }

  /** An emit frame (rule P2). `reqId` 0 asks for no ack. */
  emit(reqId: number, id: string, ts: bigint, data: Uint8Array): this {
    checkReqId(reqId);
    checkWireTs(ts);
    const p = this.#open(FrameKind.Emit, 4 + 8 + 2 + id.length * 3 + data.byteLength);
    const s = this.#slab;
    this.#view.setUint32(p, reqId);
    this.#view.setBigInt64(p + 4, ts);
    const end = this.#id(id, p + 12);
    s.set(data, end);
    return this.#close(end + data.byteLength);
  }

  /** An ack frame (rule A1). `code` is set only when `status` is `AckStatus.Error`. */
  ack(reqId: number, status: AckStatus, durability: Durability | number, code?: ErrorCode, message = ''): this {
    // durability is open to new values (docs/PROTOCOL.md, "Open values"): any byte
    openByte('durability', durability);
    const p = this.#open(FrameKind.Ack, 8 + message.length * 3);
    const s = this.#slab;
    s.writeUInt32BE(reqId, p);
    s[p + 4] = status;
    s[p + 5] = durability;
    s.writeUInt16BE(code === undefined ? 0 : wireCode(code), p + 6);
    return this.#close(p + 8 + s.write(message, p + 8, 'utf8'));
  }

  /** The client's hello (rule H1). */
  hello(options: HelloOptions = {}): this {
    const prefixes = options.prefixes === undefined ? undefined : helloPrefixes(options.prefixes);
    const ext = packExtension({ name: options.name, token: options.token, prefixes });
    const p = this.#open(FrameKind.Hello, 4 + 1 + 1 + 8 + EPOCH_BYTES + ext.length);
    const s = this.#slab;
    s.set(HELLO_MAGIC, p);
    s[p + 4] = options.version ?? PROTOCOL_VERSION;
    let flags = 0;
    if (options.since !== undefined && options.since !== null) flags |= 0x01;
    if (options.epoch) flags |= 0x02;
    if (options.echo === false) flags |= 0x04;
    s[p + 5] = flags;
    s.writeBigInt64BE(options.since ?? 0n, p + 6);
    writeEpoch(s, p + 14, options.epoch);
    s.set(ext, p + 14 + EPOCH_BYTES);
    return this.#close(p + 14 + EPOCH_BYTES + ext.length);
  }

  /** The server's welcome (rule W1). */
  welcome(options: WelcomeOptions): this {
    const ext = packExtension({
      server: options.server,
      pingIntervalMs: options.pingIntervalMs,
      maxFetchIds: positiveInt('maxFetchIds', options.maxFetchIds),
      maxPrefixes: positiveInt('maxPrefixes', options.maxPrefixes),
      maxPrefixBytes: positiveInt('maxPrefixBytes', options.maxPrefixBytes, MAX_PREFIX_FIELD_BYTES),
    });
    const p = this.#open(FrameKind.Welcome, 2 + EPOCH_BYTES + 8 + 8 + 2 + 4 + 4 + ext.length);
    const s = this.#slab;
    s[p] = options.version ?? PROTOCOL_VERSION;
    s[p + 1] = options.horizon === null ? 0 : 0x01;
    writeEpoch(s, p + 2, options.epoch);
    let q = p + 2 + EPOCH_BYTES;
    s.writeBigInt64BE(options.newestTs, q);
    s.writeBigInt64BE(options.horizon ?? 0n, q + 8);
    s.writeUInt16BE(options.maxIdBytes, q + 16);
    s.writeUInt32BE(options.maxDataBytes, q + 18);
    s.writeUInt32BE(options.maxFrameBytes, q + 22);
    q += 26;
    s.set(ext, q);
    return this.#close(q + ext.length);
  }

  /** Replay-done (rule R2). */
  replayDone(count: number, newestTs: bigint, snapshot: boolean): this {
    const p = this.#open(FrameKind.ReplayDone, DONE_BYTES);
    return this.#close(this.#done(p, count, newestTs, snapshot));
  }

  /** Resync: a full snapshot follows (rule R3). */
  resync(reason: ResyncReason | number, horizon: bigint | null): this {
    openByte('resync reason', reason);
    const p = this.#open(FrameKind.Resync, RESYNC_BYTES);
    return this.#close(this.#resync(p, reason, horizon));
  }

  /** Subscribe: adds `prefix` to the connection, replayed from `since` (null: live only; rule B3). */
  subscribe(reqId: number, prefix: string, since: bigint | null, epoch: Epoch | null): this {
    checkReqId(reqId);
    if (since !== null) checkTs(since);
    checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
    const p = this.#open(FrameKind.Subscribe, 4 + 1 + 8 + EPOCH_BYTES + 2 + prefix.length * 3);
    const s = this.#slab;
    s.writeUInt32BE(reqId, p);
    s[p + 4] = (since === null ? 0 : 0x01) | (epoch ? 0x02 : 0);
    s.writeBigInt64BE(since ?? 0n, p + 5);
    writeEpoch(s, p + 13, epoch);
    return this.#close(this.#prefix(prefix, p + 13 + EPOCH_BYTES));
  }

  /** Unsubscribe: drops `prefix` from the connection (rule B4). */
  unsubscribe(reqId: number, prefix: string): this {
    checkReqId(reqId);
    checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
    const p = this.#open(FrameKind.Unsubscribe, 4 + 2 + prefix.length * 3);
    this.#slab.writeUInt32BE(reqId, p);
    return this.#close(this.#prefix(prefix, p + 4));
  }

  /** The replay-done of one prefix (rule B5): a replay-done's fields, then the prefix. */
  prefixDone(prefix: string, count: number, newestTs: bigint, snapshot: boolean): this {
    checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
    const p = this.#open(FrameKind.PrefixDone, DONE_BYTES + 2 + prefix.length * 3);
    return this.#close(this.#prefix(prefix, this.#done(p, count, newestTs, snapshot)));
  }

  /** A resync of one prefix: a full snapshot of it follows (rule B6): a resync's fields, then the prefix. */
  prefixResync(prefix: string, reason: ResyncReason | number, horizon: bigint | null): this {
    openByte('prefix-resync reason', reason);
    checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
    const p = this.#open(FrameKind.PrefixResync, RESYNC_BYTES + 2 + prefix.length * 3);
    return this.#close(this.#prefix(prefix, this.#resync(p, reason, horizon)));
  }

  /** Fetch the newest persisted message of each id (rule Q1). */
  fetch(reqId: number, ids: readonly string[]): this {
    if (ids.length > MAX_FETCH_IDS)
      throw new InvalidArgumentError(`a fetch names at most ${MAX_FETCH_IDS} ids, got ${ids.length}`);
    let bound = 6;
    for (const id of ids) bound += 2 + id.length * 3;
    const p = this.#open(FrameKind.Fetch, bound);
    const s = this.#slab;
    s.writeUInt32BE(reqId, p);
    s.writeUInt16BE(ids.length, p + 4);
    let q = p + 6;
    for (const id of ids) q = this.#id(id, q);
    return this.#close(q);
  }

  /** A fetch result (rule Q2). `more` says another result frame for `reqId` follows. */
  fetchResult(reqId: number, more: boolean, entries: readonly FetchEntry[]): this {
    if (entries.length > 0xffff)
      throw new InvalidArgumentError(`a fetch result holds at most 65535 entries, got ${entries.length}`);
    let bound = 7;
    for (const e of entries) bound += 2 + e.id.length * 3 + 1 + (e.found ? 12 + e.data.byteLength : 0);
    const p = this.#open(FrameKind.FetchResult, bound);
    const s = this.#slab;
    s.writeUInt32BE(reqId, p);
    s[p + 4] = more ? 0x01 : 0;
    s.writeUInt16BE(entries.length, p + 5);
    let q = p + 7;
    for (const e of entries) {
      q = this.#id(e.id, q);
      if (e.found) {
        s[q] = 1;
        s.writeBigInt64BE(e.ts, q + 1);
        s.writeUInt32BE(e.data.byteLength, q + 9);
        s.set(e.data, q + 13);
        q += 13 + e.data.byteLength;
      } else {
        s[q++] = 0;
      }
    }
    return this.#close(q);
  }

  /** An error frame (rule E2); the sender closes the connection after it. */
  error(code: ErrorCode, message: string): this {
    const p = this.#open(FrameKind.Error, 2 + message.length * 3);
    const s = this.#slab;
    s.writeUInt16BE(wireCode(code), p);
    return this.#close(p + 2 + s.write(message, p + 2, 'utf8'));
  }

  /** Ping (rule K1). */
  ping(nonce: number): this {
    const p = this.#open(FrameKind.Ping, 4);
    this.#slab.writeUInt32BE(nonce, p);
    return this.#close(p + 4);
  }

  /** Pong with the server's newest persisted ts (rule K2). */
  pong(nonce: number, newestTs: bigint): this {
    const p = this.#open(FrameKind.Pong, 12);
    this.#slab.writeUInt32BE(nonce, p);
    this.#slab.writeBigInt64BE(newestTs, p + 4);
    return this.#close(p + 12);
  }

  /** Reserves room for a frame of at most `bound` body bytes and writes its kind; returns where the body starts. */
  #open(kind: FrameKind, bound: number): number {
    const need = HEADER_BYTES + bound;
    if (this.#slab.length - this.#pos < need) this.#grow(need);
    this.#slab[this.#pos + 4] = kind;
    return this.#pos + HEADER_BYTES;
  }

  /** Writes the length of the frame that ends at `end` and moves past it. */
  #close(end: number): this {
    this.#slab.writeUInt32BE(end - this.#pos - 4, this.#pos);
    this.#pos = end;
    return this;
  }

  /** Writes `u16 length, bytes` of an id at `at`, returns the offset after it. */
  #id(id: string, at: number): number {
    const s = this.#slab;
    let n = 0;
    // Short ASCII ids, the common case, are copied by a loop: cheaper than a native call.
    const len = id.length;
    if (len <= 64) {
      while (n < len) {
        const c = id.charCodeAt(n);
        if (c >= 0x80) break;
        s[at + 2 + n] = c;
        n++;
      }
    }
    if (n < len) n = s.write(id, at + 2, 'utf8');
    // A throw here leaves #pos at the frame's start: nothing of the frame is visible to take().
    if (!this.#unchecked) {
      if (n === 0) throw new InvalidIdError('GOSSIP_ERR_ID_EMPTY', 'id is empty: ids are 1 to 256 bytes of UTF-8');
      if (n > MAX_ID_BYTES) {
        throw new InvalidIdError(
          'GOSSIP_ERR_ID_TOO_LONG',
          `id is ${n} bytes long: ids are at most ${MAX_ID_BYTES} bytes of UTF-8`,
        );
      }
      if (!id.isWellFormed())
        throw new InvalidIdError('GOSSIP_ERR_ID_NOT_UTF8', 'id holds a lone surrogate and cannot be UTF-8');
    } else if (n > 0xffff) {
      throw new InvalidArgumentError(`id is ${n} bytes long: the wire holds at most 65535`);
    }
    s.writeUInt16BE(n, at);
    return at + 2 + n;
  }

  /** Writes the fields a replay-done and a prefix-done share (R2, B5) at `p`; returns the offset after them. */
  #done(p: number, count: number, newestTs: bigint, snapshot: boolean): number {
    const s = this.#slab;
    s[p] = snapshot ? 0x01 : 0;
    s.writeBigUInt64BE(BigInt(count), p + 1);
    s.writeBigInt64BE(newestTs, p + 9);
    return p + DONE_BYTES;
  }

  /** Writes the fields a resync and a prefix-resync share (R3, B6) at `p`; returns the offset after them. */
  #resync(p: number, reason: number, horizon: bigint | null): number {
    const s = this.#slab;
    s[p] = reason;
    s[p + 1] = horizon === null ? 0 : 0x01;
    s.writeBigInt64BE(horizon ?? 0n, p + 2);
    return p + RESYNC_BYTES;
  }

  /**
   * Writes `u16 length, bytes` of a prefix at `at`, returns the offset after it. The
   * caller checked the prefix (`checkPrefix`) before `#open`, so a prefix too long for
   * the wire is refused before the slab grows for it (room for 3 bytes per code unit).
   */
  #prefix(prefix: string, at: number): number {
    const n = this.#slab.write(prefix, at + 2, 'utf8');
    this.#slab.writeUInt16BE(n, at);
    return at + 2 + n;
  }

  #grow(need: number): void {
    const pending = this.#pos - this.#start;
    let size = this.#slabBytes;
    while (size < pending + need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#slab.copy(next, 0, this.#start, this.#pos);
    this.#slab = next;
    this.#view = viewOf(next);
    this.#start = 0;
    this.#pos = pending;
  }
}

/*
 * DataView's setters wrap out-of-range values silently (2^63 would go out as -2^63,
 * a reqId of 2^32 as 0, which an emit reads as "no ack"), unlike Buffer's, which throw:
 * so the hot-path frames check their ts and reqId themselves.
 */
function checkWireTs(ts: bigint): void {
  if (ts < MIN_TS || ts > MAX_TS) throw new InvalidArgumentError(`ts ${ts} is outside the signed 64-bit range`);
}

/** A welcome limit (W1, B1): undefined, or an integer from 1 to `max`. */
function positiveInt(name: string, v: number | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1 && v <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? 'of at least 1' : `from 1 to ${max}`;
    throw new InvalidArgumentError(`${name} must be an integer ${range}, got ${v}`);
  }
  return v;
}

function checkReqId(reqId: number): void {
  if (reqId >>> 0 !== reqId) throw new InvalidArgumentError(`reqId must be an integer from 0 to 2^32-1, got ${reqId}`);
}

function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function packExtension(fields: Record<string, unknown>): Buffer {
  const present: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) present[k] = v;
  const bytes = packr.pack(present);
  if (bytes.length > MAX_EXTENSION_BYTES) {
    throw new InvalidArgumentError(`hello/welcome extension is ${bytes.length} bytes, over ${MAX_EXTENSION_BYTES}`);
  }
  return bytes;
}

/** A hello's `prefixes` as its extension holds them (rule B2): `[prefix, since]` pairs, since an int64 or nil. */
function helloPrefixes(prefixes: readonly PrefixSpec[]): [string, bigint | null][] {
  if (!Array.isArray(prefixes)) throw new InvalidArgumentError('prefixes must be an array');
  return prefixes.map(({ prefix, since }) => {
    checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
    if (since !== null) checkTs(since);
    return [prefix, since];
  });
}

function writeEpoch(s: Buffer, at: number, epoch: string | null | undefined): void {
  if (epoch) {
    checkEpoch(epoch);
    s.write(epoch, at, EPOCH_BYTES, 'hex');
  } else {
    s.fill(0, at, at + EPOCH_BYTES);
  }
}

/** A field open to new values (docs/PROTOCOL.md, "Open values") still holds one byte. */
function openByte(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 255)
    throw new InvalidArgumentError(`${what} must be an integer from 0 to 255, got ${value}`);
}
