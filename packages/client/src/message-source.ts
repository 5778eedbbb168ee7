import { checkPrefix, GossipError, MAX_PREFIX_FIELD_BYTES, ResyncReason } from '@gossip/protocol';

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

/** A replay-done (docs/PROTOCOL.md, R2), or the prefix-done of one prefix (B5). */
export interface SyncedInfo {
  count: number;
  snapshot: boolean;
  newestTs: bigint;
  /** The prefix whose replay this ends (B5); absent for the replay of a client without prefixes (R2). */
  prefix?: string;
}

/**
 * A resync (docs/PROTOCOL.md, R3): what the source held may be stale; a full snapshot
 * follows. With `prefix` (B6), only what it held under that prefix, and the snapshot is
 * of that prefix.
 */
export interface ResyncInfo {
  /** Why (docs/PROTOCOL.md, R3); `unknown` for a reason a newer server added (open to new values). */
  reason: 'horizon' | 'epoch' | 'full' | 'unknown';
  horizon: bigint | null;
  /** The prefix whose replay cannot be trusted (B6); absent: every id (R3). */
  prefix?: string;
}

const RESYNC_NAMES: Readonly<Record<number, ResyncInfo['reason']>> = {
  [ResyncReason.Horizon]: 'horizon',
  [ResyncReason.Epoch]: 'epoch',
  [ResyncReason.Full]: 'full',
};

/** A resync frame's reason as `ResyncInfo` names it: `unknown` for one this version does not know. */
export function resyncName(reason: number): ResyncInfo['reason'] {
  return RESYNC_NAMES[reason] ?? 'unknown';
}

/** What a view asks a replay for. */
export interface ReplayOptions {
  /** Only the ids under this prefix (B1); absent: what the source receives. */
  prefix?: string;
}

/** The events a view of the stream follows. */
export interface MessageSourceEvents<T> {
  state: (state: ClientState, previous: ClientState) => void;
  synced: (info: SyncedInfo) => void;
  resync: (info: ResyncInfo) => void;
  message: (message: ClientMessage<T>) => void;
}

/** Where one replay asked for by a view goes; nothing of it reaches the source's `message` listeners. */
export interface ReplaySink<T> {
  message(message: ClientMessage<T>): void;
  /** The replay is whole: every message it holds went to `message`. */
  done(): void;
  /** The replay gave up (the source's `reconnect` strategy returned null); nothing more comes. */
  failed(error: GossipError): void;
}

/**
 * What `MessageStream` and `GossipState` need of a client: its messages and its replay
 * events, its state, and a way to ask for a replay of their own. `GossipClient`
 * implements it; a test can hand them anything else that does.
 */
export interface MessageSource<T> {
  readonly state: ClientState;
  on<E extends keyof MessageSourceEvents<T>>(event: E, listener: MessageSourceEvents<T>[E]): unknown;
  off<E extends keyof MessageSourceEvents<T>>(event: E, listener?: MessageSourceEvents<T>[E]): unknown;
  /**
   * Replays to `sink` alone what the source's first replay covers (with `prefix`: of the
   * ids under it), for a view made after it began. Returns a function that stops it
   * (nothing more reaches `sink`).
   */
  replay(sink: ReplaySink<T>, options?: ReplayOptions): () => void;
  /**
   * Whether every id under `prefix` reaches the source: a source without it is taken to
   * receive every id. A client with prefixes covers the ids under one of them (B1).
   */
  covers?(prefix: string): boolean;
}

/**
 * The prefix a scoped consumer keeps ("" for none), checked: a prefix (B1) that the
 * source covers, since a consumer of ids the source never receives would wait forever.
 * "" named as the prefix is every id, and checked too: a client that dropped it does not
 * cover it. No prefix is what the source receives, whatever that is, and never fails.
 */
export function scopeOf(source: MessageSource<unknown>, prefix: string | undefined, what: string): string {
  if (prefix === undefined) return '';
  checkPrefix(prefix, MAX_PREFIX_FIELD_BYTES);
  if (source.covers?.(prefix) === false) {
    throw new GossipError(
      'GOSSIP_ERR_NOT_SUBSCRIBED',
      `${what} of ${JSON.stringify(prefix)}: the client has no prefix that covers it; subscribe to it first (client.subscribe(${JSON.stringify(prefix)}) or the prefixes option)`,
    );
  }
  return prefix;
}
