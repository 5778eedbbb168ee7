import {
  AckStatus,
  type ErrorCode,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  type HelloFrame,
  MAX_PREFIX_BYTES,
  PROTOCOL_VERSION,
  type PrefixSpec,
} from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import type { ResolvedOptions, ServerContext } from '../src/context.js';
import { onHello } from '../src/handlers/hello.js';
import { onSubscribe, onUnsubscribe } from '../src/handlers/subscribe.js';
import { HELD_ENTRY_OVERHEAD, HELD_PREFIX_OVERHEAD, HeldMessages } from '../src/held.js';
import { PrefixIndex } from '../src/prefix-index.js';
import { ReadCredit } from '../src/read-credit.js';
import type { PrefixSet, Session } from '../src/session.js';
import type { Subscription } from '../src/subscriptions.js';
import { tempStores, testContext } from './contexts.js';

/*
 * The parts of subscriptions by prefix that stand alone (docs/PROTOCOL.md, B1 to B7):
 * the index every message's id is matched through, the read credit that paces replays,
 * the live messages a connection holds while its prefixes replay, and the handlers of subscribe, unsubscribe and a hello's prefixes behind the session
 * seam. What a connection then sends is held by packages/tests/test/prefixes.test.ts
 * against a real gossipd.
 */

describe('prefix index', () => {
  it('prefix index - an id finds every prefix it starts with, shortest first, each value once, by code unit', () => {
    const index = new PrefixIndex<string>();
    const filed: [string, string][] = [
      ['', 'all'],
      ['flags/', 'flags-1'],
      ['flags/', 'flags-2'],
      ['flags/beta/', 'beta'],
      ['f', 'f'],
      ['é/', 'e-acute'],
      ['😀', 'emoji'],
      ['presence/', 'presence'],
    ];
    for (const [prefix, value] of filed) index.add(prefix, value);
    expect(index.size).toBe(filed.length);
    const found = (id: string) => {
      const out: string[] = ['before'];
      const n = index.collect(id, out);
      expect(n).toBe(out.length - 1);
      return out.slice(1);
    };
    expect(found('flags/beta/search')).toEqual(['all', 'f', 'flags-1', 'flags-2', 'beta']);
    expect(found('flags/')).toEqual(['all', 'f', 'flags-1', 'flags-2']);
    expect(found('flags')).toEqual(['all', 'f']);
    expect(found('presence')).toEqual(['all']);
    expect(found('é/x')).toEqual(['all', 'e-acute']);
    // e and a combining acute are other bytes than é: no normalization (Conventions).
    expect(found('e\u0301/x')).toEqual(['all']);
    expect(found('😀!')).toEqual(['all', 'emoji']);
    expect(found('')).toEqual(['all']);
  });

  it('prefix index - removing a value leaves the others, prunes the nodes left empty, and is refused for what is not there', () => {
    const index = new PrefixIndex<number>();
    index.add('abc', 1);
    index.add('abc', 2);
    index.add('ab', 3);
    expect(index.remove('abc', 4)).toBe(false);
    expect(index.remove('abcd', 1)).toBe(false);
    expect(index.remove('abc', 1)).toBe(true);
    expect(index.collect('abcd', [])).toBe(2);
    expect(index.remove('abc', 2)).toBe(true);
    expect(index.remove('ab', 3)).toBe(true);
    expect(index.size).toBe(0);
    // Nothing is left below the root: adding again works from scratch.
    index.add('abc', 5);
    const out: number[] = [];
    index.collect('abcdef', out);
    expect(out).toEqual([5]);
  });

  it('prefix index - thousands of values on one prefix leave one at a time from any place, each found until it leaves, filed once however often added', () => {
    const index = new PrefixIndex<number>();
    const n = 20_000;
    for (let v = 0; v < n; v++) index.add('', v);
    index.add('', 7);
    expect(index.size).toBe(n);
    // From the middle outwards: a list scanned per removal would be n²/4 steps here.
    const order = Array.from({ length: n }, (_, k) => (k % 2 === 0 ? n / 2 + k / 2 : n / 2 - (k + 1) / 2));
    for (const v of order.slice(0, n - 3)) expect(index.remove('', v)).toBe(true);
    expect(index.remove('', order[0] as number)).toBe(false);
    const out: number[] = [];
    expect(index.collect('any', out)).toBe(3);
    expect(out.sort((a, b) => a - b)).toEqual(order.slice(n - 3).sort((a, b) => a - b));
  });
});

