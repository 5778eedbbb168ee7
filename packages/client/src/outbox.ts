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
  type FetchResultFrame,
  type FrameEncoder,
  GossipError,
  MAX_FETCH_IDS,
  now,
  type WelcomeFrame,
} from '@gossip/protocol';
import { CLIENT_DEFAULTS } from './options.js';
import { RingQueue } from './queue.js';
import { ReqIds } from './req-ids.js';
import { clearTimer, setUnrefTimer, type Timer } from './timers.js';

export interface PublishResult {
  status: 'accepted' | 'stale';
  /**
   * How far the write had got (docs/PROTOCOL.md, A3); `unknown` for a level a newer server
   * added that this client does not know (the field is open to new values).
   */
  durability: 'none' | 'written' | 'synced' | 'replicated' | 'unknown';
  ts: bigint;
  /** Sent again after a reconnect: if the first attempt was stored, this one reports `stale`. */
  retried: boolean;
}

/** What the outbox needs of the connection, and no more (as nats.js's parser sees a `Dispatcher`). */
export interface OutboxLink {
  /** Whether a connection is open (welcomed, its socket not closed): what is encoded now goes out. */
  readonly open: boolean;
  /** The open connection's welcome, with the server's limits; undefined until it has one. */
  readonly welcome: WelcomeFrame | undefined;
  /** The open connection's encoder: what is written to it goes out at the next `flush()`. */
  readonly encoder: FrameEncoder;
  flush(): void;
}

export interface OutboxOptions {
  maxQueue?: number;
  maxQueueBytes?: number;
  publishTimeoutMs?: number;
}

interface PendingPublish {
  id: string;
  ts: bigint;
  data: Uint8Array;
  reqId: number;
  retried: boolean;
  /** When it times out unacked (`Date.now()` ms); set when it is sent. */
  deadline: number;
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

/** A fetch frame's bytes besides its ids: length, kind, reqId, count (docs/PROTOCOL.md, Q1). */
const FETCH_FIXED_BYTES = 4 + 1 + 4 + 2;
const DURABILITY: Readonly<Record<number, PublishResult['durability']>> = {
  [Durability.None]: 'none',
  [Durability.Written]: 'written',
  [Durability.Synced]: 'synced',
  [Durability.Replicated]: 'replicated',
};

/**
 * Everything the client sends that waits for an answer: publishes (held in the offline
 * queue while no connection is open, capped; in flight until acked, sent again after a
 * reconnect) and fetches (cut to the server's limits, answers joined), matched to their
 * acks and fetch results by reqId (P3, A1, Q1–Q3).
 */
export class Outbox {
  readonly #link: OutboxLink;
  readonly #options: OutboxOptions;
  readonly #queue = new RingQueue<PendingPublish>();
  #queueBytes = 0;
  /** Sent and not yet acked, by reqId, in the order sent: their deadlines ascend. */
  readonly #inflight = new Map<number, PendingPublish>();
  /**
   * One timer for every publish in flight, due at the oldest one's deadline: a timer per
   * publish cost a `Timeout` object and a timer-list insert and removal per message.
   */
  #expiry: Timer | undefined;
  readonly #fetches = new Map<number, PendingFetch>();
  readonly #reqIds: ReqIds;
  /** `settled()` calls waiting for the queue and the publishes in flight to empty. */
  #idleWaiters: (() => void)[] = [];

  /** `reqIds`: shared with the other parts that send requests on the same connection. */
  constructor(link: OutboxLink, options: OutboxOptions, reqIds = new ReqIds()) {
    this.#link = link;
    this.#options = options;
    this.#reqIds = reqIds;
  }

  /** Publishes waiting for a connection. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Whether publishes are queued or in flight. */
  get busy(): boolean {
    return this.#inflight.size > 0 || this.#queue.size > 0;
  }

