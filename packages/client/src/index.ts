// The error classes and codes, so users can switch on `code` without depending on @gossip/protocol.
export type { ErrorCode, GossipErrorOptions } from '@gossip/protocol';
export {
  BadMagicError,
  DataTooLargeError,
  ERROR_CODES,
  FrameTooLargeError,
  GossipError,
  InvalidArgumentError,
  InvalidIdError,
  MalformedFrameError,
  TsAheadError,
  UnknownFrameError,
  UnsupportedVersionError,
} from '@gossip/protocol';
export type { Address } from './address.js';
export { DEFAULT_PORT, parseAddress } from './address.js';
export type { BackoffOptions, ReconnectStrategy } from './backoff.js';
export { exponentialBackoff } from './backoff.js';
export type { ClientEvents } from './client.js';
export { GossipClient } from './client.js';
export type { Codec } from './codecs.js';
export { bytesCodec, jsonCodec, msgpackCodec, utf8Codec } from './codecs.js';
export type { FetchResult } from './decode.js';
export type {
  ClientMessage,
  ClientState,
  MessageSource,
  MessageSourceEvents,
  ReplayOptions,
  ReplaySink,
  ResyncInfo,
  SyncedInfo,
} from './message-source.js';
export type { MessageStreamOptions } from './message-stream.js';
export { MessageStream } from './message-stream.js';
export type { ClientOptions } from './options.js';
export { CLIENT_DEFAULTS } from './options.js';
export type { PublishResult } from './outbox.js';
export type { Entry, StateViewEvents, StateViewOptions } from './state-view.js';
export { GossipState } from './state-view.js';
export type { PrefixInfo, SubscribeSince } from './subscriptions.js';
