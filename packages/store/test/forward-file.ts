import type { StoreFile } from '@gossip/store';

/**
 * A `StoreFile` that forwards every call to `f`, with `changes` in place of some of its
 * methods (a method set to undefined is left out: a file without blocking reads or
 * writes). For tests that count or fail one kind of call of a real file.
 */
export function forwardFile(f: StoreFile, changes: Partial<StoreFile> = {}): StoreFile {
  const forwarded: StoreFile = {
    read: (buffer, offset, length, position) => f.read(buffer, offset, length, position),
    readNow: f.readNow?.bind(f),
    writev: (buffers, position) => f.writev(buffers, position),
    writevNow: f.writevNow?.bind(f),
    sync: () => f.sync(),
    truncate: (length) => f.truncate(length),
    size: () => f.size(),
    stamp: () => f.stamp(),
    close: () => f.close(),
  };
  return { ...forwarded, ...changes };
}
