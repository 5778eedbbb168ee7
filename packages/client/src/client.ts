import { checkId, checkMessageTs, GossipError, type MessageFrame, now } from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import { catchUp } from './catch-up.js';
import { bytesCodec, type Codec } from './codecs.js';
import { Connection, type ConnectionEvents } from './connection.js';
import { decodeMessage, type FetchResult, fetchResults } from './decode.js';
import { asInvalidArgument, closedError, notConnectedError } from './errors.js';
import type { ClientMessage, ClientState, MessageSource, ReplaySink } from './message-source.js';
import { MessageStream, type MessageStreamOptions } from './message-stream.js';
import { CLIENT_DEFAULTS, type ClientOptions, checkHelloOptions } from './options.js';
import { Outbox, type PublishResult } from './outbox.js';

export interface ClientEvents<T> extends ConnectionEvents {
  message: (message: ClientMessage<T>) => void;
}

/**
 * The reconnecting subscriber. It asks for a replay on every (re)connect from the last
 * persisted ts it saw minus a delta, queues publishes while disconnected, and emits
 * every message it receives; `GossipState` builds a live map from it.
 *
 * A façade: the connection's lifecycle is `Connection` (with its `Heartbeat`), what
 * waits for an answer is the `Outbox`, values are decoded by `decode.ts`, and a late
 * view's replay is `catchUp`.
 */
export class GossipClient<T = Uint8Array> implements MessageSource<T> {
  readonly codec: Codec<T>;
  readonly #events = new EventEmitter<ClientEvents<T>>();
  readonly #opts: ClientOptions<T>;
  readonly #connection: Connection;
  readonly #outbox: Outbox;
  /** The replays of views made late (`replay()`), stopped when the client closes. */
  readonly #replays = new Set<() => void>();

  constructor(options: ClientOptions<T> = {}) {
    this.#opts = options;
    this.codec = options.codec ?? (bytesCodec as unknown as Codec<T>);
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
    );
    this.#outbox = new Outbox(this.#connection, options);
    checkHelloOptions(options);
  }

  get state(): ClientState {
    return this.#connection.state;
  }

  /** Newest ts of a persisted message seen (or of the server's log while idle); null before any. */
  get lastTs(): bigint | null {
    return this.#connection.lastTs;
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

  /** Every message as an async iterable, with a bounded buffer (GOSSIP_ERR_QUEUE_FULL if the loop falls behind). */
  messages(options: MessageStreamOptions = {}): AsyncIterableIterator<ClientMessage<T>> {
    return new MessageStream<T>(this, options);
  }

  /**
   * Replays to `sink` alone, over one short-lived extra connection, what the first
   * replay covers (the full snapshot with `since` 'all'; nothing with 'now'): how a
   * `GossipState` made after `connect()` gets the state (see `catchUp`). Returns a
   * function that stops it; `close()` stops it too.
   */
  replay(sink: ReplaySink<T>): () => void {
    if (this.state === 'closed' || this.#connection.closing) {
      queueMicrotask(() => sink.failed(closedError()));
      return () => undefined;
    }
    const stop = catchUp(
      this.#opts,
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

  #onMessage(f: MessageFrame): void {
    const m = decodeMessage(this.codec, f);
    if (m instanceof GossipError) this.#fire('error', m);
    else this.#fire('message', m);
  }
}

function fetchAborted(signal: AbortSignal): GossipError {
  return new GossipError('GOSSIP_ERR_ABORTED', 'fetch was aborted', { cause: signal.reason });
}
