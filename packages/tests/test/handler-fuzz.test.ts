import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import {
  type AckFrame,
  AckStatus,
  type ErrorFrame,
  type FetchResultFrame,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  LegacyKind,
  MAX_ID_BYTES,
  MAX_PREFIX_BYTES,
  MessageFlags,
  MIN_TS,
  now,
  ResyncReason,
  type WelcomeFrame,
} from '@gossip/protocol';
import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import {
  type AckExpect,
  type AckOutcome,
  drawCuts,
  drawLegacy,
  drawNative,
  type Env,
  echoKey,
  type Fate,
  hashOf,
  heldKey,
  idPools,
  LEGACY_GENERATORS,
  LegacyPlan,
  type Limits,
  NATIVE_GENERATORS,
  NativePlan,
  type PrefixHold,
  SlotModel,
} from '../src/fuzz-frames.js';
import { LegacyClient } from '../src/legacy-client.js';
import { harness } from './harness.js';

/*
 * A structure-aware fuzzer of the server's handlers (issue 14, item 10): beside the
 * decoder fuzzing of robustness.test.ts ("bad input"), frames that are valid in layout
 * but carry hostile fields, every kind a client can put on the wire, native and legacy,
 * sent by several connections at once in random cuts, against a real gossipd, while a
 * well-behaved publisher and subscriber work throughout.
 *
 * The oracle, per fuzz connection (generators and their expectations: src/fuzz-frames.ts):
 * - its fate: kept, or ended with ONE error frame (native) or one `error: CODE: …` line
 *   (legacy) whose code is one the doc allows for what was sent; never
 *   GOSSIP_ERR_INTERNAL. SLOW_CONSUMER is allowed anywhere (E3: this process reads ~8
 *   connections on one thread, and a replay holds live messages): counted, not failed;
 * - what a kept connection is owed, checked exactly: one ack per publish, per emit with
 *   a reqId or refused, per refused fetch, each with an allowed outcome (ids of its own
 *   slot are modelled: accepted or stale is known, see SlotModel; shared ids are either);
 *   one pong per ping, in order; per fetch, its results in order, each distinct id once
 *   in first-mention order, values the model allows; the welcome (the server's epoch and
 *   limits, the prefix limits among them), the resync the hello calls for (R3, H3, H4),
 *   a replay in ascending ts with each id once and a replay-done that counts it, no live
 *   message before replay-done; for prefixes (B1 to B6), named in the hello or by
 *   subscribes and dropped by unsubscribes, whose acks the plan knows: each held
 *   prefix's prefix-resync as its since and epoch call for and its prefix-done counting
 *   its replay of its own ids, no message under none of the connection's prefixes;
 *   the echo of every certainly accepted publish and emit under a prefix held then and
 *   never dropped (none with echo off);
 * - what an ended connection got is checked the same way as far as it goes (acks and
 *   results still owed when it ended may be missing); pongs owed before a fatal frame
 *   must all come (E2: what is queued goes first).
 * Weak, by design: the content of a replay (only its order and shape), what shared ids
 * hold, the order of an echo against its ack (A4 has exceptions), legacy echoes (a
 * legacy connection has no barrier to wait for them). Either answer passes where the
 * doc cannot decide: a ts within 1 ms of the skew limit.
 *
 * Throughout, a well-behaved subscriber must get every message the honest publisher had
 * accepted, in order and whole, and never be dropped. After the run: gossipd alive,
 * /healthz 200, a new client publishes, and once the fuzz connections are gone its RSS
 * is at most its RSS before fuzzing plus 2 × --max-outbound.
 *
 * GOSSIP_E2E_SEED replays a run (printed in every assertion message); GOSSIP_FUZZ_FRAMES
 * sets the number of fuzz frames (default 5,000; 1,000,000 for a long run, whose timeout
 * grows with it).
 */

