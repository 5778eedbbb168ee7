import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '@gossip/protocol/testing';
import { Store } from '@gossip/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/*
 * Crash tests with real processes. test/fixtures/appender.mjs appends under
 * `fsync: 'always'` from several loops (and, in one mode, compacts all the time); it
 * prints `append <id> <ts> <kind>` before each append and `ack <id> <ts> <sha1>` once it
 * settled. This file kills it with SIGKILL after a random number of acks, opens the
 * folder itself and checks that every acked append is there and that nothing corrupt,
 * out of order or never appended is served. Rounds share the folder, so recovery runs
 * again and again over a growing log.
 *
 * GOSSIP_KILLS sets the number of kills per test (default 30; 500 for a long hunt).
 * GOSSIP_KILL_SEED replays the same ack counts to kill at (the child's own timing and
 * choices still vary). A failed run keeps its folder and names it.
 */

const KILLS = Number(process.env.GOSSIP_KILLS ?? 30);
const SEED = Number(process.env.GOSSIP_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Kill after 1 to MAX_ACKS acks. */
const MAX_ACKS = 300;
const APPENDER = fileURLToPath(new URL('./fixtures/appender.mjs', import.meta.url));
/** Each run's ts start here times the round: runs never reuse a ts. */
const TS_BASE = 1_000_000_000_000n;

type Mode = 'plain' | 'compact';

interface Ack {
  id: string;
  ts: bigint;
  hash: string;
}

/** What the parent knows across rounds. */
interface Model {
  /** The newest acked append of each id. */
  acked: Map<string, Ack>;
  /** Every append the appender tried, as `id ts`: nothing else may be served. */
  attempted: Set<string>;
  /** The ts of every tombstone the appender tried to append, per id, ascending. */
  tombstones: Map<string, bigint[]>;
  /** The newest ts of each id the last recovery served. */
  served: Map<string, bigint>;
  horizon: bigint | null;
}

interface Totals {
  acks: number;
  tornTails: number;
  truncatedBytes: number;
  leftoversRemoved: number;
  /** Acked ids found absent because compaction dropped a tombstone of theirs, summed over rounds. */
  goneIds: number;
}

let dir: string;
const children = new Set<ChildProcess>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gossip-kill-'));
});

afterEach(async (context) => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  children.clear();
  // A failed run's folder is kept for inspection (the failure message names it).
  if (context.task.result?.state !== 'fail') await rm(dir, { recursive: true, force: true });
});

const sha1 = (data: Uint8Array) => createHash('sha1').update(data).digest('hex');
const EMPTY_SHA1 = sha1(new Uint8Array(0));
const ID_RE = /^(id|ид)-\d+$/;

/** The bytes appender.mjs writes for (id, ts): a header line, then padding derived from ts. */
function checkData(id: string, ts: bigint, data: Buffer): string | undefined {
  if (!ID_RE.test(id)) return `unexpected id ${JSON.stringify(id)}`;
  if (data.length === 0) return undefined; // a tombstone
  const nl = data.indexOf(0x0a);
  if (nl < 0) return `data of ${id}@${ts} has no header line`;
  const [hid, hts, hlen] = data.toString('utf8', 0, nl).split(' ');
  if (hid !== id || hts !== String(ts)) return `data of ${id}@${ts} says it is ${hid}@${hts}`;
  const length = Number(hlen);
  if (data.length !== nl + 1 + length) return `data of ${id}@${ts} is ${data.length} bytes, its header says ${length}`;
  const seed = Number(ts % 65_521n);
  for (let i = 0; i < length; i++) {
    if (data[nl + 1 + i] !== ((seed + i * 31) & 0xff)) return `data of ${id}@${ts} differs at padding byte ${i}`;
  }
  return undefined;
}

/**
 * Whether an id last known at `ts` may be absent: only if compaction dropped a tombstone
 * of it at least as new, and then the horizon (the newest dropped tombstone's ts) is at
 * least that tombstone's ts.
 */
function mayBeGone(mode: Mode, model: Model, horizon: bigint | null, id: string, ts: bigint): boolean {
  if (mode !== 'compact' || horizon === null) return false;
  return (model.tombstones.get(id) ?? []).some((t) => t >= ts && t <= horizon);
}

/** Runs the appender until it has printed `target` acks, kills it, and returns every ack it printed. */
async function runUntilKilled(mode: Mode, base: bigint, target: number, model: Model): Promise<Ack[]> {
  const child = spawn(process.execPath, [APPENDER, dir, String(base), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = once(child, 'exit');
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const acks: Ack[] = [];
  // Lines still in the pipe after the kill were printed after their append settled: they count too.
  for await (const line of createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY })) {
    const [word, id, ts, rest] = line.split(' ');
    if (id === undefined || ts === undefined || rest === undefined || (word !== 'ack' && word !== 'append')) {
      throw new Error(`appender printed ${JSON.stringify(line)}`);
    }
    if (word === 'append') {
      model.attempted.add(`${id} ${ts}`);
      if (rest === 'tombstone') {
        const list = model.tombstones.get(id) ?? [];
        list.push(BigInt(ts));
        model.tombstones.set(id, list);
      }
      continue;
    }
    acks.push({ id, ts: BigInt(ts), hash: rest });
    if (acks.length === target) child.kill('SIGKILL');
  }
  const [code, signal] = await exited;
  children.delete(child);
  if (signal !== 'SIGKILL') {
    throw new Error(`appender exited by itself (code ${code}, signal ${signal}) after ${acks.length} acks:\n${stderr}`);
  }
  return acks;
}

