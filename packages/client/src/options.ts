import type { ConnectionOptions } from 'node:tls';
import { checkPrefix, FrameEncoder, MAX_PREFIX_FIELD_BYTES, MAX_TS, MIN_TS } from '@gossip/protocol';
import { parseAddresses } from './address.js';
import type { ReconnectStrategy } from './backoff.js';
import type { Codec } from './codecs.js';
import { invalidOption } from './errors.js';

export interface ClientOptions<T = Uint8Array> {
  /**
   * `host:port`, `gossip://host:port` or `gossips://host:port` (TLS); default
   * `gossip://127.0.0.1:7420`. Or several: the client connects to the first; an attempt
   * that fails moves to the next, in turn, on the `reconnect` delays, and a connection
   * that drops tries its own address once more first. Its since, epoch, prefixes and
   * queued publishes go along. A first `connect()` tries each once, at once, and fails
   * with a server's refusal if one came, else the last error. Meant for the edges of one
   * cluster; two single gossipd are two logs, and a move between them is a resync
   * (docs/PROTOCOL.md, R3).
   */
  address?: string | readonly string[];
  /**
   * Auth token, if the server has tokens. With `name` it goes in the hello's extension,
   * at most 16 KiB: the constructor refuses more (GOSSIP_ERR_INVALID_ARGUMENT).
   */
  token?: string;
  /** TLS options for `gossips://` (a `ca` for a private CA, `servername`, …). */
  tls?: ConnectionOptions;
  /** Name the server logs for this client (in the hello's extension, as `token`). */
  name?: string;
  /**
   * Where the first replay starts: `'all'` (default: every id's newest message, as a
   * snapshot), `'now'` (live only), or a ts (a bigint in the signed 64-bit range).
   * Reconnects always resume from the last seen ts minus `replayDeltaMs`. With
   * `prefixes`, where each prefix's first replay starts, unless `subscribe()` says.
   */
  since?: 'all' | 'now' | bigint;
  /**
   * Subscribe by prefix (docs/PROTOCOL.md, "Subscriptions by prefix"): the client
   * receives only the ids under these prefixes ("" matches every id; `[]`: none until
   * `subscribe()`), each replayed on its own and resumed from its own last seen ts on
   * every reconnect; `subscribe()` and `unsubscribe()` change the set. Each is checked
   * by the constructor: a string of at most 65,535 bytes of UTF-8, no duplicate
   * (GOSSIP_ERR_INVALID_ARGUMENT); the server's own limits (gossipd: 64 prefixes of 256
   * bytes) it checks at the hello. Needs a server whose welcome announces prefixes: with
   * another, connections fail with GOSSIP_ERR_PREFIXES_UNSUPPORTED. Default: none, the
   * client holds the one implicit prefix "" (every id) and speaks exactly as a client
   * without prefixes (R1–R4) until its first `subscribe()` or `unsubscribe()`, which
   * gives it prefixes: "" and the change.
   */
  prefixes?: readonly string[];
  /** How far before the last seen ts a reconnect replays from: a finite number ≥ 0. Default 5 000 ms. */
  replayDeltaMs?: number;
  /**
   * Delay before reconnect attempt n, or null to stop. Default: exponential backoff
   * 100 ms → 10 s with jitter, which never returns null: a client that has connected
   * keeps reconnecting, and keeps the process alive, until `close()`. A strategy of
   * yours that returns null closes the client (an `error` event; what waits fails with
   * GOSSIP_ERR_CONNECTION_CLOSED). With `waitOnFirstConnect` it also paces the first connect.
   */
  reconnect?: ReconnectStrategy;
  /** A sent publish not acked within this fails with GOSSIP_ERR_TIMEOUT. Default 30 000 ms. */
  publishTimeoutMs?: number;
  /** `connect()` fails with GOSSIP_ERR_TIMEOUT if the welcome takes longer. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /**
   * What the first `connect()` does when it cannot get a welcome. Default false: it
   * rejects with the reason (GOSSIP_ERR_IO for a refused connection, GOSSIP_ERR_TIMEOUT,
   * GOSSIP_ERR_NOT_GOSSIP_SERVER, GOSSIP_ERR_CONNECTION_CLOSED, the server's code; see
   * `connect()`) and the client is `closed`, with no
   * timer left. true: it keeps trying on the `reconnect` strategy's delays (each failure
   * with a reason is an `error` event, each wait a `reconnecting` event, the state stays
   * `connecting`) until it connects, `close()` is called (it rejects with
   * GOSSIP_ERR_CLIENT_CLOSED) or the strategy returns null (it rejects with the last failure).
   */
  waitOnFirstConnect?: boolean;
  /**
   * Whether `publish()`, `delete()` and `fetch()` called before `connect()` wait for it.
   * Default false: they reject at once with GOSSIP_ERR_CONNECTION_CLOSED (and `emit()`
   * throws it). true: publishes wait in the offline queue (same caps) and go out once
   * connected, fetches wait for the connection, `emit()` returns false; if the first
   * connect fails, what waits fails with its error.
   */
  queueBeforeConnect?: boolean;
  /** Publishes held while disconnected, at most. Default 10 000. */
  maxQueue?: number;
  /** Bytes of publishes held while disconnected, at most. Default 16 MiB. */
  maxQueueBytes?: number;
  /** Receive this client's own publishes and emits. Default true. */
  echo?: boolean;
  /** Turns values into data and back. Default: bytes. */
  codec?: Codec<T>;
  /**
   * Ping period; default the server's (its welcome's `pingIntervalMs`, where 0 means no
   * pings), else 15 000 ms. The connection is dropped (GOSSIP_ERR_TIMEOUT, then a
   * reconnect) after two ping intervals in which nothing came from the server: a ping
   * left unanswered for a whole interval.
   */
  pingIntervalMs?: number;
}

