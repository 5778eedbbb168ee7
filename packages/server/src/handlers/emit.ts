import { AckStatus, Durability, type EmitFrame } from '@gossip/protocol';
import type { Connection } from '../connection.js';
import { refuse } from './check.js';

/** Emit: the same limits as a publish, then a transient broadcast; never stored (docs/PROTOCOL.md, P2). */
export function onEmit(conn: Connection, f: EmitFrame): void {
  const { ctx } = conn;
  ctx.stats.messagesIn++;
  ctx.stats.emits++;
  // reqId 0 asked for no ack, but a refusal is still reported, as an ack with reqId 0.
  if (refuse(conn, f.reqId, f.id, f.ts, f.data)) return;
  ctx.broadcast(conn, true, f.id, f.ts, f.data);
  if (f.reqId !== 0) {
    conn.enc.ack(f.reqId, AckStatus.Accepted, Durability.None);
    conn.touch();
  }
}
