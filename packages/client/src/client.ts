import {
  checkId,
  checkMessageTs,
  GossipError,
  MAX_PREFIX_FIELD_BYTES,
  type MessageFrame,
  now,
  type PrefixSpec,
} from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import { catchUp } from './catch-up.js';
import { bytesCodec, type Codec } from './codecs.js';
import { Connection, type ConnectionEvents } from './connection.js';
import { decodeMessage, type FetchResult, fetchResults } from './decode.js';
import { asInvalidArgument, closedError, notConnectedError } from './errors.js';
import type { ClientMessage, ClientState, MessageSource, ReplayOptions, ReplaySink } from './message-source.js';
import { MessageStream, type MessageStreamOptions } from './message-stream.js';
import { CLIENT_DEFAULTS, type ClientOptions, checkHelloOptions, checkSince } from './options.js';
import { Outbox, type PublishResult } from './outbox.js';
import { ReqIds } from './req-ids.js';
import {
  alreadySubscribedError,
  countRefusal,
  initialSince,
  notSubscribedError,
  type PrefixInfo,
  prefixRefusal,
  type SubscribeSince,
  Subscriptions,
} from './subscriptions.js';

export interface ClientEvents<T> extends ConnectionEvents {
  message: (message: ClientMessage<T>) => void;
}

/**
 * The reconnecting subscriber. It asks for a replay on every (re)connect from the last
 * persisted ts it saw minus a delta, queues publishes while disconnected, and emits
 * every message it receives; `GossipState` builds a live map from it.
 *
 * A façade: the connection's lifecycle is `Connection` (with its `Heartbeat`), what
 * waits for an answer is the `Outbox`, the prefixes of a client with prefixes are its
 * `Subscriptions` (held by the connection: a client made without them takes them at its
 * first `subscribe()` or `unsubscribe()`), values are decoded by `decode.ts`, and a late
 * view's replay is `catchUp`.
 */
export class GossipClient<T = Uint8Array> implements MessageSource<T> {
  readonly codec: Codec<T>;
  readonly #events = new EventEmitter<ClientEvents<T>>();
  readonly #opts: ClientOptions<T>;
  readonly #connection: Connection;
  readonly #outbox: Outbox;
  readonly #reqIds = new ReqIds();
  /** The since of a first replay, from the `since` option (R1, R4): a new prefix's default. */
  readonly #initialSince: bigint | null;
  /** The replays of views made late (`replay()`), stopped when the client closes. */
  readonly #replays = new Set<() => void>();

  constructor(options: ClientOptions<T> = {}) {
    checkHelloOptions(options);
    this.#opts = options;
    this.codec = options.codec ?? (bytesCodec as unknown as Codec<T>);
    const since = initialSince(options.since ?? CLIENT_DEFAULTS.since);
    this.#initialSince = since;
    const subscriptions =
      options.prefixes &&
      new Subscriptions(
        options.prefixes.map((prefix) => ({ prefix, since })),
        options.replayDeltaMs ?? CLIENT_DEFAULTS.replayDeltaMs,
        this.#reqIds,
      );
    this.#connection = new Connection(
      options,
      {
        opened: () => this.#outbox.opened(),
        message: (f) => this.#onMessage(f),
        ack: (f) => this.#outbox.ack(f),
        fetchResult: (f) => this.#outbox.fetchResult(f),
        dropped: (reason) => this.#outbox.dropped(reason),
        closed: (error) => {
          this.#outbox.closed(error);
          for (const stop of this.#replays) stop();
          this.#replays.clear();
        },
      },
      (event, ...args) => this.#fire(event, ...args),
      subscriptions,
    );
    this.#outbox = new Outbox(this.#connection, options, this.#reqIds);
  }

  get state(): ClientState {
    return this.#connection.state;
  }

  /**
   * Newest ts of a persisted message seen (or of the server's log while idle); null
   * before any. With prefixes, the greatest of the prefixes' own (`prefixes`).
   */
  get lastTs(): bigint | null {
    return this.#connection.lastTs;
  }

  /**
   * The prefixes the client holds, in the order added, each with its own `lastTs` and
   * whether its replay on the current connection is done; undefined for a client made
   * without `prefixes` that never called `subscribe()` or `unsubscribe()`: it holds the
   * one implicit prefix "" and receives every id.
   */
  get prefixes(): PrefixInfo[] | undefined {
    return this.#connection.subscriptions?.list();
  }

  /** The log identity of the server last connected to. */
  get epoch(): string | null {
    return this.#connection.epoch;
  }

