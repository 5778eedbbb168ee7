import { GossipError } from '@gossip/protocol';
import { Buckets, COUNT_BUCKETS, SECONDS_BUCKETS } from './buckets.js';
import { RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES, segmentHeader, writeRecord } from './format.js';
import { writeFully, writeFullyNow } from './fs.js';
import type { Replaced } from './index-table.js';
import { saveMeta } from './meta.js';
import type { FsyncMode } from './options.js';
import type { StoreParts } from './parts.js';
import type { Segment } from './segment.js';

export interface AppendResult {
  status: 'accepted' | 'stale';
  /** `none` for stale; `written` (to the OS) or `synced` (fsynced) for accepted. */
  durability: 'none' | 'written' | 'synced';
}

export const STALE: AppendResult = Object.freeze({ status: 'stale', durability: 'none' }) as AppendResult;
const WRITTEN: AppendResult = Object.freeze({ status: 'accepted', durability: 'written' }) as AppendResult;
const SYNCED: AppendResult = Object.freeze({ status: 'accepted', durability: 'synced' }) as AppendResult;
/** Records are encoded into a slab of this size; a full one is handed to its batch and a new one started. */
const SLAB_BYTES = 1024 * 1024;
/** Data at least this large is written from the caller's buffer instead of copied. */
const INLINE_MAX = 16 * 1024;
/** A batch stops taking appends past this; the next turn's batch takes them. */
const BATCH_MAX_BYTES = 8 * 1024 * 1024;
/**
 * A batch up to this size, with no other batch queued behind it, is written blocking
 * (`writevNow`) unless it waits for an fsync (S4): a copy into the page cache of at most
 * this much costs less than the trip through the thread pool and back that an
 * asynchronous write takes.
 */
export const WRITE_NOW_MAX_BYTES = 64 * 1024;
const noop = () => undefined;

/** The appends of one turn: one write, one fsync, one promise. Records are kept as parallel arrays. */
interface Batch {
  seg: Segment;
  /** File offset of the batch's first byte. */
  start: number;
  bytes: number;
  bufs: Buffer[];
  slots: number[];
  tss: bigint[];
  offs: number[];
  sizes: number[];
  tombs: boolean[];
  promise: Promise<AppendResult>;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

export interface WriterOptions extends StoreParts {
  mode: FsyncMode;
  segmentBytes: number;
  fsyncIntervalMs: number;
  /** A new segment file was made: the one before it is sealed, a compaction may be due. */
  onNewSegment: () => void;
}

/**
 * Group commit (docs/STORAGE.md, S4): the appends of one event-loop turn are encoded
 * back to back into a slab and written as one batch, one `writev` (and one fsync under
 * `always`, S5) per batch, by a single writer that takes batches in order. Also the
 * background fsync under `interval` (S5), the files of new segments, and what a failed
 * write or fsync leaves (S6).
 */
export class Writer {
  readonly #o: WriterOptions;
  readonly #replaced: Replaced = { seg: 0, size: 0 };
  /** The offset the next record gets in the tail, counting queued batches. */
  #tailEnd = 0;
  #open: Batch | null = null;
  readonly #queue: Batch[] = [];
  #writing = false;
  #flushScheduled = false;
  /** The background fsync pass in progress, if any. */
  #syncing: Promise<void> | undefined;
  #drained: Promise<void> = Promise.resolve();
  #drainedResolve: () => void = noop;
  #timer: NodeJS.Timeout | undefined;
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  #slabView = new DataView(this.#slab.buffer, this.#slab.byteOffset, this.#slab.byteLength);
  #slabPos = 0;
  /** Where the open batch's not-yet-listed slab bytes start. */
  #slabMark = 0;
  /** Seconds each fsync took: a group commit's under `always`, each segment's of a background pass. */
  readonly fsyncSeconds = new Buckets(SECONDS_BUCKETS);
  /** Records per group commit (one batch: one write, one fsync under `always`). */
  readonly commitRecords = new Buckets(COUNT_BUCKETS);
  /** Write and fsync failures. */
  ioErrors = 0;

  constructor(options: WriterOptions) {
    this.#o = options;
  }

