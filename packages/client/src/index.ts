export type { Address } from './address.js';
export { DEFAULT_PORT, parseAddress } from './address.js';
export type { BackoffOptions, ReconnectStrategy } from './backoff.js';
export { exponentialBackoff } from './backoff.js';
export type {
  ClientEvents,
  ClientMessage,
  ClientOptions,
  ClientState,
  FetchResult,
  PublishResult,
} from './client.js';
export { GossipClient } from './client.js';
export type { Codec } from './codecs.js';
export { bytesCodec, jsonCodec, msgpackCodec, utf8Codec } from './codecs.js';
export type { MessageStreamOptions } from './message-stream.js';
export { MessageStream } from './message-stream.js';
export type { Entry, StateViewEvents, StateViewOptions } from './state-view.js';
export { GossipState } from './state-view.js';
