import { readFileSync } from 'node:fs';
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
    for (const dir of [
      'packages/protocol',
      'packages/store',
      'packages/server',
      'packages/client',
      'apps/cli',
      'apps/gossipd',
    ]) {
      const pkg = JSON.parse(readFileSync(new URL(`../../../${dir}/package.json`, import.meta.url), 'utf8'));
      expect(pkg.engines, dir).toEqual({ node: NODE_ENGINES });
    }
  });
});