  /**
   * Sends a publish now, or queues it while no connection is open (or others wait ahead
   * of it). Checks first, before anything is queued: the id, the ts (a ts the encoder
   * refuses must never reach `#send`), the size against the welcome's `maxDataBytes`.
   */
  publish(id: string, data: Uint8Array, options: { ts?: bigint; signal?: AbortSignal }): Promise<PublishResult> {
    try {
      checkId(id);
      if (options.ts !== undefined) checkMessageTs(options.ts, `the ts of ${id}`);
      const max = this.#link.welcome?.maxDataBytes;
      if (max !== undefined && data.byteLength > max) {
        throw new DataTooLargeError(`data is ${data.byteLength} bytes, over the server's max-data of ${max}`);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (options.signal?.aborted) return Promise.reject(new GossipError('GOSSIP_ERR_ABORTED', 'publish was aborted'));
    const open = this.#link.open;
    if (!open || this.#queue.size > 0) {
      const maxQueue = this.#options.maxQueue ?? CLIENT_DEFAULTS.maxQueue;
      const maxBytes = this.#options.maxQueueBytes ?? CLIENT_DEFAULTS.maxQueueBytes;
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
        deadline: 0,
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
      if (!open || this.#queue.size > 0) {
        this.#queue.push(p);
        this.#queueBytes += data.byteLength;
        if (open) this.opened();
      } else {
        this.#send(p);
      }
    });
  }

  /**
   * The newest entry of each of `ids` (distinct), read by the server: sent on the open
   * connection as fetch frames the server takes, their answers joined by id.
   */
  async fetch(ids: string[], options: { signal?: AbortSignal; timeoutMs?: number }): Promise<Map<string, FetchEntry>> {
    // Sent together: the server answers a connection's fetches in order, one at a time.
    const answers = await Promise.all(this.#fetchParts(ids).map((part) => this.#fetchPart(part, options)));
    const byId = new Map<string, FetchEntry>();
    for (const entries of answers) for (const e of entries) if (!byId.has(e.id)) byId.set(e.id, e);
    return byId;
  }

  /** A connection opened: what the queue holds goes out, in order (retries first). */
  opened(): void {
    for (let p = this.#queue.shift(); p; p = this.#queue.shift()) {
      this.#queueBytes -= p.data.byteLength;
      this.#send(p);
    }
  }

  /** A fetch result: part or end of the answer to a fetch (Q2). */
  fetchResult(f: FetchResultFrame): void {
    const fetch = this.#fetches.get(f.reqId);
    if (!fetch) return;
    for (const e of f.entries) fetch.entries.push(e.found ? { ...e, data: Buffer.from(e.data) } : e);
    if (!f.more) {
      this.#fetches.delete(f.reqId);
      fetch.resolve(fetch.entries);
    }
  }

  /** An ack: the answer to a publish, or the error that ends a fetch (Q3). Not for reqId 0 (an emit's). */
  ack(f: AckFrame): void {
    const fetch = this.#fetches.get(f.reqId);
    if (fetch) {
      this.#fetches.delete(f.reqId);
      fetch.reject(errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
      return;
    }
    const p = this.#inflight.get(f.reqId);
    if (!p) return;
    this.#inflight.delete(f.reqId);
    if (this.#inflight.size === 0) this.#disarm();
    if (f.status === AckStatus.Error) {
      this.#settle(p, errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
    } else {
      this.#settle(p, {
        status: f.status === AckStatus.Accepted ? 'accepted' : 'stale',
        durability: DURABILITY[f.durability] ?? 'unknown',
        ts: p.ts,
        retried: p.retried,
      });
    }
  }

  /**
   * The connection dropped: publishes sent but not acked go back to the queue, ahead of
   * it and in their order, to be sent again (`retried`) after the reconnect; fetches fail.
   */
  dropped(reason: GossipError): void {
    const inflight = [...this.#inflight.values()].sort((a, b) => a.reqId - b.reqId);
    this.#inflight.clear();
    const queued = this.#queue.drain();
    this.#disarm();
    for (const p of inflight) {
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
  }

  /** The client closed for good: everything waiting fails with `error`. */
  closed(error: GossipError): void {
    const inflight = [...this.#inflight.values()];
    this.#inflight.clear();
    this.#disarm();
    for (const p of inflight) this.#settle(p, error);
    for (const p of this.#queue.drain()) this.#settle(p, error);
    this.#queueBytes = 0;
    for (const f of this.#fetches.values()) f.reject(error);
    this.#fetches.clear();
  }

  /**
   * Resolves once nothing is queued or in flight, the connection is no longer open, or
   * `timeoutMs` has passed: what `close()` waits for.
   */
  settled(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      // Unref'd: it only waits while connected (the socket keeps the process alive); a
      // drop ends the wait at once.
      const timer = setUnrefTimer(resolve, timeoutMs);
      const check = () => {
        if ((this.#inflight.size === 0 && this.#queue.size === 0) || !this.#link.open) {
          clearTimer(timer);
          resolve();
        } else {
          this.#idleWaiters.push(check);
        }
      };
      check();
    });
  }

  #reqId(): number {
    return this.#reqIds.next();
  }

  #send(p: PendingPublish): void {
    const reqId = this.#reqId();
    // Encoded first, registered after: a publish the encoder refuses fails alone and
    // leaves nothing in flight (the encoder keeps nothing of a frame it refused).
    try {
      this.#link.encoder.publish(reqId, p.id, p.ts, p.data);
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
    const timeout = this.#timeout();
    p.deadline = Date.now() + timeout;
    this.#inflight.set(reqId, p);
    if (this.#expiry === undefined) this.#arm(timeout);
    this.#link.flush();
  }

  #timeout(): number {
    return this.#options.publishTimeoutMs ?? CLIENT_DEFAULTS.publishTimeoutMs;
  }

  /**
   * Arms the expiry timer. Unref'd: publishes in flight are on an open socket, which keeps
   * the process alive; a drop disarms it and queues them again.
   */
  #arm(ms: number): void {
    this.#expiry = setUnrefTimer(() => this.#expire(), ms);
  }

  #disarm(): void {
    clearTimer(this.#expiry);
    this.#expiry = undefined;
  }

  /** Fails the publishes in flight whose deadline has come, oldest first; re-arms for the next. */
  #expire(): void {
    this.#expiry = undefined;
    const t = Date.now();
    for (const [reqId, p] of this.#inflight) {
      if (p.deadline > t) {
        this.#arm(p.deadline - t);
        return;
      }
      this.#inflight.delete(reqId);
      this.#settle(
        p,
        new GossipError('GOSSIP_ERR_TIMEOUT', `publish of ${p.id} not acked within ${this.#timeout()} ms`),
      );
    }
  }

  #settle(p: PendingPublish, outcome: PublishResult | Error): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
    if (this.#inflight.size === 0 && this.#queue.size === 0 && this.#idleWaiters.length > 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  /**
   * Distinct ids cut into fetch frames the server takes (docs/PROTOCOL.md, Q1): at most
   * its `maxFetchIds` (and the u16 count) ids and at most its `maxFrameBytes` each. One
   * id always goes, whatever it costs: an id alone is at most 269 bytes.
   */
  #fetchParts(ids: string[]): string[][] {
    const welcome = this.#link.welcome;
    const maxIds = Math.min(welcome?.maxFetchIds ?? MAX_FETCH_IDS, MAX_FETCH_IDS);
    const maxBytes = welcome?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
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

  /** One fetch frame and its answer: the entries of its fetch-results, or its error ack. */
  #fetchPart(ids: string[], options: { signal?: AbortSignal; timeoutMs?: number }): Promise<FetchEntry[]> {
    const reqId = this.#reqId();
    const timeoutMs = options.timeoutMs ?? CLIENT_DEFAULTS.fetchTimeoutMs;
    return new Promise<FetchEntry[]>((resolve, reject) => {
      // Unref'd: a fetch is only sent on an open socket, which keeps the process alive;
      // a close rejects the fetch and clears this timer.
      const timer = setUnrefTimer(() => {
        this.#fetches.delete(reqId);
        reject(new GossipError('GOSSIP_ERR_TIMEOUT', `fetch got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
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
      this.#link.encoder.fetch(reqId, ids);
      this.#link.flush();
    });
  }
}
