import type { Socket } from 'node:net';

/** Past this many bytes in the socket's buffer, a replay waits for `drain`. */
const REPLAY_HIGH_WATER = 4 * 1024 * 1024;
/** Record bytes a replay reads per batch. */
const REPLAY_BATCH_BYTES = 1024 * 1024;
/** How long a closing connection may take to flush its last bytes. */
const CLOSE_GRACE_MS = 2_000;

/**
 * How a replay paces itself for a connection: both limits shrink to a quarter of the
 * outbound cap, so a replay to a client that keeps reading never trips the cap (high
 * water plus one batch stays under half of it).
 */
function replayPacing(maxOutboundBytes: number): { highWater: number; batchBytes: number } {
  const quarter = Math.floor(maxOutboundBytes / 4);
  return {
    highWater: Math.min(REPLAY_HIGH_WATER, quarter),
    batchBytes: Math.max(1, Math.min(REPLAY_BATCH_BYTES, quarter)),
  };
}

/**
 * Streams a replay to `socket` at its reader's pace, native (docs/PROTOCOL.md, R1) or
 * legacy (L3): `batches` reads the log in batches of about `batchBytes`, `send` writes
 * one batch and returns how many messages it held, and after each batch the replay
 * waits for `drain` while the socket holds more than the high water. Stops as soon as
 * `replaying()` is false (the connection closed). Returns the number of messages sent.
 */
export async function pacedReplay<B>(
  socket: Socket,
  maxOutboundBytes: number,
  batches: (batchBytes: number) => AsyncIterable<B>,
  replaying: () => boolean,
  send: (batch: B) => number,
): Promise<number> {
  const { highWater, batchBytes } = replayPacing(maxOutboundBytes);
  let count = 0;
  for await (const batch of batches(batchBytes)) {
    if (!replaying()) break;
    count += send(batch);
    while (replaying() && socket.writableLength > highWater) await drained(socket);
  }
  return count;
}

/** Resolves once the socket's buffer drains or the socket closes. */
function drained(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Ends the socket after its last bytes; a peer that does not read must not keep it (and its buffer) forever. */
export function endWithGrace(socket: Socket, last?: string): void {
  if (last === undefined) socket.end();
  else socket.end(last);
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}
