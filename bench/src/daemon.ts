import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** This tree's gossipd. */
export const GOSSIPD = fileURLToPath(new URL('../../apps/gossipd/dist/main.cjs', import.meta.url));

/** A JSON log line of gossipd's (pino): `msg` and whatever fields it logged. */
export type LogLine = { msg: string; time?: number; level?: number } & Record<string, unknown>;

export interface StartOptions {
  /** Called with the child as soon as it is spawned, before it is ready (the peers run tracks it for its cleanup). */
  onSpawn?: (child: ChildProcess) => void;
  /** Gives up (and kills the child) when it has not logged that it listens after this long [60 s]. */
  timeoutMs?: number;
  /** The gossipd to run: a path to its `main.cjs` [this tree's]. */
  gossipd?: string;
  /** `--admin-port` [off]. */
  adminPort?: string;
  /** Runs gossipd under `ulimit -n` of this many descriptors (through `sh -c … exec`, so the child is gossipd itself). */
  fdLimit?: number;
  /** Called with every JSON log line gossipd writes, during start-up and after. */
  onLog?: (line: LogLine) => void;
  /** Keep gossipd's stderr (its last 8 KiB in `stderrTail`) instead of passing it through [false]. */
  captureStderr?: boolean;
}

const STDERR_TAIL_BYTES = 8 * 1024;

/** gossipd in its own process, on a free port, with a temporary data folder unless given one. */
export class Daemon {
  readonly child: ChildProcess;
  readonly dataDir: string;
  port = 0;
  /** Milliseconds from spawn to the listening log line. */
  startMs = 0;
  recoveryMs = 0;
  /** The end of gossipd's stderr, when started with `captureStderr`. */
  stderrTail = '';

  private constructor(child: ChildProcess, dataDir: string) {
    this.child = child;
    this.dataDir = dataDir;
  }

  /** Resolves once gossipd logs that it listens; if it never does, it is killed (and a folder made here removed). */
  static async start(args: string[] = [], dataDir?: string, options: StartOptions = {}): Promise<Daemon> {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'gossip-bench-d-')));
    const t0 = performance.now();
    const argv = [
      options.gossipd ?? GOSSIPD,
      '--port',
      '0',
      '--admin-port',
      options.adminPort ?? 'off',
      '--data-dir',
      dir,
      '--log-format',
      'json',
      ...args,
    ];
    const stdio: ['ignore', 'pipe', 'pipe' | 'inherit'] = [
      'ignore',
      'pipe',
      options.captureStderr ? 'pipe' : 'inherit',
    ];
    // `exec` replaces the shell, so the child's pid is gossipd's and signals reach it.
    const child =
      options.fdLimit === undefined
        ? spawn(process.execPath, argv, { stdio })
        : spawn('sh', ['-c', `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, process.execPath, ...argv], { stdio });
    options.onSpawn?.(child);
    const d = new Daemon(child, dir);
    child.stderr?.on('data', (c: Buffer) => {
      d.stderrTail = (d.stderrTail + c.toString()).slice(-STDERR_TAIL_BYTES);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const timeoutMs = options.timeoutMs ?? 60_000;
        timer = setTimeout(() => reject(new Error(`gossipd not listening after ${timeoutMs / 1000} s`)), timeoutMs);
        child.once('exit', (code, signal) =>
          reject(new Error(`gossipd exited with ${code ?? signal} before listening`)),
        );
        child.once('error', reject);
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          let l: LogLine;
          try {
            l = JSON.parse(line) as LogLine;
          } catch {
            return; // not a log line of ours
          }
          if (typeof l.msg !== 'string') return;
          options.onLog?.(l);
          if (l.msg === 'store recovered') d.recoveryMs = typeof l.ms === 'number' ? l.ms : 0;
          if (l.msg.includes('listening on gossip')) {
            d.port = l.port as number;
            d.startMs = performance.now() - t0;
            resolve();
          }
        });
      });
    } catch (e) {
      // without a pid it was never spawned: nothing to kill
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
      if (!dataDir) await rm(dir, { recursive: true, force: true });
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return d;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** SIGKILL (a gossipd that misbehaves may not stop on SIGTERM in time) and removes the data folder. */
  async destroy(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGKILL');
      await exited;
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
