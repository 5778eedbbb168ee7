import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppendResult, CHECKPOINT_FILE, type FsyncMode, Store, type StoreOptions } from '@gossip/store';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordRows } from './replay-rows.js';

/*
 * Model-based test: random sequences of appends, bursts of appends in one tick,
 * compactions (alone or beside appends), reopens and clock moves run against the store
 * and against a Map of id → newest { ts, data }; after every step the two must agree
 * on get, tsOf, replay(since), replay(since) by a prefix, and stats.
 */

/** One ts unit: 0.1 ms in nanoseconds, so the 1 ms tombstone retention is 10 units. */
const UNIT = 100_000n;
const RETENTION_MS = 1;
const RETENTION_NS = BigInt(RETENTION_MS) * 1_000_000n;

/** A small pool, so ids are updated, tombstoned, dropped and re-added often. */
const IDS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'ü-multibyte', 'ü'.repeat(128), 'ab', 'a😀'];

/** Prefixes a step's replay is also checked by: of several ids, of one, equal to an id, of none. */
const PREFIXES = ['', 'a', 'ab', 'a😀', 'ü', 'ü-', 'üü', 'h', 'ü-multibyte', 'ü-multibytes', 'zz', '\uffff'];

type TsChoice =
  /** The model's ts plus 1 + delta units: newer (absolute if the id is unknown). */
  | { mode: 'newer'; delta: number; abs: number }
  /** The model's ts minus delta units: equal or older (absolute if the id is unknown). */
  | { mode: 'stale'; delta: number; abs: number }
  | { mode: 'abs'; delta: number; abs: number };

interface AppendCmd {
  id: number;
  ts: TsChoice;
  tomb: boolean;
  size: number;
}

type SinceChoice = ({ kind: 'null' } | { kind: 'model'; pick: number; shift: number } | { kind: 'abs'; v: number }) & {
  prefix?: number;
};

type Cmd =
  | { kind: 'append'; a: AppendCmd; since: SinceChoice }
  | { kind: 'burst'; as: AppendCmd[]; since: SinceChoice }
  | { kind: 'compact'; since: SinceChoice }
  | { kind: 'compactDuring'; as: AppendCmd[]; since: SinceChoice }
  | { kind: 'reopen'; scan: boolean; since: SinceChoice }
  | { kind: 'clock'; to: number; since: SinceChoice };

const tsChoice: fc.Arbitrary<TsChoice> = fc.record({
  mode: fc.constantFrom('newer', 'newer', 'stale', 'abs'),
  delta: fc.integer({ min: 0, max: 15 }),
  abs: fc.integer({ min: -20, max: 120 }),
}) as fc.Arbitrary<TsChoice>;

const appendCmd: fc.Arbitrary<AppendCmd> = fc.record({
  id: fc.nat({ max: IDS.length - 1 }),
  ts: tsChoice,
  tomb: fc.integer({ min: 0, max: 9 }).map((n) => n < 3), // three in ten are tombstones
  size: fc.integer({ min: 1, max: 250 }),
});

const sinceChoice: fc.Arbitrary<SinceChoice> = fc
  .tuple(
    fc.oneof(
      fc.constant({ kind: 'null' as const }),
      fc.record({ kind: fc.constant('model' as const), pick: fc.nat(), shift: fc.integer({ min: -1, max: 1 }) }),
      fc.record({ kind: fc.constant('abs' as const), v: fc.integer({ min: -25, max: 130 }) }),
    ),
    fc.nat({ max: PREFIXES.length - 1 }),
  )
  .map(([since, prefix]) => ({ ...since, prefix }));

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('append' as const), a: appendCmd, since: sinceChoice }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      as: fc.array(appendCmd, { minLength: 2, maxLength: 8 }),
      since: sinceChoice,
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('compact' as const), since: sinceChoice }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('compactDuring' as const),
      as: fc.array(appendCmd, { minLength: 1, maxLength: 6 }),
      since: sinceChoice,
    }),
  },
  {
    weight: 2,
    // scan: the checkpoint is removed first, so the open scans the segments instead of loading it
    arbitrary: fc.record({ kind: fc.constant('reopen' as const), scan: fc.boolean(), since: sinceChoice }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('clock' as const),
      to: fc.integer({ min: 0, max: 140 }),
      since: sinceChoice,
    }),
  },
);

interface Entry {
  ts: bigint;
  data: Buffer;
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'gossip-store-model-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

class Harness {
  readonly model = new Map<string, Entry>();
  horizon: bigint | null = null;
  clock = 100n;
  step = 0;
  store!: Store;
  readonly options: StoreOptions;

  constructor(
    dir: string,
    readonly fsync: FsyncMode,
  ) {
    this.options = {
      dir,
      fsync,
      segmentBytes: 1024,
      compactThreshold: 0,
      tombstoneRetentionMs: RETENTION_MS,
      now: () => this.clock * UNIT,
    };
  }

