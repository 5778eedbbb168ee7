import {
  type AckFrame,
  AckStatus,
  checkPrefix,
  errorFromCode,
  GossipError,
  MAX_PREFIX_FIELD_BYTES,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  type PrefixDoneFrame,
  type PrefixResyncFrame,
  type PrefixSpec,
  type ReplayDoneFrame,
  type ResyncFrame,
} from '@gossip/protocol';
import { type ResyncInfo, resyncName, type SyncedInfo } from './message-source.js';
import type { OutboxLink } from './outbox.js';
import type { ReqIds } from './req-ids.js';

/** Where a prefix's first replay starts: everything, live only, or from a ts. */
export type SubscribeSince = 'all' | 'now' | bigint;

/** A prefix the client holds, as `client.prefixes` reports it. */
export interface PrefixInfo {
  prefix: string;
  /** Newest ts of a persisted message seen under it (or of the server's log once replayed); null before any. */
  lastTs: bigint | null;
  /** Whether its replay on the current connection is done (its prefix-done was read, B5). */
  replayed: boolean;
}

/** What the subscriptions need of the connection to send on it. */
export interface SubscriptionsLink extends OutboxLink {
  /** The log identity of the last welcome: what a `since` taken from a `lastTs` belongs to (H4). */
  readonly epoch: string | null;
}

/** What the subscriptions tell the connection. */
export interface SubscriptionsEvents {
  /** A prefix's replay ended (its prefix-done). */
  synced(info: SyncedInfo): void;
  /** A prefix-resync: a snapshot of the prefix follows. */
  resync(info: ResyncInfo): void;
  /** Every replay the connection opened with is done (or was dropped): the connection is ready. */
  replayed(): void;
  /** A refusal nobody waits for: a prefix of the `prefixes` option the server refused. */
  error(error: GossipError): void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A prefix the client holds. */
interface Sub {
  readonly prefix: string;
  /** The since of its first replay: -2^63 for everything, null for live only. */
  readonly initial: bigint | null;
  /** Newest persisted ts seen under it, by the rules of B5; null before any (or after a resync). */
  lastTs: bigint | null;
  /** A replay of it ended, or a resync reset it: with no `lastTs` it resumes from -2^63 (R3). */
  started: boolean;
  /** Its replay on the current connection; undefined until it is asked on it. */
  replay: Replay | undefined;
  /** `subscribe()` calls waiting for its replay to end. */
  waiters: Waiter[];
}

/** One replay of a prefix asked on the current connection: in the hello, or by a subscribe. */
interface Replay {
  readonly sub: Sub;
  /**
   * The replay of "" asked by a hello that named no prefixes (B1): ended by a replay-done
   * and restarted by a resync (R2, R3), not by their prefix frames (B5, B6).
   */
  readonly plain: boolean;
  /** The server took it: a hello entry, or a subscribe acked. */
  accepted: boolean;
  done: boolean;
  /** Unsubscribed: whatever of it still comes is ignored. */
  gone: boolean;
}

/**
 * Where the one prefix "" of a client without prefixes stands when the client takes
 * prefixes (its first `subscribe()` or `unsubscribe()`): what `Subscriptions#holdAll` adopts.
 */
export interface PlainState {
  /** The since of its first replay (the client's `since`). */
  initial: bigint | null;
  lastTs: bigint | null;
  /** A replay-done or a resync was read on this log: with no `lastTs` it resumes from -2^63 (R3). */
  started: boolean;
  /**
   * Its replay on the current connection: none (no socket), asked by the hello and not
   * done (the welcome may not be read yet), or done (the replay-done was read).
   */
  replay: 'none' | 'running' | 'done';
  /** The limits of the welcome read on the current connection; undefined before it. */
  welcome: { maxPrefixes: number | undefined; maxPrefixBytes: number | undefined } | undefined;
}

type Request = { kind: 'subscribe'; replay: Replay } | { kind: 'unsubscribe'; prefix: string; waiter: Waiter };

const NS_PER_MS = 1_000_000n;
/** Bytes of `prefixes` in a hello's extension besides its entries: the key (fixstr of 8) and an array header of up to 5. */
const HELLO_PREFIXES_KEY_BYTES = 1 + 8 + 5;

/** The since of a first replay as the wire says it: -2^63 for 'all', none for 'now' (R1, R4). */
export function initialSince(since: SubscribeSince): bigint | null {
  if (typeof since === 'bigint') return since;
  return since === 'all' ? MIN_TS : null;
}

/** `replayDeltaMs` in ns: how far before a `lastTs` a reconnect replays from (R1). */
export function replayDeltaNs(replayDeltaMs: number): bigint {
  return BigInt(Math.round(replayDeltaMs)) * NS_PER_MS;
}

/** The since of a replay that resumes after `lastTs` (R1): `deltaNs` before it, no earlier than -2^63. */
export function resumeSince(lastTs: bigint, deltaNs: bigint): bigint {
  const since = lastTs - deltaNs;
  return since < MIN_TS ? MIN_TS : since;
}

/**
 * The prefixes of a client with prefixes (docs/PROTOCOL.md, "Subscriptions by prefix"):
 * the set it holds, each prefix with its own `lastTs` (B5), what every hello names
 * (B2), the subscribes and unsubscribes sent on the open connection and their acks
 * (B3, B4), and the replay of each prefix on the current connection, ended by its
 * prefix-done (B5) or restarted by a prefix-resync (B6).
 *
 * A prefix's `lastTs` rises only where R1's argument holds for it: from persisted
 * messages under it once its replay on the connection is done, from the messages of its
 * own replay (replays run one at a time, in the order asked, so a replayed message
 * belongs to the first replay not yet done), from its prefix-done's `newestTs`, and, once
 * that is read, from pongs (K2). A message of another prefix's replay, or a live one let
 * through by another prefix while this one still replays, says nothing of what this one
 * has seen. Every reconnect names every prefix with its own since, those whose replay had
 * not finished included (from the newest ts their replay had reached).
 *
 * A client made without prefixes gets them at its first `subscribe()` or `unsubscribe()`
 * (`holdAll`): its one prefix "" comes first, and while the connection it was asked on
 * lasts, that replay is the hello's (R1): a replay-done ends it and a resync restarts it
 * (R2, R3), not their prefix frames.
 */
export class Subscriptions {
  readonly #subs = new Map<string, Sub>();
  readonly #deltaNs: bigint;
  readonly #reqIds: ReqIds;
  #host: SubscriptionsLink | undefined;
  #events: SubscriptionsEvents | undefined;
  /** Replays asked on the current connection and not yet done, in the order asked: the server's order. */
  #queue: Replay[] = [];
  /** The replays the connection opened with and that are not yet done: ready when it empties. */
  readonly #barrier = new Set<Replay>();
  /** Whether the current connection is past its welcome. */
  #opened = false;
  /** Subscribes and unsubscribes sent and not yet acked, by reqId. */
  readonly #requests = new Map<number, Request>();
  /** Unsubscribes of prefixes the hello in flight names: sent once the welcome is read. */
  #unsubscribeAfterWelcome: { prefix: string; waiter: Waiter }[] = [];
  /** The limits of the last welcome (B1), to check a subscribe before the server does. */
  #maxPrefixes: number | undefined;
  #maxPrefixBytes = MAX_PREFIX_FIELD_BYTES;

