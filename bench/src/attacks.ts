/**
 * `pnpm bench:attacks`: what a hostile client can do to one gossipd build (issue 14),
 * measured the same way on any build so that figures before and after a fix compare.
 *
 *   node bench/dist/attacks.js [--gossipd <path to main.cjs>] [--only name,name] [--rss-cap-mib 4096]
 *
 * Each scenario starts its own gossipd (this tree's unless --gossipd names another
 * build's apps/gossipd/dist/main.cjs) on a free port and a temporary data folder, speaks
 * to it over raw sockets, samples the process's RSS (VmRSS) and open descriptors from
 * /proc every 20 ms, and prints one line: RSS at the start of the attack, its peak, RSS a
 * second after the attacker left, descriptors likewise, whether gossipd is still alive
 * (its exit code if not), and the attack's own figures; then a table of all of them.
 *
 * Every scenario ends within about a minute whatever gossipd does: the attack gives up
 * after 50 s, gossipd is then killed with SIGKILL and its folder removed. A gossipd whose
 * RSS passes --rss-cap-mib is killed at once (reported as such), so that one attack
 * cannot take the shared machine's memory. `--only` takes attack names (fetch-amplify)
 * or scenario names (fetch-amplify/200x10k-small).
 */

import { existsSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AckStatus, type Frame, FrameKind, type HelloOptions, now } from '@gossip/protocol';
import { type DialOptions, GOSSIPD, Gossipd, type LogLine, RawClient } from '@gossip/testing';
import { markdownTable } from './measure.js';
import { describePings, Pinger } from './pinger.js';
import { mib, type ProcSample, ProcSampler } from './proc-stats.js';
import { legacyZBurst } from './z-burst.js';

const FIXTURES = fileURLToPath(new URL('../../packages/tests/fixtures/', import.meta.url));
/** An attack gives up after this; with start-up and the second of "after", a scenario stays near a minute. */
const ATTACK_TIMEOUT_MS = 50_000;
/** `--max-outbound` for the fetch scenarios: gossipd's default, passed explicitly so the report can name it. */
const MAX_OUTBOUND = '64MiB';
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The harness: one gossipd per scenario, sampled, always killed and removed at the end.

interface Outcome {
  name: string;
  gossipd: string;
  rss: { base: number; peak: number; after: number | undefined };
  fds: { base: number; peak: number; after: number | undefined };
  /** The scenario's figures, in full, for its line. */
  figures: string[];
  /** Its main figure, for the table. */
  headline: string;
}

interface Harness {
  readonly port: number;
  readonly daemon: Gossipd;
  readonly sampler: ProcSampler;
  /** gossipd's log lines, with `performance.now()` when read. */
  readonly logs: { at: number; line: LogLine }[];
  /** The scenario's figures, in order. */
  readonly figures: string[];
  /** Starts the measured window: RSS and descriptors are read now as the baseline. */
  begin(): void;
  /** Closed (destroyed) at the end of the scenario, whatever happened. */
  track<T extends { close(): void } | { stop(): void } | Socket>(x: T): T;
  alive(): boolean;
}

interface Scenario {
  name: string;
  args: string[];
  fdLimit?: number;
  /** Runs the attack; resolves with its headline. */
  run(h: Harness): Promise<string>;
}

const live = new Set<Gossipd>();

