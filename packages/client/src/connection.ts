import type { Socket } from 'node:net';
import {
  type AckFrame,
  DEFAULT_MAX_FRAME_BYTES,
  errorFromCode,
  type FetchResultFrame,
  FRAME_OVERHEAD_BYTES,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  GossipError,
  MAX_EXTENSION_BYTES,
  MAX_WELCOME_FRAME_BYTES,
  MalformedFrameError,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  type PrefixSpec,
  type WelcomeFrame,
} from '@gossip/protocol';
import { type Address, hostPort, parseAddresses } from './address.js';
import { exponentialBackoff, type ReconnectStrategy } from './backoff.js';
import { asInvalidArgument, closedError } from './errors.js';
import { dial, HandshakeWatch } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import { type ClientState, type ResyncInfo, resyncName, type SyncedInfo } from './message-source.js';
import { CLIENT_DEFAULTS, type ClientOptions } from './options.js';
import type { OutboxLink } from './outbox.js';
import {
  initialSince,
  replayDeltaNs,
  resumeSince,
  type Subscriptions,
  type SubscriptionsEvents,
} from './subscriptions.js';
import { clearTimer, setTimer, setUnrefTimer, type Timer } from './timers.js';

/** The lifecycle events, all fired by the connection. */
export interface ConnectionEvents {
  state: (state: ClientState, previous: ClientState) => void;
  /** `since`: the hello's (null with prefixes); `prefixes`: what the hello named, for a client with prefixes (B2). */
  /** `address`: the `host:port` it connected to, one of the `address` option's. */
  connect: (info: {
    epoch: string;
    server: string | undefined;
    address: string;
    since: bigint | null;
    prefixes?: PrefixSpec[];
  }) => void;
  disconnect: (reason: GossipError) => void;
  /** `address`: the `host:port` the next attempt goes to. */
  reconnecting: (info: { attempt: number; delayMs: number; address: string }) => void;
  synced: (info: SyncedInfo) => void;
  resync: (info: ResyncInfo) => void;
  error: (error: GossipError) => void;
}

export type EmitConnectionEvent = <E extends keyof ConnectionEvents>(
  event: E,
  ...args: Parameters<ConnectionEvents[E]>
) => void;

/**
 * What a connection hands on, and no more: the frames that are not its own and the
 * moments the rest of the client acts on (as nats.js's parser hands frames to its
 * `Dispatcher`; as ioredis's `event_handler.ts` keeps the lifecycle out of the façade).
 */
export interface ConnectionHandler {
  /** A welcome was read (the state is `replaying`): queued work may go out. */
  opened(): void;
  /** A message frame, after `lastTs` has taken it in (R1). */
  message(f: MessageFrame): void;
  /** An ack with a non-zero reqId. */
  ack(f: AckFrame): void;
  fetchResult(f: FetchResultFrame): void;
  /** The socket closed, for `reason`; the connection then reconnects or closes for good. */
  dropped(reason: GossipError): void;
  /** Closed for good: what waits fails with `error`. */
  closed(error: GossipError): void;
}

/** A hello's bytes before its extension: length, kind, magic, version, flags, since, epoch (H1). */
const HELLO_FIXED_BYTES = 4 + 1 + 30;

/**
 * The lifecycle of the client's connection to one server: open a socket, hello, welcome,
 * replay, live, close, and reconnect on the `reconnect` strategy with a hello that asks
 * for what it missed (R1). Its state is one union, changed only by `#setState`, which
 * emits `state`. It owns the socket, the decoder, the encoder (writes coalesced per
 * tick), the keep-alive and the replay cursor (`lastTs`, `epoch`).
 *
 * With `subscriptions` (a client with prefixes) the replay cursor is theirs, one per
 * prefix: every hello names the prefixes (B2), a welcome that does not announce
 * `maxPrefixes` ends the connection with GOSSIP_ERR_PREFIXES_UNSUPPORTED (B1), the
 * prefix-done and prefix-resync frames go to them (B5, B6), and the connection is
 * `ready` once the replays it opened with are done. A client made without them takes
 * them at its first `subscribe()` or `unsubscribe()` (`scope`): the one prefix "" of
 * its hellos becomes the first of its prefixes, and the replay-done and resync of a
 * hello that named none go to them too.
 */
