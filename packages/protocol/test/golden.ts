/*
 * The golden bytes of every frame kind: one table that drives the encode, decode and
 * round-trip tests (golden.test.ts). The hex is written out by hand on purpose: a change
 * to the wire format must show up here as a diff, never be absorbed silently.
 *
 * Layout (encoder.ts, rule F1): u32 BE length counting the kind byte and the body, then
 * u8 kind, then the body. Integers are big-endian; ts are signed 64-bit. Spaces in `hex`
 * separate the fields for the reader and are not part of the bytes.
 */
import {
  AckStatus,
  Durability,
  type Frame,
  type FrameEncoder,
  FrameKind,
  MAX_TS,
  MessageFlags,
  MIN_TS,
  ResyncReason,
} from '@gossip/protocol';

export interface GoldenFrame {
  name: string;
  encode: (e: FrameEncoder) => void;
  /** The whole frame, length prefix included; spaces are ignored. */
  hex: string;
  frame: Frame;
}

/** The bytes of a golden `hex`. */
export function goldenBytes(hex: string): Buffer {
  const digits = hex.replace(/ /g, '');
  if (!/^(?:[0-9a-f]{2})+$/.test(digits)) throw new Error(`golden hex is not whole bytes of lowercase hex: ${hex}`);
  return Buffer.from(digits, 'hex');
}

const EPOCH_A = '00112233445566778899aabbccddeeff';
const EPOCH_B = 'fedcba98765432100123456789abcdef';
/** The epoch of docs/PROTOCOL.md's examples. */
const EPOCH_DOC = '0123456789abcdef0123456789abcdef';
/** 2023-11-14T22:13:20.123456789Z in nanoseconds. */
const TS = 1_700_000_000_123_456_789n;

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const EMPTY = Buffer.alloc(0);

