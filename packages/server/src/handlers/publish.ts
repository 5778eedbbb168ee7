import { AckStatus, Durability, GossipError, type PublishFrame } from '@gossip/protocol';
import type { Publication, ServerContext } from '../context.js';
import { publishCost } from '../read-gate.js';
import type { PublishOutcome } from '../record-log.js';
import type { Session } from '../session.js';
import { refuse } from './check.js';

const ACCEPTED_DURABILITY = {
  none: Durability.None,
  written: Durability.Written,
  synced: Durability.Synced,
  replicated: Durability.Replicated,
} as const;

/**
 * Publish: limits, then store; the server's tick broadcasts and acks it once the store
 * settles it (`settlePublish`; docs/PROTOCOL.md, P1, A1).
 */
export function onPublish(session: Session, ctx: ServerContext, f: PublishFrame): void {
  ctx.stats.messagesIn++;
  ctx.stats.publishes++;
  if (refuse(session, ctx, f.reqId, f.id, f.ts, f.data)) return;
  session.publishing.add(publishCost(f.id.length, f.data.byteLength));
  ctx.stored(session, f, ctx.append(f.id, f.ts, f.data));
}

/**
 * The ack of a publish the store settled, from the tick (tick.ts), which has already
 * broadcast it if accepted: the echo comes first (A4). A failed write is an error ack
 * with the store's code (P1).
 */
export function settlePublish(
  session: Session,
  ctx: ServerContext,
  f: Publication,
  result: PublishOutcome | undefined,
  error: unknown,
): void {
  session.publishing.done(publishCost(f.id.length, f.data.byteLength));
  if (result === undefined) {
    ctx.stats.publishesFailed++;
    const code = error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL';
    session.ack(
      f.reqId,
      AckStatus.Error,
      Durability.None,
      code,
      error instanceof Error ? error.message : String(error),
    );
  } else if (result.status === 'accepted') {
    session.ack(f.reqId, AckStatus.Accepted, ACCEPTED_DURABILITY[result.durability]);
  } else {
    ctx.stats.publishesStale++;
    session.ack(f.reqId, AckStatus.Stale, Durability.None);
  }
}