/** The client's defaults, in one place: each is documented on its option above. */
export const CLIENT_DEFAULTS = {
  address: 'gossip://127.0.0.1:7420',
  since: 'all',
  replayDeltaMs: 5_000,
  publishTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  maxQueue: 10_000,
  maxQueueBytes: 16 * 1024 * 1024,
  echo: true,
  /** When neither the option nor the welcome says. */
  pingIntervalMs: 15_000,
  /** `fetch()`'s `timeoutMs`. */
  fetchTimeoutMs: 30_000,
  /** `close()`'s `timeoutMs`. */
  closeTimeoutMs: 5_000,
} as const;

/**
 * Checks, once in the constructor, what goes into every hello (H1), so that encoding
 * one can never fail later: `since`, `replayDeltaMs` (it makes the since of a
 * reconnect), and `name` and `token`, whose extension must fit in 16 KiB.
 */
export function checkHelloOptions(options: ClientOptions<unknown>): void {
  const prefixes = options.prefixes;
  if (prefixes !== undefined) {
    if (!Array.isArray(prefixes)) throw invalidOption('prefixes must be an array of strings');
    for (const prefix of prefixes) {
      try {
        checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
      } catch (error) {
        throw invalidOption(`prefixes: ${JSON.stringify(prefix)}: ${(error as Error).message}`, error);
      }
    }
    if (new Set(prefixes).size !== prefixes.length) throw invalidOption('prefixes names a prefix twice');
  }
  checkSince(options.since ?? CLIENT_DEFAULTS.since, 'since');
  // A token goes in every hello: with gossips:// and gossip:// addresses mixed, it would
  // go in the clear to the plain ones, when the TLS ones do not answer.
  const addresses = parseAddresses(options.address ?? CLIENT_DEFAULTS.address);
  if (options.token !== undefined && new Set(addresses.map((a) => a.tls)).size > 1)
    throw invalidOption(
      'a token with both gossips:// and gossip:// addresses would be sent in the clear to the gossip:// ones: use one scheme',
    );
  const delta = options.replayDeltaMs;
  if (delta !== undefined && !(typeof delta === 'number' && Number.isFinite(delta) && delta >= 0)) {
    throw invalidOption(`replayDeltaMs must be a finite number of ms, 0 or more, got ${String(delta)}`);
  }
  for (const key of ['name', 'token'] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'string') throw invalidOption(`${key} must be a string`);
  }
  try {
    new FrameEncoder().hello({ since: MIN_TS, name: options.name, token: options.token });
  } catch (error) {
    throw invalidOption(
      `name and token do not fit in a hello: ${(error as Error).message}; shorten them (docs/PROTOCOL.md, H1)`,
      error,
    );
  }
}

/** Checks a `since`: 'all', 'now' or a bigint in the signed 64-bit range (GOSSIP_ERR_INVALID_ARGUMENT). */
export function checkSince(since: unknown, what: string): void {
  if (typeof since === 'bigint') {
    if (since < MIN_TS || since > MAX_TS) throw invalidOption(`${what} ${since} is outside the signed 64-bit range`);
  } else if (since !== 'all' && since !== 'now') {
    throw invalidOption(`${what} must be 'all', 'now' or a bigint ts, got ${String(since)}`);
  }
}
