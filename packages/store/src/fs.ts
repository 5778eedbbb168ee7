import { constants, promises as fsp, read as readCb, readSync, writevSync } from 'node:fs';

/**
 * The one seam all of the store's file I/O goes through (docs/STORAGE.md, "Testing").
 * Production uses `nodeFs`; tests pass a simulated disk that keeps only what was
 * fsynced and can crash or fail at the N-th mutating call.
 */
export interface StoreFile {
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns the bytes read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /**
   * `read`, blocking until it is done: for small reads that the page cache most likely
   * holds, where the round trip through the thread pool costs more than the read
   * (replay.ts, "Reads"). Optional: a file without it is read with `read` only.
   */
  readNow?(buffer: Buffer, offset: number, length: number, position: number): number;
  /** Writes `buffers` at `position`; returns the bytes written, which may be fewer (a short write). */
  writev(buffers: readonly Buffer[], position: number): Promise<number>;
  /**
   * The same, blocking the caller: for a small batch, one system call on the event loop
   * costs less than a trip through the thread pool (docs/STORAGE.md, S4). Optional.
   */
  writevNow?(buffers: readonly Buffer[], position: number): number;
  /** Makes the file's data durable (fdatasync). */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  /**
   * A value that changes whenever the file's bytes may have: device, inode, size,
   * modification and change times. The index checkpoint is trusted only while every
   * segment's stamp is the one it recorded.
   */
  stamp(): Promise<string>;
  close(): Promise<void>;
}

export type OpenMode =
  /** Read only; the file must exist. */
  | 'read'
  /** Read and write; the file must exist. */
  | 'write'
  /** Read and write a new file; fails with EEXIST if it exists. */
  | 'create';

export interface StoreFs {
  open(path: string, mode: OpenMode): Promise<StoreFile>;
  readdir(dir: string): Promise<string[]>;
  /** Creates a folder and its parents; no error if it exists. */
  mkdir(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes a folder's entries (creations, renames, deletions) durable. */
  syncDir(dir: string): Promise<void>;
}

class NodeFile implements StoreFile {
  readonly #handle: fsp.FileHandle;

  constructor(handle: fsp.FileHandle) {
    this.#handle = handle;
  }

  /**
   * By the callback `fs.read` on the handle's descriptor: `FileHandle.read` costs about
   * three times as much per call, which a replay of scattered records (a prefix's) pays
   * once per record. The handle stays open meanwhile (the segment pins it).
   */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      readCb(this.#handle.fd, buffer, offset, length, position, (error, bytesRead) => {
        if (error) reject(error);
        else resolve(bytesRead);
      });
    });
  }

  readNow(buffer: Buffer, offset: number, length: number, position: number): number {
    return readSync(this.#handle.fd, buffer, offset, length, position);
  }

  writevNow(buffers: readonly Buffer[], position: number): number {
    return writevSync(this.#handle.fd, buffers, position);
  }

  async writev(buffers: readonly Buffer[], position: number): Promise<number> {
    const { bytesWritten } = await this.#handle.writev(buffers as Buffer[], position);
    return bytesWritten;
  }

  sync(): Promise<void> {
    return this.#handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.#handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.#handle.stat()).size;
  }

  async stamp(): Promise<string> {
    const s = await this.#handle.stat({ bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}

const OPEN_FLAGS: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  write: constants.O_RDWR,
  create: constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
};

/** The real filesystem. */
export const nodeFs: StoreFs = {
  async open(path, mode) {
    return new NodeFile(await fsp.open(path, OPEN_FLAGS[mode], 0o644));
  },
  readdir(dir) {
    return fsp.readdir(dir);
  },
  async mkdir(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  rename(from, to) {
    return fsp.rename(from, to);
  },
  unlink(path) {
    return fsp.unlink(path);
  },
  async syncDir(dir) {
    const handle = await fsp.open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Reads a whole small file through the seam, or `undefined` if it does not exist. */
export async function readSmallFile(fs: StoreFs, path: string): Promise<Buffer | undefined> {
  let file: StoreFile;
  try {
    file = await fs.open(path, 'read');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const size = await file.size();
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = await file.read(buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    await file.close();
  }
}

/** Writes all of `buffers` at `position`, going on after short writes. */
export async function writeFully(file: StoreFile, buffers: readonly Buffer[], position: number): Promise<void> {
  const total = byteLength(buffers);
  let done = 0;
  let rest = buffers;
  while (done < total) {
    const n = progress(await file.writev(rest, position + done));
    done += n;
    if (done < total) rest = skipBytes(rest, n);
  }
}

/**
 * `writeFully` blocking the caller, by `writevNow`; false (nothing written) when the file
 * has none. Throws what the write throws.
 */
export function writeFullyNow(file: StoreFile, buffers: readonly Buffer[], position: number): boolean {
  if (!file.writevNow) return false;
  const total = byteLength(buffers);
  let done = 0;
  let rest = buffers;
  while (done < total) {
    const n = progress(file.writevNow(rest, position + done));
    done += n;
    if (done < total) rest = skipBytes(rest, n);
  }
  return true;
}

function byteLength(buffers: readonly Buffer[]): number {
  let total = 0;
  for (const b of buffers) total += b.length;
  return total;
}

/** A write's count of bytes, which must be some: a write that makes none fails with EIO. */
function progress(n: number): number {
  if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
  return n;
}

function skipBytes(buffers: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (n >= b.length) {
      n -= b.length;
      continue;
    }
    out.push(n > 0 ? b.subarray(n) : b);
    n = 0;
  }
  return out;
}

/**
 * Replaces a small file atomically: write a temporary file, fsync it, rename it over
 * the old one, fsync the folder. A crash leaves either the old file or the new one.
 */
export async function replaceFile(fs: StoreFs, dir: string, name: string, content: Buffer): Promise<void> {
  const tmp = `${dir}/${name}.tmp`;
  try {
    await fs.unlink(tmp);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const file = await fs.open(tmp, 'create');
  try {
    await writeFully(file, [content], 0);
    await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(tmp, `${dir}/${name}`);
  await fs.syncDir(dir);
}
