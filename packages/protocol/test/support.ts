import { type Frame, FrameDecoder, type FrameEncoder, FrameKind, GossipError } from '@gossip/protocol';

/** Writes any decoded frame back through the encoder method of its kind. */
export function encodeFrame(e: FrameEncoder, f: Frame): void {
  switch (f.kind) {
    case FrameKind.Hello:
      e.hello({
        version: f.version,
        since: f.since,
        epoch: f.epoch,
        echo: f.echo,
        name: f.name,
        token: f.token,
        prefixes: f.prefixes,
      });
      return;
    case FrameKind.Welcome:
      e.welcome(f);
      return;
    case FrameKind.Publish:
      e.publish(f.reqId, f.id, f.ts, f.data);
      return;
    case FrameKind.Emit:
      e.emit(f.reqId, f.id, f.ts, f.data);
      return;
    case FrameKind.Ack:
      e.ack(f.reqId, f.status, f.durability, f.code ?? undefined, f.message);
      return;
    case FrameKind.Message:
      e.message(f.flags, f.id, f.ts, f.data);
      return;
    case FrameKind.ReplayDone:
      e.replayDone(f.count, f.newestTs, f.snapshot);
      return;
    case FrameKind.Resync:
      e.resync(f.reason, f.horizon);
      return;
    case FrameKind.Fetch:
      e.fetch(f.reqId, f.ids);
      return;
    case FrameKind.FetchResult:
      e.fetchResult(f.reqId, f.more, f.entries);
      return;
    case FrameKind.Error:
      e.error(f.code, f.message);
      return;
    case FrameKind.Ping:
      e.ping(f.nonce);
      return;
    case FrameKind.Pong:
      e.pong(f.nonce, f.newestTs);
      return;
    case FrameKind.Subscribe:
      e.subscribe(f.reqId, f.prefix, f.since, f.epoch);
      return;
    case FrameKind.Unsubscribe:
      e.unsubscribe(f.reqId, f.prefix);
      return;
    case FrameKind.PrefixDone:
      e.prefixDone(f.prefix, f.count, f.newestTs, f.snapshot);
      return;
    case FrameKind.PrefixResync:
      e.prefixResync(f.prefix, f.reason, f.horizon);
      return;
  }
}

/**
 * A frame with every byte field (Buffer or Uint8Array, view or copy) turned into its
 * hex, so frames compare by the bytes they carry and not by how those bytes are held.
 */
export function comparable(value: unknown): unknown {
  if (value instanceof Uint8Array)
    return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (Array.isArray(value)) return value.map(comparable);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = comparable(v);
    return out;
  }
  return value;
}

/** Feeds `chunks` to a fresh decoder and returns the frames it produced, checking the stream ended on a boundary. */
export function decodeChunks(chunks: readonly Buffer[], maxFrameBytes?: number): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), maxFrameBytes === undefined ? {} : { maxFrameBytes });
  for (const chunk of chunks) decoder.push(chunk);
  decoder.end();
  return frames;
}

/** Runs `fn` and returns the GossipError it throws; fails if it returns or throws anything else. */
export function gossipErrorOf(fn: () => unknown): GossipError {
  try {
    fn();
  } catch (error) {
    if (error instanceof GossipError) return error;
    throw new Error(`expected a GossipError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a GossipError, nothing was thrown');
}

/** Splits `bytes` at the given offsets (any order, repeats give empty chunks). */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...cuts].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const cut of sorted) {
    chunks.push(bytes.subarray(prev, cut));
    prev = cut;
  }
  chunks.push(bytes.subarray(prev));
  return chunks;
}

/** One chunk per byte. */
export function bytewise(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
  return chunks;
}
