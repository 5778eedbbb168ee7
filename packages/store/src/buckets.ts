/**
 * A histogram kept as plain numbers: how many observations fell at or below each bound
 * (and above the last), their sum and count. Observed per batch, per fsync or per replay,
 * never per message; gossipd reads it at a scrape as a Prometheus histogram (cumulative
 * `le` buckets). Shared by the store and the server.
 */
export class Buckets {
  /** Upper bounds, ascending; an observation above the last counts in the +Inf bucket only. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative): `counts[i]` for `bounds[i]`, the last for +Inf. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++)
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new RangeError('bucket bounds must ascend');
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.counts as number[])[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  /** Cumulative counts per bound, then the total (the +Inf bucket), as Prometheus writes them. */
  cumulative(): number[] {
    let running = 0;
    return this.counts.map((c) => (running += c));
  }
}

/** Durations in seconds, from 50 µs to 10 s. */
export const SECONDS_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
] as const;

/** Counts (records in a group commit), from 1 to 65,536. */
export const COUNT_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536] as const;
