import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const GOSSIPD = fileURLToPath(new URL('../../apps/gossipd/dist/main.cjs', import.meta.url));

export interface StartOptions {
  /** Called with the child as soon as it is spawned, before it is ready (the peers run tracks it for its cleanup). */
  onSpawn?: (child: ChildProcess) => void;
  /** Gives up (and kills the child) when it has not logged that it listens after this long [60 s]. */
  timeoutMs?: number;
}

/** gossipd in its own process, on a free port, with a temporary data folder unless given one. */
export class Daemon {
  readonly child: ChildProcess;
  readonly dataDir: string;
  port = 0;
  /** Milliseconds from spawn to the listening log line. */
  startMs = 0;
  recoveryMs = 0;

  private constructor(child: ChildProcess, dataDir: string) {
    this.child = child;
    this.dataDir = dataDir;
  }

  /** Resolves once gossipd logs that it listens; if it never does, it is killed (and a folder made here removed). */
  static async start(args: string[] = [], dataDir?: string, options: StartOptions = {}): Promise<Daemon> {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'gossip-bench-d-')));
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', dir, '--log-format', 'json', ...args],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    options.onSpawn?.(child);
    const d = new Daemon(child, dir);
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
          let l: { msg: string; port?: number; ms?: number };
          try {
            l = JSON.parse(line) as typeof l;
          } catch {
            return; // not a log line of ours
          }
          if (l.msg === 'store recovered') d.recoveryMs = l.ms ?? 0;
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
}
