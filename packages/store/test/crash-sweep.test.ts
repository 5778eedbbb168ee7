import { mulberry32 } from '@gossip/protocol/testing';
import { type CompactionResult, Store, type StoredMessage, type StoreOptions } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { SimDisk } from './sim-disk.js';

/*
 * Crash-point sweep (docs/STORAGE.md, "Testing"). A workload of appends (sequential
 * and concurrent, tombstones and stale ones included) and compactions runs once on a
 * clean simulated disk to count its mutating calls M; then, for each crash point k in
 * a sample of 1..M (every point with GOSSIP_CRASH_SWEEP=all), it runs again on a fresh
 * disk that crashes at call k, the disk keeps only its durable state (with a torn last
 * write), and a store opened on it must hold every acknowledged append, nothing that
 * was never attempted, and the same state again after a second recovery.
 *
 * GOSSIP_CRASH_SEED replays the same sample and the same torn writes.
 */

const DIR = '/data';
/** The store's clock: every workload ts is older, so with a retention of 0 every tombstone may be dropped. */
const NOW = 2_000_000_000_000_000_000n;
const TS_BASE = 1_000_000_000_000_000_000n;
const WORKLOAD_SEED = 0x5eed;
const APPENDS = 150;
const SAMPLE = 40;
const ALL = process.env.GOSSIP_CRASH_SWEEP === 'all';
const SEED = Number(process.env.GOSSIP_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

/**
 * Two runs of the sweep: compactions only where the workload asks for them, and also
 * in the background (started at each roll-over, beside the appends). The periodic
 * check is pushed out of reach so that every run makes the same calls.
 */
const VARIANTS = [
  { name: 'explicit compactions', compactThreshold: 0 },
  { name: 'background compactions', compactThreshold: 0.3 },
] as const;

type Variant = (typeof VARIANTS)[number];

const optionsFor =
  (variant: Variant) =>
  (fs: SimDisk): StoreOptions => ({
    dir: DIR,
    fs,
    fsync: 'always',
    segmentBytes: 2048,
    compactThreshold: variant.compactThreshold,
    compactCheckMs: 3_600_000,
    tombstoneRetentionMs: 0,
    now: () => NOW,
  });

interface PlannedAppend {
  id: string;
  ts: bigint;
  data: Buffer;
  /** What the append settles as when nothing fails. */
  expect: 'accepted' | 'stale';
}

/**
 * One step: its appends are made in one go (Promise.all); `compact` runs a compaction
 * beside them; `reopen` closes the store and opens it again (through the checkpoint).
 */
interface Step {
  appends: PlannedAppend[];
  compact: boolean;
  reopen?: boolean;
}

interface Attempt extends PlannedAppend {
  status: 'pending' | 'accepted' | 'stale' | 'rejected';
}

interface Run {
  attempts: Attempt[];
  compactions: CompactionResult[];
  /** Whether the mid-workload reopen loaded the index checkpoint. */
  reopenLoadedCheckpoint?: boolean;
  error: unknown;
}

/**
 * The same workload every time: ~150 appends over 40 ids, two compactions (the second
 * beside appends), and a close and reopen between them.
 */
function plan(): Step[] {
  const rng = mulberry32(WORKLOAD_SEED);
  const int = (n: number) => Math.floor(rng() * n);
  const ids = Array.from({ length: 39 }, (_, i) => `k${i}`);
  ids.push('ключ-é'); // an id whose UTF-8 length differs from its string length
  const newest = new Map<string, bigint>();
  const steps: Step[] = [];
  let made = 0;
  let tick = 0;
  const append = (): PlannedAppend => {
    const id = ids[int(ids.length)] as string;
    const last = newest.get(id);
    let ts: bigint;
    const r = rng();
    if (last !== undefined && r < 0.05)
      ts = last; // equal ts: stale
    else if (last !== undefined && r < 0.1)
      ts = last - BigInt(1 + int(50)); // older: stale
    else ts = TS_BASE + BigInt(++tick * 100 + int(150)); // jittered: now and then older than the id's newest
    const data = rng() < 0.15 ? Buffer.alloc(0) : Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256)));
    const accepted = last === undefined || ts > last;
    if (accepted) newest.set(id, ts);
    made++;
    return { id, ts, data, expect: accepted ? 'accepted' : 'stale' };
  };
  const compactAt = new Set([Math.floor(APPENDS * 0.45), Math.floor(APPENDS * 0.8)]);
  const reopenAt = Math.floor(APPENDS * 0.6);
  let compactions = 0;
  while (made < APPENDS) {
    const before = made;
    if (before >= reopenAt && !steps.some((st) => st.reopen)) steps.push({ appends: [], compact: false, reopen: true });
    const group = rng() < 0.4 ? 2 + int(5) : 1;
    const appends = Array.from({ length: group }, append);
    let compact = false;
    for (let m = before + 1; m <= made; m++) if (compactAt.has(m)) compact = true;
    if (compact) {
      compactions++;
      // The first compaction runs alone, the second beside a group of appends.
      if (compactions === 1) {
        steps.push({ appends, compact: false });
        steps.push({ appends: [], compact: true });
        continue;
      }
      if (appends.length === 1) appends.push(append());
    }
    steps.push({ appends, compact });
  }
  return steps;
}

