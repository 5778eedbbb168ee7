import { readdirSync, readFileSync } from 'node:fs';
import { belowNodeFloor, NODE_ENGINES } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';

describe('node floor', () => {
  it('node floor - a Node without require() of ES modules is named with the versions that have it; the others pass', () => {
    for (const v of ['v20.18.3', 'v18.20.4', 'v21.7.3', 'v22.11.0'])
      expect(belowNodeFloor('gossipd', v), v).toBe(
        `gossipd needs Node.js 20.19 or newer on 20.x, or 22.12 or newer; this is Node.js ${v}`,
      );
    for (const v of ['v20.19.0', 'v20.20.2', 'v22.12.0', 'v23.0.0', 'v24.1.0'])
      expect(belowNodeFloor('gossipd', v), v).toBeUndefined();
    expect(belowNodeFloor('gossipd')).toBeUndefined();
  });

  it('node floor - is what every public package states in engines', () => {
    const root = new URL('../../../', import.meta.url);
    const manifests = ['packages', 'apps'].flatMap((group) =>
      readdirSync(new URL(group, root)).map((dir) => new URL(`${group}/${dir}/package.json`, root)),
    );
    const published = manifests
      .map((url) => JSON.parse(readFileSync(url, 'utf8')) as { name: string; private?: boolean; engines?: unknown })
      .filter((pkg) => !pkg.private);
    expect(published.map((pkg) => pkg.name).sort()).toEqual([
      '@gossip/cli',
      '@gossip/client',
      '@gossip/protocol',
      '@gossip/server',
      '@gossip/store',
      'gossipd',
    ]);
    for (const pkg of published) expect(pkg.engines, pkg.name).toEqual({ node: NODE_ENGINES });
  });
});
