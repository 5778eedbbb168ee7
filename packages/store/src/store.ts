import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  checkData,
  checkId,
  checkTs,
  now as clockNow,
  DEFAULT_MAX_DATA_BYTES,
  type Epoch,
  FrameKind,
  GossipError,
  MAX_ID_BYTES,
  MessageFlags,
} from '@gossip/protocol';
import { CHECKPOINT_FILE, type CheckpointSegment, decodeCheckpoint, encodeCheckpoint } from './checkpoint.js';
import {
  parseRecord,
  RECORD_OVERHEAD_BYTES,
  RECORD_PREFIX_BYTES,
  recordBodyLength,
  SEGMENT_HEADER_BYTES,
  segmentHeader,
  segmentName,
  writeRecord,
} from './format.js';
import { nodeFs, readSmallFile, replaceFile, type StoreFile, type StoreFs, writeFully } from './fs.js';
import { IndexTable, type Replaced } from './index-table.js';
import { frameWindow, spanChecksums } from './kernel.js';
import { acquireLock, freshMeta, loadMeta, type Meta, releaseLock, saveMeta } from './meta.js';
import { type Corruption, classifyTail, type SegmentFile, scanEnd, scanSegment, segmentFiles } from './recovery.js';
import { type ReplayPlan, ReplayWindow } from './replay.js';
import { Segment } from './segment.js';

/** When an append is acknowledged (docs/STORAGE.md, "Durability"). */
export type FsyncMode = 'always' | 'interval' | 'never';

/** pino-compatible: `logger.info({ fields }, 'message')`. */
export interface StoreLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface RecoveryProgress {
  segment: string;
  segmentsDone: number;
  segments: number;
  records: number;
}

export interface StoreOptions {
  /** The data folder; created if missing. */
  dir: string;
  /**
   * `always`: an append settles after the fsync of the group commit that holds it.
   * `interval` (default): after the write; the file is fsynced every `fsyncIntervalMs`.
   * `never`: after the write; fsync only on roll-over and close.
   */
  fsync?: FsyncMode;
  /** Period of the background fsync under `interval`. Default 100 ms. */
  fsyncIntervalMs?: number;
  /** A segment takes no more appends past this size. Default 64 MiB; at most 1 GiB. */
  segmentBytes?: number;
  /** Largest data of one message. Default 10 MiB. */
  maxDataBytes?: number;
  /** Background compaction starts when the dead share of sealed segments passes this. Default 0.5; 0 turns it off. */
  compactThreshold?: number;
  /** How often the background compaction checks the dead ratio. Default 10 s. */
  compactCheckMs?: number;
  /** Tombstones whose ts is older than this are dropped by compaction. Default 24 h. */
  tombstoneRetentionMs?: number;
  /** On a corrupt record inside an older segment: `skip` it and report (default), or `fail` to open. */
  corruption?: 'skip' | 'fail';
  /** The filesystem seam; tests pass a simulated disk. */
  fs?: StoreFs;
  logger?: StoreLogger;
  /** The clock retention is judged by. Default: the protocol's `now()`. */
  now?: () => bigint;
  /** Called after each segment recovery scans. */
  onRecoveryProgress?: (progress: RecoveryProgress) => void;
}

export interface AppendResult {
  status: 'accepted' | 'stale';
  /** `none` for stale; `written` (to the OS) or `synced` (fsynced) for accepted. */
  durability: 'none' | 'written' | 'synced';
}

/** A persisted message. `data` is a view: of a buffer of its own from `get`, of a batch's read buffer from `replay`. */
export interface StoredMessage {
  id: string;
  ts: bigint;
  data: Buffer;
}

export interface RecoveryReport {
  segments: number;
  /** The index came from the checkpoint of a clean close: no segment was scanned (docs/STORAGE.md). */
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

export interface StoreStats {
  epoch: Epoch;
  /** Ids in the index, tombstones included. */
  ids: number;
  tombstones: number;
  segments: number;
  /** Bytes of records on disk. */
  bytes: number;
  /** Bytes of the records the index points to. */
  liveBytes: number;
  /** Share of record bytes that are superseded: 0 to 1. */
  deadRatio: number;
  newestTs: bigint | null;
  horizon: bigint | null;
  appends: number;
  staleAppends: number;
  compactions: number;
  compactedBytes: number;
  /** Write and fsync failures since open. */
  ioErrors: number;
  recovery: RecoveryReport;
}

export interface CompactionResult {
  /** Runs of segments rewritten. */
  runs: number;
  segmentsIn: number;
  bytesIn: number;
  bytesOut: number;
  tombstonesDropped: number;
}

/** A segment file found on open, before recovery adopts it. */
type OpenedSegment = SegmentFile & { file: StoreFile; seg: Segment };

/** A batch of `replayFrames`: `count` message frames, back to back across `chunks`. */
export interface ReplayFrames {
  chunks: Buffer[];
  count: number;
}

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

const STALE: AppendResult = Object.freeze({ status: 'stale', durability: 'none' }) as AppendResult;
const STALE_PROMISE = Promise.resolve(STALE);
const WRITTEN: AppendResult = Object.freeze({ status: 'accepted', durability: 'written' }) as AppendResult;
const SYNCED: AppendResult = Object.freeze({ status: 'accepted', durability: 'synced' }) as AppendResult;
const SLAB_BYTES = 1024 * 1024;
/** A replay reads across a gap of dead records up to this size rather than pay for another read. */
const READ_GAP = 32 * 1024;
/** Data at least this large is written from the caller's buffer instead of copied. */
const INLINE_MAX = 16 * 1024;
/** A batch stops taking appends past this; the next turn's batch takes them. */
const BATCH_MAX_BYTES = 8 * 1024 * 1024;
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
const NS_PER_MS = 1_000_000n;
const noop = () => undefined;
const silent: StoreLogger = { info: noop, warn: noop, error: noop };

/**
 * The durable log: segments on disk, an index of the newest record per id in memory,
 * group commit, replay, fetch and compaction. Usable on its own, without a server.
 * Open it with `Store.open()`.
 */
export class Store {
  readonly dir: string;
  readonly #fs: StoreFs;
  readonly #log: StoreLogger;
  readonly #mode: FsyncMode;
  readonly #segmentBytes: number;
  readonly #maxData: number;
  readonly #threshold: number;
  readonly #retentionNs: bigint;
  readonly #now: () => bigint;
  readonly #options: StoreOptions;
  #meta: Meta;
  #lockToken = '';
  readonly #index = new IndexTable();
  readonly #replaced: Replaced = { seg: 0, size: 0 };
  /** Segments in log order (by first sequence number). */
  #segments: Segment[] = [];
  readonly #byHandle = new Map<number, Segment>();
  #nextHandle = 1;
  #nextSeq = 1;
  /** Where appends go, and the offset the next record gets in it. */
  #tail: Segment | null = null;
  #tailEnd = 0;
  #open: Batch | null = null;
  readonly #queue: Batch[] = [];
  #writing = false;
  #flushScheduled = false;
  /** The background fsync pass in progress, if any. */
  #syncing: Promise<void> | undefined;
  #drained: Promise<void> = Promise.resolve();
  #drainedResolve: () => void = noop;
  #newestTs: bigint | null = null;
  #bytes = 0;
  #closed = false;
  #closing: Promise<void> | null = null;
  #compacting: Promise<CompactionResult> | null = null;
  #compactAbort = new AbortController();
  #timers: NodeJS.Timeout[] = [];
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  #slabView = new DataView(this.#slab.buffer, this.#slab.byteOffset, this.#slab.byteLength);
  #slabPos = 0;
  /** Where the open batch's not-yet-listed slab bytes start. */
  #slabMark = 0;
  #counters = { appends: 0, stale: 0, compactions: 0, compactedBytes: 0, ioErrors: 0 };
  /** The newest segment file found on open: the only one appends may go on in. */
  #newestOpened: OpenedSegment | undefined;
  #recovery: RecoveryReport = {
    segments: 0,
    checkpoint: false,
    records: 0,
    truncatedBytes: 0,
    corruptions: [],
    leftoversRemoved: 0,
    ms: 0,
  };