const PLAN = plan();

async function runWorkload(disk: SimDisk, options: (fs: SimDisk) => StoreOptions): Promise<Run> {
  const run: Run = { attempts: [], compactions: [], error: undefined };
  try {
    let store = await Store.open(options(disk));
    for (const step of PLAN) {
      if (step.reopen) {
        await store.close();
        store = await Store.open(options(disk));
        run.reopenLoadedCheckpoint = store.stats().recovery.checkpoint;
        continue;
      }
      const work: Promise<unknown>[] = step.appends.map((a) => {
        const attempt: Attempt = { ...a, status: 'pending' };
        run.attempts.push(attempt);
        return store.append(a.id, a.ts, a.data).then(
          (r) => {
            attempt.status = r.status;
          },
          (error: unknown) => {
            attempt.status = 'rejected';
            throw error;
          },
        );
      });
      if (step.compact) work.push(store.compact().then((r) => run.compactions.push(r)));
      const failed = (await Promise.allSettled(work)).find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    }
    await store.close();
  } catch (error) {
    run.error = error;
  }
  return run;
}

async function readAll(store: Store): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for await (const m of store.replay(null)) out.push({ id: m.id, ts: m.ts, data: Buffer.from(m.data) });
  return out;
}

const key = (id: string, ts: bigint) => `${id}\u0000${ts}`;

/** Checks a recovered store against what the workload attempted and what was acknowledged. */
async function checkRecovered(store: Store, attempts: Attempt[], label: string): Promise<StoredMessage[]> {
  const messages = await readAll(store);
  // Replay: ascending ts, one message per id.
  for (let i = 1; i < messages.length; i++) {
    expect((messages[i - 1] as StoredMessage).ts <= (messages[i] as StoredMessage).ts, `${label}: replay order`).toBe(
      true,
    );
  }
  const byId = new Map(messages.map((m) => [m.id, m]));
  expect(byId.size, `${label}: one message per id`).toBe(messages.length);

  // Nothing invented: each message was attempted, with that data, and was not stale.
  const tried = new Map<string, Buffer>();
  for (const a of attempts) if (a.status !== 'stale') tried.set(key(a.id, a.ts), a.data);
  for (const m of messages) {
    const data = tried.get(key(m.id, m.ts));
    expect(data, `${label}: ${m.id}@${m.ts} was never attempted`).toBeDefined();
    expect(m.data.equals(data as Buffer), `${label}: ${m.id}@${m.ts} has other data than appended`).toBe(true);
    const got = await store.get(m.id);
    expect(got?.ts, `${label}: get(${m.id}) agrees with replay`).toBe(m.ts);
    expect(got?.data.equals(m.data), `${label}: get(${m.id}) data agrees with replay`).toBe(true);
    expect(store.tsOf(m.id), `${label}: tsOf(${m.id})`).toBe(m.ts);
  }

  // Nothing acknowledged lost: each id holds its newest acked append or something newer;
  // only a tombstone may be gone, dropped by compaction behind a horizon that covers it.
  const acked = new Map<string, Attempt>();
  for (const a of attempts) {
    if (a.status !== 'accepted') continue;
    const prev = acked.get(a.id);
    if (!prev || a.ts > prev.ts) acked.set(a.id, a);
  }
  for (const [id, a] of acked) {
    const m = byId.get(id);
    if (!m) {
      expect(a.data.length, `${label}: acked ${id}@${a.ts} is missing`).toBe(0);
      expect(
        store.horizon !== null && store.horizon >= a.ts,
        `${label}: dropped tombstone ${id}@${a.ts} is above the horizon ${store.horizon}`,
      ).toBe(true);
      expect(await store.get(id), `${label}: get(${id}) of a dropped tombstone`).toBeUndefined();
      continue;
    }
    expect(m.ts >= a.ts, `${label}: ${id} went back from acked ts ${a.ts} to ${m.ts}`).toBe(true);
  }
  return messages;
}