async function runScenario(s: Scenario, gossipd: string, rssCap: number): Promise<Outcome> {
  const logs: { at: number; line: LogLine }[] = [];
  const d = await Gossipd.start({
    args: s.args,
    bin: gossipd,
    timeoutMs: 20_000,
    nofile: s.fdLimit,
    onLog: (line) => logs.push({ at: performance.now(), line }),
  });
  live.add(d);
  let capped: string | undefined;
  const sampler = new ProcSampler(d.child.pid as number, 20, (sample) => {
    if (sample.rss > rssCap && capped === undefined) {
      capped = `killed by this script at RSS ${mib(sample.rss)} MiB (over --rss-cap-mib ${mib(rssCap)})`;
      d.child.kill('SIGKILL');
    }
  });
  const alive = () => d.child.exitCode === null && d.child.signalCode === null;
  let baseAt = performance.now();
  // a gossipd gone before the first sample reads as zeros
  let base: ProcSample = sampler.last ?? { at: baseAt, rss: 0, fds: 0 };
  const closers: (() => void)[] = [];
  const figures: string[] = [];
  const h: Harness = {
    port: d.port,
    daemon: d,
    sampler,
    logs,
    figures,
    begin() {
      baseAt = performance.now();
      base = sampler.sample() ?? base;
    },
    track(x) {
      closers.push(() => {
        if ('destroy' in x) x.destroy();
        else if ('stop' in x) x.stop();
        else x.close();
      });
      return x;
    },
    alive,
  };
  let headline: string;
  let timer: NodeJS.Timeout | undefined;
  try {
    headline = await Promise.race([
      s.run(h),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`gave up after ${ATTACK_TIMEOUT_MS / 1000} s`)), ATTACK_TIMEOUT_MS);
      }),
    ]);
  } catch (e) {
    headline = `attack did not complete: ${(e as Error).message}`;
    figures.push(headline);
  } finally {
    clearTimeout(timer);
  }
  for (const close of closers) close();
  await sleep(1000);
  const after = alive() ? sampler.sample() : undefined;
  sampler.stop();
  const peak = sampler.peak(baseAt);
  const warnings = warningsSince(logs, baseAt);
  if (warnings) figures.push(`gossipd warned: ${warnings}`);
  const status = alive() ? 'alive' : (capped ?? exitStatus(d));
  live.delete(d);
  await d.cleanup();
  return {
    name: s.name,
    gossipd: status,
    rss: { base: base.rss, peak: peak.rss, after: after?.rss },
    fds: { base: base.fds, peak: peak.fds, after: after?.fds },
    figures,
    headline,
  };
}

/** "exited 1: InvalidIdError: id is empty…" from the exit code and the end of stderr. */
function exitStatus(d: Gossipd): string {
  const { exitCode, signalCode } = d.child;
  const how = exitCode !== null ? `exited ${exitCode}` : `killed by ${signalCode}`;
  const line = d.stderr
    .slice(-8192)
    .split('\n')
    .map((l) => l.trim())
    .find((l) => /^[\w.[\] ]*(Error|Exception)\b.*:/.test(l) || /^(FATAL|RangeError|TypeError)/.test(l));
  return line ? `${how}: ${line.slice(0, 100)}` : how;
}

/** gossipd's warnings and errors since `from`: distinct messages with their counts. */
function warningsSince(logs: { at: number; line: LogLine }[], from: number): string {
  const counts = new Map<string, number>();
  for (const { at, line } of logs) {
    if (at < from || (line.level ?? 0) < 40) continue;
    counts.set(line.msg, (counts.get(line.msg) ?? 0) + 1);
  }
  return [...counts]
    .slice(0, 3)
    .map(([msg, n]) => `"${msg.slice(0, 80)}"${n > 1 ? ` ×${n}` : ''}`)
    .join(', ');
}

/** Polls `done` every 20 ms until it holds or `ms` passed; resolves with whether it held. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

function describeFrame(f: Frame): string {
  switch (f.kind) {
    case FrameKind.Ack:
      return f.status === AckStatus.Error
        ? `error ack ${f.code}`
        : `ack ${f.status === AckStatus.Accepted ? 'accepted' : 'stale'}`;
    case FrameKind.FetchResult:
      return `fetch-result of ${f.entries.length} entries (${f.entries.filter((e) => e.found).length} found)`;
    case FrameKind.Error:
      return `E2 ${f.code}`;
    default:
      return `frame kind ${f.kind}`;
  }
}

/**
 * A lean native connection (no frame kept) that says `hello` and resolves at its
 * replay-done; rejects with what happened instead within `timeoutMs` [5 s].
 */
function dialLive(port: number, hello: HelloOptions, options: DialOptions = {}): Promise<RawClient> {
  return RawClient.dial(port, {
    hello,
    until: 'replay-done',
    keep: false,
    slabBytes: 256 * 1024,
    timeoutMs: 5000,
    ...options,
  });
}