  /** Appends go on where recovery left the tail; under `interval`, the background fsync starts. */
  start(): void {
    this.#tailEnd = this.#o.segments.tail?.size ?? 0;
    if (this.#o.mode === 'interval') {
      this.#timer = setInterval(() => {
        if (this.#o.segments.dirty) void this.syncAll();
      }, this.#o.fsyncIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Queues the record of an append the index has marked pending at `slot` (S3): it
   * joins this turn's batch, and settles with it. Synchronous up to the promise.
   */
  append(slot: number, id: string, idBytes: number, ts: bigint, data: Uint8Array): Promise<AppendResult> {
    const size = RECORD_OVERHEAD_BYTES + idBytes + data.byteLength;
    const batch = this.#batchFor(size);
    const off = batch.start + batch.bytes;
    const inline = data.byteLength < INLINE_MAX;
    this.#reserve(RECORD_OVERHEAD_BYTES + idBytes + (inline ? data.byteLength : 0), batch);
    this.#slabPos = writeRecord(this.#slab, this.#slabView, this.#slabPos, ts, id, idBytes, data, inline);
    if (!inline) {
      this.#cutSlab(batch);
      batch.bufs.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    batch.bytes += size;
    this.#tailEnd += size;
    batch.slots.push(slot);
    batch.tss.push(ts);
    batch.offs.push(off);
    batch.sizes.push(size);
    batch.tombs.push(data.byteLength === 0);
    this.#scheduleFlush();
    return batch.promise;
  }

  /** Resolves once every append made so far is written and every segment written to is fsynced. */
  async flush(): Promise<void> {
    await this.waitWrites();
    const targets = this.#o.segments.all.filter((s) => s.dirty).map((s) => [s, s.size] as const);
    // A file whose fsync fails is sealed and counted in ioErrors (S6); later passes retry it.
    while (targets.some(([s, size]) => s.syncedSize < size && !s.syncFailed)) {
      await this.#syncing;
      await this.syncAll();
    }
  }

  /** Resolves once every append queued so far is written (or failed). */
  async waitWrites(): Promise<void> {
    this.#closeBatch();
    if (this.#queue.length > 0) this.#kick();
    while (this.#writing) await this.#drained;
  }

  /**
   * The writes of a close: waits for the queued ones and the background fsync, then
   * fsyncs every segment written to. Returns whether every fsync succeeded.
   */
  async close(): Promise<boolean> {
    if (this.#timer) clearInterval(this.#timer);
    await this.waitWrites();
    await this.#syncing;
    let synced = true;
    for (const seg of this.#o.segments.all) {
      if (!seg.dirty) continue;
      try {
        await seg.sync();
      } catch (error) {
        synced = false;
        this.#o.log.error({ err: error, segment: seg.name }, 'fsync on close failed');
      }
    }
    return synced;
  }

  /**
   * One background pass fsyncing every dirty segment, beside the writer (never in its
   * way: a batch is not held behind an fsync under `interval`). A failure marks the
   * segment; the writer seals it before its next batch (docs/STORAGE.md, S6).
   */
  syncAll(): Promise<void> {
    if (this.#syncing === undefined) {
      const pass = this.#syncPass();
      this.#syncing = pass;
      // Cleared after it settles, never inside it: a pass with nothing dirty finishes
      // before this assignment, and clearing there would leave its settled promise in
      // #syncing for good (no fsync again, and a flush() waiting on it forever).
      const clear = () => {
        if (this.#syncing === pass) this.#syncing = undefined;
      };
      pass.then(clear, clear);
    }
    return this.#syncing;
  }

  /** One pass of syncAll: fsyncs every dirty segment; a failure seals its segment (S6). */
  async #syncPass(): Promise<void> {
    for (const seg of [...this.#o.segments.all]) {
      if (!seg.dirty) continue;
      try {
        const t0 = performance.now();
        await seg.sync();
        this.fsyncSeconds.observe((performance.now() - t0) / 1000);
        seg.syncFailed = undefined;
      } catch (error) {
        if (!seg.sealPending) {
          seg.sealPending = true;
          this.ioErrors++;
          this.#o.log.error({ err: error, segment: seg.name }, 'background fsync failed; rolling to a new segment');
          this.#kick();
        }
        seg.syncFailed = error;
      }
    }
  }

  /** The open batch, or a new one; rolls to a new segment when this record would overflow the tail. */
  #batchFor(size: number): Batch {
    let batch = this.#open;
    const tail = this.#o.segments.tail;
    const overflow =
      !tail || tail.sealed || (this.#tailEnd + size > this.#o.segmentBytes && this.#tailEnd > SEGMENT_HEADER_BYTES);
    if (overflow) {
      this.#newTail();
      batch = null;
    } else if (batch && batch.bytes + size > BATCH_MAX_BYTES && batch.bytes > 0) {
      batch = null;
    }
    if (!batch) {
      this.#closeBatch();
      batch = this.#newBatch(this.#o.segments.tail as Segment, this.#tailEnd);
      this.#open = batch;
    }
    return batch;
  }

  #newBatch(seg: Segment, start: number): Batch {
    let resolve: (r: AppendResult) => void = noop;
    let reject: (e: Error) => void = noop;
    const promise = new Promise<AppendResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A batch's promise is shared by its appends; nobody may be listening when it fails.
    promise.catch(noop);
    this.#slabMark = this.#slabPos;
    return {
      seg,
      start,
      bytes: 0,
      bufs: [],
      slots: [],
      tss: [],
      offs: [],
      sizes: [],
      tombs: [],
      promise,
      resolve,
      reject,
    };
  }

  /** A new segment for appends; its file is created before its first write. */
  #newTail(): Segment {
    const seg = this.#o.segments.newTail();
    this.#tailEnd = SEGMENT_HEADER_BYTES;
    return seg;
  }

  /** Makes room in the slab for `n` bytes; lists the open batch's bytes of a full slab first. */
  #reserve(n: number, batch: Batch): void {
    if (this.#slab.length - this.#slabPos >= n) return;
    this.#cutSlab(batch);
    this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, n));
    this.#slabView = new DataView(this.#slab.buffer, this.#slab.byteOffset, this.#slab.byteLength);
    this.#slabPos = 0;
    this.#slabMark = 0;
  }

  /** Adds the slab bytes written for `batch` since the last cut to its write buffers. */
  #cutSlab(batch: Batch): void {
    if (this.#slabPos > this.#slabMark) batch.bufs.push(this.#slab.subarray(this.#slabMark, this.#slabPos));
    this.#slabMark = this.#slabPos;
  }

  #closeBatch(): void {
    const batch = this.#open;
    if (!batch) return;
    this.#open = null;
    this.#cutSlab(batch);
    if (batch.slots.length > 0) this.#queue.push(batch);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // setImmediate runs after this turn's I/O callbacks: every append of the turn joins the batch.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#closeBatch();
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    this.#drained = new Promise((r) => {
      this.#drainedResolve = r;
    });
    void this.#drain();
  }

