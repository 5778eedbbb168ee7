/**
 * A ts as the CLI's human and JSON forms show it (docs/OPERATIONS.md, "The gossip CLI"):
 * ISO 8601 in UTC to the nanosecond, for a ts from 1970 on. Written here on its own, not
 * imported from the CLI, so that the tests hold the CLI to the documented form.
 */
export function iso(ts: bigint): string {
  const ms = new Date(Number(ts / 1_000_000n)).toISOString().slice(0, -1);
  return `${ms}${(ts % 1_000_000n).toString().padStart(6, '0')}Z`;
}
