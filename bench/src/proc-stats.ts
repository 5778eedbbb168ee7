/**
 * Another process's resident memory and open descriptors, read from /proc (Linux only),
 * and a sampler that reads them every ~20 ms so that a short peak is seen.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** VmRSS of `pid` in bytes; undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Open descriptors of `pid`; undefined once the process is gone. */
export function fdCount(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export interface ProcSample {
  /** `performance.now()` when read. */
  at: number;
  rss: number;
  fds: number;
}

/**
 * Samples a process every `intervalMs`, synchronously (a read of /proc takes well under
 * a millisecond), until `stop()` or the process is gone. Peaks are taken over windows
 * opened with `mark()`, so one sampler serves the phases of a run.
 */
export class ProcSampler {
  readonly pid: number;
  readonly samples: ProcSample[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #onSample: ((s: ProcSample) => void) | undefined;

  constructor(pid: number, intervalMs = 20, onSample?: (s: ProcSample) => void) {
    this.pid = pid;
    this.#onSample = onSample;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Reads once now; undefined (and sampling stops) when the process is gone. */
  sample(): ProcSample | undefined {
    const rss = rssBytes(this.pid);
    const fds = fdCount(this.pid);
    if (rss === undefined || fds === undefined) {
      this.stop();
      return undefined;
    }
    const s = { at: performance.now(), rss, fds };
    this.samples.push(s);
    this.#onSample?.(s);
    return s;
  }

  /** The time a window starts: pass it to `peak`. */
  mark(): number {
    return performance.now();
  }

  /** The largest RSS and descriptor count sampled since `from` (a `mark()`). */
  peak(from = 0): { rss: number; fds: number } {
    let rss = 0;
    let fds = 0;
    for (const s of this.samples) {
      if (s.at < from) continue;
      if (s.rss > rss) rss = s.rss;
      if (s.fds > fds) fds = s.fds;
    }
    return { rss, fds };
  }

  /** The most recent sample. */
  get last(): ProcSample | undefined {
    return this.samples[this.samples.length - 1];
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
