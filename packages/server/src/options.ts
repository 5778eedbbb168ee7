import type { SecureContextOptions } from 'node:tls';
import { DEFAULT_MAX_PREFIXES } from '@gossip/protocol';
import type { Store } from '@gossip/store';
import type { RecordLog } from './record-log.js';

/** pino-compatible: `logger.info({ fields }, 'message')`. */
export interface ServerLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface ServerOptions {
  /** An open store. The server does not close it. */
  store: Store;
  /**
   * The log of record, when it is not `store`: publishes go to it, and `store` is the
   * copy it keeps up to date (cluster mode, docs/CLUSTER.md). Default: `store` itself.
   */
  recordLog?: RecordLog;
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; 0 picks a free one. Default 7420. */
  port?: number;
  /** Serve TLS with this certificate and key (PEM). */
  tls?: Pick<SecureContextOptions, 'cert' | 'key' | 'ca' | 'passphrase'>;
  /**
   * Auth tokens a client must present in its hello. Kept only as SHA-256 digests and
   * compared in constant time. Empty: no auth.
   */
  tokens?: readonly string[];
  /**
   * Allow listening on a non-loopback address without tokens. Default false: the
   * server refuses to start, since anyone who can reach the port could write.
   */
  allowInsecure?: boolean;
  /** Connections at once; more are refused with GOSSIP_ERR_TOO_MANY_CONNECTIONS. Default 10 000. */
  maxConnections?: number;
  /** A connection must send its hello within this. Default 5 000 ms. */
  helloTimeoutMs?: number;
  /** A connection that sends nothing (not even a ping) for this long is closed. Default 60 000 ms; 0 turns it off. */
  idleTimeoutMs?: number;
  /** How often clients are told to ping (in the welcome). Default 15 000 ms. */
  pingIntervalMs?: number;
  /**
   * Bytes a connection may have waiting to be written (socket buffer plus live messages
   * held during its replay); past it the connection is closed as a slow consumer.
   * Default 64 MiB.
   */
  maxOutboundBytes?: number;
  /** Largest frame a client may send. Default: the store's max data plus 64 KiB. */
  maxFrameBytes?: number;
  /** Refuse a publish or emit whose ts is further ahead of the server's clock than this. Default 1 000 ms; 0 turns it off. */
  maxSkewMs?: number;
  /** Ids one fetch may name. Default 10 000. */
  maxFetchIds?: number;
  /**
   * Prefixes one connection may hold (docs/PROTOCOL.md, B1), announced in the welcome; a
   * subscribe past it is refused, a hello naming more is closed. 1 to 65 535. Default 64.
   */
  maxPrefixes?: number;
  /**
   * Serve the original gossip protocol on the same port: a connection whose first byte
   * is `G` (its handshake, `GOSSIP`) speaks it (docs/PROTOCOL.md, "Legacy protocol").
   * Default true.
   */
  legacy?: boolean;
  /**
   * Serve the original protocol even when `tokens` are set. Its handshake cannot carry a
   * token, so anyone who reaches the port can then read and write through it. Default
   * false: with tokens, a legacy handshake is refused.
   */
  legacyWithTokens?: boolean;
  logger?: ServerLogger;
  /** Name (and version) sent to clients in the welcome, e.g. `gossipd/1.2.3`. Default `gossipd`. */
  serverName?: string;
  /** The server's clock, for the skew check. Default: the protocol's `now()`. */
  now?: () => bigint;
}

/** The most `maxPrefixes` may be: a connection's prefixes are matched and replayed one by one. */
export const MAX_PREFIXES_SETTING = 65_535;

/** Every default of the server, in one place: gossipd derives its flags' defaults from it. */
export const DEFAULTS = {
  host: '127.0.0.1',
  port: 7420,
  maxConnections: 10_000,
  helloTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  pingIntervalMs: 15_000,
  maxOutboundBytes: 64 * 1024 * 1024,
  maxSkewMs: 1_000,
  maxFetchIds: 10_000,
  maxPrefixes: DEFAULT_MAX_PREFIXES,
  legacy: true,
  legacyWithTokens: false,
  serverName: 'gossipd',
} as const;
