import type { GossipError } from '@gossip/protocol';
import { EventEmitter } from 'eventemitter3';
import { type ClientMessage, type MessageSource, type ResyncInfo, type SyncedInfo, scopeOf } from './message-source.js';

export interface Entry<T> {
  value: T;
  ts: bigint;
}

export interface StateViewOptions {
  /** Apply transient (emitted) messages too. Default false: the view is the persisted state. */
  transient?: boolean;
  /**
   * Hold only the ids under this prefix (docs/PROTOCOL.md, B1; "" is every id). The
   * client must cover it (`client.covers(prefix)`: it holds "" or a prefix that starts
   * it), else the constructor throws GOSSIP_ERR_NOT_SUBSCRIBED: subscribe first.
   * Default: every id the client receives, whatever it subscribes to later.
   */
  prefix?: string;
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
 *
 * **Prefixes.** A resync of one prefix (B6) makes only the ids under it unknown: at that
 * prefix's snapshot end the view drops the ids under it that the snapshot did not hold,
 * and nothing else. A view with `prefix` holds the ids under it alone, follows the
 * resyncs and replays that overlap it (its `synced` comes at their ends), and a late one
 * catches up on that prefix only (`MessageSource.replay` with `prefix`). If the client
 * later drops every prefix that covers it, the view keeps what it holds, no longer updated.
 * A view without `prefix` follows whatever the client receives: when a client made
 * without prefixes drops "" (`unsubscribe('')`), it goes on with the ids that still come.
 */
export class GossipState<T> extends EventEmitter<StateViewEvents<T>> {
  readonly #map = new Map<string, Held<T>>();
  /** Tombstones seen: their ts keeps an older message from resurrecting the id. */
  readonly #deletedAt = new Map<string, bigint>();
  readonly #source: MessageSource<T>;
  readonly #transient: boolean;
  /** The ids it holds are under this; "" for every id. */
  readonly #prefix: string;
  #catchingUp = false;
  #stopCatchUp: (() => void) | undefined;
  /**
   * Bumped at each resync; entries written since carry the new value, so at the end of
   * the snapshot the entries with an older one are the ids it did not contain.
   */
  #gen = 0;
  /** Snapshots under way: the prefix their resync named ("" for R3's, every id) → the generation it began. */
  readonly #snapshots = new Map<string, number>();

  constructor(source: MessageSource<T>, options: StateViewOptions = {}) {
    super();
    this.#source = source;
    this.#transient = options.transient ?? false;
    this.#prefix = scopeOf(source, options.prefix, 'GossipState');
    source.on('message', this.#onMessage);
    source.on('resync', this.#onResync);
    source.on('synced', this.#onSynced);
    const state = source.state;
    if (state === 'replaying' || state === 'ready' || state === 'reconnecting') {
      // Made after the first replay began: ask for the state it missed.
      this.#catchingUp = true;
      const sink = {
        message: (m: ClientMessage<T>) => {
          if (this.#catchingUp) this.#onMessage(m);
        },
        done: () => {
          if (!this.#catchingUp) return;
          this.#catchingUp = false;
          this.#stopCatchUp = undefined;
          this.emit('synced');
        },
        failed: (error: GossipError) => {
          if (!this.#catchingUp) return;
          this.#catchingUp = false;
          this.#stopCatchUp = undefined;
          this.emit('error', error);
        },
      };
      const stop = this.#prefix === '' ? source.replay(sink) : source.replay(sink, { prefix: this.#prefix });
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

  readonly #onResync = (info: ResyncInfo): void => {
    const prefix = info.prefix ?? '';
    if (!overlap(prefix, this.#prefix)) return;
    // The client's own connection gets the snapshot now (R3, B6): when it covers the view
    // it holds everything a catch-up would bring, and its end drops what that lacks.
    if (this.#prefix.startsWith(prefix)) this.#stopCatchingUp();
    this.#gen++;
    this.#snapshots.set(prefix, this.#gen);
    // Deletes remembered from before may belong to another log: the snapshot is the truth now.
    if (prefix === '') this.#deletedAt.clear();
    else for (const id of this.#deletedAt.keys()) if (id.startsWith(prefix)) this.#deletedAt.delete(id);
  };

  readonly #onSynced = (info: SyncedInfo): void => {
    const prefix = info.prefix ?? '';
    const gen = info.snapshot ? this.#snapshots.get(prefix) : undefined;
    if (gen !== undefined) {
      this.#snapshots.delete(prefix);
      for (const [id, held] of this.#map) {
        // Deleting the current entry while iterating a Map is safe.
        if (held.gen < gen && id.startsWith(prefix)) {
          this.#map.delete(id);
          this.emit('change', id, undefined, { value: held.value, ts: held.ts });
        }
      }
    }
    // A view catching up is not whole at the client's replay-done: its own comes later.
    if (!this.#catchingUp && overlap(prefix, this.#prefix)) this.emit('synced');
  };

  /** The generation of the newest snapshot under way that holds `id`, if any. */
  #snapshotOf(id: string): number | undefined {
    let gen: number | undefined;
    for (const [prefix, g] of this.#snapshots) if (id.startsWith(prefix) && (gen === undefined || g > gen)) gen = g;
    return gen;
  }

  readonly #onMessage = (m: ClientMessage<T>): void => {
    if (m.transient && !this.#transient) return;
    if (this.#prefix !== '' && !m.id.startsWith(this.#prefix)) return;
    const held = this.#map.get(m.id);
    // The first word on an id after a resync is the truth, whatever its ts.
    const snapshot = this.#snapshots.size > 0 && !m.transient ? this.#snapshotOf(m.id) : undefined;
    const firstAfterResync = snapshot !== undefined && (held === undefined || held.gen < snapshot);
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

/** Whether the ids under `a` and those under `b` meet: one prefix starts the other. */
function overlap(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}
