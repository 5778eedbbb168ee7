import { Buckets } from '@gossip/store';
import { describe, expect, it } from 'vitest';

describe('buckets', () => {
  it('buckets - a value on a bound counts in that bucket, above the last in +Inf; cumulative counts end at the total', () => {
    const b = new Buckets([1, 10, 100]);
    for (const v of [0.5, 1, 1.5, 10, 99, 100, 101, 5000]) b.observe(v);
    expect(b.counts).toEqual([2, 2, 2, 2]);
    expect(b.cumulative()).toEqual([2, 4, 6, 8]);
    expect(b.count).toBe(8);
    expect(b.sum).toBeCloseTo(5313);
  });

  it('buckets - bounds that do not ascend are refused', () => {
    expect(() => new Buckets([1, 1])).toThrow(RangeError);
    expect(() => new Buckets([2, 1])).toThrow(RangeError);
    expect(new Buckets([]).cumulative()).toEqual([0]);
  });
});