/** Whether a new client gets a welcome and a pong within 2 s each. */
async function probe(port: number): Promise<string> {
  try {
    const conn = await dialLive(port, { since: null }, { timeoutMs: 2000 });
    try {
      conn.enc.ping(7);
      conn.flush();
      const pong = await conn.waitFor((f) => f.kind === FrameKind.Pong, 2000);
      return pong ? 'served' : `no pong: ${conn.describeEnd() ?? 'nothing within 2 s'}`;
    } finally {
      conn.close();
    }
  } catch (e) {
    return `not served: ${(e as Error).message}`;
  }
}

interface Published {
  accepted: number;
  stale: number;
  /** Error acks per code. */
  failed: Map<string, number>;
  firstFailure: string | undefined;
  unanswered: number;
}

/** Publishes `n` messages, pipelined, with reqIds from `reqBase`; waits for their acks up to `timeoutMs`. */
async function publishAll(
  conn: RawClient,
  n: number,
  idOf: (i: number) => string,
  data: Uint8Array,
  timeoutMs: number,
  reqBase = 1,
): Promise<Published> {
  const out: Published = { accepted: 0, stale: 0, failed: new Map(), firstFailure: undefined, unanswered: n };
  let acks = 0;
  conn.onFrame = (f) => {
    if (f.kind !== FrameKind.Ack || f.reqId < reqBase || f.reqId >= reqBase + n) return;
    acks++;
    if (f.status === AckStatus.Accepted) out.accepted++;
    else if (f.status === AckStatus.Stale) out.stale++;
    else {
      const code = f.code ?? 'GOSSIP_ERR_UNKNOWN';
      out.failed.set(code, (out.failed.get(code) ?? 0) + 1);
      out.firstFailure ??= `${code}: ${f.message}`;
    }
  };
  const ts0 = now();
  for (let i = 0; i < n; i++) {
    conn.enc.publish(reqBase + i, idOf(i), ts0 + BigInt(i), data);
    if (conn.enc.pendingBytes >= 256 * 1024) conn.flush();
  }
  conn.flush();
  await conn.waitFor(() => acks >= n, timeoutMs);
  out.unanswered = n - acks;
  return out;
}

function describePublished(p: Published, n: number): string {
  const failed = [...p.failed].map(([code, k]) => `${code} ×${k}`).join(', ');
  let s = `${n} publish${n === 1 ? '' : 'es'}: ${p.accepted} accepted`;
  if (p.stale) s += `, ${p.stale} stale`;
  if (failed) s += `, failed ${failed} (first: "${(p.firstFailure ?? '').slice(0, 120)}")`;
  if (p.unanswered) s += `, ${p.unanswered} unanswered`;
  return s;
}

// ---------------------------------------------------------------------------------------
// 1. fetch-bad-id: a fetch naming an empty id, or a 257-byte id (docs/PROTOCOL.md, Q1).

function fetchBadId(label: string, id: string): Scenario {
  return {
    name: `fetch-bad-id/${label}`,
    args: [],
    async run(h) {
      const conn = await dialLive(h.port, { since: null }, { unchecked: true });
      h.track(conn);
      h.begin();
      conn.enc.fetch(1, [id]);
      conn.flush();
      const f = await conn.waitFor(
        (f) =>
          ((f.kind === FrameKind.Ack || f.kind === FrameKind.FetchResult) && f.reqId === 1) ||
          f.kind === FrameKind.Error,
        3000,
      );
      const got = f ? describeFrame(f) : (conn.describeEnd() ?? 'nothing within 3 s');
      await sleep(500);
      const after = !f
        ? ''
        : conn.ended
          ? `, then the connection closed (${conn.ended.how})`
          : ', connection still open';
      const served = h.alive() ? await probe(h.port) : 'gossipd gone';
      h.figures.push(`fetch of a ${Buffer.byteLength(id)}-byte id: the client got ${got}${after}`);
      h.figures.push(`a new client afterwards: ${served}`);
      return `client got ${got}; new client: ${served}`;
    },
  };
}

