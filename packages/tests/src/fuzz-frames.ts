import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import {
  AckStatus,
  type ErrorCode,
  FrameKind,
  LegacyKind,
  MAX_EXTENSION_BYTES,
  MAX_EXTENSION_DEPTH,
  MAX_HELLO_FRAME_BYTES,
  MAX_PREFIX_BYTES,
  MAX_TS,
  MIN_TS,
  now,
} from '@gossip/protocol';
import { legacyFrame, legacyHandshake } from './legacy-client.js';

/*
 * Generators for the handler fuzzer (test/handler-fuzz.test.ts): frames that are valid
 * in layout but carry hostile fields, one generator per frame kind (docs/PROTOCOL.md, F2)
 * and per legacy kind (L1 to L3), each drawn together with what the server owes for it:
 * the connection's fate (kept, or ended with one error frame whose code is in a set),
 * the acks, pongs, fetch results and echoes it must send, and how the store changes.
 *
 * Frames are written here byte by byte rather than with `FrameEncoder`, which refuses
 * most of what is drawn (invalid UTF-8, -2^63, empty ids). Every table is keyed by kind,
 * so a kind added to `FrameKind` or `LegacyKind` does not compile until it has a
 * generator, and the fuzzer's own test fails at run time if one is missing.
 */

export type Rng = () => number;

export const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** Picks a value by weight: `[weight, value]` pairs, weights of 0 allowed. */
function weighted<T>(r: Rng, table: readonly (readonly [number, T])[]): T {
  let total = 0;
  for (const [w] of table) total += w;
  let x = r() * total;
  for (const [w, v] of table) {
    x -= w;
    if (x < 0) return v;
  }
  return (table.at(-1) as readonly [number, T])[1];
}

/** The server's limits the generators aim at (its flags). */
export interface Limits {
  maxData: number;
  maxFrame: number;
  maxFetchIds: number;
  /** --max-prefixes (B1); prefixes are at most MAX_PREFIX_BYTES. */
  maxPrefixes: number;
  skewMs: number;
  tombstoneRetentionMs: number;
}

/** What the store holds for an id: a value (its ts and a hash of its data), or nothing. */
export type Held = { ts: bigint; hash: string } | null;
/** What an id may hold: one of these values, or anything (the model lost track of it). */
export type Possible = Held[] | 'any';

export const hashOf = (data: Uint8Array) => createHash('sha1').update(data).digest('hex').slice(0, 16);
const EMPTY_HASH = hashOf(Buffer.alloc(0));
export const heldKey = (h: Held) => (h === null ? 'absent' : `${h.ts}:${h.hash}`);
/** More possible values than this for one id and the model gives up on it (any answer goes). */
const MAX_POSSIBLE = 8;

/**
 * What the store may hold for the ids only one slot (one connection at a time) publishes:
 * a set of possible values per id, which is exactly one value unless a publish may or may
 * not have been refused (a ts at the skew limit) or compaction may have dropped an old
 * tombstone (docs/STORAGE.md: tombstones older than the retention go). Publishes of one
 * id are ordered by the store in the order it reads them (P1), so the model follows the
 * frames in order.
 *
 * A fetch reads what is written (Q1: the newest persisted message), so until a publish
 * is acked a fetch may still see the value before it, even from the next connection
 * when the one that published ended before its acks came. `readable` is every value a
 * fetch may see: what the id may hold now and every value it may have held since the
 * last connection whose publishes were all acked (`settled`).
 */
export class SlotModel {
  readonly #ids = new Map<string, Possible>();
  readonly #readable = new Map<string, Map<string, Held> | 'any'>();
  /** Which connection and frame published each value: for the report of a mismatch. */
  readonly #sources = new Map<string, string>();
  readonly #retentionNs: bigint;

  constructor(retentionMs: number) {
    this.#retentionNs = BigInt(retentionMs) * 1_000_000n;
  }

  possible(id: string): Possible {
    const p = this.#ids.get(id) ?? [null];
    if (p === 'any') return p;
    // A tombstone past retention may be dropped by a compaction at any moment: then the id is unknown.
    const cutoff = now() - this.#retentionNs;
    if (p.some((h) => h !== null && h.hash === EMPTY_HASH && h.ts < cutoff) && !p.includes(null)) return [...p, null];
    return p;
  }

  /** Every value a fetch of `id` may return now (see above). */
  readable(id: string): Possible {
    const now = this.possible(id);
    const r = this.#readable.get(id);
    if (now === 'any' || r === 'any') return 'any';
    const all = new Map<string, Held>(r ?? []);
    for (const h of now) all.set(heldKey(h), h);
    return [...all.values()];
  }

  /** After a mismatch has been reported: the model no longer knows `id`, so it is not reported again. */
  forget(id: string): void {
    this.#ids.set(id, 'any');
    this.#readable.set(id, 'any');
  }

  /** Who published `h` as `id` (a label of the connection and frame). */
  sourceOf(id: string, h: Held): string {
    return this.#sources.get(`${id}@${heldKey(h)}`) ?? '?';
  }

  /** Every publish read so far has been acked: written, so fetches see only what ids hold now. */
  settled(): void {
    this.#readable.clear();
  }

  #remember(id: string, p: Possible): void {
    const r = this.#readable.get(id) ?? new Map<string, Held>();
    if (p === 'any' || r === 'any') {
      this.#readable.set(id, 'any');
      return;
    }
    for (const h of p) r.set(heldKey(h), h);
    this.#readable.set(id, r);
  }

  /**
   * A publish of `id` that passed the server's checks (or, with `maybe`, that may have
   * been refused). Returns the statuses its ack may carry (A2).
   */
  apply(id: string, v: { ts: bigint; hash: string }, maybe: boolean, source = ''): AckStatus[] {
    this.#sources.set(`${id}@${heldKey(v)}`, source);
    const before = this.possible(id);
    this.#remember(id, before);
    if (before === 'any') return [AckStatus.Accepted, AckStatus.Stale];
    const after = new Map<string, Held>(maybe ? before.map((h) => [heldKey(h), h]) : []);
    const statuses = new Set<AckStatus>();
    for (const h of before) {
      const accepted = h === null || v.ts > h.ts;
      statuses.add(accepted ? AckStatus.Accepted : AckStatus.Stale);
      const next = accepted ? v : h;
      after.set(heldKey(next), next);
    }
    const p: Possible = after.size > MAX_POSSIBLE ? 'any' : [...after.values()];
    this.#ids.set(id, p);
    this.#remember(id, p);
    return [...statuses];
  }
}

/** One id as drawn: its bytes, and what kind of id it is for the model. */
export interface IdDraw {
  bytes: Buffer;
  /**
   * precise: only this slot publishes it, the model knows its value. weak: shared by
   * every slot, any value. none: never published. good: the honest publisher's.
   * empty, long (over 256 bytes), bad (not UTF-8): refused.
   */
  cls: 'precise' | 'weak' | 'none' | 'good' | 'empty' | 'long' | 'bad';
  label: string;
}

/** `prefix`, padding, then `ch` repeated so that the id ends exactly at `total` bytes. */
function edgeId(prefix: string, ch: string, total: number): Buffer {
  const head = Buffer.from(prefix);
  const c = Buffer.from(ch);
  const room = total - head.length;
  const n = Math.floor(room / c.length);
  return Buffer.concat([head, Buffer.alloc(room - n * c.length, 0x5f), Buffer.from(ch.repeat(n))]);
}

const id = (bytes: Buffer, cls: IdDraw['cls'], label: string): IdDraw => ({ bytes, cls, label });
const text = (s: string, cls: IdDraw['cls']) => id(Buffer.from(s), cls, JSON.stringify(s).slice(0, 40));

/** The ids one slot draws from. */
export interface IdPools {
  precise: IdDraw[];
  big: IdDraw[];
  weak: IdDraw[];
  none: IdDraw[];
  good: IdDraw[];
  long: IdDraw[];
  bad: IdDraw[];
  empty: IdDraw;
}

