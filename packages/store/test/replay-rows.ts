import { type Frame, FrameDecoder, FrameKind, MessageFlags } from '@gossip/protocol';
import type { ReplayFrames, Store } from '@gossip/store';
import { expect } from 'vitest';

/** A replayed message as [id, ts, data in hex]. */
export type Row = [string, bigint, string];

export async function rows(store: Store, since: bigint | null = null): Promise<Row[]> {
  const out: Row[] = [];
  for await (const m of store.replay(since)) out.push([m.id, m.ts, m.data.toString('hex')]);
  return out;
}

/** `replayFrames` decoded as a client would, checking each batch's count. */
export async function framedRows(store: Store, since: bigint | null, batchBytes: number): Promise<Row[]> {
  const out: Row[] = [];
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f));
  const batches: ReplayFrames[] = [];
  for await (const b of store.replayFrames(since, { batchBytes })) {
    batches.push(b);
    const before = frames.length;
    for (const c of b.chunks) decoder.push(c);
    expect(frames.length - before, 'a batch holds `count` whole frames').toBe(b.count);
  }
  decoder.end();
  for (const f of frames) {
    if (f.kind !== FrameKind.Message) throw new Error(`frame kind ${f.kind} in a replay`);
    expect(f.flags).toBe(MessageFlags.Replayed);
    out.push([f.id, f.ts, f.data.toString('hex')]);
  }
  return out;
}
