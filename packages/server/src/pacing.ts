/** What waits for a client, as a replay or a fetch paces itself by it (outbound.ts `Outbound`). */
export interface Paced {
  /** Bytes waiting for the client. */
  readonly pendingBytes: number;
  /** Resolves once at most `limit` bytes wait, or the connection closed. */
  whenBelow(limit: number): Promise<void>;
}

/** Past this many bytes waiting for the client, a replay or a fetch waits for them to drain. */
const PACING_HIGH_WATER = 4 * 1024 * 1024;
/** Record bytes a replay or a fetch reads per batch. */
const PACING_BATCH_BYTES = 1024 * 1024;
/**
 * How a replay or a fetch paces itself for a connection: both limits shrink to a
 * quarter of the outbound cap, so output that the client keeps reading never trips the
 * cap (high water plus one batch stays under half of it).
 */
export function pacing(maxOutboundBytes: number): { highWater: number; batchBytes: number } {
  const quarter = Math.floor(maxOutboundBytes / 4);
  return {
    highWater: Math.min(PACING_HIGH_WATER, quarter),
    batchBytes: Math.max(1, Math.min(PACING_BATCH_BYTES, quarter)),
  };
}

/**
 * Streams a replay to `out` at its reader's pace, native (docs/PROTOCOL.md, R1) or
 * legacy (L3): `batches` reads the log in batches of about `batchBytes`, `send` queues
 * one batch and returns how many messages it held, and after each batch the replay
 * waits while more than the high water waits for the client. Stops as soon as
 * `replaying()` is false (the connection closed). Returns the number of messages sent.
 */
export async function pacedReplay<B>(
  out: Paced,
  maxOutboundBytes: number,
  batches: (batchBytes: number) => AsyncIterable<B>,
  replaying: () => boolean,
  send: (batch: B) => number,
): Promise<number> {
  const { highWater, batchBytes } = pacing(maxOutboundBytes);
  let count = 0;
  for await (const batch of batches(batchBytes)) {
    if (!replaying()) break;
    count += send(batch);
    if (out.pendingBytes > highWater) await out.whenBelow(highWater);
    if (!replaying()) break;
  }
  return count;
}