export function idPools(slot: number): IdPools {
  const p = `fz${slot}/`;
  const edges = (total: number, cls: IdDraw['cls']) =>
    (
      [
        ['ascii', 'x'],
        ['2-byte', 'é'],
        ['3-byte', '€'],
        ['4-byte', '😀'],
      ] as const
    ).map(([name, ch]) => id(edgeId(`${p}e/${name}/`, ch, total), cls, `${total} bytes, ${name} at the edge`));
  // 255 bytes of 'é' then the first byte of another: the id is cut inside a character at the 256-byte edge.
  const cutAtEdge = Buffer.concat([edgeId(`${p}bad/`, 'é', 255), Buffer.of(0xc3)]);
  return {
    precise: [
      ...Array.from({ length: 16 }, (_, k) => text(`${p}${k}`, 'precise')),
      text(`${p}nul/\u0000`, 'precise'),
      text(`${p}fffd/\uFFFD`, 'precise'),
      text(`${p}e\u0301`, 'precise'),
      text(`${p}é`, 'precise'),
      ...edges(256, 'precise'),
    ],
    big: [text(`${p}big`, 'precise')],
    weak: [
      ...['a', 'b', '\u0000', '~'].map((s) => text(s, 'weak')),
      ...Array.from({ length: 6 }, (_, k) => text(`fzw/${k}`, 'weak')),
    ],
    none: Array.from({ length: 4 }, (_, k) => text(`${p}none/${k}`, 'none')),
    good: Array.from({ length: 4 }, (_, k) => text(`good/${k}`, 'good')),
    long: [
      ...edges(257, 'long'),
      id(Buffer.alloc(1000, 0x6c), 'long', '1000 bytes'),
      id(Buffer.alloc(0xffff, 0x6c), 'long', '65535 bytes'),
    ],
    bad: [
      [0x80],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
      [0xff],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]
      .map((b) => id(Buffer.concat([Buffer.from(`${p}bad/`), Buffer.from(b)]), 'bad', `not UTF-8 (${b.join(',')})`))
      .concat([id(cutAtEdge, 'bad', '256 bytes cut inside a character')]),
    empty: id(Buffer.alloc(0), 'empty', 'empty'),
  };
}

/** A connection's random state shared by its generators. */
export interface Env {
  limits: Limits;
  /** The server's epoch, hex. */
  epoch: string;
  pools: IdPools;
  model: SlotModel;
  /** Weight of the rare fatal variants in this connection (several connection lengths need several rates). */
  hostility: number;
  /** Names the connection being drawn, in reports. */
  tag?: string;
}

// ---------------------------------------------------------------------------------------
// Fields.

interface TsDraw {
  ts: bigint;
  /** Whether the server's clock check refuses it: no, yes, or it cannot be known (at the limit). */
  ahead: 'no' | 'yes' | 'maybe';
  label: string;
}

function drawTs(r: Rng, env: Env): TsDraw {
  const skew = BigInt(env.limits.skewMs) * 1_000_000n;
  const ms = 1_000_000n;
  const t = now();
  return weighted<() => TsDraw>(r, [
    [30, () => ({ ts: t, ahead: 'no', label: 'now' })],
    [8, () => ({ ts: t - BigInt(int(r, 1, 10_000)) * ms, ahead: 'no', label: 'now - n ms' })],
    [3, () => ({ ts: MIN_TS, ahead: 'no', label: '-2^63' })],
    [3, () => ({ ts: -1n, ahead: 'no', label: '-1' })],
    [3, () => ({ ts: 0n, ahead: 'no', label: '0' })],
    // The server reads its clock later than this process: within a millisecond of the
    // limit either answer is right (the two processes' clocks agree to about 1 ms).
    [2, () => ({ ts: t + skew - ms, ahead: 'maybe', label: 'now + skew - 1 ms' })],
    [2, () => ({ ts: t + skew + ms, ahead: 'maybe', label: 'now + skew + 1 ms' })],
    // Refused unless the frame waits 10 s in the server.
    [1, () => ({ ts: t + skew + 10_000n * ms, ahead: 'yes', label: 'now + skew + 10 s' })],
    [2, () => ({ ts: MAX_TS, ahead: 'yes', label: '2^63-1' })],
  ])();
}

interface DataDraw {
  data: Buffer;
  label: string;
  /** Data at --max-data: goes to the few ids kept for large values, so replays stay small. */
  big: boolean;
}

function fill(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n, int(r, 0, 255));
  for (let i = 0; i < Math.min(n, 16); i++) b[i] = int(r, 0, 255);
  return b;
}

function drawData(r: Rng, env: Env): DataDraw {
  const { maxData, maxFrame } = env.limits;
  return weighted<() => DataDraw>(r, [
    [8, () => ({ data: Buffer.alloc(0), label: 'empty', big: false })],
    [10, () => ({ data: fill(r, 1), label: '1 byte', big: false })],
    [50, () => ({ data: fill(r, int(r, 2, 64)), label: 'small', big: false })],
    [12, () => ({ data: fill(r, int(r, 65, 4096)), label: 'medium', big: false })],
    [0.6, () => ({ data: fill(r, maxData), label: 'max-data', big: true })],
    [0.6, () => ({ data: fill(r, maxData + 1), label: 'max-data + 1', big: false })],
    // Past the maximum frame: fatal, so rare.
    [0.2 * env.hostility, () => ({ data: fill(r, maxFrame), label: 'past max-frame', big: false })],
  ])();
}

function drawId(r: Rng, env: Env, recent: IdDraw[], big = false): IdDraw {
  const { pools } = env;
  if (big) return r() < 0.8 ? pick(r, pools.big) : text('fzw/big', 'weak');
  const drawn = weighted<() => IdDraw>(r, [
    [45, () => pick(r, pools.precise)],
    [recent.length > 0 ? 20 : 0, () => pick(r, recent)],
    [10, () => pick(r, pools.weak)],
    [3, () => pools.empty],
    [5, () => pick(r, pools.long)],
    [0.5 * env.hostility, () => pick(r, pools.bad)],
  ])();
  if (drawn.cls === 'precise' || drawn.cls === 'weak') recent.push(drawn);
  if (recent.length > 8) recent.shift();
  return drawn;
}

// ---------------------------------------------------------------------------------------
// Bytes.

const u8 = (n: number) => Buffer.of(n);
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const i64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const idField = (bytes: Buffer) => Buffer.concat([u16(bytes.length), bytes]);

/** A native frame (F1): u32 length, kind, body. */
export function nativeFrame(kind: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([u32(b.length + 1), u8(kind), b]);
}

/** Minimal msgpack writer: just what the hello extensions below need. */
const mp = {
  nil: () => u8(0xc0),
  bool: (v: boolean) => u8(v ? 0xc3 : 0xc2),
  int: (n: number) => {
    if (n >= 0 && n < 128) return u8(n);
    if (n < 0 && n >= -32) return u8(n & 0xff);
    const b = Buffer.alloc(5);
    b[0] = 0xd2;
    b.writeInt32BE(n, 1);
    return b;
  },
  f64: (x: number) => {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(x, 1);
    return b;
  },
  str: (s: string | Buffer) => {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    const n = b.length;
    const head = n < 32 ? u8(0xa0 | n) : n < 256 ? Buffer.of(0xd9, n) : Buffer.concat([u8(0xda), u16(n)]);
    return Buffer.concat([head, b]);
  },
  bin: (b: Buffer) =>
    Buffer.concat([b.length < 256 ? Buffer.of(0xc4, b.length) : Buffer.concat([u8(0xc5), u16(b.length)]), b]),
  arr: (items: Buffer[]) =>
    Buffer.concat([
      items.length < 16 ? u8(0x90 | items.length) : Buffer.concat([u8(0xdc), u16(items.length)]),
      ...items,
    ]),
  map: (pairs: [Buffer, Buffer][]) =>
    Buffer.concat([
      pairs.length < 16 ? u8(0x80 | pairs.length) : Buffer.concat([u8(0xde), u16(pairs.length)]),
      ...pairs.flat(),
    ]),
  ext: (type: number, data: Buffer) => Buffer.concat([Buffer.of(0xc7, data.length, type & 0xff), data]),
  /** A msgpack int64 (`d3`), as FrameEncoder writes a prefix's since (B2). */
  i64: (n: bigint) => Buffer.concat([u8(0xd3), i64(n)]),
  /** A msgpack uint64 (`cf`): past 2^63 - 1 it is no since (B2). */
  u64: (n: bigint) => Buffer.concat([u8(0xcf), u64(n)]),
};

/** A str value that makes `{ [key]: value }` exactly `total` bytes (total well over 300). */
function mapToSize(key: string, total: number): Buffer {
  const k = mp.str(key);
  // fixmap (1) + key + str16 header (3) + content.
  return mp.map([[k, mp.str(Buffer.alloc(total - 1 - k.length - 3, 0x6e))]]);
}

