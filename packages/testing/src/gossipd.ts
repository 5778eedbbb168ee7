import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type ProcMemory, procDescriptors, procMemory } from './proc.js';

/**
 * The gossipd that runs unless told otherwise: another build named by GOSSIP_TEST_GOSSIPD,
 * or this tree's (turbo builds it before the tests and the benchmarks that need it).
 * The path is the same from src/ and dist/: both sit one folder below the package.
 */
export const GOSSIPD =
  process.env.GOSSIP_TEST_GOSSIPD ?? fileURLToPath(new URL('../../../apps/gossipd/dist/main.cjs', import.meta.url));

/** A JSON log line of gossipd's (pino): `msg`, `level` and whatever fields it logged. */
export interface LogLine {
  level: number;
  msg: string;
  time?: number;
  [field: string]: unknown;
}

/** How the process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GossipdOptions {
  /** Flags after the launcher's own (`--port 0`, `--admin-port`, `--data-dir`, `--log-format json`), e.g. ['--fsync', 'always'] [none]. */
  args?: string[];
  /** The data folder: one to reuse (a restart) [a new temporary one, which `cleanup()` and a failed start remove]. */
  dataDir?: string;
  /** Variables added to this process's environment [none]. */
  env?: Record<string, string>;
  /** Start with `env` alone, none of this process's environment (a program that must need none) [false]. */
  cleanEnv?: boolean;
  /** The entry point to run: another build's `main.cjs` [GOSSIPD]. */
  bin?: string;
  /** A single executable gossipd (`pnpm build:sea`) to run instead of Node with `bin` [none]. */
  executable?: string;
  /** Start the admin listener on a free port, read into `adminPort` (`--admin-port 0`), or not at all (`off`) [true]. */
  admin?: boolean;
  /** Start under this descriptor limit: `ulimit -n`, through `sh -c … exec`, so the child is gossipd itself [inherited]. */
  nofile?: number;
  /** Called with the child as soon as it is spawned, before it listens (to kill it at exit whatever happens) [none]. */
  onSpawn?: (child: ChildProcess) => void;
  /** Called with every JSON log line, during start-up and after [none]. */
  onLog?: (line: LogLine) => void;
  /** `pipe`: gossipd's stderr is kept in `stderr` (its last 1 MiB); `inherit`: it goes to this process's stderr [pipe]. */
  stderr?: 'pipe' | 'inherit';
  /** Gives up (and kills gossipd) when it has not logged that it listens after this long [60 s]. */
  timeoutMs?: number;
}

/** What `stderr` keeps of a gossipd that writes without end. */
const STDERR_KEEP_CHARS = 1024 * 1024;

/** The gossip listener's line: "gossipd <version> listening on gossip(s)://…" (older builds: any "listening on gossip"). */
function isListening(l: LogLine): boolean {
  return (l.msg.startsWith('gossipd') && l.msg.includes('listening on')) || l.msg.includes('listening on gossip');
}

