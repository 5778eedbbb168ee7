import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { AckStatus, Durability, type Frame, FrameDecoder, FrameEncoder, FrameKind, newEpoch } from '@gossip/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameSkimmer, type SkimmedFrame } from '../src/frame-skimmer.js';
import { RawClient } from '../src/raw-client.js';
import { wirePublisher } from '../src/wire-publisher.js';

// The client against a scripted server on port 0: what it answers to each frame it reads.
// The real gossipd is exercised by packages/tests and bench, which use this package.

type Script = (f: Frame, enc: FrameEncoder, socket: Socket) => void;

const servers: Server[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** The server's side of a hello: a welcome, one replayed message and the replay-done, in one write. */
const welcomeAndReplay: Script = (f, enc, socket) => {
  if (f.kind !== FrameKind.Hello) return;
  enc.welcome({
    epoch: newEpoch(),
    newestTs: 5n,
    horizon: null,
    maxIdBytes: 256,
    maxDataBytes: 1024,
    maxFrameBytes: 4096,
  });
  enc.message(0, 'k', 5n, Buffer.from('v')).replayDone(1, 5n, false);
  socket.write(enc.take());
};

async function scripted(script: Script): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    const enc = new FrameEncoder();
    const dec = new FrameDecoder((f) => script(f, enc, socket));
    socket.on('data', (c: Buffer) => dec.push(c));
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const track = (c: RawClient) => {
  clients.push(c);
  return c;
};

describe('raw client', () => {
  it('raw client - connect resolves at the welcome and records every frame; replay() ends at the replay-done', async () => {
    const port = await scripted(welcomeAndReplay);
    const c = track(await RawClient.connect(port, { since: 0n }));
    expect(c.welcome.kind).toBe(FrameKind.Welcome);
    const { messages, done } = await c.replay();
    expect(messages.map((m) => m.id)).toEqual(['k']);
    expect(done.count).toBe(1);
    expect(c.frames.map((f) => f.kind)).toEqual([FrameKind.Welcome, FrameKind.Message, FrameKind.ReplayDone]);
  });

  it('raw client - keep: false records nothing and hands every frame to onFrame; until replay-done', async () => {
    const port = await scripted(welcomeAndReplay);
    const seen: number[] = [];
    const c = track(
      await RawClient.dial(port, {
        hello: { since: 0n },
        until: 'replay-done',
        keep: false,
        onFrame: (f) => seen.push(f.kind),
      }),
    );
    expect(c.replayDone?.count).toBe(1);
    expect(c.frames).toEqual([]);
    expect(seen).toEqual([FrameKind.Welcome, FrameKind.Message, FrameKind.ReplayDone]);
    await expect(c.next(() => true)).rejects.toThrow(/keep: true/);
  });

  it('raw client - a hello answered by an error frame rejects with that frame', async () => {
    const port = await scripted((f, enc, socket) => {
      if (f.kind === FrameKind.Hello) socket.end(enc.error('GOSSIP_ERR_UNAUTHORIZED', 'no token').take());
    });
    const err = await RawClient.connect(port, {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ frame: { kind: FrameKind.Error, code: 'GOSSIP_ERR_UNAUTHORIZED' } });
  });

  it('raw client - waitFor resolves undefined at the close, and describeEnd names the error frame', async () => {
    const port = await scripted((f, enc, socket) => {
      if (f.kind === FrameKind.Ping) socket.end(enc.error('GOSSIP_ERR_IDLE_TIMEOUT', 'idle').take());
    });
    const c = track(await RawClient.dial(port, { keep: false }));
    c.send(c.enc.ping(1).take());
    expect(await c.waitFor((f) => f.kind === FrameKind.Pong, 5000)).toBeUndefined();
    expect(await c.waitEnd(5000)).toBe(true);
    expect(c.describeEnd()).toBe('E2 GOSSIP_ERR_IDLE_TIMEOUT');
    expect(c.errorMessage).toBe('idle');
  });

  it('raw client - a dial that gets no answer within timeoutMs rejects', async () => {
    const port = await scripted(() => undefined);
    await expect(RawClient.dial(port, { hello: {}, timeoutMs: 100 })).rejects.toThrow(
      /no welcome: nothing within 100 ms/,
    );
  });
});

describe('wire publisher', () => {
  it('wire publisher - publishes are batched until flush and each ack is counted', async () => {
    const reqIds: number[] = [];
    const port = await scripted((f, enc, socket) => {
      if (f.kind === FrameKind.Publish) {
        reqIds.push(f.reqId);
        socket.write(enc.ack(f.reqId, AckStatus.Accepted, Durability.Written).take());
      } else welcomeAndReplay(f, enc, socket);
    });
    const pub = await wirePublisher(port);
    let acked = 0;
    const all = new Promise<void>((resolve) => {
      pub.onAck = (n) => {
        acked += n;
        if (acked === 3) resolve();
      };
    });
    for (const id of ['a', 'b', 'c']) pub.send(id, Buffer.from('v'));
    pub.flush();
    await all;
    expect(reqIds).toEqual([1, 2, 3]);
    await pub.close();
  });
});

describe('frame skimmer', () => {
  it('frame skimmer - reads the same frames whatever the chunking', () => {
    const enc = new FrameEncoder();
    enc
      .ping(1)
      .ack(7, AckStatus.Accepted, Durability.None)
      .message(0, 'k', 1n, Buffer.alloc(300, 1))
      .error('GOSSIP_ERR_IO', 'x');
    const bytes = enc.take();
    const whole: SkimmedFrame[] = [];
    new FrameSkimmer((f) => whole.push(f)).push(bytes);
    expect(whole.map((f) => f.kind)).toEqual([FrameKind.Ping, FrameKind.Ack, FrameKind.Message, FrameKind.Error]);
    for (const size of [1, 3, 7, 64]) {
      const cut: SkimmedFrame[] = [];
      const s = new FrameSkimmer((f) => cut.push(f));
      for (let p = 0; p < bytes.length; p += size) s.push(bytes.subarray(p, p + size));
      expect(cut).toEqual(whole);
    }
  });
});
