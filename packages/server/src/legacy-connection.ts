import type { Socket } from 'node:net';
import {
  type ErrorCode,
  FrameKind,
  GossipError,
  LegacyDecoder,
  LegacyEncoder,
  type LegacyFrame,
  LegacyKind,
  type LegacyMessage,
  MessageFlags,
  parseFrame,
  unwrapLegacyPayload,
} from '@gossip/protocol';
import type { ServerContext } from './context.js';
import { REFUSALS, refusal } from './handlers/check.js';
import { endWithGrace, pacedReplay } from './pacing.js';
import { PROTOCOL_ERRORS } from './stats.js';

/** handshake → replay (in the legacy live set; live messages held) → live → closed. */
type LegacyState = 'handshake' | 'replay' | 'live' | 'closed';

/** The original protocol has no keep-alive; TCP's finds peers that vanished. */
const KEEPALIVE_MS = 60_000;
const MAX_PAYLOAD_BYTES = 2 ** 32 - 1;

/**
 * A connection speaking the original gossip protocol (docs/PROTOCOL.md, "Legacy
 * protocol", L1 to L6), so clients of the original Go server work unchanged. It shares
 * everything else with native connections: the store, the broadcast, the limits, the
 * outbound cap and the counters. Its state changes only through `#setState`.
 */
