import {
  checkData,
  checkId,
  checkTs,
  now as clockNow,
  type Epoch,
  GossipError,
  isEpoch,
  MAX_ID_BYTES,
} from '@gossip/protocol';
import type { Buckets } from './buckets.js';
import { writeCheckpoint } from './checkpoint.js';
import { type CompactionResult, Compactor } from './compaction.js';
import { parseRecord, SEGMENT_HEADER_BYTES } from './format.js';
import { nodeFs, type StoreFs } from './fs.js';
import { IndexTable } from './index-table.js';
import { acquireLock, freshMeta, loadMeta, type Meta, releaseLock, saveMeta } from './meta.js';
import { DEFAULTS, type FsyncMode, MAX_SEGMENT_BYTES, type StoreLogger, type StoreOptions } from './options.js';
import { emptyRecoveryReport, type RecoveryReport, recover } from './recover.js';
import { type RecordBatch, Replayer, type ReplayOptions, type StoredMessage, warmReplay } from './replay.js';
import { SegmentSet } from './segments.js';
import { type AppendResult, STALE, Writer } from './writer.js';

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
  /** Seconds per fsync since open (the writer's; read, do not change). */
  fsyncSeconds: Buckets;
  /** Records per group commit since open (the writer's; read, do not change). */
  commitRecords: Buckets;
  recovery: RecoveryReport;
}

const STALE_PROMISE = Promise.resolve(STALE);
/** Ids a restored index puts in its `Map` per turn of the event loop (`#fillIndex`): about 2 ms of work. */
const FILL_STRETCH = 4096;
const noop = () => undefined;
const silent: StoreLogger = { info: noop, warn: noop, error: noop };

/**
 * The durable log: segments on disk, an index of the newest record per id in memory,
 * group commit, replay, fetch and compaction. Usable on its own, without a server.
 * Open it with `Store.open()`.
 *
 * A façade over one file per concern: the writer (writer.ts: group commit, fsync,
 * write failures, S4 to S6), the segments (segments.ts, S1), recovery (recover.ts,
 * recovery.ts, checkpoint.ts: S8, S9), replay (replay.ts) and compaction
 * (compaction.ts); the index (index-table.ts) and the record layout (format.ts, S2)
 * beneath them all.
 */
export class Store {
  readonly dir: string;
  readonly #fs: StoreFs;
  readonly #log: StoreLogger;
  readonly #mode: FsyncMode;
  readonly #maxData: number;
  readonly #meta: Meta;
  #lockToken = '';
  readonly #index = new IndexTable();
  readonly #segments = new SegmentSet();
  readonly #writer: Writer;
  readonly #compactor: Compactor;
  readonly #replayer: Replayer;
  #closed = false;
  #closing: Promise<void> | null = null;
  #appends = 0;
  #stale = 0;
  #recovery: RecoveryReport = emptyRecoveryReport();

