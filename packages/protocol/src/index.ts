export { now, tsFromMillis, tsToMillis } from './clock.js';
export type { FrameDecoderOptions } from './decoder.js';
export { decodeFrame, FrameDecoder, parseFrame } from './decoder.js';
export type { FrameEncoderOptions } from './encoder.js';
export { FrameEncoder } from './encoder.js';
export type { Epoch } from './epoch.js';
export { checkEpoch, isEpoch, newEpoch } from './epoch.js';
export type { ErrorCode, GossipErrorOptions } from './errors.js';
export {
  BadMagicError,
  codeFromWire,
  DataTooLargeError,
  ERROR_CODES,
  errorFromCode,
  FrameTooLargeError,
  GossipError,
  InvalidArgumentError,
  InvalidIdError,
  MalformedFrameError,
  TsAheadError,
  UnknownFrameError,
  UnsupportedVersionError,
  wireCode,
} from './errors.js';
export { MAX_EXTENSION_DEPTH } from './extension.js';
export { AckStatus, Durability, FrameKind, MessageFlags, ResyncReason } from './frame-kind.js';
export type {
  AckFrame,
  EmitFrame,
  ErrorFrame,
  FetchEntry,
  FetchFrame,
  FetchResultFrame,
  Frame,
  HelloFrame,
  HelloOptions,
  MessageFrame,
  PingFrame,
  PongFrame,
  PrefixDoneFrame,
  PrefixResyncFrame,
  PrefixSpec,
  PublishFrame,
  ReplayDoneFrame,
  ResyncFrame,
  SubscribeFrame,
  UnsubscribeFrame,
  WelcomeFrame,
  WelcomeOptions,
} from './frames.js';
export { hostPort } from './host-port.js';
export type {
  LegacyDecoderOptions,
  LegacyEncoderOptions,
  LegacyFrame,
  LegacyHello,
  LegacyMessage,
  LegacyReplayDone,
  LegacyWelcome,
} from './legacy.js';
export {
  inflateLegacyPayload,
  LEGACY_COMPRESS_MIN_BYTES,
  LEGACY_FIRST_BYTE,
  LEGACY_HELLO_BYTES,
  LEGACY_MAGIC,
  LEGACY_WELCOME,
  LegacyDecoder,
  LegacyEncoder,
  LegacyKind,
  LegacyTag,
  unwrapLegacyPayload,
} from './legacy.js';
export {
  DEFAULT_MAX_DATA_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_PREFIXES,
  EPOCH_BYTES,
  FRAME_OVERHEAD_BYTES,
  HELLO_MAGIC,
  MAX_EXTENSION_BYTES,
  MAX_FETCH_IDS,
  MAX_HELLO_FRAME_BYTES,
  MAX_ID_BYTES,
  MAX_PREFIX_BYTES,
  MAX_PREFIX_FIELD_BYTES,
  MAX_TS,
  MAX_WELCOME_FRAME_BYTES,
  MIN_TS,
  PROTOCOL_VERSION,
} from './limits.js';
export { belowNodeFloor, NODE_ENGINES } from './node-floor.js';
export { checkData, checkId, checkMessageTs, checkPrefix, checkTs } from './validate.js';
