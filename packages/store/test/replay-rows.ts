import { parseRecord, type RecordBatch, type Store } from '@gossip/store';
import { expect } from 'vitest';

/** A replayed message as [id, ts, data in hex]. */
export type Row = [string, bigint, string];

/** The replay as rows; with `prefix`, of the ids that start with it. */
export async function rows(store: Store, since: bigint | null = null, prefix?: string): Promise<Row[]> {
  const out: Row[] = [];
  for await (const m of store.replay(since, { prefix })) out.push([m.id, m.ts, m.data.toString('hex')]);
  return out;
}

/** The records of `batch`, each parsed and checked again (crc included), in batch order. */
export function batchRows(batch: RecordBatch): Row[] {
  const out: Row[] = [];
  let bytes = 0;
  for (let k = 0; k < batch.count; k++) {
    const size = batch.size[k] as number;
    const rec = parseRecord(batch.bufs[batch.buf[k] as number] as Buffer, batch.at[k] as number, size);
    if (!rec) throw new Error(`record ${k} of a replayed batch is not a valid record`);
    out.push([rec.id, rec.ts, rec.data.toString('hex')]);
    bytes += size;
  }
  expect(bytes, 'a batch’s bytes are its records’ sizes added up').toBe(batch.bytes);
  return out;
}

/** `replayRecords` read as a server would: every record of every batch, which must be valid. */
export async function recordRows(
  store: Store,
  since: bigint | null,
  batchBytes: number,
  prefix?: string,
): Promise<Row[]> {
  const out: Row[] = [];
  for await (const b of store.replayRecords(since, { batchBytes, prefix })) {
    expect(b.count, 'a batch holds at least one record').toBeGreaterThan(0);
    out.push(...batchRows(b));
  }
  return out;
}

/**
 * Checks that a replay by each of `prefixes` yields exactly the full replay's rows whose
 * id starts with it, in the same order, for each of `sinces`: as messages, and as
 * records in small batches. Returns the full replays, by since.
 */
export async function expectPrefixReplays(
  store: Store,
  prefixes: readonly string[],
  sinces: readonly (bigint | null)[],
  at = '',
): Promise<Map<bigint | null, Row[]>> {
  const full = new Map<bigint | null, Row[]>();
  for (const since of sinces) {
    const all = await rows(store, since);
    full.set(since, all);
    for (const prefix of prefixes) {
      const want = all.filter(([id]) => id.startsWith(prefix));
      const what = `replay(${since}, { prefix: ${JSON.stringify(prefix)} }) ${at}`;
      expect(await rows(store, since, prefix), what).toEqual(want);
      expect(await recordRows(store, since, 512, prefix), `${what} as records`).toEqual(want);
    }
  }
  return full;
}
