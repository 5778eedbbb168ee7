import type { Store } from '@gossip/store';
import type { TokenSet } from './auth.js';
import type { Connection, ConnectionState } from './connection.js';
import type { PendingAcks } from './handlers/publish.js';
import type { LegacyConnection } from './legacy-connection.js';
import type { Limiter } from './limiter.js';
import type { ServerLogger } from './options.js';
import type { ServerStats } from './stats.js';

/** Resolved options: every default filled in. */
export interface ResolvedOptions {
  host: string;
  port: number;
  maxConnections: number;
  helloTimeoutMs: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  maxOutboundBytes: number;
  maxSkewMs: number;
  maxFetchIds: number;
  /** Serve the original gossip protocol beside the native one (legacy-connection.ts). */
  legacy: boolean;
  /** Serve it even when tokens are configured, though it cannot carry one. */
  legacyWithTokens: boolean;
}

/** What connections and handlers need of the server. */
export interface ServerContext {
  readonly store: Store;
  readonly options: ResolvedOptions;
  readonly tokens: TokenSet;
  readonly stats: ServerStats;
  readonly log: ServerLogger;
  readonly maxFrameBytes: number;
  /** Name and version sent in the welcome. */
  readonly serverName: string;
  readonly maxSkewNs: bigint;
  readonly now: () => bigint;
  /**
   * Inflates of legacy `z` payloads, one at a time for the whole server: they run on
   * libuv's threadpool, which the store's file I/O needs too.
   */
  readonly inflates: Limiter;
  /** Native publishes waiting for the store (handlers/publish.ts). */
  readonly acks: PendingAcks;
  /**
   * Resolves once every live connection has at most half the outbound cap waiting for
   * it, or after a second at most: what a legacy connection awaits after broadcasting a
   * payload that inflated to many times its size, so that few bytes in cannot push
   * readers that keep up off the server (docs/PROTOCOL.md, L4).
   */
  paceAmplified(): Promise<void>;
  /** The newest ts the skew check lets in: now + max skew, recomputed at most once a millisecond. */
  latestAllowedTs(): bigint;
  /** Queues a persisted or transient message for every live connection, encoded once. */
  broadcast(origin: Connection | LegacyConnection, transient: boolean, id: string, ts: bigint, data: Uint8Array): void;
  markDirty(conn: Connection): void;
  stateChanged(conn: Connection, from: ConnectionState, to: ConnectionState): void;
  closed(conn: Connection): void;
  /**
   * A connection whose first byte is the legacy `G`: the server hands its socket to a
   * `LegacyConnection`, whose handshake is due by the same `helloDeadline` (`performance.now()`).
   */
  adoptLegacy(conn: Connection, first: Buffer, helloDeadline: number): void;
  /** A legacy connection joins (replay, live) or leaves the legacy broadcast. */
  legacyStateChanged(conn: LegacyConnection, live: boolean): void;
  legacyClosed(conn: LegacyConnection): void;
}