  /** `prefixes`: what the first hello names, each with the since of its first replay. */
  constructor(prefixes: readonly { prefix: string; since: bigint | null }[], replayDeltaMs: number, reqIds: ReqIds) {
    this.#deltaNs = replayDeltaNs(replayDeltaMs);
    this.#reqIds = reqIds;
    for (const { prefix, since } of prefixes) this.#add(prefix, since);
  }

  /** The connection these prefixes ride on. */
  bind(link: SubscriptionsLink, events: SubscriptionsEvents): void {
    this.#host = link;
    this.#events = events;
  }

  /**
   * Takes over the one prefix "" of a connection whose hello named no prefixes (B1): the
   * first prefix, with its `lastTs` and the replay the hello asked for, which a
   * replay-done ends (R2). Called on an empty set, once bound, by the client's first
   * `subscribe()` or `unsubscribe()`; what is asked then goes as frames once a welcome
   * that announced prefixes is read (B3, B4), or in the next hello.
   */
  holdAll(plain: PlainState): void {
    const sub = this.#add('', plain.initial);
    sub.lastTs = plain.lastTs;
    sub.started = plain.started;
    let replay: Replay | undefined;
    if (plain.replay !== 'none') {
      replay = { sub, plain: true, accepted: true, done: plain.replay === 'done', gone: false };
      sub.replay = replay;
      // First in the server's order: the hello's, before any subscribe (B5).
      if (!replay.done) this.#queue.push(replay);
    }
    if (plain.welcome) {
      this.#opened = true;
      this.#maxPrefixes = plain.welcome.maxPrefixes;
      this.#maxPrefixBytes = plain.welcome.maxPrefixBytes ?? MAX_PREFIX_FIELD_BYTES;
      // The connection is `replaying` until it ends, as it was before.
      if (replay && !replay.done) this.#barrier.add(replay);
    }
  }

