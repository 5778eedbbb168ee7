import { setImmediate as nextTurn } from 'node:timers/promises';
import { GossipError } from '@gossip/protocol';
import { SEGMENT_HEADER_BYTES, segmentHeader, segmentName } from './format.js';
import { writeFully } from './fs.js';
import { saveMeta } from './meta.js';
import type { StoreParts } from './parts.js';
import { scanSegment } from './recovery.js';
import type { Segment } from './segment.js';

export interface CompactionResult {
  /** Runs of segments rewritten. */
  runs: number;
  segmentsIn: number;
  bytesIn: number;
  bytesOut: number;
  tombstonesDropped: number;
}

export interface CompactorOptions extends StoreParts {
  segmentBytes: number;
  /** Dead share of a sealed segment past which it is rewritten in the background; 0: never. */
  threshold: number;
  checkMs: number;
  retentionMs: number;
  now: () => bigint;
  /** Overrides now − retention (StoreOptions `tombstoneCutoff`). */
  cutoff?: () => bigint;
}

const NS_PER_MS = 1_000_000n;
/** The output is written through a buffer of this size. */
const OUT_BUFFER_BYTES = 1024 * 1024;
const noop = () => undefined;

/**
 * Compaction (docs/STORAGE.md, "Compaction"): rewrites runs of sealed segments into
 * one, keeping the live record of each id and dropping tombstones past retention, in
 * the background past the dead-ratio threshold or on demand. Runs beside the writer:
 * appends never wait for it.
 */
export class Compactor {
  readonly #o: CompactorOptions;
  readonly #retentionNs: bigint;
  #running: Promise<CompactionResult> | null = null;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  compactions = 0;
  compactedBytes = 0;

  constructor(options: CompactorOptions) {
    this.#o = options;
    this.#retentionNs = BigInt(Math.round(options.retentionMs)) * NS_PER_MS;
  }

