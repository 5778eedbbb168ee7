import { posix } from 'node:path';
import type { OpenMode, StoreFile, StoreFs } from '@gossip/store';

/*
 * A disk in memory that keeps only what was made durable, for crash and fault tests
 * (docs/STORAGE.md, "Testing").
 *
 * - A file has volatile bytes (what reads see) and durable bytes: `StoreFile.sync()`
 *   makes its current bytes durable. A truncate is volatile until the next sync too.
 * - A folder's entries (creations, renames, deletions) are volatile until
 *   `syncDir(folder)` makes all of its current entries durable. A file created and
 *   fsynced whose folder was never synced is gone after a crash; a rename or an unlink
 *   not followed by a `syncDir` is undone.
 * - Folders themselves are durable once made: the store never syncs a data folder's
 *   parent, and a disk that lost the data folder would test nothing of the store.
 * - `crash()` returns a new disk holding only the durable state; with `tearLastWrite`
 *   a random prefix of the last write not yet fsynced to each file may survive too
 *   (a torn write), laid over the durable bytes at its offset (a gap left before it
 *   reads as zeros, as a file extended without its data would).
 * - Mutating calls (open 'create', writev, sync, truncate, rename, unlink, syncDir,
 *   mkdir) are numbered from 1 and logged. `crashAt: n` makes call n throw `SimCrash`,
 *   and every call after it too: the store that used the disk is dead. `faultAt`
 *   makes call n fail with ENOSPC or EIO without any effect, or, for `short`, makes
 *   a writev write only part of its bytes and return that count; later calls work,
 *   as a disk that recovers would.
 * - A file offers blocking writes (`writevNow`), as the real one does, numbered and
 *   failed as `writev` is (logged as 'writev'); a write held by `pauseAt` goes through
 *   the async `writev`, the only one that can wait.
 */

export class SimCrash extends Error {
  constructor(readonly call: number) {
    super(`simulated crash at mutating call ${call}`);
  }

  override get name(): string {
    return 'SimCrash';
  }
}

export type FaultKind = 'ENOSPC' | 'EIO' | 'short';

export interface Fault {
  /** The mutating call (numbered from 1) that fails. */
  call: number;
  kind: FaultKind;
}

export interface SimDiskOptions {
  /** The mutating call that crashes the disk; it and every later call throw `SimCrash`. */
  crashAt?: number;
  /** Mutating calls that fail once. */
  faultAt?: Fault | readonly Fault[];
}

export interface CrashOptions {
  /** Keep a random prefix of each file's last write that was not fsynced. Default false. */
  tearLastWrite?: boolean;
  /** Chooses the prefix lengths. Default Math.random. */
  rng?: () => number;
}

export type MutatingOp = 'create' | 'writev' | 'sync' | 'truncate' | 'rename' | 'unlink' | 'syncDir' | 'mkdir';

export interface MutationRecord {
  call: number;
  op: MutatingOp;
  path: string;
}

type ErrnoCode = 'ENOENT' | 'EEXIST' | 'ENOSPC' | 'EIO' | 'EBADF';

const ERRNO: Record<ErrnoCode, [number, string]> = {
  ENOENT: [-2, 'no such file or directory'],
  EIO: [-5, 'i/o error'],
  EBADF: [-9, 'bad file descriptor'],
  EEXIST: [-17, 'file already exists'],
  ENOSPC: [-28, 'no space left on device'],
};

/** An error shaped like the ones node:fs throws. */
export function errnoError(code: ErrnoCode, syscall: string, path: string, dest?: string): NodeJS.ErrnoException {
  const [errno, text] = ERRNO[code];
  const message = `${code}: ${text}, ${syscall} '${path}'${dest === undefined ? '' : ` -> '${dest}'`}`;
  return Object.assign(new Error(message), { errno, code, syscall, path, ...(dest === undefined ? {} : { dest }) });
}

let nextInode = 1;

class Inode {
  /** Stays with the file across a crash, as an inode number does. */
  readonly ino: number;
  /** Counts changes to the volatile bytes, as a modification time would. */
  version = 0;
  /** `version` as of the last sync: what a crash keeps. */
  syncedVersion = 0;
  /** Volatile bytes are data[0..size); bytes past size are always zero. */
  data = Buffer.alloc(0);
  size = 0;
  durable = Buffer.alloc(0);
  /** The last write since the last sync: what a crash may tear. */
  lastWrite: { position: number; bytes: Buffer } | null = null;

  constructor(ino = nextInode++) {
    this.ino = ino;
  }

  write(position: number, bytes: Buffer): void {
    this.version++;
    const end = position + bytes.length;
    if (end > this.data.length) {
      const grown = Buffer.alloc(Math.max(end, this.data.length * 2, 256));
      this.data.copy(grown, 0, 0, this.size);
      this.data = grown;
    }
    bytes.copy(this.data, position);
    this.size = Math.max(this.size, end);
  }

  truncate(length: number): void {
    this.version++;
    if (length < this.size) this.data.fill(0, length, this.size);
    else if (length > this.data.length) this.write(this.size, Buffer.alloc(length - this.size));
    this.size = length;
  }

