import { GossipError } from '@gossip/protocol';
import { CHECKPOINT_FILE, type Checkpoint, type CheckpointSegment, readCheckpoint } from './checkpoint.js';
import { SEGMENT_HEADER_BYTES } from './format.js';
import type { StoreFile } from './fs.js';
import type { Replaced } from './index-table.js';
import { saveMeta } from './meta.js';
import type { RecoveryProgress } from './options.js';
import type { StoreParts } from './parts.js';
import { type Corruption, classifyTail, type SegmentFile, scanEnd, scanSegment, segmentFiles } from './recovery.js';
import type { Segment } from './segment.js';

export interface RecoveryReport {
  segments: number;
  /** The index came from the checkpoint of a clean close: no segment was scanned (docs/STORAGE.md, S9). */
  checkpoint: boolean;
  /** Records scanned, or entries loaded from the checkpoint. */
  records: number;
  /** Bytes cut from the newest segment's torn tail: past what its last clean close had fsynced (docs/STORAGE.md, S8). */
  truncatedBytes: number;
  /**
   * Invalid stretches found in bytes known to be complete: followed by valid records, in
   * an older segment's tail, or below a clean close's length. Kept on disk, never served.
   */
  corruptions: Corruption[];
  /** Files left by an interrupted compaction and removed. */
  leftoversRemoved: number;
  ms: number;
}

/** The report of a store that has not recovered yet. */
export function emptyRecoveryReport(): RecoveryReport {
  return { segments: 0, checkpoint: false, records: 0, truncatedBytes: 0, corruptions: [], leftoversRemoved: 0, ms: 0 };
}

/** `index` and `segments` come empty: recovery fills them, and sets the tail when the newest segment takes appends. */
export interface RecoverOptions extends StoreParts {
  segmentBytes: number;
  corruption: 'skip' | 'fail';
  onProgress?: ((progress: RecoveryProgress) => void) | undefined;
}

/** A segment file found on open, before recovery adopts it. */
type OpenedSegment = SegmentFile & { file: StoreFile; seg: Segment };

const noop = () => undefined;

/**
 * Recovery (docs/STORAGE.md, S8): steps 2 to 5 of an open, once the lock is held and
 * the meta file read. Removes the leftovers of an interrupted compaction, then loads the
 * index from the checkpoint of a clean close (S9) or scans every segment, and adopts
 * the segments. On a throw, the segments adopted so far are in `segments` for the
 * caller to close.
 */
export async function recover(o: RecoverOptions): Promise<RecoveryReport> {
  return new Recovery(o).run();
}

class Recovery {
  readonly #o: RecoverOptions;
  readonly #report = emptyRecoveryReport();
  /** The newest segment file found: the only one appends may go on in. */
  #newest: OpenedSegment | undefined;

  constructor(o: RecoverOptions) {
    this.#o = o;
  }

