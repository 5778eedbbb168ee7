/**
 * What the peer benchmark shares: sizes from the environment, child processes that are
 * always stopped, temporary folders that are always removed, free ports, and the shape of
 * a system's adapter. The drivers that run one workload over every adapter (windowed
 * publish, paced publish) are in ../publish.ts, shared with the server suite.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { sleep } from '../measure.js';
import { abortable, type Publisher } from '../publish.js';

export const HOST = '127.0.0.1';
export const INSTALL_HINT = 'apt-get update && apt-get install -y mosquitto nats-server redis-server';

function num(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v} is not a positive number`);
  return n;
}

/** Workload sizes: GOSSIP_BENCH_SCALE scales the defaults, the GOSSIP_PEERS_* variables set one each. */
export function config() {
  const scale = num('GOSSIP_BENCH_SCALE', 1);
  const ids = Math.round(num('GOSSIP_PEERS_IDS', 20_000 * scale));
  return {
    scale,
    /** W1: distinct ids, messages published over them. */
    ids,
    messages: Math.max(ids, Math.round(num('GOSSIP_PEERS_MESSAGES', 200_000 * scale))),
    /** W1 and W2: every system's publisher keeps at most this many publishes unacknowledged, one window for all. */
    window: Math.round(num('GOSSIP_PEERS_WINDOW', 1_000)),
    /** W2: subscribers, messages for the delivered rate, the fixed rate and duration of the latency run. */
    subscribers: Math.round(num('GOSSIP_PEERS_SUBSCRIBERS', 10)),
    fanoutMessages: Math.round(num('GOSSIP_PEERS_FANOUT_MESSAGES', 100_000 * scale)),
    rate: Math.round(num('GOSSIP_PEERS_RATE', 10_000)),
    /** W2: the latency run's second, lighter rate. */
    slowRate: Math.round(num('GOSSIP_PEERS_SLOW_RATE', 2_000)),
    /** W4: alternated starts of gossipd and of `node -e 0` per run, for spawn → listening. */
    starts: Math.round(num('GOSSIP_PEERS_STARTS', 5)),
    latencySeconds: num('GOSSIP_PEERS_LATENCY_SECONDS', Math.max(1, 3 * scale)),
    warmupSeconds: process.env.GOSSIP_PEERS_WARMUP_SECONDS === '0' ? 0 : num('GOSSIP_PEERS_WARMUP_SECONDS', 1),
    /** Every system runs every workload this many times (interleaved); each figure is the best run. */
    repeats: Math.round(num('GOSSIP_PEERS_REPEATS', 3)),
    /** Any one workload on one system gives up after this long. */
    timeoutMs: num('GOSSIP_PEERS_TIMEOUT_S', 120) * 1000,
  };
}
export type Config = ReturnType<typeof config>;

/** How long a run that timed out is given to clean up (stop its server) before the next one starts. */
const CLEANUP_AFTER_TIMEOUT_MS = 30_000;

/**
 * Runs `fn`; when it takes longer than `ms`, aborts its signal (its waits reject, and its
 * own `finally` stops what it started), gives it a while for that, and rejects with a
 * clear message.
 */
export async function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`${what}: no result after ${ms / 1000} s`)), ms);
  const run = fn(ac.signal);
  try {
    return await abortable(run, ac.signal);
  } catch (e) {
    if (ac.signal.aborted) {
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        run.catch(() => undefined),
        new Promise((r) => {
          grace = setTimeout(r, CLEANUP_AFTER_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(grace);
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- processes and folders

const children = new Set<ChildProcess>();
const folders = new Set<string>();

/** Last resort: whatever is still running when this process exits is killed. */
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of folders) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    // clients whose server is killed now fail: that is expected, not worth a stack trace
    process.on('uncaughtException', () => undefined);
    process.on('unhandledRejection', () => undefined);
    void cleanupAll().finally(() => process.exit(130));
  });
}

/** Makes sure `child` is killed if this process exits while it runs. */
export function track(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  children.add(child);
  child.once('exit', () => children.delete(child));
}

export async function cleanupAll(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all([...folders].map((d) => rm(d, { recursive: true, force: true })));
  folders.clear();
}

export async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `gossip-peers-${prefix}-`));
  folders.add(d);
  return d;
}

