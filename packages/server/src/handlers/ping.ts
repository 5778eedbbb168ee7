import { MIN_TS, type PingFrame } from '@gossip/protocol';
import type { Connection } from '../connection.js';

/** Ping: a pong carrying the newest persisted ts, so an idle client can advance (docs/PROTOCOL.md, K1, K2). */
export function onPing(conn: Connection, f: PingFrame): void {
  conn.enc.pong(f.nonce, conn.ctx.store.newestTs ?? MIN_TS);
  conn.touch();
}
