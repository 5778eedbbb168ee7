import { type AckFrame, AckStatus, type Epoch, type Frame, FrameKind, now, type PrefixSpec } from '@gossip/protocol';
import type { RawClient } from '@gossip/testing';
import { expect } from 'vitest';

/*
 * Wire helpers the prefix tests share (docs/PROTOCOL.md, B1 to B7), over the wire client
 * of @gossip/testing.
 */

let next = 1_000_000;
/** A reqId for a subscribe or an unsubscribe: far from those RawClient gives publishes and pings. */
export function reqId(): number {
  return next++;
}

export const prefixDone = (prefix: string) => (f: Frame) => f.kind === FrameKind.PrefixDone && f.prefix === prefix;
export const ackFor = (id: number) => (f: Frame) => f.kind === FrameKind.Ack && f.reqId === id;
/** Hello entries for `prefixes`, each live only. */
export const live = (...prefixes: string[]): PrefixSpec[] => prefixes.map((prefix) => ({ prefix, since: null }));

/** Sends a subscribe; resolves with its ack. */
export async function subscribe(
  c: RawClient,
  prefix: string,
  since: bigint | null,
  epoch: Epoch | null,
): Promise<AckFrame> {
  const id = reqId();
  c.send(c.enc.subscribe(id, prefix, since, epoch).take());
  return c.next<AckFrame>(ackFor(id));
}

/** Sends an unsubscribe; resolves with its ack. */
export async function unsubscribe(c: RawClient, prefix: string): Promise<AckFrame> {
  const id = reqId();
  c.send(c.enc.unsubscribe(id, prefix).take());
  return c.next<AckFrame>(ackFor(id));
}

/** Publishes `count` values of `bytes` under `prefix` (ids `<prefix><n>`) with `ts`, pipelined; all accepted. */
export async function publishMany(
  c: RawClient,
  prefix: string,
  count: number,
  bytes: number,
  ts = now(),
): Promise<void> {
  const value = Buffer.alloc(bytes, 0x61);
  const acks = await Promise.all(Array.from({ length: count }, (_, n) => c.publish(`${prefix}${n}`, ts, value)));
  expect(acks.filter((a) => a.status !== AckStatus.Accepted)).toEqual([]);
}
