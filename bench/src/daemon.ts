import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const GOSSIPD = fileURLToPath(new URL('../../apps/gossipd/dist/main.cjs', import.meta.url));

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

  static async start(args: string[] = [], dataDir?: string): Promise<Daemon> {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'gossip-bench-d-')));
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', dir, '--log-format', 'json', ...args],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const d = new Daemon(child, dir);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`gossipd exited with ${code}`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const l = JSON.parse(line) as { msg: string; port?: number; ms?: number };
        if (l.msg === 'store recovered') d.recoveryMs = l.ms ?? 0;
        if (l.msg.includes('listening on gossip')) {
          d.port = l.port as number;
          d.startMs = performance.now() - t0;
          resolve();
        }
      });
    });
    return d;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
