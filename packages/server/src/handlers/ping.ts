import { MIN_TS, type PingFrame } from '@gossip/protocol';
import type { ServerContext } from '../context.js';
import type { Session } from '../session.js';

/** Ping: a pong carrying the newest persisted ts, so an idle client can advance (docs/PROTOCOL.md, K1, K2). */
export function onPing(session: Session, ctx: ServerContext, f: PingFrame): void {
  session.enc.pong(f.nonce, ctx.store.newestTs ?? MIN_TS);
  session.touch();
}