/** The clean run of a variant, and the crash points to try. */
async function prepare(variant: Variant) {
  const options = optionsFor(variant);
  const clean = new SimDisk();
  const cleanRun = await runWorkload(clean, options);
  const M = clean.mutations;
  let points: number[];
  if (ALL || M <= SAMPLE) {
    points = Array.from({ length: M }, (_, i) => i + 1);
  } else {
    // One point in each of SAMPLE equal strata, at a seeded place inside it; always the first and the last call.
    const rng = mulberry32(SEED);
    const set = new Set<number>([1, M]);
    for (let i = 0; set.size < SAMPLE && i < SAMPLE; i++) set.add(1 + Math.floor(((i + rng()) * M) / SAMPLE));
    points = [...set].filter((k) => k >= 1 && k <= M).sort((a, b) => a - b);
  }
  return { variant, options, clean, cleanRun, M, points };
}

const prepared = await Promise.all(VARIANTS.map(prepare));

for (const { variant, options, clean, cleanRun, M, points } of prepared) {
  describe(`crash sweep with ${variant.name}`, () => {
    it(`crash sweep - the workload runs cleanly and as planned (${variant.name})`, async () => {
      expect(cleanRun.error).toBeUndefined();
      expect(clean.crashed).toBe(false);
      expect(cleanRun.attempts.map((a) => a.status)).toEqual(cleanRun.attempts.map((a) => a.expect));
      expect(cleanRun.attempts.length).toBeGreaterThanOrEqual(APPENDS);
      expect(cleanRun.attempts.some((a) => a.expect === 'stale')).toBe(true);
      expect(cleanRun.attempts.some((a) => a.data.length === 0 && a.expect === 'accepted')).toBe(true);
      // The workload reaches what the sweep is for: rolled segments, compaction runs, dropped tombstones.
      expect(clean.log.filter((r) => r.op === 'create' && r.path.endsWith('.seg')).length).toBeGreaterThan(5);
      expect(clean.log.filter((r) => r.op === 'rename' && r.path.endsWith('.seg.tmp')).length).toBeGreaterThan(1);
      expect(cleanRun.compactions.length).toBe(2);
      expect(cleanRun.reopenLoadedCheckpoint, 'the reopen loads the checkpoint').toBe(true);
      expect(cleanRun.compactions.reduce((n, r) => n + r.tombstonesDropped, 0)).toBeGreaterThan(0);

      const store = await Store.open(options(clean));
      await checkRecovered(store, cleanRun.attempts, 'clean run');
      await store.close();
    });

    it.for(
      points,
    )(`crash sweep - a crash at mutating call %i of ${M} loses nothing acked (${variant.name}, seed ${SEED})`, async (k) => {
      const label = `${variant.name}: crash at call ${k}/${M}, seed ${SEED}`;
      const disk = new SimDisk({ crashAt: k });
      const run = await runWorkload(disk, options);
      expect(disk.crashed, `${label}: the rerun reached the crash point`).toBe(true);

      const crashed = disk.crash({ tearLastWrite: true, rng: mulberry32(SEED ^ k) });
      // The lock file is never fsynced, and a real crash ends the process that held it. Here
      // the dead store's token stays registered in this process, and a torn pid could name
      // a live process: either would refuse the open (rule S7). Play the operator.
      crashed.remove(`${DIR}/gossip.lock`);

      const first = await Store.open(options(crashed));
      const recovered = await checkRecovered(first, run.attempts, `${label}, first recovery`);
      const horizon = first.horizon;
      const epoch = first.epoch;
      expect(first.stats().recovery.corruptions, `${label}: recovery found corruption`).toEqual([]);
      await first.close();

      const second = await Store.open(options(crashed));
      expect(await readAll(second), `${label}: a second recovery gives the same state`).toEqual(recovered);
      expect(second.horizon).toBe(horizon);
      expect(second.epoch).toBe(epoch);
      const report = second.stats().recovery;
      expect(
        {
          truncatedBytes: report.truncatedBytes,
          leftoversRemoved: report.leftoversRemoved,
          corruptions: report.corruptions,
        },
        `${label}: the first recovery left nothing to repair`,
      ).toEqual({ truncatedBytes: 0, leftoversRemoved: 0, corruptions: [] });

      // The recovered log takes appends, and keeps them.
      expect(await second.append('after-crash', NOW - 1n, Buffer.from('x'))).toEqual({
        status: 'accepted',
        durability: 'synced',
      });
      await second.close();
      const third = await Store.open(options(crashed));
      expect(await readAll(third)).toEqual([...recovered, { id: 'after-crash', ts: NOW - 1n, data: Buffer.from('x') }]);
      await third.close();
    });
  });
}