export class Connection implements OutboxLink {
  readonly #opts: ClientOptions<unknown>;
  /** The `address` option's, in order; `#at` is the one in use or next tried. */
  readonly #addresses: readonly Address[];
  #at = 0;
  /** The first refusal a server sent in that round (an error frame), reported over I/O errors. */
  #refusal: GossipError | undefined;
  /** The address of the last welcome read. */
  #welcomedBy: Address | undefined;
  readonly #reconnect: ReconnectStrategy;
  readonly #handler: ConnectionHandler;
  readonly #emit: EmitConnectionEvent;
  /** `replayDeltaMs` in ns (R1). */
  readonly #deltaNs: bigint;
  /** The since of the first replay, from the `since` option (R1, R4). */
  readonly #initialSince: bigint | null;
  #state: ClientState = 'idle';
  /** Called on every state change, after the `state` event: `whenOpen()`. */
  readonly #stateWaiters = new Set<(state: ClientState) => void>();
  #socket: Socket | undefined;
  #enc = new FrameEncoder();
  #writeScheduled = false;
  #epoch: string | null = null;
  #lastTs: bigint | null = null;
  /** The since the current connection's hello asked for: reported by the connect event. */
  #helloSince: bigint | null = null;
  /** The prefixes the current connection's hello named: reported by the connect event. */
  #helloPrefixes: PrefixSpec[] | undefined;
  #welcome: WelcomeFrame | undefined;
  #decoder: FrameDecoder | undefined;
  #heartbeat: Heartbeat | undefined;
  #attempt = 0;
  #everConnected = false;
  #reconnectTimer: Timer | undefined;
  #connectTimer: Timer | undefined;
  #fatal: GossipError | undefined;
  #connecting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #closing = false;
  /** Why it closed: what a wait for the connection fails with. */
  #closeReason: GossipError | undefined;
  /** The prefixes of a client with prefixes; undefined: the one prefix "" of R1–R4. */
  #subs: Subscriptions | undefined;
  /** `#subs` came from `scope()`, not from the `prefixes` option: a server without prefixes can undo it. */
  #scopedLate = false;
  /**
   * Without prefixes: a replay-done or a resync was read on this log, so with no
   * `lastTs` a replay resumes from -2^63 (R3). What `scope()` hands over.
   */
  #started = false;
  /** Whether the last welcome announced prefixes (B1); undefined before any. */
  #prefixesSupported: boolean | undefined;

