import {
  AckStatus,
  Durability,
  type ErrorCode,
  type FetchFrame,
  MAX_ID_BYTES,
  MAX_PREFIX_BYTES,
  MIN_TS,
  type PrefixSpec,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '@gossip/protocol';
import type { ServerContext } from '../context.js';
import { refused as countRefusal } from '../events.js';
import type { PrefixSet, Session } from '../session.js';

/*
 * The one place the server enforces the limits of what a client asks for, native or
 * legacy: an id of 1 to 256 bytes, data up to --max-data, a ts not reserved and not
 * too far ahead, at most --max-fetch-ids ids a fetch, at most --max-prefixes prefixes
 * of at most 256 bytes a connection, each once (docs/PROTOCOL.md, Conventions, P1, P2,
 * P4, Q1, B1 to B4, L2). The welcome announces them from here too. What the protocol's
 * decoders check (frame sizes, UTF-8, a legacy id length or payload as it is read, the
 * shape of a hello's prefixes) and what the store checks again stay theirs.
 */

/** The codes `refusal` returns: a publish or emit over a limit, counted in `refused`. */
export const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'GOSSIP_ERR_ID_EMPTY',
  'GOSSIP_ERR_ID_TOO_LONG',
  'GOSSIP_ERR_DATA_TOO_LARGE',
  'GOSSIP_ERR_TS_AHEAD',
  'GOSSIP_ERR_TS_RESERVED',
]);

/** A refusal: the code and a message that says what to change. */
export type Refusal = [ErrorCode, string];

/** The limits as the welcome announces them (W1, B1). */
export function announcedLimits(ctx: ServerContext): {
  maxIdBytes: number;
  maxDataBytes: number;
  maxFetchIds: number;
  maxPrefixes: number;
  maxPrefixBytes: number;
} {
  return {
    maxIdBytes: MAX_ID_BYTES,
    maxDataBytes: ctx.store.maxDataBytes,
    maxFetchIds: ctx.options.maxFetchIds,
    maxPrefixes: ctx.options.maxPrefixes,
    maxPrefixBytes: MAX_PREFIX_BYTES,
  };
}

/**
 * The limits a publish or emit must meet beyond its framing (docs/PROTOCOL.md, E1; for
 * legacy clients L2): a native one is refused with an error ack and the connection
 * stays; a legacy one closes its connection (L6). Returns the refusal, or undefined.
 */