  private constructor(options: StoreOptions, meta: Meta) {
    this.dir = options.dir;
    this.#options = options;
    this.#fs = options.fs ?? nodeFs;
    this.#log = options.logger ?? silent;
    this.#mode = options.fsync ?? 'interval';
    this.#segmentBytes = Math.min(options.segmentBytes ?? 64 * 1024 * 1024, MAX_SEGMENT_BYTES);
    this.#maxData = options.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES;
    this.#threshold = options.compactThreshold ?? 0.5;
    this.#retentionNs = BigInt(Math.round(options.tombstoneRetentionMs ?? 24 * 3600 * 1000)) * NS_PER_MS;
    this.#now = options.now ?? clockNow;
    this.#meta = meta;
  }

  /** Opens (or creates) the data folder: takes its lock, recovers every segment, rebuilds the index. */
  static async open(options: StoreOptions): Promise<Store> {
    if (!['always', 'interval', 'never'].includes(options.fsync ?? 'interval')) {
      throw new GossipError(
        'GOSSIP_ERR_INVALID_ARGUMENT',
        `fsync must be always, interval or never, got ${options.fsync}`,
      );
    }
    const fs = options.fs ?? nodeFs;
    await fs.mkdir(options.dir);
    const token = await acquireLock(fs, options.dir);
    let store: Store | undefined;
    try {
      let meta = await loadMeta(fs, options.dir);
      if (!meta) {
        meta = freshMeta();
        await saveMeta(fs, options.dir, meta);
      }
      store = new Store(options, meta);
      store.#lockToken = token;
      await store.#recover();
      store.#startTimers();
      return store;
    } catch (error) {
      if (store) await store.#closeFiles();
      await releaseLock(fs, options.dir, token);
      throw error;
    }
  }

  /** The log's identity: random per data folder, kept across restarts. */
  get epoch(): Epoch {
    return this.#meta.epoch;
  }

  /** Newest ts of a tombstone compaction dropped, or null. A client whose since is older may have missed a delete. */
  get horizon(): bigint | null {
    return this.#meta.horizon;
  }

  /** Newest ts of any persisted message, or null while the log is empty. */
  get newestTs(): bigint | null {
    return this.#newestTs;
  }

  get fsyncMode(): FsyncMode {
    return this.#mode;
  }

  get maxDataBytes(): number {
    return this.#maxData;
  }