  constructor(
    options: ClientOptions<unknown>,
    handler: ConnectionHandler,
    emit: EmitConnectionEvent,
    subscriptions?: Subscriptions,
  ) {
    this.#opts = options;
    this.#addresses = parseAddresses(options.address ?? CLIENT_DEFAULTS.address);
    this.#reconnect = options.reconnect ?? exponentialBackoff();
    this.#handler = handler;
    this.#emit = emit;
    this.#deltaNs = replayDeltaNs(options.replayDeltaMs ?? CLIENT_DEFAULTS.replayDeltaMs);
    this.#initialSince = initialSince(options.since ?? CLIENT_DEFAULTS.since);
    this.#subs = subscriptions;
    subscriptions?.bind(this, this.#subsEvents());
  }

  #subsEvents(): SubscriptionsEvents {
    return {
      synced: (info) => this.#emit('synced', info),
      resync: (info) => this.#emit('resync', info),
      replayed: () => this.#replayed(),
      error: (error) => this.#emit('error', error),
    };
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Newest ts of a persisted message seen (or of the server's log while idle); null before any. */
  get lastTs(): bigint | null {
    return this.#subs ? this.#subs.lastTs : this.#lastTs;
  }

  /** Whether the last welcome announced prefix subscriptions (B1); undefined before any welcome. */
  get prefixesSupported(): boolean | undefined {
    return this.#prefixesSupported;
  }

  /** The prefixes, once the client has them (the `prefixes` option, or `scope()`); undefined: it receives every id. */
  get subscriptions(): Subscriptions | undefined {
    return this.#subs;
  }

  /**
   * A client without prefixes takes `subs` (empty): the one prefix "" of its hellos
   * becomes their first, with its `lastTs` and the replay the current hello asked for,
   * and every later hello names the prefixes (B2). Refused, with
   * GOSSIP_ERR_PREFIXES_UNSUPPORTED, when the last welcome read announced no prefixes (B1):
   * the client goes on without. With a hello that named none still waiting for its
   * welcome, that welcome decides: without `maxPrefixes`, the client goes back to none.
   * Returns the prefixes the client holds from now on (those it had, if any).
   */
  scope(subs: Subscriptions): Subscriptions | GossipError {
    if (this.#subs) return this.#subs;
    if (this.#prefixesSupported === false) return this.#unsupportedError();
    subs.bind(this, this.#subsEvents());
    const welcome = this.#socket ? this.#welcome : undefined;
    subs.holdAll({
      initial: this.#initialSince,
      lastTs: this.#lastTs,
      started: this.#started,
      replay: !this.#socket ? 'none' : this.#state === 'ready' ? 'done' : 'running',
      welcome: welcome && { maxPrefixes: welcome.maxPrefixes, maxPrefixBytes: welcome.maxPrefixBytes },
    });
    this.#subs = subs;
    this.#scopedLate = true;
    return subs;
  }

  /** The log identity of the server last connected to. */
  get epoch(): string | null {
    return this.#epoch;
  }

  /** `close()` began: nothing new is accepted. */
  get closing(): boolean {
    return this.#closing;
  }

  get open(): boolean {
    return this.#socket !== undefined && (this.#state === 'replaying' || this.#state === 'ready');
  }

  /** The address in use, or tried next. */
  get #address(): Address {
    return this.#addresses[this.#at] as Address;
  }

  /** After a failure: the next address, in turn (the same one when there is one). */
  #moveOn(): void {
    this.#at = (this.#at + 1) % this.#addresses.length;
  }

  /**
   * The addresses as an `address` option, the one in use first: a connection of its own
   * (a late view's catch-up) goes where this one is, not back to the first.
   */
  get addressesInTurn(): string[] {
    const n = this.#addresses.length;
    return Array.from({ length: n }, (_, k) => {
      const a = this.#addresses[(this.#at + k) % n] as Address;
      return `${a.tls ? 'gossips' : 'gossip'}://${hostPort(a)}`;
    });
  }

  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  get encoder(): FrameEncoder {
    return this.#enc;
  }

  flush(): void {
    if (this.#writeScheduled) return;
    this.#writeScheduled = true;
    // Everything encoded in this synchronous run goes out in one write.
    queueMicrotask(() => {
      this.#writeScheduled = false;
      const socket = this.#socket;
      if (socket && !socket.destroyed && this.#enc.pendingBytes > 0) socket.write(this.#enc.take());
    });
  }

  /** Opens the first connection; resolves at its first replay-done (see `GossipClient.connect`). */
  connect(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(closedError());
    if (this.#state !== 'idle')
      return Promise.reject(new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', `connect() while ${this.#state}`));
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal;
      // An aborted connect is a failed one: the client closes and what waits fails with it.
      const onAbort = () =>
        this.shutdown(new GossipError('GOSSIP_ERR_ABORTED', 'connect() was aborted', { cause: signal?.reason }));
      this.#connecting = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#open();
    });
  }

  /** Resolves once a connection is open; rejects if the client closes first, or `signal` aborts. */
  async whenOpen(signal?: AbortSignal): Promise<void> {
    if (this.open) return;
    if (this.#state === 'closed') throw closedError();
    await new Promise<void>((resolve, reject) => {
      const onState = (s: ClientState) => {
        if (this.open) {
          done();
          resolve();
        } else if (s === 'closed') {
          done();
          reject(this.#closeReason ?? closedError());
        }
      };
      const onAbort = () => {
        done();
        reject(new GossipError('GOSSIP_ERR_ABORTED', 'aborted while waiting for a connection'));
      };
      const done = () => {
        this.#stateWaiters.delete(onState);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#stateWaiters.add(onState);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves once the connection is `ready` (its replay done); rejects if the client closes first. */
  whenReady(): Promise<void> {
    if (this.#state === 'ready') return Promise.resolve();
    if (this.#state === 'closed') return Promise.reject(this.#closeReason ?? closedError());
    return new Promise<void>((resolve, reject) => {
      const onState = (s: ClientState) => {
        if (s !== 'ready' && s !== 'closed') return;
        this.#stateWaiters.delete(onState);
        if (s === 'ready') resolve();
        else reject(this.#closeReason ?? closedError());
      };
      this.#stateWaiters.add(onState);
    });
  }

  /** Stops reconnecting: `close()` began. */
  beginClose(): void {
    this.#closing = true;
    clearTimer(this.#reconnectTimer);
  }

  /** Closes for good: no socket, no timer, nothing pending; what waits fails with `error`. */
  shutdown(error: GossipError): void {
    clearTimer(this.#reconnectTimer);
    this.#heartbeat?.cancel();
    clearTimer(this.#connectTimer);
    this.#closeReason ??= error;
    this.#setState('closed');
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#subs?.closed(error);
    this.#handler.closed(error);
    this.#connecting?.reject(error);
    this.#connecting = undefined;
  }

  /** The one place the state changes. */
  #setState(next: ClientState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#emit('state', next, prev);
    for (const waiter of [...this.#stateWaiters]) waiter(next);
  }

  /** The hello's since (R1): the last seen ts minus the delta, else what the first replay asks for. */
  #since(): bigint | null {
    return this.#lastTs === null ? this.#initialSince : resumeSince(this.#lastTs, this.#deltaNs);
  }

  #open(): void {
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    this.#fatal = undefined;
    this.#welcome = undefined;
    this.#enc = new FrameEncoder();
    // The hello is encoded before the socket exists, so nothing can throw in a socket
    // listener (which would kill the process); the constructor checked its fields.
    let hello: Buffer;
    let since: bigint | null;
    let prefixes: PrefixSpec[] | undefined;
    try {
      const { name, token } = this.#opts;
      // With prefixes the hello's own since is not used (B2): live only, so that an old
      // server, which ignores the key, replays nothing before its welcome ends it.
      since = this.#subs ? null : this.#since();
      if (this.#subs) {
        const extensionBytes = new FrameEncoder().hello({ name, token }).take().length - HELLO_FIXED_BYTES;
        prefixes = this.#subs.helloPrefixes(MAX_EXTENSION_BYTES - extensionBytes);
      }
      hello = new FrameEncoder()
        .hello({ since, epoch: this.#epoch, echo: this.#opts.echo ?? CLIENT_DEFAULTS.echo, name, token, prefixes })
        .take();
    } catch (error) {
      this.shutdown(asInvalidArgument(error));
      return;
    }
    this.#helloSince = since;
    this.#helloPrefixes = prefixes;
    const address = this.#address;
    const socket = dial(address, this.#opts.tls);
    this.#socket = socket;
    // Until the welcome, only a welcome or an error frame can come, so nothing larger
    // than the largest welcome is accepted (an error frame that does not fit is no
    // reasonable error either): a peer that is not a gossip server (an HTTP
    // server's "HTTP/1.1 400", read as a 1.2 GB length) fails at once (F4). #onWelcome raises it.
    const decoder = new FrameDecoder((f) => this.#onFrame(f), { maxFrameBytes: MAX_WELCOME_FRAME_BYTES });
    this.#decoder = decoder;
    const handshake = new HandshakeWatch(address);
    socket.once(address.tls ? 'secureConnect' : 'connect', () => socket.write(hello));
    const connectTimeoutMs = this.#opts.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs;
    // Unref'd: it runs while the socket connects or waits for the welcome, and the
    // socket keeps the process alive; every close clears it.
    this.#connectTimer = setUnrefTimer(() => {
      this.#fatal ??= new GossipError(
        'GOSSIP_ERR_TIMEOUT',
        `no welcome from ${address.host}:${address.port} within ${connectTimeoutMs} ms`,
      );
      socket.destroy();
    }, connectTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.#heartbeat?.heard();
      if (!this.#welcome) handshake.seen(chunk);
      try {
        decoder.push(chunk);
      } catch (error) {
        const e = error instanceof GossipError ? error : new GossipError('GOSSIP_ERR_MALFORMED_FRAME', String(error));
        // A welcome or an error frame that fails to decode keeps the decoder's code (F4).
        this.#fatal ??= this.#welcome ? e : handshake.failure(e);
        socket.destroy();
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.#fatal ??= new GossipError(
        'GOSSIP_ERR_IO',
        `${address.host}:${address.port}: ${error.code ?? error.message}`,
        { cause: error },
      );
    });
    socket.on('close', () => {
      if (socket === this.#socket && !this.#welcome && !this.#fatal && handshake.heard) {
        // Bytes, then a close before the welcome: the decoder holds part of a frame.
        try {
          decoder.end();
        } catch (error) {
          this.#fatal = handshake.failure(
            error instanceof GossipError ? error : new MalformedFrameError(String(error)),
          );
        }
      }
      this.#onClose(socket);
    });
  }

  #onFrame(f: Frame): void {
    if (!this.#welcome && f.kind !== FrameKind.Welcome && f.kind !== FrameKind.Error) {
      // Thrown, so the decoder stops here; the data handler ends the connection with it.
      throw new GossipError('GOSSIP_ERR_UNEXPECTED_FRAME', `frame kind ${f.kind} before the welcome`);
    }
    switch (f.kind) {
      case FrameKind.Welcome:
        this.#onWelcome(f);
        return;
      case FrameKind.Message:
        if (this.#subs) {
          if (!this.#subs.message(f)) return;
        } else if ((f.flags & MessageFlags.Transient) === 0) this.#raiseLastTs(f.ts);
        this.#handler.message(f);
        return;
      case FrameKind.Ack:
        // An emit, which asked for no ack, was refused (A1).
        if (f.reqId === 0) this.#emit('error', errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
        else if (!this.#subs?.ack(f)) this.#handler.ack(f);
        return;
      case FrameKind.ReplayDone:
        // A hello that named prefixes gets their prefix-done frames, never this (B1); one
        // that named none ends the replay of its "" with it, prefixes taken since or not.
        if (this.#subs) {
          if (!this.#subs.replayDone(f)) this.#unexpected(f.kind);
          return;
        }
        if (f.newestTs !== MIN_TS) this.#raiseLastTs(f.newestTs);
        this.#started = true;
        this.#replayed();
        this.#emit('synced', { count: f.count, snapshot: f.snapshot, newestTs: f.newestTs });
        return;
      case FrameKind.Resync:
        if (this.#subs) {
          if (!this.#subs.resync(f)) this.#unexpected(f.kind);
          return;
        }
        // What was held may belong to another log or miss deletes: start over from the snapshot (R3).
        this.#lastTs = null;
        this.#started = true;
        this.#emit('resync', { reason: resyncName(f.reason), horizon: f.horizon });
        return;
      case FrameKind.PrefixDone:
        // Sent only to a connection that named prefixes (B1).
        if (!this.#subs) {
          this.#unexpected(f.kind);
          return;
        }
        this.#subs.prefixDone(f);
        return;
      case FrameKind.PrefixResync:
        if (!this.#subs) {
          this.#unexpected(f.kind);
          return;
        }
        this.#subs.prefixResync(f);
        return;
      case FrameKind.FetchResult:
        this.#handler.fetchResult(f);
        return;
      case FrameKind.Pong:
        // While idle, the server's newest ts lets lastTs advance without trusting our clock (K2).
        if (this.#subs) this.#subs.pong(f.newestTs);
        else if (this.#state === 'ready' && f.newestTs !== MIN_TS) this.#raiseLastTs(f.newestTs);
        return;
      case FrameKind.Error:
        this.#fatal = errorFromCode(f.code, f.message);
        return;
      case FrameKind.Ping:
        this.#enc.pong(f.nonce, MIN_TS);
        this.flush();
        return;
      default:
        this.#fatal = new GossipError('GOSSIP_ERR_UNEXPECTED_FRAME', `the server sent frame kind ${f.kind}`);
        this.#socket?.destroy();
    }
  }

  /** A frame the server must not send on this connection: it ends it. */
  #unexpected(kind: number): void {
    this.#fatal ??= new GossipError('GOSSIP_ERR_UNEXPECTED_FRAME', `the server sent frame kind ${kind}`);
    this.#socket?.destroy();
  }

  /**
   * The replays the connection opened with are done (R2, or each prefix's B5): it is
   * ready, the attempts start over, and the first `connect()` resolves.
   */
  #replayed(): void {
    this.#setState('ready');
    this.#attempt = 0;
    const c = this.#connecting;
    this.#connecting = undefined;
    c?.resolve();
  }

  #raiseLastTs(ts: bigint): void {
    if (this.#lastTs === null || ts > this.#lastTs) this.#lastTs = ts;
  }

  #unsupportedError(): GossipError {
    // the server whose welcome said so, which may not be the address tried next
    const { host, port } = this.#welcomedBy ?? this.#address;
    return new GossipError(
      'GOSSIP_ERR_PREFIXES_UNSUPPORTED',
      this.#subs && !this.#scopedLate
        ? `${host}:${port} has no prefix subscriptions (its welcome announces no maxPrefixes): upgrade gossipd, or make the client without the prefixes option`
        : `${host}:${port} has no prefix subscriptions (its welcome announces no maxPrefixes): upgrade gossipd to subscribe or unsubscribe by prefix`,
    );
  }

  /** Back to no prefixes (`scope()` undone): "" with its `lastTs`, what waits on the prefixes fails with `error`. */
  #unscope(subs: Subscriptions, error: GossipError): void {
    this.#subs = undefined;
    this.#scopedLate = false;
    const plain = subs.abandon(error);
    this.#lastTs = plain.lastTs;
    this.#started = plain.started;
  }

  #onWelcome(w: WelcomeFrame): void {
    if (this.#subs && w.maxPrefixes === undefined) {
      const subs = this.#subs;
      const error = this.#unsupportedError();
      this.#prefixesSupported = false;
      if (this.#helloPrefixes === undefined) {
        // The client took prefixes after this hello, which named none: it gets what it
        // asked for, every id, and goes on without them (nothing was read since).
        this.#unscope(subs, error);
      } else {
        // A server without prefixes ignored the hello's `prefixes` and would send every id (B1).
        subs.unsupported(error);
        // Prefixes taken by a client made without them, "" still among them: every id is
        // what it asks for, so the next hello names none.
        if (this.#scopedLate && subs.holds('')) this.#unscope(subs, error);
        // Thrown, so the decoder stops here: nothing after this welcome is read.
        throw error;
      }
    }
    clearTimer(this.#connectTimer);
    this.#welcome = w;
    this.#prefixesSupported = w.maxPrefixes !== undefined;
    this.#welcomedBy = this.#address;
    // The server sends messages up to its max-data plus the frame overhead (docs/PROTOCOL.md, W1).
    if (this.#decoder) {
      this.#decoder.maxFrameBytes = Math.max(
        DEFAULT_MAX_FRAME_BYTES,
        w.maxFrameBytes,
        w.maxDataBytes + FRAME_OVERHEAD_BYTES,
      );
    }
    if (this.#epoch !== null && this.#epoch !== w.epoch) {
      this.#lastTs = null;
      this.#started = false;
      this.#subs?.epochChanged();
    }
    this.#epoch = w.epoch;
    if (this.#lastTs === null && (this.#opts.since ?? CLIENT_DEFAULTS.since) === 'now' && w.newestTs !== MIN_TS)
      this.#lastTs = w.newestTs;
    this.#everConnected = true;
    this.#setState('replaying');
    this.#emit('connect', {
      epoch: w.epoch,
      server: w.server,
      address: hostPort(this.#address),
      since: this.#helloSince,
      ...(this.#helloPrefixes ? { prefixes: this.#helloPrefixes } : {}),
    });
    const socket = this.#socket;
    this.#heartbeat?.cancel();
    this.#heartbeat = new Heartbeat(
      {
        ping: (nonce) => {
          this.#enc.ping(nonce);
          this.flush();
        },
        stale: (reason) => {
          this.#fatal ??= reason;
          socket?.destroy();
        },
      },
      this.#opts.pingIntervalMs ?? w.pingIntervalMs ?? CLIENT_DEFAULTS.pingIntervalMs,
    );
    this.#heartbeat.start();
    this.#handler.opened();
    this.#subs?.opened(w.maxPrefixes, w.maxPrefixBytes);
  }

  #onClose(socket: Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.#heartbeat?.cancel();
    clearTimer(this.#connectTimer);
    const reason = this.#fatal ?? new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the connection closed');
    this.#subs?.dropped();
    this.#handler.dropped(reason);
    if (this.#state === 'closed') return;
    const wasConnected = this.#state === 'replaying' || this.#state === 'ready';
    if (wasConnected) this.#emit('disconnect', reason);
    if (this.#closing) {
      this.shutdown(closedError());
      return;
    }
    const first = !this.#everConnected;
    // A failed attempt moves on to the next address (another edge). A drop of a working
    // connection first tries the same address again, on the first delay: a server that
    // restarts at once is back sooner than an unanswering other edge's connect timeout.
    if (!wasConnected) this.#moveOn();
    if (first && !this.#opts.waitOnFirstConnect) {
      // The first connect tries each address once, at once; then it fails fast and leaves
      // nothing running (as nats.js), with a server's own refusal (a token, a version)
      // rather than another address's I/O error when one came.
      if (this.#fatal && !isTransport(this.#fatal)) this.#refusal ??= this.#fatal;
      // back at the first address: each has been tried once
      if (this.#at !== 0) {
        if (this.#fatal) this.#emit('error', this.#fatal);
        this.#open();
        return;
      }
      this.shutdown(this.#refusal ?? reason);
      return;
    }
    if (this.#fatal && !wasConnected) this.#emit('error', this.#fatal);
    this.#attempt++;
    const delay = this.#reconnect(this.#attempt);
    if (delay === null && first) {
      // waitOnFirstConnect with a strategy that gave up: connect() fails with the last reason.
      this.shutdown(reason);
      return;
    }
    if (delay === null) {
      this.#emit(
        'error',
        new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', `gave up reconnecting after ${this.#attempt - 1} attempts`, {
          cause: reason,
        }),
      );
      this.shutdown(
        new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the client stopped reconnecting', { cause: reason }),
      );
      return;
    }
    this.#setState(first ? 'connecting' : 'reconnecting');
    this.#emit('reconnecting', { attempt: this.#attempt, delayMs: delay, address: hostPort(this.#address) });
    // Ref'd: while it runs the client holds no socket, and a process whose only work is
    // this client must stay alive until it is back (STYLE.md, "Not this").
    this.#reconnectTimer = setTimer(() => this.#open(), delay);
  }
}

/** Whether `error` says the address could not be reached or answered (try another), not that a server refused. */
function isTransport(error: GossipError): boolean {
  return (
    error.code === 'GOSSIP_ERR_IO' ||
    error.code === 'GOSSIP_ERR_TIMEOUT' ||
    error.code === 'GOSSIP_ERR_CONNECTION_CLOSED' ||
    error.code === 'GOSSIP_ERR_NOT_GOSSIP_SERVER'
  );
}
