import type { ErrorCode } from '@gossip/protocol';
import { Buckets, SECONDS_BUCKETS } from '@gossip/store';

/** Counters the server keeps; gossipd exposes them as Prometheus metrics. */
export interface ServerStats {
  connections: number;
  connectionsTotal: number;
  connectionsRefused: number;
  /** Open connections speaking the original protocol (a part of `connections`). */
  legacyConnections: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  publishes: number;
  publishesStale: number;
  publishesFailed: number;
  emits: number;
  refused: number;
  /** `refused` by reason (events.ts `reasonOf` of the error ack's code). */
  refusedBy: Record<string, number>;
  /**
   * Connections ended, by reason: the code of the error frame that ended it
   * (`reasonOf`), or `client_closed` / `socket_error` when none did.
   */
  disconnects: Record<string, number>;
  /**
   * Seconds from the first publish of a group commit handed to the store to the acks of
   * that group commit queued for their connections: one observation per group commit.
   */
  publishAckSeconds: Buckets;
  /** Seconds from a replay's start to its replay-done (or prefix-done): one observation per replay. */
  replaySeconds: Buckets;
  fetches: number;
  replays: number;
  replayedMessages: number;
  /** Record bytes native replays read from the store (B7). */
  replayBytes: number;
  /** Prefixes held by connections that named prefixes, all of them matched per message (B7). */
  prefixes: number;
  resyncs: number;
  slowConsumers: number;
  protocolErrors: number;
  authFailures: number;
}

export function emptyStats(): ServerStats {
  return {
    connections: 0,
    connectionsTotal: 0,
    connectionsRefused: 0,
    legacyConnections: 0,
    messagesIn: 0,
    bytesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    publishes: 0,
    publishesStale: 0,
    publishesFailed: 0,
    emits: 0,
    refused: 0,
    refusedBy: {},
    disconnects: {},
    publishAckSeconds: new Buckets(SECONDS_BUCKETS),
    replaySeconds: new Buckets(SECONDS_BUCKETS),
    fetches: 0,
    replays: 0,
    replayedMessages: 0,
    replayBytes: 0,
    prefixes: 0,
    resyncs: 0,
    slowConsumers: 0,
    protocolErrors: 0,
    authFailures: 0,
  };
}

/** Fatal errors caused by what a client sent, native or legacy: counted in `protocolErrors`. */
export const PROTOCOL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'GOSSIP_ERR_FRAME_TOO_LARGE',
  'GOSSIP_ERR_MALFORMED_FRAME',
  'GOSSIP_ERR_UNKNOWN_FRAME',
  'GOSSIP_ERR_BAD_MAGIC',
  'GOSSIP_ERR_UNSUPPORTED_VERSION',
  'GOSSIP_ERR_UNEXPECTED_FRAME',
  'GOSSIP_ERR_ID_NOT_UTF8',
]);