export const GOLDEN: readonly GoldenFrame[] = [
  {
    name: 'hello with defaults (live only, no epoch, echo on, no extension fields)',
    encode: (e) => e.hello(),
    hex: '00000020 01 89475350 01 00 0000000000000000 00000000000000000000000000000000 80',
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: null,
      epoch: null,
      echo: true,
      name: undefined,
      token: undefined,
      prefixes: undefined,
    },
  },
  {
    name: 'hello with since, epoch, echo off, name and token',
    encode: (e) => e.hello({ since: TS, epoch: EPOCH_A, echo: false, name: 'svc-a', token: 's3cret' }),
    hex: '00000038 01 89475350 01 07 17979cfe3d85cd15 00112233445566778899aabbccddeeff 82a46e616d65a57376632d61a5746f6b656ea6733363726574',
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: TS,
      epoch: EPOCH_A,
      echo: false,
      name: 'svc-a',
      token: 's3cret',
      prefixes: undefined,
    },
  },
  {
    name: 'hello with since at MIN_TS and a name only',
    encode: (e) => e.hello({ since: MIN_TS, name: 'ä' }),
    hex: '00000028 01 89475350 01 01 8000000000000000 00000000000000000000000000000000 81a46e616d65a2c3a4',
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: MIN_TS,
      epoch: null,
      echo: true,
      name: 'ä',
      token: undefined,
      prefixes: undefined,
    },
  },
  {
    name: 'hello with a negative since, an epoch and a token only',
    encode: (e) => e.hello({ version: 2, since: -5_000_000_000n, epoch: EPOCH_B, token: 't' }),
    hex: '00000028 01 89475350 02 03 fffffffed5fa0e00 fedcba98765432100123456789abcdef 81a5746f6b656ea174',
    frame: {
      kind: FrameKind.Hello,
      version: 2,
      since: -5_000_000_000n,
      epoch: EPOCH_B,
      echo: true,
      name: undefined,
      token: 't',
      prefixes: undefined,
    },
  },
  {
    name: 'welcome with a horizon, server and ping interval',
    encode: (e) =>
      e.welcome({
        epoch: EPOCH_A,
        newestTs: TS,
        horizon: 1_600_000_000_000_000_000n,
        maxIdBytes: 256,
        maxDataBytes: 10 * 1024 * 1024,
        maxFrameBytes: 10 * 1024 * 1024 + 64 * 1024,
        server: 'gossipd/0.1.0',
        pingIntervalMs: 30_000,
      }),
    hex: '00000055 02 01 01 00112233445566778899aabbccddeeff 17979cfe3d85cd15 16345785d8a00000 0100 00a00000 00a10000 82a6736572766572ad676f73736970642f302e312e30ae70696e67496e74657276616c4d73cd7530',
    frame: {
      kind: FrameKind.Welcome,
      version: 1,
      epoch: EPOCH_A,
      newestTs: TS,
      horizon: 1_600_000_000_000_000_000n,
      maxIdBytes: 256,
      maxDataBytes: 10 * 1024 * 1024,
      maxFrameBytes: 10 * 1024 * 1024 + 64 * 1024,
      server: 'gossipd/0.1.0',
      pingIntervalMs: 30_000,
      maxFetchIds: undefined,
      maxPrefixes: undefined,
      maxPrefixBytes: undefined,
    },
  },
  {
    name: 'welcome without a horizon on an empty log',
    encode: (e) =>
      e.welcome({
        epoch: EPOCH_B,
        newestTs: MIN_TS,
        horizon: null,
        maxIdBytes: 256,
        maxDataBytes: 1,
        maxFrameBytes: 2,
      }),
    hex: '0000002e 02 01 00 fedcba98765432100123456789abcdef 8000000000000000 0000000000000000 0100 00000001 00000002 80',
    frame: {
      kind: FrameKind.Welcome,
      version: 1,
      epoch: EPOCH_B,
      newestTs: MIN_TS,
      horizon: null,
      maxIdBytes: 256,
      maxDataBytes: 1,
      maxFrameBytes: 2,
      server: undefined,
      pingIntervalMs: undefined,
      maxFetchIds: undefined,
      maxPrefixes: undefined,
      maxPrefixBytes: undefined,
    },
  },
  {
    name: 'welcome as gossipd sends it with its defaults: server, ping interval, fetch cap and prefix limits',
    encode: (e) =>
      e.welcome({
        epoch: EPOCH_DOC,
        newestTs: 1_700_000_000_000_000_000n,
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
    hex: '00000083 02 01 00 0123456789abcdef0123456789abcdef 17979cfe362a0000 0000000000000000 0100 00a00000 00a10000 85a6736572766572ad676f73736970642f302e312e30ae70696e67496e74657276616c4d73cd3a98ab6d61784665746368496473cd2710ab6d6178507265666978657340ae6d61785072656669784279746573cd0100',
    frame: {
      kind: FrameKind.Welcome,
      version: 1,
      epoch: EPOCH_DOC,
      newestTs: 1_700_000_000_000_000_000n,
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
    name: 'publish',
    encode: (e) => e.publish(7, 'user:42', TS, bytes('hello')),
    hex: '0000001b 03 00000007 17979cfe3d85cd15 0007 757365723a3432 68656c6c6f',
    frame: { kind: FrameKind.Publish, reqId: 7, ts: TS, id: 'user:42', data: bytes('hello') },
  },
  {
    name: 'publish of a tombstone at MAX_TS with a multibyte id',
    encode: (e) => e.publish(0xffffffff, 'ключ', MAX_TS, EMPTY),
    hex: '00000017 03 ffffffff 7fffffffffffffff 0008 d0bad0bbd18ed187',
    frame: { kind: FrameKind.Publish, reqId: 0xffffffff, ts: MAX_TS, id: 'ключ', data: EMPTY },
  },
  {
    name: 'emit with reqId 0 (no ack wanted)',
    encode: (e) => e.emit(0, 'presence', -1n, Uint8Array.of(0x00, 0xff)),
    hex: '00000019 04 00000000 ffffffffffffffff 0008 70726573656e6365 00ff',
    frame: { kind: FrameKind.Emit, reqId: 0, ts: -1n, id: 'presence', data: Buffer.of(0x00, 0xff) },
  },
  {
    name: 'ack accepted and synced',
    encode: (e) => e.ack(7, AckStatus.Accepted, Durability.Synced),
    hex: '00000009 05 00000007 00 02 0000',
    frame: {
      kind: FrameKind.Ack,
      reqId: 7,
      status: AckStatus.Accepted,
      durability: Durability.Synced,
      code: null,
      message: '',
    },
  },
  {
    name: 'ack accepted and written',
    encode: (e) => e.ack(8, AckStatus.Accepted, Durability.Written),
    hex: '00000009 05 00000008 00 01 0000',
    frame: {
      kind: FrameKind.Ack,
      reqId: 8,
      status: AckStatus.Accepted,
      durability: Durability.Written,
      code: null,
      message: '',
    },
  },
  {
    name: 'ack stale',
    encode: (e) => e.ack(9, AckStatus.Stale, Durability.None),
    hex: '00000009 05 00000009 01 00 0000',
    frame: {
      kind: FrameKind.Ack,
      reqId: 9,
      status: AckStatus.Stale,
      durability: Durability.None,
      code: null,
      message: '',
    },
  },
  {
    name: 'ack error with a code and a message',
    encode: (e) => e.ack(10, AckStatus.Error, Durability.None, 'GOSSIP_ERR_ID_TOO_LONG', 'id is 300 bytes'),
    hex: '00000018 05 0000000a 02 00 0007 696420697320333030206279746573',
    frame: {
      kind: FrameKind.Ack,
      reqId: 10,
      status: AckStatus.Error,
      durability: Durability.None,
      code: 'GOSSIP_ERR_ID_TOO_LONG',
      message: 'id is 300 bytes',
    },
  },
  {
    name: 'message flagged transient',
    encode: (e) => e.message(MessageFlags.Transient, 'k', TS, bytes('v2')),
    hex: '0000000f 06 01 17979cfe3d85cd15 0001 6b 7632',
    frame: { kind: FrameKind.Message, flags: MessageFlags.Transient, ts: TS, id: 'k', data: bytes('v2') },
  },
  {
    name: 'message flagged replayed with a negative ts',
    encode: (e) => e.message(MessageFlags.Replayed, 'k', -1_000_000_000n, bytes('v1')),
    hex: '0000000f 06 02 ffffffffc4653600 0001 6b 7631',
    frame: { kind: FrameKind.Message, flags: MessageFlags.Replayed, ts: -1_000_000_000n, id: 'k', data: bytes('v1') },
  },
  {
    name: 'message with no flags at MAX_TS',
    encode: (e) => e.message(0, 'cfg/flags', MAX_TS, bytes('{"on":true}')),
    hex: '00000020 06 00 7fffffffffffffff 0009 6366672f666c616773 7b226f6e223a747275657d',
    frame: { kind: FrameKind.Message, flags: 0, ts: MAX_TS, id: 'cfg/flags', data: bytes('{"on":true}') },
  },
  {
    name: 'message with empty data (tombstone) at MIN_TS',
    encode: (e) => e.message(MessageFlags.Replayed, 'gone', MIN_TS, EMPTY),
    hex: '00000010 06 02 8000000000000000 0004 676f6e65',
    frame: { kind: FrameKind.Message, flags: MessageFlags.Replayed, ts: MIN_TS, id: 'gone', data: EMPTY },
  },
  {
    name: 'replay-done after a replay',
    encode: (e) => e.replayDone(3, TS, false),
    hex: '00000012 07 00 0000000000000003 17979cfe3d85cd15',
    frame: { kind: FrameKind.ReplayDone, snapshot: false, count: 3, newestTs: TS },
  },
  {
    name: 'replay-done after a snapshot',
    encode: (e) => e.replayDone(Number.MAX_SAFE_INTEGER, -2n, true),
    hex: '00000012 07 01 001fffffffffffff fffffffffffffffe',
    frame: { kind: FrameKind.ReplayDone, snapshot: true, count: Number.MAX_SAFE_INTEGER, newestTs: -2n },
  },
  {
    name: 'resync for a horizon, with the horizon',
    encode: (e) => e.resync(ResyncReason.Horizon, TS),
    hex: '0000000b 08 01 01 17979cfe3d85cd15',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Horizon, horizon: TS },
  },
  {
    name: 'resync for a horizon, with a negative horizon',
    encode: (e) => e.resync(ResyncReason.Horizon, -3n),
    hex: '0000000b 08 01 01 fffffffffffffffd',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Horizon, horizon: -3n },
  },
  {
    name: 'resync for an epoch, without a horizon',
    encode: (e) => e.resync(ResyncReason.Epoch, null),
    hex: '0000000b 08 02 00 0000000000000000',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Epoch, horizon: null },
  },
  {
    name: 'resync for an epoch, with a horizon',
    encode: (e) => e.resync(ResyncReason.Epoch, 1n),
    hex: '0000000b 08 02 01 0000000000000001',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Epoch, horizon: 1n },
  },
  {
    name: 'resync in full, without a horizon',
    encode: (e) => e.resync(ResyncReason.Full, null),
    hex: '0000000b 08 03 00 0000000000000000',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Full, horizon: null },
  },
  {
    name: 'resync in full, with a horizon at MAX_TS',
    encode: (e) => e.resync(ResyncReason.Full, MAX_TS),
    hex: '0000000b 08 03 01 7fffffffffffffff',
    frame: { kind: FrameKind.Resync, reason: ResyncReason.Full, horizon: MAX_TS },
  },
  {
    name: 'fetch of no ids',
    encode: (e) => e.fetch(1, []),
    hex: '00000007 09 00000001 0000',
    frame: { kind: FrameKind.Fetch, reqId: 1, ids: [] },
  },
  {
    name: 'fetch of one id',
    encode: (e) => e.fetch(2, ['a']),
    hex: '0000000a 09 00000002 0001 0001 61',
    frame: { kind: FrameKind.Fetch, reqId: 2, ids: ['a'] },
  },
  {
    name: 'fetch of several ids, one multibyte',
    encode: (e) => e.fetch(3, ['a', 'é€😀', 'user:42']),
    hex: '0000001e 09 00000003 0003 0001 61 0009 c3a9e282acf09f9880 0007 757365723a3432',
    frame: { kind: FrameKind.Fetch, reqId: 3, ids: ['a', 'é€😀', 'user:42'] },
  },
  {
    name: 'fetch-result with found and not-found entries, more to come',
    encode: (e) =>
      e.fetchResult(3, true, [
        { id: 'a', found: true, ts: TS, data: bytes('x') },
        { id: 'é€😀', found: false },
      ]),
    hex: '00000025 0a 00000003 01 0002 0001 61 01 17979cfe3d85cd15 00000001 78 0009 c3a9e282acf09f9880 00',
    frame: {
      kind: FrameKind.FetchResult,
      reqId: 3,
      more: true,
      entries: [
        { id: 'a', found: true, ts: TS, data: bytes('x') },
        { id: 'é€😀', found: false },
      ],
    },
  },
  {
    name: 'fetch-result, last, with a found tombstone at a negative ts',
    encode: (e) => e.fetchResult(3, false, [{ id: 'user:42', found: true, ts: -7n, data: EMPTY }]),
    hex: '0000001e 0a 00000003 00 0001 0007 757365723a3432 01 fffffffffffffff9 00000000',
    frame: {
      kind: FrameKind.FetchResult,
      reqId: 3,
      more: false,
      entries: [{ id: 'user:42', found: true, ts: -7n, data: EMPTY }],
    },
  },
  {
    name: 'fetch-result with no entries',
    encode: (e) => e.fetchResult(4, false, []),
    hex: '00000008 0a 00000004 00 0000',
    frame: { kind: FrameKind.FetchResult, reqId: 4, more: false, entries: [] },
  },
  {
    name: 'error',
    encode: (e) => e.error('GOSSIP_ERR_MALFORMED_FRAME', 'bad frame'),
    hex: '0000000c 0b 0002 626164206672616d65',
    frame: { kind: FrameKind.Error, code: 'GOSSIP_ERR_MALFORMED_FRAME', message: 'bad frame' },
  },
  {
    name: 'error with an empty message',
    encode: (e) => e.error('GOSSIP_ERR_SLOW_CONSUMER', ''),
    hex: '00000003 0b 000e',
    frame: { kind: FrameKind.Error, code: 'GOSSIP_ERR_SLOW_CONSUMER', message: '' },
  },
  {
    name: 'ping',
    encode: (e) => e.ping(0xdeadbeef),
    hex: '00000005 0c deadbeef',
    frame: { kind: FrameKind.Ping, nonce: 0xdeadbeef },
  },
  {
    name: 'pong',
    encode: (e) => e.pong(1, TS),
    hex: '0000000d 0d 00000001 17979cfe3d85cd15',
    frame: { kind: FrameKind.Pong, nonce: 1, newestTs: TS },
  },
  {
    name: 'hello with two prefixes, one replayed from a ts and one live only, and an epoch',
    encode: (e) =>
      e.hello({
        epoch: EPOCH_A,
        prefixes: [
          { prefix: 'flags/', since: TS },
          { prefix: 'presence/', since: null },
        ],
      }),
    hex: '00000047 01 89475350 01 02 0000000000000000 00112233445566778899aabbccddeeff 81 a870726566697865 73 92 92a6666c6167732fd317979cfe3d85cd15 92a970726573656e63652fc0',
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: null,
      epoch: EPOCH_A,
      echo: true,
      name: undefined,
      token: undefined,
      prefixes: [
        { prefix: 'flags/', since: TS },
        { prefix: 'presence/', since: null },
      ],
    },
  },
  {
    name: 'hello with an empty list of prefixes (receives nothing until it subscribes)',
    encode: (e) => e.hello({ prefixes: [] }),
    hex: '0000002a 01 89475350 01 00 0000000000000000 00000000000000000000000000000000 81 a870726566697865 73 90',
    frame: {
      kind: FrameKind.Hello,
      version: 1,
      since: null,
      epoch: null,
      echo: true,
      name: undefined,
      token: undefined,
      prefixes: [],
    },
  },
  {
    name: 'subscribe with since and epoch',
    encode: (e) => e.subscribe(7, 'flags/', TS, EPOCH_A),
    hex: '00000026 0e 00000007 03 17979cfe3d85cd15 00112233445566778899aabbccddeeff 0006 666c6167732f',
    frame: { kind: FrameKind.Subscribe, reqId: 7, prefix: 'flags/', since: TS, epoch: EPOCH_A },
  },
  {
    name: 'subscribe to the empty prefix, live only',
    encode: (e) => e.subscribe(8, '', null, null),
    hex: '00000020 0e 00000008 00 0000000000000000 00000000000000000000000000000000 0000',
    frame: { kind: FrameKind.Subscribe, reqId: 8, prefix: '', since: null, epoch: null },
  },
  {
    name: 'subscribe to a multibyte prefix from MIN_TS, no epoch',
    encode: (e) => e.subscribe(9, 'ä/', MIN_TS, null),
    hex: '00000023 0e 00000009 01 8000000000000000 00000000000000000000000000000000 0003 c3a42f',
    frame: { kind: FrameKind.Subscribe, reqId: 9, prefix: 'ä/', since: MIN_TS, epoch: null },
  },
  {
    name: 'unsubscribe',
    encode: (e) => e.unsubscribe(10, 'flags/'),
    hex: '0000000d 0f 0000000a 0006 666c6167732f',
    frame: { kind: FrameKind.Unsubscribe, reqId: 10, prefix: 'flags/' },
  },
  {
    name: 'prefix-done after a replay',
    encode: (e) => e.prefixDone('flags/', 2, 1_700_000_000_000_000_000n, false),
    hex: '0000001a 10 00 0000000000000002 17979cfe362a0000 0006 666c6167732f',
    frame: {
      kind: FrameKind.PrefixDone,
      prefix: 'flags/',
      snapshot: false,
      count: 2,
      newestTs: 1_700_000_000_000_000_000n,
    },
  },
  {
    name: 'prefix-done of the empty prefix after a snapshot of an empty log',
    encode: (e) => e.prefixDone('', 3, MIN_TS, true),
    hex: '00000014 10 01 0000000000000003 8000000000000000 0000',
    frame: { kind: FrameKind.PrefixDone, prefix: '', snapshot: true, count: 3, newestTs: MIN_TS },
  },
  {
    name: 'prefix-resync for a horizon, with the horizon',
    encode: (e) => e.prefixResync('flags/', ResyncReason.Horizon, 1_699_913_600_000_000_000n),
    hex: '00000013 11 01 01 17974e69a4db0000 0006 666c6167732f',
    frame: {
      kind: FrameKind.PrefixResync,
      prefix: 'flags/',
      reason: ResyncReason.Horizon,
      horizon: 1_699_913_600_000_000_000n,
    },
  },
  {
    name: 'prefix-resync in full, without a horizon',
    encode: (e) => e.prefixResync('flags/', ResyncReason.Full, null),
    hex: '00000013 11 03 00 0000000000000000 0006 666c6167732f',
    frame: { kind: FrameKind.PrefixResync, prefix: 'flags/', reason: ResyncReason.Full, horizon: null },
  },
];