interface ExtDraw {
  bytes: Buffer;
  label: string;
  /** ok: a valid extension. bad: fatal MALFORMED_FRAME (H1, B2). */
  fate: 'ok' | 'bad';
  /** The `prefixes` it names (B2), when valid in shape; undefined when it names none. */
  prefixes?: { prefix: string; since: bigint | null }[];
  /** What the server refuses them for, fatal (B2): too many, too long, one twice. */
  codes?: ErrorCode[];
}

/**
 * Prefixes a connection of this slot subscribes to: ones that match its own ids, the
 * shared ones and the honest publisher's, none at all, "" (everything), and the longest
 * gossipd takes (256 bytes of 2-byte characters).
 */
function prefixPool(env: Env): string[] {
  const own = env.pools.precise[0]?.bytes.toString('utf8') ?? 'fz0/0';
  const slot = own.slice(0, own.indexOf('/') + 1);
  return [
    '',
    slot,
    `${slot}1`,
    `${slot}e/`,
    `${slot}none/`,
    'fzw/',
    'a',
    'good/',
    'zz/',
    'é'.repeat(MAX_PREFIX_BYTES / 2),
  ];
}

/** A since of a prefix (B2, B3): live only, everything, a while ago, now, or the far ends of i64. */
function drawSince(r: Rng): bigint | null {
  const t = now();
  return weighted<bigint | null>(r, [
    [4, null],
    [3, MIN_TS],
    [3, t - 5_000_000_000n],
    [2, t],
    [1, 0n],
    [1, MAX_TS],
  ]);
}

/** A hello extension naming `prefixes` (B2): within the limits, past them, or of a wrong shape. */
function drawPrefixesExtension(r: Rng, env: Env): ExtDraw {
  const max = env.limits.maxPrefixes;
  const pool = prefixPool(env);
  const sinceValue = (since: bigint | null) =>
    since === null ? mp.nil() : since >= 0n && since < 128n && r() < 0.5 ? mp.int(Number(since)) : mp.i64(since);
  const entry = (prefix: string | Buffer, since: bigint | null) => mp.arr([mp.str(prefix), sinceValue(since)]);
  const ext = (value: Buffer) =>
    mp.map(
      r() < 0.3
        ? [
            [mp.str('name'), mp.str('fuzz')],
            [mp.str('prefixes'), value],
          ]
        : [[mp.str('prefixes'), value]],
    );
  const bad = (value: Buffer, label: string): ExtDraw => ({ bytes: ext(value), label, fate: 'bad' });
  return weighted<() => ExtDraw>(r, [
    [
      20,
      () => {
        const n = weighted<() => number>(r, [
          [3, () => 0],
          [8, () => int(r, 1, max)],
          [2, () => max],
          [1, () => max + 1],
        ])();
        const prefixes = Array.from({ length: n }, () => ({
          prefix: weighted<() => string>(r, [
            [30, () => pick(r, pool)],
            [1, () => 'x'.repeat(MAX_PREFIX_BYTES + 1)],
          ])(),
          since: drawSince(r),
        }));
        const codes: ErrorCode[] = [];
        if (n > max) codes.push('GOSSIP_ERR_TOO_MANY_PREFIXES');
        if (prefixes.some((p) => Buffer.byteLength(p.prefix) > MAX_PREFIX_BYTES))
          codes.push('GOSSIP_ERR_PREFIX_TOO_LONG');
        if (new Set(prefixes.map((p) => p.prefix)).size < n) codes.push('GOSSIP_ERR_ALREADY_SUBSCRIBED');
        return {
          bytes: ext(mp.arr(prefixes.map((p) => entry(p.prefix, p.since)))),
          label: `prefixes [${prefixes.map((p) => `${JSON.stringify(p.prefix.slice(0, 12))} ${p.since}`).join(', ')}]`,
          fate: 'ok',
          prefixes,
          codes,
        };
      },
    ],
    [1, () => bad(mp.map([]), 'prefixes that are a map')],
    [1, () => bad(mp.str('flags/'), 'prefixes that are a string')],
    [1, () => bad(mp.nil(), 'prefixes that are nil')],
    [1, () => bad(mp.arr([mp.arr([mp.str('a'), mp.nil(), mp.nil()])]), 'an entry of 3')],
    [1, () => bad(mp.arr([mp.str('a')]), 'an entry that is a string')],
    [1, () => bad(mp.arr([mp.arr([mp.int(1), mp.nil()])]), 'a prefix that is an int')],
    [1, () => bad(mp.arr([mp.arr([mp.bin(Buffer.from('a')), mp.nil()])]), 'a prefix that is a bin')],
    [1, () => bad(mp.arr([mp.arr([mp.str('a'), mp.str('0')])]), 'a since that is a string')],
    [1, () => bad(mp.arr([mp.arr([mp.str('a'), mp.f64(1.5)])]), 'a since that is a float')],
    [1, () => bad(mp.arr([mp.arr([mp.str('a'), mp.u64(2n ** 63n)])]), 'a since past i64')],
    [1, () => bad(mp.arr([entry(Buffer.of(0x61, 0xff), null)]), 'a prefix that is not UTF-8')],
  ])();
}

function drawExtension(r: Rng): ExtDraw {
  const some = () =>
    pick(r, [
      mp.nil(),
      mp.bool(true),
      mp.int(int(r, -1000, 1_000_000)),
      mp.f64(r() * 1e9),
      mp.str('value'),
      mp.bin(Buffer.alloc(int(r, 0, 40), 1)),
      mp.arr([mp.int(1), mp.str('x')]),
      mp.map([[mp.str('k'), mp.map([[mp.str('deeper'), mp.arr([mp.nil()])]])]]),
      // A timestamp (extension type -1): plain msgpack, read as a Date.
      Buffer.from('d6ff00000001', 'hex'),
    ]);
  const nested = (depth: number) => Buffer.concat([Buffer.alloc(depth, 0x91), mp.nil()]);
  const odd = () =>
    pick(r, [mp.int(7), mp.nil(), mp.bool(false), mp.f64(1.5), mp.bin(Buffer.from('name')), mp.arr([]), mp.map([])]);
  return weighted<() => ExtDraw>(r, [
    [10, () => ({ bytes: Buffer.alloc(0), label: 'absent', fate: 'ok' })],
    [10, () => ({ bytes: mp.map([]), label: 'empty map', fate: 'ok' })],
    [
      10,
      () => {
        const n = pick(r, [0, 1, 100, 1000]);
        return { bytes: mp.map([[mp.str('name'), mp.str(Buffer.alloc(n, 0x61))]]), label: `name of ${n}`, fate: 'ok' };
      },
    ],
    [4, () => ({ bytes: mp.map([[mp.str('token'), mp.str('t'.repeat(int(r, 0, 300)))]]), label: 'token', fate: 'ok' })],
    [
      3,
      () => ({
        bytes: mapToSize(pick(r, ['name', 'token', 'other']), MAX_EXTENSION_BYTES),
        label: 'exactly 16384 bytes',
        fate: 'ok',
      }),
    ],
    [
      2,
      () => ({
        bytes: mapToSize(pick(r, ['name', 'token']), MAX_EXTENSION_BYTES + 1),
        label: '16385 bytes',
        fate: 'bad',
      }),
    ],
    // H1: a known key whose value has the wrong type.
    [
      5,
      () => ({
        bytes: mp.map([[mp.str(pick(r, ['name', 'token'])), odd()]]),
        label: 'name/token of another type',
        fate: 'bad',
      }),
    ],
    [
      6,
      () => {
        const keys = ['other', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'Name', 'name '];
        const pairs: [Buffer, Buffer][] = Array.from({ length: int(r, 1, 5) }, () => [mp.str(pick(r, keys)), some()]);
        if (r() < 0.5) pairs.push([mp.str('name'), mp.str('fuzz')]);
        return { bytes: mp.map(pairs), label: 'unknown keys', fate: 'ok' };
      },
    ],
    [
      3,
      () => ({
        bytes: mp.map([[pick(r, [mp.int(1), mp.int(-5), mp.nil(), mp.bool(true), mp.f64(2.5)]), some()]]),
        label: 'a scalar key that is not a string',
        fate: 'ok',
      }),
    ],
    // H1: arrays and maps nest at most MAX_EXTENSION_DEPTH deep, the extension's map counted.
    [
      2,
      () => ({
        bytes: mp.map([[mp.str('x'), nested(MAX_EXTENSION_DEPTH - 1)]]),
        label: 'nested to the limit',
        fate: 'ok',
      }),
    ],
    [
      2,
      () => ({
        bytes: mp.map([[mp.str('x'), nested(MAX_EXTENSION_DEPTH)]]),
        label: 'nested past the limit',
        fate: 'bad',
      }),
    ],
    [1, () => ({ bytes: mp.map([[mp.str('x'), nested(1000)]]), label: 'nested 1000 deep', fate: 'bad' })],
    [
      1,
      () => ({
        bytes: mp.map([[pick(r, [mp.bin(Buffer.from('k')), mp.arr([mp.int(1)]), mp.map([])]), mp.int(1)]]),
        label: 'a bin/array/map key',
        fate: 'bad',
      }),
    ],
    [1, () => ({ bytes: mp.map([[mp.str('x'), mp.ext(5, Buffer.of(1))]]), label: 'unknown ext type', fate: 'bad' })],
    [1, () => ({ bytes: mp.map([[mp.str('x'), nested(16_000)]]), label: 'nested 16000 deep', fate: 'bad' })],
    [
      6,
      () =>
        pick(r, [
          { bytes: mp.nil(), label: 'nil, not a map', fate: 'bad' },
          { bytes: mp.arr([]), label: 'an array, not a map', fate: 'bad' },
          { bytes: mp.bin(Buffer.alloc(3)), label: 'a bin, not a map', fate: 'bad' },
          { bytes: mp.int(3), label: 'an int, not a map', fate: 'bad' },
          { bytes: mp.str('name'), label: 'a str, not a map', fate: 'bad' },
          { bytes: Buffer.of(0x81), label: 'a map cut short', fate: 'bad' },
          { bytes: Buffer.of(0xc1), label: 'the never-used byte c1', fate: 'bad' },
          { bytes: Buffer.of(0x80, 0x00), label: 'a map and a trailing byte', fate: 'bad' },
        ] satisfies ExtDraw[]),
    ],
  ])();
}

