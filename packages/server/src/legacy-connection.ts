import type { Socket } from 'node:net';
import {
  type ErrorCode,
  GossipError,
  inflateLegacyPayload,
  LegacyDecoder,
  LegacyEncoder,
  type LegacyFrame,
  LegacyKind,
  type LegacyMessage,
  LegacyTag,
  unwrapLegacyPayload,
} from '@gossip/protocol';
import type { Publisher, ServerContext } from './context.js';
import { type Ending, reasonOf, refused, socketErrorReason } from './events.js';
import { REFUSALS, refusal } from './handlers/check.js';
import type { Limiter } from './limiter.js';
import { Outbound } from './outbound.js';
import { pacedReplay } from './pacing.js';
import { InflightBytes, publishCost, publishWindow, ReadGate } from './read-gate.js';
import type { PublishOutcome } from './record-log.js';
import { PROTOCOL_ERRORS } from './stats.js';

/** What a legacy connection needs of its server beyond what native handlers see. */
export interface LegacyHost extends ServerContext {
  /**
   * Inflates of legacy `z` payloads, one at a time for the whole server: they run on
   * libuv's threadpool, which the store's file I/O needs too.
   */
  readonly inflates: Limiter;
  /**
   * Resolves once every live connection has at most half the outbound cap waiting for
   * it, or after a second at most: what a legacy connection awaits after broadcasting a
   * payload that inflated to many times its size, so that few bytes in cannot push
   * readers that keep up off the server (docs/PROTOCOL.md, L4).
   */
  paceAmplified(): Promise<void>;
  /** Resolves after the server's next flush, which hands this turn's broadcast to the connections. */
  flushed(): Promise<void>;
  /** A legacy connection joins (replay, live) or leaves the legacy broadcast. */
  legacyStateChanged(conn: LegacyConnection, live: boolean): void;
  legacyClosed(conn: LegacyConnection): void;
}

/** handshake → replay (in the legacy live set; live messages held) → live → closed. */
type LegacyState = 'handshake' | 'replay' | 'live' | 'closed';

/** The original protocol has no keep-alive; TCP's finds peers that vanished. */
const KEEPALIVE_MS = 60_000;
const MAX_PAYLOAD_BYTES = 2 ** 32 - 1;
/** An inflated payload past this, and 16 times its compressed size, is paced by the subscribers. */
const AMPLIFIED_BYTES = 64 * 1024;

/**
 * A connection speaking the original gossip protocol (docs/PROTOCOL.md, "Legacy
 * protocol", L1 to L6), so clients of the original Go server work unchanged. It shares
 * everything else with native connections: the store, the broadcast, the limits, the
 * outbound cap and the counters. Its state changes only through `#setState`.
 */
export class LegacyConnection implements Publisher {
  readonly id: number;
  readonly socket: Socket;
  readonly ctx: LegacyHost;
  /** The original protocol cannot ask to skip its own messages, and its server sent them. */
  readonly echo = true;
  #state: LegacyState = 'handshake';
  readonly #decoder: LegacyDecoder;
  /** Everything waiting for the client, in order. */
  readonly out: Outbound;
  /** Why the socket is not read right now (an inflate, publishes on their way to the log, shutdown). */
  readonly reading: ReadGate;
  /** Bytes of this connection's publishes not yet settled by the store. */
  readonly #publishing: InflightBytes;
  /**
   * Frames that arrived while a `z` payload was being inflated, handled in their order
   * once it is done. The socket is not read meanwhile, so this holds at most what one
   * chunk carried.
   */
  #waiting: LegacyMessage[] = [];
  #inflating = false;
  /** A bad frame after frames still waiting: it closes the connection once they are applied. */
  #failAfter: [ErrorCode, string] | undefined;
  /** Closed by the server (`fatal`): frames still waiting are not applied. */
  #dropped = false;
  /** Live bytes held while the replay runs. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;

  /** The peer's address and port, and when it was accepted: the native connection's, which read them. */
  readonly remote: string;
  readonly openedAt: number;
  /** Why it ended, for the metrics and the log (events.ts); the first reason given wins. */
  endReason: string | undefined;
  /** The original protocol's handshake names no client. */
  readonly client = undefined;
  /** Its handshake was accepted ('client connected' was logged). */
  welcomed = false;

