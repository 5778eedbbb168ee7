import { EventEmitter } from 'node:events';
import { type AddressInfo, createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { now as clockNow, FRAME_OVERHEAD_BYTES, GossipError, MAX_FETCH_IDS } from '@gossip/protocol';
import type { Store } from '@gossip/store';
import { TokenSet } from './auth.js';
import { Connection, type ConnectionHost, type ConnectionState } from './connection.js';
import type { Origin, Publication, Publisher, ResolvedOptions } from './context.js';
import { connectionsAllowed, descriptorBudget, REFUSING_SLACK } from './descriptors.js';
import { CLIENT_CLOSED, countReason, type Ending, RefusalLog, reasonOf } from './events.js';

/** The reason of a connection refused at the limit, as `gossip_disconnects_total` counts it. */
const TOO_MANY_CONNECTIONS = reasonOf('GOSSIP_ERR_TOO_MANY_CONNECTIONS');

import { LegacyConnection, type LegacyHost } from './legacy-connection.js';
import { Limiter } from './limiter.js';
import { DEFAULTS, MAX_PREFIXES_SETTING, type ServerLogger, type ServerOptions } from './options.js';
import type { Outbound } from './outbound.js';
import { PrefixIndex } from './prefix-index.js';
import type { PublishOutcome, RecordLog } from './record-log.js';
import { warmReplayFrames } from './replay-frames.js';
import { emptyStats, type ServerStats } from './stats.js';
import type { Subscription, SubscriptionHost } from './subscriptions.js';
import { Tick, type TickMessages, withoutOrigin } from './tick.js';

const noop = () => undefined;

/** The origin of relayed messages: no connection of this server, so every connection gets them. */
const RELAYED: Origin = Object.freeze({ echo: true });
/** How long a legacy connection waits, at most, for subscribers after an amplified payload. */
const AMPLIFIED_PACE_MS = 1_000;
const silent: ServerLogger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * The gossip server: accepts connections, appends publishes to the store, acks them,
 * and broadcasts each message to every live connection, encoded once per tick.
 */
export class GossipServer extends EventEmitter implements ConnectionHost, LegacyHost {
  readonly store: Store;
  readonly options: ResolvedOptions;
  readonly tokens: TokenSet;
  readonly stats: ServerStats = emptyStats();
  readonly log: ServerLogger;
  readonly refusals: RefusalLog;
  readonly authFailuresLog: RefusalLog;
  readonly #unwelcomedLog: RefusalLog;
  readonly maxFrameBytes: number;
  readonly maxSkewNs: bigint;
  readonly now: () => bigint;
  readonly inflates = new Limiter(1);
  readonly serverName: string;
  readonly #tls: ServerOptions['tls'];
  /** Wraps an accepted TCP socket in TLS: set by `listen` when the server serves TLS. */
  #wrapTls: ((raw: Socket) => Socket) | undefined;
  readonly #allowInsecure: boolean;
  /** Set when `maxConnections` was asked for above what the descriptor limit allows. */
  readonly #clamped: { requested: number; limit: number; explicit: boolean } | undefined;
  #server: Server | undefined;
  readonly #conns = new Set<Connection | LegacyConnection>();
  /** Connections refused at the limit, still being told so. */
  readonly #refusing = new Set<Connection>();
  /** Connections that receive every broadcast (they hold only the "" of their hello): replaying or live. */
  readonly #live = new Set<Connection>();
  /** Connections that receive what their prefixes match: live (docs/PROTOCOL.md, B1). */
  readonly #scoped = new Set<Connection>();
  /** The prefixes of every connection in `#scoped`, matched against each message's id (B7). */
  readonly #prefixes = new PrefixIndex<Subscription>();
  /** Scratch of `#deliverScoped`, kept from tick to tick. */
  readonly #found: Subscription[] = [];
  readonly #touched: SubscriptionHost[] = [];
  /** Legacy connections replaying or live: they get each tick's broadcast in the original encoding. */
  readonly #legacyLive = new Set<LegacyConnection>();
  readonly #dirty = new Set<Connection>();
  #flushScheduled = false;
  /** This turn's broadcast and settled publishes, handed out by `#flush`. */
  readonly #tick = new Tick(() => this.#schedule(), this.stats.publishAckSeconds);
  /** Names connections in logs. */
  #nextId = 1;
  /** Hands a tick's messages to every live connection, native and legacy (`#flush`). */
  readonly #deliver = (messages: TickMessages): void => {
    const count = messages.count;
    let quiet: Set<Origin> | undefined;
    for (let i = 0; i < count; i++) {
      const o = messages.origins[i] as Origin;
      if (!o.echo) (quiet ??= new Set()).add(o);
    }
    for (const conn of this.#live) {
      if (quiet?.has(conn)) {
        const own = withoutOrigin(messages, conn);
        if (own.count > 0) conn.deliver(own.bytes, own.count);
      } else {
        conn.deliver(messages.bytes, count);
      }
    }
    // Connections that named prefixes get what they match; a server where none did never pays for it.
    if (this.#prefixes.size > 0) this.#deliverScoped(messages);
    // The same messages in the original protocol's form, encoded once for every legacy
    // client; only while one is live, so a native-only server never pays for it.
    if (this.#legacyLive.size > 0) {
      const legacy = this.#tick.legacy(messages);
      for (const conn of this.#legacyLive) conn.deliver(legacy, count);
    }
  };
  /** Resolved at the end of the next flush (`flushed`), made when someone waits for it. */
  #afterFlush: { promise: Promise<void>; resolve: () => void } | undefined;
  #closing: Promise<void> | undefined;
  /** The log of record when it is not `store` (cluster mode). */
  readonly #record: RecordLog | undefined;
  #allowedAtMs = -1;
  #allowedTs = 0n;

  constructor(options: ServerOptions) {
    super();
    this.store = options.store;
    this.#record = options.recordLog;
    // Connections never take the descriptors the store needs (descriptors.ts).
    const budget = descriptorBudget();
    const allowed = budget ? connectionsAllowed(budget) : Number.POSITIVE_INFINITY;
    const requested = options.maxConnections ?? DEFAULTS.maxConnections;
    if (requested > allowed && budget) {
      this.#clamped = { requested, limit: budget.limit, explicit: options.maxConnections !== undefined };
    }
    this.options = {
      host: options.host ?? DEFAULTS.host,
      port: options.port ?? DEFAULTS.port,
      maxConnections: Math.min(requested, allowed),
      helloTimeoutMs: options.helloTimeoutMs ?? DEFAULTS.helloTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
      maxOutboundBytes: options.maxOutboundBytes ?? DEFAULTS.maxOutboundBytes,
      maxSkewMs: options.maxSkewMs ?? DEFAULTS.maxSkewMs,
      maxFetchIds: options.maxFetchIds ?? DEFAULTS.maxFetchIds,
      maxPrefixes: options.maxPrefixes ?? DEFAULTS.maxPrefixes,
      legacy: options.legacy ?? DEFAULTS.legacy,
      legacyWithTokens: options.legacyWithTokens ?? DEFAULTS.legacyWithTokens,
    };
    const fetchIds = this.options.maxFetchIds;
    if (!Number.isSafeInteger(fetchIds) || fetchIds < 1 || fetchIds > MAX_FETCH_IDS) {
      throw new GossipError(
        'GOSSIP_ERR_CONFIG',
        `maxFetchIds must be an integer from 1 to ${MAX_FETCH_IDS}, got ${fetchIds}`,
      );
    }
    const prefixes = this.options.maxPrefixes;
    if (!Number.isSafeInteger(prefixes) || prefixes < 1 || prefixes > MAX_PREFIXES_SETTING) {
      throw new GossipError(
        'GOSSIP_ERR_CONFIG',
        `maxPrefixes must be an integer from 1 to ${MAX_PREFIXES_SETTING}, got ${prefixes}`,
      );
    }
    this.tokens = new TokenSet(options.tokens ?? []);
    this.log = options.logger ?? silent;
    this.refusals = new RefusalLog(this.log);
    this.authFailuresLog = new RefusalLog(this.log);
    // Connections that end before their hello was accepted (scanners, refused tokens):
    // logged as the refusals are, so that a flood of them is no flood of lines.
    this.#unwelcomedLog = new RefusalLog(this.log);
    this.maxFrameBytes = options.maxFrameBytes ?? this.store.maxDataBytes + FRAME_OVERHEAD_BYTES;
    this.maxSkewNs = BigInt(Math.round(this.options.maxSkewMs)) * 1_000_000n;
    this.now = options.now ?? clockNow;
    this.serverName = options.serverName ?? DEFAULTS.serverName;
    this.#tls = options.tls;
    this.#allowInsecure = options.allowInsecure ?? false;
  }

  /**
   * Starts listening. Refuses (GOSSIP_ERR_INSECURE) a non-loopback address without
   * tokens unless `allowInsecure` is set: anyone who can reach it could write.
   */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.options;
    checkExposure(host, this.tokens.enabled, this.#allowInsecure);
    const clamped = this.#clamped;
    if (clamped) {
      const fields = {
        requested: clamped.requested,
        maxConnections: this.options.maxConnections,
        nofile: clamped.limit,
      };
      const raise = 'Raise the limit (ulimit -n, LimitNOFILE=) to serve more';
      if (clamped.explicit) {
        this.log.warn(
          fields,
          `--max-connections ${clamped.requested} is more than the descriptor limit (ulimit -n ${clamped.limit}) ` +
            `allows beside the store's reserve: serving at most ${this.options.maxConnections}. ${raise}`,
        );
      } else {
        this.log.info(
          fields,
          `serving at most ${this.options.maxConnections} connections: the descriptor limit (ulimit -n ${clamped.limit}) ` +
            `allows no more beside the store's reserve. ${raise}`,
        );
      }
    }
    if (this.#tls) {
      // node:tls is loaded only when it is used: it costs milliseconds of every start.
      const tls = await import('node:tls');
      const secureContext = tls.createSecureContext({ ...this.#tls });
      // TLS is set up on the accepted socket, so a connection counts, and its hello timeout
      // runs, from the moment it is accepted, handshake or not.
      this.#wrapTls = (raw) => new tls.TLSSocket(raw, { isServer: true, secureContext });
    }
    const server = createTcpServer((socket: Socket) => this.#accept(socket));
    // Past this Node closes new sockets at once: refused ones still being told count too.
    server.maxConnections = this.options.maxConnections + REFUSING_SLACK;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.log.error({ err: error }, 'listener error'));
    return server.address() as AddressInfo;
  }

  /**
   * Compiles the replay's framing loops (a few milliseconds, once per process), so that
   * a replay after it runs compiled code (docs/STORAGE.md, "Replay"); with the store's
   * `warm()`, what an owner calls once the server is idle.
   */
  warm(): void {
    warmReplayFrames();
  }

  address(): AddressInfo | undefined {
    return (this.#server?.address() as AddressInfo | null) ?? undefined;
  }

  get connections(): number {
    return this.#conns.size;
  }

  /**
   * Stops accepting and reading, lets the publishes already read reach the log and
   * sends their acks, tells every client the server is shutting down, and waits for the
   * sockets to close (at most `timeoutMs`). The store is left open: its owner closes it.
   */
  close(timeoutMs = 5_000): Promise<void> {
    this.#closing ??= (async () => {
      const server = this.#server;
      const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      for (const conn of this.#conns) conn.reading.hold('shutdown');
      for (const conn of this.#refusing) conn.socket.destroy();
      try {
        await this.store.flush();
      } catch (error) {
        this.log.warn({ err: error }, 'could not flush the store while stopping');
      }
      // The acks of those publishes were queued as the store settled them: write them now.
      await new Promise((resolve) => setImmediate(resolve));
      this.#flush();
      const sockets = [...this.#conns].map((c) => c.socket);
      for (const conn of [...this.#conns])
        conn.fatal('GOSSIP_ERR_SHUTTING_DOWN', 'the server is shutting down: reconnect later');
      const allClosed = Promise.all(
        sockets.map((s) => (s.destroyed ? undefined : new Promise((r) => s.once('close', r)))),
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([allClosed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await closed;
      // what the rate-limited logs left out so far, said now rather than lost
      for (const l of [this.refusals, this.authFailuresLog, this.#unwelcomedLog]) l.close();
    })();
    return this.#closing;
  }

  #accept(raw: Socket): void {
    if (this.#closing) {
      raw.destroy();
      return;
    }
    this.stats.connectionsTotal++;
    const socket = this.#wrapTls ? this.#wrapTls(raw) : raw;
    const conn = new Connection(this, this.#nextId++, socket, { tlsPending: this.#wrapTls !== undefined });
    if (this.#wrapTls) socket.once('secure', () => conn.secured());
    if (this.#conns.size >= this.options.maxConnections) {
      this.stats.connectionsRefused++;
      this.#refusing.add(conn);
      socket.once('close', () => this.#refusing.delete(conn));
      conn.fatal(
        'GOSSIP_ERR_TOO_MANY_CONNECTIONS',
        `the server is at its limit of ${this.options.maxConnections} connections`,
      );
      return;
    }
    this.#conns.add(conn);
    this.stats.connections = this.#conns.size;
  }

  latestAllowedTs(): bigint {
    // Reading the clock as a bigint for every publish costs more than the check itself.
    const ms = Date.now();
    if (ms !== this.#allowedAtMs) {
      this.#allowedAtMs = ms;
      this.#allowedTs = this.now() + this.maxSkewNs;
    }
    return this.#allowedTs;
  }

  broadcast(origin: Origin, transient: boolean, id: string, ts: bigint, data: Uint8Array): void {
    this.#tick.broadcast(origin, transient, id, ts, data);
    // The emits of this server's clients reach the other edges' clients too; never stored.
    if (transient) this.#record?.emit(id, ts, data);
  }

  stored(publisher: Publisher, f: Publication, stored: Promise<PublishOutcome>): void {
    this.#tick.stored(publisher, f, stored);
  }

  append(id: string, ts: bigint, data: Uint8Array): Promise<PublishOutcome> {
    const record = this.#record;
    return record === undefined ? this.store.append(id, ts, data) : record.append(id, ts, data);
  }

  /**
   * A message of the log of record that did not come from this server's own publishes:
   * another edge's publish applied to the store, or another edge's emit (`transient`).
   * Broadcast to this server's connections like their own (cluster mode, docs/CLUSTER.md).
   */
  relay(transient: boolean, id: string, ts: bigint, data: Uint8Array): void {
    this.#tick.broadcast(RELAYED, transient, id, ts, data);
  }

  async paceAmplified(): Promise<void> {
    const limit = this.options.maxOutboundBytes / 2;
    const until = performance.now() + AMPLIFIED_PACE_MS;
    await this.flushed();
    for (;;) {
      let worst: Outbound | undefined;
      let most = limit;
      // What is queued or in the socket, as whenBelow counts it (a replay's held messages are not).
      for (const conns of [this.#live, this.#scoped]) {
        for (const conn of conns) {
          if (conn.out.pendingBytes > most) [worst, most] = [conn.out, conn.out.pendingBytes];
        }
      }
      for (const conn of this.#legacyLive) {
        if (conn.out.pendingBytes > most) [worst, most] = [conn.out, conn.out.pendingBytes];
      }
      const left = until - performance.now();
      if (!worst || left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([worst.whenBelow(limit), new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  flushed(): Promise<void> {
    if (!this.#afterFlush) {
      let resolve: () => void = noop;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#afterFlush = { promise, resolve };
    }
    this.#schedule();
    return this.#afterFlush.promise;
  }

  markDirty(conn: Connection): void {
    this.#dirty.add(conn);
    this.#schedule();
  }

  stateChanged(conn: Connection, _from: ConnectionState, to: ConnectionState): void {
    if (to === 'replay' || to === 'live') {
      (conn.prefixes.scoped ? this.#scoped : this.#live).add(conn);
    } else {
      this.#live.delete(conn);
      this.#scoped.delete(conn);
    }
  }

  scoped(conn: Connection): void {
    if (this.#live.delete(conn)) this.#scoped.add(conn);
  }

  matching(sub: Subscription, on: boolean): void {
    if (on) this.#prefixes.add(sub.prefix, sub);
    else this.#prefixes.remove(sub.prefix, sub);
    this.stats.prefixes = this.#prefixes.size;
  }

  deliverTick(): void {
    this.#tick.flush(this.#deliver);
  }

  closed(conn: Connection): void {
    this.#ended(conn, false);
    this.#conns.delete(conn);
    this.#live.delete(conn);
    this.#scoped.delete(conn);
    this.#dirty.delete(conn);
    this.stats.connections = this.#conns.size;
  }

  /**
   * A connection ended: counted by its reason (`gossip_disconnects_total`), and logged
   * with its address, client name, reason and age. One whose hello was never accepted is
   * logged at the refusals' pace (events.ts), and one refused at the connection limit not
   * at all (`gossip_connections_refused_total` counts those): a flood of either writes
   * no flood of lines.
   */
  #ended(conn: Ending, legacy: boolean): void {
    const reason = conn.endReason ?? CLIENT_CLOSED;
    countReason(this.stats.disconnects, reason);
    if (reason === TOO_MANY_CONNECTIONS) return;
    const fields = () => ({
      conn: conn.id,
      remote: conn.remote,
      client: conn.client,
      ...(legacy ? { legacy } : {}),
      reason,
      ms: Math.round(performance.now() - conn.openedAt),
    });
    if (conn.welcomed) this.log.info(fields(), 'connection closed');
    else this.#unwelcomedLog.write('info', fields, 'connection closed');
  }

  // Connections speaking the original protocol (legacy-connection.ts).

  adoptLegacy(conn: Connection, first: Buffer, helloDeadline: number): void {
    this.#conns.delete(conn);
    this.#conns.add(new LegacyConnection(this, conn.socket, conn, first, helloDeadline));
  }

  legacyStateChanged(conn: LegacyConnection, live: boolean): void {
    if (live) this.#legacyLive.add(conn);
    else this.#legacyLive.delete(conn);
  }

  legacyClosed(conn: LegacyConnection): void {
    this.#ended(conn, true);
    this.#conns.delete(conn);
    this.#legacyLive.delete(conn);
    this.stats.connections = this.#conns.size;
  }

  /**
   * Hands each connection that named prefixes the tick's messages its prefixes match,
   * each once however many match (B1): every id is walked once through the index of all
   * prefixes (B7), and each connection then sends or holds what it got (B5).
   */
  #deliverScoped(messages: TickMessages): void {
    const { count, ids, origins } = messages;
    const found = this.#found;
    const touched = this.#touched;
    for (let i = 0; i < count; i++) {
      const n = this.#prefixes.collect(ids[i] as string, found);
      if (n === 0) continue;
      const origin = origins[i] as object;
      for (let k = 0; k < n; k++) {
        const sub = found[k] as Subscription;
        const owner = sub.owner;
        // With echo off a connection does not get its own messages back (H1).
        if (owner === origin && !owner.echo) continue;
        if (owner.match(i, sub)) touched.push(owner);
      }
      found.length = 0;
    }
    for (const owner of touched) owner.deliverMatched(messages);
    touched.length = 0;
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After this turn's I/O callbacks: everything of the turn goes out in one write per socket.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /**
   * The tick's work, after the turn's I/O: the publishes the store settled are broadcast
   * and acked (tick.ts), the turn's messages go to every live connection, native and
   * legacy, ahead of each connection's own frames of the turn, and then every connection
   * with something to send hands it to its socket.
   */
  #flush(): void {
    this.#tick.flush(this.#deliver);
    for (const conn of this.#dirty) conn.flush();
    this.#dirty.clear();
    const after = this.#afterFlush;
    this.#afterFlush = undefined;
    after?.resolve();
  }
}

/**
 * Refuses (GOSSIP_ERR_INSECURE) to listen on a non-loopback `host` without auth tokens
 * unless `insecure`: anyone who can reach it could publish and read everything.
 */
export function checkExposure(host: string, tokens: boolean, insecure: boolean): void {
  if (tokens || insecure || isLoopback(host)) return;
  throw new GossipError(
    'GOSSIP_ERR_INSECURE',
    `refusing to listen on ${host} without auth tokens: anyone who can reach it could publish. ` +
      'Set --token (or GOSSIP_TOKENS), or pass --insecure if the network is trusted',
  );
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}
