import { AckStatus, Durability, type SubscribeFrame, type UnsubscribeFrame } from '@gossip/protocol';
import type { ServerContext } from '../context.js';
import type { Session } from '../session.js';
import { refuseSubscribe, refuseUnsubscribe } from './check.js';

/**
 * Subscribe: refused with an error ack when the prefix is too long, held already or one
 * too many (check.ts); otherwise acked, then added: its replay, or at once its
 * prefix-done when it asks for none, follows the ack (docs/PROTOCOL.md, B3, B5).
 */
export function onSubscribe(session: Session, ctx: ServerContext, f: SubscribeFrame): void {
  if (refuseSubscribe(session, ctx, f)) return;
  session.ack(f.reqId, AckStatus.Accepted, Durability.None);
  session.prefixes.subscribe(f.prefix, f.since, f.epoch);
}

/**
 * Unsubscribe: refused with an error ack when the prefix is too long or not held;
 * otherwise dropped, and acked once its replay, if one runs, has queued the batch it was
 * reading: nothing is sent for that prefix alone after the ack (docs/PROTOCOL.md, B4).
 */
export function onUnsubscribe(session: Session, _ctx: ServerContext, f: UnsubscribeFrame): void {
  if (refuseUnsubscribe(session, f)) return;
  session.prefixes.unsubscribe(f.prefix, () => {
    if (!session.closed) session.ack(f.reqId, AckStatus.Accepted, Durability.None);
  });
}