  /**
   * Takes over `socket` from the native connection `id` that read `first`, its first
   * chunk; the handshake is due by that connection's hello deadline (`performance.now()`).
   */
  constructor(
    ctx: LegacyHost,
    socket: Socket,
    from: Pick<Ending, 'id' | 'remote' | 'openedAt'>,
    first: Buffer,
    helloDeadline: number,
  ) {
    this.ctx = ctx;
    this.socket = socket;
    this.id = from.id;
    this.remote = from.remote;
    this.openedAt = from.openedAt;
    this.out = new Outbound(socket, (bytes) => {
      ctx.stats.bytesOut += bytes;
    });
    this.reading = new ReadGate(socket);
    this.#publishing = new InflightBytes(this.reading, 'publishes', publishWindow(ctx.maxFrameBytes));
    this.#decoder = new LegacyDecoder((frame) => this.#onFrame(frame), {
      from: 'client',
      maxPayloadBytes: Math.min(ctx.maxFrameBytes, MAX_PAYLOAD_BYTES),
    });
    ctx.stats.legacyConnections++;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => {
      this.endReason ??= socketErrorReason(error);
      ctx.log.debug({ conn: this.id, err: error }, 'socket error');
    });
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

  /** Bytes waiting for this client: in the socket, queued and held during the replay. */
  get pendingBytes(): number {
    return this.out.pendingBytes + this.#heldBytes;
  }

  /** A tick's messages in legacy form (tick.ts `Tick.legacy`); held while the replay runs. */
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
  fatal(code: ErrorCode, message: string, discard = false): void {
    if (this.#state === 'closed') return;
    this.endReason ??= reasonOf(code);
    if (PROTOCOL_ERRORS.has(code)) this.ctx.stats.protocolErrors++;
    else if (REFUSALS.has(code)) refused(this.ctx, this, code, message, true);
    this.ctx.log.debug({ conn: this.id, code, message, legacy: true }, 'closing connection');
    this.#held = [];
    this.#heldBytes = 0;
    this.#waiting = [];
    this.#dropped = true;
    if (discard) this.out.discard();
    this.#setState('closed');
    this.out.end(Buffer.from(`error: ${code}: ${message.replace(/[\r\n]+/g, ' ')}\n`));
  }

  #setState(next: LegacyState): void {
    const prev = this.#state;
    if (prev === next || prev === 'closed') return;
    this.#state = next;
    if (prev === 'handshake') clearTimeout(this.#handshakeTimer);
    if (next === 'closed') this.reading.close();
    this.ctx.legacyStateChanged(this, next === 'replay' || next === 'live');
  }

  #write(bytes: Buffer): void {
    this.out.push(bytes);
    this.out.pump();
  }

  #slowConsumer(): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.slowConsumers++;
    this.ctx.log.warn(
      { conn: this.id, legacy: true, pendingBytes: this.pendingBytes },
      'slow consumer disconnected: raise --max-outbound or read faster',
    );
    this.fatal(
      'GOSSIP_ERR_SLOW_CONSUMER',
      `more than ${this.ctx.options.maxOutboundBytes} bytes waiting: read faster`,
      true,
    );
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.bytesIn += chunk.length;
    try {
      this.#decoder.push(chunk);
    } catch (error) {
      if (error instanceof GossipError) {
        this.#fail(error.code, error.message);
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
      case LegacyKind.Transient:
        this.#onMessage(frame);
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
      ctx.authFailuresLog.write('warn', () => ({ conn: this.id, remote: this.remote, legacy: true }), 'auth failed');
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
    this.welcomed = true;
    ctx.log.info({ conn: this.id, remote: this.remote, legacy: true, since: String(since) }, 'client connected');
    this.#write(new LegacyEncoder({ slabBytes: 16 }).welcome().take());
    // Join the live stream first, so nothing accepted from here on can be missed.
    this.#setState('replay');
    void this.#replay(since);
  }

  /** Streams the replay at the reader's pace, then `D`, then the live bytes held meanwhile (L3). */
  async #replay(since: bigint): Promise<void> {
    const { ctx } = this;
    // The replay's own encoder: its slab grows to a batch and goes with the replay.
    const enc = new LegacyEncoder();
    try {
      ctx.stats.replays++;
      const startedAt = performance.now();
      const count = await pacedReplay(
        this.out,
        ctx.options.maxOutboundBytes,
        (batchBytes) => ctx.store.replayBatches(since, { batchBytes }),
        () => this.#state === 'replay',
        (batch) => {
          for (const m of batch) enc.message(LegacyKind.Persisted, m.id, m.ts, m.data);
          this.#write(enc.take());
          return batch.length;
        },
      );
      if (this.#state !== 'replay') return;
      ctx.stats.replayedMessages += count;
      ctx.stats.replaySeconds.observe((performance.now() - startedAt) / 1000);
      const held = this.#held;
      this.#held = [];
      this.#heldBytes = 0;
      this.#setState('live');
      this.out.push(enc.replayDone().take());
      for (const b of held) this.out.push(b);
      this.out.pump();
      if (this.pendingBytes > ctx.options.maxOutboundBytes) this.#slowConsumer();
    } catch (error) {
      ctx.log.error({ conn: this.id, err: error }, 'legacy replay failed');
      this.fatal(error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL', 'replay failed');
    }
  }

  /**
   * Bad input from the decoder: the connection closes once the frames that came before
   * it (waiting behind an inflate) are applied, as they would have been without one.
   */
  #fail(code: ErrorCode, message: string): void {
    if (this.#inflating || this.#waiting.length > 0) this.#failAfter ??= [code, message];
    else this.fatal(code, message);
  }

  /**
   * `M` or `S`, in the order they came. A `z` payload is inflated off the event loop,
   * one at a time for the whole server (`ctx.inflates`), and the socket is not read
   * until it is stored: so a few small frames cannot make the server inflate, hold or
   * send much more than one `--max-data` for this connection at once, nor stall others (L4).
   */
  #onMessage(f: LegacyMessage): void {
    if (this.#inflating || this.#waiting.length > 0) {
      this.#waiting.push(f);
      return;
    }
    this.#handle(f);
  }

  #handle(f: LegacyMessage): void {
    if (f.payload[0] === LegacyTag.Zlib) {
      void this.#inflate(f);
      return;
    }
    let data: Buffer;
    try {
      data = unwrapLegacyPayload(f.payload, this.ctx.store.maxDataBytes);
    } catch (error) {
      this.#refuse(error);
      return;
    }
    void this.#apply(f, data);
  }

  async #inflate(f: LegacyMessage): Promise<void> {
    this.#inflating = true;
    this.reading.hold('inflate');
    try {
      const max = this.ctx.store.maxDataBytes;
      // A peer that hung up after sending still has its frames applied, as a native one's are.
      const data = await this.ctx.inflates.run(() =>
        this.#dropped ? Promise.resolve(undefined) : inflateLegacyPayload(f.payload, max),
      );
      if (data !== undefined && !this.#dropped) {
        await this.#apply(f, data);
        // Many bytes from few: released at the pace of the live subscribers (server.ts).
        if (data.length > AMPLIFIED_BYTES && data.length > 16 * f.payload.length) await this.ctx.paceAmplified();
      }
    } catch (error) {
      this.#refuse(error);
    } finally {
      this.#inflating = false;
    }
    // The frames that waited, in their order, up to the next `z`.
    while (!this.#inflating && this.#waiting.length > 0 && !this.#dropped) {
      this.#handle(this.#waiting.shift() as LegacyMessage);
    }
    if (this.#inflating) return;
    if (this.#failAfter && !this.#dropped) this.fatal(...this.#failAfter);
    this.reading.release('inflate');
  }

  /**
   * A publish (`M`: stored if newer; a stale one is ignored, as there are no acks) or an
   * emit (`S`: broadcast as transient, never stored), within the limits a native publish
   * meets (`refusal`: by then the decoder has checked the id and unwrapping the data's
   * size, so only the skew is left to fail). A refusal closes the connection: there is no
   * ack to carry it (L2, L6). Resolves once a publish is stored and broadcast.
   */
  async #apply(f: LegacyMessage, data: Buffer): Promise<void> {
    const { ctx } = this;
    ctx.stats.messagesIn++;
    const persisted = f.kind === LegacyKind.Persisted;
    if (persisted) ctx.stats.publishes++;
    else ctx.stats.emits++;
    const refused = refusal(ctx, f.id, f.ts, data);
    if (refused) {
      this.fatal(...refused);
      return;
    }
    if (!persisted) {
      ctx.broadcast(this, true, f.id, f.ts, data);
      return;
    }
    const cost = publishCost(f.id.length, data.byteLength);
    this.#publishing.add(cost);
    const stored = ctx.append(f.id, f.ts, data);
    // The tick broadcasts it if accepted, in the store's order with native publishes.
    ctx.stored(this, { reqId: 0, id: f.id, ts: f.ts, data }, stored);
    let result: PublishOutcome;
    try {
      result = await stored;
    } catch (error) {
      ctx.stats.publishesFailed++;
      this.fatal(
        error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL',
        `the publish could not be stored: ${error instanceof Error ? error.message : String(error)}`,
      );
      return;
    } finally {
      this.#publishing.done(cost);
    }
    if (result.status !== 'accepted') {
      ctx.stats.publishesStale++;
      return;
    }
    // Broadcast by the next flush: the frames that wait behind this one follow it there (L4).
    await ctx.flushed();
  }

  /**
   * The original protocol has no acks (L5): nothing to send when the tick settles a
   * publish. `#apply` awaits the same promise, counts it and closes on a failed write.
   */
  settled(): void {}

  /** A payload that cannot be unwrapped: its code from the protocol, or malformed. */
  #refuse(error: unknown): void {
    const e = error instanceof GossipError ? error : new GossipError('GOSSIP_ERR_MALFORMED_FRAME', String(error));
    this.fatal(e.code, e.message);
  }

  /** The client finished sending: a frame it left half-sent is malformed. */
  #onEnd(): void {
    if (this.#state === 'closed') return;
    try {
      this.#decoder.end();
    } catch (error) {
      if (error instanceof GossipError) this.#fail(error.code, error.message);
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
