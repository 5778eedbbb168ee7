import { AckStatus, Durability, type EmitFrame } from '@gossip/protocol';
import type { ServerContext } from '../context.js';
import type { Session } from '../session.js';
import { refuse } from './check.js';

/** Emit: the same limits as a publish, then a transient broadcast; never stored (docs/PROTOCOL.md, P2). */
export function onEmit(session: Session, ctx: ServerContext, f: EmitFrame): void {
  ctx.stats.messagesIn++;
  ctx.stats.emits++;
  // reqId 0 asked for no ack, but a refusal is still reported, as an ack with reqId 0.
  if (refuse(session, ctx, f.reqId, f.id, f.ts, f.data)) return;
  ctx.broadcast(session, true, f.id, f.ts, f.data);
  if (f.reqId !== 0) session.ack(f.reqId, AckStatus.Accepted, Durability.None);
}
