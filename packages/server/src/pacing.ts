import type { Socket } from 'node:net';
import type { ErrorCode } from '@gossip/protocol';

/** Past this many bytes in the socket's buffer, a replay waits for `drain`. */
const REPLAY_HIGH_WATER = 4 * 1024 * 1024;
/** Record bytes a replay reads per batch. */
const REPLAY_BATCH_BYTES = 1024 * 1024;
/** How long a closing connection may take to flush its last bytes. */
const CLOSE_GRACE_MS = 2_000;

/** Fatal errors caused by what a client sent, native or legacy: counted as protocol errors. */
export const PROTOCOL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'GOSSIP_ERR_FRAME_TOO_LARGE',
  'GOSSIP_ERR_MALFORMED_FRAME',
  'GOSSIP_ERR_UNKNOWN_FRAME',
  'GOSSIP_ERR_BAD_MAGIC',
  'GOSSIP_ERR_UNSUPPORTED_VERSION',
  'GOSSIP_ERR_UNEXPECTED_FRAME',
  'GOSSIP_ERR_ID_NOT_UTF8',
]);

/**
 * How a replay paces itself for a connection: both limits shrink to a quarter of the
 * outbound cap, so a replay to a client that keeps reading never trips the cap (high
 * water plus one batch stays under half of it).
 */
export function replayPacing(maxOutboundBytes: number): { highWater: number; batchBytes: number } {
  const quarter = Math.floor(maxOutboundBytes / 4);
  return {
    highWater: Math.min(REPLAY_HIGH_WATER, quarter),
    batchBytes: Math.max(1, Math.min(REPLAY_BATCH_BYTES, quarter)),
  };
}

/** Resolves once the socket's buffer drains or the socket closes. */
export function drained(socket: Socket): Promise<void> {
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
