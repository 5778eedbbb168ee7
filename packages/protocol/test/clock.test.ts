import { now, tsFromMillis, tsToMillis } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';

const NS_PER_MS = 1_000_000n;

describe('clock', () => {
  it('clock - now() returns a bigint', () => {
    expect(typeof now()).toBe('bigint');
  });

  it('clock - now() is strictly increasing across 100k calls', () => {
    let prev = now();
    let violations = 0;
    for (let i = 0; i < 100_000; i++) {
      const t = now();
      if (t <= prev) violations++;
      prev = t;
    }
    expect(violations).toBe(0);
  });

  it('clock - now() is within a few ms of Date.now() in nanoseconds', () => {
    for (let i = 0; i < 1000; i++) {
      const before = BigInt(Date.now()) * NS_PER_MS;
      const t = now();
      const after = BigInt(Date.now()) * NS_PER_MS;
      // Date.now() truncates to the millisecond and now() re-anchors past 1 ms of drift.
      expect(t).toBeGreaterThanOrEqual(before - 5n * NS_PER_MS);
      expect(t).toBeLessThanOrEqual(after + 5n * NS_PER_MS);
    }
  });

  it('clock - now() fits a signed 64-bit ts', () => {
    const t = now();
    expect(BigInt.asIntN(64, t)).toBe(t);
  });
});

describe('ts conversion', () => {
  it('ts conversion - tsFromMillis multiplies by 1e6', () => {
    expect(tsFromMillis(0)).toBe(0n);
    expect(tsFromMillis(1)).toBe(1_000_000n);
    expect(tsFromMillis(1_700_000_000_123)).toBe(1_700_000_000_123_000_000n);
    expect(tsFromMillis(-1)).toBe(-1_000_000n);
  });

  it('ts conversion - tsFromMillis drops fractions of a millisecond toward zero', () => {
    expect(tsFromMillis(1.9)).toBe(1_000_000n);
    expect(tsFromMillis(-1.9)).toBe(-1_000_000n);
  });

  it('ts conversion - tsFromMillis of a Date value matches the Date', () => {
    const d = new Date('2024-02-29T12:34:56.789Z');
    expect(tsFromMillis(d.getTime())).toBe(BigInt(d.getTime()) * NS_PER_MS);
  });

  it('ts conversion - tsToMillis keeps the fraction of a millisecond', () => {
    expect(tsToMillis(0n)).toBe(0);
    expect(tsToMillis(1_000_000n)).toBe(1);
    expect(tsToMillis(1_500_000n)).toBe(1.5);
    expect(tsToMillis(1n)).toBe(0.000001);
    expect(tsToMillis(-1_500_000n)).toBe(-1.5);
    expect(tsToMillis(1_700_000_000_123_456_789n)).toBeCloseTo(1_700_000_000_123.4568, 3);
  });

  it('ts conversion - tsToMillis inverts tsFromMillis on whole milliseconds', () => {
    for (const ms of [0, 1, -1, 1_700_000_000_123, -86_400_000, Number.MAX_SAFE_INTEGER]) {
      expect(tsToMillis(tsFromMillis(ms))).toBe(ms);
    }
  });

  it('ts conversion - tsToMillis of now() is close to Date.now()', () => {
    const before = Date.now();
    const ms = tsToMillis(now());
    const after = Date.now();
    expect(ms).toBeGreaterThanOrEqual(before - 5);
    expect(ms).toBeLessThanOrEqual(after + 5);
  });
});