  async open(): Promise<void> {
    this.store = await Store.open(this.options);
  }

  /** Resolves an append command against the model: the id, ts, data, and whether the store must accept it. */
  plan(a: AppendCmd): { id: string; ts: bigint; data: Buffer; accept: boolean } {
    const id = IDS[a.id] as string;
    const cur = this.model.get(id);
    let ts: bigint;
    if (cur && a.ts.mode === 'newer') ts = cur.ts + BigInt(1 + a.ts.delta) * UNIT;
    else if (cur && a.ts.mode === 'stale') ts = cur.ts - BigInt(a.ts.delta) * UNIT;
    else ts = BigInt(a.ts.abs) * UNIT;
    const data = a.tomb
      ? Buffer.alloc(0)
      : Buffer.from(`${id.slice(0, 12)}:${ts}:${this.step}:`.padEnd(Math.max(a.size, 1), 'x'));
    const accept = cur === undefined || ts > cur.ts;
    if (accept) this.model.set(id, { ts, data });
    return { id, ts, data, accept };
  }

  expected(accept: boolean): AppendResult {
    if (!accept) return { status: 'stale', durability: 'none' };
    return { status: 'accepted', durability: this.fsync === 'always' ? 'synced' : 'written' };
  }

  /** Appends in one tick, in call order, and checks every result against the model. */
  async appendAll(as: AppendCmd[]): Promise<void> {
    const plans = as.map((a) => this.plan(a));
    const results = await Promise.all(plans.map((p) => this.store.append(p.id, p.ts, p.data)));
    results.forEach((r, k) => {
      const p = plans[k] as (typeof plans)[number];
      expect(r, `append ${p.id} ts ${p.ts} (step ${this.step})`).toEqual(this.expected(p.accept));
    });
  }

  /** Tombstones the store may have dropped: in the model, older than the retention cutoff. */
  droppable(): Map<string, bigint> {
    const cutoff = this.clock * UNIT - RETENTION_NS;
    const out = new Map<string, bigint>();
    for (const [id, e] of this.model) if (e.data.length === 0 && e.ts < cutoff) out.set(id, e.ts);
    return out;
  }

  /** Removes the droppable tombstones the store no longer has; returns how many and their newest ts. */
  syncDropped(droppable: Map<string, bigint>): { count: number; newest: bigint | null } {
    let count = 0;
    let newest: bigint | null = null;
    for (const [id, ts] of droppable) {
      const entry = this.model.get(id);
      if (!entry || entry.ts !== ts || entry.data.length !== 0) continue; // updated since
      if (this.store.tsOf(id) === undefined) {
        this.model.delete(id);
        count++;
        if (newest === null || ts > newest) newest = ts;
      }
    }
    return { count, newest };
  }

  async run(c: Cmd): Promise<void> {
    this.step++;
    switch (c.kind) {
      case 'append':
        await this.appendAll([c.a]);
        break;
      case 'burst':
        await this.appendAll(c.as);
        break;
      case 'compact': {
        const droppable = this.droppable();
        const result = await this.store.compact();
        const { count, newest } = this.syncDropped(droppable);
        expect(result.tombstonesDropped, 'tombstones dropped').toBe(count);
        if (newest !== null && (this.horizon === null || newest > this.horizon)) this.horizon = newest;
        break;
      }
      case 'compactDuring': {
        // The appends are queued in the tick the compaction starts; their ids may be in its run.
        const compaction = this.store.compact();
        const appends = this.appendAll(c.as);
        const droppable = this.droppable();
        await Promise.all([compaction, appends]);
        const { newest } = this.syncDropped(droppable);
        // A tombstone dropped while an append of its id was still queued moves the horizon too.
        const h = this.store.horizon;
        if (this.horizon !== null) expect(h !== null && h >= this.horizon, 'horizon never moves back').toBe(true);
        if (newest !== null) expect(h !== null && h >= newest, 'horizon covers every dropped tombstone').toBe(true);
        this.horizon = h;
        break;
      }
      case 'reopen': {
        const before = this.store.stats();
        await this.store.close();
        if (c.scan) await rm(join(this.options.dir, CHECKPOINT_FILE));
        await this.open();
        const after = this.store.stats();
        const recovery = after.recovery;
        expect(recovery.checkpoint, 'the checkpoint is loaded unless removed').toBe(!c.scan);
        // The same records, however the index was rebuilt.
        expect({ bytes: after.bytes, liveBytes: after.liveBytes, ids: after.ids }).toEqual({
          bytes: before.bytes,
          liveBytes: before.liveBytes,
          ids: before.ids,
        });
        expect(recovery.corruptions).toEqual([]);
        expect(recovery.truncatedBytes).toBe(0);
        expect(recovery.leftoversRemoved).toBe(0);
        break;
      }
      case 'clock':
        this.clock = BigInt(c.to);
        break;
    }
    await this.check(c.since);
  }

