import { GossipError } from '@gossip/protocol';
import { type ClientMessage, type ClientState, type MessageSource, scopeOf } from './message-source.js';
import { RingQueue } from './queue.js';

export interface MessageStreamOptions {
  /** Messages buffered while the loop is busy; past it the iteration fails with GOSSIP_ERR_QUEUE_FULL. Default 10 000. */
  bufferSize?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** Include transient (emitted) messages. Default true. */
  transient?: boolean;
  /**
   * Only the ids under this prefix (docs/PROTOCOL.md, B1; "" is every id). The source
   * must cover it (`covers`: the client holds "" or a prefix that starts it), else the
   * constructor throws GOSSIP_ERR_NOT_SUBSCRIBED. Default: every message of the source,
   * whatever it subscribes to later.
   */
  prefix?: string;
}

/**
 * `for await (const m of client.messages())`: messages in arrival order, buffered up to
 * a cap so a slow loop cannot grow memory without limit. It ends when the source (the
 * client) closes or the signal aborts.
 */
export class MessageStream<T> implements AsyncIterableIterator<ClientMessage<T>> {
  readonly #source: MessageSource<T>;
  readonly #buffer = new RingQueue<ClientMessage<T>>();
  readonly #cap: number;
  readonly #transient: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #prefix: string;
  #waiter: { resolve: (r: IteratorResult<ClientMessage<T>>) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  #done = false;

  constructor(source: MessageSource<T>, options: MessageStreamOptions) {
    this.#source = source;
    this.#cap = options.bufferSize ?? 10_000;
    this.#transient = options.transient ?? true;
    this.#signal = options.signal;
    this.#prefix = scopeOf(source, options.prefix, 'messages()');
    source.on('message', this.#onMessage);
    source.on('state', this.#onState);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (this.#signal?.aborted) this.#finish();
  }

  readonly #onMessage = (m: ClientMessage<T>): void => {
    if (this.#done || (m.transient && !this.#transient)) return;
    if (this.#prefix !== '' && !m.id.startsWith(this.#prefix)) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve({ value: m, done: false });
      return;
    }
    if (this.#buffer.size >= this.#cap) {
      this.#fail(
        new GossipError(
          'GOSSIP_ERR_QUEUE_FULL',
          `messages() buffered ${this.#cap} messages: the loop is too slow; raise bufferSize`,
        ),
      );
      return;
    }
    this.#buffer.push(m);
  };

  readonly #onState = (state: ClientState): void => {
    if (state === 'closed') this.#finish();
  };

  readonly #onAbort = (): void => this.#finish();

  next(): Promise<IteratorResult<ClientMessage<T>>> {
    const m = this.#buffer.shift();
    if (m) return Promise.resolve({ value: m, done: false });
    if (this.#error) return Promise.reject(this.#error);
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<ClientMessage<T>>> {
    this.#finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ClientMessage<T>> {
    return this;
  }

  #detach(): void {
    this.#source.off('message', this.#onMessage);
    this.#source.off('state', this.#onState);
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#detach();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }

  #fail(error: Error): void {
    this.#error = error;
    this.#done = true;
    this.#detach();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(error);
  }
}
