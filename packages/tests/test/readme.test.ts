import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { harness } from './harness.js';

// The README's 30-second tour, run as written: each line of its first sh block in bash,
// from the repository's root, after the alias line, against a real gossipd (GOSSIP_ADDRESS
// names the test's daemon instead of the default port: the commands are the README's own).

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);
const h = harness();

/** The lines of the tour's sh block, comments kept. */
function tourLines(): string[] {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8');
  const tour = readme.slice(readme.indexOf('## The 30-second tour'));
  const block = /```sh\n([\s\S]*?)```/.exec(tour)?.[1];
  if (!block) throw new Error('README.md: no sh block in "The 30-second tour"');
  return block.trimEnd().split('\n');
}

/** Each command of the tour and what its output must look like (the README's comment, made general). */
const EXPECTED: [command: string, output: RegExp][] = [
  ['gossip pub flags/checkout on', /^accepted \d+ written\n$/],
  ['gossip fetch flags/checkout', /^on\n$/],
  ['gossip sub --since 10m --count 1', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z flags\/checkout "on"\n$/],
  ['gossip sub flags/ presence/ --timeout 2s', /^\S+Z flags\/checkout "on"\n$/],
  ['gossip fetch --json flags/checkout', /^\{"id":"flags\/checkout","found":true,.*"value":"on"\}\n$/],
  ['gossip del flags/checkout', /^accepted \d+ written\n$/],
];

describe('readme', () => {
  it('readme - every command of the 30-second tour runs as written, in order, and prints what its comment says', async () => {
    const d = await h.start();
    const [alias, ...commands] = tourLines();
    expect(alias).toMatch(/^alias gossip="node \$PWD\/apps\/cli\/bin\/gossip\.js"/);
    expect(commands.map((l) => l.replace(/\s+#.*$/, ''))).toEqual(EXPECTED.map(([c]) => c));
    for (const [i, line] of commands.entries()) {
      const script = `shopt -s expand_aliases\n${alias}\n${line}\n`;
      const { stdout, stderr } = await run('bash', ['-c', script], {
        cwd: ROOT,
        env: { ...process.env, GOSSIP_ADDRESS: `127.0.0.1:${d.port}` },
      });
      expect(stdout, line).toMatch(EXPECTED[i]?.[1] as RegExp);
      // nothing a newcomer must wonder about
      expect(stderr, line).toBe('');
    }
  });
});