/**
 * Opens the folder after a kill and lists every broken promise: an acked append missing
 * or rolled back, a record served before gone, data that is not what the appender
 * wrote, replay out of order or with an id twice. Updates `model.served` and the horizon.
 */
async function verify(mode: Mode, model: Model, totals: Totals): Promise<string[]> {
  const problems: string[] = [];
  const store = await Store.open({ dir, compactThreshold: 0 });
  try {
    const { recovery, ids } = store.stats();
    if (recovery.truncatedBytes > 0) totals.tornTails++;
    totals.truncatedBytes += recovery.truncatedBytes;
    totals.leftoversRemoved += recovery.leftoversRemoved;
    for (const c of recovery.corruptions) problems.push(`recovery found corruption ${JSON.stringify(c)}`);
    const horizon = store.horizon;
    if (mode === 'plain' && horizon !== null) problems.push(`plain appends set a horizon ${horizon}`);
    if (model.horizon !== null && (horizon === null || horizon < model.horizon)) {
      problems.push(`the horizon went back from ${model.horizon} to ${horizon}`);
    }

    const replayed = new Map<string, bigint>();
    let previous: bigint | null = null;
    for await (const m of store.replay(null)) {
      const bad = checkData(m.id, m.ts, m.data);
      if (bad) problems.push(`replay served bad data: ${bad}`);
      if (!model.attempted.has(`${m.id} ${m.ts}`)) problems.push(`replay served ${m.id}@${m.ts}, never appended`);
      if (previous !== null && m.ts <= previous) problems.push(`replay went from ts ${previous} to ${m.ts} (${m.id})`);
      if (replayed.has(m.id)) problems.push(`replay served ${m.id} twice`);
      previous = m.ts;
      replayed.set(m.id, m.ts);
    }
    if (replayed.size !== ids) problems.push(`replay served ${replayed.size} ids, stats count ${ids}`);

    for (const [id, ack] of model.acked) {
      const m = await store.get(id);
      const r = replayed.get(id);
      if (!m) {
        if (mayBeGone(mode, model, horizon, id, ack.ts)) totals.goneIds++;
        else {
          const what = ack.hash === EMPTY_SHA1 ? 'tombstone' : 'data';
          problems.push(`acked ${id}@${ack.ts} (${what}) is missing; horizon ${horizon}`);
        }
        if (r !== undefined) problems.push(`get(${id}) found nothing, replay served it @${r}`);
        continue;
      }
      if (m.ts < ack.ts) problems.push(`acked ${id}@${ack.ts} rolled back to @${m.ts}`);
      else if (m.ts === ack.ts && sha1(m.data) !== ack.hash) problems.push(`acked ${id}@${ack.ts} has other data`);
      const bad = checkData(m.id, m.ts, m.data);
      if (bad) problems.push(`get served bad data: ${bad}`);
      if (m.id !== id) problems.push(`get(${id}) served ${m.id}`);
      if (r !== m.ts) problems.push(`get(${id}) served @${m.ts}, replay @${r}`);
    }

    // What one recovery served, the next must serve too (or newer): SIGKILL loses no written byte.
    for (const [id, before] of model.served) {
      const now = replayed.get(id);
      if (now === undefined) {
        if (!mayBeGone(mode, model, horizon, id, before)) {
          problems.push(`${id}@${before}, served by the previous recovery, is gone; horizon ${horizon}`);
        }
      } else if (now < before) {
        problems.push(`${id}@${before}, served by the previous recovery, rolled back to @${now}`);
      }
    }
    model.served = replayed;
    model.horizon = horizon;
    return problems;
  } finally {
    await store.close();
  }
}

async function killRounds(mode: Mode, kills: number): Promise<void> {
  const random = mulberry32(SEED);
  const model: Model = {
    acked: new Map(),
    attempted: new Set(),
    tombstones: new Map(),
    served: new Map(),
    horizon: null,
  };
  const totals: Totals = { acks: 0, tornTails: 0, truncatedBytes: 0, leftoversRemoved: 0, goneIds: 0 };
  for (let round = 1; round <= kills; round++) {
    const target = 1 + Math.floor(random() * MAX_ACKS);
    const acks = await runUntilKilled(mode, BigInt(round) * TS_BASE, target, model);
    expect(acks.length, `round ${round} (seed ${SEED}): acks before the kill`).toBeGreaterThanOrEqual(target);
    totals.acks += acks.length;
    for (const ack of acks) {
      const known = model.acked.get(ack.id);
      if (!known || ack.ts > known.ts) model.acked.set(ack.id, ack);
    }
    const problems = await verify(mode, model, totals);
    expect(problems, `round ${round} of ${kills}, ${mode}, GOSSIP_KILL_SEED=${SEED}, dir ${dir}`).toEqual([]);
  }
  console.log(
    `kill (${mode}): ${kills} kills, ${totals.acks} acks, ${totals.tornTails} torn tails truncated ` +
      `(${totals.truncatedBytes} bytes), ${totals.leftoversRemoved} compaction leftovers removed, ` +
      `${totals.goneIds} acked ids deleted by a dropped tombstone, horizon ${model.horizon}, seed ${SEED}`,
  );
}

const timeout = 60_000 + KILLS * 2_000;

describe('kill', () => {
  it(
    'kill - every acked append survives SIGKILL at random points',
    async () => {
      await killRounds('plain', KILLS);
    },
    timeout,
  );

  it(
    'kill - every acked append survives SIGKILL during continuous compaction',
    async () => {
      await killRounds('compact', KILLS);
    },
    timeout,
  );
});
