import { readFileSync, writeFileSync } from 'node:fs';

/** What every package's tsup build shares: ESM, .d.ts, source maps, Node 20. */
export const base = {
  format: 'esm',
  target: 'node20',
  platform: 'node',
  dts: true,
  sourcemap: true,
  clean: true,
} as const;

/**
 * The library packages are ES modules only. Node 20.19+ and 22.12+ load them with import
 * and require() alike (their `module-sync` export condition); on another Node, require()
 * gets this file (their `require` condition), which says so instead of Node's
 * ERR_REQUIRE_ESM. Written by the build into dist/require.cjs of the package built.
 */
export const esmOnly = {
  ...base,
  async onSuccess() {
    const { name } = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string };
    writeFileSync(
      'dist/require.cjs',
      `throw new Error(${JSON.stringify(
        `${name} is an ES module: require() of it needs a Node.js that loads ES modules with require() (20.19 or newer on 20.x, or 22.12 or newer). Use import, or upgrade Node.js.`,
      )} + ' (this is Node.js ' + process.version + ')');\n`,
    );
  },
} as const;
