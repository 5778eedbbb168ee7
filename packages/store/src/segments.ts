import { SEGMENT_HEADER_BYTES } from './format.js';
import type { Replaced } from './index-table.js';
import { Segment } from './segment.js';

/**
 * The store's segments (docs/STORAGE.md, S1): the files in log order, the small handles
 * the index stores instead of names, the sequence numbers new segments take, and which
 * one takes appends. Only the newest segment takes appends; every other one is sealed.
 */
export class SegmentSet {
  /** In log order (by first sequence number). */
  #list: Segment[] = [];
  readonly #byHandle = new Map<number, Segment>();
  #nextHandle = 1;
  /** The sequence number the next segment made for appends covers. */
  nextSeq = 1;
  /** The segment appends go to; null until the next append makes one. */
  tail: Segment | null = null;
  /** Bytes of records in every segment, headers not counted. */
  recordBytes = 0;

  /** In log order; the last is the newest. */
  get all(): readonly Segment[] {
    return this.#list;
  }

  get(handle: number): Segment | undefined {
    return this.#byHandle.get(handle);
  }

  /** A segment object with a handle of its own, not yet in the set. */
  make(first: number, last: number, gen: number): Segment {
    return new Segment(this.#nextHandle++, first, last, gen);
  }

  /** Lets the index point into `seg` before it joins the set (recovery scans it first). */
  register(seg: Segment): void {
    this.#byHandle.set(seg.handle, seg);
  }

  /** Adds `seg`, in log order. */
  add(seg: Segment): void {
    this.register(seg);
    this.#list.push(seg);
    this.#list.sort((a, b) => a.first - b.first);
    this.nextSeq = Math.max(this.nextSeq, seg.last + 1);
  }

  /** A new segment for appends, one new sequence number at generation 0 (S1); its file is made by the writer. */
  newTail(): Segment {
    const seq = this.nextSeq++;
    const seg = this.make(seq, seq, 0);
    this.add(seg);
    this.tail = seg;
    return seg;
  }

  /** Seals the tail: the next append starts a new segment. */
  sealTail(): void {
    if (this.tail) this.tail.sealed = true;
    this.tail = null;
  }

  /**
   * A compaction output takes the place of its run in the log. The run's handles stay
   * valid (reads in flight, index entries not moved yet) until each one is `remove`d.
   */
  replace(run: readonly Segment[], out: Segment): void {
    const gone = new Set(run);
    this.#list = this.#list.filter((s) => !gone.has(s));
    this.add(out);
  }

  /** Drops `seg` from the set; its file closes once no read uses it. */
  remove(seg: Segment): void {
    this.#list = this.#list.filter((s) => s !== seg);
    this.#byHandle.delete(seg.handle);
    if (this.tail === seg) this.tail = null;
    seg.retire();
  }

  /**
   * The index pointed at a record of `size` bytes in `seg`: that is live now, and the
   * record it replaced (`replaced`, from `IndexTable.commit` or `load`) is dead.
   */
  credit(seg: Segment, size: number, replaced: Replaced): void {
    if (replaced.seg !== 0) {
      const old = this.#byHandle.get(replaced.seg);
      if (old) old.live -= replaced.size;
    }
    seg.live += size;
  }

  /** Whether a segment holds written bytes not yet fsynced: the tail, or one sealed after a failure. */
  get dirty(): boolean {
    return this.#list.some((s) => s.dirty);
  }

  /**
   * What each segment's length in `closedLengths` (docs/STORAGE.md, S8) becomes as a
   * close leaves it, from what the meta file held (`before`). A file whose write or
   * fsync failed keeps what an earlier close recorded: a later fsync cannot vouch for
   * pages a failed one may have dropped. A length is never lowered: a segment sealed
   * after damage stays short of it. Files that are gone are left out.
   */
  closedLengths(before: Readonly<Record<string, number>>): Record<string, number> {
    const after: Record<string, number> = {};
    for (const seg of this.#list) {
      if (!seg.file) continue;
      const known = before[seg.name];
      const durable = !seg.failed && !seg.sealPending && !seg.dirty && seg.size > SEGMENT_HEADER_BYTES;
      const length = Math.max(known ?? 0, durable ? seg.size : 0);
      if (length > 0) after[seg.name] = length;
    }
    return after;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#list.map((s) => s.close()));
  }
}