export class LegacyConnection {
  readonly id: number;
  readonly socket: Socket;
  readonly ctx: ServerContext;
  /** The original protocol cannot ask to skip its own messages, and its server sent them. */
  readonly echo = true;
  #state: LegacyState = 'handshake';
  readonly #decoder: LegacyDecoder;
  /** This connection's own bytes: the handshake answer, the replay, `D`. */
  readonly #enc = new LegacyEncoder();
  /** Live bytes held while the replay runs. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;

  /**
   * Takes over `socket` from the native connection `id` that read `first`, its first
   * chunk; the handshake is due by that connection's hello deadline (`performance.now()`).
   */
  constructor(ctx: ServerContext, socket: Socket, id: number, first: Buffer, helloDeadline: number) {
    this.ctx = ctx;
    this.socket = socket;
    this.id = id;
    this.#decoder = new LegacyDecoder((frame) => this.#onFrame(frame), {
      from: 'client',
      maxPayloadBytes: Math.min(ctx.maxFrameBytes, MAX_PAYLOAD_BYTES),
    });
    ctx.stats.legacyConnections++;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => ctx.log.debug({ conn: this.id, err: error }, 'socket error'));
    socket.on('end', () => this.#onEnd());
    socket.on('close', () => this.#onClose());
    // A legacy subscriber that only listens sends nothing, ever: no idle timeout (L5).
    socket.setTimeout(0);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    // The time since the socket was accepted counts: --hello-timeout bounds the whole handshake (L1).
    this.#handshakeTimer = setTimeout(
      () => this.fatal('GOSSIP_ERR_HELLO_TIMEOUT', `no complete handshake within ${ctx.options.helloTimeoutMs} ms`),
      Math.max(0, helloDeadline - performance.now()),
    );
    this.#handshakeTimer.unref();
    this.#onData(first);
  }

  /** Bytes waiting for this client: in the socket and held during the replay. */
  get pendingBytes(): number {
    return this.socket.writableLength + this.#heldBytes;
  }

  /** A tick's broadcast in legacy form (`legacyBroadcast`); held while the replay runs. */
  deliver(bytes: Buffer, count: number): void {
    if (this.#state === 'replay') {
      this.#held.push(bytes);
      this.#heldBytes += bytes.length;
    } else if (this.#state === 'live') {
      this.#write(bytes);
    } else {
      return;
    }
    this.ctx.stats.messagesOut += count;
    if (this.pendingBytes > this.ctx.options.maxOutboundBytes) this.#slowConsumer();
  }

  /**
   * Writes one line of text naming the problem and closes, as the original server does
   * with bad input (L6): there is no error frame in this protocol.
   */
  fatal(code: ErrorCode, message: string): void {
    if (this.#state === 'closed') return;
    if (PROTOCOL_ERRORS.has(code)) this.ctx.stats.protocolErrors++;
    else if (REFUSALS.has(code)) this.ctx.stats.refused++;
    this.ctx.log.debug({ conn: this.id, code, message, legacy: true }, 'closing connection');
    this.#held = [];
    this.#heldBytes = 0;
    this.#setState('closed');
    const socket = this.socket;
    if (!socket.destroyed) {
      endWithGrace(socket, `error: ${code}: ${message.replace(/[\r\n]+/g, ' ')}\n`);
    }
  }

  #setState(next: LegacyState): void {
    const prev = this.#state;
    if (prev === next || prev === 'closed') return;
    this.#state = next;
    if (prev === 'handshake') clearTimeout(this.#handshakeTimer);
    this.ctx.legacyStateChanged(this, next === 'replay' || next === 'live');
  }

  #write(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.socket.write(bytes);
    this.ctx.stats.bytesOut += bytes.length;
  }

  #slowConsumer(): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.slowConsumers++;
    this.ctx.log.warn(
      { conn: this.id, legacy: true, pendingBytes: this.pendingBytes },
      'slow consumer disconnected: raise --max-outbound or read faster',
    );
    this.fatal('GOSSIP_ERR_SLOW_CONSUMER', `more than ${this.ctx.options.maxOutboundBytes} bytes waiting: read faster`);
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.bytesIn += chunk.length;
    try {
      this.#decoder.push(chunk);
    } catch (error) {
      if (error instanceof GossipError) {
        this.fatal(error.code, error.message);
      } else {
        this.ctx.log.error({ conn: this.id, err: error }, 'internal error handling a legacy frame');
        this.fatal('GOSSIP_ERR_INTERNAL', 'internal server error');
      }
    }
  }

  #onFrame(frame: LegacyFrame): void {
    if (this.#state === 'closed') return;
    switch (frame.kind) {
      case LegacyKind.Hello:
        this.#onHello(frame.since);
        return;
      case LegacyKind.Persisted:
        this.#onPublish(frame);
        return;
      case LegacyKind.Transient:
        this.#onEmit(frame);
        return;
      default:
        // The client-side decoder hands out nothing else.
        this.fatal('GOSSIP_ERR_UNEXPECTED_FRAME', 'unexpected legacy frame');
    }
  }

  /** The handshake: refused when legacy is off, or when tokens are set without --legacy-with-tokens (L1, L6). */
  #onHello(since: bigint): void {
    const { ctx } = this;
    if (!ctx.options.legacy) {
      this.fatal(
        'GOSSIP_ERR_UNSUPPORTED_VERSION',
        'this server does not serve the original gossip protocol (--legacy off): use a native client',
      );
      return;
    }
    if (ctx.tokens.enabled && !ctx.options.legacyWithTokens) {
      ctx.stats.authFailures++;
      ctx.log.warn({ conn: this.id, remote: this.socket.remoteAddress, legacy: true }, 'auth failed');
      this.fatal(
        'GOSSIP_ERR_UNAUTHORIZED',
        'this server needs a token and the original gossip protocol cannot carry one: ' +
          'use a native client, or start gossipd with --legacy-with-tokens',
      );
      return;
    }
    const store = ctx.store;
    if (store.horizon !== null && since <= store.horizon) {
      // A native client would get a resync and a snapshot (R3); this one cannot be told (L5).
      ctx.log.debug(
        { conn: this.id, since: String(since), horizon: String(store.horizon) },
        'legacy replay from before the tombstone horizon: the client may miss deletes',
      );
    }
    this.#write(this.#enc.welcome().take());
    // Join the live stream first, so nothing accepted from here on can be missed.
    this.#setState('replay');
    void this.#replay(since);
  }

  /** Streams the replay at the reader's pace, then `D`, then the live bytes held meanwhile (L3). */
  async #replay(since: bigint): Promise<void> {
    const { ctx, socket } = this;
    try {
      ctx.stats.replays++;
      const count = await pacedReplay(
        socket,
        ctx.options.maxOutboundBytes,
        (batchBytes) => ctx.store.replayBatches(since, { batchBytes }),
        () => this.#state === 'replay',
        (batch) => {
          for (const m of batch) this.#enc.message(LegacyKind.Persisted, m.id, m.ts, m.data);
          this.#write(this.#enc.take());
          return batch.length;
        },
      );
      if (this.#state !== 'replay') return;
      ctx.stats.replayedMessages += count;
      const held = this.#held;
      this.#held = [];
      this.#heldBytes = 0;
      this.#setState('live');
      socket.cork();
      this.#write(this.#enc.replayDone().take());
      for (const b of held) this.#write(b);
      socket.uncork();
      if (socket.writableLength > ctx.options.maxOutboundBytes) this.#slowConsumer();
    } catch (error) {
      ctx.log.error({ conn: this.id, err: error }, 'legacy replay failed');
      this.fatal(error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL', 'replay failed');
    }
  }

  /** `M`: a publish, stored if newer; a stale one is ignored, as there are no acks (L2, L6). */
  #onPublish(f: LegacyMessage): void {
    const { ctx } = this;
    ctx.stats.messagesIn++;
    ctx.stats.publishes++;
    const data = this.#dataOf(f);
    if (data === undefined) return;
    ctx.store.append(f.id, f.ts, data).then(
      (result) => {
        if (result.status === 'accepted') ctx.broadcast(this, false, f.id, f.ts, data);
        else ctx.stats.publishesStale++;
      },
      (error: unknown) => {
        ctx.stats.publishesFailed++;
        this.fatal(
          error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL',
          `the publish could not be stored: ${error instanceof Error ? error.message : String(error)}`,
        );
      },
    );
  }

  /** `S`: an emit, broadcast as transient and never stored (L2). */
  #onEmit(f: LegacyMessage): void {
    const { ctx } = this;
    ctx.stats.messagesIn++;
    ctx.stats.emits++;
    const data = this.#dataOf(f);
    if (data !== undefined) ctx.broadcast(this, true, f.id, f.ts, data);
  }

  /**
   * The data of a publish or emit without its tag (L4), within the limits a native
   * publish meets (`refusal`: by then the decoder has checked the id and unwrapping the
   * data's size, so only the skew is left to fail). A refusal closes the connection:
   * there is no ack to carry it.
   */
  #dataOf(f: LegacyMessage): Buffer | undefined {
    const { ctx } = this;
    let data: Buffer;
    try {
      data = unwrapLegacyPayload(f.payload, ctx.store.maxDataBytes);
    } catch (error) {
      const e = error instanceof GossipError ? error : new GossipError('GOSSIP_ERR_MALFORMED_FRAME', String(error));
      this.fatal(e.code, e.message);
      return undefined;
    }
    const refused = refusal(ctx, f.id, f.ts, data);
    if (refused) {
      this.fatal(...refused);
      return undefined;
    }
    return data;
  }

  /** The client finished sending: a frame it left half-sent is malformed. */
  #onEnd(): void {
    if (this.#state === 'closed') return;
    try {
      this.#decoder.end();
    } catch (error) {
      if (error instanceof GossipError) this.fatal(error.code, error.message);
    }
  }

  #onClose(): void {
    this.#held = [];
    this.#heldBytes = 0;
    clearTimeout(this.#handshakeTimer);
    this.#setState('closed');
    this.ctx.stats.legacyConnections--;
    this.ctx.legacyClosed(this);
  }
}

/**
 * The legacy form of one tick's broadcast (L2, L4): the native message frames in
 * `bytes`, which end at the offsets `ends`, re-encoded once for every legacy connection
 * into the server's `broadcastEncoder`. Returns bytes the encoder never writes again.
 */
export function legacyBroadcast(broadcastEncoder: LegacyEncoder, bytes: Buffer, ends: readonly number[]): Buffer {
  let start = 0;
  for (const end of ends) {
    const m = parseFrame(bytes, start + 4, end);
    if (m.kind === FrameKind.Message) {
      const kind = m.flags & MessageFlags.Transient ? LegacyKind.Transient : LegacyKind.Persisted;
      broadcastEncoder.message(kind, m.id, m.ts, m.data);
    }
    start = end;
  }
  return broadcastEncoder.take();
}
