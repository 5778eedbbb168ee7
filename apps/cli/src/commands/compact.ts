import { parseArgs } from 'node:util';
import { Store } from '@gossip/store';
import { EXIT, type Io, UsageError } from '../common.js';

export const compactHelp = `Usage: gossip compact <data-dir> [--tombstone-retention <ms>]

Compacts a data folder offline. It takes the folder's lock, so it fails
(GOSSIP_ERR_STORE_LOCKED) while gossipd runs on it: then use POST /compact on the
admin port instead (with "Authorization: Bearer <token>" when gossipd has tokens).
Exit: 0 done, 1 failure, 2 usage.

  --tombstone-retention <ms>  drop tombstones older than this (default 86400000, 24 h)
`;

export async function compact(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { 'tombstone-retention': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(compactHelp);
    return EXIT.ok;
  }
  const [dir, ...extra] = positionals;
  if (!dir || extra.length > 0) throw new UsageError('gossip compact takes one data folder');
  const retention = values['tombstone-retention'];
  if (retention !== undefined && !/^\d+$/.test(retention))
    throw new UsageError('--tombstone-retention takes milliseconds');
  const store = await Store.open({
    dir,
    compactThreshold: 0,
    ...(retention === undefined ? {} : { tombstoneRetentionMs: Number(retention) }),
  });
  try {
    const before = store.stats();
    await store.roll(); // offline, the newest segment can be rewritten too
    const result = await store.compact();
    const after = store.stats();
    io.out(
      `compacted ${result.segmentsIn} segments in ${result.runs} runs: ${result.bytesIn} → ${result.bytesOut} bytes, ` +
        `${result.tombstonesDropped} tombstones dropped; segments ${before.segments} → ${after.segments}, ` +
        `dead ratio ${(before.deadRatio * 100).toFixed(1)}% → ${(after.deadRatio * 100).toFixed(1)}%\n`,
    );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