  /**
   * Appends a message if `ts` is newer than the newest ts persisted (or pending) for
   * `id`; otherwise settles `stale` and writes nothing. Empty `data` is a tombstone.
   * The check, the index's pending entry and the queueing of the write happen in this
   * one synchronous call, so concurrent appends of one id are ordered by call order.
   * Do not modify `data` before the promise settles.
   */
  append(id: string, ts: bigint, data: Uint8Array): Promise<AppendResult> {
    let idBytes: number;
    try {
      if (this.#closed) throw new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store is closed');
      idBytes = idByteLength(id);
      checkTs(ts);
      checkData(data, this.#maxData);
    } catch (error) {
      return Promise.reject(error);
    }
    const slot = this.#index.tryPend(id, ts);
    if (slot < 0) {
      this.#counters.stale++;
      return STALE_PROMISE;
    }
    const size = RECORD_OVERHEAD_BYTES + idBytes + data.byteLength;
    const batch = this.#batchFor(size);
    const off = batch.start + batch.bytes;
    const inline = data.byteLength < INLINE_MAX;
    this.#reserve(RECORD_OVERHEAD_BYTES + idBytes + (inline ? data.byteLength : 0), batch);
    const end = writeRecord(this.#slab, this.#slabView, this.#slabPos, ts, id, idBytes, data, inline);
    this.#slabPos = end;
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
    this.#counters.appends++;
    this.#scheduleFlush();
    return batch.promise;
  }

  /** The newest persisted message of `id`, read from disk; undefined if none (a tombstone is returned, with empty data). */
  async get(id: string): Promise<StoredMessage | undefined> {
    this.#assertOpen();
    const slot = this.#index.slotOf(id);
    if (slot === undefined) return undefined;
    const seg = this.#byHandle.get(this.#index.segment(slot));
    const off = this.#index.offset(slot);
    const size = this.#index.size(slot);
    const ts = this.#index.ts(slot);
    if (!seg) return undefined;
    const buf = Buffer.allocUnsafe(size);
    await this.#readInto(seg, buf, off, size);
    const rec = parseRecord(buf, 0, size);
    if (!rec || rec.id !== id || rec.ts !== ts) {
      // Moved by a compaction between the lookup and the read, or corrupt on disk.
      const again = this.#index.slotOf(id);
      if (again !== undefined && (this.#index.segment(again) !== seg.handle || this.#index.offset(again) !== off)) {
        return this.get(id);
      }
      throw new GossipError(
        'GOSSIP_ERR_STORE_CORRUPT',
        `record of ${JSON.stringify(id)} at ${seg.name}:${off} fails its checksum`,
      );
    }
    return rec;
  }

  /**
   * Bytes `get(id)` reads and holds for the newest persisted message of `id` (its record:
   * the data plus at most 275 bytes), from memory; undefined if none. Lets a reader
   * batch its reads by size before making them.
   */
  recordBytes(id: string): number | undefined {
    const slot = this.#index.slotOf(id);
    return slot === undefined ? undefined : this.#index.size(slot);
  }

  /** Ts of the newest persisted message of `id`, from memory. */
  tsOf(id: string): bigint | undefined {
    const slot = this.#index.slotOf(id);
    return slot === undefined ? undefined : this.#index.ts(slot);
  }

  /**
   * The newest message of every id whose newest ts is >= `since` (all ids for null),
   * tombstones included, in ascending ts order, in batches read with large sequential
   * reads. Memory is bounded by the batch size plus 12 bytes per matching id for the
   * ordering. Appends made during a replay may or may not appear in it; an id updated
   * after the replay started is left out (its new value is a live message).
   */
  async *replayBatches(
    since: bigint | null,
    options: { batchBytes?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<StoredMessage[]> {
    for await (const { w, plan } of this.#replayWindows(since, options)) {
      const out: StoredMessage[] = [];
      const crcs = windowCrcs(w);
      for (let k = 0; k < w.count; k++) {
        const bodyLen = this.#checkedBodyLength(w, k, plan, crcs[k] as number);
        if (bodyLen < 0) continue;
        const buf = w.bufs[w.buf[k] as number] as Buffer;
        const view = w.views[w.buf[k] as number] as DataView;
        const at = w.at[k] as number;
        const idEnd = at + 19 + view.getUint16(at + 17);
        out.push({
          id: buf.toString('utf8', at + 19, idEnd),
          ts: view.getBigInt64(at + 9),
          data: buf.subarray(idEnd, at + RECORD_PREFIX_BYTES + bodyLen),
        });
      }
      if (out.length > 0) yield out;
    }
  }

  /**
   * `replayBatches` as wire frames, for a server: each batch is message frames
   * (docs/PROTOCOL.md, rule M1) flagged `Replayed`, back to back in `chunks`, ready to
   * write to a socket in order. A record's body has the layout of a message frame's
   * body (docs/STORAGE.md, S2), so records are checked and re-framed as bytes, never
   * decoded: a window at a time, by the WebAssembly of kernel.ts.
   */
  async *replayFrames(
    since: bigint | null,
    options: { batchBytes?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<ReplayFrames> {
    for await (const { w, plan } of this.#replayWindows(since, options)) {
      const out = frameWindow(w, plan);
      if (!out) {
        const copied = this.#framesCopied(w, plan);
        if (copied.count > 0) yield copied;
        continue;
      }
      for (const k of out.bad) this.#skipped(w, k);
      if (out.count > 0) yield { chunks: [out.frames], count: out.count };
    }
  }

  /** The JS path of `frameWindow` (kernel.ts): frames copied into a buffer of their own, in window order. */
  #framesCopied(w: ReplayWindow, plan: ReplayPlan): ReplayFrames {
    // A frame is 3 bytes shorter than its record: the sizes at the cut bound them all.
    const frames = Buffer.allocUnsafe(w.bytes);
    let pos = 0;
    let count = 0;
    const crcs = windowCrcs(w);
    for (let k = 0; k < w.count; k++) {
      const bodyLen = this.#checkedBodyLength(w, k, plan, crcs[k] as number);
      if (bodyLen < 0) continue;
      const body = (w.at[k] as number) + RECORD_PREFIX_BYTES;
      (w.bufs[w.buf[k] as number] as Buffer).copy(frames, pos + 5, body, body + bodyLen);
      frames.writeUInt32BE(bodyLen + 1, pos);
      frames[pos + 4] = FrameKind.Message;
      frames[pos + 5] = MessageFlags.Replayed;
      pos += 5 + bodyLen;
      count++;
    }
    return { chunks: [frames.subarray(0, pos)], count };
  }

  /**
   * The body length of window item k's record, whose CRC as read is `crc`, or -1 when
   * it fails its checks (logged) or no longer holds the ts the plan has for it.
   */
  #checkedBodyLength(w: ReplayWindow, k: number, plan: ReplayPlan, crc: number): number {
    const size = w.size[k] as number;
    if (size === 0) return -1; // left out: updated since its cut, or its segment is gone
    const view = w.views[w.buf[k] as number] as DataView;
    const at = w.at[k] as number;
    const bodyLen = recordBodyLength(view, at, size, crc);
    if (bodyLen < 0) {
      this.#skipped(w, k);
      return -1;
    }
    const i = w.pos[k] as number;
    const hi = (view.getUint32(at + 9) ^ 0x80000000) >>> 0;
    return hi === plan.hi[i] && view.getUint32(at + 13) === plan.lo[i] ? bodyLen : -1;
  }

  #skipped(w: ReplayWindow, k: number): void {
    this.#log.warn(
      { segment: this.#byHandle.get(w.seg[k] as number)?.name, offset: w.off[k] },
      'replay skipped a record that fails its checksum',
    );
  }

  /**
   * The replay's plan, then its windows, each read with as few reads as possible: up
   * to `batchBytes` of records whose ids still hold their planned ts when cut. The next
   * window is cut and its read started before the current one is handed out, so the
   * reads overlap the consumer's work.
   */
  async *#replayWindows(
    since: bigint | null,
    options: { batchBytes?: number; signal?: AbortSignal },
  ): AsyncGenerator<{ w: ReplayWindow; plan: ReplayPlan }> {
    this.#assertOpen();
    const batchBytes = options.batchBytes ?? 1024 * 1024;
    const index = this.#index;
    const plan = index.plan(since);
    const capacity = Math.min(plan.n, Math.ceil(batchBytes / RECORD_OVERHEAD_BYTES) + 1);
    // Two windows take turns: one being consumed, the next being read.
    const windows = [new ReplayWindow(capacity), new ReplayWindow(capacity)];
    let turn = 0;
    let i = 0;
    const check = () => {
      if (options.signal?.aborted) {
        throw new GossipError('GOSSIP_ERR_ABORTED', 'the replay was aborted', { cause: options.signal.reason });
      }
      if (this.#closed) throw new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store closed during a replay');
    };
    const next = (): { w: ReplayWindow; read: Promise<void> } | undefined => {
      while (i < plan.n) {
        check();
        const w = windows[turn] as ReplayWindow;
        i = index.cut(plan, i, batchBytes, w);
        if (w.count === 0) continue;
        turn ^= 1;
        const read = this.#readWindow(w);
        read.catch(noop); // awaited below; a consumer that stops early leaves the last one unawaited
        return { w, read };
      }
      return undefined;
    };
    let current = next();
    while (current) {
      await current.read;
      const ahead = next();
      check();
      // Cut before the previous window was consumed: ids updated since are left out now.
      index.recheck(plan, current.w);
      yield { w: current.w, plan };
      current = ahead;
    }
  }

  /** `replayBatches` one message at a time. */
  async *replay(since: bigint | null, options: { signal?: AbortSignal } = {}): AsyncGenerator<StoredMessage> {
    for await (const batch of this.replayBatches(since, options)) yield* batch;
  }

  /** Resolves once every append made so far is written (and fsynced, whatever the mode). */
  async flush(): Promise<void> {
    this.#assertOpen();
    await this.#waitWrites();
    const targets = this.#segments.filter((s) => s.dirty).map((s) => [s, s.size] as const);
    // A file whose fsync fails is sealed and counted in ioErrors (S6); later passes retry it.
    while (targets.some(([s, size]) => s.syncedSize < size && !s.syncFailed)) {
      await this.#syncing;
      await this.#syncAll();
    }
  }

  /** Whether a segment holds written bytes not yet fsynced: the tail, or one sealed after a failure. */
  #anyDirty(): boolean {
    return this.#segments.some((s) => s.dirty);
  }

  /** fsyncs a segment's written bytes; what it covered is then durable. */
  async #syncSegment(seg: Segment): Promise<void> {
    const target = seg.size;
    await (seg.file as StoreFile).sync();
    if (target > seg.syncedSize) seg.syncedSize = target;
  }

  /**
   * One background pass fsyncing every dirty segment, beside the writer (never in its
   * way: a batch is not held behind an fsync under `interval`). A failure marks the
   * segment; the writer seals it before its next batch (docs/STORAGE.md, S6).
   */
  #syncAll(): Promise<void> {
    this.#syncing ??= (async () => {
      try {
        for (const seg of [...this.#segments]) {
          if (!seg.dirty) continue;
          try {
            await this.#syncSegment(seg);
            seg.syncFailed = undefined;
          } catch (error) {
            if (!seg.sealPending) {
              seg.sealPending = true;
              this.#counters.ioErrors++;
              this.#log.error({ err: error, segment: seg.name }, 'background fsync failed; rolling to a new segment');
              this.#kick();
            }
            seg.syncFailed = error;
          }
        }
      } finally {
        this.#syncing = undefined;
      }
    })();
    return this.#syncing;
  }

  /**
   * Seals the segment taking appends (after writing and fsyncing it), so a compaction
   * can rewrite it; the next append starts a new segment. For offline compaction.
   */
  async roll(): Promise<void> {
    await this.flush();
    const tail = this.#tail;
    if (tail && tail.size > SEGMENT_HEADER_BYTES) {
      tail.sealed = true;
      this.#tail = null;
    }
  }

  stats(): StoreStats {
    const live = this.#index.liveBytes;
    return {
      epoch: this.epoch,
      ids: this.#index.count,
      tombstones: this.#index.tombstones,
      segments: this.#segments.length,
      bytes: this.#bytes,
      liveBytes: live,
      deadRatio: this.#bytes === 0 ? 0 : Math.max(0, 1 - live / this.#bytes),
      newestTs: this.#newestTs,
      horizon: this.#meta.horizon,
      appends: this.#counters.appends,
      staleAppends: this.#counters.stale,
      compactions: this.#counters.compactions,
      compactedBytes: this.#counters.compactedBytes,
      ioErrors: this.#counters.ioErrors,
      recovery: this.#recovery,
    };
  }

  /**
   * Compacts sealed segments now (the active one is never rewritten): runs of
   * segments are merged into one, keeping the newest record per id, and tombstones
   * past retention are dropped from runs that start at the oldest segment.
   */
  compact(): Promise<CompactionResult> {
    this.#assertOpen();
    return this.#runCompaction(true);
  }

  /** Waits for pending writes, fsyncs, closes the files and releases the lock. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#compactAbort.abort(
      new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store closed during a compaction; it resumes at the next open'),
    );
    await this.#compacting?.catch(noop);
    await this.#waitWrites();
    await this.#syncing;
    let synced = true;
    for (const seg of this.#segments) {
      if (!seg.dirty) continue;
      try {
        await this.#syncSegment(seg);
      } catch (error) {
        synced = false;
        this.#log.error({ err: error, segment: seg.name }, 'fsync on close failed');
      }
    }
    await this.#recordClosedLengths();
    // Only a log that is all on disk, with no file sealed after a failure, is checkpointed.
    if (synced && !this.#segments.some((s) => s.failed || s.sealPending || !s.file)) {
      try {
        await this.#writeCheckpoint();
      } catch (error) {
        this.#log.error({ err: error }, 'could not write the index checkpoint: the next open scans the segments');
      }
    }
    await this.#closeFiles();
    await releaseLock(this.#fs, this.dir, this.#lockToken);
  }

  /**
   * Records in the meta file how far each segment is complete and fsynced as this close
   * leaves it (`closedLengths`), so that the next open can tell damage to those bytes
   * from a torn write (docs/STORAGE.md, S8). A file whose fsync failed keeps what an
   * earlier close recorded: a later fsync cannot vouch for pages a failed one may have
   * dropped. A length is never lowered: a segment sealed after damage stays short of it.
   */
  async #recordClosedLengths(): Promise<void> {
    const before = this.#meta.closedLengths;
    const after: Record<string, number> = {};
    for (const seg of this.#segments) {
      if (!seg.file) continue;
      const known = before[seg.name];
      const durable = !seg.failed && !seg.sealPending && !seg.dirty && seg.size > SEGMENT_HEADER_BYTES;
      const length = Math.max(known ?? 0, durable ? seg.size : 0);
      if (length > 0) after[seg.name] = length;
    }
    const names = Object.keys(after);
    if (names.length === Object.keys(before).length && names.every((n) => before[n] === after[n])) return;
    this.#meta.closedLengths = after;
    try {
      await saveMeta(this.#fs, this.dir, this.#meta);
    } catch (error) {
      // What the meta file still holds stays true: lengths only grow while a file exists.
      this.#log.error({ err: error }, 'could not record the segments closed cleanly in the meta file');
    }
  }

  /** Writes the index checkpoint the next open loads instead of scanning (docs/STORAGE.md, "Index checkpoint"). */
  async #writeCheckpoint(): Promise<void> {
    const position = new Map<number, number>();
    const segments: CheckpointSegment[] = [];
    for (const seg of this.#segments) {
      position.set(seg.handle, segments.length);
      const stamp = await (seg.file as StoreFile).stamp();
      segments.push({ name: seg.name, stamp, size: seg.size, cleanAsOf: seg.cleanAsOf, corrupt: seg.corrupt });
    }
    const entries = this.#index.columns();
    for (let k = 0; k < entries.seg.length; k++) {
      const at = position.get(entries.seg[k] as number);
      if (at === undefined) throw new Error(`index entry ${entries.ids[k]} points at no segment`);
      entries.seg[k] = at;
    }
    const names = new Set(segments.map((s) => s.name));
    const corruptions = this.#recovery.corruptions.filter((c) => names.has(c.file));
    // What a scan would find: the newest ts the index holds.
    const newestTs = this.#index.newest();
    await replaceFile(
      this.#fs,
      this.dir,
      CHECKPOINT_FILE,
      encodeCheckpoint({ segments, corruptions, entries, newestTs }),
    );
  }

