import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { classifyTail, loadMeta, type Meta, nodeFs, scanEnd, scanSegment, segmentFiles } from '@gossip/store';
import { EXIT, type Io, UsageError } from '../common.js';

export const inspectHelp = `Usage: gossip inspect <data-dir> [--json]

Reads a data folder offline, without locking it or changing it (safe beside a running
gossipd): every segment, its records, checksum verification, live ids, tombstones and
the dead ratio. A torn tail (a write cut short, past the newest segment's last clean
close) is shown and cut by the next open; damage to bytes the store knew complete is
CORRUPT, as the next open reports it (docs/STORAGE.md, S8). Leftovers of an interrupted
compaction, which the next open removes, are listed and not read. A meta file that
cannot be read is a failure: the next open refuses the folder.
Exit: 0 every record verified (a torn tail aside), 1 corruption found (or a failure), 2 usage.
`;

interface SegmentReport {
  name: string;
  bytes: number;
  records: number;
  liveRecords: number;
  /** Corrupt stretches: inside the file, at its end (the tail), or the whole file (a bad header). */
  corrupt: { offset: number; bytesLost: number }[];
  tailBytes: number;
  /** Bytes of a torn write after the last valid record, cut by the next open when in the newest segment. */
  tornBytes: number;
  /** What the next open makes of the bytes after the last valid record (classifyTail). */
  tail: 'none' | 'torn' | 'corrupt';
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
  if (!dir || extra.length > 0) throw new UsageError('gossip inspect takes one data folder');
  // The meta file, read as the store reads it: validLengths and closedLengths decide what a tail is.
  let meta: Meta | undefined;
  let metaError: string | undefined;
  try {
    meta = await loadMeta(nodeFs, dir);
  } catch (error) {
    metaError = (error as Error).message;
  }
  // The segments as an open sees them: those it keeps, in log order, and the leftovers it removes.
  const { keep, leftovers } = segmentFiles(await readdir(dir));
  const names = keep.map((f) => f.name);
  const newestName = names.at(-1);
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
        tornBytes: 0,
        tail: 'none',
        header: 'ok',
      };
      // As recovery: a segment sealed after a failure is trusted up to its valid length only.
      const validLength = meta?.validLengths[name];
      const end = scanEnd(size, validLength);
      const scan = await scanSegment(file, name, end, (id, ts, off, recSize, dataLen) => {
        const prev = newest.get(id);
        if (!prev || ts > prev.ts) newest.set(id, { ts, seg: i, off, tombstone: dataLen === 0, size: recSize });
      });
      report.records = scan.records;
      const tail = classifyTail(name, scan, {
        newest: name === newestName,
        validLength,
        closedLength: meta?.closedLengths[name],
      });
      const corrupt = tail.corruption ? [...scan.skipped, tail.corruption] : scan.skipped;
      report.corrupt = corrupt.map((c) => ({ offset: c.offset, bytesLost: c.bytesLost }));
      report.tailBytes = scan.tailBytes;
      report.tornBytes = tail.tornBytes;
      report.tail = tail.kind;
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
  const corruptions = reports.reduce((a, r) => a + r.corrupt.length, 0);
  const recordBytes = reports.reduce((a, r) => a + Math.max(0, r.bytes - 16), 0);
  const deadRatio = recordBytes === 0 ? 0 : Math.max(0, 1 - liveBytes / recordBytes);
  const summary = {
    dir,
    epoch: meta?.epoch ?? null,
    horizon: meta?.horizon?.toString() ?? null,
    segments: reports.length,
    bytes: totalBytes,
    records,
    ids: newest.size - tombstones,
    tombstones,
    deadRatio: Number(deadRatio.toFixed(4)),
    corruptions,
    /** Leftovers of an interrupted compaction: the next open removes them. */
    leftovers: leftovers.map((f) => f.name),
    /** Why the meta file could not be read: the next open refuses the folder. */
    metaError: metaError ?? null,
    verified: corruptions === 0 && metaError === undefined,
  };
  if (values.json) {
    io.out(`${JSON.stringify({ ...summary, segmentFiles: reports })}\n`);
  } else {
    io.out(`${dir}: epoch ${summary.epoch ?? '(no meta file)'}, horizon ${summary.horizon ?? 'none'}\n`);
    if (metaError !== undefined) io.out(`CORRUPT meta file: ${metaError}\n`);
    io.out('segment                                                   bytes    records   live  check\n');
    for (const r of reports) {
      const notes: string[] = [];
      if (r.header !== 'ok') {
        notes.push(
          r.tail === 'torn'
            ? `bad header (${r.header}): an unfinished new segment, removed on open`
            : `CORRUPT: bad header (${r.header})`,
        );
      } else {
        if (r.corrupt.length > 0)
          notes.push(`CORRUPT at ${r.corrupt.map((c) => `${c.offset} (${c.bytesLost} B)`).join(', ')}`);
        if (r.tornBytes > 0) notes.push(`torn tail: ${r.tornBytes} B`);
      }
      const check = notes.join('; ') || 'ok';
      io.out(
        `${r.name}  ${String(r.bytes).padStart(10)} ${String(r.records).padStart(10)} ${String(r.liveRecords).padStart(6)}  ${check}\n`,
      );
    }
    for (const f of leftovers) io.out(`${f.name}  leftover of an interrupted compaction: removed on open\n`);
    io.out(
      `${summary.segments} segments, ${summary.bytes} bytes, ${records} records, ${summary.ids} live ids, ` +
        `${tombstones} tombstones, dead ratio ${(deadRatio * 100).toFixed(1)}%, ` +
        `${corruptions === 0 ? 'every checksum verified' : `${corruptions} corrupt stretches`}\n`,
    );
  }
  return summary.verified ? EXIT.ok : EXIT.failed;
}