describe('held messages', () => {
  // Only their identity matters here.
  const sub = (name: string) => ({ prefix: name }) as unknown as Subscription;
  const b = (s: string) => Buffer.from(s);
  const sent = (held: HeldMessages, s: Subscription) => {
    const out: string[] = [];
    held.release(s, (bytes) => out.push(bytes.toString()));
    return out;
  };

  it('held messages - a done prefix sends what it matched in order, a dropped one lets go of what only it matched, each counted with its overhead', () => {
    const [a, c, d] = [sub('a'), sub('c'), sub('d')];
    const held = new HeldMessages();
    held.hold(b('1'), [a]);
    held.hold(b('2'), [c]);
    held.hold(b('3'), [a, c]);
    held.hold(b('4'), [c, d]);
    held.hold(b('5'), [a]);
    expect(held.bytes).toBe(5 * (1 + HELD_ENTRY_OVERHEAD));
    held.drop(c);
    // 2 went with c; 3 and 4 wait for a and d.
    expect(held.bytes).toBe(4 * (1 + HELD_ENTRY_OVERHEAD));
    expect(sent(held, a)).toEqual(['1', '3', '5']);
    expect(sent(held, a)).toEqual([]);
    expect(sent(held, c)).toEqual([]);
    expect(sent(held, d)).toEqual(['4']);
    expect(held.bytes).toBe(0);
  });

  it('held messages - what was held for the whole broadcast is adopted by one prefix; takeAll sends everything in order', () => {
    const [implicit, x] = [sub(''), sub('x')];
    const held = new HeldMessages();
    held.hold(b('1'), undefined);
    held.hold(b('2'), undefined);
    held.adopt(implicit);
    held.hold(b('3'), [x]);
    held.drop(x);
    expect(sent(held, implicit)).toEqual(['1', '2']);
    held.hold(b('4'), undefined);
    held.hold(b('5'), [x]);
    const out: string[] = [];
    held.takeAll((bytes) => out.push(bytes.toString()));
    expect(out).toEqual(['4', '5']);
    expect(held.bytes).toBe(0);
  });

  it('held messages - many entries let go of by other prefixes are compacted away, and what stays keeps its order', () => {
    const [a, c] = [sub('a'), sub('c')];
    const held = new HeldMessages();
    const n = 10_000;
    for (let k = 0; k < n; k++) held.hold(b(String(k)), k % 3 === 0 ? [a] : [a, c]);
    const fromC = sent(held, c);
    expect(fromC.length).toBe(n - Math.ceil(n / 3));
    expect(held.bytes).toBe(Math.ceil(n / 3) * HELD_ENTRY_OVERHEAD + bytesOf(n, (k) => k % 3 === 0));
    expect(sent(held, a)).toEqual(Array.from({ length: n }, (_, k) => String(k)).filter((_, k) => k % 3 === 0));
    expect(held.bytes).toBe(0);
  });

  it('held messages - an entry matched by many prefixes still replaying counts each past the second, and less as they are dropped', () => {
    const subs = Array.from({ length: 257 }, (_, k) => sub(String(k)));
    const held = new HeldMessages();
    held.hold(b('x'), subs);
    const entry = 1 + HELD_ENTRY_OVERHEAD;
    expect(held.bytes).toBe(entry + 255 * HELD_PREFIX_OVERHEAD);
    for (const s of subs.slice(0, 200)) held.drop(s);
    expect(held.bytes).toBe(entry + 55 * HELD_PREFIX_OVERHEAD);
    for (const s of subs.slice(200, 255)) held.drop(s);
    expect(held.bytes).toBe(entry);
    expect(sent(held, subs[256] as Subscription)).toEqual(['x']);
    expect(held.bytes).toBe(0);
  });
});

/** The bytes of String(k) for the k < n that `pick` takes. */
function bytesOf(n: number, pick: (k: number) => boolean): number {
  let total = 0;
  for (let k = 0; k < n; k++) if (pick(k)) total += String(k).length;
  return total;
}

