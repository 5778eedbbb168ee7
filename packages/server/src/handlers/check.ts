import { AckStatus, Durability, type ErrorCode, MAX_ID_BYTES, MIN_TS } from '@gossip/protocol';
import type { Connection } from '../connection.js';
import type { ServerContext } from '../context.js';

/** The codes `refusal` returns: a publish or emit over a limit, counted in `refused`. */
export const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'GOSSIP_ERR_ID_EMPTY',
  'GOSSIP_ERR_ID_TOO_LONG',
  'GOSSIP_ERR_DATA_TOO_LARGE',
  'GOSSIP_ERR_TS_AHEAD',
  'GOSSIP_ERR_TS_RESERVED',
]);

/**
 * The limits a publish or emit must meet beyond its framing (docs/PROTOCOL.md, E1; for
 * legacy clients L2): a native one is refused with an error ack and the connection
 * stays; a legacy one closes its connection (L6). Returns the refusal, or undefined.
 */
export function refusal(ctx: ServerContext, id: string, ts: bigint, data: Uint8Array): [ErrorCode, string] | undefined {
  const badId = idRefusal(id);
  if (badId) return badId;
  const max = ctx.store.maxDataBytes;
  if (data.byteLength > max) {
    return ['GOSSIP_ERR_DATA_TOO_LARGE', `data is ${data.byteLength} bytes, over the server's max-data of ${max}`];
  }
  // -2^63 is the wire's "no message" (the newest ts of an empty log, P4): stored, it
  // would make pongs and welcomes report a log that holds it as empty.
  if (ts === MIN_TS) {
    return ['GOSSIP_ERR_TS_RESERVED', `ts ${ts} (-2^63) is reserved for "no message": publish with a later ts`];
  }
  if (ctx.maxSkewNs > 0n && ts > ctx.latestAllowedTs()) {
    return [
      'GOSSIP_ERR_TS_AHEAD',
      `ts ${ts} is more than ${ctx.options.maxSkewMs} ms ahead of the server's clock: fix the publisher's clock`,
    ];
  }
  return undefined;
}

/**
 * An id the decoder handed on but no request may name: empty, or over 256 bytes
 * (docs/PROTOCOL.md, Conventions). Returns the refusal, or undefined.
 */
export function idRefusal(id: string): [ErrorCode, string] | undefined {
  if (id.length === 0) return ['GOSSIP_ERR_ID_EMPTY', 'id is empty: ids are 1 to 256 bytes of UTF-8'];
  // Up to 85 UTF-16 units cannot exceed 256 UTF-8 bytes: only longer ids need measuring.
  if (id.length > MAX_ID_BYTES / 3 && (id.length > MAX_ID_BYTES || Buffer.byteLength(id) > MAX_ID_BYTES)) {
    return ['GOSSIP_ERR_ID_TOO_LONG', `id is ${Buffer.byteLength(id)} bytes: ids are at most ${MAX_ID_BYTES} bytes`];
  }
  return undefined;
}

/**
 * Applies `refusal`: a refused publish or emit gets an error ack (with its reqId, 0 for
 * an emit that asked for none) and is counted. Returns whether it was refused.
 */
export function refuse(conn: Connection, reqId: number, id: string, ts: bigint, data: Uint8Array): boolean {
  const refused = refusal(conn.ctx, id, ts, data);
  if (!refused) return false;
  conn.ctx.stats.refused++;
  conn.enc.ack(reqId, AckStatus.Error, Durability.None, refused[0], refused[1]);
  conn.touch();
  return true;
}
