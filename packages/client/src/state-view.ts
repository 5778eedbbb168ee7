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
/** An entry and the resync generation that last wrote it. */
interface Held<T> extends Entry<T> {
  gen: number;
}

export class GossipState<T> extends EventEmitter<StateViewEvents<T>> {
  readonly #map = new Map<string, Held<T>>();
  /** Tombstones seen: their ts keeps an older message from resurrecting the id. */
  readonly #deletedAt = new Map<string, bigint>();
  readonly #client: GossipClient<T>;
  readonly #transient: boolean;
  /**
   * Bumped at each resync; entries the snapshot writes carry the new value, so at its
   * end the entries with an older one are the ids it did not contain.
   */
  #gen = 0;
  #inSnapshot = false;

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
    const held = this.#map.get(id);
    return held && { value: held.value, ts: held.ts };
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
    this.#gen++;
    this.#inSnapshot = true;
    // Deletes remembered from before may belong to another log: the snapshot is the truth now.
    this.#deletedAt.clear();
  };

  readonly #onSynced = (info: { snapshot: boolean }): void => {
    if (info.snapshot && this.#inSnapshot) {
      this.#inSnapshot = false;
      const gen = this.#gen;
      for (const [id, held] of this.#map) {
        // Deleting the current entry while iterating a Map is safe.
        if (held.gen !== gen) {
          this.#map.delete(id);
          this.emit('change', id, undefined, { value: held.value, ts: held.ts });
        }
      }
    }
    this.emit('synced');
  };

  readonly #onMessage = (m: ClientMessage<T>): void => {
    if (m.transient && !this.#transient) return;
    const held = this.#map.get(m.id);
    // The first word on an id after a resync is the truth, whatever its ts.
    const firstAfterResync = this.#inSnapshot && !m.transient && held?.gen !== this.#gen;
    if (!firstAfterResync) {
      const newest = held?.ts ?? (this.#deletedAt.size > 0 ? this.#deletedAt.get(m.id) : undefined);
      if (newest !== undefined && m.ts <= newest) return;
    }
    const notify = this.listenerCount('change') > 0;
    const previous = notify && held ? { value: held.value, ts: held.ts } : undefined;
    if (m.deleted) {
      this.#deletedAt.set(m.id, m.ts);
      if (!held) return;
      this.#map.delete(m.id);
      if (notify) this.emit('change', m.id, undefined, previous);
      return;
    }
    if (this.#deletedAt.size > 0) this.#deletedAt.delete(m.id);
    const entry: Held<T> = { value: m.value as T, ts: m.ts, gen: this.#gen };
    this.#map.set(m.id, entry);
    if (notify) this.emit('change', m.id, { value: entry.value, ts: entry.ts }, previous);
  };
}