// ---------------------------------------------------------------------------------------
// 2. fetch-amplify: fetches whose answers are far larger than the request, from a client
// that does not read, while a well-behaved client pings.

interface AmplifyPlan {
  label: string;
  fetches: number;
  /** Publishes before the attack: how many ids and how large their data. */
  ids: number;
  dataBytes: number;
}

function fetchAmplify(plan: AmplifyPlan): Scenario {
  return {
    name: `fetch-amplify/${plan.label}`,
    args: ['--max-outbound', MAX_OUTBOUND],
    async run(h) {
      const pub = await dialLive(h.port, { since: null, echo: false });
      h.track(pub);
      const idOf = (i: number) => (plan.ids === 1 ? 'big' : `s/${i}`);
      const published = await publishAll(pub, plan.ids, idOf, Buffer.alloc(plan.dataBytes, 0x61), 20_000);
      if (published.accepted !== plan.ids) throw new Error(`setup: ${describePublished(published, plan.ids)}`);
      const ids = Array.from({ length: 10_000 }, (_, i) => idOf(i % plan.ids));
      const pinger = h.track(await Pinger.start(h.port));
      const attacker = await dialLive(h.port, { since: null });
      h.track(attacker);
      attacker.socket.pause();
      await sleep(200);
      h.begin();
      const t0 = performance.now();
      for (let r = 1; r <= plan.fetches; r++) {
        attacker.enc.fetch(r, ids);
        if (attacker.enc.pendingBytes >= 1024 * 1024) attacker.flush();
      }
      attacker.flush();
      const slowAt = () =>
        h.logs.find(({ at, line }) => at >= t0 && /slow consumer/i.test(line.msg))?.at ?? Number.POSITIVE_INFINITY;
      await until(() => !h.alive() || performance.now() > slowAt() + 1000, 15_000);
      const end = performance.now();
      const ping = pinger.stats(t0, end);
      const dropLog = Number.isFinite(slowAt())
        ? `gossipd logged a slow consumer ${((slowAt() - t0) / 1000).toFixed(2)} s after the fetches`
        : `no slow-consumer log within ${((end - t0) / 1000).toFixed(1)} s`;

      // Now read what the server left for the attacker, skimming, for up to 5 s.
      let bytes = 0;
      let results = 0;
      attacker.skim((f) => {
        bytes += 4 + f.length;
        if (f.kind === FrameKind.FetchResult && ((f.head[4] ?? 0) & 1) === 0) results++;
      });
      attacker.socket.resume();
      await attacker.waitEnd(5000);
      const read = `${mib(bytes)} MiB read, ${results}/${plan.fetches} fetches complete`;
      const attackerEnd = attacker.ended
        ? `${attacker.describeEnd()} after ${read}`
        : `still open after 5 s of reading (${read})`;
      h.figures.push(
        `${plan.fetches === 1 ? 'one fetch' : `${plan.fetches} pipelined fetches`} × 10,000 ids of ${plan.ids === 1 ? 'one id' : `${plan.ids} ids`} of ${plan.dataBytes} B, --max-outbound ${MAX_OUTBOUND}`,
      );
      h.figures.push(`pinger during ${((end - t0) / 1000).toFixed(1)} s: ${describePings(ping)}`);
      h.figures.push(dropLog);
      h.figures.push(`attacker, resumed: ${attackerEnd}`);
      return `ping max ${ping.max.toFixed(0)} ms, p99 ${ping.p99.toFixed(0)} ms; attacker: ${attacker.describeEnd() ?? 'still open'}`;
    },
  };
}

// ---------------------------------------------------------------------------------------
// 3. prehello-pin: connections that declare a 10 MiB hello and never send it.

const PREHELLO_CONNS = 40;
/** A length of 10 MiB (00 a0 00 00), then kind hello, the magic and version 1: the start of a hello that never ends. */
const PREHELLO_BYTES = Buffer.from('00a0000001894753500100', 'hex');