export function refusal(ctx: ServerContext, id: string, ts: bigint, data: Uint8Array): Refusal | undefined {
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
 * A fetch the server will not run: more ids than --max-fetch-ids, or an empty or too
 * long id (docs/PROTOCOL.md, Q1). Returns the refusal, or undefined.
 */
export function fetchRefusal(ctx: ServerContext, f: FetchFrame): Refusal | undefined {
  const max = ctx.options.maxFetchIds;
  if (f.ids.length > max) {
    return ['GOSSIP_ERR_TOO_MANY_IDS', `a fetch may name at most ${max} ids, this one names ${f.ids.length}`];
  }
  for (const id of f.ids) {
    const refused = idRefusal(id);
    if (refused) return refused;
  }
  return undefined;
}

/**
 * An id the decoder handed on but no request may name: empty, or over 256 bytes
 * (docs/PROTOCOL.md, Conventions). Returns the refusal, or undefined.
 */
function idRefusal(id: string): Refusal | undefined {
  if (id.length === 0) return ['GOSSIP_ERR_ID_EMPTY', 'id is empty: ids are 1 to 256 bytes of UTF-8'];
  // Up to 85 UTF-16 units cannot exceed 256 UTF-8 bytes: only longer ids need measuring.
  if (id.length > MAX_ID_BYTES / 3 && (id.length > MAX_ID_BYTES || Buffer.byteLength(id) > MAX_ID_BYTES)) {
    return ['GOSSIP_ERR_ID_TOO_LONG', `id is ${Buffer.byteLength(id)} bytes: ids are at most ${MAX_ID_BYTES} bytes`];
  }
  return undefined;
}

/**
 * The prefixes of a hello the server will not take (B2), each fatal: more than
 * --max-prefixes, one over 256 bytes, one named twice. Returns the refusal, or undefined.
 */
export function helloPrefixesRefusal(ctx: ServerContext, prefixes: readonly PrefixSpec[]): Refusal | undefined {
  const max = ctx.options.maxPrefixes;
  if (prefixes.length > max) {
    return [
      'GOSSIP_ERR_TOO_MANY_PREFIXES',
      `a hello may name at most ${max} prefixes, this one names ${prefixes.length}: subscribe to fewer, or raise --max-prefixes`,
    ];
  }
  const seen = new Set<string>();
  for (const { prefix } of prefixes) {
    const refused = prefixRefusal(prefix);
    if (refused) return refused;
    if (seen.has(prefix)) {
      return ['GOSSIP_ERR_ALREADY_SUBSCRIBED', `the hello names the prefix ${JSON.stringify(prefix)} twice`];
    }
    seen.add(prefix);
  }
  return undefined;
}

/**
 * A subscribe the server will not take (B3): a prefix over 256 bytes, one the
 * connection holds, or one past --max-prefixes. Returns the refusal, or undefined.
 */
export function subscribeRefusal(ctx: ServerContext, held: PrefixSet, prefix: string): Refusal | undefined {
  const refused = prefixRefusal(prefix);
  if (refused) return refused;
  if (held.has(prefix)) {
    return [
      'GOSSIP_ERR_ALREADY_SUBSCRIBED',
      `already subscribed to ${JSON.stringify(prefix)}: unsubscribe first to replay it again`,
    ];
  }
  const max = ctx.options.maxPrefixes;
  if (held.size >= max) {
    return [
      'GOSSIP_ERR_TOO_MANY_PREFIXES',
      `a connection may hold at most ${max} prefixes: unsubscribe from one first, or raise --max-prefixes`,
    ];
  }
  return undefined;
}

/** An unsubscribe the server will not take (B4): a prefix over 256 bytes, or one the connection does not hold. */
export function unsubscribeRefusal(held: PrefixSet, prefix: string): Refusal | undefined {
  const refused = prefixRefusal(prefix);
  if (refused) return refused;
  if (!held.has(prefix)) return ['GOSSIP_ERR_NOT_SUBSCRIBED', `not subscribed to ${JSON.stringify(prefix)}`];
  return undefined;
}

/** A prefix over gossipd's 256 bytes (B1, `MAX_PREFIX_BYTES`); the empty prefix is valid. */
function prefixRefusal(prefix: string): Refusal | undefined {
  // As for ids: up to 85 UTF-16 units cannot exceed 256 UTF-8 bytes.
  if (prefix.length > MAX_PREFIX_BYTES / 3) {
    const bytes = prefix.length > MAX_PREFIX_BYTES ? prefix.length : Buffer.byteLength(prefix);
    if (bytes > MAX_PREFIX_BYTES) {
      return [
        'GOSSIP_ERR_PREFIX_TOO_LONG',
        `prefix is ${Buffer.byteLength(prefix)} bytes: prefixes are at most ${MAX_PREFIX_BYTES} bytes`,
      ];
    }
  }
  return undefined;
}

/**
 * Applies `refusal`: a refused publish or emit gets an error ack (with its reqId, 0 for
 * an emit that asked for none) and is counted. Returns whether it was refused.
 */
export function refuse(
  session: Session,
  ctx: ServerContext,
  reqId: number,
  id: string,
  ts: bigint,
  data: Uint8Array,
): boolean {
  return refused(session, ctx, reqId, refusal(ctx, id, ts, data));
}

/** Applies `fetchRefusal`: an error ack for the fetch's reqId, and the connection stays (Q1). */
export function refuseFetch(session: Session, ctx: ServerContext, f: FetchFrame): boolean {
  return refused(session, ctx, f.reqId, fetchRefusal(ctx, f));
}

/**
 * Applies `subscribeRefusal` (B3): an error ack for the subscribe's reqId, and nothing
 * changes. Not counted in `refused`, which counts publishes and emits (and fetches).
 */
export function refuseSubscribe(session: Session, ctx: ServerContext, f: SubscribeFrame): boolean {
  return errorAck(session, f.reqId, subscribeRefusal(ctx, session.prefixes, f.prefix));
}

/** Applies `unsubscribeRefusal` (B4): an error ack for the unsubscribe's reqId. */
export function refuseUnsubscribe(session: Session, f: UnsubscribeFrame): boolean {
  return errorAck(session, f.reqId, unsubscribeRefusal(session.prefixes, f.prefix));
}

function refused(session: Session, ctx: ServerContext, reqId: number, refusal: Refusal | undefined): boolean {
  if (!refusal) return false;
  countRefusal(ctx, session, refusal[0], refusal[1]);
  return errorAck(session, reqId, refusal);
}

function errorAck(session: Session, reqId: number, refusal: Refusal | undefined): boolean {
  if (!refusal) return false;
  session.ack(reqId, AckStatus.Error, Durability.None, refusal[0], refusal[1]);
  return true;
}
