import type { Subscription } from './subscriptions.js';

/**
 * What a held entry costs beyond its bytes: the entry, its list of subscriptions, the
 * view of its copy and its places in its subscriptions' lists, for up to two of them. Counted with its bytes
 * against the outbound cap (E3), so that a run of tiny messages, each held on its own
 * (neighbours matched by other prefixes), cannot make the connection hold many times the
 * cap in memory.
 */
export const HELD_ENTRY_OVERHEAD = 256;

/**
 * What each prefix past the second that matched a held entry costs: its slot in the
 * entry's list and the entry's slot in its list (measured: about 21 bytes a prefix).
 * A message can match up to 257 prefixes of one connection (one per length of its id),
 * all still waiting to replay: without this, each such entry would hold about 5 KB
 * against the 256 counted, and a connection some 20 times the outbound cap.
 */
export const HELD_PREFIX_OVERHEAD = 24;

/** What an entry of `bytes` matched by `by` counts against the outbound cap. */
function cost(bytes: Buffer, by: readonly Subscription[] | undefined): number {
  const extra = by === undefined ? 0 : Math.max(0, by.length - 2);
  return bytes.length + HELD_ENTRY_OVERHEAD + extra * HELD_PREFIX_OVERHEAD;
}

/** Past this many let-go entries, and half the entries, the lists drop them. */
const COMPACT_AFTER = 64;

/**
 * A live message (or several in a row) held for the client while a replay runs (R1,
 * B5): `by` is the prefixes, still replaying, that matched it; undefined for a
 * connection that holds only the "" of its hello, whose messages all wait for that
 * one replay. `gone` once sent or dropped.
 */
interface Held {
  bytes: Buffer;
  by: Subscription[] | undefined;
  /** What it counts in `bytes` (`cost`). */
  cost: number;
  gone: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * A connection's held live messages, in order, and for each prefix still replaying the
 * ones it matched (docs/PROTOCOL.md, B5). A prefix's done or drop visits only its own
 * entries, not all that the connection holds: otherwise a client could hold many
 * messages under a stalled replay and make every subscribe and unsubscribe of another
 * prefix walk them all.
 */
export class HeldMessages {
  #entries: Held[] = [];
  readonly #bySub = new Map<Subscription, Held[]>();
  /** Entries of `#entries` sent or dropped, not yet taken out. */
  #gone = 0;
  #bytes = 0;

  /** What the held messages count against the outbound cap: their bytes and each entry's overhead. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Holds `bytes` (a copy the caller gives up) until one of `by` is done, or, when undefined, until `takeAll`. */
  hold(bytes: Buffer, by: Subscription[] | undefined): void {
    const h: Held = { bytes, by, cost: cost(bytes, by), gone: false };
    this.#entries.push(h);
    this.#bytes += h.cost;
    if (by !== undefined) for (const sub of by) this.#listOf(sub).push(h);
  }

  /** Hands every held message to `send`, in order, and holds nothing more. */
  takeAll(send: (bytes: Buffer) => void): void {
    for (const h of this.#entries) if (!h.gone) send(h.bytes);
    this.clear();
  }

  /** `sub`'s replay is done: the messages it matched go to `send`, in order. */
  release(sub: Subscription, send: (bytes: Buffer) => void): void {
    const list = this.#bySub.get(sub);
    if (list === undefined) return;
    this.#bySub.delete(sub);
    for (const h of list) {
      if (h.gone) continue;
      send(h.bytes);
      this.#forget(h);
    }
    this.#compact();
  }

  /** `sub` was dropped: messages only it matched go; those another prefix still replaying matched wait for that one. */
  drop(sub: Subscription): void {
    const list = this.#bySub.get(sub);
    if (list === undefined) return;
    this.#bySub.delete(sub);
    for (const h of list) {
      if (h.gone) continue;
      const by = (h.by as Subscription[]).filter((s) => s !== sub);
      if (by.length === 0) {
        this.#forget(h);
      } else {
        h.by = by;
        const now = cost(h.bytes, by);
        this.#bytes += now - h.cost;
        h.cost = now;
      }
    }
    this.#compact();
  }

  /** What was held for the whole broadcast is held for `sub` from now on (scope, B1). */
  adopt(sub: Subscription): void {
    for (const h of this.#entries) {
      if (h.gone || h.by !== undefined) continue;
      h.by = [sub];
      this.#listOf(sub).push(h);
    }
  }

  clear(): void {
    this.#entries = [];
    this.#bySub.clear();
    this.#gone = 0;
    this.#bytes = 0;
  }

  #listOf(sub: Subscription): Held[] {
    let list = this.#bySub.get(sub);
    if (list === undefined) {
      list = [];
      this.#bySub.set(sub, list);
    }
    return list;
  }

  #forget(h: Held): void {
    h.gone = true;
    this.#bytes -= h.cost;
    h.bytes = EMPTY;
    this.#gone++;
  }

  /** Takes out let-go entries once they are half of all: each is looked at a bounded number of times. */
  #compact(): void {
    if (this.#gone < COMPACT_AFTER || 2 * this.#gone < this.#entries.length) return;
    this.#entries = this.#entries.filter((h) => !h.gone);
    this.#gone = 0;
    for (const [sub, list] of this.#bySub) {
      const live = list.filter((h) => !h.gone);
      if (live.length === 0) this.#bySub.delete(sub);
      else this.#bySub.set(sub, live);
    }
  }
}
