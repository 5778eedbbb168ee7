/**
 * `pnpm bench:peers`: the same workloads, in one run, against gossipd and against
 * mosquitto, nats-server (JetStream KV) and redis-server, each started here on a free
 * loopback port with a temporary data folder and stopped afterwards.
 *
 *   W1 durable publish: one pipelined publisher, acked by the server.
 *   W2 fan-out: 1 publisher → N subscribers, delivered/s; and publish→receive latency at a fixed rate.
 *   W3 catch-up: after W1, a new client gets the newest value of every id.
 *   W4 restart: after W1, stop, restart on the same data, time from spawn until a client has every id again.
 *
 * Environment (defaults in brackets; GOSSIP_BENCH_SCALE [1] scales the sizes marked *):
 *   GOSSIP_PEERS                   systems to run [gossipd,mosquitto,nats,redis]
 *   GOSSIP_PEERS_IDS*              distinct ids [20000]
 *   GOSSIP_PEERS_MESSAGES*         W1 messages [200000]
 *   GOSSIP_PEERS_WINDOW            every peer publisher's unacknowledged publishes [each its own]
 *   GOSSIP_PEERS_SUBSCRIBERS       W2 subscribers [10]
 *   GOSSIP_PEERS_FANOUT_MESSAGES*  W2 messages for the delivered rate [100000]
 *   GOSSIP_PEERS_RATE              W2 latency: messages/s [10000]
 *   GOSSIP_PEERS_LATENCY_SECONDS*  W2 latency: duration [3]
 *   GOSSIP_PEERS_WARMUP_SECONDS    W2 latency: unmeasured lead-in at the same rate [1]
 *   GOSSIP_PEERS_REPEATS           runs per system, interleaved; each figure is the best [3]
 *   GOSSIP_PEERS_TIMEOUT_S         one workload on one system gives up after [120]
 *   GOSSIP_PEERS_MOSQUITTO, _NATS, _REDIS   server binaries (default: found on PATH or in /usr/sbin)
 *   GOSSIP_PEERS_RESULTS=1         also write the output into the "Peers" section of bench/RESULTS.md
 * A missing peer binary is reported with how to install it, and the run goes on without it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { fmt } from './measure.js';
import {
  ageMs,
  type Config,
  cleanupAll,
  config,
  deferred,
  PAYLOAD_BYTES,
  pacedPublish,
  percentile,
  removeDir,
  retry,
  type Server,
  type Subscription,
  type System,
  sleep,
  tempDir,
  windowedPublish,
  withTimeout,
} from './peers/common.js';
import { gossipd } from './peers/gossipd.js';
import { mosquitto } from './peers/mosquitto.js';
import { nats } from './peers/nats.js';
import { redis } from './peers/redis.js';

type Figure = 'w1' | 'w2rate' | 'w2p50' | 'w2p99' | 'w3' | 'w4';
type Outcome = number | Error;
type Results = Partial<Record<Figure, Outcome>>;

const DATA = Buffer.alloc(PAYLOAD_BYTES, 0x61);

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The benchmark process's own CPU during the last fan-out run, per system: near 100 % means the clients bound it. */
const fanoutCpu = new Map<string, number>();

function clientCpu(sys: System, since: NodeJS.CpuUsage, wallMs: number): void {
  const u = process.cpuUsage(since);
  fanoutCpu.set(sys.name, ((u.user + u.system) / 1000 / wallMs) * 100);
}

/** Runs one figure; a failure is recorded and reported, and the other figures go on. */
async function figure(
  cfg: Config,
  sys: System,
  out: Results,
  key: Figure,
  fn: () => Promise<number>,
  show: (v: number) => string,
): Promise<boolean> {
  try {
    const v = await withTimeout(fn(), cfg.timeoutMs, `${sys.name} ${key}`);
    out[key] = v;
    log(`  ${sys.name} ${key}: ${show(v)}`);
    return true;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    out[key] = err;
    log(`  ${sys.name} ${key}: FAILED ${err.message}`);
    return false;
  }
}

