import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { harness } from './harness.js';

// Every program of examples/ runs to its end against a real gossipd, as examples/README.md says.

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const run = promisify(execFile);
const h = harness();

async function example(file: string, port?: number): Promise<string> {
  const { stdout } = await run(process.execPath, [`${EXAMPLES}${file}`], {
    cwd: EXAMPLES,
    env: { ...process.env, ...(port ? { GOSSIP_ADDRESS: `127.0.0.1:${port}` } : {}) },
    timeout: 30_000,
  });
  return stdout;
}

describe('examples', () => {
  it('examples - feature-flags keeps the flags in a GossipState and sees its own flip, run after run', async () => {
    const d = await h.start();
    const first = await example('feature-flags.mjs', d.port);
    expect(first).toContain('0 flags known; checkout off');
    expect(first).toContain('publish: accepted (written)');
    expect(first).toContain('checkout is now on');
    // a second service starts with the stored flag, and flips it back
    const second = await example('feature-flags.mjs', d.port);
    expect(second).toContain('1 flags known; checkout on');
    expect(second).toContain('checkout is now off');
  });

  it('examples - presence reaches a connected client as transient and stores nothing', async () => {
    const d = await h.start();
    const out = await example('presence.mjs', d.port);
    expect(out).toBe('bob saw presence/alice online (transient: true)\nstored: false\n');
  });

  it('examples - embedded-store keeps the newest ts of an id across a reopen', async () => {
    const out = await example('embedded-store.mjs');
    expect(out).toMatch(
      /^append v1: accepted\nappend v2: accepted\nappend older: stale\nafter reopen: config\/db = v2\nreplayed since \d+: config\/db = v2\n$/,
    );
  });
});