const h = harness();
const SEED = Number(process.env.GOSSIP_E2E_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FRAMES = Number(process.env.GOSSIP_FUZZ_FRAMES ?? 5_000);
/** Connections fuzzing at once. */
const SLOTS = 5;
const KiB = 1024;
const MiB = 1024 * KiB;
const LIMITS: Limits = {
  maxData: 256 * KiB,
  maxFrame: 256 * KiB + 64 * KiB,
  maxFetchIds: 64,
  maxPrefixes: 4,
  skewMs: 1000,
  tombstoneRetentionMs: 24 * 3600 * 1000,
};
/**
 * gossipd's default. Not smaller: after a run the process keeps 50–65 MB above its
 * starting RSS whatever the run's length (5,000 or 200,000 frames), with its JS heap and
 * external memory back where they were: memory the C allocator and V8 keep for reuse
 * once freed, not memory held for connections. Twice a small cap (8 MiB) would be
 * below that floor.
 */
const MAX_OUTBOUND = 64 * MiB;
/** A connection that has not got what it is owed by then is reported as stalled (a guard, not a wait). */
const STALL_MS = 30_000;
const BARRIER_NONCE = 0x0b0a7;
const why = (what: string) => `${what} (seed ${SEED}, GOSSIP_FUZZ_FRAMES=${FRAMES})`;
const hex = (b: Buffer, max = 160) =>
  b.subarray(0, max).toString('hex') + (b.length > max ? `…(${b.length} bytes)` : '');

/** A native connection at the frame level that keeps nothing: frames go to a callback. */
class Wire {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  isClosed = false;
  decodeError: unknown;
  #waiters: { ready: () => boolean; resolve: () => void }[] = [];

  constructor(socket: Socket, onFrame: (f: Frame) => void) {
    this.socket = socket;
    socket.setNoDelay(true);
    const dec = new FrameDecoder(onFrame, { maxFrameBytes: 64 * MiB });
    socket.on('data', (chunk: Buffer) => {
      try {
        dec.push(chunk);
      } catch (error) {
        this.decodeError = error;
        socket.destroy();
      }
      this.poke();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.poke();
        resolve();
      }),
    );
  }

  static async open(port: number, onFrame: (f: Frame) => void): Promise<Wire> {
    const w = new Wire(connect(port, '127.0.0.1'), onFrame);
    await once(w.socket, 'connect');
    return w;
  }

  /** Resolves once `ready()` holds or the connection has closed. */
  until(ready: () => boolean): Promise<void> {
    if (ready() || this.isClosed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ ready, resolve }));
  }

  poke(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.ready() && !this.isClosed) return true;
      w.resolve();
      return false;
    });
  }
}

/** A fetch-result entry as kept: the data only as a hash. */
interface Entry {
  id: string;
  found: boolean;
  key: string;
}

/** Kinds a connection's trace keeps. */
const TRACED = new Set<number>([
  FrameKind.Ack,
  FrameKind.ReplayDone,
  FrameKind.Resync,
  FrameKind.PrefixDone,
  FrameKind.PrefixResync,
]);
const short = (_key: string, v: unknown) =>
  typeof v === 'bigint' ? String(v) : typeof v === 'string' && v.length > 24 ? `${v.slice(0, 16)}…(${v.length})` : v;

/** A replayed message as the checker keeps it. */
interface Replayed {
  id: string;
  ts: bigint;
}

/**
 * What one native fuzz connection received, with the order rules checked as frames
 * arrive (welcome first, nothing after an error frame). Replays: a hello without
 * prefixes gets its resync right after the welcome and ends its replay with a
 * replay-done (R1 to R4); each prefix, of a hello or a subscribe, ends its replay with a
 * prefix-done (B5) after its prefix-resync, if any (B6). The server replays one prefix at
 * a time, so the replayed messages before a done frame are that prefix's (its `count`
 * last ones) or those of replays an unsubscribe cut short. Which prefix a done belongs
 * to is the latest of that name whose subscribe was acked (the hello's, otherwise).
 */
class Received {
  readonly problems: string[] = [];
  frames = 0;
  welcome: WelcomeFrame | undefined;
  resync: ResyncReason | number | undefined;
  replayDone = false;
  readonly acks: AckFrame[] = [];
  readonly pongs: number[] = [];
  readonly groups: { reqId: number; entries: Entry[]; frames: number }[] = [];
  #group: { reqId: number; entries: Entry[]; frames: number } | undefined;
  error: ErrorFrame | undefined;
  /** Live messages of watched ids, by echo key. */
  readonly live = new Map<string, number>();
  /** Replayed messages since the last done frame. */
  #replayed: Replayed[] = [];
  /** The holds whose subscribe was acked (the hello's from the welcome on). */
  readonly #acked = new Set<PrefixHold>();
  /** The holds whose prefix-done came. */
  readonly #done = new Set<PrefixHold>();
  /** The hold a prefix-resync came for, by prefix, until its prefix-done. */
  readonly #resynced = new Map<string, PrefixHold>();
  readonly #plan: NativePlan;
  readonly #env: Env;

  constructor(plan: NativePlan, env: Env) {
    this.#plan = plan;
    this.#env = env;
  }

  /** The frames that end replays and acks, in short, for the report of a connection that went wrong. */
  readonly trace: string[] = [];

