import type { GossipError } from '@gossip/protocol';

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

/** A replay-done (docs/PROTOCOL.md, R2). */
export interface SyncedInfo {
  count: number;
  snapshot: boolean;
  newestTs: bigint;
}

/** A resync (docs/PROTOCOL.md, R3): what the source held may be stale; a full snapshot follows. */
export interface ResyncInfo {
  reason: 'horizon' | 'epoch' | 'full';
  horizon: bigint | null;
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
   * Replays to `sink` alone what the source's first replay covers, for a view made after
   * it began. Returns a function that stops it (nothing more reaches `sink`).
   */
  replay(sink: ReplaySink<T>): () => void;
}
