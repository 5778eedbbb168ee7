import { describe, expect, it } from 'vitest';
import { decodeFanout, entryBytes, FanoutBatcher, FORMAT } from '../src/cluster/fanout.js';

const body = (s: string) => Buffer.from(s);

/** The batches a batcher sends, after the turn that filled it. */
async function batches(fill: (b: FanoutBatcher) => void, maxBytes = 64 * 1024): Promise<Uint8Array[]> {
  const sent: Uint8Array[] = [];
  const b = new FanoutBatcher(
    (x) => sent.push(x),
    () => maxBytes,
  );
  fill(b);
  await new Promise((r) => setImmediate(r));
  return sent;
}

describe('the fan-out batches of an edge', () => {
  it('fanout - entries of one turn go in one batch, and come back as they went', async () => {
    const sent = await batches((b) => {
      b.add(7, 'gossip.c.id.aw', body('one'));
      b.add(9, 'gossip.c.meta.horizon', body(''));
      b.add(2 ** 40, 'gossip.c.id.eA', body('x'.repeat(1000)));
    });
    expect(sent).toHaveLength(1);
    const entries = decodeFanout(sent[0] as Uint8Array);
    expect(entries?.map((e) => [e.seq, e.subject, Buffer.from(e.body).toString()])).toEqual([
      [7, 'gossip.c.id.aw', 'one'],
      [9, 'gossip.c.meta.horizon', ''],
      [2 ** 40, 'gossip.c.id.eA', 'x'.repeat(1000)],
    ]);
  });

  it('fanout - a batch stays under the most NATS takes; an entry past it alone is not sent', async () => {
    const one = entryBytes('s.a', body('x'.repeat(100)));
    const sent = await batches(
      (b) => {
        for (let i = 1; i <= 5; i++) b.add(i, 's.a', body('x'.repeat(100)));
        b.add(6, 's.b', body('y'.repeat(3 * one)));
      },
      1 + 2 * one,
    );
    expect(sent.map((x) => decodeFanout(x)?.map((e) => e.seq))).toEqual([[1, 2], [3, 4], [5]]);
    for (const x of sent) expect(x.byteLength).toBeLessThanOrEqual(1 + 2 * one);
  });

  it('fanout - what is not a batch is refused whole: another format, cut short, lengths past the end, sequence 0 or past 2^53', async () => {
    const [good] = await batches((b) => {
      b.add(1, 'gossip.c.id.aw', body('one'));
      b.add(2, 'gossip.c.id.aQ', body('two'));
    });
    const g = Buffer.from(good as Uint8Array);
    expect(decodeFanout(g)).toHaveLength(2);
    expect(decodeFanout(Uint8Array.of(FORMAT))).toEqual([]);
    expect(decodeFanout(new Uint8Array(0))).toBeUndefined();
    const otherFormat = Buffer.from(g);
    otherFormat[0] = 2;
    expect(decodeFanout(otherFormat)).toBeUndefined();
    for (let cut = 0; cut < g.length; cut++) {
      const entries = decodeFanout(g.subarray(0, cut));
      // a cut after the format byte or the first entry is a batch; anywhere else it is none
      if (entries !== undefined) expect([[], [1]]).toContainEqual(entries.map((e) => e.seq));
    }
    const longSubject = Buffer.from(g);
    longSubject.writeUInt16BE(0xffff, 1 + 8);
    expect(decodeFanout(longSubject)).toBeUndefined();
    const longBody = Buffer.from(g);
    longBody.writeUInt32BE(0xffffffff, 1 + 10 + 'gossip.c.id.aw'.length);
    expect(decodeFanout(longBody)).toBeUndefined();
    const zero = Buffer.from(g);
    zero.writeBigUInt64BE(0n, 1);
    expect(decodeFanout(zero)).toBeUndefined();
    const huge = Buffer.from(g);
    huge.writeBigUInt64BE(2n ** 60n, 1);
    expect(decodeFanout(huge)).toBeUndefined();
  });
});
