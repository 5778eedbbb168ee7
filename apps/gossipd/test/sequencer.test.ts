import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Entry } from '../src/cluster/fanout.js';
import { earlyCost, Sequencer, type SequencerLimits } from '../src/cluster/sequencer.js';

const LIMITS: SequencerLimits = { gapMs: 50, gapReadMax: 32, earlyMaxBytes: 64 * 1024 * 1024 };

function entry(seq: number, body = `v${seq}`): Entry {
  return { seq, subject: `gossip.t.id.${seq}`, body: Buffer.from(body) };
}

/** A sequencer whose applies are recorded, and whose reads of the stream answer from `stream` unless `read` is given. */
function make(
  o: { limits?: Partial<SequencerLimits>; stream?: Entry[]; read?: (seq: number) => Promise<Entry | null> } = {},
) {
  const applied: { seq: number; body: string; pending: number }[] = [];
  const reads: number[] = [];
  const stream = o.stream ?? [];
  const seq = new Sequencer(
    {
      apply: (e, pending) => applied.push({ seq: e.seq, body: Buffer.from(e.body).toString(), pending }),
      readFrom: (s) => {
        reads.push(s);
        if (o.read) return o.read(s);
        return Promise.resolve(stream.filter((e) => e.seq >= s).sort((a, b) => a.seq - b.seq)[0] ?? null);
      },
    },
    { ...LIMITS, ...o.limits },
  );
  return { seq, applied, reads, seqs: () => applied.map((a) => a.seq) };
}

