/* fast-check arbitraries for every frame kind, as the decoder returns them. */
import {
  type AckFrame,
  type EmitFrame,
  ERROR_CODES,
  type ErrorCode,
  type ErrorFrame,
  type FetchEntry,
  type FetchFrame,
  type FetchResultFrame,
  type Frame,
  FrameKind,
  type HelloFrame,
  MAX_ID_BYTES,
  MAX_TS,
  type MessageFrame,
  MIN_TS,
  type PingFrame,
  type PongFrame,
  type PrefixDoneFrame,
  type PrefixResyncFrame,
  type PrefixSpec,
  type PublishFrame,
  type ReplayDoneFrame,
  type ResyncFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
  type WelcomeFrame,
} from '@gossip/protocol';
import fc from 'fast-check';

export const ts = fc.oneof(
  fc.bigInt({ min: MIN_TS, max: MAX_TS }),
  fc.constantFrom(MIN_TS, MAX_TS, 0n, -1n, 1n),
  fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }),
);
export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** Well-formed strings: whole code points only (lone surrogates cannot be UTF-8). */
export const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.string({ maxLength: 40 }),
);

/** Valid ids: 1 to 256 bytes of UTF-8, ASCII, multibyte, and at the 256-byte edge. */
export const id = fc
  .oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }),
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 256 }),
    fc.constantFrom('a'.repeat(256), 'é'.repeat(128), '😀'.repeat(64), '\uFFFD', '\uFEFFbom', '\0'),
  )
  .filter((s) => Buffer.byteLength(s) <= MAX_ID_BYTES);

export const data = fc
  .oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }) },
  )
  .map((a) => Buffer.from(a));

const epoch = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a).toString('hex'));
const nonZeroEpoch = epoch.filter((e) => !/^0+$/.test(e));
const code = fc.constantFrom(...(Object.keys(ERROR_CODES) as ErrorCode[]));

/** Prefixes: the empty one, ASCII, multibyte, and ids (a prefix may be a whole id). */
export const prefix = fc.oneof(fc.constantFrom('', 'flags/', 'ä/', '😀'), text, id);

const prefixSpec: fc.Arbitrary<PrefixSpec> = fc.record({ prefix, since: fc.option(ts, { nil: null }) });

export const hello: fc.Arbitrary<HelloFrame> = fc.record({
  kind: fc.constant(FrameKind.Hello),
  version: u8,
  since: fc.option(ts, { nil: null }),
  epoch: fc.option(epoch, { nil: null }),
  echo: fc.boolean(),
  name: fc.option(text, { nil: undefined }),
  token: fc.option(text, { nil: undefined }),
  prefixes: fc.option(fc.array(prefixSpec, { maxLength: 6 }), { nil: undefined }),
});

export const welcome: fc.Arbitrary<WelcomeFrame> = fc.record({
  kind: fc.constant(FrameKind.Welcome),
  version: u8,
  epoch: nonZeroEpoch,
  newestTs: ts,
  horizon: fc.option(ts, { nil: null }),
  maxIdBytes: u16,
  maxDataBytes: u32,
  maxFrameBytes: u32,
  server: fc.option(text, { nil: undefined }),
  pingIntervalMs: fc.option(fc.nat(), { nil: undefined }),
  maxFetchIds: fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
  maxPrefixes: fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
  maxPrefixBytes: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
});

export const publish: fc.Arbitrary<PublishFrame> = fc.record({
  kind: fc.constant(FrameKind.Publish),
  reqId: u32,
  ts,
  id,
  data,
});

export const emit: fc.Arbitrary<EmitFrame> = fc.record({
  kind: fc.constant(FrameKind.Emit),
  reqId: u32,
  ts,
  id,
  data,
});

