import type { GossipError } from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import type { ClientMessage, MessageSource } from './message-source.js';

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
  /**
   * A replay or snapshot was applied. A view made late emits it first when its
   * catch-up is done, not before: then it holds the state.
   */
  synced: () => void;
  /** The catch-up of a view made late gave up (the client's `reconnect` strategy returned null). */
  error: (error: GossipError) => void;
}

/** An entry and the resync generation that last wrote it. */
interface Held<T> extends Entry<T> {
  gen: number;
}

/**
 * A live map of the current persisted state, `id → { value, ts }`, kept by a client:
 * newest ts wins, a tombstone deletes, and after a resync the ids the snapshot did not
 * contain are dropped (docs/PROTOCOL.md, R3).
 *
 * Made before `connect()` (or while the client is still `connecting`), the view is
 * filled by the client's first replay. Made later, it has missed that replay, and
 * reconnects only replay what changed since: so it **catches up** by itself. It asks the
 * source for a replay of its own (`MessageSource.replay`): `GossipClient` opens one
 * short-lived extra connection that says hello as a new client (the client's `since`,
 * no epoch: with `since` 'all' a resync and the full snapshot, R3), feeds that replay to
 * this view alone, and closes it at its replay-done. Meanwhile live messages reach the
 * view from the client's connection, in any order with the snapshot's: both are applied
 * by newest ts per id, and a delete's ts is remembered, so a snapshot entry older than a
 * live delete or update does not win. The catch-up's end is the view's first `synced`
 * event (`catchingUp` is true until then); if it gives up, an `error` event. A resync on
 * the client's connection meanwhile stops it: that snapshot is the truth. It costs one
 * connection and one snapshot per late view, and nothing to a client without one. With
 * `since: 'now'` there is nothing to catch up: like the client, the view follows live
 * messages only.
 */
export class GossipState<T> extends EventEmitter<StateViewEvents<T>> {
  readonly #map = new Map<string, Held<T>>();
  /** Tombstones seen: their ts keeps an older message from resurrecting the id. */
  readonly #deletedAt = new Map<string, bigint>();
  readonly #source: MessageSource<T>;
  readonly #transient: boolean;
  #catchingUp = false;
  #stopCatchUp: (() => void) | undefined;
  /**
   * Bumped at each resync; entries the snapshot writes carry the new value, so at its
   * end the entries with an older one are the ids it did not contain.
   */
  #gen = 0;
  #inSnapshot = false;

  constructor(source: MessageSource<T>, options: StateViewOptions = {}) {
    super();
    this.#source = source;
    this.#transient = options.transient ?? false;
    source.on('message', this.#onMessage);
    source.on('resync', this.#onResync);
    source.on('synced', this.#onSynced);
    const state = source.state;
    if (state === 'replaying' || state === 'ready' || state === 'reconnecting') {
      // Made after the first replay began: ask for the state it missed.
      this.#catchingUp = true;
      const stop = source.replay({
        message: (m) => {
          if (this.#catchingUp) this.#onMessage(m);
        },
        done: () => {
          if (!this.#catchingUp) return;
          this.#catchingUp = false;
          this.#stopCatchUp = undefined;
          this.emit('synced');
        },
        failed: (error) => {
          if (!this.#catchingUp) return;
          this.#catchingUp = false;
          this.#stopCatchUp = undefined;
          this.emit('error', error);
        },
      });
      if (this.#catchingUp) this.#stopCatchUp = stop;
    }
  }

  /** Whether the view, made after the client's first replay began, is still getting the state it missed. */
  get catchingUp(): boolean {
    return this.#catchingUp;
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

  /** Stops following the client (and stops its catch-up). */
  detach(): void {
    this.#source.off('message', this.#onMessage);
    this.#source.off('resync', this.#onResync);
    this.#source.off('synced', this.#onSynced);
    this.#stopCatchingUp();
  }

  #stopCatchingUp(): void {
    this.#catchingUp = false;
    const stop = this.#stopCatchUp;
    this.#stopCatchUp = undefined;
    stop?.();
  }

  readonly #onResync = (): void => {
    // The client's own connection gets the full snapshot now (R3): it holds everything a
    // catch-up would bring, and its end drops what the catch-up brought that it lacks.
    this.#stopCatchingUp();
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
    // A view catching up is not whole at the client's replay-done: its own comes later.
    if (!this.#catchingUp) this.emit('synced');
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
