import { AckStatus, Durability, FrameKind, MessageFlags, now } from '@gossip/protocol';
import { Gossipd, RawClient } from '@gossip/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let d: Gossipd;
const clients: RawClient[] = [];
beforeEach(async () => {
  d = await Gossipd.start();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await d.cleanup();
});

async function client(hello: Parameters<typeof RawClient.connect>[1] = {}): Promise<RawClient> {
  const c = await RawClient.connect(d.port, hello);
  clients.push(c);
  return c;
}

describe('server', () => {
  it('server - publish is acked, broadcast to others and replayed to a later client', async () => {
    const a = await client({ since: null });
    const b = await client({ since: null });
    await a.replay();
    await b.replay();
    const ts = now();
    const ack = await a.publish('k', ts, 'v1');
    expect(ack.status).toBe(AckStatus.Accepted);
    expect(ack.durability).toBe(Durability.Written);
    const m = await b.next((f) => f.kind === FrameKind.Message);
    expect(m).toMatchObject({ id: 'k', ts, flags: 0 });
    expect((await a.publish('k', ts, 'again')).status).toBe(AckStatus.Stale);
    const c = await client({ since: ts });
    const { messages, done } = await c.replay();
    expect(messages.map((x) => [x.id, x.ts, x.flags])).toEqual([['k', ts, MessageFlags.Replayed]]);
    expect(done.count).toBe(1);
    expect(done.newestTs).toBe(ts);
    expect((await a.ping()).newestTs).toBe(ts);
    expect(await a.fetch(['k', 'missing'])).toMatchObject([
      { id: 'k', found: true, ts },
      { id: 'missing', found: false },
    ]);
  });
});