/** W1 with a fresh server, then W3 on it, then W4: stop and restart on the same data folder. */
async function durableChain(cfg: Config, sys: System, ids: string[], out: Results, w1Only: boolean): Promise<void> {
  const dir = await tempDir(sys.name.replace(/\W+/g, ''));
  let server: Server | undefined;
  try {
    server = await sys.start(dir);
    const port = server.port;
    const ok = await figure(
      cfg,
      sys,
      out,
      'w1',
      async () => {
        if (sys.pipelined) return sys.pipelined(port, cfg.messages, ids);
        const pub = await sys.publisher(port);
        try {
          return await windowedPublish(pub, cfg.messages, ids, cfg.window ?? sys.window, DATA);
        } finally {
          await pub.close();
        }
      },
      (v) => `${fmt(v)} msgs/s`,
    );
    if (!ok || w1Only) return;
    await figure(
      cfg,
      sys,
      out,
      'w3',
      async () => {
        const t0 = performance.now();
        const n = await sys.catchUp(port, ids.length);
        const ms = performance.now() - t0;
        if (n !== ids.length) throw new Error(`catch-up got ${n} ids, expected ${ids.length}`);
        return ms;
      },
      (v) => `${fmt(v)} ms`,
    );
    await server.stop();
    server = undefined;
    await figure(
      cfg,
      sys,
      out,
      'w4',
      async () => {
        const t0 = performance.now();
        server = await sys.start(dir);
        const port2 = server.port;
        const n = await retry(() => sys.catchUp(port2, ids.length), cfg.timeoutMs);
        const ms = performance.now() - t0;
        if (n !== ids.length) throw new Error(`after restart a client got ${n} ids, expected ${ids.length}`);
        return ms;
      },
      (v) => `${fmt(v)} ms`,
    );
  } catch (e) {
    log(`  ${sys.name}: FAILED ${(e as Error).message}`);
    out.w1 ??= e as Error;
  } finally {
    await server?.stop();
    await removeDir(dir);
  }
}

/** Starts a fresh server with `subscribers` live subscribers, runs `fn`, stops everything. */
async function withSubscribers(
  cfg: Config,
  sys: System,
  onData: (d: Uint8Array) => void,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const dir = await tempDir(sys.name.replace(/\W+/g, ''));
  let server: Server | undefined;
  const subs: Subscription[] = [];
  try {
    server = await sys.start(dir);
    for (let i = 0; i < cfg.subscribers; i++) subs.push(await sys.subscribe(server.port, onData));
    await fn(server.port);
  } finally {
    await Promise.allSettled(subs.map((s) => s.close()));
    await server?.stop();
    await removeDir(dir);
  }
}

async function fanout(cfg: Config, sys: System, ids: string[], out: Results): Promise<void> {
  await figure(
    cfg,
    sys,
    out,
    'w2rate',
    async () => {
      let rate = 0;
      let received = 0;
      const want = cfg.subscribers * cfg.fanoutMessages;
      const all = deferred();
      await withSubscribers(
        cfg,
        sys,
        () => {
          if (++received === want) all.resolve();
        },
        async (port) => {
          const t0 = performance.now();
          const cpu0 = process.cpuUsage();
          if (sys.pipelined) await sys.pipelined(port, cfg.fanoutMessages, ids);
          else {
            const pub = await sys.publisher(port);
            try {
              await windowedPublish(pub, cfg.fanoutMessages, ids, cfg.window ?? sys.window, DATA);
            } finally {
              await pub.close();
            }
          }
          await all.promise;
          const wall = performance.now() - t0;
          rate = (want / wall) * 1000;
          clientCpu(sys, cpu0, wall);
        },
      );
      return rate;
    },
    (v) => `${fmt(v)} delivered/s`,
  );
}

async function latency(cfg: Config, sys: System, ids: string[], out: Results): Promise<void> {
  let samples: number[] = [];
  const total = Math.round(cfg.rate * cfg.latencySeconds);
  const warm = Math.round(cfg.rate * cfg.warmupSeconds);
  const ok = await figure(
    cfg,
    sys,
    out,
    'w2p50',
    async () => {
      await withSubscribers(
        cfg,
        sys,
        (d) => samples.push(ageMs(d)),
        async (port) => {
          const pub = await sys.publisher(port);
          try {
            // the same rate for a while first, not measured: a server just started (and the
            // clients) would otherwise be timed while the JIT warms up
            if (warm > 0) {
              await pacedPublish(pub, cfg.rate, warm, ids);
              while (samples.length < warm * cfg.subscribers) await sleep(10);
              samples = [];
            }
            await pacedPublish(pub, cfg.rate, total, ids);
            while (samples.length < total * cfg.subscribers) await sleep(10);
          } finally {
            await pub.close();
          }
        },
      );
      samples.sort((a, b) => a - b);
      return percentile(samples, 0.5);
    },
    (v) => `${v.toFixed(2)} ms`,
  );
  if (ok) {
    out.w2p99 = percentile(samples, 0.99);
    log(`  ${sys.name} w2p99: ${out.w2p99.toFixed(2)} ms`);
  } else out.w2p99 = out.w2p50 as Error;
}

const HIGHER_IS_BETTER: Record<Figure, boolean> = {
  w1: true,
  w2rate: true,
  w2p50: false,
  w2p99: false,
  w3: false,
  w4: false,
};

