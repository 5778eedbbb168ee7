/**
 * The Node.js versions gossip runs on, as every package's `engines` states them: the ones
 * that load ES modules with require() (20.19 and newer on 20.x, 22.12 and newer), which
 * also have `zlib.crc32` (20.15) that the store needs.
 */
export const NODE_ENGINES = '^20.19.0 || >=22.12.0';

/** Why `version` (`process.version` by default) is not one gossip runs on, for a program to print and exit; undefined when it is. */
export function belowNodeFloor(program: string, version: string = process.version): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const fits = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;
  return fits
    ? undefined
    : `${program} needs Node.js 20.19 or newer on 20.x, or 22.12 or newer; this is Node.js ${version}`;
}
