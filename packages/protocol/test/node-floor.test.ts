import { readFileSync } from 'node:fs';
import { belowNodeFloor, NODE_FLOOR } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';

describe('node floor', () => {
  it('node floor - a Node below 20.19 is named with the floor; 20.19 and newer pass', () => {
    expect(belowNodeFloor('gossipd', 'v20.18.3')).toBe(
      'gossipd needs Node.js 20.19 or newer; this is Node.js v20.18.3',
    );
    expect(belowNodeFloor('gossip', 'v18.20.4')).toBe('gossip needs Node.js 20.19 or newer; this is Node.js v18.20.4');
    for (const v of ['v20.19.0', 'v20.20.2', 'v22.1.0', 'v24.0.0'])
      expect(belowNodeFloor('gossipd', v), v).toBeUndefined();
    expect(belowNodeFloor('gossipd')).toBeUndefined();
  });

  it('node floor - is what every public package states in engines', () => {
    const floor = `>=${NODE_FLOOR.join('.')}.0`;
    for (const dir of [
      'packages/protocol',
      'packages/store',
      'packages/server',
      'packages/client',
      'apps/cli',
      'apps/gossipd',
    ]) {
      const pkg = JSON.parse(readFileSync(new URL(`../../../${dir}/package.json`, import.meta.url), 'utf8'));
      expect(pkg.engines, dir).toEqual({ node: floor });
    }
  });
});
