/**
 * Another process's memory and descriptors, read from /proc (Linux only). Synchronous: a
 * read of /proc takes well under a millisecond, so a sampler can take a short peak.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Resident memory in bytes. */
export interface ProcMemory {
  /** VmRSS: now. */
  rss: number;
  /** VmHWM: the peak so far (NaN where the kernel does not report it). */
  peak: number;
}

/** Resident memory of `pid` now and at its peak; undefined once it is gone (or a zombie, which has none). */
export function procMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const kib = (field: string) => new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  const rss = kib('VmRSS');
  if (rss === undefined) return undefined;
  return { rss: Number(rss) * 1024, peak: Number(kib('VmHWM') ?? Number.NaN) * 1024 };
}

/** Descriptors `pid` has open; undefined once it is gone. */
export function procDescriptors(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}
