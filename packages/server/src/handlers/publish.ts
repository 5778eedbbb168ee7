import { AckStatus, Durability, GossipError, type PublishFrame } from '@gossip/protocol';
import type { AppendResult } from '@gossip/store';
import type { Connection } from '../connection.js';
import { publishCost } from '../read-gate.js';
import { refuse } from './check.js';

/** Publish: limits, then store, then ack, then broadcast (docs/PROTOCOL.md, P1, A1). */
export function onPublish(conn: Connection, f: PublishFrame): void {
  const { ctx } = conn;
  ctx.stats.messagesIn++;
  ctx.stats.publishes++;
  if (refuse(conn, f.reqId, f.id, f.ts, f.data)) return;
  conn.publishing.add(publishCost(f.id.length, f.data.byteLength));
  ctx.acks.wait(ctx.store.append(f.id, f.ts, f.data), conn, f);
}

/**
 * The publishes of a server waiting for their store promise, to be acked and broadcast
 * when it settles. The store settles every append of a group commit with one shared
 * promise, so the publishes of a batch share one list and one `then`: no closures per
 * message.
 */
export class PendingAcks {
  #promise: Promise<AppendResult> | undefined;
  #conns: Connection[] = [];
  #frames: PublishFrame[] = [];

  wait(promise: Promise<AppendResult>, conn: Connection, f: PublishFrame): void {
    if (promise !== this.#promise) {
      const conns: Connection[] = [];
      const frames: PublishFrame[] = [];
      this.#promise = promise;
      this.#conns = conns;
      this.#frames = frames;
      promise.then(
        (result) => {
          this.#release(promise);
          settle(conns, frames, result);
        },
        (error: unknown) => {
          this.#release(promise);
          fail(conns, frames, error);
        },
      );
    }
    this.#conns.push(conn);
    this.#frames.push(f);
  }

  #release(promise: Promise<AppendResult>): void {
    // A settled list takes no more entries: the next append of this promise (the store's
    // shared stale promise, say) starts a new one.
    if (this.#promise === promise) {
      this.#promise = undefined;
      this.#conns = [];
      this.#frames = [];
    }
  }
}

function settle(conns: Connection[], frames: PublishFrame[], result: AppendResult): void {
  if (result.status === 'accepted') {
    const durability = result.durability === 'synced' ? Durability.Synced : Durability.Written;
    for (let i = 0; i < frames.length; i++) {
      const conn = conns[i] as Connection;
      const f = frames[i] as PublishFrame;
      conn.publishing.done(publishCost(f.id.length, f.data.byteLength));
      conn.enc.ack(f.reqId, AckStatus.Accepted, durability);
      conn.touch();
      conn.ctx.broadcast(conn, false, f.id, f.ts, f.data);
    }
  } else {
    for (let i = 0; i < frames.length; i++) {
      const conn = conns[i] as Connection;
      const f = frames[i] as PublishFrame;
      conn.publishing.done(publishCost(f.id.length, f.data.byteLength));
      conn.ctx.stats.publishesStale++;
      conn.enc.ack(f.reqId, AckStatus.Stale, Durability.None);
      conn.touch();
    }
  }
}

function fail(conns: Connection[], frames: PublishFrame[], error: unknown): void {
  const code = error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  for (let i = 0; i < frames.length; i++) {
    const conn = conns[i] as Connection;
    const f = frames[i] as PublishFrame;
    conn.publishing.done(publishCost(f.id.length, f.data.byteLength));
    conn.ctx.stats.publishesFailed++;
    conn.enc.ack(f.reqId, AckStatus.Error, Durability.None, code, message);
    conn.touch();
  }
}
