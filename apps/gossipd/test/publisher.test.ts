import { type Msg, type MsgHdrs, MsgHdrsImpl, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { casHeaders, type StreamError, StreamPublisher, WRONG_LAST_SEQUENCE } from '../src/cluster/publisher.js';

/** Just the two calls the publisher makes of a NATS connection, recorded; `answer` plays the stream. */
function fakeConnection() {
  const sent: { subject: string; reply: string; headers: MsgHdrs }[] = [];
  let inbox: ((error: unknown, msg: Msg) => void) | undefined;
  const nc = {
    subscribe: (_subject: string, opts: { callback: (error: unknown, msg: Msg) => void }) => {
      inbox = opts.callback;
      return {};
    },
    publish: (subject: string, _body: Uint8Array, opts: { reply: string; headers: MsgHdrs }) => {
      sent.push({ subject, reply: opts.reply, headers: opts.headers });
    },
  } as unknown as NatsConnection;
  const answer = (i: number, body: string | Uint8Array, code?: number) =>
    inbox?.(null, {
      subject: sent[i]?.reply as string,
      data: typeof body === 'string' ? Buffer.from(body) : body,
      headers: code === undefined ? undefined : { code },
    } as unknown as Msg);
  return { nc, sent, answer };
}

/** The header block's bytes: what nats.js writes after HPUB (it asks a publish's headers for this alone). */
function encoded(h: MsgHdrs | undefined): Uint8Array {
  return (h as unknown as { encode(): Uint8Array }).encode();
}

/** For publishers whose callbacks never throw. */
const unexpected = (error: unknown) => {
  throw new Error(`a callback threw: ${String(error)}`);
};

describe('cluster StreamPublisher', () => {
  it("publisher - each publish names its expectation twice (the header and the message id), and the stream's answers settle it", async () => {
    const { nc, sent, answer } = fakeConnection();
    const p = new StreamPublisher(nc, 60_000, unexpected);
    const results = [
      p.publish('gossip.x.id.aWQ', Buffer.from('a'), 7),
      p.publish('gossip.x.id.aWQ', Buffer.from('b'), 7),
      p.publish('gossip.x.id.aWQ', Buffer.from('c'), 8),
      p.publish('gossip.x.meta.horizon', Buffer.from('d'), 0),
      p.publish('gossip.x.id.aWQ', Buffer.from('e'), 9),
      p.publish('gossip.x.id.aWQ', Buffer.from('f'), 9),
    ].map((r) =>
      r.then(
        (seq) => ({ seq }),
        (e: StreamError) => ({ code: e.code, message: e.message }),
      ),
    );
    // the header block as nats.js itself reads one (the bytes HPUB carries)
    const header = (i: number) => MsgHdrsImpl.decode(encoded(sent[i]?.headers));
    expect(header(0).get('Nats-Expected-Last-Subject-Sequence')).toBe('7');
    expect(header(0).get('Nats-Msg-Id')).toBe('7@aWQ');
    expect(header(3).get('Nats-Msg-Id')).toBe('0@horizon');
    expect(header(3).get('Nats-Expected-Last-Subject-Sequence')).toBe('0');
    expect(new Set(sent.map((s) => s.reply)).size).toBe(sent.length);
    answer(0, '{"stream":"GOSSIP_x","seq":12}');
    answer(1, '{"stream":"GOSSIP_x","seq":12,"duplicate":true}');
    answer(2, '{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 12"}}');
    answer(3, new Uint8Array(0), 503); // no responders: no stream leader now
    answer(4, 'not json');
    answer(5, '{"stream":"GOSSIP_x"}');
    answer(0, '{"seq":99}'); // an answer twice: the first settled it
    expect(await Promise.all(results)).toEqual([
      { seq: 12 },
      { code: WRONG_LAST_SEQUENCE, message: expect.stringMatching(/same expected sequence/) },
      { code: WRONG_LAST_SEQUENCE, message: 'wrong last sequence: 12' },
      { code: 0, message: expect.stringMatching(/no responders \(503\)/) },
      { code: 0, message: expect.stringMatching(/other than JSON/) },
      { code: 0, message: expect.stringMatching(/without a sequence/) },
    ]);
    p.close();
  });

  it('publisher - the header block is byte for byte what nats.js writes for the same two headers', () => {
    for (const [expected, name] of [
      [0, 'epoch'],
      [7, 'aWQ'],
      [Number.MAX_SAFE_INTEGER, 'a-b_c'],
    ] as const) {
      const theirs = new MsgHdrsImpl();
      theirs.set('Nats-Expected-Last-Subject-Sequence', String(expected));
      theirs.set('Nats-Msg-Id', `${expected}@${name}`);
      expect(Buffer.from(encoded(casHeaders(expected, name))).toString('latin1')).toBe(
        Buffer.from(theirs.encode()).toString('latin1'),
      );
    }
  });

  it('publisher - a PubAck is read by its sequence, whatever else it says, and only a plain one without parsing it', async () => {
    const { nc, answer } = fakeConnection();
    const p = new StreamPublisher(nc, 60_000, unexpected);
    const cases: [string, { seq: number } | { code: number }][] = [
      ['{"stream":"GOSSIP_x","seq":1}', { seq: 1 }],
      ['{"stream":"GOSSIP_x","seq":9007199254740991}', { seq: 9007199254740991 }],
      ['{"stream":"GOSSIP_x","domain":"hub","seq":5}', { seq: 5 }],
      ['{"stream":"GOSSIP_x","seq":5,"duplicate":true}', { code: WRONG_LAST_SEQUENCE }],
      ['{"stream":"GOSSIP_x","seq":6,"duplicate":false}', { seq: 6 }],
      ['{"stream":"a\\"b","seq":7}', { seq: 7 }],
      ['{"stream":"GOSSIP_x", "seq": 8 }', { seq: 8 }],
      ['{"stream":"GOSSIP_x","seq":}', { code: 0 }],
      ['{"stream":"GOSSIP_x","seq":"9"}', { code: 0 }],
      ['{"stream":"GOSSIP_x","seq":0}', { code: 0 }],
      ['{"error":{"code":503,"err_code":10077,"description":"no seq here"}}', { code: 10077 }],
    ];
    const results = cases.map(() =>
      p.publish('gossip.x.id.aWQ', Buffer.from('a'), 0).then(
        (seq) => ({ seq }),
        (e: StreamError) => ({ code: e.code }),
      ),
    );
    for (const [i, [body]] of cases.entries()) answer(i, body);
    expect(await Promise.all(results)).toEqual(cases.map(([, want]) => want));
    p.close();
  });

  it("publisher - a callback that throws is reported, and the answers after it still settle theirs (the NATS client's reading goes on)", async () => {
    const { nc, answer } = fakeConnection();
    const thrown: unknown[] = [];
    const p = new StreamPublisher(nc, 60_000, (error) => thrown.push(error));
    const seqs: number[] = [];
    p.send('gossip.x.id.aWQ', Buffer.from('a'), 0, () => {
      throw new Error('a bug in a callback');
    });
    p.send('gossip.x.id.aWQ', Buffer.from('b'), 0, (error, seq) => (error ? thrown.push(error) : seqs.push(seq)));
    expect(() => answer(0, '{"stream":"GOSSIP_x","seq":3}')).not.toThrow();
    answer(1, '{"stream":"GOSSIP_x","seq":4}');
    expect(thrown).toEqual([new Error('a bug in a callback')]);
    expect(seqs).toEqual([4]);
    p.close();
  });

  it('publisher - an answer that does not come in time fails the publish, and close() fails those still waiting', async () => {
    const { nc } = fakeConnection();
    const p = new StreamPublisher(nc, 50, unexpected);
    await expect(p.publish('gossip.x.id.aWQ', Buffer.from('a'), 0)).rejects.toMatchObject({
      code: 0,
      message: expect.stringMatching(/timeout/),
    });
    const slow = new StreamPublisher(nc, 60_000, unexpected);
    const waiting = slow.publish('gossip.x.id.aWQ', Buffer.from('a'), 0);
    slow.close();
    await expect(waiting).rejects.toMatchObject({ message: expect.stringMatching(/closing/) });
    p.close();
  });
});
