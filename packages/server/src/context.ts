import type { Store } from '@gossip/store';
import type { TokenSet } from './auth.js';
import type { RefusalLog } from './events.js';
import type { ServerLogger } from './options.js';
import type { PublishOutcome } from './record-log.js';
import type { ServerStats } from './stats.js';

// The server as its connections and handlers see it. This module imports no connection
// and no server: they import it (scripts/check-cycles.mjs).

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
  /** Prefixes one connection may hold (B1). */
  maxPrefixes: number;
  /** Serve the original gossip protocol beside the native one (legacy-connection.ts). */
  legacy: boolean;
  /** Serve it even when tokens are configured, though it cannot carry one. */
  legacyWithTokens: boolean;
}

/** Where a broadcast message came from, native or legacy: with echo off it does not get its own. */
export interface Origin {
  readonly echo: boolean;
}

/** A publish on its way to the log, as the tick keeps it: a native publish frame, or a legacy `M`. */
export interface Publication {
  readonly reqId: number;
  readonly id: string;
  readonly ts: bigint;
  readonly data: Uint8Array;
}

/** A connection whose publishes the server's tick settles (tick.ts). */
export interface Publisher extends Origin {
  /**
   * The store settled `f`: `result`, or the failure `error` (result undefined). Called by
   * the tick once per publish, after an accepted one was broadcast.
   */
  settled(f: Publication, result: PublishOutcome | undefined, error: unknown): void;
}

/** What handlers need of the server (and connections, beside their own host interface). */
export interface ServerContext {
  readonly store: Store;
  readonly options: ResolvedOptions;
  readonly tokens: TokenSet;
  readonly stats: ServerStats;
  readonly log: ServerLogger;
  /** Refused requests, rate-limited (events.ts). */
  readonly refusals: RefusalLog;
  /** Auth failures, rate-limited apart from the refusals, so that a flood of one does not hide the other. */
  readonly authFailuresLog: RefusalLog;
  readonly maxFrameBytes: number;
  /** Name and version sent in the welcome. */
  readonly serverName: string;
  readonly maxSkewNs: bigint;
  /** The newest ts the skew check lets in: now + max skew, recomputed at most once a millisecond. */
  latestAllowedTs(): bigint;
  /** Queues a persisted or transient message for every live connection, encoded once per tick. */
  broadcast(origin: Origin, transient: boolean, id: string, ts: bigint, data: Uint8Array): void;
  /**
   * `publisher`'s publish `f`, whose append to the store is `stored`: the tick broadcasts
   * it if accepted, in the store's order, and tells the publisher (tick.ts).
   */
  stored(publisher: Publisher, f: Publication, stored: Promise<PublishOutcome>): void;
  /**
   * Appends a publish to the log of record: the store, or the cluster when the server has
   * a `RecordLog` (record-log.ts).
   */
  append(id: string, ts: bigint, data: Uint8Array): Promise<PublishOutcome>;
}