const prehelloPin: Scenario = {
  name: 'prehello-pin',
  args: [],
  async run(h) {
    h.begin();
    const base = h.sampler.last?.rss ?? 0;
    const conns: RawClient[] = [];
    const t0 = performance.now();
    for (let i = 0; i < PREHELLO_CONNS; i++) {
      const c = h.track(await RawClient.dial(h.port, { keep: false, timeoutMs: 5000 }));
      c.socket.write(PREHELLO_BYTES);
      conns.push(c);
    }
    await sleep(300);
    const inRss = (h.sampler.sample()?.rss ?? base) - base;
    // --hello-timeout is 5 s by default: wait 3 s past it
    await Promise.all(conns.map((c) => c.waitEnd(Math.max(0, 8000 - (performance.now() - t0)))));
    const closed = conns.filter((c) => c.ended);
    const after = closed.map((c) => ((c.ended?.at ?? 0) - c.openedAt) / 1000).sort((a, b) => a - b);
    const how = new Map<string, number>();
    for (const c of closed) how.set(c.describeEnd() ?? '', (how.get(c.describeEnd() ?? '') ?? 0) + 1);
    const closes =
      closed.length === 0
        ? `none of ${PREHELLO_CONNS} closed within 8 s`
        : `${closed.length}/${PREHELLO_CONNS} closed by gossipd, ${after[0]?.toFixed(2)}–${after[after.length - 1]?.toFixed(2)} s after connecting (${[...how].map(([k, n]) => `${k} ×${n}`).join(', ')})`;
    h.figures.push(`${PREHELLO_CONNS} connections each sent ${PREHELLO_BYTES.length} bytes declaring a 10 MiB hello`);
    h.figures.push(`RSS over baseline with all ${PREHELLO_CONNS} in: ${mib(inRss)} MiB`);
    h.figures.push(closes);
    return `RSS +${mib(inRss)} MiB with ${PREHELLO_CONNS} in; ${closed.length}/${PREHELLO_CONNS} closed${closed.length ? ` at ${after[0]?.toFixed(1)}–${after[after.length - 1]?.toFixed(1)} s` : ''}`;
  },
};

// ---------------------------------------------------------------------------------------
// 4. legacy-z-burst: 40 `z` payloads of 10 MiB of zeros each, in one write (L4).

const legacyZ: Scenario = {
  name: 'legacy-z-burst',
  args: [],
  async run(h) {
    h.begin();
    const r = await legacyZBurst(h.port, { messages: 40, timeoutMs: 20_000 });
    const honest = r.dropped
      ? `honest subscriber dropped (${r.dropped}) after ${r.received}/${r.messages} messages`
      : `honest subscriber received ${r.received}/${r.messages}`;
    h.figures.push(
      `${r.messages} M frames of ${((r.burstBytes / r.messages) | 0).toLocaleString('en')} B (z + zlib of 10 MiB of zeros) in one write of ${r.burstBytes.toLocaleString('en')} B`,
    );
    h.figures.push(`pinger: ${describePings(r.ping)}`);
    h.figures.push(`${honest}, ${(r.ms / 1000).toFixed(2)} s after the write`);
    h.figures.push(`legacy connection: ${r.legacyEnd ?? 'open at the end'}`);
    return `ping max ${r.ping.max.toFixed(0)} ms, stall ${r.ping.stall.toFixed(0)} ms; honest: ${r.dropped ? `dropped (${r.dropped}) at ${r.received}/${r.messages}` : `${r.received}/${r.messages}`}`;
  },
};

// ---------------------------------------------------------------------------------------
// 5. tls-silent: TCP connections to a TLS listener that never start the handshake.

const TLS_CONNS = 400;