  get #stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  /** Checks the dead ratio every `checkMs` from now on (unless the threshold is 0). */
  start(): void {
    if (this.#o.threshold <= 0) return;
    this.#timer = setInterval(() => this.maybeSoon(), this.#o.checkMs);
    this.#timer.unref();
  }

  /** Stops the background checks, and the compaction in progress at its next step; resolves once it stopped. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#abort.abort(
      new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store closed during a compaction; it resumes at the next open'),
    );
    await this.#running?.catch(noop);
  }

  /** Starts a background compaction if a run of sealed segments is past the threshold. */
  maybeSoon(): void {
    if (this.#stopped || this.#running || this.#o.threshold <= 0) return;
    if (!this.#pickRun(false)) return;
    this.run(false).catch((error) => {
      if (!this.#stopped) this.#o.log.error({ err: error }, 'background compaction failed');
    });
  }

  /** Compacts every run worth it (forced: any with a dead byte, or that can merge), after the one in progress. */
  run(force: boolean): Promise<CompactionResult> {
    const previous = this.#running;
    const run = (async () => {
      await previous?.catch(noop);
      const result: CompactionResult = { runs: 0, segmentsIn: 0, bytesIn: 0, bytesOut: 0, tombstonesDropped: 0 };
      const seen = new Set<Segment>();
      for (;;) {
        if (this.#stopped) break;
        const picked = this.#pickRun(force, seen);
        if (!picked) break;
        seen.add(await this.#compactRun(picked.run, picked.dropTombstones, result));
      }
      return result;
    })();
    this.#running = run;
    void run
      .finally(() => {
        if (this.#running === run) this.#running = null;
      })
      .catch(noop);
    return run;
  }

  /**
   * The next run of sealed segments worth rewriting: starting at the first segment
   * that is dead past the threshold (any dead byte when forced) or small enough to
   * merge with its neighbour, extended while the live bytes fit one segment.
   */
  #pickRun(force: boolean, exclude?: Set<Segment>): { run: Segment[]; dropTombstones: boolean } | undefined {
    const { segments, segmentBytes } = this.#o;
    const sealed: Segment[] = [];
    for (const s of segments.all) {
      if (s === segments.tail || !s.sealed || !s.file || s.corrupt) break; // only the sealed prefix of the log
      sealed.push(s);
    }
    const threshold = force ? 0 : this.#o.threshold;
    for (let i = 0; i < sealed.length; i++) {
      const s = sealed[i] as Segment;
      if (exclude?.has(s)) continue;
      const recordBytes = Math.max(1, s.size - SEGMENT_HEADER_BYTES);
      const dead = 1 - s.live / recordBytes;
      const next = sealed[i + 1];
      const mergeable =
        next !== undefined && s.live + next.live <= segmentBytes && (force || s.live + next.live <= segmentBytes / 2);
      const oldestWithTombstones = force && this.#o.index.tombstones > 0;
      if (!(dead > threshold || (force && dead > 0) || mergeable || oldestWithTombstones)) continue;
      const run = [s];
      let live = s.live;
      for (let j = i + 1; j < sealed.length; j++) {
        const t = sealed[j] as Segment;
        if (live + t.live > segmentBytes) break;
        run.push(t);
        live += t.live;
      }
      // A tombstone may go only if no older version of its id can remain before the run:
      // every earlier segment is a compaction output made after this run was sealed.
      const lastSeq = (run[run.length - 1] as Segment).last;
      const dropTombstones = sealed.slice(0, i).every((p) => p.cleanAsOf > lastSeq);
      return { run, dropTombstones };
    }
    return undefined;
  }

  /** Rewrites `run` into one new segment (steps 1 to 6 of "Compaction") and returns it. */
  async #compactRun(run: Segment[], dropTombstones: boolean, result: CompactionResult): Promise<Segment> {
    const { fs, dir, meta, index, segments } = this.#o;
    const signal = this.#abort.signal;
    const first = (run[0] as Segment).first;
    const last = (run[run.length - 1] as Segment).last;
    const gen = Math.max(...run.map((s) => s.gen)) + 1;
    const name = segmentName(first, last, gen);
    const tmpPath = `${dir}/${name}.tmp`;
    const cutoff = this.#o.cutoff?.() ?? this.#o.now() - this.#retentionNs;
    let cleanAsOf = segments.nextSeq;
    for (const s of segments.all) if (!s.sealed) cleanAsOf = Math.min(cleanAsOf, s.first);
    const moves: { slot: number; from: number; fromOff: number; toOff: number; size: number }[] = [];
    const dropped: { id: string; seg: number; off: number }[] = [];
    let droppedTs: bigint | null = null;
    let bytesIn = 0;
    let visited = 0;

    await fs.unlink(tmpPath).catch(noop);
    const out = await fs.open(tmpPath, 'create');
    let outPos = 0;
    let buf = Buffer.allocUnsafe(OUT_BUFFER_BYTES);
    buf.set(segmentHeader(cleanAsOf), 0);
    let bufLen = SEGMENT_HEADER_BYTES;
    const flushOut = async () => {
      await writeFully(out, [buf.subarray(0, bufLen)], outPos);
      outPos += bufLen;
      bufLen = 0;
    };
    try {
      for (const seg of run) {
        signal.throwIfAborted();
        const file = seg.pin();
        try {
          bytesIn += seg.size;
          // Every record is checked (S2) as it is read: the output holds only valid ones, crc included.
          await scanSegment(file, seg.name, seg.size, (id, ts, off, size, dataLen, record, at) => {
            // Give the event loop back every few thousand records: appends must not wait on a compaction.
            const pause = (++visited & 4095) === 0 ? nextTurn() : undefined;
            const slot = index.slotOf(id);
            if (slot === undefined || index.segment(slot) !== seg.handle || index.offset(slot) !== off) return pause; // dead
            if (dropTombstones && dataLen === 0 && ts < cutoff) {
              dropped.push({ id, seg: seg.handle, off });
              if (droppedTs === null || ts > droppedTs) droppedTs = ts;
              return pause;
            }
            moves.push({ slot, from: seg.handle, fromOff: off, toOff: outPos + bufLen, size });
            if (buf.length - bufLen >= size) {
              record.copy(buf, bufLen, at, at + size);
              bufLen += size;
              return pause;
            }
            const copy = Buffer.from(record.subarray(at, at + size)); // the scan may reuse its buffer while we write
            return flushOut().then(() => {
              if (buf.length < size) buf = Buffer.allocUnsafe(size);
              copy.copy(buf, 0);
              bufLen = size;
            });
          });
        } finally {
          seg.unpin();
        }
        await nextTurn();
      }
      if (bufLen > 0) await flushOut();
      await out.sync();
    } catch (error) {
      await out.close().catch(noop);
      await fs.unlink(tmpPath).catch(noop);
      throw error;
    }
    await out.close();
    signal.throwIfAborted();
    if (droppedTs !== null) {
      // The horizon must be durable before any tombstone is gone for good.
      const h = meta.horizon;
      meta.horizon = h === null || droppedTs > h ? droppedTs : h;
    }
    for (const s of run) {
      delete meta.validLengths[s.name];
      delete meta.closedLengths[s.name];
    }
    if (droppedTs !== null) await saveMeta(fs, dir, meta);
    await fs.rename(tmpPath, `${dir}/${name}`);
    await fs.syncDir(dir);

    // Swap in the new segment. Old files stay readable until every move is applied.
    const seg = segments.make(first, last, gen);
    seg.file = await fs.open(`${dir}/${name}`, 'read');
    seg.size = outPos;
    seg.syncedSize = outPos;
    seg.sealed = true;
    seg.cleanAsOf = cleanAsOf;
    segments.replace(run, seg);
    for (let k = 0; k < moves.length; k++) {
      const m = moves[k] as (typeof moves)[number];
      if (index.move(m.slot, m.from, m.fromOff, seg.handle, m.toOff)) seg.live += m.size;
      if ((k & 8191) === 8191) await nextTurn(); // never hold the event loop for long
    }
    let droppedCount = 0;
    for (const d of dropped) if (index.drop(d.id, d.seg, d.off)) droppedCount++;
    let removedBytes = 0;
    for (const s of run) {
      removedBytes += Math.max(0, s.size - SEGMENT_HEADER_BYTES);
      segments.remove(s);
      await fs
        .unlink(`${dir}/${s.name}`)
        .catch((error) => this.#o.log.warn({ err: error, segment: s.name }, 'could not delete a compacted segment'));
    }
    await fs.syncDir(dir);
    segments.recordBytes += Math.max(0, outPos - SEGMENT_HEADER_BYTES) - removedBytes;
    this.compactions++;
    this.compactedBytes += bytesIn;
    result.runs++;
    result.segmentsIn += run.length;
    result.bytesIn += bytesIn;
    result.bytesOut += outPos;
    result.tombstonesDropped += droppedCount;
    this.#o.log.info(
      { segment: name, inputs: run.length, bytesIn, bytesOut: outPos, tombstonesDropped: droppedCount },
      'compacted',
    );
    return seg;
  }
}
