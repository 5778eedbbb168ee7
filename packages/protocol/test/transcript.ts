/*
 * The session of docs/PROTOCOL.md, "A session, byte by byte": every frame of one
 * connection, in order, as FrameEncoder writes it. doc.test.ts checks that the page's
 * table holds exactly these bytes and that they decode to these frames;
 * packages/tests/test/protocol-contract.test.ts plays the client's lines against a real
 * gossipd and checks it answers with the server's lines.
 */
import {
  AckStatus,
  Durability,
  type Frame,
  type FrameEncoder,
  FrameKind,
  MessageFlags,
  MIN_TS,
  ResyncReason,
} from '@gossip/protocol';

export interface TranscriptLine {
  /** Who sends it: the client (`C→S`) or the server (`S→C`). */
  dir: 'C→S' | 'S→C';
  encode: (e: FrameEncoder) => void;
  frame: Frame;
}

/** The epoch of the page's examples; a real server's is random. */
export const TRANSCRIPT_EPOCH = '0123456789abcdef0123456789abcdef';
/** What the log holds before the session: `flags/checkout` = "on" at T0 and a tombstone of `flags/search` at T1. */
export const T0 = 1_700_000_000_000_000_000n;
export const T1 = 1_700_000_001_000_000_000n;
/** The ts of the session's publish. */
export const T2 = 1_700_000_002_000_000_000n;

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const EMPTY = Buffer.alloc(0);

export const TRANSCRIPT: readonly TranscriptLine[] = [
  {
    dir: 'C→S',
    encode: (e) => e.hello({ since: MIN_TS }),
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: MIN_TS,
      epoch: null,
      echo: true,
      name: undefined,
      token: undefined,
      prefixes: undefined,
    },
  },
  {
    dir: 'S→C',
    encode: (e) =>
      e.welcome({
        epoch: TRANSCRIPT_EPOCH,
        newestTs: T1,
        horizon: null,
        maxIdBytes: 256,
        maxDataBytes: 10 * 1024 * 1024,
        maxFrameBytes: 10 * 1024 * 1024 + 64 * 1024,
        server: 'gossipd/0.1.0',
        pingIntervalMs: 15_000,
        maxFetchIds: 10_000,
        maxPrefixes: 64,
        maxPrefixBytes: 256,
      }),
    frame: {
      kind: FrameKind.Welcome,
      version: 1,
      epoch: TRANSCRIPT_EPOCH,
      newestTs: T1,
      horizon: null,
      maxIdBytes: 256,
      maxDataBytes: 10 * 1024 * 1024,
      maxFrameBytes: 10 * 1024 * 1024 + 64 * 1024,
      server: 'gossipd/0.1.0',
      pingIntervalMs: 15_000,
      maxFetchIds: 10_000,
      maxPrefixes: 64,
      maxPrefixBytes: 256,
    },
  },
  {
    dir: 'S→C',
    encode: (e) => e.resync(ResyncReason.Full, null),
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Full, horizon: null },
  },
  {
    dir: 'S→C',
    encode: (e) => e.message(MessageFlags.Replayed, 'flags/checkout', T0, bytes('on')),
    frame: { kind: FrameKind.Message, flags: MessageFlags.Replayed, ts: T0, id: 'flags/checkout', data: bytes('on') },
  },
  {
    dir: 'S→C',
    encode: (e) => e.message(MessageFlags.Replayed, 'flags/search', T1, EMPTY),
    frame: { kind: FrameKind.Message, flags: MessageFlags.Replayed, ts: T1, id: 'flags/search', data: EMPTY },
  },
  {
    dir: 'S→C',
    encode: (e) => e.replayDone(2, T1, true),
    frame: { kind: FrameKind.ReplayDone, snapshot: true, count: 2, newestTs: T1 },
  },
  {
    dir: 'C→S',
    encode: (e) => e.publish(1, 'flags/checkout', T2, bytes('off')),
    frame: { kind: FrameKind.Publish, reqId: 1, ts: T2, id: 'flags/checkout', data: bytes('off') },
  },
  {
    dir: 'S→C',
    encode: (e) => e.message(0, 'flags/checkout', T2, bytes('off')),
    frame: { kind: FrameKind.Message, flags: 0, ts: T2, id: 'flags/checkout', data: bytes('off') },
  },
  {
    dir: 'S→C',
    encode: (e) => e.ack(1, AckStatus.Accepted, Durability.Written),
    frame: {
      kind: FrameKind.Ack,
      reqId: 1,
      status: AckStatus.Accepted,
      durability: Durability.Written,
      code: null,
      message: '',
    },
  },
  {
    dir: 'C→S',
    encode: (e) => e.ping(1),
    frame: { kind: FrameKind.Ping, nonce: 1 },
  },
  {
    dir: 'S→C',
    encode: (e) => e.pong(1, T2),
    frame: { kind: FrameKind.Pong, nonce: 1, newestTs: T2 },
  },
];