// ---------------------------------------------------------------------------------------
// What a native connection is owed.

/**
 * How a connection ends after a frame. keep: it stays. fatal: the server sends one
 * error frame with one of `codes` and closes. maybe: either (the frame is the last one
 * sent). quiet: the server closes, and an error frame, if any, has one of `codes`.
 */
export type Fate =
  | { t: 'keep' }
  | { t: 'fatal'; codes: ErrorCode[] }
  | { t: 'maybe'; codes: ErrorCode[] }
  | { t: 'quiet'; codes: ErrorCode[] };

const KEEP: Fate = { t: 'keep' };
const fatal = (...codes: ErrorCode[]): Fate => ({ t: 'fatal', codes });

export interface Drawn {
  bytes: Buffer;
  label: string;
  fate: Fate;
}

/** An ack outcome: accepted, stale, or an error code (A1, A2). */
export type AckOutcome = 'accepted' | 'stale' | ErrorCode;

export interface AckExpect {
  reqId: number;
  outcomes: AckOutcome[];
  /** A publish's accepted ack has durability written or synced; every other ack none (A3). */
  publish: boolean;
  /** May not come (an emit with reqId 0 at the skew limit). */
  optional: boolean;
  label: string;
}

export interface FetchExpect {
  reqId: number;
  /** Each distinct id once, in the order of first mention (Q2). */
  ids: string[];
  /** Per id: the values its entry may carry (null: not found), or 'any'. Read when the answer is checked. */
  allowed: Map<string, () => Possible>;
  label: string;
}

export interface HelloExpect {
  since: bigint | null;
  epoch: string | null;
  echo: boolean;
  /** The prefixes it named (B2); undefined: it holds "" with its since (B1). */
  prefixes: { prefix: string; since: bigint | null }[] | undefined;
}

/**
 * One prefix the connection holds (B1), from its hello or an accepted subscribe, until
 * an accepted unsubscribe drops it. The server takes the frames in order, so the plan
 * knows which it holds after each frame.
 */
export interface PrefixHold {
  prefix: string;
  since: bigint | null;
  epoch: string | null;
  /** Named (B2, B3): its replay ends with a prefix-done; otherwise the "" of a hello that named none (R2). */
  named: boolean;
  /** The reqId of the subscribe that added it (unique in the plan); undefined: the hello's. */
  reqId: number | undefined;
  dropped: boolean;
}

/** A message the connection must (echo on) or must not (echo off, own ids) see live. */
export interface EchoExpect {
  key: string;
  own: boolean;
  /** The prefixes that matched its id when it was sent: it must come if one of them is never dropped (B1). */
  by: PrefixHold[];
}

export const echoKey = (transient: boolean, id: string, ts: bigint, hash: string) =>
  `${transient ? 'S' : 'M'}|${id}|${ts}|${hash}`;

/** A native connection as drawn: its frames and what the server owes for them. */
export class NativePlan {
  state: 'hello' | 'live' = 'hello';
  readonly frames: Drawn[] = [];
  hello: HelloExpect | undefined;
  readonly acks: AckExpect[] = [];
  readonly pings: number[] = [];
  readonly fetches: FetchExpect[] = [];
  readonly echoes: EchoExpect[] = [];
  /** Ids whose live messages the reader keeps (to check echoes). */
  readonly watch = new Set<string>();
  readonly reqIds: number[] = [];
  readonly recent: IdDraw[] = [];
  /** The prefixes held after the frames so far (B1). */
  readonly held = new Map<string, PrefixHold>();
  /** Every prefix ever held, in the order they were added. */
  readonly holds: PrefixHold[] = [];
  /** The holds added by subscribes, by their reqId. */
  readonly subscribes = new Map<number, PrefixHold>();
  /** Whether messages are matched prefix by prefix at some point: a hello that named prefixes, or an accepted subscribe or unsubscribe. */
  scoped = false;
  #reqId = 1;

  get fate(): Fate {
    return this.frames.at(-1)?.fate ?? KEEP;
  }

  hold(prefix: string, since: bigint | null, epoch: string | null, named: boolean, reqId?: number): void {
    const h: PrefixHold = { prefix, since, epoch, named, reqId, dropped: false };
    this.held.set(prefix, h);
    this.holds.push(h);
    if (reqId !== undefined) this.subscribes.set(reqId, h);
  }

  /** The prefixes held now that `id` is under. */
  matching(id: string): PrefixHold[] {
    return [...this.held.values()].filter((h) => id.startsWith(h.prefix));
  }

  nextReqId(): number {
    return this.#reqId++;
  }
}

export type NativeGenerator = (r: Rng, env: Env, plan: NativePlan) => Drawn;

/**
 * Fates decided before a handler runs: the frame's length against the maximum (F3, F4),
 * then the decoder's own failures, then a frame other than a hello before the hello.
 */
function early(plan: NativePlan, env: Env, length: number, decode: ErrorCode[] = []): Fate | undefined {
  const max = plan.state === 'hello' ? MAX_HELLO_FRAME_BYTES : env.limits.maxFrame;
  if (length > max) return fatal('GOSSIP_ERR_FRAME_TOO_LARGE');
  if (decode.length > 0) return fatal(...decode);
  if (plan.state === 'hello') return fatal('GOSSIP_ERR_UNEXPECTED_FRAME');
  return undefined;
}

/**
 * A frame whose declared length is past anything the server takes: only its first bytes
 * are sent, since the server fails on the length (F3) and reads no more.
 */
function declared(frame: Buffer): Buffer {
  return frame.length > 1024 * 1024 ? frame.subarray(0, 64) : frame;
}

function drawReqId(r: Rng, plan: NativePlan, zeroWeight: number): number {
  const n = weighted<() => number>(r, [
    [50, () => plan.nextReqId()],
    [zeroWeight, () => 0],
    [4, () => 0xffffffff],
    [plan.reqIds.length > 0 ? 12 : 0, () => pick(r, plan.reqIds)],
    [8, () => int(r, 0, 0xffffffff)],
  ])();
  plan.reqIds.push(n);
  if (plan.reqIds.length > 16) plan.reqIds.shift();
  return n;
}

