/**
 * The publishing drivers both end-to-end suites share (server.ts against gossipd, peers.ts
 * against every system), over any `Publisher`: a windowed pump for the throughput runs and
 * a paced publisher whose payloads carry their send time for the latency runs. Nothing
 * happens on import (no process handlers): `pnpm bench` loads this as well.
 */
import { percentile } from './measure.js';

/** Every message's data is 100 B. */
export const PAYLOAD_BYTES = 100;

/** A deferred promise. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** `p`, or a rejection with the signal's reason as soon as `signal` aborts. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

/** A Buffer view of `b` (ioredis sends anything that is not a Buffer as a string). */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** One connection that publishes durably; `onAck(n)` is called as the server acknowledges n more. */
export interface Publisher {
  send(id: string, data: Uint8Array): void;
  /** Hands whatever was batched by `send` to the socket. */
  flush(): void;
  onAck: (n: number) => void;
  /** A refused publish or a failed connection: the driver using the publisher rejects with it. */
  onError: (e: Error) => void;
  close(): Promise<void>;
}

/**
 * Publishes `total` messages over `ids` with at most `window` unacknowledged, refilled once
 * half the window is acked; resolves with msgs/s once all are acked, rejects on the first
 * error the publisher reports or when `signal` aborts.
 */
export async function windowedPublish(
  pub: Publisher,
  total: number,
  ids: readonly string[],
  window: number,
  data: Uint8Array,
  signal?: AbortSignal,
): Promise<number> {
  let sent = 0;
  let acked = 0;
  const done = deferred();
  // runs in the publisher's callbacks too: what it throws (an id the encoder refuses) fails the run there
  const pump = () => {
    if (sent - acked > window / 2) return;
    try {
      while (sent < total && sent - acked < window) {
        pub.send(ids[sent % ids.length] as string, data);
        sent++;
      }
      pub.flush();
    } catch (e) {
      done.reject(e);
    }
  };
  pub.onError = (e) => done.reject(e);
  pub.onAck = (n) => {
    acked += n;
    if (acked >= total) done.resolve();
    else pump();
  };
  const t0 = performance.now();
  pump();
  await abortable(done.promise, signal);
  return (total / (performance.now() - t0)) * 1000;
}

/**
 * Publishes `total` messages at `rate` per second, each carrying process.hrtime.bigint()
 * at send in its first 8 bytes; resolves once all are acked.
 */
export async function pacedPublish(
  pub: Publisher,
  rate: number,
  total: number,
  ids: readonly string[],
  signal?: AbortSignal,
): Promise<void> {
  let sent = 0;
  let acked = 0;
  const done = deferred();
  pub.onError = (e) => done.reject(e);
  pub.onAck = (n) => {
    acked += n;
    if (acked >= total) done.resolve();
  };
  let timer: NodeJS.Timeout | undefined;
  const t0 = performance.now();
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    try {
      while (sent < due) {
        // a fresh buffer each time: some clients keep a reference until the write is done
        const data = Buffer.alloc(PAYLOAD_BYTES);
        data.writeBigUInt64BE(process.hrtime.bigint(), 0);
        pub.send(ids[sent % ids.length] as string, data);
        sent++;
      }
      pub.flush();
    } catch (e) {
      done.reject(e);
      return;
    }
    // a 1 ms timer, not a spinning loop: the benchmark process must not take the core the server needs
    if (sent < total) timer = setTimeout(tick, 1);
  };
  tick();
  try {
    await abortable(done.promise, signal);
  } finally {
    clearTimeout(timer);
  }
}

/** Milliseconds since the stamp pacedPublish wrote into the first 8 bytes. */
function ageMs(data: Uint8Array): number {
  return Number(process.hrtime.bigint() - asBuffer(data).readBigUInt64BE(0)) / 1e6;
}

/** The age of every stamped message the subscribers receive: `add` is their data callback. */
export class Ages {
  private samples: number[] = [];
  private want = Number.POSITIVE_INFINITY;
  private reached = deferred();

  readonly add = (data: Uint8Array): void => {
    this.samples.push(ageMs(data));
    if (this.samples.length >= this.want) this.reached.resolve();
  };

  /** Resolves once `n` ages are recorded (since the last `clear`). */
  until(n: number, signal?: AbortSignal): Promise<void> {
    this.want = n;
    this.reached = deferred();
    if (this.samples.length >= n) this.reached.resolve();
    return abortable(this.reached.promise, signal);
  }

  clear(): void {
    this.samples = [];
    this.want = Number.POSITIVE_INFINITY;
  }

  sorted(): number[] {
    return [...this.samples].sort((a, b) => a - b);
  }
}

export interface PacedRun {
  /** Messages per second. */
  rate: number;
  /** At that rate first, not measured: a server just started (and the clients) would otherwise be timed while the JIT warms up. */
  warmupSeconds: number;
  /** Measured. */
  seconds: number;
  /** How many subscribers add to `ages`: each gets every message. */
  subscribers: number;
  ids: readonly string[];
}

/** Publish→receive latency at a fixed rate; each phase ends once every subscriber has every message. */
export async function pacedLatency(
  pub: Publisher,
  ages: Ages,
  run: PacedRun,
  signal?: AbortSignal,
): Promise<{ p50: number; p99: number }> {
  // Awaited together, so that a failure of either is handled at once.
  const phase = (messages: number) =>
    Promise.all([
      ages.until(messages * run.subscribers, signal),
      pacedPublish(pub, run.rate, messages, run.ids, signal),
    ]);
  const warm = Math.round(run.rate * run.warmupSeconds);
  if (warm > 0) {
    await phase(warm);
    ages.clear();
  }
  await phase(Math.round(run.rate * run.seconds));
  const sorted = ages.sorted();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}
