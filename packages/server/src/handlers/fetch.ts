import { AckStatus, Durability, type FetchEntry, type FetchFrame, FrameEncoder, GossipError } from '@gossip/protocol';
import type { Store, StoredMessage } from '@gossip/store';
import type { ServerContext } from '../context.js';
import { pacedReplay } from '../pacing.js';
import type { Session } from '../session.js';
import { refuseFetch } from './check.js';

/** Fetches a connection may have waiting or running; past it the server stops reading the connection. */
export const MAX_QUEUED_FETCHES = 8;
/** A fetch-result frame is cut at about this many bytes (one entry may make it larger). */
const RESULT_FRAME_BYTES = 1024 * 1024;
/** Room kept in a fetch-result frame for its fixed fields. */
const RESULT_HEADER_BYTES = 16;
/** Reads of one batch, at most: a batch of small records must not become thousands of reads at once. */
const BATCH_IDS = 256;

/**
 * Fetch: refused with an error ack when it names too many ids, or an empty or too long
 * one (check.ts); otherwise queued behind the connection's earlier fetches
 * (docs/PROTOCOL.md, Q1, Q3).
 */
export function onFetch(session: Session, ctx: ServerContext, f: FetchFrame): void {
  ctx.stats.fetches++;
  if (refuseFetch(session, ctx, f)) return;
  session.fetches.add(f);
}

/**
 * A connection's fetches, answered one at a time in the order they came. Once
 * `MAX_QUEUED_FETCHES` wait or run the connection is not read until one is done, so
 * pipelined fetches wait in TCP's buffers, not in the server's memory (the chunk being
 * decoded when the cap is reached may still add its fetches).
 */
export class FetchQueue {
  readonly #session: Session;
  readonly #ctx: ServerContext;
  #queue: FetchFrame[] = [];
  #running = false;

  constructor(session: Session, ctx: ServerContext) {
    this.#session = session;
    this.#ctx = ctx;
  }

  add(f: FetchFrame): void {
    this.#queue.push(f);
    if (this.#queue.length >= MAX_QUEUED_FETCHES) this.#session.hold('fetches');
    if (!this.#running) void this.#run();
  }

  async #run(): Promise<void> {
    const session = this.#session;
    this.#running = true;
    try {
      while (this.#queue.length > 0 && !session.closed) {
        const f = this.#queue[0] as FetchFrame;
        try {
          await answer(session, this.#ctx, f);
        } catch (error) {
          // A read failed partway: the error ack ends this fetch in place of its last result (Q3).
          const code = error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL';
          const message = error instanceof Error ? error.message : String(error);
          session.ack(f.reqId, AckStatus.Error, Durability.None, code, message);
        }
        this.#queue.shift();
        if (this.#queue.length < MAX_QUEUED_FETCHES) session.release('fetches');
      }
    } finally {
      this.#running = false;
      if (session.closed) this.#queue = [];
    }
  }
}

/**
 * The newest persisted message of each id the fetch names, each distinct id once, in
 * the order of its first mention (Q2). Values are read in batches of about a pacing
 * batch and framed as they come, and the next batch waits while the client has more
 * than the pacing high water to read, as a replay does: a fetch holds about one batch,
 * whatever it names. Its frames come from an encoder of its own, so its large slabs end
 * with it, and go out with the connection's other own frames, in order with them.
 */
async function answer(session: Session, ctx: ServerContext, f: FetchFrame): Promise<void> {
  const ids = [...new Set(f.ids)];
  const enc = new FrameEncoder();
  const frameBudget = Math.min(RESULT_FRAME_BYTES, ctx.maxFrameBytes) - RESULT_HEADER_BYTES;
  let entries: FetchEntry[] = [];
  let bytes = 0;
  await pacedReplay(
    session.out,
    ctx.options.maxOutboundBytes,
    (batchBytes) => readBatches(ctx.store, ids, batchBytes),
    () => !session.closed,
    (batch) => {
      for (const [id, m] of batch) {
        const size = 3 + Buffer.byteLength(id) + (m ? 12 + m.data.length : 0);
        if (entries.length > 0 && (bytes + size > frameBudget || entries.length === 0xffff)) {
          enc.fetchResult(f.reqId, true, entries);
          entries = [];
          bytes = 0;
        }
        entries.push(m ? { id, found: true, ts: m.ts, data: m.data } : { id, found: false });
        bytes += size;
      }
      session.send(enc.take());
      return batch.length;
    },
  );
  if (session.closed) return;
  enc.fetchResult(f.reqId, false, entries);
  session.send(enc.take());
}

/** The newest message of each id (undefined: none), read in batches of about `batchBytes` of records. */
async function* readBatches(
  store: Store,
  ids: readonly string[],
  batchBytes: number,
): AsyncGenerator<[string, StoredMessage | undefined][]> {
  let i = 0;
  while (i < ids.length) {
    const batch: string[] = [];
    let want = 0;
    while (i < ids.length && batch.length < BATCH_IDS && (batch.length === 0 || want < batchBytes)) {
      const id = ids[i++] as string;
      want += store.recordBytes(id) ?? 0;
      batch.push(id);
    }
    const found = await Promise.all(batch.map((id) => store.get(id)));
    yield batch.map((id, k) => [id, found[k]]);
  }
}
