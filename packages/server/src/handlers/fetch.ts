import { AckStatus, Durability, type FetchEntry, type FetchFrame, GossipError, MAX_ID_BYTES } from '@gossip/protocol';
import type { StoredMessage } from '@gossip/store';
import type { Connection } from '../connection.js';

/** Room kept in a fetch-result frame for its fixed fields. */
const RESULT_HEADER_BYTES = 16;

/**
 * Fetch: the newest persisted message of each id, read from disk, in as many
 * fetch-result frames as the frame limit needs (docs/PROTOCOL.md, Q1, Q2).
 */
export function onFetch(conn: Connection, f: FetchFrame): void {
  const { ctx } = conn;
  ctx.stats.fetches++;
  if (f.ids.length > ctx.options.maxFetchIds) {
    conn.enc.ack(
      f.reqId,
      AckStatus.Error,
      Durability.None,
      'GOSSIP_ERR_TOO_MANY_IDS',
      `a fetch may name at most ${ctx.options.maxFetchIds} ids, this one names ${f.ids.length}`,
    );
    conn.touch();
    return;
  }
  const lookups = f.ids.map((id) =>
    id.length === 0 || Buffer.byteLength(id) > MAX_ID_BYTES ? Promise.resolve(undefined) : ctx.store.get(id),
  );
  Promise.all(lookups).then(
    (found: (StoredMessage | undefined)[]) => {
      const budget = ctx.maxFrameBytes - RESULT_HEADER_BYTES;
      let entries: FetchEntry[] = [];
      let bytes = 0;
      for (let i = 0; i < f.ids.length; i++) {
        const id = f.ids[i] as string;
        const m = found[i];
        const entry: FetchEntry = m ? { id, found: true, ts: m.ts, data: m.data } : { id, found: false };
        const size = 3 + Buffer.byteLength(id) + (m ? 12 + m.data.length : 0);
        if (entries.length > 0 && (bytes + size > budget || entries.length === 0xffff)) {
          conn.enc.fetchResult(f.reqId, true, entries);
          entries = [];
          bytes = 0;
        }
        entries.push(entry);
        bytes += size;
      }
      conn.enc.fetchResult(f.reqId, false, entries);
      conn.touch();
    },
    (error: unknown) => {
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
