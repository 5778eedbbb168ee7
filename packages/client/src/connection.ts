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
  MAX_WELCOME_FRAME_BYTES,
  MalformedFrameError,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  ResyncReason,
  type WelcomeFrame,
} from '@gossip/protocol';
import { type Address, parseAddress } from './address.js';
import { exponentialBackoff, type ReconnectStrategy } from './backoff.js';
import { asInvalidArgument, closedError } from './errors.js';
import { dial, HandshakeWatch } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import type { ClientState, ResyncInfo, SyncedInfo } from './message-source.js';
import { CLIENT_DEFAULTS, type ClientOptions } from './options.js';
import type { OutboxLink } from './outbox.js';
import { clearTimer, setTimer, setUnrefTimer, type Timer } from './timers.js';

/** The lifecycle events, all fired by the connection. */
export interface ConnectionEvents {
  state: (state: ClientState, previous: ClientState) => void;
  connect: (info: { epoch: string; server: string | undefined; since: bigint | null }) => void;
  disconnect: (reason: GossipError) => void;
  reconnecting: (info: { attempt: number; delayMs: number }) => void;
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

const RESYNC_NAMES = {
  [ResyncReason.Horizon]: 'horizon',
  [ResyncReason.Epoch]: 'epoch',
  [ResyncReason.Full]: 'full',
} as const;
const NS_PER_MS = 1_000_000n;

/**
 * The lifecycle of the client's connection to one server: open a socket, hello, welcome,
 * replay, live, close, and reconnect on the `reconnect` strategy with a hello that asks
 * for what it missed (R1). Its state is one union, changed only by `#setState`, which
 * emits `state`. It owns the socket, the decoder, the encoder (writes coalesced per
 * tick), the keep-alive and the replay cursor (`lastTs`, `epoch`).
 */
export class Connection implements OutboxLink {
  readonly #opts: ClientOptions<unknown>;
  readonly #address: Address;
  readonly #reconnect: ReconnectStrategy;
  readonly #handler: ConnectionHandler;
  readonly #emit: EmitConnectionEvent;
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

  constructor(options: ClientOptions<unknown>, handler: ConnectionHandler, emit: EmitConnectionEvent) {
    this.#opts = options;
    this.#address = parseAddress(options.address ?? CLIENT_DEFAULTS.address);
    this.#reconnect = options.reconnect ?? exponentialBackoff();
    this.#handler = handler;
    this.#emit = emit;
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Newest ts of a persisted message seen (or of the server's log while idle); null before any. */
  get lastTs(): bigint | null {
    return this.#lastTs;
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
    if (this.#lastTs !== null) {
      const delta = this.#opts.replayDeltaMs ?? CLIENT_DEFAULTS.replayDeltaMs;
      const since = this.#lastTs - BigInt(Math.round(delta)) * NS_PER_MS;
      return since < MIN_TS ? MIN_TS : since;
    }
    const initial = this.#opts.since ?? CLIENT_DEFAULTS.since;
    if (typeof initial === 'bigint') return initial;
    return initial === 'all' ? MIN_TS : null;
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
    try {
      since = this.#since();
      hello = new FrameEncoder()
        .hello({
          since,
          epoch: this.#epoch,
          echo: this.#opts.echo ?? CLIENT_DEFAULTS.echo,
          name: this.#opts.name,
          token: this.#opts.token,
        })
        .take();
    } catch (error) {
      this.shutdown(asInvalidArgument(error));
      return;
    }
    this.#helloSince = since;
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
        if ((f.flags & MessageFlags.Transient) === 0) this.#raiseLastTs(f.ts);
        this.#handler.message(f);
        return;
      case FrameKind.Ack:
        // An emit, which asked for no ack, was refused (A1).
        if (f.reqId === 0) this.#emit('error', errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
        else this.#handler.ack(f);
        return;
      case FrameKind.ReplayDone: {
        if (f.newestTs !== MIN_TS) this.#raiseLastTs(f.newestTs);
        this.#setState('ready');
        this.#emit('synced', { count: f.count, snapshot: f.snapshot, newestTs: f.newestTs });
        this.#attempt = 0;
        const c = this.#connecting;
        this.#connecting = undefined;
        c?.resolve();
        return;
      }
      case FrameKind.Resync:
        // What was held may belong to another log or miss deletes: start over from the snapshot (R3).
        this.#lastTs = null;
        this.#emit('resync', { reason: RESYNC_NAMES[f.reason], horizon: f.horizon });
        return;
      case FrameKind.FetchResult:
        this.#handler.fetchResult(f);
        return;
      case FrameKind.Pong:
        // While idle, the server's newest ts lets lastTs advance without trusting our clock (K2).
        if (this.#state === 'ready' && f.newestTs !== MIN_TS) this.#raiseLastTs(f.newestTs);
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

  #raiseLastTs(ts: bigint): void {
    if (this.#lastTs === null || ts > this.#lastTs) this.#lastTs = ts;
  }

  #onWelcome(w: WelcomeFrame): void {
    clearTimer(this.#connectTimer);
    this.#welcome = w;
    // The server sends messages up to its max-data plus the frame overhead (docs/PROTOCOL.md, W1).
    if (this.#decoder) {
      this.#decoder.maxFrameBytes = Math.max(
        DEFAULT_MAX_FRAME_BYTES,
        w.maxFrameBytes,
        w.maxDataBytes + FRAME_OVERHEAD_BYTES,
      );
    }
    if (this.#epoch !== null && this.#epoch !== w.epoch) this.#lastTs = null;
    this.#epoch = w.epoch;
    if (this.#lastTs === null && (this.#opts.since ?? CLIENT_DEFAULTS.since) === 'now' && w.newestTs !== MIN_TS)
      this.#lastTs = w.newestTs;
    this.#everConnected = true;
    this.#setState('replaying');
    this.#emit('connect', { epoch: w.epoch, server: w.server, since: this.#helloSince });
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
  }

  #onClose(socket: Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.#heartbeat?.cancel();
    clearTimer(this.#connectTimer);
    const reason = this.#fatal ?? new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the connection closed');
    this.#handler.dropped(reason);
    if (this.#state === 'closed') return;
    const wasConnected = this.#state === 'replaying' || this.#state === 'ready';
    if (wasConnected) this.#emit('disconnect', reason);
    if (this.#closing) {
      this.shutdown(closedError());
      return;
    }
    const first = !this.#everConnected;
    if (first && !this.#opts.waitOnFirstConnect) {
      // The first connect fails fast, with the reason, and leaves nothing running (as nats.js).
      this.shutdown(reason);
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
    this.#emit('reconnecting', { attempt: this.#attempt, delayMs: delay });
    // Ref'd: while it runs the client holds no socket, and a process whose only work is
    // this client must stay alive until it is back (STYLE.md, "Not this").
    this.#reconnectTimer = setTimer(() => this.#open(), delay);
  }
}