  /** Whether `prefix` is one of the prefixes. */
  holds(prefix: string): boolean {
    return this.#subs.has(prefix);
  }

  /** The greatest `lastTs` of any prefix; null before any. */
  get lastTs(): bigint | null {
    let newest: bigint | null = null;
    for (const sub of this.#subs.values())
      if (sub.lastTs !== null && (newest === null || sub.lastTs > newest)) newest = sub.lastTs;
    return newest;
  }

  list(): PrefixInfo[] {
    return [...this.#subs.values()].map((s) => ({
      prefix: s.prefix,
      lastTs: s.lastTs,
      replayed: s.replay?.done ?? false,
    }));
  }

  /** Whether every id under `prefix` reaches the client: one of its prefixes starts it. */
  covers(prefix: string): boolean {
    for (const sub of this.#subs.values()) if (prefix.startsWith(sub.prefix)) return true;
    return false;
  }

  /**
   * What a late view replays to hold what the client holds under `scope` (every prefix
   * without it), each with the since of its first replay; prefixes that started live
   * only have nothing to replay and are left out, and so are those that another prefix
   * replayed from as early or earlier covers (all of them, beside "" from -2^63).
   */
  catchUpPrefixes(scope: string | undefined): PrefixSpec[] {
    if (scope !== undefined) {
      // The earliest first replay among the prefixes that cover it.
      let since: bigint | undefined;
      for (const sub of this.#subs.values()) {
        if (!scope.startsWith(sub.prefix) || sub.initial === null) continue;
        if (since === undefined || sub.initial < since) since = sub.initial;
      }
      return since === undefined ? [] : [{ prefix: scope, since }];
    }
    const replayed = [...this.#subs.values()].filter((s) => s.initial !== null) as (Sub & { initial: bigint })[];
    const covered = (s: Sub & { initial: bigint }) =>
      replayed.some((o) => o !== s && s.prefix.startsWith(o.prefix) && o.initial <= s.initial);
    return replayed.filter((s) => !covered(s)).map((s) => ({ prefix: s.prefix, since: s.initial }));
  }

  /**
   * Adds `prefix` and resolves at its prefix-done (B5). See `GossipClient.subscribe` for
   * what it checks and when the prefix goes out.
   */
  subscribe(prefix: string, since: bigint | null | undefined, defaultSince: bigint | null): Promise<void> {
    const prefixRefused = prefixRefusal(prefix, this.#maxPrefixBytes);
    if (prefixRefused) return Promise.reject(prefixRefused);
    const held = this.#subs.get(prefix);
    if (held) {
      if (since !== undefined) return Promise.reject(alreadySubscribedError(prefix));
      if (held.replay?.done) return Promise.resolve();
      return new Promise((resolve, reject) => held.waiters.push({ resolve, reject }));
    }
    const countRefused = countRefusal(this.#subs.size, this.#maxPrefixes);
    if (countRefused) return Promise.reject(countRefused);
    const sub = this.#add(prefix, since === undefined ? defaultSince : since);
    const done = new Promise<void>((resolve, reject) => sub.waiters.push({ resolve, reject }));
    // Open: now. Else the next hello names it, or, with a hello already in flight, a
    // subscribe goes once its welcome is read (`opened`).
    if (this.#opened && this.#host?.open) this.#sendSubscribe(sub);
    return done;
  }

  /** Drops `prefix`; resolves at its ack, or at once when no connection asked for it. */
  unsubscribe(prefix: string): Promise<void> {
    const sub = this.#subs.get(prefix);
    if (!sub) return Promise.reject(notSubscribedError(prefix));
    this.#subs.delete(prefix);
    const aborted = new GossipError(
      'GOSSIP_ERR_ABORTED',
      `${JSON.stringify(prefix)} was unsubscribed before its replay was done`,
    );
    for (const w of sub.waiters.splice(0)) w.reject(aborted);
    const replay = sub.replay;
    sub.replay = undefined;
    if (!replay) return Promise.resolve();
    replay.gone = true;
    this.#leaveBarrier(replay);
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.#opened && this.#host?.open) this.#sendUnsubscribe(prefix, waiter);
      else this.#unsubscribeAfterWelcome.push({ prefix, waiter });
    });
  }

  /**
   * The `prefixes` of the next hello (B2): every prefix, in the order added, each with
   * its own since, as many as fit in `budget` bytes of the hello's extension; the rest
   * go as subscribes, in order, once the welcome is read (B3).
   */
  helloPrefixes(extensionBudget: number): PrefixSpec[] {
    const entries: PrefixSpec[] = [];
    let left = extensionBudget - HELLO_PREFIXES_KEY_BYTES;
    for (const sub of this.#subs.values()) {
      const since = this.#since(sub);
      const cost = entryBytes(sub.prefix, since);
      if (cost > left) break;
      left -= cost;
      entries.push({ prefix: sub.prefix, since });
      this.#ask(sub, true);
    }
    return entries;
  }

  /** The welcome was read (and announced prefixes): what waited for it goes out. */
  opened(maxPrefixes: number | undefined, maxPrefixBytes: number | undefined): void {
    this.#opened = true;
    this.#maxPrefixes = maxPrefixes;
    this.#maxPrefixBytes = maxPrefixBytes ?? MAX_PREFIX_FIELD_BYTES;
    for (const { prefix, waiter } of this.#unsubscribeAfterWelcome.splice(0)) this.#sendUnsubscribe(prefix, waiter);
    for (const sub of this.#subs.values()) if (!sub.replay) this.#sendSubscribe(sub);
    for (const r of this.#queue) if (!r.gone) this.#barrier.add(r);
    if (this.#barrier.size === 0) this.#events?.replayed();
  }

  /**
   * A message frame: whether it is under one of the prefixes (a frame sent before an
   * unsubscribe was acked may not be), after the `lastTs` it moves have taken it in.
   */
  message(f: MessageFrame): boolean {
    const persisted = (f.flags & MessageFlags.Transient) === 0;
    let under = false;
    for (const sub of this.#subs.values()) {
      if (!f.id.startsWith(sub.prefix)) continue;
      under = true;
      // A transient message moves no lastTs: the first prefix over it is enough.
      if (!persisted) break;
      if (sub.replay?.done) raise(sub, f.ts);
    }
    if (persisted && (f.flags & MessageFlags.Replayed) !== 0) {
      // Of the first replay not yet done, if it is under its prefix (B5).
      const head = this.#queue[0];
      if (head?.accepted && !head.gone && f.id.startsWith(head.sub.prefix)) raise(head.sub, f.ts);
    }
    return under;
  }

  prefixDone(f: PrefixDoneFrame): void {
    const i = this.#queue.findIndex((r) => !r.plain && r.sub.prefix === f.prefix);
    if (i >= 0) this.#ended(i, f, { count: f.count, snapshot: f.snapshot, newestTs: f.newestTs, prefix: f.prefix });
  }

  /**
   * A replay-done: the end of the replay of "" a hello without prefixes asked for (R2),
   * on a connection that took prefixes since. False when none was asked: the frame does
   * not belong on this connection (B1).
   */
  replayDone(f: ReplayDoneFrame): boolean {
    const i = this.#queue.findIndex((r) => r.plain);
    if (i < 0) return false;
    this.#ended(i, f, { count: f.count, snapshot: f.snapshot, newestTs: f.newestTs });
    return true;
  }

  prefixResync(f: PrefixResyncFrame): void {
    const replay = this.#queue.find((r) => !r.plain && r.sub.prefix === f.prefix);
    if (replay) this.#resync(replay, { reason: resyncName(f.reason), horizon: f.horizon, prefix: f.prefix });
  }

  /** A resync of the replay of "" a hello without prefixes asked for (R3); false as `replayDone`. */
  resync(f: ResyncFrame): boolean {
    const replay = this.#queue.find((r) => r.plain);
    if (!replay) return false;
    this.#resync(replay, { reason: resyncName(f.reason), horizon: f.horizon });
    return true;
  }

  /** An ack; false when its reqId is not a subscribe's or an unsubscribe's. */
  ack(f: AckFrame): boolean {
    const request = this.#requests.get(f.reqId);
    if (!request) return false;
    this.#requests.delete(f.reqId);
    const refused = f.status === AckStatus.Error;
    if (request.kind === 'unsubscribe') {
      const i = this.#queue.findIndex((r) => r.gone && r.sub.prefix === request.prefix);
      if (i >= 0) this.#queue.splice(i, 1);
      // Not held by the server (its subscribe was refused, say) is what was asked for.
      if (!refused || f.code === 'GOSSIP_ERR_NOT_SUBSCRIBED') request.waiter.resolve();
      else request.waiter.reject(errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message));
      return true;
    }
    const replay = request.replay;
    if (!refused) {
      replay.accepted = true;
      return true;
    }
    // Refused: the prefix leaves the set, as if never subscribed (B3).
    const i = this.#queue.indexOf(replay);
    if (i >= 0) this.#queue.splice(i, 1);
    const sub = replay.sub;
    const error = errorFromCode(f.code ?? 'GOSSIP_ERR_UNKNOWN', f.message);
    if (this.#subs.get(sub.prefix) === sub) this.#subs.delete(sub.prefix);
    sub.replay = undefined;
    const waiters = sub.waiters.splice(0);
    this.#leaveBarrier(replay);
    if (waiters.length === 0 && !replay.gone) this.#events?.error(error);
    for (const w of waiters) w.reject(error);
    return true;
  }

  /** A pong's newest ts: every prefix whose replay is done has seen all up to it (K2). */
  pong(newestTs: bigint): void {
    if (newestTs === MIN_TS) return;
    for (const sub of this.#subs.values()) if (sub.replay?.done) raise(sub, newestTs);
  }

  /** The welcome names another log: the ts seen belong to the old one (H4). */
  epochChanged(): void {
    for (const sub of this.#subs.values()) {
      sub.lastTs = null;
      sub.started = false;
    }
  }

  /**
   * The server has no prefixes (B1): the `subscribe()` calls waiting fail with `error`,
   * and their prefixes leave the set; those of the `prefixes` option stay.
   */
  unsupported(error: GossipError): void {
    for (const sub of [...this.#subs.values()]) {
      if (sub.waiters.length === 0) continue;
      this.#subs.delete(sub.prefix);
      for (const w of sub.waiters.splice(0)) w.reject(error);
    }
  }

  /**
   * The connection closed: nothing asked on it holds any more. Subscribes wait for the
   * next one, which names every prefix again; unsubscribes are done, as it will not.
   */
  dropped(): void {
    this.#opened = false;
    for (const sub of this.#subs.values()) sub.replay = undefined;
    this.#queue = [];
    this.#barrier.clear();
    for (const request of this.#requests.values()) if (request.kind === 'unsubscribe') request.waiter.resolve();
    this.#requests.clear();
    for (const { waiter } of this.#unsubscribeAfterWelcome.splice(0)) waiter.resolve();
  }

  /** Closed for good: every `subscribe()` and `unsubscribe()` waiting fails with `error`. */
  closed(error: GossipError): void {
    const unsubscribes = [...this.#requests.values()].flatMap((r) => (r.kind === 'unsubscribe' ? [r.waiter] : []));
    unsubscribes.push(...this.#unsubscribeAfterWelcome.splice(0).map((u) => u.waiter));
    this.#requests.clear();
    this.dropped();
    for (const w of unsubscribes) w.reject(error);
    for (const sub of this.#subs.values()) for (const w of sub.waiters.splice(0)) w.reject(error);
  }

  /**
   * The client goes back to no prefixes (a server without them, B1): every `subscribe()`
   * and `unsubscribe()` waiting fails with `error`, and nothing of this set is used again.
   * Returns where "" stood, for the client to go on from.
   */
  abandon(error: GossipError): { lastTs: bigint | null; started: boolean } {
    const root = this.#subs.get('');
    const plain = { lastTs: root?.lastTs ?? null, started: root?.started ?? false };
    const waiters = [...this.#requests.values()].flatMap((r) => (r.kind === 'unsubscribe' ? [r.waiter] : []));
    waiters.push(...this.#unsubscribeAfterWelcome.splice(0).map((u) => u.waiter));
    for (const sub of this.#subs.values()) waiters.push(...sub.waiters.splice(0));
    this.#requests.clear();
    this.#subs.clear();
    this.dropped();
    for (const w of waiters) w.reject(error);
    return plain;
  }

  /** The replay at `i` of the queue ended (R2, B5): `info` is its `synced` event. */
  #ended(i: number, f: { newestTs: bigint }, info: SyncedInfo): void {
    const replay = this.#queue[i] as Replay;
    this.#queue.splice(i, 1);
    if (replay.gone) return;
    replay.done = true;
    replay.accepted = true;
    const sub = replay.sub;
    if (f.newestTs !== MIN_TS) raise(sub, f.newestTs);
    sub.started = true;
    const waiters = sub.waiters.splice(0);
    const events = this.#events;
    this.#leaveBarrier(replay);
    events?.synced(info);
    for (const w of waiters) w.resolve();
  }

  #resync(replay: Replay, info: ResyncInfo): void {
    if (replay.gone) return;
    // What was held under it may belong to another log or miss deletes: it starts over
    // from the snapshot, and a reconnect before its end replays it all (R3, B6).
    replay.sub.lastTs = null;
    replay.sub.started = true;
    this.#events?.resync(info);
  }

  #add(prefix: string, initial: bigint | null): Sub {
    const sub: Sub = { prefix, initial, lastTs: null, started: false, replay: undefined, waiters: [] };
    this.#subs.set(prefix, sub);
    return sub;
  }

  /** The since of a prefix's next replay: its `lastTs` minus the delta (R1), else where it starts. */
  #since(sub: Sub): bigint | null {
    if (sub.lastTs !== null) return resumeSince(sub.lastTs, this.#deltaNs);
    return sub.started ? MIN_TS : sub.initial;
  }

  /** A replay of `sub` asked on the current connection: `accepted` for a hello entry. */
  #ask(sub: Sub, accepted: boolean): Replay {
    const replay: Replay = { sub, plain: false, accepted, done: false, gone: false };
    sub.replay = replay;
    this.#queue.push(replay);
    return replay;
  }

  #sendSubscribe(sub: Sub): void {
    const host = this.#host as SubscriptionsLink;
    const reqId = this.#reqIds.next();
    const since = this.#since(sub);
    // A since from lastTs was taken on the current log; a first replay's is nobody's: with
    // -2^63 and no epoch the server sends a snapshot (R3, full), as to a new client's hello.
    const epoch = sub.lastTs !== null || sub.started ? host.epoch : null;
    host.encoder.subscribe(reqId, sub.prefix, since, epoch);
    this.#requests.set(reqId, { kind: 'subscribe', replay: this.#ask(sub, false) });
    host.flush();
  }

  #sendUnsubscribe(prefix: string, waiter: Waiter): void {
    const host = this.#host as SubscriptionsLink;
    const reqId = this.#reqIds.next();
    host.encoder.unsubscribe(reqId, prefix);
    this.#requests.set(reqId, { kind: 'unsubscribe', prefix, waiter });
    host.flush();
  }

  #leaveBarrier(replay: Replay): void {
    if (this.#barrier.delete(replay) && this.#barrier.size === 0 && this.#opened) this.#events?.replayed();
  }
}

/** Why `prefix` cannot be subscribed on a server that takes `maxBytes` (B1), or undefined. */
export function prefixRefusal(prefix: string, maxBytes: number): GossipError | undefined {
  try {
    checkPrefix(prefix, maxBytes);
    return undefined;
  } catch (error) {
    return error instanceof GossipError ? error : new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', String(error));
  }
}

/** Why one more prefix cannot be subscribed beside `held` ones under the welcome's `maxPrefixes` (B3), or undefined. */
export function countRefusal(held: number, maxPrefixes: number | undefined): GossipError | undefined {
  if (maxPrefixes === undefined || held < maxPrefixes) return undefined;
  return new GossipError(
    'GOSSIP_ERR_TOO_MANY_PREFIXES',
    `the client holds ${held} prefixes, the server's maxPrefixes: unsubscribe one first, or raise gossipd's --max-prefixes`,
  );
}

export function alreadySubscribedError(prefix: string): GossipError {
  return new GossipError(
    'GOSSIP_ERR_ALREADY_SUBSCRIBED',
    `${JSON.stringify(prefix)} is already subscribed: unsubscribe it first to replay it from another since`,
  );
}

export function notSubscribedError(prefix: string): GossipError {
  return new GossipError('GOSSIP_ERR_NOT_SUBSCRIBED', `${JSON.stringify(prefix)} is not one of the client's prefixes`);
}

function raise(sub: Sub, ts: bigint): void {
  if (sub.lastTs === null || ts > sub.lastTs) sub.lastTs = ts;
}

/** A hello entry's bytes at most: fixarray, str header (1 or up to 3), the prefix, int64 or nil (B2). */
function entryBytes(prefix: string, since: bigint | null): number {
  const n = Buffer.byteLength(prefix, 'utf8');
  return 1 + (n < 32 ? 1 : 3) + n + (since === null ? 1 : 9);
}