  frame(f: Frame): void {
    const index = this.frames++;
    if (TRACED.has(f.kind)) this.trace.push(`${index}: ${JSON.stringify(f, short)}`);
    const bad = (what: string) => this.problems.push(`${what} (frame ${index}, kind ${f.kind})`);
    const plan = this.#plan;
    if (this.error) bad('a frame after the error frame (E2)');
    switch (f.kind) {
      case FrameKind.Error:
        this.error = f;
        return;
      case FrameKind.Welcome:
        if (index !== 0) bad('a welcome that is not the first frame (W1)');
        if (!plan.hello) bad('a welcome for a connection whose hello was refused');
        this.welcome = f;
        this.#checkWelcome(f, bad);
        for (const h of plan.holds) if (h.reqId === undefined) this.#acked.add(h);
        return;
      case FrameKind.Resync:
        if (index !== 1 || !this.welcome) bad('a resync not right after the welcome (R3)');
        if (plan.hello?.prefixes !== undefined) bad('a resync for a hello that named prefixes (B2)');
        this.resync = f.reason;
        return;
      case FrameKind.PrefixResync: {
        const hold = this.#current(f.prefix, bad, 'prefix-resync');
        if (hold) {
          this.#resynced.set(f.prefix, hold);
          const want = this.#reason(hold);
          if (f.reason !== want)
            bad(`prefix-resync ${f.reason} for ${JSON.stringify(f.prefix)}, expected ${want} (B6)`);
        }
        return;
      }
      case FrameKind.Message: {
        if (!this.welcome) bad('a message before the welcome');
        if (!plan.holds.some((h) => f.id.startsWith(h.prefix)))
          bad(`a message for ${JSON.stringify(f.id)}, under none of the connection's prefixes (B1)`);
        const replayed = (f.flags & MessageFlags.Replayed) !== 0;
        if (replayed) {
          if (!plan.scoped && this.replayDone) bad('a replayed message after replay-done (M2)');
          this.#replayed.push({ id: f.id, ts: f.ts });
          return;
        }
        // Only a connection that holds nothing but the "" of its hello holds every live message until its replay-done.
        if (!plan.scoped && !this.replayDone) bad('a live message before replay-done (R1)');
        // Otherwise a live message waits for the done frame of one prefix that matches it (B5).
        const matched = plan.holds.filter((h) => this.#acked.has(h) && f.id.startsWith(h.prefix));
        if (plan.scoped && matched.length > 0 && !matched.some((h) => this.#done.has(h)))
          bad(`a live message for ${JSON.stringify(f.id)} before the done frame of any prefix it is under (B5)`);
        if (plan.watch.has(f.id)) {
          const key = echoKey((f.flags & MessageFlags.Transient) !== 0, f.id, f.ts, hashOf(f.data));
          this.live.set(key, (this.live.get(key) ?? 0) + 1);
        }
        return;
      }
      case FrameKind.ReplayDone: {
        if (!this.welcome || this.replayDone) bad('a replay-done out of place (R2)');
        if (plan.hello?.prefixes !== undefined) bad('a replay-done for a hello that named prefixes (B2)');
        this.replayDone = true;
        const hold = plan.holds.find((h) => !h.named);
        // The hello's replay is the first: every replayed message so far is its own.
        if (f.count !== this.#replayed.length)
          bad(`replay-done counts ${f.count}, ${this.#replayed.length} replayed (R2)`);
        if (f.snapshot !== (this.resync !== undefined))
          bad(`replay-done snapshot ${f.snapshot} after resync ${this.resync}`);
        if (hold) {
          this.#done.add(hold);
          this.#segment(hold, f.count, f.snapshot, f.newestTs, bad);
          const want = this.#reason(hold);
          if (this.resync !== want) bad(`resync ${this.resync}, expected ${want} (R3, H3, H4)`);
        }
        this.#replayed = [];
        if (plan.hello?.since === null && this.welcome && f.newestTs !== this.welcome.newestTs)
          bad(`a live-only replay-done with newestTs ${f.newestTs}, the welcome said ${this.welcome.newestTs} (R4)`);
        return;
      }
      case FrameKind.PrefixDone: {
        const hold = this.#current(f.prefix, bad, 'prefix-done');
        if (hold?.since === null) {
          // Live only: done at once, in the middle of another prefix's replay if one runs (B5).
          if (this.#done.has(hold)) bad(`a second prefix-done for ${JSON.stringify(f.prefix)} (B5)`);
          this.#done.add(hold);
          if (f.count !== 0 || f.snapshot)
            bad(`a live-only prefix-done counting ${f.count}, snapshot ${f.snapshot} (B5)`);
          return;
        }
        if (hold) {
          if (this.#done.has(hold)) bad(`a second prefix-done for ${JSON.stringify(f.prefix)} (B5)`);
          this.#done.add(hold);
          const resynced = this.#resynced.get(f.prefix) === hold;
          if (f.snapshot !== resynced) bad(`prefix-done snapshot ${f.snapshot}, prefix-resync ${resynced} (B6)`);
          if (!resynced && this.#reason(hold) !== undefined)
            bad(`no prefix-resync for ${JSON.stringify(f.prefix)} (B6)`);
          this.#segment(hold, f.count, f.snapshot, f.newestTs, bad);
        }
        this.#resynced.delete(f.prefix);
        this.#replayed = [];
        return;
      }
      case FrameKind.Ack: {
        if (!this.welcome) bad('an ack before the welcome');
        this.acks.push(f);
        const hold = plan.subscribes.get(f.reqId);
        if (hold && f.status === AckStatus.Accepted) this.#acked.add(hold);
        return;
      }
      case FrameKind.Pong:
        if (!this.welcome) bad('a pong before the welcome');
        this.pongs.push(f.nonce);
        return;
      case FrameKind.FetchResult:
        this.#fetchResult(f, bad);
        return;
      default:
        bad('a frame a server does not send');
    }
  }

  /** The hold of `prefix` a done or resync frame is for: the latest acked, named one. */
  #current(prefix: string, bad: (what: string) => void, what: string): PrefixHold | undefined {
    if (!this.welcome) bad(`a ${what} before the welcome`);
    const holds = this.#plan.holds.filter((h) => h.named && h.prefix === prefix && this.#acked.has(h));
    const hold = holds.at(-1);
    if (!hold) bad(`a ${what} for ${JSON.stringify(prefix)}, which the connection did not name (B5)`);
    return hold;
  }

  /** The resync `hold`'s since and epoch call for (R3, H3, H4, B6), against the welcome's horizon. */
  #reason(hold: PrefixHold): ResyncReason | undefined {
    if (hold.since === null) return undefined;
    const horizon = this.welcome?.horizon ?? null;
    if (hold.epoch !== null && hold.epoch !== this.#env.epoch) return ResyncReason.Epoch;
    if (horizon !== null && hold.since <= horizon) return ResyncReason.Horizon;
    if (hold.since === MIN_TS && hold.epoch === null) return ResyncReason.Full;
    return undefined;
  }

  /**
   * The replay of `hold` that a done frame counting `count` ends: its last `count`
   * replayed messages, under its prefix, in ascending ts, each id once, from its since
   * unless a snapshot, none past the done's newestTs (R1, R2, B5).
   */
  #segment(hold: PrefixHold, count: number, snapshot: boolean, newestTs: bigint, bad: (what: string) => void): void {
    const name = JSON.stringify(hold.prefix);
    if (count > this.#replayed.length) {
      bad(`the done of ${name} counts ${count}, ${this.#replayed.length} replayed (R2, B5)`);
      return;
    }
    if (hold.since === null && count > 0) bad(`a replay of ${count} for the live-only ${name} (R4, B5)`);
    const mine = this.#replayed.slice(this.#replayed.length - count);
    const ids = new Set<string>();
    let last = MIN_TS;
    for (const m of mine) {
      if (!m.id.startsWith(hold.prefix)) bad(`${JSON.stringify(m.id)} replayed for ${name} (B5)`);
      if (m.ts < last) bad(`replay of ${name} not in ascending ts: ${m.ts} after ${last} (R1)`);
      last = m.ts;
      if (ids.has(m.id)) bad(`id ${JSON.stringify(m.id)} replayed twice for ${name} (R1)`);
      ids.add(m.id);
      if (!snapshot && hold.since !== null && m.ts < hold.since)
        bad(`replayed ts ${m.ts} below since ${hold.since} (R1)`);
      if (m.ts > newestTs) bad(`a replayed ts ${m.ts} past the done's newestTs ${newestTs} (R2)`);
    }
  }

  #checkWelcome(f: WelcomeFrame, bad: (what: string) => void): void {
    const want = {
      version: 1,
      epoch: this.#env.epoch,
      maxIdBytes: MAX_ID_BYTES,
      maxDataBytes: LIMITS.maxData,
      maxFrameBytes: LIMITS.maxFrame,
      maxPrefixes: LIMITS.maxPrefixes,
      maxPrefixBytes: MAX_PREFIX_BYTES,
    };
    const got = {
      version: f.version,
      epoch: f.epoch,
      maxIdBytes: f.maxIdBytes,
      maxDataBytes: f.maxDataBytes,
      maxFrameBytes: f.maxFrameBytes,
      maxPrefixes: f.maxPrefixes,
      maxPrefixBytes: f.maxPrefixBytes,
    };
    if (JSON.stringify(got) !== JSON.stringify(want)) bad(`welcome ${JSON.stringify(got)} (W1, B1)`);
  }

  #fetchResult(f: FetchResultFrame, bad: (what: string) => void): void {
    if (!this.welcome) bad('a fetch-result before the welcome');
    this.#group ??= { reqId: f.reqId, entries: [], frames: 0 };
    const g = this.#group;
    g.frames++;
    if (f.reqId !== g.reqId) bad(`fetch-results of reqIds ${g.reqId} and ${f.reqId} interleaved (Q3)`);
    for (const e of f.entries)
      g.entries.push({
        id: e.id,
        found: e.found,
        key: e.found ? heldKey({ ts: e.ts, hash: hashOf(e.data) }) : 'absent',
      });
    if (!f.more) {
      this.groups.push(g);
      this.#group = undefined;
    }
  }

  /**
   * Everything owed to a kept connection has come: the done frame of every prefix it
   * still holds (the hello's replay-done for its ""), acks, pongs, fetches.
   */
  owedDone(): boolean {
    const plan = this.#plan;
    return (
      plan.holds.every((h) => h.dropped || this.#done.has(h)) &&
      this.acks.length >= plan.acks.filter((a) => !a.optional).length &&
      this.pongs.length >= plan.pings.length &&
      this.groups.length >= plan.fetches.length
    );
  }
}

const outcomeOf = (a: AckFrame): AckOutcome =>
  a.status === AckStatus.Accepted
    ? 'accepted'
    : a.status === AckStatus.Stale
      ? 'stale'
      : (a.code ?? 'GOSSIP_ERR_UNKNOWN');

function ackMatches(e: AckExpect, a: AckFrame): boolean {
  if (e.reqId !== a.reqId || !e.outcomes.includes(outcomeOf(a))) return false;
  const written = e.publish && a.status === AckStatus.Accepted;
  return written ? a.durability !== 0 : a.durability === 0;
}

/**
 * Matches acks to expectations: reqIds repeat, so several may fit one ack. Kuhn's
 * augmenting paths from the expectations' side, required ones first, find the largest
 * matching that leaves as few required expectations unmatched as can be.
 */
function matchAcks(expected: AckExpect[], acks: AckFrame[]): { extra: AckFrame[]; missing: AckExpect[] } {
  const holder = new Array<number>(acks.length).fill(-1);
  const byReqId = new Map<number, number[]>();
  for (const [k, a] of acks.entries()) byReqId.set(a.reqId, [...(byReqId.get(a.reqId) ?? []), k]);
  const order = [...expected.keys()].sort((a, b) => Number(expected[a]?.optional) - Number(expected[b]?.optional));
  const missing: AckExpect[] = [];
  for (const k of order) {
    const seen = new Set<number>();
    const assign = (x: number): boolean => {
      const e = expected[x] as AckExpect;
      for (const ai of byReqId.get(e.reqId) ?? []) {
        if (seen.has(ai) || !ackMatches(e, acks[ai] as AckFrame)) continue;
        seen.add(ai);
        if (holder[ai] === -1 || assign(holder[ai] as number)) {
          holder[ai] = x;
          return true;
        }
      }
      return false;
    };
    const e = expected[k] as AckExpect;
    if (!assign(k) && !e.optional) missing.push(e);
  }
  return { extra: acks.filter((_, ai) => holder[ai] === -1), missing };
}

/** Checks how a connection ended against its fate; returns whether it was dropped as a slow consumer. */
function checkFate(fate: Fate, code: string | undefined, bad: (what: string) => void): boolean {
  if (code === 'GOSSIP_ERR_INTERNAL') bad('the server sent GOSSIP_ERR_INTERNAL');
  if (code === 'GOSSIP_ERR_SLOW_CONSUMER') return true;
  const codes = fate.t === 'keep' ? [] : fate.codes;
  if (code === undefined) {
    if (fate.t === 'fatal') bad(`closed without an error; expected one of ${codes.join(', ')}`);
  } else if (!(codes as string[]).includes(code)) {
    bad(
      `ended with ${code}; expected ${fate.t === 'keep' ? 'the connection to stay' : `one of ${codes.join(', ') || 'no error'}`}`,
    );
  }
  return false;
}

interface Tally {
  connections: number;
  legacy: number;
  frames: number;
  slow: number;
  problems: string[];
  fates: Map<string, number>;
}

const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function report(tally: Tally, tag: string, frames: { bytes: Buffer; label: string }[], problems: string[]): void {
  if (problems.length === 0) return;
  if (tally.problems.length < 20) {
    const shown = frames.slice(-12).map((f) => `    ${f.label}: ${hex(f.bytes)}`);
    tally.problems.push(
      `${tag}: ${problems.slice(0, 6).join('; ')}\n  last ${shown.length} of ${frames.length} frames:\n${shown.join('\n')}`,
    );
  } else tally.problems.push(`${tag}: ${(problems[0] as string).slice(0, 200)}`);
}

async function write(socket: Socket, bytes: Buffer, cuts: number[]): Promise<void> {
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (socket.destroyed) return;
    socket.write(bytes.subarray(at, cut));
    at = cut;
    // A turn between writes, so each lands in its own read.
    await turn();
  }
}

async function runNative(port: number, env: Env, plan: NativePlan, cuts: number[], tag: string, tally: Tally) {
  const got = new Received(plan, env);
  const wire = await Wire.open(port, (f) => got.frame(f));
  const guard = setTimeout(() => wire.socket.destroy(new Error('stalled')), STALL_MS);
  let stalled = false;
  wire.socket.once('error', (e) => {
    if (e.message === 'stalled') stalled = true;
  });
  const bytes = Buffer.concat(plan.frames.map((f) => f.bytes));
  await write(wire.socket, bytes, cuts);
  const fate = plan.fate;
  if (fate.t === 'keep' || fate.t === 'maybe') {
    await wire.until(() => got.owedDone());
    if (!wire.isClosed && plan.hello) {
      // The barrier: its pong comes after everything queued before it, echoes included (K2, A4).
      wire.socket.write(new FrameEncoder().ping(BARRIER_NONCE).take());
      await wire.until(() => got.pongs.length > plan.pings.length);
    }
    wire.socket.end();
  }
  await wire.closed;
  clearTimeout(guard);

  const problems = [...got.problems];
  const bad = (what: string) => problems.push(what);
  if (stalled)
    bad(
      `stalled: owed ${JSON.stringify({ hello: !!plan.hello, acks: plan.acks.length, pongs: plan.pings.length, fetches: plan.fetches.length })}, got ${JSON.stringify({ replayDone: got.replayDone, acks: got.acks.length, pongs: got.pongs.length, fetches: got.groups.length })}`,
    );
  if (wire.decodeError) bad(`the server's bytes did not decode: ${String(wire.decodeError)}`);
  const slow = checkFate(fate, got.error?.code, bad);
  if (slow) tally.slow++;
  count(tally.fates, got.error?.code ?? (fate.t === 'quiet' ? 'closed by the client' : 'kept'));
  // Everything owed must have come unless the connection ended early (or a frame it was owed was lost with it).
  const complete = !got.error && fate.t !== 'quiet' && !stalled;

  if (plan.hello && !got.welcome && (complete || (got.frames > 0 && !got.error)))
    bad('no welcome for an accepted hello');
  if (!plan.hello && got.frames > (got.error ? 1 : 0)) bad('the server answered a connection that sent no valid hello');
  if (complete && plan.hello && !got.owedDone()) bad('not every prefix it holds got its done frame (R2, B5)');

  for (const a of got.acks) if (a.code === 'GOSSIP_ERR_INTERNAL') bad(`ack ${a.reqId} with GOSSIP_ERR_INTERNAL`);
  const { extra, missing } = matchAcks(plan.acks, got.acks);
  for (const a of extra.slice(0, 3))
    bad(`an ack nothing asked for: reqId ${a.reqId} ${outcomeOf(a)} durability ${a.durability}`);
  if (complete)
    for (const e of missing.slice(0, 3)) bad(`no ack for ${e.label}: expected one of ${e.outcomes.join(', ')}`);

  const pongsWanted = complete ? [...plan.pings, BARRIER_NONCE] : plan.pings;
  const pongsExact = complete || (fate.t === 'fatal' && !slow);
  const pongsOk = pongsExact
    ? got.pongs.join() === pongsWanted.join()
    : got.pongs.every((n, k) => n === pongsWanted[k]) && got.pongs.length <= pongsWanted.length;
  if (!pongsOk)
    bad(
      `pongs ${got.pongs.length} [${got.pongs.slice(0, 5)}…], pings ${pongsWanted.length} [${pongsWanted.slice(0, 5)}…] (K1)`,
    );

  if (got.groups.length > plan.fetches.length)
    bad(`${got.groups.length} fetch answers for ${plan.fetches.length} fetches`);
  if (complete && got.groups.length < plan.fetches.length)
    bad(`${got.groups.length} fetch answers for ${plan.fetches.length} fetches`);
  for (const [k, g] of got.groups.entries()) {
    const e = plan.fetches[k];
    if (!e) break;
    if (g.reqId !== e.reqId) {
      bad(`fetch answer ${k} for reqId ${g.reqId}, expected ${e.reqId} (Q3: in order)`);
      continue;
    }
    const ids = g.entries.map((x) => x.id);
    if (ids.join('\u0001') !== e.ids.join('\u0001')) {
      bad(`${e.label}: entries for ${JSON.stringify(ids).slice(0, 200)}, expected each id once in order (Q2)`);
      continue;
    }
    for (const entry of g.entries) {
      const allowed = e.allowed.get(entry.id)?.();
      if (allowed === undefined || allowed === 'any') continue;
      if (!allowed.some((v) => heldKey(v) === entry.key)) {
        env.model.forget(entry.id);
        bad(
          `${e.label}: ${JSON.stringify(entry.id).slice(0, 60)} = ${entry.key}, the store may hold ${allowed.map((v) => `${heldKey(v)} (from ${env.model.sourceOf(entry.id, v)})`).join(' | ')}`,
        );
      }
    }
  }

  if (complete && plan.hello) {
    const want = new Map<string, number>();
    // Certain only under a prefix it held then and never dropped (B1, B4).
    for (const e of plan.echoes)
      if ((plan.hello.echo || e.own) && e.by.some((h) => !h.dropped)) want.set(e.key, (want.get(e.key) ?? 0) + 1);
    for (const [key, n] of want) {
      const seen = got.live.get(key) ?? 0;
      if (plan.hello.echo && seen < n) bad(`echo on: ${n} × ${key.slice(0, 80)} expected, ${seen} came (H1)`);
      if (!plan.hello.echo && seen > 0) bad(`echo off: own message ${key.slice(0, 80)} came back (H1)`);
    }
  }
  // Every ack came and one says written: everything appended before it is written too
  // (the store writes its batches in order), so fetches from now on see what ids hold.
  if (complete && missing.length === 0 && got.acks.some((a) => a.status === AckStatus.Accepted && a.durability > 0))
    env.model.settled();
  if (problems.length > 0 && plan.scoped) {
    // Prefixes: which the plan named, dropped and subscribed, and what ended each replay.
    const named = plan.frames.map((f, i) => `${i}: ${f.label.slice(0, 80)}`).filter((l) => /subscribe|hello/.test(l));
    const trace = `prefix frames sent ${named.join(' | ')}; received ${got.trace.slice(0, 60).join(' | ')}`;
    problems.splice(Math.min(problems.length, 5), 0, trace);
  }
  report(tally, tag, plan.frames, problems);
}

const ERROR_LINE = /^error: (GOSSIP_ERR_[A-Z0-9_]+): [^\n]*\n$/;

async function runLegacy(port: number, plan: LegacyPlan, cuts: number[], tag: string, tally: Tally) {
  const c = await LegacyClient.open(port);
  let stalled = false;
  const guard = setTimeout(() => {
    stalled = true;
    c.close();
  }, STALL_MS);
  await write(c.socket, Buffer.concat(plan.frames.map((f) => f.bytes)), cuts);
  const fate = plan.fate;
  if ((fate.t === 'keep' || fate.t === 'maybe') && plan.welcomed) {
    // `D` ends the replay (L3); then our end: the server reads what is left and closes too.
    await c.next((e) => e.kind === 'D').catch(() => undefined);
    c.socket.end();
  }
  await c.closed;
  clearTimeout(guard);

  const problems: string[] = [];
  const bad = (what: string) => problems.push(what);
  if (stalled) bad('stalled');
  if (c.problem) bad(`the server's bytes broke the protocol: ${c.problem}`);
  if (plan.welcomed && !c.welcomed) bad('no GOSSIP\\n for a valid handshake (L1)');
  let code: string | undefined;
  if (c.text) {
    const m = ERROR_LINE.exec(c.text);
    if (!m) bad(`not one error line (L6): ${JSON.stringify(c.text.slice(0, 200))}`);
    code = m?.[1] ?? 'not a line';
  }
  const slow = checkFate(fate, code, bad);
  if (slow) tally.slow++;
  count(tally.fates, `legacy ${code ?? 'kept'}`);
  if (!code && plan.welcomed && !stalled && !c.events.some((e) => e.kind === 'D')) bad('no D after the replay (L3)');
  report(tally, tag, plan.frames, problems);
}

/** Data the honest publisher sends for `seq`: its number, then a pattern, so the subscriber can check it whole. */
function honestData(seq: number): Buffer {
  const b = Buffer.alloc(8 + ((seq * 37) % 1500), seq & 0xff);
  b.writeUInt32BE(seq, 0);
  return b;
}

describe('handler fuzz', () => {
  it('handler fuzz - every frame kind and every legacy kind has a generator', () => {
    const env: Env = {
      limits: LIMITS,
      epoch: '0123456789abcdef0123456789abcdef',
      pools: idPools(0),
      model: new SlotModel(LIMITS.tombstoneRetentionMs),
      hostility: 1,
    };
    const r = mulberry32(SEED);
    for (const kind of Object.values(FrameKind)) {
      const gen = NATIVE_GENERATORS[kind];
      expect(gen, `no generator for FrameKind ${kind}`).toBeTypeOf('function');
      const plan = new NativePlan();
      plan.state = kind === FrameKind.Hello ? 'hello' : 'live';
      const f = gen(r, env, plan);
      expect(f.bytes[4], why(`the generator of kind ${kind} writes kind ${f.bytes[4]}`)).toBe(kind);
    }
    for (const kind of Object.values(LegacyKind)) {
      expect(LEGACY_GENERATORS[kind], `no generator for LegacyKind ${kind}`).toBeTypeOf('function');
      const plan = new LegacyPlan();
      if (kind !== LegacyKind.Hello) plan.state = 'live';
      const f = LEGACY_GENERATORS[kind](r, env, plan);
      if (typeof kind === 'number') expect(f.bytes[0], why(`legacy kind ${kind}`)).toBe(kind);
    }
  });

  it(
    `handler fuzz - ${FRAMES} valid frames with hostile fields: each connection kept or ended with one allowed error, the honest pair unharmed, memory back within 2 × --max-outbound`,
    { timeout: 60_000 + FRAMES * 2 },
    async () => {
      const started = performance.now();
      const d = await h.start({
        args: [
          '--max-outbound',
          `${MAX_OUTBOUND}`,
          '--max-data',
          `${LIMITS.maxData}`,
          '--max-fetch-ids',
          `${LIMITS.maxFetchIds}`,
          '--max-prefixes',
          `${LIMITS.maxPrefixes}`,
        ],
      });

      // The honest subscriber: live, reads everything, keeps only the honest sequence.
      const honestSeen: number[] = [];
      const honestProblems: string[] = [];
      let subWelcome: WelcomeFrame | undefined;
      let subError: ErrorFrame | undefined;
      let subPongs = 0;
      const sub = await Wire.open(d.port, (f) => {
        if (f.kind === FrameKind.Welcome) subWelcome = f;
        else if (f.kind === FrameKind.Error) subError = f;
        else if (f.kind === FrameKind.Pong) subPongs++;
        else if (f.kind === FrameKind.Message && f.id.startsWith('good/')) {
          const seq = f.data.readUInt32BE(0);
          if (!honestData(seq).equals(f.data) || f.id !== `good/${seq % 50}`)
            honestProblems.push(`message ${seq} not whole`);
          honestSeen.push(seq);
        }
      });
      const subEnc = new FrameEncoder();
      sub.socket.write(subEnc.hello({ name: 'honest-sub' }).take());
      await sub.until(() => subWelcome !== undefined);
      const epoch = (subWelcome as WelcomeFrame).epoch;

      // The honest publisher: echo off, its own ids, a pair of publishes at a time, paced by the fuzzing.
      const pub = await h.live(d.port, { echo: false, name: 'honest-pub' });
      const accepted: number[] = [];
      let seq = 0;
      let batch: Promise<void> | undefined;
      const honestBatch = (): Promise<void> => {
        batch ??= (async () => {
          const from = pub.frames.length;
          const seqs = [seq++, seq++];
          for (const s of seqs) pub.enc.publish(s + 1, `good/${s % 50}`, now(), honestData(s));
          pub.send(pub.enc.take());
          for (const s of seqs) {
            const a = await pub.next<AckFrame>((f) => f.kind === FrameKind.Ack && f.reqId === s + 1, from);
            if (a.status === AckStatus.Accepted) accepted.push(s);
            else honestProblems.push(`honest publish ${s}: ${a.status} ${a.code}`);
          }
          batch = undefined;
        })();
        return batch;
      };
      // Both stay well-behaved past the idle timeout of a long run: they ping (K3).
      const keepAlive = setInterval(() => {
        sub.socket.write(subEnc.ping(1).take());
        pub.ping().catch(() => undefined);
      }, 5_000);
      try {
        for (let k = 0; k < 50; k++) await honestBatch();
        const before = await d.memory();

        const tally: Tally = { connections: 0, legacy: 0, frames: 0, slow: 0, problems: [], fates: new Map() };
        const perSlot = Math.ceil(FRAMES / SLOTS);
        await Promise.all(
          Array.from({ length: SLOTS }, async (_, slot) => {
            const r = mulberry32(SEED + 1000 * (slot + 1));
            const model = new SlotModel(LIMITS.tombstoneRetentionMs);
            const pools = idPools(slot);
            for (let sent = 0, n = 0; sent < perSlot; n++) {
              // Drawn before the first await: a seed replays each slot's connections exactly.
              const legacy = r() < 0.15;
              const tag = `slot ${slot} connection ${n} (${legacy ? 'legacy' : 'native'})`;
              const env: Env = {
                limits: LIMITS,
                epoch,
                pools,
                model,
                hostility: [0.05, 0.3, 1, 3][n % 4] as number,
                tag,
              };
              const plan = legacy ? drawLegacy(r, env, perSlot - sent) : drawNative(r, env, perSlot - sent);
              const total = plan.frames.reduce((s, f) => s + f.bytes.length, 0);
              const cuts = drawCuts(r, total);
              if (plan instanceof LegacyPlan) await runLegacy(d.port, plan, cuts, tag, tally);
              else await runNative(d.port, env, plan, cuts, tag, tally);
              sent += plan.frames.length;
              tally.frames += plan.frames.length;
              tally.connections++;
              if (legacy) tally.legacy++;
              void honestBatch();
            }
          }),
        );
        await honestBatch();
        await batch;

        // Every honest message accepted was broadcast before its ack, so before this pong.
        const pongs = subPongs;
        sub.socket.write(subEnc.ping(2).take());
        await sub.until(() => subPongs > pongs);
        // Soft: every finding of the run is reported, not only the first.
        expect.soft(subError?.code, why('the honest subscriber was dropped')).toBeUndefined();
        expect.soft(sub.isClosed, why('the honest subscriber was closed')).toBe(false);
        expect.soft(honestProblems, why('honest pair')).toEqual([]);
        expect.soft(honestSeen.length, why('honest messages lost')).toBe(accepted.length);
        expect.soft(honestSeen, why('honest messages in order')).toEqual(accepted);

        console.log(
          `handler fuzz: seed ${SEED}, ${tally.frames} frames in ${tally.connections} connections (${tally.legacy} legacy), ` +
            `${Math.round(performance.now() - started)} ms; slow-consumer drops ${tally.slow}; ends: ` +
            JSON.stringify(Object.fromEntries([...tally.fates].sort((a, b) => b[1] - a[1]))),
        );
        expect.soft(tally.problems, why(`${tally.problems.length} connections went wrong`)).toEqual([]);
        const internal = d.logs.filter((l) => l.level >= 50);
        expect.soft(internal.slice(0, 5), why('errors in the server log')).toEqual([]);

        // Zero crashes: alive, healthy, and a new client publishes.
        expect(d.child.exitCode, why('gossipd exited')).toBeNull();
        expect((await d.admin('/healthz')).status, why('/healthz')).toBe(200);
        const fresh = await h.live(d.port);
        expect((await fresh.publish('after/fuzz', now(), 'v')).status, why('a publish after fuzzing')).toBe(
          AckStatus.Accepted,
        );
        fresh.close();

        // Memory, once every fuzz connection is gone on the server's side too (the server
        // sees each close a moment after the client): asked a bounded number of times.
        let open = await d.metric('gossip_connections');
        for (let k = 0; k < 200 && open !== 2; k++) open = await d.metric('gossip_connections');
        expect(open, why('connections left open')).toBe(2);
        // gossipd cannot be told to collect its garbage: RSS is read a bounded number of
        // times, with honest traffic in between to give the collector work, and the
        // smallest reading counts.
        const bound = before.rss + 2 * MAX_OUTBOUND;
        let after = (await d.memory()).rss;
        for (let k = 0; k < 100 && after > bound; k++) {
          await honestBatch();
          after = Math.min(after, (await d.memory()).rss);
        }
        expect(after, why(`RSS ${after} after fuzzing, ${before.rss} before`)).toBeLessThanOrEqual(bound);
      } finally {
        clearInterval(keepAlive);
        sub.socket.destroy();
      }
    },
  );
});
