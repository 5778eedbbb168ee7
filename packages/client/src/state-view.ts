import { EventEmitter } from 'eventemitter3';
import type { ClientMessage, GossipClient } from './client.js';

export interface Entry<T> {
  value: T;
  ts: bigint;
}

export interface StateViewOptions {
  /** Apply transient (emitted) messages too. Default false: the view is the persisted state. */
  transient?: boolean;
}

export interface StateViewEvents<T> {
  /** An id changed: its new entry (undefined when deleted) and the previous one. */
  change: (id: string, entry: Entry<T> | undefined, previous: Entry<T> | undefined) => void;
  /** A replay or snapshot was applied. */
  synced: () => void;
}

/**
 * A live map of the current persisted state, `id → { value, ts }`, kept by a client:
 * newest ts wins, a tombstone deletes, and after a resync the ids the snapshot did not
 * contain are dropped (docs/PROTOCOL.md, R3).
 */
export class GossipState<T> extends EventEmitter<StateViewEvents<T>> {
  readonly #map = new Map<string, Entry<T>>();
  /** Tombstones seen: their ts keeps an older message from resurrecting the id. */
  readonly #deletedAt = new Map<string, bigint>();
  readonly #client: GossipClient<T>;
  readonly #transient: boolean;
  /** Set while a snapshot is applied: ids it has sent. */
  #fresh: Set<string> | undefined;

  constructor(client: GossipClient<T>, options: StateViewOptions = {}) {
    super();
    this.#client = client;
    this.#transient = options.transient ?? false;
    client.on('message', this.#onMessage);
    client.on('resync', this.#onResync);
    client.on('synced', this.#onSynced);
  }

  get size(): number {
    return this.#map.size;
  }

  get(id: string): T | undefined {
    return this.#map.get(id)?.value;
  }

  entry(id: string): Entry<T> | undefined {
    return this.#map.get(id);
  }

  has(id: string): boolean {
    return this.#map.has(id);
  }

  keys(): IterableIterator<string> {
    return this.#map.keys();
  }

  entries(): IterableIterator<[string, Entry<T>]> {
    return this.#map.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, Entry<T>]> {
    return this.#map.entries();
  }

  /** A copy as a plain Map of values. */
  toMap(): Map<string, T> {
    return new Map([...this.#map].map(([k, e]) => [k, e.value]));
  }

  /** Stops following the client. */
  detach(): void {
    this.#client.off('message', this.#onMessage);
    this.#client.off('resync', this.#onResync);
    this.#client.off('synced', this.#onSynced);
  }

  readonly #onResync = (): void => {
    this.#fresh = new Set();
  };

  readonly #onSynced = (info: { snapshot: boolean }): void => {
    const fresh = this.#fresh;
    if (info.snapshot && fresh) {
      this.#fresh = undefined;
      for (const [id, entry] of [...this.#map]) {
        if (!fresh.has(id)) {
          this.#map.delete(id);
          this.emit('change', id, undefined, entry);
        }
      }
      for (const id of [...this.#deletedAt.keys()]) if (!fresh.has(id)) this.#deletedAt.delete(id);
    }
    this.emit('synced');
  };

  readonly #onMessage = (m: ClientMessage<T>): void => {
    if (m.transient && !this.#transient) return;
    const previous = this.#map.get(m.id);
    const fresh = this.#fresh;
    if (fresh && !fresh.has(m.id) && !m.transient) {
      // The first word on an id after a resync is the truth, whatever its ts.
      fresh.add(m.id);
    } else {
      const newest = previous?.ts ?? this.#deletedAt.get(m.id);
      if (newest !== undefined && m.ts <= newest) return;
    }
    if (m.deleted) {
      this.#deletedAt.set(m.id, m.ts);
      if (!previous) return;
      this.#map.delete(m.id);
      this.emit('change', m.id, undefined, previous);
      return;
    }
    this.#deletedAt.delete(m.id);
    const entry: Entry<T> = { value: m.value as T, ts: m.ts };
    this.#map.set(m.id, entry);
    this.emit('change', m.id, entry, previous);
  };
}
