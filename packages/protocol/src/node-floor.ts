/**
 * The oldest Node.js gossip runs on (every package's `engines`): 20.19, the first 20.x
 * that loads ES modules with require(); the store also needs `zlib.crc32` (20.15).
 */
export const NODE_FLOOR = [20, 19] as const;

/** Why `version` (`process.version` by default) is below the floor, for a program to print and exit; undefined when it is not. */
export function belowNodeFloor(program: string, version: string = process.version): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const [floorMajor, floorMinor] = NODE_FLOOR;
  if (major > floorMajor || (major === floorMajor && minor >= floorMinor)) return undefined;
  return `${program} needs Node.js ${floorMajor}.${floorMinor} or newer; this is Node.js ${version}`;
}
