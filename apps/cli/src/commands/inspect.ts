import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { META_FILE, nodeFs, parseSegmentName, scanSegment } from '@gossip/store';
import { EXIT, type Io, UsageError } from '../common.js';

export const inspectHelp = `Usage: gossip inspect <data-dir> [--json]

Reads a data folder offline, without locking it or changing it (safe beside a running
gossipd): every segment, its records, checksum verification, live ids, tombstones and
the dead ratio. Exit: 0 every record verified, 1 corruption found (or a failure), 2 usage.
`;

interface SegmentReport {
  name: string;
  bytes: number;
  records: number;
  liveRecords: number;
  corrupt: { offset: number; bytesLost: number }[];
  tailBytes: number;
  header: string;
}

export async function inspect(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(inspectHelp);
    return EXIT.ok;
  }
  const [dir, ...extra] = positionals;
  if (!dir || extra.length > 0) throw new UsageError('usage: gossip inspect <data-dir>');
  const names = (await readdir(dir)).filter((n) => parseSegmentName(n)).sort();
  const newest = new Map<string, { ts: bigint; seg: number; off: number; tombstone: boolean; size: number }>();
  const reports: SegmentReport[] = [];
  let totalBytes = 0;
  for (const [i, name] of names.entries()) {
    const file = await nodeFs.open(join(dir, name), 'read');
    try {
      const size = (await stat(join(dir, name))).size;
      const report: SegmentReport = {
        name,
        bytes: size,
        records: 0,
        liveRecords: 0,
        corrupt: [],
        tailBytes: 0,
        header: 'ok',
      };
      const scan = await scanSegment(file, name, size, (id, ts, off, recSize, dataLen) => {
        const prev = newest.get(id);
        if (!prev || ts > prev.ts) newest.set(id, { ts, seg: i, off, tombstone: dataLen === 0, size: recSize });
      });
      report.records = scan.records;
      report.corrupt = scan.skipped.map((c) => ({ offset: c.offset, bytesLost: c.bytesLost }));
      report.tailBytes = scan.tailBytes;
      report.header = scan.header;
      totalBytes += size;
      reports.push(report);
    } finally {
      await file.close();
    }
  }
  let liveBytes = 0;
  let tombstones = 0;
  for (const n of newest.values()) {
    (reports[n.seg] as SegmentReport).liveRecords++;
    liveBytes += n.size;
    if (n.tombstone) tombstones++;
  }
  const records = reports.reduce((a, r) => a + r.records, 0);
  const corruptions = reports.reduce((a, r) => a + r.corrupt.length + (r.header === 'ok' ? 0 : 1), 0);
  const recordBytes = reports.reduce((a, r) => a + Math.max(0, r.bytes - 16), 0);
  const deadRatio = recordBytes === 0 ? 0 : Math.max(0, 1 - liveBytes / recordBytes);
  let meta: unknown;
  try {
    meta = JSON.parse(
      (await import('node:fs/promises').then((f) => f.readFile(join(dir, META_FILE)))).toString('utf8'),
    );
  } catch {
    meta = undefined;
  }
  const summary = {
    dir,
    epoch: (meta as { epoch?: string } | undefined)?.epoch ?? null,
    horizon: (meta as { horizon?: string | null } | undefined)?.horizon ?? null,
    segments: reports.length,
    bytes: totalBytes,
    records,
    ids: newest.size - tombstones,
    tombstones,
    deadRatio: Number(deadRatio.toFixed(4)),
    corruptions,
    verified: corruptions === 0,
  };
  if (values.json) {
    io.out(`${JSON.stringify({ ...summary, segmentFiles: reports })}\n`);
  } else {
    io.out(`${dir}: epoch ${summary.epoch ?? '(no meta file)'}, horizon ${summary.horizon ?? 'none'}\n`);
    io.out('segment                                                   bytes    records   live  check\n');
    for (const r of reports) {
      const check =
        r.header !== 'ok'
          ? `bad header (${r.header})`
          : r.corrupt.length > 0
            ? `CORRUPT at ${r.corrupt.map((c) => `${c.offset} (${c.bytesLost} B)`).join(', ')}`
            : r.tailBytes > 0
              ? `torn tail: ${r.tailBytes} B`
              : 'ok';
      io.out(
        `${r.name}  ${String(r.bytes).padStart(10)} ${String(r.records).padStart(10)} ${String(r.liveRecords).padStart(6)}  ${check}\n`,
      );
    }
    io.out(
      `${summary.segments} segments, ${summary.bytes} bytes, ${records} records, ${summary.ids} live ids, ` +
        `${tombstones} tombstones, dead ratio ${(deadRatio * 100).toFixed(1)}%, ` +
        `${corruptions === 0 ? 'every checksum verified' : `${corruptions} corrupt stretches`}\n`,
    );
  }
  return corruptions === 0 ? EXIT.ok : EXIT.failed;
}
