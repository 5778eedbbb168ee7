import { isUtf8 } from 'node:buffer';
import { DataTooLargeError, GossipError, InvalidArgumentError, InvalidIdError } from './errors.js';
import { MAX_ID_BYTES, MAX_TS, MIN_TS } from './limits.js';

/**
 * Checks an id (1 to 256 bytes of UTF-8) and returns its byte length.
 * A lone surrogate cannot be encoded as UTF-8, so it is refused rather than silently
 * replaced: two different strings must never become the same stored id.
 */
export function checkId(id: string): number {
  if (typeof id !== 'string') throw new InvalidArgumentError('id must be a string');
  if (id.length === 0) throw new InvalidIdError('GOSSIP_ERR_ID_EMPTY', 'id is empty: ids are 1 to 256 bytes of UTF-8');
  if (id.length > MAX_ID_BYTES) throw idTooLong(id.length);
  const bytes = Buffer.byteLength(id, 'utf8');
  if (bytes > MAX_ID_BYTES) throw idTooLong(bytes);
  if (!id.isWellFormed())
    throw new InvalidIdError('GOSSIP_ERR_ID_NOT_UTF8', 'id holds a lone surrogate and cannot be UTF-8');
  return bytes;
}

/**
 * Checks a subscription prefix (rule B1): a string ("" matches every id) of at most
 * `maxBytes` bytes of UTF-8 (`GOSSIP_ERR_PREFIX_TOO_LONG`), with no lone surrogate
 * (`GOSSIP_ERR_ID_NOT_UTF8`, as for ids). Returns its byte length.
 */
export function checkPrefix(prefix: string, maxBytes: number): number {
  if (typeof prefix !== 'string') throw new InvalidArgumentError('a prefix must be a string');
  const bytes = prefix.length > maxBytes ? prefix.length : Buffer.byteLength(prefix, 'utf8');
  if (bytes > maxBytes) {
    throw new GossipError(
      'GOSSIP_ERR_PREFIX_TOO_LONG',
      `prefix is ${bytes}${prefix.length > maxBytes ? '+' : ''} bytes long: prefixes are at most ${maxBytes} bytes of UTF-8`,
    );
  }
  if (!prefix.isWellFormed())
    throw new InvalidIdError('GOSSIP_ERR_ID_NOT_UTF8', 'prefix holds a lone surrogate and cannot be UTF-8');
  return bytes;
}

/**
 * Reads the id bytes `buf[start..end)` as a string; invalid UTF-8 fails with
 * `GOSSIP_ERR_ID_NOT_UTF8` instead of being replaced. For the decoders (native and
 * legacy); not exported from the package.
 */
export function readId(buf: Buffer, start: number, end: number, what = 'id'): string {
  const s = buf.toString('utf8', start, end);
  // U+FFFD marks a replaced sequence, or a real U+FFFD: only then check the bytes.
  if (s.includes('\uFFFD') && !isUtf8(buf.subarray(start, end))) {
    throw new InvalidIdError('GOSSIP_ERR_ID_NOT_UTF8', `${what} is not valid UTF-8`);
  }
  return s;
}

function idTooLong(bytes: number): InvalidIdError {
  return new InvalidIdError(
    'GOSSIP_ERR_ID_TOO_LONG',
    `id is ${bytes}${bytes > MAX_ID_BYTES ? '' : '+'} bytes long: ids are at most ${MAX_ID_BYTES} bytes of UTF-8`,
  );
}

/** Checks a payload's size against a maximum (`--max-data` on the server). */
export function checkData(data: Uint8Array, maxDataBytes: number): void {
  if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('data must be a Uint8Array');
  if (data.byteLength > maxDataBytes) {
    throw new DataTooLargeError(
      `data is ${data.byteLength} bytes, over the maximum of ${maxDataBytes}: raise --max-data`,
    );
  }
}

/** Checks that a ts is a bigint within the signed 64-bit range. */
export function checkTs(ts: bigint): void {
  if (typeof ts !== 'bigint') throw new InvalidArgumentError(`ts must be a bigint of nanoseconds, got ${typeof ts}`);
  if (ts < MIN_TS || ts > MAX_TS) throw new InvalidArgumentError(`ts ${ts} is outside the signed 64-bit range`);
}

/**
 * Checks the ts of a message a client sends (publish, delete, emit) before anything is
 * queued: a bigint within the signed 64-bit range (GOSSIP_ERR_INVALID_ARGUMENT) other
 * than -2^63, which the wire reserves for "no message" and a server refuses
 * (GOSSIP_ERR_TS_RESERVED; docs/PROTOCOL.md, P4). `what` names the value in messages.
 */
export function checkMessageTs(ts: unknown, what = 'ts'): asserts ts is bigint {
  if (typeof ts !== 'bigint')
    throw new InvalidArgumentError(`${what} must be a bigint of nanoseconds, got ${typeof ts}`);
  if (ts === MIN_TS) {
    throw new GossipError(
      'GOSSIP_ERR_TS_RESERVED',
      `${what} is -2^63, which the protocol reserves for "no message" (P4): use a later ts`,
    );
  }
  if (ts < MIN_TS || ts > MAX_TS) throw new InvalidArgumentError(`${what} ${ts} is outside the signed 64-bit range`);
}