/** Publish (P1) and emit (P2): the same layout, the same checks. */
function publishLike(kind: typeof FrameKind.Publish | typeof FrameKind.Emit): NativeGenerator {
  const publish = kind === FrameKind.Publish;
  const name = publish ? 'publish' : 'emit';
  return (r, env, plan) => {
    const reqId = drawReqId(r, plan, publish ? 8 : 30);
    const d = drawData(r, env);
    const i = drawId(r, env, plan.recent, d.big && publish);
    const t = drawTs(r, env);
    const bytes = declared(nativeFrame(kind, u32(reqId), i64(t.ts), idField(i.bytes), d.data));
    const label = `${name} reqId ${reqId} id ${i.label} ts ${t.label} data ${d.label}`;
    const pre = early(
      plan,
      env,
      15 + i.bytes.length + d.data.length,
      i.cls === 'bad' ? ['GOSSIP_ERR_ID_NOT_UTF8'] : [],
    );
    if (pre) return { bytes, label, fate: pre };

    // Refused with an error ack, the connection stays (Conventions, P1, P4). The doc
    // names no order among several reasons: any of them may be the one given.
    const codes: ErrorCode[] = [];
    if (i.cls === 'empty') codes.push('GOSSIP_ERR_ID_EMPTY');
    if (i.cls === 'long') codes.push('GOSSIP_ERR_ID_TOO_LONG');
    if (d.data.length > env.limits.maxData) codes.push('GOSSIP_ERR_DATA_TOO_LARGE');
    if (t.ts === MIN_TS) codes.push('GOSSIP_ERR_TS_RESERVED');
    if (t.ahead === 'yes') codes.push('GOSSIP_ERR_TS_AHEAD');
    if (codes.length > 0) {
      // A refused emit is reported even with reqId 0 (P2).
      plan.acks.push({ reqId, outcomes: codes, publish, optional: false, label });
      return { bytes, label, fate: KEEP };
    }
    const maybe = t.ahead === 'maybe';
    const idText = i.bytes.toString('utf8');
    const hash = hashOf(d.data);
    const own = i.cls === 'precise';
    let outcomes: AckOutcome[];
    if (publish) {
      if (own) {
        const statuses = env.model.apply(
          idText,
          { ts: t.ts, hash },
          maybe,
          `${env.tag} frame ${plan.frames.length}: ${label}`,
        );
        outcomes = statuses.map((s) => (s === AckStatus.Accepted ? 'accepted' : 'stale'));
      } else {
        outcomes = ['accepted', 'stale'];
      }
    } else {
      outcomes = ['accepted'];
    }
    if (maybe) outcomes.push('GOSSIP_ERR_TS_AHEAD');
    if (publish || reqId !== 0) plan.acks.push({ reqId, outcomes, publish, optional: false, label });
    else if (maybe) plan.acks.push({ reqId, outcomes: ['GOSSIP_ERR_TS_AHEAD'], publish, optional: true, label });
    // Certainly accepted: the connection gets it back, unless echo is off (H1, A4).
    if (!maybe && outcomes.length === 1 && outcomes[0] === 'accepted') {
      plan.echoes.push({ key: echoKey(!publish, idText, t.ts, hash), own, by: plan.matching(idText) });
      plan.watch.add(idText);
    }
    return { bytes, label, fate: KEEP };
  };
}

const helloGen: NativeGenerator = (r, env, plan) => {
  const version = weighted(r, [
    [90, 1],
    [3, 0],
    [4, 2],
    [3, 255],
  ]);
  const flags = r() < 0.7 ? int(r, 0, 7) : int(r, 0, 255);
  const t = now();
  const since = weighted(r, [
    [3, MIN_TS],
    [1, -1n],
    [1, 0n],
    [3, t],
    [3, t - 5_000_000_000n],
    [1, MAX_TS],
    // Written where flag bit 0 is clear too: the receiver must not read it (H1).
    [1, BigInt.asIntN(64, BigInt(int(r, 0, 0xffffffff)) << 31n)],
  ]);
  const epochKind = weighted(r, [
    [2, 'zero'],
    [2, 'random'],
    [4, 'server'],
  ] as const);
  const epoch =
    epochKind === 'zero'
      ? Buffer.alloc(16)
      : epochKind === 'random'
        ? Buffer.from(Array.from({ length: 16 }, () => int(r, 0, 255)))
        : Buffer.from(env.epoch, 'hex');
  const ext = r() < 0.3 ? drawPrefixesExtension(r, env) : drawExtension(r);
  const bytes = nativeFrame(
    FrameKind.Hello,
    Buffer.of(0x89, 0x47, 0x53, 0x50, version, flags),
    i64(since),
    epoch,
    ext.bytes,
  );
  const label = `hello v${version} flags ${flags.toString(2)} since ${since} epoch ${epochKind} ext ${ext.label}`;
  const length = bytes.length - 4;
  if (plan.state === 'live') {
    // A second hello (Connection lifecycle): unexpected, or malformed when its extension is.
    const codes: ErrorCode[] = ['GOSSIP_ERR_UNEXPECTED_FRAME'];
    if (ext.fate !== 'ok') codes.push('GOSSIP_ERR_MALFORMED_FRAME');
    return { bytes, label, fate: early(plan, env, length) ?? fatal(...codes) };
  }
  if (length > MAX_HELLO_FRAME_BYTES) return { bytes, label, fate: fatal('GOSSIP_ERR_FRAME_TOO_LARGE') };
  // The decoder reads the extension and the server checks the version (H2); the doc
  // does not order the two, so with both wrong either code is right.
  // The limits of its prefixes are the server's, checked after the version (B2).
  const codes: ErrorCode[] = [];
  if (ext.fate === 'bad') codes.push('GOSSIP_ERR_MALFORMED_FRAME');
  if (version !== 1) codes.push('GOSSIP_ERR_UNSUPPORTED_VERSION');
  else if (ext.fate === 'ok') codes.push(...(ext.codes ?? []));
  if (codes.length > 0) return { bytes, label, fate: fatal(...codes) };
  plan.state = 'live';
  const helloSince = flags & 0x01 ? since : null;
  const helloEpoch = flags & 0x02 ? epoch.toString('hex') : null;
  plan.hello = { since: helloSince, epoch: helloEpoch, echo: (flags & 0x04) === 0, prefixes: ext.prefixes };
  if (ext.prefixes === undefined) plan.hold('', helloSince, helloEpoch, false);
  else {
    // With prefixes the hello's own since is not used; its epoch is, for each (B2).
    plan.scoped = true;
    for (const p of ext.prefixes) plan.hold(p.prefix, p.since, helloEpoch, true);
  }
  return { bytes, label, fate: KEEP };
};

const fetchGen: NativeGenerator = (r, env, plan) => {
  const reqId = drawReqId(r, plan, 5);
  const cap = env.limits.maxFetchIds;
  const count = weighted<() => number>(r, [
    [6, () => 0],
    [70, () => int(r, 1, 6)],
    [6, () => cap],
    [5, () => cap + 1],
    [4, () => int(r, 7, 3 * cap)],
  ])();
  const { pools } = env;
  const ids: IdDraw[] = [];
  for (let k = 0; k < count; k++) {
    const drawn = weighted<() => IdDraw>(r, [
      [30, () => pick(r, pools.precise)],
      [4, () => pick(r, pools.big)],
      [plan.recent.length > 0 ? 15 : 0, () => pick(r, plan.recent)],
      [10, () => pick(r, pools.none)],
      [8, () => pick(r, pools.weak)],
      [6, () => pick(r, pools.good)],
      [ids.length > 0 ? 12 : 0, () => pick(r, ids)],
      [0.6, () => pools.empty],
      [0.6, () => pick(r, pools.long)],
      [0.05 * env.hostility, () => pick(r, pools.bad)],
    ])();
    ids.push(drawn);
  }
  const bytes = nativeFrame(FrameKind.Fetch, u32(reqId), u16(ids.length), ...ids.map((i) => idField(i.bytes)));
  const label = `fetch reqId ${reqId} of ${ids.length} ids (${[...new Set(ids.map((i) => i.label))].slice(0, 6).join(', ')})`;
  const pre = early(plan, env, bytes.length - 4, ids.some((i) => i.cls === 'bad') ? ['GOSSIP_ERR_ID_NOT_UTF8'] : []);
  if (pre) return { bytes, label, fate: pre };
  // Over the cap, an empty or a too long id: an error ack, the connection stays (Q1);
  // with several reasons the doc does not say which is named.
  const codes: ErrorCode[] = [];
  if (ids.length > cap) codes.push('GOSSIP_ERR_TOO_MANY_IDS');
  if (ids.some((i) => i.cls === 'empty')) codes.push('GOSSIP_ERR_ID_EMPTY');
  if (ids.some((i) => i.cls === 'long')) codes.push('GOSSIP_ERR_ID_TOO_LONG');
  if (codes.length > 0) {
    plan.acks.push({ reqId, outcomes: codes, publish: false, optional: false, label });
    return { bytes, label, fate: KEEP };
  }
  const allowed = new Map<string, () => Possible>();
  for (const i of ids) {
    const t = i.bytes.toString('utf8');
    if (allowed.has(t)) continue;
    if (i.cls === 'precise') {
      // Read when the answer is checked: the fetch runs later than it is read (Q3), so it may see the connection's later publishes.
      allowed.set(t, () => env.model.readable(t));
    } else if (i.cls === 'none') {
      allowed.set(t, () => [null]);
    } else {
      allowed.set(t, () => 'any');
    }
  }
  plan.fetches.push({ reqId, ids: [...allowed.keys()], allowed, label });
  return { bytes, label, fate: KEEP };
};