  private constructor(options: StoreOptions, meta: Meta) {
    this.dir = options.dir;
    this.#fs = options.fs ?? nodeFs;
    this.#log = options.logger ?? silent;
    this.#mode = options.fsync ?? DEFAULTS.fsync;
    this.#maxData = options.maxDataBytes ?? DEFAULTS.maxDataBytes;
    this.#meta = meta;
    const parts = {
      fs: this.#fs,
      dir: this.dir,
      meta,
      log: this.#log,
      index: this.#index,
      segments: this.#segments,
      segmentBytes: Math.min(options.segmentBytes ?? DEFAULTS.segmentBytes, MAX_SEGMENT_BYTES),
    };
    this.#compactor = new Compactor({
      ...parts,
      threshold: options.compactThreshold ?? DEFAULTS.compactThreshold,
      checkMs: options.compactCheckMs ?? DEFAULTS.compactCheckMs,
      retentionMs: options.tombstoneRetentionMs ?? DEFAULTS.tombstoneRetentionMs,
      cutoff: options.tombstoneCutoff,
      now: options.now ?? clockNow,
    });
    this.#writer = new Writer({
      ...parts,
      mode: this.#mode,
      fsyncIntervalMs: options.fsyncIntervalMs ?? DEFAULTS.fsyncIntervalMs,
      onNewSegment: () => this.#compactor.maybeSoon(),
    });
    this.#replayer = new Replayer({ ...parts, closed: () => this.#closed });
  }

  /** Opens (or creates) the data folder: takes its lock, recovers every segment, rebuilds the index. */
  static async open(options: StoreOptions): Promise<Store> {
    if (!['always', 'interval', 'never'].includes(options.fsync ?? DEFAULTS.fsync)) {
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
        if (options.epoch !== undefined && !isEpoch(options.epoch)) {
          throw new GossipError(
            'GOSSIP_ERR_INVALID_ARGUMENT',
            `epoch must be 32 lowercase hex digits, got ${options.epoch}`,
          );
        }
        meta = freshMeta(options.epoch);
        await saveMeta(fs, options.dir, meta);
      }
      store = new Store(options, meta);
      store.#lockToken = token;
      store.#recovery = await recover({
        fs,
        dir: options.dir,
        meta,
        log: store.#log,
        index: store.#index,
        segments: store.#segments,
        segmentBytes: Math.min(options.segmentBytes ?? DEFAULTS.segmentBytes, MAX_SEGMENT_BYTES),
        corruption: options.corruption ?? DEFAULTS.corruption,
        onProgress: options.onRecoveryProgress,
      });
      store.#writer.start();
      store.#compactor.start();
      store.#fillIndex();
      // The first replay of this process then runs compiled code (docs/STORAGE.md, "Replay").
      if (options.warm ?? DEFAULTS.warm) setImmediate(() => warmReplay()).unref();
      return store;
    } catch (error) {
      if (store) await store.#segments.closeAll();
      await releaseLock(fs, options.dir, token);
      throw error;
    }
  }

  /**
   * After a restore from the checkpoint, puts the index's ids in its `Map` a stretch per
   * turn of the event loop, between other work (IndexTable `fillSlots`): the store
   * answers at once, by the id order, meanwhile.
   */
  #fillIndex(): void {
    const step = () => {
      if (!this.#closed && !this.#index.fillSlots(FILL_STRETCH)) setImmediate(step).unref();
    };
    setImmediate(step).unref();
  }

  /**
   * Compiles the replay's per-record code now, if `warm: false` left it out of the open:
   * a few milliseconds, once per process; later calls cost well under one.
   */
  warm(): void {
    warmReplay();
  }

  /** The log's identity: random per data folder, kept across restarts. */
  get epoch(): Epoch {
    return this.#meta.epoch;
  }

  /** Newest ts of a tombstone compaction dropped, or null. A client whose since is older may have missed a delete. */
  get horizon(): bigint | null {
    return this.#meta.horizon;
  }

  /**
   * Raises the horizon to `ts` (no lower), durably, for a store kept as a copy of a log
   * of record whose tombstones below `ts` are gone there (a gossipd cluster edge): its
   * clients whose since is older get the resync they would get from that log.
   */
  async raiseHorizon(ts: bigint): Promise<void> {
    this.#assertOpen();
    const h = this.#meta.horizon;
    if (h !== null && h >= ts) return;
    this.#meta.horizon = ts;
    await saveMeta(this.#fs, this.dir, this.#meta);
  }

  /** Newest ts of any persisted message, or null while the log is empty. */
  get newestTs(): bigint | null {
    return this.#index.newestTs;
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
   * one synchronous call, so concurrent appends of one id are ordered by call order
   * (docs/STORAGE.md, S3). Do not modify `data` before the promise settles.
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
      this.#stale++;
      return STALE_PROMISE;
    }
    this.#appends++;
    return this.#writer.append(slot, id, idBytes, ts, data);
  }

  /** The newest persisted message of `id`, read from disk; undefined if none (a tombstone is returned, with empty data). */
  async get(id: string): Promise<StoredMessage | undefined> {
    this.#assertOpen();
    const index = this.#index;
    const slot = index.slotOf(id);
    if (slot === undefined) return undefined;
    const seg = this.#segments.get(index.segment(slot));
    const off = index.offset(slot);
    const size = index.size(slot);
    const ts = index.ts(slot);
    if (!seg) return undefined;
    const buf = Buffer.allocUnsafe(size);
    await seg.read(buf, off, size);
    const rec = parseRecord(buf, 0, size);
    if (!rec || rec.id !== id || rec.ts !== ts) {
      // Moved by a compaction between the lookup and the read, or corrupt on disk.
      const again = index.slotOf(id);
      if (again !== undefined && (index.segment(again) !== seg.handle || index.offset(again) !== off)) {
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
   *
   * With `prefix`, only the ids that start with it, and the index visits only those
   * (about k entries for k such ids, not every id). A prefix that is not a string fails
   * with `GOSSIP_ERR_INVALID_ARGUMENT`, one with a lone surrogate with
   * `GOSSIP_ERR_ID_NOT_UTF8`; "" is every id.
   */
  async *replayBatches(since: bigint | null, options: ReplayOptions = {}): AsyncGenerator<StoredMessage[]> {
    this.#assertOpen();
    yield* this.#replayer.messages(since, options);
  }

  /**
   * `replayBatches` as the records lie on disk, checked and not decoded: for a server,
   * which forwards their bodies as message-frame bodies (docs/STORAGE.md, S10) with
   * no string or bigint made per message. See `RecordBatch`.
   */
  async *replayRecords(since: bigint | null, options: ReplayOptions = {}): AsyncGenerator<RecordBatch> {
    this.#assertOpen();
    yield* this.#replayer.records(since, options);
  }

  /** `replayBatches` one message at a time. */
  async *replay(
    since: bigint | null,
    options: { signal?: AbortSignal; prefix?: string } = {},
  ): AsyncGenerator<StoredMessage> {
    for await (const batch of this.replayBatches(since, options)) yield* batch;
  }

  /** Resolves once every append made so far is written (and fsynced, whatever the mode). */
  async flush(): Promise<void> {
    this.#assertOpen();
    await this.#writer.flush();
  }

  /**
   * Seals the segment taking appends (after writing and fsyncing it), so a compaction
   * can rewrite it; the next append starts a new segment. For offline compaction.
   */
  async roll(): Promise<void> {
    await this.flush();
    const tail = this.#segments.tail;
    if (tail && tail.size > SEGMENT_HEADER_BYTES) this.#segments.sealTail();
  }

  stats(): StoreStats {
    const live = this.#index.liveBytes;
    const bytes = this.#segments.recordBytes;
    return {
      epoch: this.epoch,
      ids: this.#index.count,
      tombstones: this.#index.tombstones,
      segments: this.#segments.all.length,
      bytes,
      liveBytes: live,
      deadRatio: bytes === 0 ? 0 : Math.max(0, 1 - live / bytes),
      newestTs: this.#index.newestTs,
      horizon: this.#meta.horizon,
      appends: this.#appends,
      staleAppends: this.#stale,
      compactions: this.#compactor.compactions,
      compactedBytes: this.#compactor.compactedBytes,
      ioErrors: this.#writer.ioErrors,
      fsyncSeconds: this.#writer.fsyncSeconds,
      commitRecords: this.#writer.commitRecords,
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
    return this.#compactor.run(true);
  }

  /** Waits for pending writes, fsyncs, closes the files and releases the lock. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#compactor.stop();
    const synced = await this.#writer.close();
    await this.#recordClosedLengths();
    // Only a log that is all on disk, with no file sealed after a failure, is checkpointed (S9).
    const segments = this.#segments.all;
    if (synced && !segments.some((s) => s.failed || s.sealPending || !s.file)) {
      try {
        await writeCheckpoint(this.#fs, this.dir, segments, this.#index, this.#recovery.corruptions);
      } catch (error) {
        this.#log.error({ err: error }, 'could not write the index checkpoint: the next open scans the segments');
      }
    }
    await this.#segments.closeAll();
    await releaseLock(this.#fs, this.dir, this.#lockToken);
  }

  /**
   * Records in the meta file how far each segment is complete and fsynced as this close
   * leaves it (`closedLengths`), so that the next open can tell damage to those bytes
   * from a torn write (docs/STORAGE.md, S8).
   */
  async #recordClosedLengths(): Promise<void> {
    const before = this.#meta.closedLengths;
    const after = this.#segments.closedLengths(before);
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

  #assertOpen(): void {
    if (this.#closed) throw new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store is closed');
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
