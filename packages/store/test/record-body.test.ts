import { FrameEncoder, MAX_TS, MessageFlags } from '@gossip/protocol';
import { RECORD, RECORD_PREFIX_BYTES } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { RECORD_FIXED_BODY_BYTES, writeRecord } from '../src/format.js';
import { tempStores } from './temp-stores.js';

/*
 * docs/STORAGE.md, S10: a record's body (from `flags` on) is byte for byte a message
 * frame's body (docs/PROTOCOL.md, M1), apart from the flags byte. The server forwards
 * replayed records on this contract, so it is held here, against the protocol's own
 * encoder, for the record layout the store writes.
 */

/** Frame header: u32 length, u8 kind; then the body. */
const FRAME_BODY = 5;

const messages: [string, bigint, Buffer][] = [
  ['a', 1n, Buffer.from('on')],
  ['flags/checkout', 1_700_000_000_000_000_000n, Buffer.from('on')],
  ['tombstone', 7n, Buffer.alloc(0)],
  ['é/ключ/🙂', -(2n ** 40n), Buffer.alloc(300, 0xab)],
  ['x'.repeat(256), MAX_TS, Buffer.from([0, 1, 2])],
  ['large', 3n, Buffer.alloc(20_000, 0x42)], // past the writer's inline copy: data written from the caller's buffer
];

function frameBody(flags: number, id: string, ts: bigint, data: Buffer): Buffer {
  const frame = Buffer.from(new FrameEncoder().message(flags, id, ts, data).take());
  expect(frame.readUInt32BE(0), 'the frame length is kind + body').toBe(frame.length - 4);
  return frame.subarray(FRAME_BODY);
}

describe('S10 - a record body is a message frame body', () => {
  it.each(messages)('writeRecord - the body of %j is FrameEncoder.message’s, flags aside', (id, ts, data) => {
    const idBytes = Buffer.byteLength(id);
    const record = Buffer.alloc(RECORD.id + idBytes + data.length);
    const end = writeRecord(record, new DataView(record.buffer), 0, ts, id, idBytes, data, true);
    expect(end).toBe(record.length);
    const body = record.subarray(RECORD_PREFIX_BYTES);
    expect(record.readUInt32BE(RECORD.bodyLen)).toBe(body.length);
    expect(body.length).toBe(RECORD_FIXED_BODY_BYTES + idBytes + data.length);
    // Flags 0 in both: identical.
    expect(body.toString('hex')).toBe(frameBody(0, id, ts, data).toString('hex'));
    // Replayed: identical from the byte after the flags on.
    const replayed = frameBody(MessageFlags.Replayed, id, ts, data);
    expect(replayed[0]).toBe(MessageFlags.Replayed);
    expect(body[0]).toBe(0);
    expect(body.subarray(1).equals(replayed.subarray(1))).toBe(true);
  });

  const { openStore } = tempStores('gossip-store-s10-');

  it('replayRecords - records the writer wrote carry message-frame bodies', async () => {
    const store = await openStore();
    for (const [id, ts, data] of messages) await store.append(id, ts, data);
    const byId = new Map(messages.map((m) => [m[0], m]));
    let seen = 0;
    for await (const batch of store.replayRecords(null)) {
      for (let k = 0; k < batch.count; k++) {
        const buf = batch.bufs[batch.buf[k] as number] as Buffer;
        const at = batch.at[k] as number;
        const body = buf.subarray(at + RECORD_PREFIX_BYTES, at + (batch.size[k] as number));
        const id = buf.toString('utf8', at + RECORD.id, at + RECORD.id + buf.readUInt16BE(at + RECORD.idLen));
        const [, ts, data] = byId.get(id) as [string, bigint, Buffer];
        expect(body.equals(frameBody(0, id, ts, data)), id).toBe(true);
        seen++;
      }
    }
    expect(seen).toBe(messages.length);
  });
});