interface PrefixDraw {
  bytes: Buffer;
  text: string;
  /** ok: a prefix gossipd takes. long: over 256 bytes (an error ack). bad: not UTF-8 (fatal). */
  cls: 'ok' | 'long' | 'bad';
  label: string;
}

function drawPrefix(r: Rng, env: Env, plan: NativePlan): PrefixDraw {
  const ok = (text: string): PrefixDraw => ({
    bytes: Buffer.from(text),
    text,
    cls: 'ok',
    label: JSON.stringify(text.slice(0, 16)),
  });
  const held = [...plan.held.keys()];
  return weighted<() => PrefixDraw>(r, [
    [held.length > 0 ? 30 : 0, () => ok(pick(r, held))],
    [30, () => ok(pick(r, prefixPool(env)))],
    [3, () => ({ bytes: Buffer.alloc(257, 0x78), text: 'x'.repeat(257), cls: 'long', label: '257 bytes' })],
    [1, () => ({ bytes: Buffer.alloc(0xffff, 0x78), text: 'x'.repeat(0xffff), cls: 'long', label: '65535 bytes' })],
    [
      0.3 * env.hostility,
      () => ({
        bytes: Buffer.concat([Buffer.from('fzb/'), pick(r, env.pools.bad).bytes]),
        text: '',
        cls: 'bad',
        label: 'not UTF-8',
      }),
    ],
  ])();
}

/** Subscribe (B3): an error ack for a prefix too long, held, or one too many; otherwise an ack, then its replay. */
const subscribeGen: NativeGenerator = (r, env, plan) => {
  // A reqId of its own: the checker finds the replay that follows by it.
  const reqId = plan.nextReqId();
  const p = drawPrefix(r, env, plan);
  const since = drawSince(r);
  const epochKind = weighted(r, [
    [3, 'none'],
    [1, 'zero'],
    [1, 'random'],
    [4, 'server'],
  ] as const);
  const epoch =
    epochKind === 'none' || epochKind === 'zero'
      ? Buffer.alloc(16)
      : epochKind === 'random'
        ? Buffer.from(Array.from({ length: 16 }, () => int(r, 0, 255)))
        : Buffer.from(env.epoch, 'hex');
  // Reserved flag bits are ignored (Conventions).
  const flags = (since === null ? 0 : 0x01) | (epochKind === 'none' ? 0 : 0x02) | (r() < 0.1 ? 0xf0 : 0);
  const bytes = nativeFrame(FrameKind.Subscribe, u32(reqId), u8(flags), i64(since ?? 0n), epoch, idField(p.bytes));
  const label = `subscribe reqId ${reqId} ${p.label} since ${since} epoch ${epochKind}`;
  const pre = early(plan, env, bytes.length - 4, p.cls === 'bad' ? ['GOSSIP_ERR_ID_NOT_UTF8'] : []);
  if (pre) return { bytes, label, fate: pre };
  const codes: ErrorCode[] = [];
  if (p.cls === 'long') codes.push('GOSSIP_ERR_PREFIX_TOO_LONG');
  else if (plan.held.has(p.text)) codes.push('GOSSIP_ERR_ALREADY_SUBSCRIBED');
  if (p.cls === 'ok' && plan.held.size >= env.limits.maxPrefixes) codes.push('GOSSIP_ERR_TOO_MANY_PREFIXES');
  if (codes.length > 0) {
    plan.acks.push({ reqId, outcomes: codes, publish: false, optional: false, label });
    return { bytes, label, fate: KEEP };
  }
  plan.acks.push({ reqId, outcomes: ['accepted'], publish: false, optional: false, label });
  plan.scoped = true;
  plan.hold(p.text, since, epochKind === 'none' ? null : epoch.toString('hex'), true, reqId);
  return { bytes, label, fate: KEEP };
};

/** Unsubscribe (B4): an error ack for a prefix too long or not held; otherwise dropped and acked. */
const unsubscribeGen: NativeGenerator = (r, env, plan) => {
  const reqId = drawReqId(r, plan, 5);
  const p = drawPrefix(r, env, plan);
  const bytes = nativeFrame(FrameKind.Unsubscribe, u32(reqId), idField(p.bytes));
  const label = `unsubscribe reqId ${reqId} ${p.label}`;
  const pre = early(plan, env, bytes.length - 4, p.cls === 'bad' ? ['GOSSIP_ERR_ID_NOT_UTF8'] : []);
  if (pre) return { bytes, label, fate: pre };
  const held = plan.held.get(p.text);
  const outcome: AckOutcome =
    p.cls === 'long' ? 'GOSSIP_ERR_PREFIX_TOO_LONG' : held === undefined ? 'GOSSIP_ERR_NOT_SUBSCRIBED' : 'accepted';
  plan.acks.push({ reqId, outcomes: [outcome], publish: false, optional: false, label });
  if (held !== undefined && p.cls === 'ok') {
    plan.scoped = true;
    held.dropped = true;
    plan.held.delete(p.text);
  }
  return { bytes, label, fate: KEEP };
};

const pingGen: NativeGenerator = (r, env, plan) => {
  const nonce = pick(r, [0, 1, 0xffffffff, int(r, 0, 0xffffffff)]);
  const bytes = nativeFrame(FrameKind.Ping, u32(nonce));
  const label = `ping ${nonce}`;
  const pre = early(plan, env, bytes.length - 4);
  if (pre) return { bytes, label, fate: pre };
  plan.pings.push(nonce);
  return { bytes, label, fate: KEEP };
};

const pongGen: NativeGenerator = (r, env, plan) => {
  const t = drawTs(r, env);
  const bytes = nativeFrame(FrameKind.Pong, u32(int(r, 0, 0xffffffff)), i64(t.ts));
  // A pong from a client needs no answer (K2).
  return { bytes, label: `pong ts ${t.label}`, fate: early(plan, env, bytes.length - 4) ?? KEEP };
};

const errorGen: NativeGenerator = (r, env, plan) => {
  const code = r() < 0.5 ? int(r, 0, 21) : int(r, 0, 0xffff);
  const message = weighted<() => Buffer>(r, [
    [3, () => Buffer.alloc(0)],
    [5, () => Buffer.from('fuzz: closing')],
    [1, () => Buffer.of(0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80)],
    [1, () => Buffer.alloc(int(r, 1000, 60_000), 0x65)],
  ])();
  const bytes = nativeFrame(FrameKind.Error, u16(code), message);
  const label = `error code ${code} text of ${message.length}`;
  const max = plan.state === 'hello' ? MAX_HELLO_FRAME_BYTES : env.limits.maxFrame;
  if (bytes.length - 4 > max) return { bytes, label, fate: fatal('GOSSIP_ERR_FRAME_TOO_LARGE') };
  // A client closing with an error frame gets no answer (E2). Before its hello, the
  // lifecycle also makes it an unexpected frame: either is right.
  return { bytes, label, fate: { t: 'quiet', codes: plan.state === 'hello' ? ['GOSSIP_ERR_UNEXPECTED_FRAME'] : [] } };
};

