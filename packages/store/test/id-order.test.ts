import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { CHUNK, IdOrder, keyAt } from '../src/id-order.js';

/*
 * The index's id order (id-order.ts, docs/STORAGE.md "Index") against a model: a sorted
 * array of the same ids. Random inserts and removals in several orders make chunks
 * split, empty and join; after each batch the order must be sound (`problem()`), hold
 * the model's ids in the model's order, and find exactly the model's ids under a prefix.
 */

type Rand = () => number;

const int = (rand: Rand, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: Rand, items: readonly T[]): T => items[int(rand, items.length)] as T;

function shuffle<T>(items: T[], rand: Rand): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = int(rand, i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** The first position of `sorted` whose id is >= `id`. */
function lowerBound(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Units that make keys tie (254 and up all become 255), astral characters (two units each) and plain ASCII. */
const UNITS = [
  'a',
  'b',
  'z',
  '/',
  '0',
  '9',
  '\u00fd',
  '\u00fe',
  '\u00ff',
  '\u0100',
  'é',
  '中',
  '\uffff',
  '😀',
  '\u{10ffff}',
];

/** Ids of one family, made from a counter and the PRNG. */
type Family = (rand: Rand, n: number) => string;

const FAMILIES: Record<string, Family> = {
  // Counters under a few shared prefixes, of different lengths: 'user/7', 'user/7/12', 'user/70'.
  paths: (rand, n) => {
    const head = pick(rand, ['user/', 'user/1', 'u', 'üser/', 'room-']);
    return rand() < 0.3 ? `${head}${n}` : `${head}${n % 97}/${n}`;
  },
  // A long shared stem: keys made near the start of an id tie, so searches read ids and chunks rekey deeper.
  stems: (rand, n) => `${'s'.repeat(12)}/${pick(rand, ['', 'deep/', 'deeper/still/'])}${n.toString(36)}`,
  // Characters a key cannot tell apart (code units >= 254) and astral ones, at every depth.
  high: (rand, n) => {
    let id = '';
    const len = 1 + int(rand, 8);
    for (let i = 0; i < len; i++) id += pick(rand, UNITS);
    return `${id}${n}`;
  },
  mixed: (rand, n) => pick(rand, [FAMILIES.paths, FAMILIES.stems, FAMILIES.high] as Family[])(rand, n),
};

/** An IdOrder over its own slot array, and the model: the same ids, sorted. */
class Harness {
  readonly ids: (string | undefined)[] = [];
  readonly order = new IdOrder(this.ids);
  readonly sorted: string[] = [];
  readonly slotOf = new Map<string, number>();
  readonly #free: number[] = [];

  has(id: string): boolean {
    return this.slotOf.has(id);
  }

  insert(id: string): void {
    const slot = this.#free.pop() ?? this.ids.length;
    this.ids[slot] = id;
    this.slotOf.set(id, slot);
    this.order.insert(slot);
    this.sorted.splice(lowerBound(this.sorted, id), 0, id);
  }

  remove(id: string): void {
    const slot = this.slotOf.get(id) as number;
    this.order.remove(slot);
    this.ids[slot] = undefined;
    this.slotOf.delete(id);
    this.#free.push(slot);
    this.sorted.splice(lowerBound(this.sorted, id), 1);
  }

  idsOf(slots: Uint32Array): string[] {
    return Array.from(slots, (slot) => this.ids[slot] as string);
  }

  /** The order agrees with the model: sound, the same ids in the same order, the same ids under each prefix. */
  check(prefixes: readonly string[], at: string): void {
    expect(this.order.problem(), `problem() ${at}`).toBeUndefined();
    expect(this.order.size, `size ${at}`).toBe(this.sorted.length);
    expect(this.idsOf(this.order.all()), `all() ${at}`).toEqual(this.sorted);
    for (const p of prefixes) {
      const range = this.order.range(p);
      const want = this.sorted.filter((id) => id.startsWith(p));
      expect(this.idsOf(range.slots), `range(${JSON.stringify(p)}) ${at}`).toEqual(want);
      expect(range.seen, `range(${JSON.stringify(p)}).seen ${at}`).toBeGreaterThanOrEqual(want.length);
    }
  }

  /** Prefixes to check: fixed ones, and cuts of ids in the order, of ids that are not, and whole ids. */
  prefixes(rand: Rand, family: Family): string[] {
    const out = [
      '',
      'u',
      'user/1',
      'user/1/',
      's'.repeat(12),
      `${'s'.repeat(12)}/deep`,
      '\u00fe',
      '\u00ff',
      '\u0100',
      '\ud83d', // the first unit of '😀': every id that starts with it, as strings compare
      '😀',
      '\uffff',
      '\uffff\uffff', // after every id
      '\u0000', // before every id, under none
    ];
    for (let i = 0; i < 12 && this.sorted.length > 0; i++) {
      const id = pick(rand, this.sorted);
      out.push(id); // equal to an id
      out.push(id.slice(0, 1 + int(rand, id.length)));
      out.push(`${id}\u0000`);
    }
    for (let i = 0; i < 4; i++) {
      const id = family(rand, 1_000_000 + int(rand, 1000));
      out.push(id.slice(0, 1 + int(rand, id.length)));
    }
    return out;
  }
}

type Ordering = 'ascending' | 'descending' | 'random';

/** Ids in the order they are inserted. */
function arrange(ids: string[], ordering: Ordering, rand: Rand): string[] {
  if (ordering === 'random') return shuffle(ids, rand);
  const sorted = [...ids].sort();
  return ordering === 'ascending' ? sorted : sorted.reverse();
}

describe('IdOrder', () => {
  const cases: [Ordering, string][] = [];
  for (const ordering of ['ascending', 'descending', 'random'] as const) {
    for (const family of Object.keys(FAMILIES)) cases.push([ordering, family]);
  }

  it.each(
    cases,
  )('id order - %s inserts of %s ids, random removals and reinserts, agree with a sorted array', (ordering, name) => {
    const family = FAMILIES[name] as Family;
    const rand = mulberry32(0x1d0 + cases.findIndex(([o, f]) => o === ordering && f === name));
    const h = new Harness();
    let counter = 0;
    const fresh = (count: number) => {
      const out = new Set<string>();
      while (out.size < count) {
        const id = family(rand, counter++);
        if (!h.has(id)) out.add(id);
      }
      return arrange([...out], ordering, rand);
    };

    // Grows past several chunks, checked every few hundred inserts.
    const first = fresh(5 * CHUNK);
    for (let i = 0; i < first.length; i++) {
      h.insert(first[i] as string);
      if (i % 300 === 299) h.check(h.prefixes(rand, family), `after ${i + 1} inserts`);
    }
    h.check(h.prefixes(rand, family), 'after the inserts');

    // Mixed inserts and removals, the live set staying about the same size.
    for (let batch = 0; batch < 8; batch++) {
      const adds = fresh(200);
      for (let op = 0; op < 400; op++) {
        if (op % 2 === 0) h.insert(adds[op / 2] as string);
        else h.remove(pick(rand, h.sorted));
      }
      h.check(h.prefixes(rand, family), `after mixed batch ${batch}`);
    }

    // Removals of long stretches in id order (chunks empty) and of scattered ids (chunks thin out and join).
    const stretch = h.sorted.slice(int(rand, h.sorted.length / 2), h.sorted.length);
    for (const id of stretch.slice(0, 2 * CHUNK)) h.remove(id);
    h.check(h.prefixes(rand, family), 'after removing a stretch');
    for (let i = 0; h.sorted.length > CHUNK / 2; i++) {
      h.remove(pick(rand, h.sorted));
      if (i % 250 === 0) h.check(h.prefixes(rand, family), `after ${i + 1} scattered removals`);
    }
    h.check(h.prefixes(rand, family), 'after the scattered removals');

    // Refilled in the same ordering, then emptied.
    for (const id of fresh(3 * CHUNK)) h.insert(id);
    h.check(h.prefixes(rand, family), 'after refilling');
    for (const id of shuffle([...h.sorted], rand)) h.remove(id);
    h.check(['', 'u'], 'once empty');
    expect(h.order.all()).toHaveLength(0);
  });

  it('id order - a chunk split at every place an insert can land keeps every id findable', () => {
    // One full chunk, then an insert before, between and after its ids, each on a fresh copy.
    const base = Array.from({ length: CHUNK }, (_, i) => `k${String(2 * i + 1).padStart(5, '0')}`);
    for (const at of [0, 1, CHUNK / 2 - 1, CHUNK / 2, CHUNK / 2 + 1, CHUNK - 1, CHUNK]) {
      const h = new Harness();
      for (const id of base) h.insert(id);
      h.insert(`k${String(2 * at).padStart(5, '0')}`);
      h.check(['', 'k', 'k00', `k${String(2 * at).padStart(5, '0')}`, 'k01'], `after an insert at ${at}`);
    }
  });

  it('id order - removing a chunk’s last id, then every id of it, moves the neighbours’ bounds', () => {
    const h = new Harness();
    for (let i = 0; i < 4 * CHUNK; i++) h.insert(`a${'x'.repeat(i % 7)}${String(i).padStart(5, '0')}`);
    const rand = mulberry32(7);
    for (let round = 0; round < 3 * CHUNK; round++) {
      // The largest id under a random stretch: often a chunk's last.
      const p = pick(rand, h.sorted).slice(0, 4);
      const under = h.sorted.filter((id) => id.startsWith(p));
      h.remove(under[under.length - 1] as string);
      if (round % 100 === 0) h.check(['', 'a', 'ax', 'axx', p], `after ${round + 1} removals`);
    }
    h.check(['', 'a', 'ax', 'axx'], 'at the end');
  });

  it('id order - build takes ids in strictly ascending order, and refuses any other', () => {
    const h = new Harness();
    const ids = Array.from({ length: 3 * CHUNK + 7 }, (_, i) => `id/${String(i).padStart(5, '0')}`);
    ids.forEach((id, slot) => {
      h.ids[slot] = id;
    });
    const slots = Uint32Array.from(ids, (_, slot) => slot);
    expect(h.order.build(ids, slots)).toBe(true);
    expect(h.order.problem()).toBeUndefined();
    expect(h.idsOf(h.order.all())).toEqual(ids);
    expect(h.idsOf(h.order.range('id/0100').slots)).toEqual(ids.filter((id) => id.startsWith('id/0100')));

    const refused = (sorted: string[]) => {
      const order = new IdOrder(sorted);
      order.insert(0); // not empty before: a refused build leaves it empty all the same
      expect(
        order.build(
          sorted,
          Uint32Array.from(sorted, (_, k) => k),
        ),
      ).toBe(false);
      expect(order.size).toBe(0);
      expect(order.all()).toHaveLength(0);
      expect(order.problem()).toBeUndefined();
      expect(order.range('').slots).toHaveLength(0);
    };
    refused(['b', 'a']);
    refused(['a', 'a']);
    refused(['a', 'b', 'b', 'c']);
    // Out of order only far in, past the first chunks.
    const late = [...ids];
    [late[2 * CHUNK + 3], late[2 * CHUNK + 4]] = [late[2 * CHUNK + 4] as string, late[2 * CHUNK + 3] as string];
    refused(late);
    // JavaScript's string order, not code points: '\uffff' sorts after the astral '😀' (0xd83d 0xde00).
    refused(['\uffff', '😀']);
    expect(new IdOrder(['😀', '\uffff']).build(['😀', '\uffff'], Uint32Array.of(0, 1))).toBe(true);
  });

  it('id order - sort orders any slots once, and refuses an id twice', () => {
    const rand = mulberry32(42);
    const h = new Harness();
    const ids = new Set<string>();
    while (ids.size < 2 * CHUNK + 100) ids.add((FAMILIES.mixed as Family)(rand, ids.size));
    const slots: number[] = [];
    for (const id of ids) {
      slots.push(h.ids.length);
      h.ids.push(id);
      h.slotOf.set(id, h.ids.length - 1);
    }
    h.sorted.push(...[...ids].sort());
    h.order.sort(Uint32Array.from(shuffle(slots, rand)));
    h.check(h.prefixes(rand, FAMILIES.mixed as Family), 'after sort');
    // It goes on from there as ids come and go.
    for (const id of h.sorted.slice(0, CHUNK)) h.remove(id);
    for (let i = 0; i < CHUNK; i++) h.insert(`user/1/${i}`);
    h.check(h.prefixes(rand, FAMILIES.mixed as Family), 'after sort, then removals and inserts');

    const twice = new IdOrder(['x', 'y', 'x']);
    expect(() => twice.sort(Uint32Array.of(0, 1, 2))).toThrow('IdOrder: an id repeats');
  });

  it('id order - removing a slot that is not in the order throws', () => {
    const order = new IdOrder(['a', 'b']);
    order.insert(0);
    expect(() => order.remove(1)).toThrow(/not in the order/);
    expect(order.problem()).toBeUndefined();
  });
});

describe('keyAt', () => {
  it('keyAt - orders as the ids do, ties allowed, among ids that share their first depth units', () => {
    const rand = mulberry32(254);
    const tail = () => {
      let s = '';
      const len = int(rand, 7);
      for (let i = 0; i < len; i++) s += pick(rand, [...UNITS, '\u0000', '\u00fc', '\u00fd', 'A']);
      return s;
    };
    for (let i = 0; i < 20_000; i++) {
      const depth = int(rand, 6);
      const shared = tail().padEnd(depth, 'q').slice(0, depth);
      const a = shared + tail();
      const b = shared + tail();
      const ka = keyAt(a, depth);
      const kb = keyAt(b, depth);
      expect(Number.isInteger(ka) && ka >= 0 && ka < 2 ** 32).toBe(true);
      if (ka < kb) expect(a < b, `${JSON.stringify(a)} vs ${JSON.stringify(b)} at ${depth}`).toBe(true);
      if (a < b) expect(ka <= kb, `${JSON.stringify(a)} vs ${JSON.stringify(b)} at ${depth}`).toBe(true);
      if (a === b) expect(ka).toBe(kb);
    }
  });

  it('keyAt - four units, one byte each: a unit u is u + 1, the end 0, and 254 and up 255 that ends the key', () => {
    expect(keyAt('', 0)).toBe(0);
    expect(keyAt('a', 0)).toBe(0x62_00_00_00);
    expect(keyAt('abcd', 0)).toBe(0x62_63_64_65);
    expect(keyAt('abcdef', 2)).toBe(0x64_65_66_67);
    expect(keyAt('xyab', 2)).toBe(0x62_63_00_00);
    expect(keyAt('\u0000', 0)).toBe(0x01_00_00_00);
    expect(keyAt('\u00fd', 0)).toBe(0xfe_00_00_00);
    // Past 253 nothing is told apart, not even what follows.
    expect(keyAt('\u00fea', 0)).toBe(0xff_00_00_00);
    expect(keyAt('\u00ffz', 0)).toBe(0xff_00_00_00);
    expect(keyAt('😀', 0)).toBe(0xff_00_00_00);
    expect(keyAt('a中b', 0)).toBe(0x62_ff_00_00);
  });
});

describe('IdOrder range', () => {
  // 200 prefixes of 1000 ids each: 'g000/0000' .. 'g199/0999'.
  const GROUPS = 200;
  const PER = 1000;
  const N = GROUPS * PER;
  const idOf = (g: number, i: number) => `g${String(g).padStart(3, '0')}/${String(i).padStart(4, '0')}`;

  /** Every id, in a shuffled order of slots. */
  function shuffled(): (string | undefined)[] {
    const ids: string[] = [];
    for (let g = 0; g < GROUPS; g++) for (let i = 0; i < PER; i++) ids.push(idOf(g, i));
    return shuffle(ids, mulberry32(200_000));
  }

  function expectAboutK(order: IdOrder, ids: (string | undefined)[]): void {
    for (const g of [0, 42, 117, GROUPS - 1]) {
      const p = `g${String(g).padStart(3, '0')}/`;
      const range = order.range(p);
      expect(range.slots.length).toBe(PER);
      expect(Array.from(range.slots, (s) => ids[s])).toEqual(Array.from({ length: PER }, (_, i) => idOf(g, i)));
      // k entries and two binary searches and a few chunks: not a pass over the n ids.
      expect(range.seen, `range(${p}).seen of ${N} ids`).toBeLessThanOrEqual(PER + 200);
    }
    // One id, none, and all.
    expect(order.range(idOf(42, 7)).seen).toBeLessThanOrEqual(1 + 200);
    expect(order.range('g042/0007x').slots).toHaveLength(0);
    expect(order.range('h').seen).toBeLessThanOrEqual(200);
    expect(order.range('').seen).toBeGreaterThanOrEqual(N);
  }

  it('id order - a prefix holding k of n ids (k = 1000, n = 200k) sees at most k + 200 entries, kept by inserts', () => {
    const ids = shuffled();
    const order = new IdOrder(ids);
    for (let slot = 0; slot < N; slot++) order.insert(slot);
    expect(order.size).toBe(N);
    expect(order.problem()).toBeUndefined();
    expectAboutK(order, ids);
  });

  it('id order - the same, built by one sort', () => {
    const ids = shuffled();
    const order = new IdOrder(ids);
    order.sort(Uint32Array.from(ids, (_, slot) => slot));
    expect(order.problem()).toBeUndefined();
    expectAboutK(order, ids);
  });
});
