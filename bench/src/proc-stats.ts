/**
 * A sampler of another process's resident memory and open descriptors (read from /proc
 * by @gossip/testing, Linux only) every ~20 ms, so that a short peak is seen.
 */
import { procDescriptors, procMemory } from '@gossip/testing';

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
    const rss = procMemory(this.pid)?.rss;
    const fds = procDescriptors(this.pid);
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