/** A real gossipd process on a loopback port 0, its JSON logs read line by line. */
export class Gossipd {
  readonly child: ChildProcess;
  readonly dataDir: string;
  /** Every log line so far. */
  readonly logs: LogLine[] = [];
  port = 0;
  /** 0 when started with `admin: false`. */
  adminPort = 0;
  /** Milliseconds from the spawn to the gossip listener's log line. */
  startMs = 0;
  /** The `ms` of the store's `store recovered` line: how long recovery took. */
  recoveryMs = 0;
  /** What gossipd wrote to stderr (its end), unless started with `stderr: 'inherit'`. */
  stderr = '';
  readonly exited: Promise<Exit>;
  readonly #admin: boolean;
  #waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  private constructor(child: ChildProcess, dataDir: string, options: GossipdOptions, t0: number) {
    this.child = child;
    this.dataDir = dataDir;
    this.#admin = options.admin ?? true;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return; // not a log line
      }
      if (typeof line?.msg !== 'string') return;
      if (this.startMs === 0 && isListening(line)) this.startMs = performance.now() - t0;
      if (line.msg === 'store recovered') this.recoveryMs = typeof line.ms === 'number' ? line.ms : 0;
      this.logs.push(line);
      options.onLog?.(line);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    child.stderr?.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString()).slice(-STDERR_KEEP_CHARS);
    });
  }

  /**
   * Starts gossipd and resolves once it listens, its ports read from its log. If it exits
   * first, or does not listen within `timeoutMs`, it is killed, a folder made here is
   * removed, and the start rejects with its stderr and log.
   */
  static async start(options: GossipdOptions = {}): Promise<Gossipd> {
    const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'gossipd-')));
    const admin = options.admin ?? true;
    const command = [
      ...(options.executable ? [options.executable] : [process.execPath, options.bin ?? GOSSIPD]),
      '--port',
      '0',
      '--admin-port',
      admin ? '0' : 'off',
      '--data-dir',
      dataDir,
      '--log-format',
      'json',
      ...(options.args ?? []),
    ];
    // exec: the shell becomes gossipd, so signals and the pid are gossipd's own.
    const [file, args] =
      options.nofile === undefined
        ? [command[0] as string, command.slice(1)]
        : ['/bin/sh', ['-c', `ulimit -n ${options.nofile} && exec "$@"`, 'sh', ...command]];
    const t0 = performance.now();
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', options.stderr ?? 'pipe'],
      env: options.cleanEnv ? { ...options.env } : { ...process.env, ...options.env },
    });
    options.onSpawn?.(child);
    const d = new Gossipd(child, dataDir, options, t0);
    const timeoutMs = options.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const listening = Promise.all([
        d.waitLog(isListening),
        admin ? d.waitLog((l) => l.msg.startsWith('admin listening')) : undefined,
      ]);
      const failed = new Promise<never>((_, reject) => {
        const report = () => `${d.stderr}${JSON.stringify(d.logs)}`;
        timer = setTimeout(
          () => reject(new Error(`gossipd not listening after ${timeoutMs / 1000} s: ${report()}`)),
          timeoutMs,
        );
        child.once('error', reject); // not spawned at all
        void d.exited.then(({ code, signal }) =>
          reject(new Error(`gossipd exited (${code ?? signal}) before listening: ${report()}`)),
        );
      });
      const [line, adminLine] = await Promise.race([listening, failed]);
      d.port = line.port as number;
      d.adminPort = (adminLine?.port as number | undefined) ?? 0;
    } catch (e) {
      // without a pid it was never spawned: nothing to kill
      if (child.pid !== undefined) await d.kill();
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return d;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (past or future) that matches. */
  waitLog(match: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Requests a path of the admin listener. */
  async admin(path: string, method = 'GET'): Promise<{ status: number; text: string }> {
    if (!this.#admin) throw new Error('this gossipd was started with admin: false: it has no admin listener');
    const res = await fetch(`http://127.0.0.1:${this.adminPort}${path}`, { method });
    return { status: res.status, text: await res.text() };
  }

  /** One metric's value from /metrics. */
  async metric(name: string): Promise<number> {
    const { text } = await this.admin('/metrics');
    const lines = text.split('\n');
    // a labeled metric (gossip_refused_total{reason=…}) sums its samples; one that has none yet is 0
    const samples = lines.filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    if (samples.length === 0 && !lines.some((l) => l.startsWith(`# TYPE ${name} `)))
      throw new Error(`metric ${name} not found`);
    return samples.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  /**
   * Resolves once the server has stopped writing to its clients: five equal readings of
   * `gossip_bytes_out_total` in a row, asked a bounded number of times.
   */
  async quiet(): Promise<void> {
    let last = -1;
    let same = 0;
    for (let i = 0; i < 400 && same < 5; i++) {
      const v = await this.metric('gossip_bytes_out_total');
      same = v === last ? same + 1 : 0;
      last = v;
    }
  }

  /** The process's resident memory now and at its peak (VmRSS, VmHWM), from /proc. */
  async memory(): Promise<ProcMemory> {
    const m = procMemory(this.child.pid as number);
    if (!m) throw new Error(`gossipd (pid ${this.child.pid}) is gone: no memory to read`);
    return m;
  }

  /** Descriptors the process has open, from /proc. */
  async descriptors(): Promise<number> {
    const n = procDescriptors(this.child.pid as number);
    if (n === undefined) throw new Error(`gossipd (pid ${this.child.pid}) is gone: no descriptors to count`);
    return n;
  }

  /** SIGTERM (a clean stop) and wait for the exit. */
  async stop(): Promise<Exit> {
    if (this.alive) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<Exit> {
    if (this.alive) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** Kills gossipd (SIGKILL: one that misbehaves may not stop on SIGTERM in time) and removes its data folder. */
  async cleanup(): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
