import { GossipError } from '@gossip/protocol';
import { segmentName } from './format.js';
import type { StoreFile } from './fs.js';

/**
 * One segment file. Readers pin it while a read is in flight, so compaction can delete
 * the file and still close its descriptor only once nobody reads from it.
 */
export class Segment {
  /** Small number the index stores instead of the name. */
  readonly handle: number;
  readonly first: number;
  readonly last: number;
  readonly gen: number;
  readonly name: string;
  file: StoreFile | null = null;
  /** Bytes of this file that hold header and written records. */
  size = 0;
  /** Takes no more appends: rolled over, compacted output, or written to after a failure. */
  sealed = false;
  /** Bytes known to be on stable storage (fsynced). */
  syncedSize = 0;
  /** The last background fsync of this file failed (cleared when a retry succeeds). */
  syncFailed: unknown;
  /** A background fsync failed once: the writer seals the file before its next batch. */
  sealPending = false;
  /** Sealed after a failed write or fsync (so it is sealed once). */
  failed = false;
  /** Bytes of records in this file that the index points to. */
  live = 0;
  /** See `cleanAsOf` in format.ts: 0 unless this file is a compaction output. */
  cleanAsOf = 0;
  /** Its header was unreadable: kept for an operator to inspect, never compacted away. */
  corrupt = false;
  #pins = 0;
  #closeWhenIdle = false;
  #closed: Promise<void> | null = null;

  constructor(handle: number, first: number, last: number, gen: number) {
    this.handle = handle;
    this.first = first;
    this.last = last;
    this.gen = gen;
    this.name = segmentName(first, last, gen);
  }

  /** Holds written bytes that are not fsynced yet. */
  get dirty(): boolean {
    return this.file !== null && this.size > this.syncedSize;
  }

  /** Reads `size` bytes at `off` into `buf`, pinning the file meanwhile; a file that ends sooner is corrupt. */
  async read(buf: Buffer, off: number, size: number): Promise<void> {
    const file = this.pin();
    try {
      let got = 0;
      while (got < size) {
        const n = await file.read(buf, got, size - got, off + got);
        if (n === 0) throw new GossipError('GOSSIP_ERR_STORE_CORRUPT', `${this.name} ends before ${off + size}`);
        got += n;
      }
    } finally {
      this.unpin();
    }
  }

  /**
   * `read`, blocking (`StoreFile.readNow`); false, having read nothing, when the file
   * cannot read that way.
   */
  readNow(buf: Buffer, off: number, size: number): boolean {
    const file = this.pin();
    try {
      if (!file.readNow) return false;
      let got = 0;
      while (got < size) {
        const n = file.readNow(buf, got, size - got, off + got);
        if (n === 0) throw new GossipError('GOSSIP_ERR_STORE_CORRUPT', `${this.name} ends before ${off + size}`);
        got += n;
      }
      return true;
    } finally {
      this.unpin();
    }
  }

  /** fsyncs the bytes written so far; what it covered is then durable. */
  async sync(): Promise<void> {
    const target = this.size;
    await (this.file as StoreFile).sync();
    if (target > this.syncedSize) this.syncedSize = target;
  }

  pin(): StoreFile {
    if (!this.file || this.#closeWhenIdle) throw new Error(`segment ${this.name} is closed`);
    this.#pins++;
    return this.file;
  }

  unpin(): void {
    this.#pins--;
    if (this.#pins === 0 && this.#closeWhenIdle) void this.close();
  }

  /** Closes the file now, or as soon as the last reader unpins it. */
  retire(): void {
    this.#closeWhenIdle = true;
    if (this.#pins === 0) void this.close();
  }

  close(): Promise<void> {
    this.#closeWhenIdle = true;
    if (!this.#closed) {
      const file = this.file;
      this.#closed = file ? file.close().catch(() => undefined) : Promise.resolve();
    }
    return this.#closed;
  }
}