/** A kind only a server sends, valid in layout, from a client: fatal (Connection lifecycle). */
function serverOnly(kind: FrameKind, name: string, body: (r: Rng, env: Env) => Buffer[]): NativeGenerator {
  return (r, env, plan) => {
    const bytes = nativeFrame(kind, ...body(r, env));
    return {
      bytes,
      label: `${name} from a client`,
      fate: early(plan, env, bytes.length - 4) ?? fatal('GOSSIP_ERR_UNEXPECTED_FRAME'),
    };
  };
}

const anyTs = (r: Rng, env: Env) => i64(drawTs(r, env).ts);
const validId = (r: Rng, env: Env) =>
  idField(pick(r, [...env.pools.precise, ...env.pools.weak, env.pools.empty]).bytes);

/** Every native kind has a generator (F2); a client sends all of them. */
export const NATIVE_GENERATORS: Record<FrameKind, NativeGenerator> = {
  [FrameKind.Hello]: helloGen,
  [FrameKind.Welcome]: serverOnly(FrameKind.Welcome, 'welcome', (r, env) => {
    const epoch = Buffer.from(Array.from({ length: 16 }, () => int(r, 0, 255)));
    epoch[0] = 1; // never all zero (W1)
    const ext = pick(r, [
      Buffer.alloc(0),
      mp.map([]),
      mp.map([[mp.str('server'), mp.str('fuzz/0')]]),
      mp.map([[mp.str('pingIntervalMs'), mp.int(int(r, 0, 100_000))]]),
    ]);
    return [
      u8(int(r, 0, 255)),
      u8(int(r, 0, 255)),
      epoch,
      anyTs(r, env),
      anyTs(r, env),
      u16(int(r, 0, 0xffff)),
      u32(int(r, 0, 0xffffffff)),
      u32(int(r, 0, 0xffffffff)),
      ext,
    ];
  }),
  [FrameKind.Publish]: publishLike(FrameKind.Publish),
  [FrameKind.Emit]: publishLike(FrameKind.Emit),
  [FrameKind.Ack]: serverOnly(FrameKind.Ack, 'ack', (r) => [
    u32(int(r, 0, 0xffffffff)),
    u8(int(r, 0, 2)),
    u8(int(r, 0, 2)),
    u16(int(r, 0, 0xffff)),
    Buffer.from('acked'),
  ]),
  [FrameKind.Message]: serverOnly(FrameKind.Message, 'message', (r, env) => [
    u8(int(r, 0, 255)),
    anyTs(r, env),
    validId(r, env),
    fill(r, int(r, 0, 100)),
  ]),
  [FrameKind.ReplayDone]: serverOnly(FrameKind.ReplayDone, 'replay-done', (r, env) => [
    u8(int(r, 0, 255)),
    u64(BigInt(int(r, 0, 2 ** 53 - 1))),
    anyTs(r, env),
  ]),
  [FrameKind.Resync]: serverOnly(FrameKind.Resync, 'resync', (r, env) => [
    u8(int(r, 1, 3)),
    u8(int(r, 0, 255)),
    anyTs(r, env),
  ]),
  [FrameKind.Fetch]: fetchGen,
  [FrameKind.FetchResult]: serverOnly(FrameKind.FetchResult, 'fetch-result', (r, env) => {
    const entries = Array.from({ length: int(r, 0, 3) }, () =>
      r() < 0.5
        ? Buffer.concat([validId(r, env), u8(0)])
        : Buffer.concat([validId(r, env), u8(1), anyTs(r, env), u32(3), Buffer.from('abc')]),
    );
    return [u32(int(r, 0, 0xffffffff)), u8(int(r, 0, 255)), u16(entries.length), ...entries];
  }),
  [FrameKind.Error]: errorGen,
  [FrameKind.Ping]: pingGen,
  [FrameKind.Pong]: pongGen,
  [FrameKind.Subscribe]: subscribeGen,
  [FrameKind.Unsubscribe]: unsubscribeGen,
  [FrameKind.PrefixDone]: serverOnly(FrameKind.PrefixDone, 'prefix-done', (r, env) => [
    u8(int(r, 0, 255)),
    u64(BigInt(int(r, 0, 2 ** 53 - 1))),
    anyTs(r, env),
    idField(Buffer.from(pick(r, prefixPool(env)))),
  ]),
  [FrameKind.PrefixResync]: serverOnly(FrameKind.PrefixResync, 'prefix-resync', (r, env) => [
    u8(int(r, 1, 3)),
    u8(int(r, 0, 255)),
    anyTs(r, env),
    idField(Buffer.from(pick(r, prefixPool(env)))),
  ]),
};

/** A kind byte F2 does not define: fatal UNKNOWN_FRAME (after the length check). */
const unknownKindGen: NativeGenerator = (r, env, plan) => {
  const kind = r() < 0.2 ? 0 : int(r, 0x12, 0xff);
  const bytes = nativeFrame(kind, fill(r, int(r, 0, 64)));
  const max = plan.state === 'hello' ? MAX_HELLO_FRAME_BYTES : env.limits.maxFrame;
  return {
    bytes,
    label: `unknown kind 0x${kind.toString(16)}`,
    fate: bytes.length - 4 > max ? fatal('GOSSIP_ERR_FRAME_TOO_LARGE') : fatal('GOSSIP_ERR_UNKNOWN_FRAME'),
  };
};

/** How many frames one connection tries to send: a few to a few hundred. */
function drawLength(r: Rng): number {
  return weighted<() => number>(r, [
    [60, () => int(r, 1, 20)],
    [30, () => int(r, 20, 100)],
    [10, () => int(r, 100, 400)],
  ])();
}

/** A native connection: most begin with a hello; the first fatal frame is its last. */
export function drawNative(r: Rng, env: Env, maxFrames: number): NativePlan {
  const plan = new NativePlan();
  const n = Math.min(maxFrames, drawLength(r));
  const h = env.hostility;
  for (let k = 0; k < n; k++) {
    const gen =
      k === 0 && r() < 0.9
        ? helloGen
        : weighted<NativeGenerator>(r, [
            [30, NATIVE_GENERATORS[FrameKind.Publish]],
            [15, NATIVE_GENERATORS[FrameKind.Emit]],
            [12, fetchGen],
            [10, pingGen],
            [4, pongGen],
            [6, subscribeGen],
            [4, unsubscribeGen],
            [0.4 * h, helloGen],
            [0.4 * h, errorGen],
            ...(
              [
                FrameKind.Welcome,
                FrameKind.Ack,
                FrameKind.Message,
                FrameKind.ReplayDone,
                FrameKind.Resync,
                FrameKind.FetchResult,
                FrameKind.PrefixDone,
                FrameKind.PrefixResync,
              ] as const
            ).map((kind) => [0.15 * h, NATIVE_GENERATORS[kind]] as const),
            [0.2 * h, unknownKindGen],
          ]);
    const f = gen(r, env, plan);
    plan.frames.push(f);
    if (f.fate.t !== 'keep') break;
  }
  return plan;
}

// ---------------------------------------------------------------------------------------
// The legacy protocol (L1 to L6): no acks, every refusal ends the connection with a line.

export class LegacyPlan {
  state: 'handshake' | 'live' = 'handshake';
  readonly frames: Drawn[] = [];
  /** Whether the server must answer the handshake with `GOSSIP\n`. */
  welcomed = false;
  readonly recent: IdDraw[] = [];

  get fate(): Fate {
    return this.frames.at(-1)?.fate ?? KEEP;
  }
}

export type LegacyGenerator = (r: Rng, env: Env, plan: LegacyPlan) => Drawn;

/** A legacy connection must have shaken hands before anything else is read as a frame (L1). */
const legacyHello: LegacyGenerator = (r, _env, plan) => {
  const t = now();
  const since = pick(r, [MIN_TS, -1n, 0n, t, t - 5_000_000_000n, MAX_TS]);
  if (plan.state === 'live') {
    // A second handshake: its `G` is a kind byte other than M or S.
    return { bytes: legacyHandshake(since), label: 'a second handshake', fate: fatal('GOSSIP_ERR_UNKNOWN_FRAME') };
  }
  if (r() < 0.06) {
    const bytes = pick(r, [
      Buffer.from('GOSSIX\0\0\0\0\0\0\0\0'),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.from('Gossip\0\0\0\0\0\0\0\0'),
    ]);
    return {
      bytes,
      label: `bad handshake ${JSON.stringify(bytes.toString('latin1'))}`,
      fate: fatal('GOSSIP_ERR_BAD_MAGIC'),
    };
  }
  plan.state = 'live';
  plan.welcomed = true;
  return { bytes: legacyHandshake(since), label: `handshake since ${since}`, fate: KEEP };
};