export const ack: fc.Arbitrary<AckFrame> = fc.oneof(
  fc.record({
    kind: fc.constant(FrameKind.Ack),
    reqId: u32,
    status: fc.constantFrom(0 as const, 1 as const),
    durability: fc.constantFrom(0 as const, 1 as const, 2 as const),
    code: fc.constant(null),
    message: text,
  }),
  fc.record({
    kind: fc.constant(FrameKind.Ack),
    reqId: u32,
    status: fc.constant(2 as const),
    durability: fc.constantFrom(0 as const, 1 as const, 2 as const),
    code,
    message: text,
  }),
);

export const message: fc.Arbitrary<MessageFrame> = fc.record({
  kind: fc.constant(FrameKind.Message),
  flags: u8,
  ts,
  id,
  data,
});

export const replayDone: fc.Arbitrary<ReplayDoneFrame> = fc.record({
  kind: fc.constant(FrameKind.ReplayDone),
  snapshot: fc.boolean(),
  count: fc.oneof(fc.nat(), fc.maxSafeNat()),
  newestTs: ts,
});

export const resync: fc.Arbitrary<ResyncFrame> = fc.record({
  kind: fc.constant(FrameKind.Resync),
  reason: fc.constantFrom(1 as const, 2 as const, 3 as const),
  horizon: fc.option(ts, { nil: null }),
});

export const fetch: fc.Arbitrary<FetchFrame> = fc.record({
  kind: fc.constant(FrameKind.Fetch),
  reqId: u32,
  ids: fc.array(id, { maxLength: 8 }),
});

const fetchEntry: fc.Arbitrary<FetchEntry> = fc.oneof(
  fc.record({ id, found: fc.constant(true as const), ts, data }),
  fc.record({ id, found: fc.constant(false as const) }),
);

export const fetchResult: fc.Arbitrary<FetchResultFrame> = fc.record({
  kind: fc.constant(FrameKind.FetchResult),
  reqId: u32,
  more: fc.boolean(),
  entries: fc.array(fetchEntry, { maxLength: 8 }),
});

export const error: fc.Arbitrary<ErrorFrame> = fc.record({
  kind: fc.constant(FrameKind.Error),
  code,
  message: text,
});

export const ping: fc.Arbitrary<PingFrame> = fc.record({ kind: fc.constant(FrameKind.Ping), nonce: u32 });

export const pong: fc.Arbitrary<PongFrame> = fc.record({
  kind: fc.constant(FrameKind.Pong),
  nonce: u32,
  newestTs: ts,
});

export const subscribe: fc.Arbitrary<SubscribeFrame> = fc.record({
  kind: fc.constant(FrameKind.Subscribe),
  reqId: u32,
  prefix,
  since: fc.option(ts, { nil: null }),
  epoch: fc.option(epoch, { nil: null }),
});

export const unsubscribe: fc.Arbitrary<UnsubscribeFrame> = fc.record({
  kind: fc.constant(FrameKind.Unsubscribe),
  reqId: u32,
  prefix,
});

export const prefixDone: fc.Arbitrary<PrefixDoneFrame> = fc.record({
  kind: fc.constant(FrameKind.PrefixDone),
  prefix,
  snapshot: fc.boolean(),
  count: fc.oneof(fc.nat(), fc.maxSafeNat()),
  newestTs: ts,
});

export const prefixResync: fc.Arbitrary<PrefixResyncFrame> = fc.record({
  kind: fc.constant(FrameKind.PrefixResync),
  prefix,
  reason: fc.constantFrom(1 as const, 2 as const, 3 as const),
  horizon: fc.option(ts, { nil: null }),
});

/** Each kind's arbitrary, by name, so a property can be run per kind. */
export const BY_KIND = {
  hello,
  welcome,
  publish,
  emit,
  ack,
  message,
  replayDone,
  resync,
  fetch,
  fetchResult,
  error,
  ping,
  pong,
  subscribe,
  unsubscribe,
  prefixDone,
  prefixResync,
} satisfies Record<string, fc.Arbitrary<Frame>>;

export const frame: fc.Arbitrary<Frame> = fc.oneof(...Object.values(BY_KIND));
