/**
 * Protocol codec: message frames per second, encode and decode, 100 B and 64 KiB of
 * data, with msgpackr's pack/unpack of the same `{ id, ts, data }` object as baseline.
 */
import { FrameDecoder, FrameEncoder, MessageFlags } from '@gossip/protocol';
import { Packr, Unpackr } from 'msgpackr';
import { type Row, rate } from './measure.js';

const FRAMES = 10_000;

export function protocolBench(): Row[] {
  const rows: Row[] = [];
  for (const size of [100, 64 * 1024]) {
    const label = size === 100 ? '100 B' : '64 KiB';
    const count = size === 100 ? FRAMES : 200;
    const data = Buffer.alloc(size, 7);
    const ids = Array.from({ length: count }, (_, i) => `user:${i % 20_000}`);
    const ts0 = 1_700_000_000_000_000_000n;

    // Encode: a socket writer's pattern, frames appended and taken once per batch.
    const enc = new FrameEncoder();
    const encodeRate = rate(() => {
      for (let i = 0; i < count; i++) {
        enc.message(0, ids[i] as string, ts0 + BigInt(i), data);
        if (enc.pendingBytes >= 64 * 1024) enc.take();
      }
      enc.take();
    }, count);

    const packr = new Packr({ useRecords: false, int64AsType: 'bigint' });
    const packRate = rate(() => {
      for (let i = 0; i < count; i++) packr.pack({ id: ids[i], ts: ts0 + BigInt(i), data });
    }, count);

    // Decode: small frames from a stream cut into 64 KiB chunks, as a socket delivers
    // them; large frames one per chunk, as msgpackr gets them (a frame split over
    // chunks costs one copy more, measured apart).
    const chunks: Buffer[] = [];
    if (size === 100) {
      for (let i = 0; i < count; i++) enc.message(MessageFlags.Replayed, ids[i] as string, ts0 + BigInt(i), data);
      const stream = Buffer.from(enc.take());
      for (let off = 0; off < stream.length; off += 64 * 1024) chunks.push(stream.subarray(off, off + 64 * 1024));
    } else {
      for (let i = 0; i < count; i++)
        chunks.push(Buffer.from(enc.message(MessageFlags.Replayed, ids[i] as string, ts0 + BigInt(i), data).take()));
    }
    let seen = 0;
    const dec = new FrameDecoder(() => {
      seen++;
    });
    const decodeRate = rate(() => {
      for (const c of chunks) dec.push(c);
    }, count);
    if (seen % count !== 0) throw new Error(`decoder lost frames: ${seen}`);

    const packed = ids.map((id, i) => packr.pack({ id, ts: ts0 + BigInt(i), data }));
    const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint' });
    const unpackRate = rate(() => {
      for (const p of packed) unpackr.unpack(p);
    }, count);

    rows.push(
      {
        bench: 'protocol',
        case: `encode message ${label}`,
        value: encodeRate,
        unit: 'frames/s',
        baseline: 'msgpackr pack',
        ratio: encodeRate / packRate,
      },
      { bench: 'protocol', case: `msgpackr pack ${label}`, value: packRate, unit: 'objects/s' },
      {
        bench: 'protocol',
        case: `decode message ${label}`,
        value: decodeRate,
        unit: 'frames/s',
        baseline: 'msgpackr unpack',
        ratio: decodeRate / unpackRate,
      },
      { bench: 'protocol', case: `msgpackr unpack ${label}`, value: unpackRate, unit: 'objects/s' },
    );
  }
  return rows;
}