describe('read credit', () => {
  it('read credit - a read takes from it, bytes the socket takes give it back up to the start, and once nothing waits all of it is back', () => {
    const out = { taken: 0, idle: false };
    const credit = new ReadCredit(out, 100);
    expect(credit.take(60)).toBe(true);
    expect(credit.take(60)).toBe(false);
    expect(credit.available).toBe(40);
    out.taken += 30;
    expect(credit.available).toBe(70);
    expect(credit.take(60)).toBe(true);
    // Never above the start, however much the socket takes.
    out.taken += 1_000;
    expect(credit.available).toBe(100);
    expect(credit.take(100)).toBe(true);
    credit.refund(25);
    expect(credit.available).toBe(25);
    // What no socket will ever take (a batch read ahead of a replay that stopped) comes back once nothing waits.
    out.idle = true;
    expect(credit.available).toBe(100);
  });
});

// Handlers behind the session seam (src/session.ts), with a real store under the context.

const openStore = tempStores('gossip-prefixes-');

async function context(options: Partial<ResolvedOptions> = {}): Promise<ServerContext> {
  return testContext(await openStore(), options, { maxSkewNs: 0n, latestAllowedTs: () => 0n });
}

/** A session whose prefixes are a set, whose replays stop when `stop` says. */
class PrefixSession implements PrefixSet {
  readonly enc = new FrameEncoder();
  readonly held = new Set<string>();
  readonly log: string[] = [];
  readonly fatals: [ErrorCode, string][] = [];
  /** Unsubscribes of a prefix "still replaying": acked when `stop()` is called. */
  readonly #running = new Map<string, () => void>();
  closed = false;
  replaying = new Set<string>();

  get size(): number {
    return this.held.size;
  }

  has(prefix: string): boolean {
    return this.held.has(prefix);
  }

  subscribe(prefix: string, since: bigint | null): void {
    this.held.add(prefix);
    this.log.push(`+${prefix} ${since}`);
  }

  unsubscribe(prefix: string, stopped?: () => void): void {
    this.held.delete(prefix);
    this.log.push(`-${prefix}`);
    if (this.replaying.has(prefix)) this.#running.set(prefix, stopped ?? (() => undefined));
    else stopped?.();
  }

  stop(prefix: string): void {
    this.#running.get(prefix)?.();
  }

  session(): Session {
    const self = this;
    return {
      id: 1,
      remote: '127.0.0.1:50000',
      client: undefined,
      name: undefined,
      echo: true,
      get closed() {
        return self.closed;
      },
      enc: this.enc,
      touch: () => undefined,
      ack: (reqId, status, durability, code, message) => {
        this.enc.ack(reqId, status, durability, code, message);
      },
      send: () => undefined,
      fatal: (code, message) => {
        this.fatals.push([code, message]);
      },
      out: { pendingBytes: 0, whenBelow: () => Promise.resolve() },
      hold: () => undefined,
      release: () => undefined,
      publishing: { add: () => undefined, done: () => undefined },
      fetches: { add: () => undefined },
      prefixes: this,
      settled: () => undefined,
    };
  }

  /** The frames given to the client so far, as [kind, reqId, status, code] for acks. */
  frames(): Frame[] {
    const frames: Frame[] = [];
    new FrameDecoder((f) => frames.push(f)).push(this.enc.take());
    return frames;
  }
}

const acks = (frames: Frame[]) =>
  frames.flatMap((f) => (f.kind === FrameKind.Ack ? [[f.reqId, f.status, f.code] as const] : []));

const subscribe = (reqId: number, prefix: string, since: bigint | null = null) =>
  ({ kind: FrameKind.Subscribe, reqId, prefix, since, epoch: null }) as const;
const unsubscribe = (reqId: number, prefix: string) => ({ kind: FrameKind.Unsubscribe, reqId, prefix }) as const;

