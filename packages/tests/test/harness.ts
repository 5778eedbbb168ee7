import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ConnectionOptions } from 'node:tls';
import { type ErrorFrame, type Frame, FrameKind, type HelloOptions } from '@gossip/protocol';
import { GOSSIPD, Gossipd, type GossipdOptions, type LogLine, RawClient } from '@gossip/testing';
import { afterEach } from 'vitest';

/** What a gossipd run that is not meant to stay up (--help, a bad flag) left behind. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  logs: LogLine[];
}

/**
 * Per-test processes, clients and folders, all released in `afterEach`: every daemon
 * is killed before any folder is removed, so a restart that shares a data folder with
 * an earlier daemon is cleaned up once.
 */
export function harness() {
  const daemons: Gossipd[] = [];
  const clients: RawClient[] = [];
  /** Clients of @gossip/client a test keeps (`keep`): closed at once, before the daemons go. */
  const kept: { close(options: { timeoutMs: number }): Promise<void> }[] = [];
  const dirs = new Set<string>();
  const children: { kill(): void; exited: Promise<unknown> }[] = [];

  afterEach(async () => {
    await Promise.all(kept.splice(0).map((c) => c.close({ timeoutMs: 0 })));
    for (const c of clients.splice(0)) c.close();
    await Promise.all(daemons.splice(0).map((d) => d.kill()));
    const spawned = children.splice(0);
    for (const c of spawned) c.kill();
    await Promise.all(spawned.map((c) => c.exited));
    await Promise.all([...dirs].map((dir) => rm(dir, { recursive: true, force: true })));
    dirs.clear();
  });

  const h = {
    /** Keeps a client of @gossip/client (or anything closed so) to close after the test. */
    keep<C extends { close(options: { timeoutMs: number }): Promise<void> }>(client: C): C {
      kept.push(client);
      return client;
    },

    /** A temporary folder removed after the test. */
    async tmp(prefix = 'gossip-e2e-'): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dirs.add(dir);
      return dir;
    },

    /** Starts gossipd (a new data folder unless one is given) and tracks it. */
    async start(options: GossipdOptions = {}): Promise<Gossipd> {
      const dataDir = options.dataDir ?? (await h.tmp('gossipd-test-'));
      dirs.add(dataDir);
      const d = await Gossipd.start({ ...options, dataDir });
      daemons.push(d);
      return d;
    },

    /** Stops `d` with SIGTERM and starts a new gossipd on the same data folder. */
    async restart(d: Gossipd, options: GossipdOptions = {}): Promise<Gossipd> {
      const { code } = await d.stop();
      if (code !== 0) throw new Error(`gossipd stopped with ${code}: ${d.stderr}`);
      return h.start({ ...options, dataDir: d.dataDir });
    },

    /** Connects, sends a hello and waits for the welcome. */
    async connect(port: number, hello: HelloOptions = {}, tls?: ConnectionOptions): Promise<RawClient> {
      const c = await RawClient.connect(port, hello, tls);
      clients.push(c);
      return c;
    },

    /** A live-only client that has read its replay-done. */
    async live(port: number, hello: HelloOptions = {}): Promise<RawClient> {
      const c = await h.connect(port, { ...hello, since: null });
      await c.replay();
      return c;
    },

    /** Opens a connection without sending anything. */
    async open(port: number, tls?: ConnectionOptions): Promise<RawClient> {
      const c = await RawClient.open(port, tls);
      clients.push(c);
      return c;
    },

    /**
     * Runs gossipd with exactly `args` and `env` (nothing added) until it logs that it
     * listens or exits. For runs that are meant to exit (help, bad flags), `exited`
     * holds the result; for one that listens, `port` and `adminPort` are set and the
     * process is killed after the test.
     */
    async spawn(
      args: string[],
      env: Record<string, string> = {},
    ): Promise<Run & { port?: number; adminPort?: number; child: ReturnType<typeof spawn> }> {
      const child = spawn(process.execPath, [GOSSIPD, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      });
      const exited = once(child, 'exit').then(([code]) => code as number | null);
      children.push({ kill: () => child.kill('SIGKILL'), exited });
      const run: Run & { port?: number; adminPort?: number; child: typeof child } = {
        code: null,
        stdout: '',
        stderr: '',
        logs: [],
        child,
      };
      child.stderr?.on('data', (c: Buffer) => {
        run.stderr += c.toString();
      });
      let onListening: () => void = () => undefined;
      const listening = new Promise<void>((resolve) => (onListening = resolve));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        run.stdout += `${line}\n`;
        let parsed: LogLine | undefined;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          return;
        }
        run.logs.push(parsed);
        if (typeof parsed.msg !== 'string') return;
        if (parsed.msg.startsWith('admin listening')) run.adminPort = parsed.port as number;
        if (parsed.msg.startsWith('gossipd') && parsed.msg.includes('listening on')) {
          run.port = parsed.port as number;
          onListening();
        }
      });
      const stdoutDone = once(child.stdout as NodeJS.ReadableStream, 'end');
      await Promise.race([
        listening,
        exited.then(async (code) => {
          await stdoutDone;
          run.code = code;
        }),
      ]);
      return run;
    },
  };
  return h;
}

/** The error frame a connection ended with (after the server closed it). */
export async function fatalError(c: RawClient): Promise<ErrorFrame> {
  const e = await c.closedWithError();
  if (!e) throw new Error(`connection closed without an error frame: ${JSON.stringify(c.frames, bigints)}`);
  return e;
}

/** Whether any frame of `kind` was received. */
export function received(c: RawClient, kind: Frame['kind']): boolean {
  return c.frames.some((f) => f.kind === kind);
}

/** Round-trips a ping: every frame the server queued for `c` before it is now in `c.frames`. */
export async function barrier(c: RawClient): Promise<void> {
  await c.ping();
}

export const isMessage = (f: Frame) => f.kind === FrameKind.Message;

/** Matches the message frame for `id`. */
export const messageFor = (id: string) => (f: { kind: number; id?: string }) =>
  f.kind === FrameKind.Message && f.id === id;

/** [id, ts, data, flags] of messages, for compact comparisons; `data` as a Buffer or any Uint8Array. */
export const rows = (ms: readonly { id: string; ts: bigint; data: Uint8Array; flags: number }[]) =>
  ms.map((m) => [m.id, m.ts, Buffer.from(m.data).toString(), m.flags]);

export function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** A ts `ms` milliseconds before the test's clock. */
export function past(base: bigint, ms: number): bigint {
  return base - BigInt(ms) * 1_000_000n;
}
