import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import {
  type AckFrame,
  AckStatus,
  checkId,
  checkMessageTs,
  DataTooLargeError,
  DEFAULT_MAX_FRAME_BYTES,
  Durability,
  errorFromCode,
  type FetchEntry,
  FRAME_OVERHEAD_BYTES,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  GossipError,
  MAX_FETCH_IDS,
  MAX_TS,
  MAX_WELCOME_FRAME_BYTES,
  MalformedFrameError,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
  ResyncReason,
  type WelcomeFrame,
} from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import { parseAddress } from './address.js';
import { exponentialBackoff, type ReconnectStrategy } from './backoff.js';
import { bytesCodec, type Codec } from './codecs.js';
import { MessageStream, type MessageStreamOptions } from './message-stream.js';
import { RingQueue } from './queue.js';
import { clearTimer, setTimer, setUnrefTimer, type Timer } from './timers.js';

export interface ClientOptions<T = Uint8Array> {
  /** `host:port`, `gossip://host:port` or `gossips://host:port` (TLS). Default `gossip://127.0.0.1:7420`. */
  address?: string;
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
   * Reconnects always resume from the last seen ts minus `replayDeltaMs`.
   */
  since?: 'all' | 'now' | bigint;
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

/**
 * The connection's state; changes emit `state`. `idle` until `connect()`; `connecting`
 * until the first welcome (also between attempts with `waitOnFirstConnect`); `closed`
 * after `close()`, a failed first connect, or a `reconnect` strategy that returned null.
 */
export type ClientState = 'idle' | 'connecting' | 'replaying' | 'ready' | 'reconnecting' | 'closed';

export interface ClientMessage<T> {
  id: string;
  ts: bigint;
  /** The decoded value; undefined for a tombstone. */
  value: T | undefined;
  /** The raw data: a view of the received bytes (copy it to keep it long). */
  data: Uint8Array;
  deleted: boolean;
  /** Sent by emit: not stored, never replayed. */
  transient: boolean;
  /** Part of a replay or snapshot. */
  replayed: boolean;
}

export interface PublishResult {
  status: 'accepted' | 'stale';
  durability: 'none' | 'written' | 'synced';
  ts: bigint;
  /** Sent again after a reconnect: if the first attempt was stored, this one reports `stale`. */
  retried: boolean;
}

export interface FetchResult<T> {
  id: string;
  found: boolean;
  ts?: bigint;
  value?: T;
  deleted?: boolean;
}

export interface ClientEvents<T> {
  state: (state: ClientState, previous: ClientState) => void;
  connect: (info: { epoch: string; server: string | undefined; since: bigint | null }) => void;
  disconnect: (reason: GossipError) => void;
  reconnecting: (info: { attempt: number; delayMs: number }) => void;
  synced: (info: { count: number; snapshot: boolean; newestTs: bigint }) => void;
  resync: (info: { reason: 'horizon' | 'epoch' | 'full'; horizon: bigint | null }) => void;
  message: (message: ClientMessage<T>) => void;
  error: (error: GossipError) => void;
}

interface PendingPublish {
  id: string;
  ts: bigint;
  data: Uint8Array;
  reqId: number;
  retried: boolean;
  timer: Timer | undefined;
  resolve: (r: PublishResult) => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface PendingFetch {
  entries: FetchEntry[];
  resolve: (entries: FetchEntry[]) => void;
  reject: (e: Error) => void;
}

const NS_PER_MS = 1_000_000n;
/** A fetch frame's bytes besides its ids: length, kind, reqId, count (docs/PROTOCOL.md, Q1). */
const FETCH_FIXED_BYTES = 4 + 1 + 4 + 2;
/** The first bytes a peer sends, kept to name what answered if it is not a gossip server. */
const HEAD_BYTES = 16;
const RESYNC_NAMES = {
  [ResyncReason.Horizon]: 'horizon',
  [ResyncReason.Epoch]: 'epoch',
  [ResyncReason.Full]: 'full',
} as const;
const DURABILITY = {
  [Durability.None]: 'none',
  [Durability.Written]: 'written',
  [Durability.Synced]: 'synced',
} as const;

/**
 * The reconnecting subscriber. It asks for a replay on every (re)connect from the last
 * persisted ts it saw minus a delta, queues publishes while disconnected, and emits
 * every message it receives; `GossipState` builds a live map from it.
 */
export class GossipClient<T = Uint8Array> {
  readonly codec: Codec<T>;
  readonly #events = new EventEmitter<ClientEvents<T>>();
  readonly #opts: ClientOptions<T>;
  readonly #address: ReturnType<typeof parseAddress>;
  readonly #reconnect: ReconnectStrategy;
  #state: ClientState = 'idle';
  #socket: Socket | undefined;
  #enc = new FrameEncoder();
  #writeScheduled = false;
  #epoch: string | null = null;
  #lastTs: bigint | null = null;
  /** The since the current connection's hello asked for: reported by the connect event. */
  #helloSince: bigint | null = null;
  #welcome: WelcomeFrame | undefined;
  #decoder: FrameDecoder | undefined;
  #nextReqId = 1;
  readonly #queue = new RingQueue<PendingPublish>();
  #queueBytes = 0;
  readonly #inflight = new Map<number, PendingPublish>();
  readonly #fetches = new Map<number, PendingFetch>();
  #attempt = 0;
  #everConnected = false;
  #reconnectTimer: Timer | undefined;
  #pingTimer: Timer | undefined;
  /** Whether anything came from the server since the last ping was sent. */
  #heard = false;
  #fatal: GossipError | undefined;
  #connecting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #connectTimer: Timer | undefined;
  #closing = false;
  /** Why the client closed: what a fetch waiting for a connection fails with. */
  #closeReason: GossipError | undefined;

