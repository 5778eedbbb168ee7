import {
  AckStatus,
  Durability,
  decodeFrame,
  FrameEncoder,
  FrameKind,
  MessageFlags,
  ResyncReason,
} from '@gossip/protocol';
import { describe, expect, it } from 'vitest';

// docs/PROTOCOL.md, "Open values": the fields a newer peer may add values to are decoded
// whatever they hold, so that a client shipped today keeps working with such a server.

/** A frame of `kind` with `body`, its length prefix in front. */
function frame(kind: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = kind;
  return Buffer.concat([head, body]);
}

describe('open values', () => {
  it('open values - an ack durability of any byte is handed on as its number', () => {
    for (const durability of [Durability.Replicated + 1, 7, 255]) {
      const bytes = new FrameEncoder().ack(3, AckStatus.Accepted, durability as Durability).take();
      expect(decodeFrame(bytes)).toMatchObject({ kind: FrameKind.Ack, reqId: 3, durability });
    }
  });

  it('open values - a resync reason of any byte is handed on as its number, horizon and all', () => {
    for (const reason of [0, ResyncReason.Full + 1, 255]) {
      const bytes = new FrameEncoder().resync(reason as ResyncReason, 42n).take();
      expect(decodeFrame(bytes)).toEqual({ kind: FrameKind.Resync, reason, horizon: 42n });
    }
  });

  it('open values - message flag bits not defined yet are kept, not refused', () => {
    const bytes = new FrameEncoder().message(0xfc | MessageFlags.Replayed, 'k', 5n, Buffer.from('v')).take();
    expect(decodeFrame(bytes)).toMatchObject({ kind: FrameKind.Message, flags: 0xfe, id: 'k', ts: 5n });
  });

  it('open values - an error code number this version does not know is GOSSIP_ERR_UNKNOWN, in an error frame and an ack', () => {
    const body = Buffer.alloc(2 + 4);
    body.writeUInt16BE(0x7fff, 0);
    body.write('new!', 2);
    expect(decodeFrame(frame(FrameKind.Error, body))).toEqual({
      kind: FrameKind.Error,
      code: 'GOSSIP_ERR_UNKNOWN',
      message: 'new!',
    });
    const ack = Buffer.from([0, 0, 0, 1, AckStatus.Error, Durability.None, 0x7f, 0xff]);
    expect(decodeFrame(frame(FrameKind.Ack, ack))).toMatchObject({
      status: AckStatus.Error,
      code: 'GOSSIP_ERR_UNKNOWN',
    });
  });

  it('open values - the ack status is not open: a fourth status is a malformed frame', () => {
    const ack = Buffer.from([0, 0, 0, 1, AckStatus.Error + 1, Durability.None, 0, 0]);
    expect(() => decodeFrame(frame(FrameKind.Ack, ack))).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_MALFORMED_FRAME' }),
    );
  });

  it('open values - an encoder still writes them in one byte: 256, -1 or 1.5 is refused', () => {
    for (const bad of [256, -1, 1.5]) {
      expect(() => new FrameEncoder().ack(1, AckStatus.Accepted, bad as Durability)).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
      );
      expect(() => new FrameEncoder().resync(bad as ResyncReason, null)).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
      );
      expect(() => new FrameEncoder().prefixResync('p/', bad as ResyncReason, null)).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
      );
    }
  });
});
