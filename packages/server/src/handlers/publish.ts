import { AckStatus, Durability, GossipError, type PublishFrame } from '@gossip/protocol';
import type { AppendResult } from '@gossip/store';
import type { Connection } from '../connection.js';
import { refusal } from './check.js';

/** Publish: limits, then store, then ack, then broadcast (docs/PROTOCOL.md, P1, A1). */
export function onPublish(conn: Connection, f: PublishFrame): void {
  const { ctx } = conn;
  ctx.stats.messagesIn++;
  ctx.stats.publishes++;
  const refused = refusal(conn, f.id, f.ts, f.data);
  if (refused) {
    ctx.stats.refused++;
    conn.enc.ack(f.reqId, AckStatus.Error, Durability.None, refused[0], refused[1]);
    conn.touch();
    return;
  }
  ctx.store.append(f.id, f.ts, f.data).then(
    (result: AppendResult) => {
      if (result.status === 'accepted') {
        conn.enc.ack(
          f.reqId,
          AckStatus.Accepted,
          result.durability === 'synced' ? Durability.Synced : Durability.Written,
        );
        ctx.broadcast(conn, false, f.id, f.ts, f.data);
      } else {
        ctx.stats.publishesStale++;
        conn.enc.ack(f.reqId, AckStatus.Stale, Durability.None);
      }
      conn.touch();
    },
    (error: unknown) => {
      ctx.stats.publishesFailed++;
      const code = error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL';
      conn.enc.ack(
        f.reqId,
        AckStatus.Error,
        Durability.None,
        code,
        error instanceof Error ? error.message : String(error),
      );
      conn.touch();
    },
  );
}