  sync(): void {
    this.syncedVersion = this.version;
    this.durable = Buffer.from(this.data.subarray(0, this.size));
    this.lastWrite = null;
  }

  bytes(): Buffer {
    return Buffer.from(this.data.subarray(0, this.size));
  }
}

interface Gate {
  reached: Promise<void>;
  signal: () => void;
  released: Promise<void>;
  release: () => void;
}

export class SimDisk implements StoreFs {
  /** Mutating calls so far. */
  mutations = 0;
  /** Of them, the writes made through `writevNow`. */
  blockingWrites = 0;
  /** See `SimDiskOptions.crashAt`; may be set between calls. */
  crashAt: number | undefined;
  /** See `SimDiskOptions.faultAt`; may be added to between calls. */
  faults: Fault[];
  /** Every mutating call, in order. */
  readonly log: MutationRecord[] = [];
  #dead = false;
  readonly #dirs = new Set<string>(['/']);
  /** Volatile folder entries: full path → file. */
  readonly #entries = new Map<string, Inode>();
  /** Durable folder entries: what a crash keeps. */
  readonly #durable = new Map<string, Inode>();
  readonly #gates = new Map<number, Gate>();

  constructor(options: SimDiskOptions = {}) {
    this.crashAt = options.crashAt;
    const f = options.faultAt;
    this.faults = f === undefined ? [] : 'call' in f ? [f as Fault] : [...(f as readonly Fault[])];
  }

  /** Whether `crashAt` was reached: every call throws from then on. */
  get crashed(): boolean {
    return this.#dead;
  }

  /**
   * Holds mutating call `call` before it takes effect (or fails) until `release()`:
   * `reached` resolves when the store makes the call, so a test can act while it is
   * in flight.
   */
  pauseAt(call: number): { reached: Promise<void>; release: () => void } {
    let signal = () => {};
    let release = () => {};
    const reached = new Promise<void>((r) => {
      signal = r;
    });
    const released = new Promise<void>((r) => {
      release = r;
    });
    this.#gates.set(call, { reached, signal, released, release });
    return { reached, release };
  }