  sinceOf(s: SinceChoice): bigint | null {
    if (s.kind === 'null') return null;
    if (s.kind === 'abs') return BigInt(s.v) * UNIT;
    const tss = [...this.model.values()].map((e) => e.ts);
    if (tss.length === 0) return BigInt(s.shift);
    return (tss[s.pick % tss.length] as bigint) + BigInt(s.shift);
  }

  async check(s: SinceChoice): Promise<void> {
    const store = this.store;
    const at = `step ${this.step}`;
    // Reads in parallel, as a server's clients would make them.
    const gots = await Promise.all(IDS.map((id) => store.get(id)));
    IDS.forEach((id, k) => {
      const want = this.model.get(id);
      const got = gots[k];
      expect(store.tsOf(id), `tsOf(${id}) at ${at}`).toBe(want?.ts);
      if (want === undefined) {
        expect(got, `get(${id}) at ${at}`).toBeUndefined();
      } else {
        expect(got, `get(${id}) at ${at}`).toBeDefined();
        expect(got?.id).toBe(id);
        expect(got?.ts, `get(${id}).ts at ${at}`).toBe(want.ts);
        expect(got?.data.toString('hex'), `get(${id}).data at ${at}`).toBe(want.data.toString('hex'));
      }
    });

    const since = this.sinceOf(s);
    const seen: { id: string; ts: bigint; data: string }[] = [];
    for await (const m of store.replay(since)) seen.push({ id: m.id, ts: m.ts, data: m.data.toString('hex') });
    for (let k = 1; k < seen.length; k++) {
      expect(
        (seen[k - 1] as (typeof seen)[number]).ts <= (seen[k] as (typeof seen)[number]).ts,
        `replay order at ${at}`,
      ).toBe(true);
    }
    expect(new Set(seen.map((m) => m.id)).size, `replay yields each id once at ${at}`).toBe(seen.length);
    const want = [...this.model]
      .filter(([, e]) => since === null || e.ts >= since)
      .map(([id, e]) => ({ id, ts: e.ts, data: e.data.toString('hex') }));
    const byTsId = (x: { id: string; ts: bigint }, y: { id: string; ts: bigint }) =>
      x.ts < y.ts ? -1 : x.ts > y.ts ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
    expect([...seen].sort(byTsId), `replay(${since}) at ${at}`).toEqual(want.sort(byTsId));
    // The same replay as records: the same messages, in the same order.
    expect(await recordRows(store, since, 600), `replayRecords(${since}) at ${at}`).toEqual(
      seen.map((m) => [m.id, m.ts, m.data]),
    );

    // By a prefix: the same messages, those whose id starts with it, in ts order.
    const prefix = PREFIXES[s.prefix ?? 0] as string;
    const under: typeof seen = [];
    for await (const m of store.replay(since, { prefix }))
      under.push({ id: m.id, ts: m.ts, data: m.data.toString('hex') });
    for (let k = 1; k < under.length; k++) {
      expect(
        (under[k - 1] as (typeof under)[number]).ts <= (under[k] as (typeof under)[number]).ts,
        `replay order by prefix at ${at}`,
      ).toBe(true);
    }
    const what = `replay(${since}, { prefix: ${JSON.stringify(prefix)} }) at ${at}`;
    expect([...under].sort(byTsId), what).toEqual(seen.filter((m) => m.id.startsWith(prefix)).sort(byTsId));
    expect(await recordRows(store, since, 600, prefix), `${what} as records`).toEqual(
      under.map((m) => [m.id, m.ts, m.data]),
    );

    const stats = store.stats();
    expect(stats.ids, `stats().ids at ${at}`).toBe(this.model.size);
    expect(stats.tombstones, `stats().tombstones at ${at}`).toBe(
      [...this.model.values()].filter((e) => e.data.length === 0).length,
    );
    expect(stats.deadRatio).toBeGreaterThanOrEqual(0);
    expect(stats.deadRatio).toBeLessThanOrEqual(1);
    expect(stats.horizon, `horizon at ${at}`).toBe(this.horizon);
    for (const e of this.model.values()) {
      expect(stats.newestTs !== null && stats.newestTs >= e.ts, `newestTs covers every id at ${at}`).toBe(true);
    }
  }
}

describe('store model', () => {
  it('store model - random appends, compactions and reopens agree with a map of newest values', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<FsyncMode>('never', 'never', 'interval', 'interval', 'always'),
        fc.array(cmd, { minLength: 1, maxLength: 40, size: 'max' }),
        async (fsync, cmds) => {
          const dir = await mkdtemp(join(root, 'run-'));
          const h = new Harness(dir, fsync);
          await h.open();
          try {
            for (const c of cmds) await h.run(c);
            // Whatever the last step was, a reopen serves the same state.
            await h.run({ kind: 'reopen', scan: false, since: { kind: 'null' } });
          } finally {
            await h.store?.close();
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 100 },
    );
  }, 120_000);
});