  async #closeFiles(): Promise<void> {
    await Promise.all(this.#segments.map((s) => s.close()));
  }

  #assertOpen(): void {
    if (this.#closed) throw new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store is closed');
  }

  // ---- group commit -------------------------------------------------------------

  /** The open batch, or a new one; rolls to a new segment when this record would overflow the tail. */
  #batchFor(size: number): Batch {
    let batch = this.#open;
    const tail = this.#tail;
    const overflow =
      !tail || tail.sealed || (this.#tailEnd + size > this.#segmentBytes && this.#tailEnd > SEGMENT_HEADER_BYTES);
    if (overflow) {
      this.#newTail();
      batch = null;
    } else if (batch && batch.bytes + size > BATCH_MAX_BYTES && batch.bytes > 0) {
      batch = null;
    }
    if (!batch) {
      this.#closeBatch();
      batch = this.#newBatch(this.#tail as Segment, this.#tailEnd);
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

  /** A new segment object for appends; its file is created by the writer before its first write. */
  #newTail(): void {
    const seq = this.#nextSeq++;
    const seg = new Segment(this.#nextHandle++, seq, seq, 0);
    this.#addSegment(seg);
    this.#tail = seg;
    this.#tailEnd = SEGMENT_HEADER_BYTES;
  }

  #addSegment(seg: Segment): void {
    this.#byHandle.set(seg.handle, seg);
    this.#segments.push(seg);
    this.#segments.sort((a, b) => a.first - b.first);
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

  async #waitWrites(): Promise<void> {
    this.#closeBatch();
    if (this.#queue.length > 0) this.#kick();
    while (this.#writing) await this.#drained;
  }

  /** The writer: one batch at a time, in order; each is one writev (and one fsync under `always`). */
  async #drain(): Promise<void> {
    try {
      for (;;) {
        const broken = this.#segments.find((s) => s.sealPending && !s.failed);
        if (broken) {
          await this.#sealAfterFailure(broken);
          continue;
        }
        const batch = this.#queue.shift();
        if (!batch) break;
        await this.#writeBatch(batch);
      }
    } finally {
      this.#writing = false;
      this.#drainedResolve();
    }
  }

  async #writeBatch(batch: Batch): Promise<void> {
    const seg = batch.seg;
    try {
      if (!seg.file) await this.#createSegmentFile(seg);
      const file = seg.file as NonNullable<Segment['file']>;
      await writeFully(file, batch.bufs, batch.start);
      if (this.#mode === 'always') {
        await file.sync();
        seg.syncedSize = batch.start + batch.bytes;
      }
    } catch (error) {
      await this.#failBatch(batch, error);
      return;
    }
    // Committed: visible to readers from here on.
    seg.size = batch.start + batch.bytes;
    this.#bytes += batch.bytes;
    const index = this.#index;
    const replaced = this.#replaced;
    const { slots, tss, offs, sizes, tombs } = batch;
    let newest = this.#newestTs;
    for (let k = 0; k < slots.length; k++) {
      const ts = tss[k] as bigint;
      const size = sizes[k] as number;
      if (!index.commit(slots[k] as number, ts, seg.handle, offs[k] as number, size, tombs[k] as boolean, replaced))
        continue;
      if (replaced.seg !== 0) {
        const old = this.#byHandle.get(replaced.seg);
        if (old) old.live -= replaced.size;
      }
      seg.live += size;
      if (newest === null || ts > newest) newest = ts;
    }
    this.#newestTs = newest;
    batch.resolve(this.#mode === 'always' ? SYNCED : WRITTEN);
  }

  /**
   * A write or fsync failed: the batch's appends fail and become invisible; the file
   * is cut back to its last acknowledged byte and written no more (a failed fsync may
   * have dropped dirty pages, so nothing after it can be trusted), and every later
   * batch moves to a fresh segment. The next append tries the disk again.
   */
  async #failBatch(batch: Batch, cause: unknown): Promise<void> {
    this.#counters.ioErrors++;
    const seg = batch.seg;
    const err = new GossipError(
      'GOSSIP_ERR_STORE_WRITE',
      `writing ${seg.name} failed (${(cause as NodeJS.ErrnoException)?.code ?? String(cause)}): the appends of this batch were not stored`,
      { cause },
    );
    this.#log.error({ err: cause, segment: seg.name, appends: batch.slots.length }, 'write failed');
    for (const slot of batch.slots) this.#index.unpend(slot);
    batch.reject(err);
    await this.#sealAfterFailure(seg);
  }

  async #sealAfterFailure(seg: Segment): Promise<void> {
    seg.failed = true;
    seg.sealed = true;
    if (seg.file) {
      this.#meta.validLengths[seg.name] = seg.size;
      try {
        await seg.file.truncate(seg.size);
        await saveMeta(this.#fs, this.dir, this.#meta);
      } catch (error) {
        this.#log.error({ err: error, segment: seg.name }, 'could not record the valid length after a failed write');
      }
    }
    // Later batches were laid out in this segment: move them to a new one.
    this.#closeBatch();
    const later = this.#queue.filter((b) => b.seg === seg);
    if (this.#tail === seg || later.length > 0) {
      this.#newTail();
      const fresh = this.#tail as Segment;
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
    this.#segments = this.#segments.filter((s) => s !== seg);
    this.#byHandle.delete(seg.handle);
    seg.retire();
    if (!seg.file) return;
    try {
      await this.#fs.unlink(`${this.dir}/${seg.name}`);
      delete this.#meta.validLengths[seg.name];
      delete this.#meta.closedLengths[seg.name];
    } catch {
      // Left for the next open, which removes empty segments.
    }
  }

  async #createSegmentFile(seg: Segment): Promise<void> {
    // The previous tail is complete: make it durable before the new file exists.
    for (const s of this.#segments) {
      if (s !== seg && s.dirty && !s.sealPending) await this.#syncSegment(s);
      if (s !== seg && s.first < seg.first) s.sealed = true;
    }
    const path = `${this.dir}/${seg.name}`;
    const file = await this.#fs.open(path, 'create');
    try {
      await writeFully(file, [segmentHeader()], 0);
      await file.sync();
      await this.#fs.syncDir(this.dir);
    } catch (error) {
      await file.close().catch(noop);
      await this.#fs.unlink(path).catch(noop);
      throw error;
    }
    seg.file = file;
    seg.size = SEGMENT_HEADER_BYTES;
    seg.syncedSize = SEGMENT_HEADER_BYTES;
    this.#maybeCompactSoon();
  }

  #startTimers(): void {
    if (this.#mode === 'interval') {
      const t = setInterval(() => {
        if (this.#anyDirty()) void this.#syncAll();
      }, this.#options.fsyncIntervalMs ?? 100);
      t.unref();
      this.#timers.push(t);
    }
    if (this.#threshold > 0) {
      const t = setInterval(() => this.#maybeCompactSoon(), this.#options.compactCheckMs ?? 10_000);
      t.unref();
      this.#timers.push(t);
    }
  }

  // ---- reads --------------------------------------------------------------------

  async #readInto(seg: Segment, buf: Buffer, off: number, size: number): Promise<void> {
    const file = seg.pin();
    try {
      let got = 0;
      while (got < size) {
        const n = await file.read(buf, got, size - got, off + got);
        if (n === 0) throw new GossipError('GOSSIP_ERR_STORE_CORRUPT', `${seg.name} ends before ${off + size}`);
        got += n;
      }
    } finally {
      seg.unpin();
    }
  }

  /**
   * Reads a window's records with as few reads as possible: neighbours in one file go
   * in one read, a small gap of dead records being cheaper than a syscall. Ts order is
   * usually file order already (appends come in ts order; compaction keeps it): then
   * one pass groups the items; otherwise they are sorted by place first.
   */
  async #readWindow(w: ReplayWindow): Promise<void> {
    const n = w.count;
    const segs = w.seg;
    const offs = w.off;
    const sizes = w.size;
    const bufOf = w.buf;
    const ats = w.at;
    const reads: Promise<void>[] = [];
    // Groups of neighbours in file order, each read as start..end of its segment; the
    // items' places in the group's buffer are set on the way.
    const groups: { seg: Segment | undefined; start: number; end: number }[] = [];
    let k = 0;
    while (k < n && w.inOrder) {
      const handle = segs[k] as number;
      const seg = this.#byHandle.get(handle);
      const start = offs[k] as number;
      let end = start + (sizes[k] as number);
      const b = groups.length;
      bufOf[k] = b;
      ats[k] = 0;
      let j = k + 1;
      for (; j < n; j++) {
        const off = offs[j] as number;
        if (segs[j] !== handle || off > end + READ_GAP) break;
        if (off < end) {
          w.inOrder = false; // behind the previous record: not in file order
          break;
        }
        bufOf[j] = b;
        ats[j] = off - start;
        end = off + (sizes[j] as number);
      }
      const next = j < n && segs[j] !== handle ? this.#byHandle.get(segs[j] as number) : undefined;
      if (next && seg && next.first < seg.first) w.inOrder = false;
      if (!seg) sizes.fill(0, k, j); // cannot happen: the index never points into a removed segment
      groups.push({ seg, start, end });
      k = j;
    }
    if (w.inOrder) for (const g of groups) this.#readGroup(w, g.seg, g.start, g.end, reads);
    if (!w.inOrder) {
      // In file order first.
      const first = (k: number) => this.#byHandle.get(segs[k] as number)?.first ?? 0;
      const order = Array.from({ length: n }, (_, k) => k);
      order.sort((a, b) => first(a) - first(b) || (offs[a] as number) - (offs[b] as number));
      let g = 0;
      while (g < n) {
        const head = order[g] as number;
        const seg = this.#byHandle.get(segs[head] as number);
        const start = offs[head] as number;
        let end = start + (sizes[head] as number);
        let j = g + 1;
        for (; j < n; j++) {
          const item = order[j] as number;
          if (segs[item] !== segs[head] || (offs[item] as number) > end + READ_GAP) break;
          end = Math.max(end, (offs[item] as number) + (sizes[item] as number));
        }
        const b = this.#readGroup(w, seg, start, end, reads);
        for (let m = g; m < j; m++) {
          const item = order[m] as number;
          bufOf[item] = b;
          ats[item] = (offs[item] as number) - start;
          if (!seg) sizes[item] = 0;
        }
        g = j;
      }
    }
    await Promise.all(reads);
  }

  /** Starts the read of `start..end` of `seg` into a new buffer of window `w`; returns the buffer's number. */
  #readGroup(w: ReplayWindow, seg: Segment | undefined, start: number, end: number, reads: Promise<void>[]): number {
    const buf = Buffer.allocUnsafe(end - start);
    w.bufs.push(buf);
    w.views.push(new DataView(buf.buffer, buf.byteOffset, buf.byteLength));
    if (seg) reads.push(this.#readInto(seg, buf, start, buf.length));
    return w.bufs.length - 1;
  }

  // ---- recovery -----------------------------------------------------------------

  async #recover(): Promise<void> {
    const t0 = performance.now();
    const fs = this.#fs;
    const names = await fs.readdir(this.dir);
    for (const name of names) {
      if (name.endsWith('.tmp')) {
        await fs.unlink(`${this.dir}/${name}`);
        this.#recovery.leftoversRemoved++;
      }
    }
    // A compaction output replaces every segment inside its range: those are leftovers.
    const { keep, leftovers } = segmentFiles(names);
    for (const f of leftovers) {
      await fs.unlink(`${this.dir}/${f.name}`);
      this.#recovery.leftoversRemoved++;
    }
    if (leftovers.length > 0) await fs.syncDir(this.dir);
    // A length recorded for a file that is gone must not apply to a new file of its name.
    const present = new Set(keep.map((f) => f.name));
    const gone = Object.keys(this.#meta.closedLengths).filter((name) => !present.has(name));
    for (const name of gone) delete this.#meta.closedLengths[name];
    if (gone.length > 0) await saveMeta(fs, this.dir, this.#meta);

    const opened: OpenedSegment[] = [];
    try {
      for (const f of keep) {
        const file = await fs.open(`${this.dir}/${f.name}`, f === keep[keep.length - 1] ? 'write' : 'read');
        opened.push({ ...f, file, seg: new Segment(this.#nextHandle++, f.first, f.last, f.gen) });
      }
    } catch (error) {
      await Promise.all(opened.map((o) => o.file.close().catch(noop)));
      throw error;
    }
    const hasCheckpoint = names.includes(CHECKPOINT_FILE);
    try {
      if (!(hasCheckpoint && (await this.#loadCheckpoint(opened)))) await this.#scanAll(opened);
    } catch (error) {
      // The open's cleanup closes the adopted segments; these are the others.
      for (const o of opened) if (!this.#segments.includes(o.seg)) await o.file.close().catch(noop);
      throw error;
    }
    if (hasCheckpoint) {
      // Consumed: the segments change from the first append on, so a checkpoint is only
      // ever read by the open that follows the close which wrote it.
      await fs.unlink(`${this.dir}/${CHECKPOINT_FILE}`);
      await fs.syncDir(this.dir);
    }

    const last = this.#segments[this.#segments.length - 1];
    if (last && !last.sealed && last.size < this.#segmentBytes) {
      this.#tail = last;
      this.#tailEnd = last.size;
    }
    this.#recovery.segments = this.#segments.length;
    this.#recovery.ms = performance.now() - t0;
    this.#log.info(
      {
        segments: this.#segments.length,
        records: this.#recovery.records,
        ids: this.#index.count,
        checkpoint: this.#recovery.checkpoint,
        truncatedBytes: this.#recovery.truncatedBytes,
        corruptions: this.#recovery.corruptions.length,
        ms: Math.round(this.#recovery.ms),
      },
      'store recovered',
    );
  }

  /** Adds a recovered segment, in log order. */
  #adopt(o: OpenedSegment, size: number, cleanAsOf: number, corrupt: boolean, valid: number | undefined): void {
    const seg = o.seg;
    seg.file = o.file;
    seg.size = size;
    seg.syncedSize = size;
    seg.corrupt = corrupt;
    seg.cleanAsOf = cleanAsOf;
    // Appends never go into a compaction output (gen > 0): its cleanAsOf describes what it held when written.
    // Nor after damage below a clean close's length: those bytes stay for inspection (S8).
    const closed = this.#meta.closedLengths[o.name];
    const damaged = closed !== undefined && size < closed;
    seg.sealed = o !== this.#newestOpened || valid !== undefined || corrupt || damaged || o.gen > 0;
    this.#byHandle.set(seg.handle, seg);
    this.#segments.push(seg);
    this.#bytes += Math.max(0, size - SEGMENT_HEADER_BYTES);
    this.#nextSeq = Math.max(this.#nextSeq, o.last + 1);
  }

  /**
   * Loads the index from the checkpoint a clean close wrote, if it describes exactly
   * these segment files, unchanged since (docs/STORAGE.md, "Index checkpoint").
   * Returns false, having changed nothing, when it does not.
   */
  async #loadCheckpoint(opened: OpenedSegment[]): Promise<boolean> {
    let ckpt: ReturnType<typeof decodeCheckpoint>;
    try {
      const raw = await readSmallFile(this.#fs, `${this.dir}/${CHECKPOINT_FILE}`);
      ckpt = raw ? decodeCheckpoint(raw) : 'missing';
    } catch (error) {
      ckpt = `unreadable: ${(error as Error).message}`;
    }
    let why = typeof ckpt === 'string' ? ckpt : undefined;
    if (typeof ckpt !== 'string') {
      if (ckpt.segments.length !== opened.length) why = 'the segments changed';
      else if (ckpt.corruptions.length > 0 && this.#options.corruption === 'fail') why = 'corruption: fail';
      for (let i = 0; i < opened.length && !why; i++) {
        const o = opened[i] as OpenedSegment;
        const c = ckpt.segments[i] as CheckpointSegment;
        if (c.name !== o.name || c.stamp !== (await o.file.stamp())) why = `${o.name} changed`;
      }
    }
    if (why !== undefined || typeof ckpt === 'string') {
      this.#log.info({ reason: why }, 'index checkpoint not used: scanning the segments');
      return false;
    }
    const { entries } = ckpt;
    const live = new Array<number>(opened.length).fill(0);
    for (let k = 0; k < entries.seg.length; k++) {
      const at = entries.seg[k] as number;
      live[at] = (live[at] as number) + (entries.size[k] as number);
      entries.seg[k] = (opened[at] as OpenedSegment).seg.handle;
    }
    if (!this.#index.restore(entries)) {
      this.#log.info({ reason: 'an id repeats' }, 'index checkpoint not used: scanning the segments');
      return false;
    }
    this.#newestOpened = opened[opened.length - 1];
    for (let i = 0; i < opened.length; i++) {
      const o = opened[i] as OpenedSegment;
      const c = ckpt.segments[i] as CheckpointSegment;
      this.#adopt(o, c.size, c.cleanAsOf, c.corrupt, this.#meta.validLengths[o.name]);
      o.seg.live = live[i] as number;
    }
    this.#newestTs = ckpt.newestTs;
    this.#recovery.records = entries.ids.length;
    this.#recovery.checkpoint = true;
    this.#recovery.corruptions = ckpt.corruptions;
    return true;
  }

  /** Recovery proper: scans every segment, checking each record, and rebuilds the index. */
  async #scanAll(opened: OpenedSegment[]): Promise<void> {
    const fs = this.#fs;
    const index = this.#index;
    const total = opened.length;
    this.#newestOpened = opened[opened.length - 1];
    let done = 0;
    for (let i = 0; i < opened.length; i++) {
      const o = opened[i] as OpenedSegment;
      const { seg, file } = o;
      const isNewest = o === this.#newestOpened;
      const fileSize = await file.size();
      const valid = this.#meta.validLengths[o.name];
      const end = scanEnd(fileSize, valid);
      this.#byHandle.set(seg.handle, seg);
      const replaced = this.#replaced;
      const scan = await scanSegment(file, o.name, end, (id, ts, off, size, dataLen) => {
        if (!index.load(id, ts, seg.handle, off, size, dataLen === 0, replaced)) return; // older, or a duplicate
        if (replaced.seg !== 0) {
          const old = this.#byHandle.get(replaced.seg);
          if (old) old.live -= replaced.size;
        }
        seg.live += size;
        if (this.#newestTs === null || ts > this.#newestTs) this.#newestTs = ts;
      });
      const closed = this.#meta.closedLengths[o.name];
      const tail = classifyTail(o.name, scan, { newest: isNewest, validLength: valid, closedLength: closed });
      if (tail.cutTo === 0) {
        await file.close();
        await fs.unlink(`${this.dir}/${o.name}`);
        this.#byHandle.delete(seg.handle);
        this.#nextSeq = Math.max(this.#nextSeq, o.last + 1);
        continue;
      }
      for (const c of scan.skipped) await this.#corruption(c, 'corrupt records skipped');
      if (tail.corruption) await this.#corruption(tail.corruption, tailMessage(scan.header, closed, tail.corruption));
      if (tail.cutTo !== undefined) {
        await file.truncate(tail.cutTo);
        await file.sync();
        this.#recovery.truncatedBytes += tail.tornBytes;
        this.#log.warn(
          { segment: o.name, offset: tail.cutTo, bytes: tail.tornBytes, records: scan.records },
          'torn tail of the newest segment truncated',
        );
      }
      this.#adopt(o, scan.header === 'ok' ? scan.validEnd : 0, scan.cleanAsOf, scan.header !== 'ok', valid);
      this.#recovery.records += scan.records;
      done++;
      this.#options.onRecoveryProgress?.({
        segment: o.name,
        segmentsDone: done,
        segments: total,
        records: this.#recovery.records,
      });
    }
  }

  /** Reports a corrupt stretch found on open, or, with `corruption: 'fail'`, refuses to open. */
  async #corruption(c: Corruption, message: string): Promise<void> {
    if ((this.#options.corruption ?? 'skip') === 'fail') {
      throw new GossipError(
        'GOSSIP_ERR_STORE_CORRUPT',
        `${this.dir}/${c.file} is corrupt at offset ${c.offset} (${c.bytesLost} bytes): ${message}`,
      );
    }
    this.#recovery.corruptions.push(c);
    this.#log.error({ ...c }, message);
  }

  // ---- compaction ---------------------------------------------------------------

  #maybeCompactSoon(): void {
    if (this.#closed || this.#compacting || this.#threshold <= 0) return;
    if (!this.#pickRun(false)) return;
    this.#runCompaction(false).catch((error) => {
      if (!this.#closed) this.#log.error({ err: error }, 'background compaction failed');
    });
  }

  #runCompaction(force: boolean): Promise<CompactionResult> {
    const previous = this.#compacting;
    const run = (async () => {
      await previous?.catch(noop);
      const result: CompactionResult = { runs: 0, segmentsIn: 0, bytesIn: 0, bytesOut: 0, tombstonesDropped: 0 };
      const seen = new Set<Segment>();
      for (;;) {
        if (this.#closed) break;
        const picked = this.#pickRun(force, seen);
        if (!picked) break;
        seen.add(await this.#compactRun(picked.run, picked.dropTombstones, result));
      }
      return result;
    })();
    this.#compacting = run;
    void run
      .finally(() => {
        if (this.#compacting === run) this.#compacting = null;
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
    const sealed: Segment[] = [];
    for (const s of this.#segments) {
      if (s === this.#tail || !s.sealed || !s.file || s.corrupt) break; // only the sealed prefix of the log
      sealed.push(s);
    }
    const threshold = force ? 0 : this.#threshold;
    for (let i = 0; i < sealed.length; i++) {
      const s = sealed[i] as Segment;
      if (exclude?.has(s)) continue;
      const recordBytes = Math.max(1, s.size - SEGMENT_HEADER_BYTES);
      const dead = 1 - s.live / recordBytes;
      const next = sealed[i + 1];
      const mergeable =
        next !== undefined &&
        s.live + next.live <= this.#segmentBytes &&
        (force || s.live + next.live <= this.#segmentBytes / 2);
      const oldestWithTombstones = force && this.#index.tombstones > 0;
      if (!(dead > threshold || (force && dead > 0) || mergeable || oldestWithTombstones)) continue;
      const run = [s];
      let live = s.live;
      for (let j = i + 1; j < sealed.length; j++) {
        const t = sealed[j] as Segment;
        if (live + t.live > this.#segmentBytes) break;
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

  /** Rewrites `run` into one new segment and returns it. */
  async #compactRun(run: Segment[], dropTombstones: boolean, result: CompactionResult): Promise<Segment> {
    const fs = this.#fs;
    const signal = this.#compactAbort.signal;
    const first = (run[0] as Segment).first;
    const last = (run[run.length - 1] as Segment).last;
    const gen = Math.max(...run.map((s) => s.gen)) + 1;
    const name = segmentName(first, last, gen);
    const tmpPath = `${this.dir}/${name}.tmp`;
    const cutoff = this.#now() - this.#retentionNs;
    let cleanAsOf = this.#nextSeq;
    for (const s of this.#segments) if (!s.sealed) cleanAsOf = Math.min(cleanAsOf, s.first);
    const index = this.#index;
    const moves: { slot: number; from: number; fromOff: number; toOff: number; size: number }[] = [];
    const dropped: { id: string; seg: number; off: number }[] = [];
    let droppedTs: bigint | null = null;
    let bytesIn = 0;
    let visited = 0;

    await fs.unlink(tmpPath).catch(noop);
    const out = await fs.open(tmpPath, 'create');
    let outPos = 0;
    let buf = Buffer.allocUnsafe(SLAB_BYTES);
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
      const h = this.#meta.horizon;
      this.#meta.horizon = h === null || droppedTs > h ? droppedTs : h;
    }
    for (const s of run) {
      delete this.#meta.validLengths[s.name];
      delete this.#meta.closedLengths[s.name];
    }
    if (droppedTs !== null) await saveMeta(fs, this.dir, this.#meta);
    await fs.rename(tmpPath, `${this.dir}/${name}`);
    await fs.syncDir(this.dir);

    // Swap in the new segment. Old files stay readable until every move is applied.
    const seg = new Segment(this.#nextHandle++, first, last, gen);
    seg.file = await fs.open(`${this.dir}/${name}`, 'read');
    seg.size = outPos;
    seg.syncedSize = outPos;
    seg.sealed = true;
    seg.cleanAsOf = cleanAsOf;
    this.#byHandle.set(seg.handle, seg);
    const runSet = new Set(run);
    this.#segments = this.#segments.filter((s) => !runSet.has(s));
    this.#segments.push(seg);
    this.#segments.sort((a, b) => a.first - b.first);
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
      this.#byHandle.delete(s.handle);
      s.retire();
      await fs
        .unlink(`${this.dir}/${s.name}`)
        .catch((error) => this.#log.warn({ err: error, segment: s.name }, 'could not delete a compacted segment'));
    }
    await fs.syncDir(this.dir);
    this.#bytes += Math.max(0, outPos - SEGMENT_HEADER_BYTES) - removedBytes;
    this.#counters.compactions++;
    this.#counters.compactedBytes += bytesIn;
    result.runs++;
    result.segmentsIn += run.length;
    result.bytesIn += bytesIn;
    result.bytesOut += outPos;
    result.tombstonesDropped += droppedCount;
    this.#log.info(
      { segment: name, inputs: run.length, bytesIn, bytesOut: outPos, tombstonesDropped: droppedCount },
      'compacted',
    );
    return seg;
  }
}

/**
 * An id's UTF-8 length, checked as `checkId` does; ASCII ids, the common case, are
 * measured by a loop that costs less than the native call.
 */
function idByteLength(id: string): number {
  if (typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_BYTES) {
    let i = 0;
    while (i < id.length && id.charCodeAt(i) < 0x80) i++;
    if (i === id.length) return i;
  }
  return checkId(id);
}

/** What the log says of a corrupt stretch that `classifyTail` found at the end of a scan. */
function tailMessage(header: string, closed: number | undefined, c: Corruption): string {
  if (header !== 'ok') return `bad header (${header}): the segment is skipped and kept for inspection`;
  if (closed !== undefined && c.offset < closed) {
    return 'corrupt records in bytes a clean close had fsynced: kept for inspection, the segment is sealed';
  }
  return 'corrupt tail of an older segment skipped';
}

/** The CRC of each window item's record as read: of its bytes after the crc field, all in one call. */
function windowCrcs(w: ReplayWindow): Uint32Array {
  return spanChecksums(w, 4);
}