  /** The writer: one batch at a time, in order; each is one writev (and one fsync under `always`). */
  async #drain(): Promise<void> {
    try {
      for (;;) {
        const broken = this.#o.segments.all.find((s) => s.sealPending && !s.failed);
        if (broken) {
          await this.#sealAfterFailure(broken);
          continue;
        }
        const batch = this.#queue.shift();
        if (!batch) break;
        await this.#writeBatch(batch, this.#queue.length === 0);
      }
    } finally {
      this.#writing = false;
      this.#drainedResolve();
    }
  }

  /** Writes and commits one batch; `alone`: no other batch waits behind it. */
  async #writeBatch(batch: Batch, alone: boolean): Promise<void> {
    const seg = batch.seg;
    const always = this.#o.mode === 'always';
    try {
      if (!seg.file) await this.#createFile(seg);
      const file = seg.file as NonNullable<Segment['file']>;
      // A small batch that waits for no fsync and has none behind it is written at once,
      // on the event loop; batches that pile up (a busy server) go through the thread pool,
      // so that a backlog is never written in one blocking stretch.
      const now =
        alone && !always && batch.bytes <= WRITE_NOW_MAX_BYTES && writeFullyNow(file, batch.bufs, batch.start);
      if (!now) await writeFully(file, batch.bufs, batch.start);
      if (always) {
        const t0 = performance.now();
        await file.sync();
        this.fsyncSeconds.observe((performance.now() - t0) / 1000);
        seg.syncedSize = batch.start + batch.bytes;
      }
    } catch (error) {
      await this.#failBatch(batch, error);
      return;
    }
    // Committed: visible to readers from here on (S4).
    seg.size = batch.start + batch.bytes;
    const { index, segments } = this.#o;
    segments.recordBytes += batch.bytes;
    const replaced = this.#replaced;
    const { slots, tss, offs, sizes, tombs } = batch;
    for (let k = 0; k < slots.length; k++) {
      const size = sizes[k] as number;
      const applied = index.commit(
        slots[k] as number,
        tss[k] as bigint,
        seg.handle,
        offs[k] as number,
        size,
        tombs[k] as boolean,
        replaced,
      );
      if (applied) segments.credit(seg, size, replaced);
    }
    this.commitRecords.observe(slots.length);
    batch.resolve(always ? SYNCED : WRITTEN);
  }

  /**
   * A write or fsync failed (S6): the batch's appends fail and become invisible; the
   * file is cut back to its last acknowledged byte and written no more, and every later
   * batch moves to a fresh segment. The next append tries the disk again.
   */
  async #failBatch(batch: Batch, cause: unknown): Promise<void> {
    this.ioErrors++;
    const seg = batch.seg;
    const err = new GossipError(
      'GOSSIP_ERR_STORE_WRITE',
      `writing ${seg.name} failed (${(cause as NodeJS.ErrnoException)?.code ?? String(cause)}): the appends of this batch were not stored`,
      { cause },
    );
    this.#o.log.error({ err: cause, segment: seg.name, appends: batch.slots.length }, 'write failed');
    for (const slot of batch.slots) this.#o.index.unpend(slot);
    batch.reject(err);
    await this.#sealAfterFailure(seg);
  }

  /**
   * Seals `seg` at its last acknowledged byte after a failed write or fsync (S6, steps
   * 2 and 3): a failed fsync may have dropped dirty pages, so nothing written to the
   * file afterwards could be trusted. Its valid length goes to the meta file, so that
   * recovery ignores what follows even if the truncation did not reach the disk.
   */
  async #sealAfterFailure(seg: Segment): Promise<void> {
    const { fs, dir, meta, segments } = this.#o;
    seg.failed = true;
    seg.sealed = true;
    if (seg.file) {
      meta.validLengths[seg.name] = seg.size;
      try {
        await seg.file.truncate(seg.size);
        await saveMeta(fs, dir, meta);
      } catch (error) {
        this.#o.log.error({ err: error, segment: seg.name }, 'could not record the valid length after a failed write');
      }
    }
    // Later batches were laid out in this segment: move them to a new one.
    this.#closeBatch();
    const later = this.#queue.filter((b) => b.seg === seg);
    if (segments.tail === seg || later.length > 0) {
      const fresh = this.#newTail();
      for (const b of later) {
        const delta = this.#tailEnd - b.start;
        b.seg = fresh;
        b.start = this.#tailEnd;
        for (let k = 0; k < b.offs.length; k++) b.offs[k] = (b.offs[k] as number) + delta;
        this.#tailEnd += b.bytes;
      }
    }
    if (seg.size <= SEGMENT_HEADER_BYTES && seg.live === 0) await this.#dropEmpty(seg);
  }

  async #dropEmpty(seg: Segment): Promise<void> {
    const { fs, dir, meta, segments } = this.#o;
    segments.remove(seg);
    if (!seg.file) return;
    try {
      await fs.unlink(`${dir}/${seg.name}`);
      delete meta.validLengths[seg.name];
      delete meta.closedLengths[seg.name];
    } catch {
      // Left for the next open, which removes empty segments.
    }
  }

  /**
   * Creates the file of a new tail (S4): the segments before it are complete, so they
   * are fsynced and sealed first; the new file's header is fsynced, then the folder.
   */
  async #createFile(seg: Segment): Promise<void> {
    const { fs, dir } = this.#o;
    for (const s of this.#o.segments.all) {
      if (s !== seg && s.dirty && !s.sealPending) await s.sync();
      if (s !== seg && s.first < seg.first) s.sealed = true;
    }
    const path = `${dir}/${seg.name}`;
    const file = await fs.open(path, 'create');
    try {
      await writeFully(file, [segmentHeader()], 0);
      await file.sync();
      await fs.syncDir(dir);
    } catch (error) {
      await file.close().catch(noop);
      await fs.unlink(path).catch(noop);
      throw error;
    }
    seg.file = file;
    seg.size = SEGMENT_HEADER_BYTES;
    seg.syncedSize = SEGMENT_HEADER_BYTES;
    this.#o.onNewSegment();
  }
}
