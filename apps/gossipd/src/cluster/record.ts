/**
 * The body of an id's message in the stream (docs/CLUSTER.md, "Records"):
 *
 *   offset 0  u8    format, 1
 *   offset 1  i64   ts, big-endian
 *   offset 9  u64   tag: the publishing edge's 32-bit id (offset 9, u32 BE), then its
 *                   32-bit publish count (offset 13, u32 BE; 0: no publish of a client)
 *   offset 17       data (empty: a tombstone)
 *
 * The tag lets the edge that published a message know it as its own when it comes back
 * through the stream, without a header to parse.
 */
export const RECORD_FORMAT = 1;
export const RECORD_HEADER_BYTES = 17;

export interface StreamRecord {
  ts: bigint;
  /** The tag's halves: the edge that wrote it, and its publish count. */
  edge: number;
  count: number;
  /** A view of the message's bytes. */
  data: Uint8Array;
}

export function encodeRecord(ts: bigint, edge: number, count: number, data: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + data.byteLength);
  out[0] = RECORD_FORMAT;
  out.writeBigInt64BE(ts, 1);
  out.writeUInt32BE(edge, 9);
  out.writeUInt32BE(count, 13);
  out.set(data, RECORD_HEADER_BYTES);
  return out;
}

/** The record in `body`, or undefined for bytes no edge of this format wrote. */
export function decodeRecord(body: Uint8Array): StreamRecord | undefined {
  if (body.byteLength < RECORD_HEADER_BYTES || body[0] !== RECORD_FORMAT) return undefined;
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return {
    ts: b.readBigInt64BE(1),
    edge: b.readUInt32BE(9),
    count: b.readUInt32BE(13),
    data: b.subarray(RECORD_HEADER_BYTES),
  };
}

/**
 * An emit on the core subject (never stored):
 *
 *   offset 0  u8    format, 1
 *   offset 1  i64   ts, big-endian
 *   offset 9  u16   id length in bytes
 *   offset 11       id (UTF-8), then data
 */
export function encodeEmit(id: string, ts: bigint, data: Uint8Array): Uint8Array {
  const idBytes = Buffer.from(id, 'utf8');
  const out = Buffer.allocUnsafe(11 + idBytes.length + data.byteLength);
  out[0] = RECORD_FORMAT;
  out.writeBigInt64BE(ts, 1);
  out.writeUInt16BE(idBytes.length, 9);
  idBytes.copy(out, 11);
  out.set(data, 11 + idBytes.length);
  return out;
}

export function decodeEmit(body: Uint8Array): { id: string; ts: bigint; data: Uint8Array } | undefined {
  if (body.byteLength < 11 || body[0] !== RECORD_FORMAT) return undefined;
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const idLen = b.readUInt16BE(9);
  if (idLen === 0 || 11 + idLen > b.length) return undefined;
  return { id: b.toString('utf8', 11, 11 + idLen), ts: b.readBigInt64BE(1), data: b.subarray(11 + idLen) };
}

/** The cluster's horizon record: the newest ts of a tombstone removed from the stream, and the highest stream sequence removed. */
export interface HorizonRecord {
  horizon: bigint;
  through: number;
}

export function encodeHorizon(h: HorizonRecord): Uint8Array {
  return Buffer.from(JSON.stringify({ format: 1, horizon: h.horizon.toString(), through: h.through }));
}

export function decodeHorizon(body: Uint8Array): HorizonRecord | undefined {
  try {
    const j = JSON.parse(Buffer.from(body).toString('utf8')) as { horizon?: unknown; through?: unknown };
    if (typeof j.horizon !== 'string' || !/^-?\d+$/.test(j.horizon) || !Number.isSafeInteger(j.through))
      return undefined;
    return { horizon: BigInt(j.horizon), through: j.through as number };
  } catch {
    return undefined;
  }
}
