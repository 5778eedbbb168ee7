import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The built daemon (turbo builds gossipd before these tests run), or another build named by GOSSIP_TEST_GOSSIPD. */
export const GOSSIPD =
  process.env.GOSSIP_TEST_GOSSIPD ?? fileURLToPath(new URL('../../../apps/gossipd/dist/main.cjs', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface GossipdOptions {
  /** Extra flags, e.g. ['--fsync', 'always']. `--port 0 --admin-port 0` and a temp data folder are added. */
  args?: string[];
  /** Reuse a data folder (a restart); by default a new temporary one. */
  dataDir?: string;
  env?: Record<string, string>;
  /** The entry point to run instead of the built GOSSIPD (a copy elsewhere). */
  bin?: string;
  /** Start under this descriptor limit (`ulimit -n`, through sh). */
  nofile?: number;
}

/** A real gossipd process on loopback port 0 with JSON logs read line by line. */
export class Gossipd {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly logs: LogLine[] = [];
  port = 0;
  adminPort = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  #waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  private constructor(child: ChildProcess, dataDir: string) {
    this.child = child;
    this.dataDir = dataDir;
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      this.logs.push(parsed);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(parsed)) return true;
        w.resolve(parsed);
        return false;
      });
    });
    child.stderr?.on('data', (c: Buffer) => {
      this.stderr += c.toString();
    });
  }

  /** Starts gossipd and resolves once it listens (its ports read from its log). */
  static async start(options: GossipdOptions = {}): Promise<Gossipd> {
    const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'gossipd-test-')));
    const command = [
      process.execPath,
      options.bin ?? GOSSIPD,
      '--port',
      '0',
      '--admin-port',
      '0',
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
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    const d = new Gossipd(child, dataDir);
    const listening = d.waitLog((l) => l.msg.startsWith('gossipd') && l.msg.includes('listening on'));
    const admin = d.waitLog((l) => l.msg.startsWith('admin listening'));
    const died = d.exited.then(({ code, signal }) => {
      throw new Error(`gossipd exited (${code ?? signal}) before listening: ${d.stderr}${JSON.stringify(d.logs)}`);
    });
    const [line, adminLine] = await Promise.race([Promise.all([listening, admin]), died]);
    d.port = line.port as number;
    d.adminPort = adminLine.port as number;
    return d;
  }

  /** Resolves with the first log line (past or future) that matches. */
  waitLog(match: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** GETs a path of the admin listener. */
  async admin(path: string, method = 'GET'): Promise<{ status: number; text: string }> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}${path}`, { method });
    return { status: res.status, text: await res.text() };
  }

  /** One metric's value from /metrics. */
  async metric(name: string): Promise<number> {
    const { text } = await this.admin('/metrics');
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    if (!line) throw new Error(`metric ${name} not found`);
    return Number(line.split(' ').pop());
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
  async memory(): Promise<{ rss: number; peak: number }> {
    const status = await readFile(`/proc/${this.child.pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rss: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 };
  }

  /** Descriptors the process has open, from /proc. */
  async descriptors(): Promise<number> {
    return (await readdir(`/proc/${this.child.pid}/fd`)).length;
  }

  /** SIGTERM and wait for exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL and wait for exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