export async function removeDir(d: string): Promise<void> {
  await rm(d, { recursive: true, force: true });
  folders.delete(d);
}

/** A server binary in its own process; its output is kept (the tail) for error messages. */
export class Proc {
  readonly child: ChildProcess;
  private out = '';
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    bin: string,
    args: string[],
  ) {
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    const keep = (c: Buffer) => {
      this.out = (this.out + c.toString()).slice(-4000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise<void>((resolve) => {
      this.child.once('exit', () => {
        children.delete(this.child);
        resolve();
      });
      this.child.once('error', (e) => {
        this.out += `\n${e.message}`;
        children.delete(this.child);
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && children.has(this.child);
  }

  /** Spawns a peer server and resolves once it accepts connections on `port`; stops it if it never does. */
  static async serve(name: string, bin: string, args: string[], port: number): Promise<Server> {
    const p = new Proc(name, bin, args);
    try {
      await p.waitPort(port);
    } catch (e) {
      await p.stop();
      throw e;
    }
    return { port, stop: () => p.stop() };
  }

  /** Resolves once the port accepts a TCP connection; throws if the process exits first. */
  async waitPort(port: number, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${this.name} exited before listening:\n${this.out}`);
      if (await canConnect(port)) return;
      if (performance.now() > deadline) throw new Error(`${this.name} not listening on ${port} after ${timeoutMs} ms`);
      await sleep(2);
    }
  }

  /** SIGTERM (a clean shutdown: each server saves what it keeps), SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, HOST);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, HOST);
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

/** The executable `name` on PATH or in the sbin folders (Debian puts mosquitto and nats-server there). */
export function findBinary(name: string, envVar: string): string | null {
  const executable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const given = process.env[envVar];
  if (given) return executable(given) ? given : null;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin'];
  for (const d of dirs) if (d && executable(join(d, name))) return join(d, name);
  return null;
}

/** The first line of `bin args` output that mentions a version. */
export function binaryVersion(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  const line = text.split('\n').find((l) => /v?\d+\.\d+\.\d+/.test(l));
  return line?.trim() ?? 'unknown version';
}

/** The version of a package installed in the bench package's node_modules. */
export function packageVersion(name: string): string {
  const p = new URL(`../node_modules/${name}/package.json`, import.meta.url);
  try {
    return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------- the adapters' shape

/** A running server of one system. */
export interface Server {
  port: number;
  stop(): Promise<void>;
}

export interface Subscription {
  close(): Promise<void>;
}

/** What one system can be asked to run; W3 and W4 run on the server W1 filled. */
export type Workload = 'w1' | 'w2 fan-out' | 'w2 latency' | 'w3' | 'w4';

export interface System {
  /** Column name, and the key of its results. */
  name: string;
  /** A peer: a column of its own that gossipd is compared with (false: a gossipd configuration). */
  peer: boolean;
  /**
   * The workloads it runs, when not all: another configuration of a system that runs
   * everything, whose figures stand on rows of their own.
   */
  only?: readonly Workload[];
  /** How the server is configured, for the header and RESULTS.md. */
  describe: string;
  /** The Node client that drives it, with its version: named in the table, beside the figures. */
  client(): string;
  /** Why it cannot run here (binary missing, with how to install it), or null. */
  missing(): string | null;
  /** Server binary and client package versions. */
  versions(): string;
  /** Starts on a free loopback port with `dataDir`; resolves once it accepts connections. */
  start(dataDir: string): Promise<Server>;
  publisher(port: number): Promise<Publisher>;
  /**
   * A window of its own for W1 and W2, instead of the run's (GOSSIP_PEERS_WINDOW): only the
   * raw server-ceiling row has one; every system driven by its client shares the run's.
   */
  window?: number;
  /** A live subscriber to every id; resolves once subscribed. */
  subscribe(port: number, onData: (data: Uint8Array) => void): Promise<Subscription>;
  /** A new client gets the newest value of every id; resolves with how many ids it got. */
  catchUp(port: number, expected: number): Promise<number>;
}

/** Runs `fn` until it succeeds (for a server that accepts connections before it can answer). */
export async function retry<T>(fn: () => Promise<T>, timeoutMs: number, pauseMs = 5): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (performance.now() > deadline) throw e;
      await sleep(pauseMs);
    }
  }
}