interface PayloadDraw {
  payload: Buffer;
  /** The data once the tag is removed, if it can be. */
  data: Buffer | undefined;
  codes: ErrorCode[];
  label: string;
  big: boolean;
  /** Declared data length past the maximum frame: only the header goes out (L2). */
  oversize?: bigint;
}

function drawPayload(r: Rng, env: Env): PayloadDraw {
  const { maxData, maxFrame } = env.limits;
  const raw = (d: DataDraw): PayloadDraw => ({
    payload: Buffer.concat([Buffer.from('='), d.data]),
    data: d.data,
    codes: d.data.length > maxData ? ['GOSSIP_ERR_DATA_TOO_LARGE'] : [],
    label: `= ${d.label}`,
    big: d.big,
  });
  return weighted<() => PayloadDraw>(r, [
    [60, () => raw(drawData(r, { ...env, hostility: 0 }))],
    [
      15,
      () => {
        const d = drawData(r, { ...env, hostility: 0 });
        const data = d.data.length > maxData ? d.data.subarray(0, maxData) : d.data;
        return {
          payload: Buffer.concat([Buffer.from('z'), deflateSync(data)]),
          data,
          codes: [],
          label: `z ${d.label}`,
          big: d.big,
        };
      },
    ],
    [
      1,
      () => {
        // Inflates past --max-data: refused after at most that much output (L4).
        const bomb = Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(maxData * 8 + 1))]);
        return { payload: bomb, data: undefined, codes: ['GOSSIP_ERR_DATA_TOO_LARGE'], label: 'z bomb', big: false };
      },
    ],
    [
      1,
      () => ({
        payload: Buffer.concat([Buffer.from('z'), fill(r, int(r, 0, 40))]),
        data: undefined,
        codes: ['GOSSIP_ERR_MALFORMED_FRAME'],
        label: 'z, not zlib',
        big: false,
      }),
    ],
    [
      1,
      () => {
        let tag = int(r, 0, 255);
        if (tag === 0x3d || tag === 0x7a) tag = 0x00;
        return {
          payload: Buffer.concat([Buffer.of(tag), fill(r, int(r, 0, 20))]),
          data: undefined,
          codes: ['GOSSIP_ERR_MALFORMED_FRAME'],
          label: `tag 0x${tag.toString(16)}`,
          big: false,
        };
      },
    ],
    [
      1,
      () => ({
        payload: Buffer.alloc(0),
        data: undefined,
        codes: ['GOSSIP_ERR_MALFORMED_FRAME'],
        label: 'no tag',
        big: false,
      }),
    ],
    [
      0.5,
      () => ({
        payload: Buffer.alloc(0),
        data: undefined,
        codes: ['GOSSIP_ERR_DATA_TOO_LARGE'],
        label: 'dataLen past max-frame',
        big: false,
        oversize: pick(r, [BigInt(maxFrame + 1), 2n ** 32n, 2n ** 64n - 1n]),
      }),
    ],
  ])();
}

/** `M` (a publish) and `S` (an emit), L2: the decoder's checks in field order, then the payload's and the limits. */
function legacyMessage(kind: 'M' | 'S'): LegacyGenerator {
  return (r, env, plan) => {
    const p = drawPayload(r, env);
    const i = drawId(r, env, plan.recent, p.big && kind === 'M');
    const t = drawTs(r, env);
    const label = `${kind} id ${i.label} ts ${t.label} payload ${p.label}`;
    if (plan.state === 'handshake') throw new Error('a legacy connection starts with its handshake');
    let bytes = legacyFrame(kind, i.bytes, t.ts, p.payload);
    let codes: ErrorCode[];
    if (i.cls === 'empty') codes = ['GOSSIP_ERR_ID_EMPTY'];
    else if (i.cls === 'long') {
      codes = ['GOSSIP_ERR_ID_TOO_LONG'];
      // An id length far past 256 fails on its 8 bytes (L2): send only those.
      if (r() < 0.3) bytes = Buffer.concat([Buffer.from(kind), u64(pick(r, [2n ** 40n, 2n ** 64n - 1n, 257n]))]);
    } else if (i.cls === 'bad') codes = ['GOSSIP_ERR_ID_NOT_UTF8'];
    else if (p.oversize !== undefined) {
      codes = p.codes;
      const head = legacyFrame(kind, i.bytes, t.ts, Buffer.alloc(0));
      head.writeBigUInt64BE(p.oversize, head.length - 8);
      bytes = head;
    } else {
      codes = [...p.codes];
      if (t.ts === MIN_TS) codes.push('GOSSIP_ERR_TS_RESERVED');
      if (t.ahead === 'yes') codes.push('GOSSIP_ERR_TS_AHEAD');
    }
    if (codes.length > 0) return { bytes, label, fate: fatal(...codes) };
    const maybe = t.ahead === 'maybe';
    if (kind === 'M' && i.cls === 'precise' && p.data) {
      const source = `${env.tag} frame ${plan.frames.length}: ${label}`;
      env.model.apply(i.bytes.toString('utf8'), { ts: t.ts, hash: hashOf(p.data) }, maybe, source);
    }
    return { bytes, label, fate: maybe ? { t: 'maybe', codes: ['GOSSIP_ERR_TS_AHEAD'] } : KEEP };
  };
}

/** Every legacy kind has a generator; a client sends all of them (L1 to L3, L6). */
export const LEGACY_GENERATORS: Record<LegacyKind, LegacyGenerator> = {
  [LegacyKind.Hello]: legacyHello,
  // `GOSSIP\n` from a client after its handshake: `G` is no frame kind.
  [LegacyKind.Welcome]: () => ({
    bytes: Buffer.from('GOSSIP\n'),
    label: 'GOSSIP\\n from a client',
    fate: fatal('GOSSIP_ERR_UNKNOWN_FRAME'),
  }),
  [LegacyKind.Persisted]: legacyMessage('M'),
  [LegacyKind.Transient]: legacyMessage('S'),
  [LegacyKind.ReplayDone]: () => ({
    bytes: Buffer.from('D'),
    label: 'D from a client',
    fate: fatal('GOSSIP_ERR_UNEXPECTED_FRAME'),
  }),
};

const legacyUnknown: LegacyGenerator = (r) => {
  let kind = int(r, 0, 255);
  if (kind === 0x4d || kind === 0x53 || kind === 0x44) kind = 0x00;
  return {
    bytes: Buffer.concat([Buffer.of(kind), fill(r, 24)]),
    label: `kind byte 0x${kind.toString(16)}`,
    fate: fatal('GOSSIP_ERR_UNKNOWN_FRAME'),
  };
};

/** A legacy connection: a handshake, then frames up to the first that ends it. */
export function drawLegacy(r: Rng, env: Env, maxFrames: number): LegacyPlan {
  const plan = new LegacyPlan();
  const n = Math.min(maxFrames, drawLength(r));
  const h = env.hostility;
  for (let k = 0; k < n; k++) {
    const gen =
      k === 0
        ? legacyHello
        : weighted<LegacyGenerator>(r, [
            [55, LEGACY_GENERATORS[LegacyKind.Persisted]],
            [25, LEGACY_GENERATORS[LegacyKind.Transient]],
            [0.3 * h, LEGACY_GENERATORS[LegacyKind.ReplayDone]],
            [0.3 * h, LEGACY_GENERATORS[LegacyKind.Hello]],
            [0.3 * h, LEGACY_GENERATORS[LegacyKind.Welcome]],
            [0.3 * h, legacyUnknown],
          ]);
    const f = gen(r, env, plan);
    plan.frames.push(f);
    if (f.fate.t !== 'keep') break;
  }
  return plan;
}

/** Where to cut a connection's bytes into writes: a few cuts, or the start byte by byte. */
export function drawCuts(r: Rng, total: number): number[] {
  const cuts = new Set<number>();
  if (r() < 0.15) for (let k = 1; k < Math.min(total, 40); k++) cuts.add(k);
  for (let k = int(r, 0, 6); k > 0; k--) cuts.add(int(r, 1, Math.max(1, total - 1)));
  return [...cuts].filter((c) => c > 0 && c < total).sort((a, b) => a - b);
}