  constructor(options: ClientOptions<T> = {}) {
    this.#opts = options;
    this.codec = options.codec ?? (bytesCodec as unknown as Codec<T>);
    this.#address = parseAddress(options.address ?? 'gossip://127.0.0.1:7420');
    this.#reconnect = options.reconnect ?? exponentialBackoff();
    checkHelloOptions(options);
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

  /** Publishes waiting for a connection. */
  get queued(): number {
    return this.#queue.size;
  }

  /**
   * Connects and resolves once the first replay is done. Rejects with a coded error and
   * then the client is `closed`; with `waitOnFirstConnect` it retries instead:
   * - the server's code from an error frame (GOSSIP_ERR_UNAUTHORIZED,
   *   GOSSIP_ERR_UNSUPPORTED_VERSION, GOSSIP_ERR_TOO_MANY_CONNECTIONS, …);
   * - GOSSIP_ERR_IO for a refused connection (or a socket error);
   * - GOSSIP_ERR_TIMEOUT when no welcome comes within `connectTimeoutMs`;
   * - GOSSIP_ERR_NOT_GOSSIP_SERVER when the peer answers with something else than a
   *   welcome or an error frame (an HTTP server, say), or sends a few bytes and closes;
   * - GOSSIP_ERR_MALFORMED_FRAME (the decoder's code) for a welcome that fails to decode;
   * - GOSSIP_ERR_CONNECTION_CLOSED when the peer closes without sending anything;
   * - GOSSIP_ERR_ABORTED when `signal` aborts.
   * From the first welcome on the client reconnects by itself, and keeps the process
   * alive until `close()`.
   */
  connect(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(closedError());
    if (this.#state !== 'idle')
      return Promise.reject(new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', `connect() while ${this.#state}`));
    return new Promise<void>((resolve, reject) => {
      const signal = options.signal;
      // An aborted connect is a failed one: the client closes and what waits fails with it.
      const onAbort = () =>
        this.#shutdown(new GossipError('GOSSIP_ERR_ABORTED', 'connect() was aborted', { cause: signal?.reason }));
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

  /**
   * Publishes a value under `id` with `ts` (default: `now()`, strictly increasing).
   * Resolves with the server's ack; while disconnected the publish waits in the
   * offline queue (GOSSIP_ERR_QUEUE_FULL past its caps). Before `connect()` it rejects
   * with GOSSIP_ERR_CONNECTION_CLOSED unless `queueBeforeConnect` is set. A `ts` is
   * checked before anything is queued: one that is not a bigint in the signed 64-bit
   * range is refused with GOSSIP_ERR_INVALID_ARGUMENT, -2^63 (`MIN_TS`, reserved by P4)
   * with GOSSIP_ERR_TS_RESERVED.
   */
  publish(id: string, value: T, options: { ts?: bigint; signal?: AbortSignal } = {}): Promise<PublishResult> {
    let data: Uint8Array;
    try {
      data = this.codec.encode(value);
      if (data.byteLength === 0) {
        throw new GossipError(
          'GOSSIP_ERR_INVALID_ARGUMENT',
          `the value of ${id} encodes to no bytes, which is a tombstone: use delete(id)`,
        );
      }
    } catch (error) {
      return Promise.reject(
        error instanceof GossipError
          ? error
          : new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', String(error), { cause: error }),
      );
    }
    return this.#publish(id, data, options);
  }

  /** Publishes a tombstone: `id` is deleted for every subscriber and in replay. `ts` as for `publish()`. */
  delete(id: string, options: { ts?: bigint; signal?: AbortSignal } = {}): Promise<PublishResult> {
    return this.#publish(id, new Uint8Array(0), options);
  }

  /**
   * Sends a transient message to the clients connected now: not stored, not acked,
   * never replayed, never changes what replay returns. Returns false (and sends
   * nothing) while disconnected; a refusal by the server comes as an `error` event.
   * Before `connect()` it throws GOSSIP_ERR_CONNECTION_CLOSED unless `queueBeforeConnect`
   * is set (then it returns false). A `ts` is checked as `publish()` checks it, and a bad
   * one throws (GOSSIP_ERR_INVALID_ARGUMENT, GOSSIP_ERR_TS_RESERVED).
   */
  emit(id: string, value: T, options: { ts?: bigint } = {}): boolean {
    checkId(id);
    if (options.ts !== undefined) checkMessageTs(options.ts, `the ts of ${id}`);
    const data = this.codec.encode(value);
    if (this.#state === 'idle' && !this.#opts.queueBeforeConnect) throw notConnectedError();
    if (!this.#socket || (this.#state !== 'replaying' && this.#state !== 'ready')) return false;
    this.#enc.emit(0, id, options.ts ?? now(), data);
    this.#scheduleWrite();
    return true;
  }

  on<E extends keyof ClientEvents<T>>(event: E, listener: ClientEvents<T>[E]): this {
    this.#events.on(event, listener as never);
    return this;
  }

  once<E extends keyof ClientEvents<T>>(event: E, listener: ClientEvents<T>[E]): this {
    this.#events.once(event, listener as never);
    return this;
  }

  off<E extends keyof ClientEvents<T>>(event: E, listener?: ClientEvents<T>[E]): this {
    this.#events.off(event, listener as never);
    return this;
  }

  listenerCount(event: keyof ClientEvents<T>): number {
    return this.#events.listenerCount(event);
  }

  #fire<E extends keyof ClientEvents<T>>(event: E, ...args: Parameters<ClientEvents<T>[E]>): void {
    (this.#events.emit as (event: E, ...args: unknown[]) => boolean).call(this.#events, event, ...args);
  }

  /**
   * The newest persisted message of each id, read by the server from its log: one
   * result per requested id, in the order asked, a repeated id answered each time it
   * is named, with a value decoded for each mention (repeats share no object). The
   * server answers each distinct id once (docs/PROTOCOL.md, Q2), so only distinct ids
   * are sent, cut into several fetches whose results are joined when they pass the
   * welcome's `maxFetchIds` or `maxFrameBytes` (Q1). Waits for a connection while
   * (re)connecting; before `connect()` only with `queueBeforeConnect`. Rejects with
   * GOSSIP_ERR_ABORTED at once for a signal already aborted, and with GOSSIP_ERR_DECODE
   * (the codec's error as `cause`) for a value the codec cannot decode.
   */
  async fetch(
    ids: string | string[],
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<FetchResult<T>[]> {
    const list = typeof ids === 'string' ? [ids] : ids;
    for (const id of list) checkId(id);
    if (options.signal?.aborted) throw fetchAborted(options.signal);
    await this.#whenConnected(options.signal);
    if (options.signal?.aborted) throw fetchAborted(options.signal);
    // Sent together: the server answers a connection's fetches in order, one at a time.
    const parts = this.#fetchParts([...new Set(list)]);
    const answers = await Promise.all(parts.map((part) => this.#fetchPart(part, options)));
    const byId = new Map<string, FetchEntry>();
    for (const entries of answers) for (const e of entries) if (!byId.has(e.id)) byId.set(e.id, e);
    return list.map((id): FetchResult<T> => {
      const e = byId.get(id);
      if (!e) throw new GossipError('GOSSIP_ERR_MALFORMED_FRAME', `the server's fetch result left out ${id}`);
      if (!e.found) return { id, found: false };
      const deleted = e.data.byteLength === 0;
      return { id, found: true, ts: e.ts, deleted, value: deleted ? undefined : this.#decodeFetched(e) };
    });
  }

  /**
   * Distinct ids cut into fetch frames the server takes (docs/PROTOCOL.md, Q1): at most
   * its `maxFetchIds` (and the u16 count) ids and at most its `maxFrameBytes` each. One
   * id always goes, whatever it costs: an id alone is at most 269 bytes.
   */
  #fetchParts(ids: string[]): string[][] {
    const maxIds = Math.min(this.#welcome?.maxFetchIds ?? MAX_FETCH_IDS, MAX_FETCH_IDS);
    const maxBytes = this.#welcome?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const parts: string[][] = [];
    let part: string[] = [];
    let bytes = FETCH_FIXED_BYTES;
    for (const id of ids) {
      const cost = 2 + Buffer.byteLength(id, 'utf8');
      if (part.length > 0 && (part.length >= maxIds || bytes + cost > maxBytes)) {
        parts.push(part);
        part = [];
        bytes = FETCH_FIXED_BYTES;
      }
      part.push(id);
      bytes += cost;
    }
    if (part.length > 0) parts.push(part);
    return parts;
  }

  /** A fetched value, decoded for one mention; a codec failure is GOSSIP_ERR_DECODE, as for messages. */
  #decodeFetched(e: FetchEntry & { found: true }): T {
    try {
      return this.codec.decode(e.data);
    } catch (error) {
      throw new GossipError(
        'GOSSIP_ERR_DECODE',
        `the ${this.codec.name} codec could not decode the fetched ${e.id} @ ${e.ts}`,
        { cause: error },
      );
    }
  }

  /** One fetch frame and its answer: the entries of its fetch-results, or its error ack. */
  #fetchPart(ids: string[], options: { signal?: AbortSignal; timeoutMs?: number }): Promise<FetchEntry[]> {
    const reqId = this.#nextReqId++;
    if (this.#nextReqId > 0xffffffff) this.#nextReqId = 1;
    return new Promise<FetchEntry[]>((resolve, reject) => {
      // Unref'd: a fetch is only sent on an open socket, which keeps the process alive;
      // a close rejects the fetch and clears this timer.
      const timer = setUnrefTimer(() => {
        this.#fetches.delete(reqId);
        reject(new GossipError('GOSSIP_ERR_TIMEOUT', `fetch got no answer within ${options.timeoutMs ?? 30_000} ms`));
      }, options.timeoutMs ?? 30_000);
      const onAbort = () => {
        this.#fetches.delete(reqId);
        clearTimer(timer);
        reject(new GossipError('GOSSIP_ERR_ABORTED', 'fetch was aborted'));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#fetches.set(reqId, {
        entries: [],
        resolve: (e) => {
          clearTimer(timer);
          options.signal?.removeEventListener('abort', onAbort);
          resolve(e);
        },
        reject: (e) => {
          clearTimer(timer);
          options.signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      this.#enc.fetch(reqId, ids);
      this.#scheduleWrite();
    });
  }

  /** Every message as an async iterable, with a bounded buffer (GOSSIP_ERR_QUEUE_FULL if the loop falls behind). */
  messages(options: MessageStreamOptions = {}): AsyncIterableIterator<ClientMessage<T>> {
    return new MessageStream<T>(this, options);
  }

  /**
   * Stops reconnecting, waits (at most `timeoutMs`, default 5 000) for queued and
   * in-flight publishes to be acked, then closes. What is left fails with
   * GOSSIP_ERR_CLIENT_CLOSED.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === 'closed') return;
    this.#closing = true;
    clearTimer(this.#reconnectTimer);
    const connected = this.#state === 'replaying' || this.#state === 'ready';
    if (connected && (this.#inflight.size > 0 || this.#queue.size > 0)) {
      await new Promise<void>((resolve) => {
        // Unref'd: it only waits while connected (the socket keeps the process alive); a
        // drop ends the wait at once.
        const timer = setUnrefTimer(resolve, options.timeoutMs ?? 5_000);
        const check = () => {
          if (this.#inflight.size === 0 && this.#queue.size === 0) {
            clearTimer(timer);
            resolve();
          } else if (this.#state !== 'replaying' && this.#state !== 'ready') {
            clearTimer(timer);
            resolve();
          } else {
            this.#idleWaiters.push(check);
          }
        };
        check();
      });
    }
    this.#shutdown(closedError());
  }

  #idleWaiters: (() => void)[] = [];

  /** Closes for good: no socket, no timer, nothing pending; what waits fails with `error`. */
  #shutdown(error: GossipError): void {
    clearTimer(this.#reconnectTimer);
    clearTimer(this.#pingTimer);
    clearTimer(this.#connectTimer);
    this.#closeReason ??= error;
    this.#setState('closed');
    this.#socket?.destroy();
    this.#socket = undefined;
    for (const p of this.#inflight.values()) this.#settle(p, error);
    this.#inflight.clear();
    for (const p of this.#queue.drain()) this.#settle(p, error);
    this.#queueBytes = 0;
    for (const f of this.#fetches.values()) f.reject(error);
    this.#fetches.clear();
    this.#connecting?.reject(error);
    this.#connecting = undefined;
  }

  // ---- publishing --------------------------------------------------------------

  #publish(id: string, data: Uint8Array, options: { ts?: bigint; signal?: AbortSignal }): Promise<PublishResult> {
    if (this.#state === 'closed' || this.#closing) return Promise.reject(closedError());
    if (this.#state === 'idle' && !this.#opts.queueBeforeConnect) return Promise.reject(notConnectedError());
    try {
      checkId(id);
      // Before anything is queued: a ts the encoder refuses must never reach #send.
      if (options.ts !== undefined) checkMessageTs(options.ts, `the ts of ${id}`);
      const max = this.#welcome?.maxDataBytes;
      if (max !== undefined && data.byteLength > max) {
        throw new DataTooLargeError(`data is ${data.byteLength} bytes, over the server's max-data of ${max}`);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (options.signal?.aborted) return Promise.reject(new GossipError('GOSSIP_ERR_ABORTED', 'publish was aborted'));
    const connected = this.#state === 'replaying' || this.#state === 'ready';
    if (!connected || this.#queue.size > 0) {
      const maxQueue = this.#opts.maxQueue ?? 10_000;
      const maxBytes = this.#opts.maxQueueBytes ?? 16 * 1024 * 1024;
      if (this.#queue.size >= maxQueue || this.#queueBytes + data.byteLength > maxBytes) {
        return Promise.reject(
          new GossipError(
            'GOSSIP_ERR_QUEUE_FULL',
            `the offline queue is full (${this.#queue.size} publishes, ${this.#queueBytes} bytes): raise maxQueue/maxQueueBytes or wait for the connection`,
          ),
        );
      }
    }
    return new Promise<PublishResult>((resolve, reject) => {
      const p: PendingPublish = {
        id,
        ts: options.ts ?? now(),
        data,
        reqId: 0,
        retried: false,
        timer: undefined,
        resolve,
        reject,
        signal: options.signal,
        onAbort: undefined,
      };
      if (options.signal) {
        p.onAbort = () => {
          // Only a publish not yet sent can be taken back.
          if (this.#queue.remove((q) => q === p).length > 0) {
            this.#queueBytes -= p.data.byteLength;
            reject(new GossipError('GOSSIP_ERR_ABORTED', 'publish was aborted before it was sent'));
          }
        };
        options.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      if (!connected || this.#queue.size > 0) {
        this.#queue.push(p);
        this.#queueBytes += data.byteLength;
        if (connected) this.#drainQueue();
      } else {
        this.#send(p);
      }
    });
  }

  #send(p: PendingPublish): void {
    const reqId = this.#nextReqId++;
    if (this.#nextReqId > 0xffffffff) this.#nextReqId = 1;
    // Encoded first, registered after: a publish the encoder refuses fails alone and
    // leaves nothing in flight (the encoder keeps nothing of a frame it refused).
    try {
      this.#enc.publish(reqId, p.id, p.ts, p.data);
    } catch (error) {
      this.#settle(
        p,
        error instanceof GossipError
          ? error
          : new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', String(error), { cause: error }),
      );
      return;
    }
    p.reqId = reqId;
    this.#inflight.set(reqId, p);
    const timeout = this.#opts.publishTimeoutMs ?? 30_000;
    // Unref'd: a sent publish is on an open socket, which keeps the process alive; a drop
    // clears this timer and queues the publish again.
    p.timer = setUnrefTimer(() => {
      this.#inflight.delete(p.reqId);
      this.#settle(p, new GossipError('GOSSIP_ERR_TIMEOUT', `publish of ${p.id} not acked within ${timeout} ms`));
    }, timeout);
    this.#scheduleWrite();
  }

  #drainQueue(): void {
    for (let p = this.#queue.shift(); p; p = this.#queue.shift()) {
      this.#queueBytes -= p.data.byteLength;
      this.#send(p);
    }
  }

  #settle(p: PendingPublish, outcome: PublishResult | Error): void {
    clearTimer(p.timer);
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
    if (this.#inflight.size === 0 && this.#queue.size === 0 && this.#idleWaiters.length > 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  #onAck(f: AckFrame): void {
    if (f.reqId === 0) {
      // An emit (which asked for no ack) was refused.
      this.#fire('error', errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
      return;
    }
    const fetch = this.#fetches.get(f.reqId);
    if (fetch) {
      this.#fetches.delete(f.reqId);
      fetch.reject(errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
      return;
    }
    const p = this.#inflight.get(f.reqId);
    if (!p) return;
    this.#inflight.delete(f.reqId);
    if (f.status === AckStatus.Error) {
      this.#settle(p, errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
    } else {
      this.#settle(p, {
        status: f.status === AckStatus.Accepted ? 'accepted' : 'stale',
        durability: DURABILITY[f.durability],
        ts: p.ts,
        retried: p.retried,
      });
    }
  }

  // ---- the connection ------------------------------------------------------------

  #setState(next: ClientState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#fire('state', next, prev);
  }

  #since(): bigint | null {
    if (this.#lastTs !== null) {
      const since = this.#lastTs - BigInt(Math.round(this.#opts.replayDeltaMs ?? 5_000)) * NS_PER_MS;
      return since < MIN_TS ? MIN_TS : since;
    }
    const initial = this.#opts.since ?? 'all';
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
          echo: this.#opts.echo ?? true,
          name: this.#opts.name,
          token: this.#opts.token,
        })
        .take();
    } catch (error) {
      this.#shutdown(
        error instanceof GossipError
          ? error
          : new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', String(error), { cause: error }),
      );
      return;
    }
    this.#helloSince = since;
    const { host, port, tls } = this.#address;
    const socket = tls
      ? tlsConnect({ host, port, servername: isIpLiteral(host) ? undefined : host, ...this.#opts.tls })
      : netConnect({ host, port });
    this.#socket = socket;
    socket.setNoDelay(true);
    // Until the welcome, only a welcome or an error frame can come, so nothing larger
    // than the largest welcome is accepted (an error frame that does not fit is no
    // reasonable error either): a peer that is not a gossip server (an HTTP
    // server's "HTTP/1.1 400", read as a 1.2 GB length) fails at once. #onWelcome raises it.
    const decoder = new FrameDecoder((f) => this.#onFrame(f), { maxFrameBytes: MAX_WELCOME_FRAME_BYTES });
    this.#decoder = decoder;
    // The first bytes the peer sent, copied, to name what answered if it is not a gossip server.
    let head = Buffer.alloc(0);
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write(hello));
    // Unref'd: it runs while the socket connects or waits for the welcome, and the
    // socket keeps the process alive; every close clears it.
    this.#connectTimer = setUnrefTimer(() => {
      this.#fatal ??= new GossipError(
        'GOSSIP_ERR_TIMEOUT',
        `no welcome from ${host}:${port} within ${this.#opts.connectTimeoutMs ?? 10_000} ms`,
      );
      socket.destroy();
    }, this.#opts.connectTimeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      this.#heard = true;
      if (!this.#welcome && head.length < HEAD_BYTES) {
        head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
      }
      try {
        decoder.push(chunk);
      } catch (error) {
        const e = error instanceof GossipError ? error : new GossipError('GOSSIP_ERR_MALFORMED_FRAME', String(error));
        // A welcome or an error frame that fails to decode keeps the decoder's code (F4).
        this.#fatal ??= this.#welcome || headedAsHandshakeAnswer(head) ? e : notGossipServer(host, port, head, e);
        socket.destroy();
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.#fatal ??= new GossipError('GOSSIP_ERR_IO', `${host}:${port}: ${error.code ?? error.message}`, {
        cause: error,
      });
    });
    socket.on('close', () => {
      if (socket === this.#socket && !this.#welcome && !this.#fatal && head.length > 0) {
        // Bytes, then a close before the welcome: the decoder holds part of a frame.
        try {
          decoder.end();
        } catch (error) {
          const e = error instanceof GossipError ? error : new MalformedFrameError(String(error));
          this.#fatal = headedAsHandshakeAnswer(head) ? e : notGossipServer(host, port, head, e);
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
        this.#onMessage(f);
        return;
      case FrameKind.Ack:
        this.#onAck(f);
        return;
      case FrameKind.ReplayDone: {
        if (f.newestTs !== MIN_TS && (this.#lastTs === null || f.newestTs > this.#lastTs)) this.#lastTs = f.newestTs;
        this.#setState('ready');
        this.#fire('synced', { count: f.count, snapshot: f.snapshot, newestTs: f.newestTs });
        this.#attempt = 0;
        const c = this.#connecting;
        this.#connecting = undefined;
        c?.resolve();
        return;
      }
      case FrameKind.Resync:
        // What was held may belong to another log or miss deletes: start over from the snapshot.
        this.#lastTs = null;
        this.#fire('resync', { reason: RESYNC_NAMES[f.reason], horizon: f.horizon });
        return;
      case FrameKind.FetchResult: {
        const pending = this.#fetches.get(f.reqId);
        if (!pending) return;
        for (const e of f.entries) {
          pending.entries.push(e.found ? { ...e, data: Buffer.from(e.data) } : e);
        }
        if (!f.more) {
          this.#fetches.delete(f.reqId);
          pending.resolve(pending.entries);
        }
        return;
      }
      case FrameKind.Pong:
        // While idle, the server's newest ts lets lastTs advance without trusting our clock.
        if (this.#state === 'ready' && f.newestTs !== MIN_TS && (this.#lastTs === null || f.newestTs > this.#lastTs)) {
          this.#lastTs = f.newestTs;
        }
        return;
      case FrameKind.Error:
        this.#fatal = errorFromCode(f.code, f.message);
        return;
      case FrameKind.Ping:
        this.#enc.pong(f.nonce, MIN_TS);
        this.#scheduleWrite();
        return;
      default:
        this.#fatal = new GossipError('GOSSIP_ERR_UNEXPECTED_FRAME', `the server sent frame kind ${f.kind}`);
        this.#socket?.destroy();
    }
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
    if (this.#lastTs === null && (this.#opts.since ?? 'all') === 'now' && w.newestTs !== MIN_TS)
      this.#lastTs = w.newestTs;
    this.#everConnected = true;
    this.#setState('replaying');
    this.#fire('connect', { epoch: w.epoch, server: w.server, since: this.#helloSince });
    this.#startPing(this.#opts.pingIntervalMs ?? w.pingIntervalMs ?? 15_000);
    this.#drainQueue();
  }

  #onMessage(f: MessageFrame): void {
    const transient = (f.flags & MessageFlags.Transient) !== 0;
    const replayed = (f.flags & MessageFlags.Replayed) !== 0;
    if (!transient && (this.#lastTs === null || f.ts > this.#lastTs)) this.#lastTs = f.ts;
    const deleted = f.data.byteLength === 0;
    let value: T | undefined;
    if (!deleted) {
      try {
        value = this.codec.decode(f.data);
      } catch (error) {
        this.#fire(
          'error',
          new GossipError('GOSSIP_ERR_DECODE', `the ${this.codec.name} codec could not decode ${f.id} @ ${f.ts}`, {
            cause: error,
          }),
        );
        return;
      }
    }
    this.#fire('message', { id: f.id, ts: f.ts, value, data: f.data, deleted, transient, replayed });
  }

  /**
   * Pings every interval; a tick that finds nothing heard since the previous tick's ping
   * drops the connection (K3): a ping unanswered for a whole interval, so at most two
   * intervals after the server was last heard.
   */
  #startPing(intervalMs: number): void {
    clearTimer(this.#pingTimer);
    if (intervalMs <= 0) return;
    let nonce = 1;
    let pinged = false;
    const tick = () => {
      const socket = this.#socket;
      if (!socket || (this.#state !== 'replaying' && this.#state !== 'ready')) return;
      if (pinged && !this.#heard) {
        this.#fatal ??= new GossipError(
          'GOSSIP_ERR_TIMEOUT',
          `nothing heard from the server for two ping intervals (${2 * intervalMs} ms): a ping went unanswered for ${intervalMs} ms`,
        );
        socket.destroy();
        return;
      }
      this.#heard = false;
      pinged = true;
      this.#enc.ping(nonce++);
      this.#scheduleWrite();
      this.#pingTimer = setUnrefTimer(tick, intervalMs);
    };
    // Unref'd: it only runs while connected, and the socket keeps the process alive.
    this.#pingTimer = setUnrefTimer(tick, intervalMs);
  }

  #scheduleWrite(): void {
    if (this.#writeScheduled) return;
    this.#writeScheduled = true;
    // Everything encoded in this synchronous run goes out in one write.
    queueMicrotask(() => {
      this.#writeScheduled = false;
      const socket = this.#socket;
      if (socket && !socket.destroyed && this.#enc.pendingBytes > 0) socket.write(this.#enc.take());
    });
  }

  async #whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.#state === 'replaying' || this.#state === 'ready') return;
    if (this.#state === 'closed') throw closedError();
    if (this.#state === 'idle' && !this.#opts.queueBeforeConnect) throw notConnectedError();
    await new Promise<void>((resolve, reject) => {
      const onState = (s: ClientState) => {
        if (s === 'replaying' || s === 'ready') {
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
        this.off('state', onState);
        signal?.removeEventListener('abort', onAbort);
      };
      this.on('state', onState);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #onClose(socket: Socket): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    clearTimer(this.#pingTimer);
    clearTimer(this.#connectTimer);
    const reason = this.#fatal ?? new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the connection closed');
    // Sent but not acked: send again after the reconnect, in their order, ahead of the queue.
    const inflight = [...this.#inflight.values()].sort((a, b) => a.reqId - b.reqId);
    this.#inflight.clear();
    const queued = this.#queue.drain();
    for (const p of inflight) {
      clearTimer(p.timer);
      p.retried = true;
      this.#queue.push(p);
      this.#queueBytes += p.data.byteLength;
    }
    for (const p of queued) this.#queue.push(p);
    for (const f of this.#fetches.values())
      f.reject(
        new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the connection closed during a fetch', { cause: reason }),
      );
    this.#fetches.clear();
    for (const w of this.#idleWaiters.splice(0)) w();
    if (this.#state === 'closed') return;
    const wasConnected = this.#state === 'replaying' || this.#state === 'ready';
    if (wasConnected) this.#fire('disconnect', reason);
    if (this.#closing) {
      this.#shutdown(closedError());
      return;
    }
    const first = !this.#everConnected;
    if (first && !this.#opts.waitOnFirstConnect) {
      // The first connect fails fast, with the reason, and leaves nothing running (as nats.js).
      this.#shutdown(reason);
      return;
    }
    if (this.#fatal && !wasConnected) this.#fire('error', this.#fatal);
    this.#attempt++;
    const delay = this.#reconnect(this.#attempt);
    if (delay === null && first) {
      // waitOnFirstConnect with a strategy that gave up: connect() fails with the last reason.
      this.#shutdown(reason);
      return;
    }
    if (delay === null) {
      this.#fire(
        'error',
        new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', `gave up reconnecting after ${this.#attempt - 1} attempts`, {
          cause: reason,
        }),
      );
      this.#shutdown(
        new GossipError('GOSSIP_ERR_CONNECTION_CLOSED', 'the client stopped reconnecting', { cause: reason }),
      );
      return;
    }
    this.#setState(first ? 'connecting' : 'reconnecting');
    this.#fire('reconnecting', { attempt: this.#attempt, delayMs: delay });
    // Ref'd: while it runs the client holds no socket, and a process whose only work is
    // this client must stay alive until it is back (STYLE.md, "Not this").
    this.#reconnectTimer = setTimer(() => this.#open(), delay);
  }
}

function closedError(): GossipError {
  return new GossipError('GOSSIP_ERR_CLIENT_CLOSED', 'the client is closed');
}

/**
 * Checks, once in the constructor, what goes into every hello (H1), so that encoding
 * one can never fail later: `since`, `replayDeltaMs` (it makes the since of a
 * reconnect), and `name` and `token`, whose extension must fit in 16 KiB.
 */
function checkHelloOptions(options: ClientOptions<unknown>): void {
  const since = options.since ?? 'all';
  if (typeof since === 'bigint') {
    if (since < MIN_TS || since > MAX_TS) throw invalidOption(`since ${since} is outside the signed 64-bit range`);
  } else if (since !== 'all' && since !== 'now') {
    throw invalidOption(`since must be 'all', 'now' or a bigint ts, got ${String(since)}`);
  }
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

function invalidOption(message: string, cause?: unknown): GossipError {
  return new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', message, cause === undefined ? undefined : { cause });
}

function fetchAborted(signal: AbortSignal): GossipError {
  return new GossipError('GOSSIP_ERR_ABORTED', 'fetch was aborted', { cause: signal.reason });
}

function notConnectedError(): GossipError {
  return new GossipError(
    'GOSSIP_ERR_CONNECTION_CLOSED',
    'not connected: call connect() first, or set queueBeforeConnect: true to wait for it',
  );
}

/**
 * Whether the first frame the peer sent is headed as a welcome or an error frame of a
 * length that fits before the welcome (F4): a gossip server's answer, even if it then
 * fails to decode.
 */
function headedAsHandshakeAnswer(head: Buffer): boolean {
  if (head.length < 5) return false;
  const length = head.readUInt32BE(0);
  const kind = head[4];
  return length >= 1 && length <= MAX_WELCOME_FRAME_BYTES && (kind === FrameKind.Welcome || kind === FrameKind.Error);
}

/** The peer answered the hello with something that is neither a welcome nor an error frame. */
function notGossipServer(host: string, port: number, head: Buffer, cause: GossipError): GossipError {
  const answered = head.length > 0 ? ` it answered ${describeBytes(head)},` : '';
  return new GossipError(
    'GOSSIP_ERR_NOT_GOSSIP_SERVER',
    `${host}:${port} is not a gossip server:${answered} not a welcome (docs/PROTOCOL.md, W1); check the address and port`,
    { cause },
  );
}

/** Bytes as quoted text when they are printable ASCII (an HTTP status line, say), else hex. */
function describeBytes(bytes: Buffer): string {
  if (bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0d || b === 0x0a || b === 0x09)) {
    return JSON.stringify(bytes.toString('latin1'));
  }
  return `bytes ${bytes.toString('hex').replace(/(..)(?!$)/g, '$1 ')}`;
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
