import { type AckFrame, AckStatus, Durability, FrameKind, now } from '@gossip/protocol';
import { uncheckedEncoder } from '@gossip/protocol/testing';
import type { Gossipd, RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { barrier, fatalError, harness, received } from './harness.js';

// Every limit of the server, with its stable code: refusals that keep the connection
// (error acks) and fatal ones (an error frame, then close).

const h = harness();
const raw = uncheckedEncoder();
let reqIds = 1_000_000;

type Op = 'publish' | 'emit';

/** Sends a publish or emit the checked encoder would refuse to write, and waits for its ack. */
async function send(c: RawClient, op: Op, id: string, ts: bigint, data: Uint8Array | string): Promise<AckFrame> {
  const reqId = reqIds++;
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  c.send((op === 'publish' ? raw.publish(reqId, id, ts, bytes) : raw.emit(reqId, id, ts, bytes)).take());
  return c.next<AckFrame>((f) => f.kind === FrameKind.Ack && f.reqId === reqId);
}

/** The connection is still usable: a publish goes through. */
async function stillOpen(c: RawClient): Promise<void> {
  expect((await c.publish(`still-open-${reqIds++}`, now(), 'ok')).status).toBe(AckStatus.Accepted);
  expect(c.isClosed).toBe(false);
}

const refused = (code: string) => ({ status: AckStatus.Error, durability: Durability.None, code });

describe.each(['publish', 'emit'] as const)('limits (%s)', (op) => {
  const accepted = { status: AckStatus.Accepted, code: null };

  it(`limits - ${op}: an id of 256 bytes is accepted and 257 bytes is refused with GOSSIP_ERR_ID_TOO_LONG`, async () => {
    const d = await h.start();
    const c = await h.live(d.port);
    expect(await send(c, op, 'a'.repeat(256), now(), 'v')).toMatchObject(accepted);
    expect(await send(c, op, 'é'.repeat(128), now(), 'v')).toMatchObject(accepted);
    expect(await send(c, op, 'a'.repeat(257), now(), 'v')).toMatchObject(refused('GOSSIP_ERR_ID_TOO_LONG'));
    // Counted in bytes, not characters: 129 characters, 257 bytes.
    expect(await send(c, op, `${'é'.repeat(128)}a`, now(), 'v')).toMatchObject(refused('GOSSIP_ERR_ID_TOO_LONG'));
    await stillOpen(c);
  });

  it(`limits - ${op}: an empty id is refused with GOSSIP_ERR_ID_EMPTY`, async () => {
    const d = await h.start();
    const c = await h.live(d.port);
    expect(await send(c, op, '', now(), 'v')).toMatchObject(refused('GOSSIP_ERR_ID_EMPTY'));
    await stillOpen(c);
  });

  it(`limits - ${op}: data at --max-data is accepted and one byte over is refused with GOSSIP_ERR_DATA_TOO_LARGE`, async () => {
    const d = await h.start({ args: ['--max-data', '1KiB'] });
    const c = await h.live(d.port);
    expect(c.welcome.maxDataBytes).toBe(1024);
    expect(await send(c, op, 'k', now(), Buffer.alloc(1024, 1))).toMatchObject(accepted);
    expect(await send(c, op, 'k', now(), Buffer.alloc(1025, 1))).toMatchObject(refused('GOSSIP_ERR_DATA_TOO_LARGE'));
    await stillOpen(c);
  });

  it(`limits - ${op}: a ts more than --max-skew ahead is refused with GOSSIP_ERR_TS_AHEAD`, async () => {
    const d = await h.start({ args: ['--max-skew', '5s'] });
    const c = await h.live(d.port);
    const ahead = now() + 60_000_000_000n;
    expect(await send(c, op, 'k', ahead, 'v')).toMatchObject(refused('GOSSIP_ERR_TS_AHEAD'));
    expect(await send(c, op, 'k', now(), 'v')).toMatchObject(accepted);
    await stillOpen(c);
  });

  it(`limits - ${op}: with --max-skew 0 a ts far ahead is accepted`, async () => {
    const d = await h.start({ args: ['--max-skew', '0'] });
    const c = await h.live(d.port);
    expect(await send(c, op, 'k', now() + 3600_000_000_000n, 'v')).toMatchObject(accepted);
    await stillOpen(c);
  });
});

describe('limits', () => {
  it('limits - a refused emit with reqId 0 is still reported, as an error ack for reqId 0', async () => {
    const d = await h.start();
    const c = await h.live(d.port);
    c.send(raw.emit(0, '', now(), Buffer.from('v')).take());
    const ack = await c.next<AckFrame>((f) => f.kind === FrameKind.Ack);
    expect(ack).toMatchObject({ reqId: 0, ...refused('GOSSIP_ERR_ID_EMPTY') });
    await stillOpen(c);
  });

  it('limits - a refused publish is neither stored nor broadcast', async () => {
    const d = await h.start({ args: ['--max-data', '1KiB'] });
    const c = await h.live(d.port);
    const other = await h.live(d.port);
    expect(await send(c, 'publish', 'big', now(), Buffer.alloc(2000))).toMatchObject(
      refused('GOSSIP_ERR_DATA_TOO_LARGE'),
    );
    expect(await send(c, 'publish', 'ahead', now() + 60_000_000_000n, 'v')).toMatchObject(
      refused('GOSSIP_ERR_TS_AHEAD'),
    );
    await barrier(other);
    expect(other.messages()).toEqual([]);
    expect(await c.fetch(['big', 'ahead'])).toMatchObject([
      { id: 'big', found: false },
      { id: 'ahead', found: false },
    ]);
  });
});

describe('limits (fatal)', () => {
  /** Sends `bytes` on a fresh connection (after its welcome unless `beforeHello`) and expects `code` then a close. */
  async function fatal(d: Gossipd, bytes: Buffer, code: string, beforeHello = false): Promise<void> {
    const bystander = await h.live(d.port);
    const c = beforeHello ? await h.open(d.port) : await h.live(d.port);
    c.send(bytes);
    const error = await fatalError(c);
    expect(error.code).toBe(code);
    expect(c.frames.at(-1)).toBe(error);
    // The others are unaffected.
    await stillOpen(bystander);
    const later = await h.live(d.port);
    await stillOpen(later);
    await bystander.next((f) => f.kind === FrameKind.Message && f.id.startsWith('still-open-'));
  }

  it('limits - a frame over --max-frame is fatal with GOSSIP_ERR_FRAME_TOO_LARGE (from its length alone)', async () => {
    const d = await h.start({ args: ['--max-frame', '64KiB'] });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 + 1);
    await fatal(d, header, 'GOSSIP_ERR_FRAME_TOO_LARGE');
  });

  it('limits - a frame at --max-frame is not a framing error', async () => {
    const d = await h.start({ args: ['--max-frame', '64KiB', '--max-data', '1MiB'] });
    const c = await h.live(d.port);
    // 64 KiB of frame: kind, reqId, ts, id length, 1-byte id and the rest data.
    const data = Buffer.alloc(64 * 1024 - (1 + 4 + 8 + 2 + 1));
    expect(await send(c, 'publish', 'k', now(), data)).toMatchObject({ status: AckStatus.Accepted });
  });

  it('limits - an unknown frame kind is fatal with GOSSIP_ERR_UNKNOWN_FRAME', async () => {
    const d = await h.start();
    await fatal(d, Buffer.from([0, 0, 0, 1, 0x12]), 'GOSSIP_ERR_UNKNOWN_FRAME');
  });

  it('limits - a malformed frame is fatal with GOSSIP_ERR_MALFORMED_FRAME', async () => {
    const d = await h.start();
    // A ping with a 2-byte body (it must be exactly 4).
    await fatal(d, Buffer.from([0, 0, 0, 3, 0x0c, 0, 1]), 'GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('limits - a zero frame length is fatal with GOSSIP_ERR_MALFORMED_FRAME', async () => {
    const d = await h.start();
    await fatal(d, Buffer.from([0, 0, 0, 0]), 'GOSSIP_ERR_MALFORMED_FRAME');
  });

  it('limits - an id that is not UTF-8 is fatal with GOSSIP_ERR_ID_NOT_UTF8', async () => {
    const d = await h.start();
    const frame = raw.publish(1, 'ab', now(), Buffer.from('v')).take();
    frame[19] = 0xff; // the first byte of the id
    await fatal(d, Buffer.from(frame), 'GOSSIP_ERR_ID_NOT_UTF8');
  });

  it('limits - a publish before the hello is fatal with GOSSIP_ERR_UNEXPECTED_FRAME', async () => {
    const d = await h.start();
    await fatal(d, raw.publish(1, 'k', now(), Buffer.from('v')).take(), 'GOSSIP_ERR_UNEXPECTED_FRAME', true);
  });

  it('limits - a second hello is fatal with GOSSIP_ERR_UNEXPECTED_FRAME', async () => {
    const d = await h.start();
    await fatal(d, raw.hello({ since: null }).take(), 'GOSSIP_ERR_UNEXPECTED_FRAME');
  });

  it('limits - a frame only the server sends is fatal with GOSSIP_ERR_UNEXPECTED_FRAME', async () => {
    const d = await h.start();
    await fatal(d, raw.message(0, 'k', now(), Buffer.from('v')).take(), 'GOSSIP_ERR_UNEXPECTED_FRAME');
  });

  it('limits - a hello with bad magic is fatal with GOSSIP_ERR_BAD_MAGIC', async () => {
    const d = await h.start();
    const hello = Buffer.from(raw.hello({ since: null }).take());
    hello[5] = 0x47; // "GGSP" instead of "\x89GSP"
    await fatal(d, hello, 'GOSSIP_ERR_BAD_MAGIC', true);
  });

  it('limits - a hello of an unsupported version is fatal with GOSSIP_ERR_UNSUPPORTED_VERSION', async () => {
    const d = await h.start();
    await fatal(d, raw.hello({ version: 2 }).take(), 'GOSSIP_ERR_UNSUPPORTED_VERSION', true);
  });

  it('limits - past --max-connections a connection gets GOSSIP_ERR_TOO_MANY_CONNECTIONS', async () => {
    const d = await h.start({ args: ['--max-connections', '2'] });
    const a = await h.live(d.port);
    const b = await h.live(d.port);
    const third = await h.open(d.port);
    third.send(raw.hello({ since: null }).take());
    expect((await fatalError(third)).code).toBe('GOSSIP_ERR_TOO_MANY_CONNECTIONS');
    expect(received(third, FrameKind.Welcome)).toBe(false);
    await stillOpen(a);
    await stillOpen(b);
    expect(await d.metric('gossip_connections_refused_total')).toBe(1);

    // Once one leaves, there is room again.
    a.close();
    while ((await d.metric('gossip_connections')) > 1);
    const c = await h.live(d.port);
    await stillOpen(c);
    // the refused one also ended: counted by its reason, and not logged (a flood of them writes no lines)
    const { text } = await d.admin('/metrics');
    expect(text).toMatch(/^gossip_disconnects_total\{reason="too_many_connections"\} 1$/m);
    expect(d.logs.filter((l) => l.reason === 'too_many_connections')).toEqual([]);
  });

  it('limits - no hello within --hello-timeout is fatal with GOSSIP_ERR_HELLO_TIMEOUT', async () => {
    const d = await h.start({ args: ['--hello-timeout', '200ms'] });
    const silent = await h.open(d.port);
    const partial = await h.open(d.port);
    partial.send(raw.hello({ since: null }).take().subarray(0, 10));
    expect((await fatalError(silent)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
    expect((await fatalError(partial)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
  });

  it('limits - a connection silent past --idle-timeout gets GOSSIP_ERR_IDLE_TIMEOUT, one that pings stays', async () => {
    const d = await h.start({ args: ['--idle-timeout', '300ms'] });
    const pinger = await h.live(d.port);
    let pongs = 0;
    let stop = false;
    // A ping on every pong: never silent, and no timers.
    const loop = (async () => {
      while (!stop) {
        await pinger.ping();
        pongs++;
      }
    })();
    const silent = await h.live(d.port);
    expect((await fatalError(silent)).code).toBe('GOSSIP_ERR_IDLE_TIMEOUT');
    // The pinger connected before the silent one and outlived its timeout.
    stop = true;
    await loop;
    expect(pinger.isClosed).toBe(false);
    expect(pongs).toBeGreaterThan(0);
    await stillOpen(pinger);
  });
});