const tlsSilent: Scenario = {
  name: 'tls-silent',
  args: ['--tls-cert', `${FIXTURES}tls-cert.pem`, '--tls-key', `${FIXTURES}tls-key.pem`, '--hello-timeout', '2s'],
  async run(h) {
    h.begin();
    const socks: { openedAt: number; closedAt: number | undefined }[] = [];
    for (let i = 0; i < TLS_CONNS; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, TLS_CONNS - i) }, async () => {
          const s = h.track(connect(h.port, '127.0.0.1'));
          s.on('data', () => undefined); // flowing, so that the server's close is seen
          s.on('error', () => undefined); // the close says it
          await new Promise<void>((resolve, reject) => {
            s.once('connect', resolve);
            s.once('error', reject);
          });
          const entry = { openedAt: performance.now(), closedAt: undefined as number | undefined };
          socks.push(entry);
          s.once('close', () => {
            entry.closedAt = performance.now();
          });
        }),
      );
    }
    const t0 = performance.now();
    const marks: string[] = [];
    for (const at of [2500, 5000, 10_000]) {
      await sleep(Math.max(0, t0 + at - performance.now()));
      const open = socks.filter((e) => e.closedAt === undefined).length;
      const fds = h.sampler.sample()?.fds;
      marks.push(`${open}/${TLS_CONNS} open at ${at / 1000} s (gossipd fds ${fds ?? 'gone'})`);
    }
    const lives = socks
      .filter((e) => e.closedAt !== undefined)
      .map((e) => ((e.closedAt as number) - e.openedAt) / 1000)
      .sort((a, b) => a - b);
    h.figures.push(`${TLS_CONNS} TCP connections, no ClientHello, --hello-timeout 2s; from when all were open:`);
    h.figures.push(marks.join(', '));
    if (lives.length > 0)
      h.figures.push(
        `${lives.length} closed by gossipd, ${lives[0]?.toFixed(2)}–${lives[lives.length - 1]?.toFixed(2)} s after connecting`,
      );
    return marks.map((m) => m.replace(/ \(.*\)/, '')).join('; ');
  },
};

// ---------------------------------------------------------------------------------------
// 6. conn-flood: connections until gossipd's descriptors run out, then publishes that
// must open new segment files.

const FLOOD_FD_LIMIT = 256;
const FLOOD_MAX = 1000;
const FLOOD_PUBLISHES = 1000;

const connFlood: Scenario = {
  name: 'conn-flood',
  args: ['--segment-size', '64KiB'],
  fdLimit: FLOOD_FD_LIMIT,
  async run(h) {
    const pub = await dialLive(h.port, { since: null, echo: false });
    h.track(pub);
    h.begin();
    const flood: RawClient[] = [];
    let stop = `reached ${FLOOD_MAX}`;
    while (flood.length < FLOOD_MAX) {
      try {
        flood.push(h.track(await dialLive(h.port, { since: null }, { timeoutMs: 3000 })));
      } catch (e) {
        stop = (e as Error).message;
        break;
      }
    }
    const fds = h.sampler.sample()?.fds;
    const data = Buffer.alloc(1024, 0x62);
    const p = await publishAll(pub, FLOOD_PUBLISHES, (i) => `flood/${i}`, data, 15_000);
    let files = 'gone';
    try {
      files = String(readdirSync(h.daemon.dataDir).length);
    } catch {}
    h.figures.push(
      `ulimit -n ${FLOOD_FD_LIMIT}, --segment-size 64KiB: ${flood.length} connections welcomed, then: ${stop}; gossipd fds ${fds ?? 'gone'}`,
    );
    h.figures.push(
      `the first client then: ${describePublished(p, FLOOD_PUBLISHES)}; files in the data folder: ${files}`,
    );
    // does it recover once the flood is gone?
    for (const c of flood) c.close();
    await sleep(1000);
    const later = pub.ended
      ? undefined
      : await publishAll(pub, 1, () => 'flood/after', data, 5000, FLOOD_PUBLISHES + 1);
    h.figures.push(
      `publisher connection: ${pub.describeEnd() ?? 'open'}; a second after the flood closed: ${later ? describePublished(later, 1) : 'no publisher left'}`,
    );
    const failed = [...p.failed].map(([code, n]) => `${code} ×${n}`).join(', ');
    return `${flood.length} welcomed, then "${stop.slice(0, 60)}"; publishes failed: ${failed || 'none'}${p.unanswered ? `, ${p.unanswered} unanswered` : ''}`;
  },
};

// ---------------------------------------------------------------------------------------

