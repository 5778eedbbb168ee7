import { AckStatus, Durability, GossipError, type PublishFrame } from '@gossip/protocol';
import type { AppendResult } from '@gossip/store';
import type { Connection } from '../connection.js';
import { refuse } from './check.js';

/**
 * Publishes waiting for one store promise. The store settles every append of a group
 * commit with one shared promise, so the publishes of a batch share one list and one
 * `then`: no closures per message.
 */
interface Waiting {
  conns: Connection[];
  frames: PublishFrame[];
}

let lastPromise: Promise<AppendResult> | undefined;
let lastWaiting: Waiting | undefined;

/** Publish: limits, then store, then ack, then broadcast (docs/PROTOCOL.md, P1, A1). */
export function onPublish(conn: Connection, f: PublishFrame): void {
  const { ctx } = conn;
  ctx.stats.messagesIn++;
  ctx.stats.publishes++;
  if (refuse(conn, f.reqId, f.id, f.ts, f.data)) return;
  const promise = ctx.store.append(f.id, f.ts, f.data);
  let waiting = lastWaiting;
  if (promise !== lastPromise || !waiting) {
    waiting = { conns: [], frames: [] };
    const list = waiting;
    lastPromise = promise;
    lastWaiting = list;
    promise.then(
      (result) => settle(list, result, promise),
      (error: unknown) => fail(list, error, promise),
    );
  }
  waiting.conns.push(conn);
  waiting.frames.push(f);
}

function release(promise: Promise<AppendResult>): void {
  // A settled list takes no more entries: the next append of this promise (the store's
  // shared stale promise, say) starts a new one.
  if (lastPromise === promise) {
    lastPromise = undefined;
    lastWaiting = undefined;
  }
}

function settle(list: Waiting, result: AppendResult, promise: Promise<AppendResult>): void {
  release(promise);
  const { conns, frames } = list;
  if (result.status === 'accepted') {
    const durability = result.durability === 'synced' ? Durability.Synced : Durability.Written;
    for (let i = 0; i < frames.length; i++) {
      const conn = conns[i] as Connection;
      const f = frames[i] as PublishFrame;
      conn.enc.ack(f.reqId, AckStatus.Accepted, durability);
      conn.touch();
      conn.ctx.broadcast(conn, false, f.id, f.ts, f.data);
    }
  } else {
    for (let i = 0; i < frames.length; i++) {
      const conn = conns[i] as Connection;
      conn.ctx.stats.publishesStale++;
      conn.enc.ack((frames[i] as PublishFrame).reqId, AckStatus.Stale, Durability.None);
      conn.touch();
    }
  }
}

function fail(list: Waiting, error: unknown, promise: Promise<AppendResult>): void {
  release(promise);
  const code = error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  for (let i = 0; i < list.frames.length; i++) {
    const conn = list.conns[i] as Connection;
    conn.ctx.stats.publishesFailed++;
    conn.enc.ack((list.frames[i] as PublishFrame).reqId, AckStatus.Error, Durability.None, code, message);
    conn.touch();
  }
}