  /** A new disk holding only what was durable; this one is left as it is. */
  crash(options: CrashOptions = {}): SimDisk {
    const rng = options.rng ?? Math.random;
    const next = new SimDisk();
    for (const d of this.#dirs) next.#dirs.add(d);
    const copies = new Map<Inode, Inode>();
    for (const [path, inode] of this.#durable) {
      let copy = copies.get(inode);
      if (!copy) {
        copy = new Inode(inode.ino);
        copy.write(0, inode.durable);
        const torn = inode.lastWrite;
        let version = inode.syncedVersion;
        if (options.tearLastWrite && torn) {
          const keep = Math.floor(rng() * (torn.bytes.length + 1));
          if (keep > 0) copy.write(torn.position, torn.bytes.subarray(0, keep));
          if (keep > 0) version = inode.version + 1; // bytes the last sync did not cover: changed
        }
        copy.sync();
        copy.version = version;
        copy.syncedVersion = version;
        copies.set(inode, copy);
      }
      next.#entries.set(path, copy);
      next.#durable.set(path, copy);
    }
    return next;
  }

  // ---- inspection, outside the counted calls ---------------------------------------

  /** Names in `dir` as reads see them now, sorted. */
  list(dir: string): string[] {
    return [...this.#entries.keys()].filter((p) => posix.dirname(p) === dir).map((p) => posix.basename(p));
  }

  /** A file's current (volatile) bytes, or undefined. */
  contents(path: string): Buffer | undefined {
    return this.#entries.get(path)?.bytes();
  }

  /**
   * Flips every bit of one byte of a file, volatile and durable bytes alike, without
   * changing its stamp: what the medium does to a file nobody writes to.
   */
  rot(path: string, at: number): void {
    const inode = this.#entries.get(path);
    if (!inode || at >= inode.size) throw new Error(`SimDisk.rot: no byte ${at} in ${path}`);
    inode.data[at] = (inode.data[at] as number) ^ 0xff;
    if (at < inode.durable.length) inode.durable[at] = (inode.durable[at] as number) ^ 0xff;
  }

  /** Removes a file at once and durably, as an operator's `rm` and `sync` would. */
  remove(path: string): void {
    this.#entries.delete(path);
    this.#durable.delete(path);
  }

  // ---- StoreFs ------------------------------------------------------------------------

  async open(path: string, mode: OpenMode): Promise<StoreFile> {
    if (mode === 'create') {
      await this.#mutate('create', path);
      if (!this.#dirs.has(posix.dirname(path))) throw errnoError('ENOENT', 'open', path);
      if (this.#entries.has(path)) throw errnoError('EEXIST', 'open', path);
      const inode = new Inode();
      this.#entries.set(path, inode);
      return this.#file(inode, path, true);
    }
    this.#alive();
    const inode = this.#entries.get(path);
    if (!inode) throw errnoError('ENOENT', 'open', path);
    return this.#file(inode, path, mode === 'write');
  }

  async readdir(dir: string): Promise<string[]> {
    this.#alive();
    if (!this.#dirs.has(dir)) throw errnoError('ENOENT', 'scandir', dir);
    const subdirs = [...this.#dirs].filter((d) => d !== dir && posix.dirname(d) === dir).map((d) => posix.basename(d));
    return [...this.list(dir), ...subdirs].sort();
  }

  async mkdir(dir: string): Promise<void> {
    await this.#mutate('mkdir', dir);
    for (let d = posix.normalize(dir); !this.#dirs.has(d); d = posix.dirname(d)) this.#dirs.add(d);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.#mutate('rename', from);
    const inode = this.#entries.get(from);
    if (!inode || !this.#dirs.has(posix.dirname(to))) throw errnoError('ENOENT', 'rename', from, to);
    this.#entries.delete(from);
    this.#entries.set(to, inode);
  }

  async unlink(path: string): Promise<void> {
    await this.#mutate('unlink', path);
    if (!this.#entries.delete(path)) throw errnoError('ENOENT', 'unlink', path);
  }

  async syncDir(dir: string): Promise<void> {
    await this.#mutate('syncDir', dir);
    if (!this.#dirs.has(dir)) throw errnoError('ENOENT', 'open', dir);
    for (const path of [...this.#durable.keys()]) if (posix.dirname(path) === dir) this.#durable.delete(path);
    for (const [path, inode] of this.#entries) if (posix.dirname(path) === dir) this.#durable.set(path, inode);
  }

  // ---- internals ----------------------------------------------------------------------

  #alive(): void {
    if (this.#dead) throw new SimCrash(this.mutations);
  }

  /**
   * Numbers and logs a mutating call, then crashes or fails it as configured. Returns
   * 'short' when this call is to write only part of its bytes.
   */
  async #mutate(op: MutatingOp, path: string): Promise<'short' | undefined> {
    this.#alive();
    const call = ++this.mutations;
    this.log.push({ call, op, path });
    const gate = this.#gates.get(call);
    if (gate) {
      this.#gates.delete(call);
      gate.signal();
      await gate.released;
      this.#alive();
    }
    return this.#outcome(call, op, path);
  }

  /** `#mutate` for a blocking call (`writevNow`), which cannot pause: never made for a call `pauseAt` holds. */
  #mutateNow(op: MutatingOp, path: string): 'short' | undefined {
    this.#alive();
    const call = ++this.mutations;
    this.log.push({ call, op, path });
    return this.#outcome(call, op, path);
  }

  /** A numbered call's crash or fault, as configured. */
  #outcome(call: number, op: MutatingOp, path: string): 'short' | undefined {
    if (this.crashAt !== undefined && call >= this.crashAt) {
      this.#dead = true;
      throw new SimCrash(call);
    }
    const fault = this.faults.find((f) => f.call === call);
    if (!fault) return undefined;
    if (fault.kind === 'short') {
      if (op !== 'writev') throw new Error(`SimDisk: a short fault at call ${call} hit a ${op}, not a writev`);
      return 'short';
    }
    throw errnoError(fault.kind, op === 'create' ? 'open' : op === 'syncDir' ? 'fsync' : op, path);
  }

  #file(inode: Inode, path: string, writable: boolean): StoreFile {
    let closed = false;
    const usable = (syscall: string, write: boolean) => {
      this.#alive();
      if (closed || (write && !writable)) throw errnoError('EBADF', syscall, path);
    };
    const write = (buffers: readonly Buffer[], position: number, short: 'short' | undefined): number => {
      let bytes = Buffer.concat(buffers as Buffer[]);
      if (short) bytes = bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 2)));
      inode.write(position, bytes);
      inode.lastWrite = { position, bytes: Buffer.from(bytes) };
      return bytes.length;
    };
    const writevNow = (buffers: readonly Buffer[], position: number): number => {
      usable('write', true);
      const short = this.#mutateNow('writev', path);
      this.blockingWrites++;
      return write(buffers, position, short);
    };
    const gates = this.#gates;
    const next = () => this.mutations + 1;
    return {
      // Blocking writes as the real disk has them (the writer's small batches), except for
      // a write that `pauseAt` holds: that one must wait, so it goes through `writev`.
      get writevNow() {
        return gates.has(next()) ? undefined : writevNow;
      },
      read: async (buffer, offset, length, position) => {
        usable('read', false);
        const n = Math.max(0, Math.min(length, inode.size - position));
        if (n > 0) inode.data.copy(buffer, offset, position, position + n);
        return n;
      },
      writev: async (buffers, position) => {
        usable('write', true);
        return write(buffers, position, await this.#mutate('writev', path));
      },
      sync: async () => {
        usable('fdatasync', false);
        await this.#mutate('sync', path);
        inode.sync();
      },
      truncate: async (length) => {
        usable('ftruncate', true);
        await this.#mutate('truncate', path);
        inode.truncate(length);
      },
      size: async () => {
        usable('fstat', false);
        return inode.size;
      },
      stamp: async () => {
        usable('fstat', false);
        return `${inode.ino}:${inode.version}:${inode.size}`;
      },
      close: async () => {
        usable('close', false);
        closed = true;
      },
    };
  }
}