const ATTACKS: Record<string, Scenario[]> = {
  'fetch-bad-id': [fetchBadId('empty', ''), fetchBadId('257B', 'x'.repeat(257))],
  'fetch-amplify': [
    fetchAmplify({ label: '1x10k-1MiB', fetches: 1, ids: 1, dataBytes: MiB }),
    fetchAmplify({ label: '200x10k-small', fetches: 200, ids: 10_000, dataBytes: 100 }),
    fetchAmplify({ label: '200x10k-1MiB', fetches: 200, ids: 1, dataBytes: MiB }),
  ],
  'prehello-pin': [prehelloPin],
  'legacy-z-burst': [legacyZ],
  'tls-silent': [tlsSilent],
  'conn-flood': [connFlood],
};

function cleanupAndExit(code: number): never {
  for (const d of live) {
    d.child.kill('SIGKILL');
    rmSync(d.dataDir, { recursive: true, force: true });
  }
  process.exit(code);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gossipd: { type: 'string' },
      only: { type: 'string' },
      'rss-cap-mib': { type: 'string', default: '4096' },
    },
  });
  const gossipd = values.gossipd ? resolve(values.gossipd) : GOSSIPD;
  if (!existsSync(gossipd)) throw new Error(`no gossipd at ${gossipd}: build it, or pass --gossipd <main.cjs>`);
  const rssCap = Number(values['rss-cap-mib']) * MiB;
  if (!(rssCap > 0)) throw new Error(`--rss-cap-mib must be a positive number, got ${values['rss-cap-mib']}`);
  const all = Object.values(ATTACKS).flat();
  const only = values.only?.split(',').map((s) => s.trim());
  for (const name of only ?? []) {
    if (!ATTACKS[name] && !all.some((s) => s.name === name))
      throw new Error(
        `unknown attack ${name}; known: ${[...new Set([...Object.keys(ATTACKS), ...all.map((s) => s.name)])].join(', ')}`,
      );
  }
  const chosen = all.filter((s) => !only || only.some((n) => s.name === n || s.name.startsWith(`${n}/`)));
  process.on('SIGINT', () => cleanupAndExit(130));
  process.on('SIGTERM', () => cleanupAndExit(143));
  console.log(`gossip attacks: ${gossipd}`);
  console.log(
    `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown cpu'}, RSS cap ${mib(rssCap)} MiB\n`,
  );
  const outcomes: Outcome[] = [];
  for (const s of chosen) {
    const t0 = performance.now();
    let o: Outcome;
    try {
      o = await runScenario(s, gossipd, rssCap);
    } catch (e) {
      // gossipd did not start: nothing was measured
      console.log(`${s.name}: not run: ${(e as Error).message}\n`);
      continue;
    }
    outcomes.push(o);
    const after = (v: number | undefined, f: (n: number) => string) => (v === undefined ? '—' : f(v));
    console.log(
      `${o.name} (${((performance.now() - t0) / 1000).toFixed(1)} s): gossipd ${o.gossipd}; RSS ${mib(o.rss.base)} → peak ${mib(o.rss.peak)} (+${mib(o.rss.peak - o.rss.base)}) → after ${after(o.rss.after, mib)} MiB; fds ${o.fds.base} → peak ${o.fds.peak} → after ${after(o.fds.after, String)}`,
    );
    for (const f of o.figures) console.log(`  ${f}`);
    console.log('');
  }
  const rows = outcomes.map((o) => [
    o.name,
    o.gossipd.length > 60 ? `${o.gossipd.slice(0, 57)}...` : o.gossipd,
    mib(o.rss.base),
    mib(o.rss.peak),
    `+${mib(o.rss.peak - o.rss.base)}`,
    o.rss.after === undefined ? '—' : mib(o.rss.after),
    `${o.fds.base}/${o.fds.peak}/${o.fds.after ?? '—'}`,
    o.headline,
  ]);
  const header = ['attack', 'gossipd', 'RSS base MiB', 'peak', 'peak−base', 'after', 'fds base/peak/after', 'figures'];
  for (const line of markdownTable(header, rows)) console.log(line);
}

main().then(
  () => cleanupAndExit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    cleanupAndExit(1);
  },
);
