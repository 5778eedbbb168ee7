/**
 * The Node.js versions gossip runs on: those that load ES modules with require() (which
 * also have the `zlib.crc32` the store needs, from 20.15). The oldest of each line that
 * does; every major after the last is new enough. `NODE_ENGINES` (every package's
 * `engines`) and `belowNodeFloor` are made from it.
 */
const FLOORS = [
  [20, 19],
  [22, 12],
] as const;
const LAST = FLOORS.length - 1;
const LAST_MAJOR = Math.max(...FLOORS.map(([major]) => major));

export const NODE_ENGINES = FLOORS.map(([major, minor], i) => `${i < LAST ? '^' : '>='}${major}.${minor}.0`).join(
  ' || ',
);

/** Why `version` (`process.version` by default) is not one gossip runs on, for a program to print and exit; undefined when it is. */
export function belowNodeFloor(program: string, version: string = process.version): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const fits = major > LAST_MAJOR || FLOORS.some(([m, n]) => major === m && minor >= n);
  if (fits) return undefined;
  const needed = FLOORS.map(([m, n], i) => `${m}.${n} or newer${i < LAST ? ` on ${m}.x` : ''}`).join(', or ');
  return `${program} needs Node.js ${needed}; this is Node.js ${version}`;
}
