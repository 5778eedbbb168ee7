import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AckStatus } from '@gossip/protocol';
import type { Gossipd, LogLine } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { harness } from './harness.js';

// End to end: damage to a data folder after a clean stop (SIGTERM) is corruption for
// `gossip inspect` and for the next gossipd start, and nothing is truncated; damage to
// bytes written after the last clean stop is still a torn tail (docs/STORAGE.md, S8).

/** The built CLI: turbo builds it before these tests run. */
const CLI = fileURLToPath(new URL('../../../apps/cli/dist/main.js', import.meta.url));
const WARN = 40;
const ERROR = 50;

const h = harness();

/** Runs `gossip inspect <dir> [--json]` to its end, with no GOSSIP_* variable of the caller. */
async function inspect(dir: string, json = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GOSSIP_')));
  const child = spawn(process.execPath, [CLI, 'inspect', dir, ...(json ? ['--json'] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

async function newestSegment(dir: string): Promise<{ name: string; path: string; size: number }> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
  const name = names[names.length - 1] as string;
  const path = join(dir, name);
  return { name, path, size: (await stat(path)).size };
}

/** Overwrites 8 bytes of a file at `at` with bytes that differ from each of them. */
async function damage(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(8);
    await fh.read(b, 0, 8, at);
    for (let i = 0; i < 8; i++) b[i] = (b[i] as number) ^ 0x5a;
    await fh.write(b, 0, 8, at);
  } finally {
    await fh.close();
  }
}

async function publishAll(d: Gossipd, from: number, count: number): Promise<void> {
  const c = await h.connect(d.port);
  for (let i = from; i < from + count; i++) {
    const ack = await c.publish(`id${i}`, BigInt(1000 + i), `value ${i} ${'x'.repeat(100)}`);
    expect(ack.status).toBe(AckStatus.Accepted);
  }
  c.close();
}

const storeLines = (d: Gossipd, level: number) => d.logs.filter((l) => l.component === 'store' && l.level === level);
const tornLine = (l: LogLine) => l.msg.includes('torn tail');

describe('clean close', () => {
  it('clean close - damage after a SIGTERM stop: inspect exits 1 with CORRUPT, the next start logs an error and truncates nothing', async () => {
    const d = await h.start();
    await publishAll(d, 0, 20);
    expect((await d.stop()).code).toBe(0);
    const seg = await newestSegment(d.dataDir);
    await damage(seg.path, seg.size - 20); // inside the last record, id19

    const text = await inspect(d.dataDir);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toContain('CORRUPT');
    expect(text.stdout).not.toContain('torn tail');
    expect(text.stdout).not.toContain('every checksum verified');
    const json = await inspect(d.dataDir, true);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { verified: boolean; corruptions: number; segmentFiles: unknown[] };
    expect(report).toMatchObject({ verified: false, corruptions: 1 });
    expect(report.segmentFiles).toContainEqual(expect.objectContaining({ name: seg.name, tail: 'corrupt' }));

    const again = await h.start({ dataDir: d.dataDir });
    const errors = storeLines(again, ERROR);
    expect(errors, JSON.stringify(again.logs)).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: seg.name });
    expect(errors[0]?.msg).toContain('corrupt');
    expect(again.logs.filter(tornLine)).toEqual([]);
    expect(again.logs.find((l) => l.msg === 'store recovered')).toMatchObject({ truncatedBytes: 0, corruptions: 1 });
    expect((await stat(seg.path)).size).toBe(seg.size);

    // The undamaged messages are served, the damaged one is not; new ones go to a new segment.
    const c = await h.connect(again.port);
    const got = await c.fetch(['id0', 'id18', 'id19']);
    expect(got.map((e) => e.found)).toEqual([true, true, false]);
    expect((await c.publish('id19', 5000n, 'again')).status).toBe(AckStatus.Accepted);
    expect((await newestSegment(d.dataDir)).name).not.toBe(seg.name);
    expect((await stat(seg.path)).size).toBe(seg.size);
  });

  it('clean close - damage to messages published after a clean restart and a SIGKILL: a torn tail, truncated', async () => {
    const d = await h.start();
    await publishAll(d, 0, 10);
    const restarted = await h.restart(d);
    const closed = await newestSegment(d.dataDir);
    await publishAll(restarted, 10, 1);
    await restarted.kill();
    const seg = await newestSegment(d.dataDir);
    expect(seg.name).toBe(closed.name);
    expect(seg.size).toBeGreaterThan(closed.size);
    await damage(seg.path, seg.size - 20); // inside id10, written after the clean stop

    const text = await inspect(d.dataDir);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('torn tail');
    expect(text.stdout).not.toContain('CORRUPT');

    const again = await h.start({ dataDir: d.dataDir });
    expect(storeLines(again, ERROR)).toEqual([]);
    expect(storeLines(again, WARN).filter(tornLine)).toHaveLength(1);
    expect(again.logs.find((l) => l.msg === 'store recovered')).toMatchObject({
      truncatedBytes: seg.size - closed.size,
      corruptions: 0,
    });
    expect((await stat(seg.path)).size).toBe(closed.size);
  });
});