describe('Sequencer: the order a copy applies the stream in', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('applies fan-out entries in the stream order, each once, however they come', () => {
    const { seq, applied, seqs } = make();
    seq.toFanout();
    for (const s of [1, 3, 2, 2, 1, 5, 4, 3]) seq.arrive(entry(s));
    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(applied[0]).toEqual({ seq: 1, body: 'v1', pending: 0 });
    // 2 was applied once 3 was known to be past it
    expect(applied[1]?.pending).toBe(1);
    expect(seq.waiting).toEqual({ entries: 0, bytes: 0 });
    expect(seq.dispatched).toBe(5);
  });

  it('holds the fan-out while the consumer reads, and drops what the consumer brought', () => {
    const { seq, seqs } = make();
    seq.startAt(10);
    seq.arrive(entry(13));
    seq.arrive(entry(9)); // below the position: applied before
    expect(seqs()).toEqual([]);
    expect(seq.waiting.entries).toBe(1);
    for (const s of [11, 12, 13]) expect(seq.take(s, `gossip.t.id.${s}`, Buffer.from('c'), 13 - s)).toBe(true);
    expect(seq.take(12, 'gossip.t.id.12', Buffer.from('c'), 0)).toBe(false);
    expect(seqs()).toEqual([11, 12, 13]);
    expect(seq.waiting).toEqual({ entries: 0, bytes: 0 });
    // at the stream's end: what comes next, the fan-out brings
    seq.arrive(entry(15));
    seq.toFanout();
    seq.arrive(entry(14));
    expect(seqs()).toEqual([11, 12, 13, 14, 15]);
  });

  it('reads a gap no edge handed over from the leader, after waiting gapMs for it', async () => {
    const { seq, seqs, reads } = make({ stream: [entry(2)] });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    expect(seqs()).toEqual([1]);
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs - 1);
    expect(reads).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(reads).toEqual([2]);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(seq.gaps).toBe(1);
    expect(seq.mode).toBe('fanout');
  });

  it('a gap filled by the fan-out within gapMs is not read', async () => {
    const { seq, seqs, reads } = make();
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs / 2);
    seq.arrive(entry(2));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs * 2);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(reads).toEqual([]);
    expect(seq.gaps).toBe(0);
  });

  it('passes the sequences the leader passes over: newer writes replaced them', async () => {
    const { seq, seqs, reads } = make({ stream: [entry(4), entry(5)] });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(5));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(reads).toEqual([2]);
    expect(seqs()).toEqual([1, 4, 5]);
    expect(seq.dispatched).toBe(5);
  });

  it('hands the gap to the consumer when the leader holds nothing past it', async () => {
    const { seq, seqs } = make({ stream: [] });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    let woken = false;
    void seq.untilConsumer().then(() => {
      woken = true;
    });
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(seq.mode).toBe('consumer');
    expect(woken).toBe(true);
    expect(seqs()).toEqual([1]);
    expect(seq.gaps).toBe(1); // counted once, not again by the hand-over
  });

  it('hands the gap to the consumer when the read fails', async () => {
    const { seq, seqs, reads } = make({ read: () => Promise.reject(new Error('timeout')) });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(reads).toEqual([2]);
    expect(seq.mode).toBe('consumer');
    expect(seqs()).toEqual([1]);
    expect(seq.gaps).toBe(1);
    // the consumer takes it from the position on, 3 included
    seq.startAt(1);
    expect(seq.take(2, 'gossip.t.id.2', Buffer.from('v2'), 1)).toBe(true);
    expect(seq.take(3, 'gossip.t.id.3', Buffer.from('v3'), 0)).toBe(true);
    expect(seq.waiting.entries).toBe(0);
  });

  it('leaves a gap longer than gapReadMax to the consumer without reading it', async () => {
    const { seq, reads } = make();
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(1 + LIMITS.gapReadMax + 2));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(reads).toEqual([]);
    expect(seq.mode).toBe('consumer');
    expect(seq.gaps).toBe(1);
  });

  it('reads a gap of gapReadMax messages one by one', async () => {
    const stream = Array.from({ length: LIMITS.gapReadMax }, (_, i) => entry(i + 2));
    const { seq, seqs, reads } = make({ stream });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(LIMITS.gapReadMax + 2));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(reads.length).toBe(LIMITS.gapReadMax);
    expect(seqs()).toEqual(Array.from({ length: LIMITS.gapReadMax + 2 }, (_, i) => i + 1));
    expect(seq.mode).toBe('fanout');
  });

  it('caps the bytes held past a gap: past earlyMaxBytes the consumer reads the stream', () => {
    const body = 'x'.repeat(300);
    const cost = earlyCost(entry(3, body));
    const { seq, seqs } = make({ limits: { earlyMaxBytes: cost * 3 } });
    seq.toFanout();
    seq.arrive(entry(1));
    for (const s of [3, 4, 5]) seq.arrive(entry(s, body));
    expect(seq.waiting).toEqual({ entries: 3, bytes: cost * 3 });
    expect(seq.mode).toBe('fanout');
    seq.arrive(entry(6, body)); // one more would pass the cap
    expect(seq.mode).toBe('consumer');
    expect(seq.waiting.bytes).toBeLessThanOrEqual(cost * 3);
    expect(seq.gaps).toBe(1);
    expect(seqs()).toEqual([1]);
  });

  it('counts an empty body under a long subject against the cap', () => {
    const subject = `gossip.t.id.${'k'.repeat(1000)}`;
    const e = { seq: 3, subject, body: new Uint8Array(0) };
    const { seq } = make({ limits: { earlyMaxBytes: earlyCost(e) * 2 } });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(e);
    seq.arrive({ ...e, seq: 4 });
    expect(seq.mode).toBe('fanout');
    seq.arrive({ ...e, seq: 5 });
    expect(seq.mode).toBe('consumer');
  });

  it('holds a copy of a waiting entry, not a view of its batch', async () => {
    const { seq, applied } = make({ stream: [entry(2)] });
    seq.toFanout();
    seq.arrive(entry(1));
    const batch = Buffer.from('v3');
    seq.arrive({ seq: 3, subject: 'gossip.t.id.3', body: batch });
    batch.fill(0); // the connection reuses its read buffer
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    expect(applied.map((a) => a.body)).toEqual(['v1', 'v2', 'v3']);
  });

  it('drops entries past the stream end that came before the stream was asked', async () => {
    const { seq } = make();
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    seq.arrive(entry(9)); // named by a batch no edge wrote, say: the stream never took it
    await vi.advanceTimersByTimeAsync(1);
    const asked = performance.now();
    await vi.advanceTimersByTimeAsync(1);
    seq.arrive(entry(10)); // came after the stream was asked: it may have taken it since
    seq.dropBeyond(5, asked);
    expect(seq.waiting.entries).toBe(2); // 3 and 10
  });

  it('applies nothing twice when a read ends after the gap was filled', async () => {
    let answer: (e: Entry | null) => void = () => undefined;
    const { seq, seqs } = make({
      read: () =>
        new Promise((resolve) => {
          answer = resolve;
        }),
    });
    seq.toFanout();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs);
    seq.arrive(entry(2)); // the hand-over was only late
    answer(entry(2));
    await vi.advanceTimersByTimeAsync(0);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(seq.mode).toBe('fanout');
  });

  it('close wakes the consumer loop, stops the gap wait and takes no more entries', async () => {
    const { seq, seqs, reads } = make();
    seq.toFanout();
    const woken = seq.untilConsumer();
    seq.arrive(entry(1));
    seq.arrive(entry(3));
    seq.close();
    await woken;
    await vi.advanceTimersByTimeAsync(LIMITS.gapMs * 2);
    seq.arrive(entry(2));
    expect(reads).toEqual([]);
    expect(seqs()).toEqual([1]);
    await expect(seq.untilConsumer()).resolves.toBeUndefined();
  });
});