/** Keeps the best of each figure; an error stays only while no run succeeded. */
function merge(best: Results, run: Results): void {
  for (const [key, v] of Object.entries(run) as [Figure, Outcome][]) {
    const b = best[key];
    if (b === undefined || b instanceof Error) best[key] = v;
    else if (typeof v === 'number' && (HIGHER_IS_BETTER[key] ? v > b : v < b)) best[key] = v;
  }
}

// ---------------------------------------------------------------- the table

interface RowDef {
  label: string;
  unit: string;
  key: Figure;
  /** Higher is better (rates) or lower is better (times). */
  higher: boolean;
  /** Which gossipd run stands in the gossipd column. */
  gossipd: string;
}

function cell(v: Outcome | undefined): string {
  if (v === undefined) return '–';
  if (v instanceof Error) return /no result after/.test(v.message) ? 'timeout' : 'failed';
  return v < 10 ? v.toFixed(2) : fmt(v);
}

function ratio(g: Outcome | undefined, p: Outcome | undefined, higher: boolean): string {
  if (typeof g !== 'number' || typeof p !== 'number' || g <= 0 || p <= 0) return '–';
  return `${(higher ? g / p : p / g).toFixed(2)}×`;
}

function table(rows: RowDef[], results: Map<string, Results>, peers: string[]): string[] {
  const header = ['workload', 'unit', 'gossipd', ...peers, ...peers.map((p) => `gossipd vs ${p}`)];
  const cells = rows.map((r) => {
    const g = results.get(r.gossipd)?.[r.key];
    return [
      r.label,
      r.unit,
      cell(g),
      ...peers.map((p) => cell(results.get(p)?.[r.key])),
      ...peers.map((p) => ratio(g, results.get(p)?.[r.key], r.higher)),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)];
}

/** The systems whose best fan-out rate is below the latency run's offered deliveries: their latency is a queue's. */
function overloaded(results: Map<string, Results>, cfg: Config): string[] {
  const offered = cfg.rate * cfg.subscribers;
  const over = [...results]
    .filter(([, r]) => typeof r.w2rate === 'number' && r.w2rate < offered)
    .map(([name, r]) => `${name} (${fmt(r.w2rate as number)} delivered/s)`);
  if (over.length === 0) return [];
  return [
    '',
    `The latency run offers ${fmt(offered)} deliveries/s, more than the fan-out row measured for ${over.join(', ')}:`,
    'there the latency figures measure a queue that grows for the whole run, not the path of one message.',
  ];
}

async function writeResults(section: string): Promise<void> {
  const path = fileURLToPath(new URL('../RESULTS.md', import.meta.url));
  // read right before writing: another suite may have written its section meanwhile
  const old = await readFile(path, 'utf8').catch(() => '# gossip benchmark results\n');
  const start = old.search(/^## Peers\b/m);
  let next: string;
  if (start < 0) next = `${old.trimEnd()}\n\n${section}\n`;
  else {
    const rest = old.slice(start + 1);
    const end = rest.search(/^## /m);
    next = `${old.slice(0, start)}${section}\n${end < 0 ? '' : `\n${rest.slice(end)}`}`;
  }
  await writeFile(path, next);
  log(`wrote the Peers section of ${path}`);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const cfg = config();
  const ids = Array.from({ length: cfg.ids }, (_, i) => `id-${i}`);
  const wanted = new Set(
    (process.env.GOSSIP_PEERS ?? 'gossipd,mosquitto,nats,redis').split(',').map((s) => s.trim().toLowerCase()),
  );
  const all = [gossipd('interval'), gossipd('always'), mosquitto(), nats(), redis()];
  const systems = all.filter((s) => wanted.has(s.name.split(' ')[0] as string));
  const peers = all.slice(2).map((s) => s.name);
  const results = new Map<string, Results>();
  const notes: string[] = [];

  const runnable = systems.filter((sys) => {
    const why = sys.missing();
    if (why) {
      log(why);
      notes.push(`${sys.name}: not run (${why})`);
    }
    return !why;
  });
  for (const sys of runnable) results.set(sys.name, {});
  const t0 = performance.now();
  // interleaved, so that a busy spell on the machine does not fall on one system's runs only
  for (let r = 1; r <= cfg.repeats; r++) {
    for (const sys of runnable) {
      log(`${sys.name} (run ${r} of ${cfg.repeats}): ${sys.versions()}`);
      const out: Results = {};
      const w1Only = sys.name === 'gossipd (always)';
      await durableChain(cfg, sys, ids, out, w1Only);
      if (!w1Only) {
        await fanout(cfg, sys, ids, out);
        await latency(cfg, sys, ids, out);
      }
      merge(results.get(sys.name) as Results, out);
    }
  }
  const elapsed = (performance.now() - t0) / 1000;

  const k = fmt;
  const rows: RowDef[] = [
    {
      label: `W1 durable publish, ${k(cfg.messages)} × ${PAYLOAD_BYTES} B over ${k(cfg.ids)} ids, pipelined`,
      unit: 'msgs/s',
      key: 'w1',
      higher: true,
      gossipd: 'gossipd',
    },
    {
      label: 'W1 the same, gossipd under --fsync always',
      unit: 'msgs/s',
      key: 'w1',
      higher: true,
      gossipd: 'gossipd (always)',
    },
    {
      label: `W2 fan-out 1 → ${cfg.subscribers} subscribers, ${k(cfg.fanoutMessages)} msgs`,
      unit: 'delivered/s',
      key: 'w2rate',
      higher: true,
      gossipd: 'gossipd',
    },
    {
      label: `W2 publish→receive p50, ${cfg.subscribers} subs at ${k(cfg.rate)} msg/s`,
      unit: 'ms',
      key: 'w2p50',
      higher: false,
      gossipd: 'gossipd',
    },
    {
      label: `W2 publish→receive p99, ${cfg.subscribers} subs at ${k(cfg.rate)} msg/s`,
      unit: 'ms',
      key: 'w2p99',
      higher: false,
      gossipd: 'gossipd',
    },
    {
      label: `W3 catch-up: a new client gets all ${k(cfg.ids)} ids`,
      unit: 'ms',
      key: 'w3',
      higher: false,
      gossipd: 'gossipd',
    },
    {
      label: `W4 restart: spawn → a client has all ${k(cfg.ids)} ids`,
      unit: 'ms',
      key: 'w4',
      higher: false,
      gossipd: 'gossipd',
    },
  ];

  const errors: string[] = [];
  for (const [name, r] of results)
    for (const [key, v] of Object.entries(r)) if (v instanceof Error) errors.push(`${name} ${key}: ${v.message}`);

  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  const md = [
    '## Peers',
    '',
    'Written by `pnpm bench:peers` (bench/src/peers.ts). Each server is started by the benchmark on 127.0.0.1',
    '(a free port) with a temporary data folder, and stopped afterwards; all clients run in the benchmark process.',
    '',
    `Machine: ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; run took ${elapsed.toFixed(0)} s (GOSSIP_BENCH_SCALE=${cfg.scale}).`,
    '',
    'Versions:',
    '',
    ...systems.filter((s) => !s.missing() && s.name !== 'gossipd (always)').map((s) => `- ${s.versions()}`),
    '',
    'Durability, compared like for like: gossipd under `--fsync interval` (its default) beside each peer under its',
    'default durable settings (none of them fsyncs before acking), and gossipd under `--fsync always` as its own row.',
    '',
    ...systems.map((s) => `- ${s.name}: ${s.describe}`),
    '',
    `Each figure is the best of ${cfg.repeats} runs (the systems take turns).`,
    `W1 and W2's publishers keep at most this many publishes unacknowledged: ${systems
      .filter((s) => s.name !== 'gossipd (always)')
      .map((s) => `${s.name} ${k(s.name.startsWith('gossipd') ? 20_000 : (cfg.window ?? s.window))}`)
      .join(', ')}`,
    `(gossipd: the server suite's pipelinedPublish; ${cfg.window ? 'GOSSIP_PEERS_WINDOW for the peers' : "each peer's best of 256, 2 k and 20 k in a trial"});`,
    "redis's publisher sends pipelines of up to 1000 messages. W2 latency: paced by a 1 ms timer, each payload carries process.hrtime.bigint() at send;",
    `${k(cfg.rate)} msg/s for ${cfg.latencySeconds} s, after ${cfg.warmupSeconds} s at that rate that is not measured. W3 runs on the server W1 filled (${k(cfg.messages)} messages over ${k(cfg.ids)} ids);`,
    'W4 stops it (SIGTERM) and restarts it on the same folder, timed from spawn to the client having every id.',
    '',
    'Ratio convention: `gossipd vs X` is gossipd/X for rates and X/gossipd for times and latencies, so >1× means gossipd is better.',
    '',
    ...table(rows, results, peers),
    '',
    'The benchmark process (publisher and subscribers, one thread) used this share of a core during the last W2 fan-out',
    '(near 100 % means that figure is bound by the clients in the benchmark process rather than by the server):',
    `${[...fanoutCpu].map(([name, share]) => `${name} ${share.toFixed(0)} %`).join(', ')}.`,
    ...overloaded(results, cfg),
    ...(notes.length + errors.length > 0 ? ['', ...notes.map((n) => `- ${n}`), ...errors.map((e) => `- ${e}`)] : []),
  ];
  const section = md.join('\n');
  console.log(`\n${section}\n`);
  if (process.env.GOSSIP_PEERS_RESULTS === '1') await writeResults(section);
}

try {
  await main();
} finally {
  await cleanupAll();
}