  /** Publishes waiting for a connection. */
  get queued(): number {
    return this.#outbox.queued;
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
    return this.#connection.connect(options);
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
      return Promise.reject(asInvalidArgument(error));
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
    if (this.state === 'idle' && !this.#opts.queueBeforeConnect) throw notConnectedError();
    const connection = this.#connection;
    if (!connection.open) return false;
    connection.encoder.emit(0, id, options.ts ?? now(), data);
    connection.flush();
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
    if (this.state === 'idle' && !this.#opts.queueBeforeConnect) throw notConnectedError();
    await this.#connection.whenOpen(options.signal);
    if (options.signal?.aborted) throw fetchAborted(options.signal);
    const byId = await this.#outbox.fetch([...new Set(list)], options);
    return fetchResults(this.codec, list, byId);
  }

  /**
   * Every message as an async iterable, with a bounded buffer (GOSSIP_ERR_QUEUE_FULL if
   * the loop falls behind); with `prefix`, only the ids under it (the client must cover
   * it, see `covers`, else GOSSIP_ERR_NOT_SUBSCRIBED is thrown).
   */
  messages(options: MessageStreamOptions = {}): AsyncIterableIterator<ClientMessage<T>> {
    return new MessageStream<T>(this, options);
  }

  /**
   * Adds a prefix (docs/PROTOCOL.md, B3), and resolves once its replay is done (its
   * prefix-done, B5): from `since` ('all', 'now' or a ts; default the client's `since`),
   * later from its own last seen ts. Works before `connect()` and while reconnecting: the
   * prefix goes in the next hello (B2).
   * - Checked first: the prefix (GOSSIP_ERR_PREFIX_TOO_LONG past the welcome's
   *   `maxPrefixBytes`, GOSSIP_ERR_ID_NOT_UTF8), `since` (GOSSIP_ERR_INVALID_ARGUMENT),
   *   the welcome's `maxPrefixes` (GOSSIP_ERR_TOO_MANY_PREFIXES).
   * - A prefix already held: resolves once its current replay is done (at once if it is);
   *   with a `since` it rejects with GOSSIP_ERR_ALREADY_SUBSCRIBED (unsubscribe first to
   *   replay it again).
   * - Rejects with the code of the server's error ack, and the prefix is not held; with
   *   GOSSIP_ERR_PREFIXES_UNSUPPORTED when the server has no prefixes; with
   *   GOSSIP_ERR_ABORTED when `unsubscribe(prefix)` comes first; with
   *   GOSSIP_ERR_CLIENT_CLOSED (or the first connect's error) when the client closes.
   * A client made without `prefixes` holds the one prefix "" (every id). Its first
   * `subscribe()` or `unsubscribe()` that changes that (`subscribe('')` does not: it
   * resolves once the connection's replay is done) gives it prefixes: "", with its
   * `lastTs` and its replay, and the new one; GOSSIP_ERR_PREFIXES_UNSUPPORTED at once, and
   * it stays without, when the last welcome read announced none.
   */
  subscribe(prefix: string, options: { since?: SubscribeSince } = {}): Promise<void> {
    if (this.state === 'closed' || this.#connection.closing) return Promise.reject(closedError());
    const since = options.since;
    try {
      if (since !== undefined) checkSince(since, 'since');
    } catch (error) {
      return Promise.reject(error);
    }
    let subs = this.#connection.subscriptions;
    if (!subs) {
      const refused = this.#plainRefusal(prefix, since);
      if (refused) return refused;
      const scoped = this.#scope();
      if (scoped instanceof GossipError) return Promise.reject(scoped);
      subs = scoped;
    }
    return subs.subscribe(prefix, since === undefined ? undefined : initialSince(since), this.#initialSince);
  }

  /**
   * Drops a prefix (B4): from now on no message reaches the client for it alone.
   * Resolves at the server's ack, or at once when no connection holds it (before
   * `connect()`, while reconnecting). Rejects with GOSSIP_ERR_NOT_SUBSCRIBED for a prefix
   * the client does not hold. A `subscribe(prefix)` still waiting fails with
   * GOSSIP_ERR_ABORTED. On a client made without `prefixes`, `unsubscribe('')` stops
   * every id but those of the prefixes it subscribed, as `subscribe()` gives it prefixes
   * (GOSSIP_ERR_PREFIXES_UNSUPPORTED when the server has none).
   */
  unsubscribe(prefix: string): Promise<void> {
    if (this.state === 'closed' || this.#connection.closing) return Promise.reject(closedError());
    let subs = this.#connection.subscriptions;
    if (!subs) {
      if (prefix !== '') return Promise.reject(notSubscribedError(prefix));
      const scoped = this.#scope();
      if (scoped instanceof GossipError) return Promise.reject(scoped);
      subs = scoped;
    }
    return subs.unsubscribe(prefix);
  }

  /**
   * Whether every id under `prefix` reaches this client: when one of its prefixes starts
   * `prefix`, "" included (a client made without prefixes holds "" until it drops it). A
   * scoped `messages()` or `GossipState` needs it.
   */
  covers(prefix: string): boolean {
    return this.#connection.subscriptions?.covers(prefix) ?? true;
  }

  /**
   * Replays to `sink` alone, over one short-lived extra connection, what the first
   * replay covers (the full snapshot with `since` 'all'; nothing with 'now'): how a
   * `GossipState` made after `connect()` gets the state (see `catchUp`). With prefixes,
   * each prefix from the since of its first replay. With `prefix`, only the ids under
   * it: a hello naming just that prefix when the server has prefixes, else everything
   * (the view keeps what is under it). Returns a function that stops it; `close()`
   * stops it too.
   */
  replay(sink: ReplaySink<T>, options: ReplayOptions = {}): () => void {
    if (this.state === 'closed' || this.#connection.closing) {
      queueMicrotask(() => sink.failed(closedError()));
      return () => undefined;
    }
    const scope = options.prefix;
    let prefixes: PrefixSpec[] | undefined;
    const subs = this.#connection.subscriptions;
    if (subs) prefixes = subs.catchUpPrefixes(scope);
    else if (scope !== undefined && this.#connection.prefixesSupported) {
      const since = this.#initialSince;
      prefixes = since === null ? [] : [{ prefix: scope, since }];
    }
    const stop = catchUp(
      { ...this.#opts, address: this.#connection.addressesInTurn },
      this.codec,
      {
        message: (m) => sink.message(m),
        done: () => {
          this.#replays.delete(stop);
          sink.done();
        },
        failed: (error) => {
          this.#replays.delete(stop);
          sink.failed(error);
        },
      },
      (error) => this.#fire('error', error),
      prefixes,
    );
    this.#replays.add(stop);
    return () => {
      this.#replays.delete(stop);
      stop();
    };
  }

  /**
   * Stops reconnecting, waits (at most `timeoutMs`, default 5 000) for queued and
   * in-flight publishes to be acked, then closes. What is left fails with
   * GOSSIP_ERR_CLIENT_CLOSED.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return;
    this.#connection.beginClose();
    if (this.#connection.open && this.#outbox.busy) {
      await this.#outbox.settled(options.timeoutMs ?? CLIENT_DEFAULTS.closeTimeoutMs);
    }
    this.#connection.shutdown(closedError());
  }

  #fire<E extends keyof ClientEvents<T>>(event: E, ...args: Parameters<ClientEvents<T>[E]>): void {
    (this.#events.emit as (event: E, ...args: unknown[]) => boolean).call(this.#events, event, ...args);
  }

  #publish(id: string, data: Uint8Array, options: { ts?: bigint; signal?: AbortSignal }): Promise<PublishResult> {
    if (this.state === 'closed' || this.#connection.closing) return Promise.reject(closedError());
    if (this.state === 'idle' && !this.#opts.queueBeforeConnect) return Promise.reject(notConnectedError());
    return this.#outbox.publish(id, data, options);
  }

  /**
   * A client without prefixes takes them (docs/PROTOCOL.md, B1): from now on it holds ""
   * (where its replay stands, its `lastTs`) and what it subscribes, its hellos name them
   * (B2), and on an open connection it sends subscribe and unsubscribe frames (B3, B4).
   * GOSSIP_ERR_PREFIXES_UNSUPPORTED, and it stays without, when the last welcome read
   * announced none.
   */
  #scope(): Subscriptions | GossipError {
    return this.#connection.scope(
      new Subscriptions([], this.#opts.replayDeltaMs ?? CLIENT_DEFAULTS.replayDeltaMs, this.#reqIds),
    );
  }

  /**
   * What a subscribe on a client that holds only "" settles without taking prefixes: a
   * refusal of the checks `Subscriptions#subscribe` makes, or `subscribe('')`, which
   * changes nothing (it resolves once the connection's replay is done). Undefined: it
   * takes prefixes.
   */
  #plainRefusal(prefix: string, since: SubscribeSince | undefined): Promise<void> | undefined {
    const welcome = this.#connection.welcome;
    const refused =
      prefixRefusal(prefix, welcome?.maxPrefixBytes ?? MAX_PREFIX_FIELD_BYTES) ??
      (prefix === '' ? undefined : countRefusal(1, welcome?.maxPrefixes));
    if (refused) return Promise.reject(refused);
    if (prefix !== '') return undefined;
    if (since !== undefined) return Promise.reject(alreadySubscribedError(prefix));
    return this.#connection.whenReady();
  }

  #onMessage(f: MessageFrame): void {
    const m = decodeMessage(this.codec, f);
    if (m instanceof GossipError) this.#fire('error', m);
    else this.#fire('message', m);
  }
}

function fetchAborted(signal: AbortSignal): GossipError {
  return new GossipError('GOSSIP_ERR_ABORTED', 'fetch was aborted', { cause: signal.reason });
}
