/**
 * Nanosecond wall-clock timestamps that never repeat within a process.
 *
 * `Date.now()` has millisecond resolution, so two publishes of one id in the same
 * millisecond would carry the same ts and the second would be dropped as stale.
 * `now()` adds the monotonic clock's nanoseconds since an anchor taken from the wall
 * clock, re-anchors when the two drift apart by more than a millisecond (NTP steps),
 * and never returns a value less than or equal to the previous one.
 */
const NS_PER_MS = 1_000_000n;
const MAX_DRIFT_MS = 1;

let anchorWallMs = Date.now();
let anchorWallNs = BigInt(anchorWallMs) * NS_PER_MS;
let anchorHr = process.hrtime.bigint();
let last = 0n;

/** The current time in nanoseconds since the Unix epoch, strictly increasing within this process. */
export function now(): bigint {
  const hr = process.hrtime.bigint();
  const sinceNs = hr - anchorHr;
  let t = anchorWallNs + sinceNs;
  const wallMs = Date.now();
  // As a number, not a BigInt division: one BigInt fewer per call (a publish makes one).
  const estimateMs = anchorWallMs + Math.floor(Number(sinceNs) / 1e6);
  if (Math.abs(estimateMs - wallMs) > MAX_DRIFT_MS) {
    anchorWallMs = wallMs;
    anchorWallNs = BigInt(wallMs) * NS_PER_MS;
    anchorHr = hr;
    t = anchorWallNs;
  }
  if (t <= last) t = last + 1n;
  last = t;
  return t;
}

/** Nanoseconds from milliseconds, for building a ts from `Date` values. */
export function tsFromMillis(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * NS_PER_MS;
}

/** Milliseconds (fractional) from a nanosecond ts, for display. */
export function tsToMillis(ts: bigint): number {
  return Number(ts / NS_PER_MS) + Number(ts % NS_PER_MS) / 1e6;
}