  async run(): Promise<RecoveryReport> {
    const t0 = performance.now();
    const { fs, dir, meta, segments } = this.#o;
    const report = this.#report;
    const names = await fs.readdir(dir);
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        await fs.unlink(`${dir}/${name}`);
        report.leftoversRemoved++;
      }
    }
    // A compaction output replaces every segment inside its range: those are leftovers (S1).
    const { keep, leftovers } = segmentFiles(names);
    for (const f of leftovers) {
      await fs.unlink(`${dir}/${f.name}`);
      report.leftoversRemoved++;
    }
    if (leftovers.length > 0) await fs.syncDir(dir);
    // A length recorded for a file that is gone must not apply to a new file of its name.
    const present = new Set(keep.map((f) => f.name));
    const gone = Object.keys(meta.closedLengths).filter((name) => !present.has(name));
    for (const name of gone) delete meta.closedLengths[name];
    if (gone.length > 0) await saveMeta(fs, dir, meta);

    const opened: OpenedSegment[] = [];
    try {
      for (const f of keep) {
        const file = await fs.open(`${dir}/${f.name}`, f === keep[keep.length - 1] ? 'write' : 'read');
        opened.push({ ...f, file, seg: segments.make(f.first, f.last, f.gen) });
      }
    } catch (error) {
      await Promise.all(opened.map((s) => s.file.close().catch(noop)));
      throw error;
    }
    this.#newest = opened[opened.length - 1];
    const hasCheckpoint = names.includes(CHECKPOINT_FILE);
    try {
      if (!(hasCheckpoint && (await this.#loadCheckpoint(opened)))) await this.#scanAll(opened);
    } catch (error) {
      // The caller closes the adopted segments; these are the others.
      for (const s of opened) if (!segments.all.includes(s.seg)) await s.file.close().catch(noop);
      throw error;
    }
    if (hasCheckpoint) {
      // Consumed: the segments change from the first append on, so a checkpoint is only
      // ever read by the open that follows the close which wrote it.
      await fs.unlink(`${dir}/${CHECKPOINT_FILE}`);
      await fs.syncDir(dir);
    }

    const last = segments.all[segments.all.length - 1];
    if (last && !last.sealed && last.size < this.#o.segmentBytes) segments.tail = last;
    report.segments = segments.all.length;
    report.ms = performance.now() - t0;
    this.#o.log.info(
      {
        segments: report.segments,
        records: report.records,
        ids: this.#o.index.count,
        checkpoint: report.checkpoint,
        truncatedBytes: report.truncatedBytes,
        corruptions: report.corruptions.length,
        ms: Math.round(report.ms),
      },
      'store recovered',
    );
    return report;
  }

  /** Adds a recovered segment, in log order. */
  #adopt(s: OpenedSegment, size: number, cleanAsOf: number, corrupt: boolean): void {
    const seg = s.seg;
    const valid = this.#o.meta.validLengths[s.name];
    seg.file = s.file;
    seg.size = size;
    seg.syncedSize = size;
    seg.corrupt = corrupt;
    seg.cleanAsOf = cleanAsOf;
    // Appends never go into a compaction output (gen > 0): its cleanAsOf describes what it held when written.
    // Nor after damage below a clean close's length: those bytes stay for inspection (S8).
    const closed = this.#o.meta.closedLengths[s.name];
    const damaged = closed !== undefined && size < closed;
    seg.sealed = s !== this.#newest || valid !== undefined || corrupt || damaged || s.gen > 0;
    this.#o.segments.add(seg);
    this.#o.segments.recordBytes += Math.max(0, size - SEGMENT_HEADER_BYTES);
  }

  /**
   * Loads the index from the checkpoint a clean close wrote, if it describes exactly
   * these segment files, unchanged since (S9). Returns false, having changed nothing,
   * when it does not.
   */
  async #loadCheckpoint(opened: OpenedSegment[]): Promise<boolean> {
    const { fs, dir, log, index } = this.#o;
    const ckpt: Checkpoint | string = await readCheckpoint(fs, dir, opened, this.#o.corruption === 'fail');
    if (typeof ckpt === 'string') {
      log.info({ reason: ckpt }, 'index checkpoint not used: scanning the segments');
      return false;
    }
    const { entries } = ckpt;
    const live = new Array<number>(opened.length).fill(0);
    for (let k = 0; k < entries.seg.length; k++) {
      const at = entries.seg[k] as number;
      live[at] = (live[at] as number) + (entries.size[k] as number);
      entries.seg[k] = (opened[at] as OpenedSegment).seg.handle;
    }
    const restored = index.restore(entries, ckpt.newestTs);
    if (restored === 'an id repeats') {
      log.info({ reason: restored }, 'index checkpoint not used: scanning the segments');
      return false;
    }
    if (restored === 'sorted') {
      // A version 1 checkpoint has no id order; one of version 2 whose order does not hold is not trusted.
      log.info(
        { ids: entries.ids.length, ordered: entries.order !== null },
        'index checkpoint: ids sorted into id order',
      );
    }
    for (let i = 0; i < opened.length; i++) {
      const s = opened[i] as OpenedSegment;
      const c = ckpt.segments[i] as CheckpointSegment;
      this.#adopt(s, c.size, c.cleanAsOf, c.corrupt);
      s.seg.live = live[i] as number;
    }
    this.#report.records = entries.ids.length;
    this.#report.checkpoint = true;
    this.#report.corruptions = ckpt.corruptions;
    return true;
  }

  /** Recovery proper (S8, steps 3 and 4): scans every segment, checking each record, and rebuilds the index. */
  async #scanAll(opened: OpenedSegment[]): Promise<void> {
    const { fs, dir, meta, index, segments } = this.#o;
    const report = this.#report;
    const replaced: Replaced = { seg: 0, size: 0 };
    let done = 0;
    // Ids come in log order: one sort at the end costs less than keeping them in id order one by one.
    index.deferOrder();
    for (const s of opened) {
      const { seg, file } = s;
      const fileSize = await file.size();
      const valid = meta.validLengths[s.name];
      segments.register(seg);
      const scan = await scanSegment(file, s.name, scanEnd(fileSize, valid), (id, ts, off, size, dataLen) => {
        // Not applied: an older or equal ts, a superseded version or a duplicate left by a crash.
        if (index.load(id, ts, seg.handle, off, size, dataLen === 0, replaced)) segments.credit(seg, size, replaced);
      });
      const closed = meta.closedLengths[s.name];
      const tail = classifyTail(s.name, scan, { newest: s === this.#newest, validLength: valid, closedLength: closed });
      if (tail.cutTo === 0) {
        await file.close();
        await fs.unlink(`${dir}/${s.name}`);
        segments.remove(seg);
        segments.nextSeq = Math.max(segments.nextSeq, s.last + 1);
        continue;
      }
      for (const c of scan.skipped) await this.#corruption(c, 'corrupt records skipped');
      if (tail.corruption) await this.#corruption(tail.corruption, tailMessage(scan.header, closed, tail.corruption));
      if (tail.cutTo !== undefined) {
        await file.truncate(tail.cutTo);
        await file.sync();
        report.truncatedBytes += tail.tornBytes;
        this.#o.log.warn(
          { segment: s.name, offset: tail.cutTo, bytes: tail.tornBytes, records: scan.records },
          'torn tail of the newest segment truncated',
        );
      }
      this.#adopt(s, scan.header === 'ok' ? scan.validEnd : 0, scan.cleanAsOf, scan.header !== 'ok');
      report.records += scan.records;
      done++;
      this.#o.onProgress?.({ segment: s.name, segmentsDone: done, segments: opened.length, records: report.records });
    }
    index.sortOrder();
  }

  /** Reports a corrupt stretch found on open, or, with `corruption: 'fail'`, refuses to open. */
  async #corruption(c: Corruption, message: string): Promise<void> {
    if (this.#o.corruption === 'fail') {
      throw new GossipError(
        'GOSSIP_ERR_STORE_CORRUPT',
        `${this.#o.dir}/${c.file} is corrupt at offset ${c.offset} (${c.bytesLost} bytes): ${message}`,
      );
    }
    this.#report.corruptions.push(c);
    this.#o.log.error({ ...c }, message);
  }
}

/** What the log says of a corrupt stretch that `classifyTail` found at the end of a scan. */
function tailMessage(header: string, closed: number | undefined, c: Corruption): string {
  if (header !== 'ok') return `bad header (${header}): the segment is skipped and kept for inspection`;
  if (closed !== undefined && c.offset < closed) {
    return 'corrupt records in bytes a clean close had fsynced: kept for inspection, the segment is sealed';
  }
  return 'corrupt tail of an older segment skipped';
}