describe('handlers - prefixes (check.ts)', () => {
  it('handlers - a subscribe too long, held or past --max-prefixes gets an error ack and changes nothing; an accepted one is acked, then added', async () => {
    const ctx = await context({ maxPrefixes: 3 });
    const p = new PrefixSession();
    const s = p.session();
    onSubscribe(s, ctx, subscribe(1, 'a', 5n));
    onSubscribe(s, ctx, subscribe(2, 'a'));
    onSubscribe(s, ctx, subscribe(3, 'x'.repeat(MAX_PREFIX_BYTES + 1)));
    // 256 bytes of UTF-8 are a prefix; 129 two-byte characters are not.
    onSubscribe(s, ctx, subscribe(4, 'é'.repeat(MAX_PREFIX_BYTES / 2)));
    onSubscribe(s, ctx, subscribe(5, 'é'.repeat(MAX_PREFIX_BYTES / 2 + 1)));
    onSubscribe(s, ctx, subscribe(6, ''));
    onSubscribe(s, ctx, subscribe(7, 'b'));
    expect(acks(p.frames())).toEqual([
      [1, AckStatus.Accepted, null],
      [2, AckStatus.Error, 'GOSSIP_ERR_ALREADY_SUBSCRIBED'],
      [3, AckStatus.Error, 'GOSSIP_ERR_PREFIX_TOO_LONG'],
      [4, AckStatus.Accepted, null],
      [5, AckStatus.Error, 'GOSSIP_ERR_PREFIX_TOO_LONG'],
      [6, AckStatus.Accepted, null],
      [7, AckStatus.Error, 'GOSSIP_ERR_TOO_MANY_PREFIXES'],
    ]);
    expect(p.log).toEqual(['+a 5', `+${'é'.repeat(128)} null`, '+ null']);
    expect(p.fatals).toEqual([]);
  });

  it('handlers - an unsubscribe of a prefix too long or not held gets an error ack; an accepted one is acked once its replay has stopped', async () => {
    const ctx = await context();
    const p = new PrefixSession();
    const s = p.session();
    for (const prefix of ['a', 'b']) p.subscribe(prefix, null);
    p.replaying.add('b');
    onUnsubscribe(s, ctx, unsubscribe(1, 'c'));
    onUnsubscribe(s, ctx, unsubscribe(2, 'x'.repeat(MAX_PREFIX_BYTES + 1)));
    onUnsubscribe(s, ctx, unsubscribe(3, 'a'));
    onUnsubscribe(s, ctx, unsubscribe(4, 'b'));
    expect(acks(p.frames())).toEqual([
      [1, AckStatus.Error, 'GOSSIP_ERR_NOT_SUBSCRIBED'],
      [2, AckStatus.Error, 'GOSSIP_ERR_PREFIX_TOO_LONG'],
      [3, AckStatus.Accepted, null],
    ]);
    // b's replay queues the batch it was reading, then stops: the ack comes after it.
    p.stop('b');
    expect(acks(p.frames())).toEqual([[4, AckStatus.Accepted, null]]);
    expect(p.held.size).toBe(0);
  });

  it('handlers - a hello naming too many prefixes, one too long or one twice is fatal; the welcome announces the prefix limits', async () => {
    const ctx = await context({ maxPrefixes: 2 });
    const hello = (prefixes: PrefixSpec[] | undefined): HelloFrame => ({
      kind: FrameKind.Hello,
      version: PROTOCOL_VERSION,
      since: null,
      epoch: null,
      echo: true,
      name: undefined,
      token: undefined,
      prefixes,
    });
    const live = (...prefixes: string[]) => prefixes.map((prefix) => ({ prefix, since: null }));
    const cases: [PrefixSpec[], ErrorCode][] = [
      [live('a', 'b', 'c'), 'GOSSIP_ERR_TOO_MANY_PREFIXES'],
      [live('x'.repeat(MAX_PREFIX_BYTES + 1)), 'GOSSIP_ERR_PREFIX_TOO_LONG'],
      [live('a', 'a'), 'GOSSIP_ERR_ALREADY_SUBSCRIBED'],
    ];
    for (const [prefixes, code] of cases) {
      const p = new PrefixSession();
      expect(onHello(p.session(), ctx, hello(prefixes))).toBe(false);
      expect(p.fatals.map(([c]) => c)).toEqual([code]);
      expect(p.frames()).toEqual([]);
    }
    for (const prefixes of [undefined, [], live('', 'x'.repeat(MAX_PREFIX_BYTES))]) {
      const p = new PrefixSession();
      expect(onHello(p.session(), ctx, hello(prefixes))).toBe(true);
      expect(p.frames()).toMatchObject([{ kind: FrameKind.Welcome, maxPrefixes: 2, maxPrefixBytes: MAX_PREFIX_BYTES }]);
    }
  });
});
