import type { Socket } from 'node:net';
import {
  type AckStatus,
  type Durability,
  type ErrorCode,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  GossipError,
  type HelloFrame,
  hostPort,
  LEGACY_FIRST_BYTE,
  MAX_HELLO_FRAME_BYTES,
} from '@gossip/protocol';
import type { Publication, ServerContext } from './context.js';
import { loggedName, reasonOf, socketErrorReason } from './events.js';
import { onEmit } from './handlers/emit.js';
import { FetchQueue, onFetch } from './handlers/fetch.js';
import { onHello } from './handlers/hello.js';
import { onPing } from './handlers/ping.js';
import { onPublish, settlePublish } from './handlers/publish.js';
import { onSubscribe, onUnsubscribe } from './handlers/subscribe.js';
import { HeldMessages } from './held.js';
import { Outbound } from './outbound.js';
import { InflightBytes, publishWindow, ReadGate, type ReadHold } from './read-gate.js';
import type { PublishOutcome } from './record-log.js';
import type { Session } from './session.js';
import { PROTOCOL_ERRORS } from './stats.js';
import { type Subscription, type SubscriptionHost, Subscriptions } from './subscriptions.js';
import type { TickMessages } from './tick.js';

export { resyncReason } from './subscriptions.js';

/**
 * One connection's life, changed only through `setState`:
 * hello (waiting for the client's hello) → replay (in the live set, replaying the
 * hello's since; live messages held) → live → closed. A connection that names prefixes
 * (docs/PROTOCOL.md, B1) goes from hello to live: each prefix replays and holds its own
 * live messages (subscriptions.ts).
 */
export type ConnectionState = 'hello' | 'replay' | 'live' | 'closed';

/** What a native connection needs of its server beyond what its handlers see. */
export interface ConnectionHost extends ServerContext {
  /** The connection has own frames for the tick's flush. */
  markDirty(conn: Connection): void;
  /** Replaying or live connections get the broadcast: all of it, unless `prefixes.scoped`. */
  stateChanged(conn: Connection, from: ConnectionState, to: ConnectionState): void;
  /** The connection's messages are matched prefix by prefix from now on: it no longer gets the whole broadcast. */
  scoped(conn: Connection): void;
  /** `sub` joins (true) or leaves the server's index of prefixes (B7). */
  matching(sub: Subscription, on: boolean): void;
  /** Hands the messages broadcast so far in this turn to the connections now, ahead of the turn's flush. */
  deliverTick(): void;
  closed(conn: Connection): void;
  /**
   * A connection whose first byte is the legacy `G`: the server hands its socket to a
   * `LegacyConnection`, whose handshake is due by the same `helloDeadline` (`performance.now()`).
   */
  adoptLegacy(conn: Connection, first: Buffer, helloDeadline: number): void;
}

export interface ConnectionOptions {
  /** The socket is a TLS socket still in its handshake: `secured()` is called when it is done. */
  tlsPending?: boolean;
}

export class Connection implements Session, SubscriptionHost {
  readonly id: number;
  readonly socket: Socket;
  readonly ctx: ConnectionHost;
  /** This connection's own frames (welcome, acks, pongs, replay, fetch results) are encoded here. */
  readonly enc = new FrameEncoder();
  /** Everything waiting for the client, in order: broadcasts, own frames, replay. */
  readonly out: Outbound;
  /** Why the socket is not read right now (a backlog of fetches, shutdown). */
  readonly reading: ReadGate;
  /** The fetches of this connection, run one at a time (handlers/fetch.ts). */
  readonly fetches: FetchQueue;
  /** Bytes of this connection's publishes not yet settled by the store (handlers/publish.ts). */
  readonly publishing: InflightBytes;
  /** The prefixes it holds and their replays (subscriptions.ts, B1 to B7). */
  readonly prefixes: Subscriptions;
  /** Whether the client gets its own publishes and emits back (hello option). */
  echo = true;
  name: string | undefined;
  client: string | undefined;
  #state: ConnectionState = 'hello';
  #tlsPending: boolean;
  readonly #decoder: FrameDecoder;
  /**
   * This tick's own frames encoded elsewhere (fetch results), in order with those in
   * `enc`: they go out at the tick's flush, behind its broadcasts, as `enc`'s do.
   */
  #own: Buffer[] = [];
  #ownBytes = 0;
  /** Live frames held while replays run, in order (R1, B5). */
  readonly #held = new HeldMessages();
  /**
   * The tick's messages this connection's prefixes matched (server.ts), in order, and
   * for each the prefixes that matched it while replaying; undefined once one that
   * matched it is done: it goes now (B5).
   */
  #matched: number[] = [];
  #matchedBy: (Subscription[] | undefined)[] = [];
  #helloTimer: NodeJS.Timeout | undefined;
  /** When the hello is due (`performance.now()`); a legacy connection taking over the socket inherits it (L1). */
  readonly #helloDeadline: number;
  // The socket's listeners, kept so that a legacy connection taking over the socket can remove them.
  readonly #onSocketError = (error: Error) => {
    this.endReason ??= socketErrorReason(error);
    this.ctx.log.debug({ conn: this.id, err: error }, 'socket error');
  };
  readonly #onSocketEnd = () => this.#onEnd();
  readonly #onSocketClose = () => this.#onClose();
  readonly #push = (bytes: Buffer) => this.out.push(bytes);
  readonly #onIdle = () =>
    this.fatal(
      'GOSSIP_ERR_IDLE_TIMEOUT',
      `nothing sent or received for ${this.ctx.options.idleTimeoutMs} ms: ping more often`,
    );

  /** The peer's address and port, for logs: read at the accept, while the socket has them. */
  readonly remote: string;
  /** When it was accepted (`performance.now()`). */
  readonly openedAt = performance.now();
  /** Why it ended, for the metrics and the log (events.ts); the first reason given wins. */
  endReason: string | undefined;
  /** Its hello was accepted ('client connected' was logged). */
  welcomed = false;

  /** `id` names the connection in logs; the server numbers them. */
  constructor(ctx: ConnectionHost, id: number, socket: Socket, options: ConnectionOptions = {}) {
    this.ctx = ctx;
    this.id = id;
    this.socket = socket;
    this.remote = hostPort({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 });
    this.#tlsPending = options.tlsPending ?? false;
    this.#helloDeadline = performance.now() + ctx.options.helloTimeoutMs;
    this.out = new Outbound(socket, (bytes) => {
      ctx.stats.bytesOut += bytes;
    });
    this.reading = new ReadGate(socket);
    this.fetches = new FetchQueue(this, ctx);
    this.publishing = new InflightBytes(this.reading, 'publishes', publishWindow(ctx.maxFrameBytes));
    this.prefixes = new Subscriptions(this);
    // Until its hello is accepted a connection can make the server hold no more than a hello (F3).
    this.#decoder = new FrameDecoder((frame) => this.#onFrame(frame), { maxFrameBytes: MAX_HELLO_FRAME_BYTES });
    socket.setNoDelay(true);
    socket.once('data', (chunk: Buffer) => this.#onFirstData(chunk));
    socket.on('error', this.#onSocketError);
    socket.on('end', this.#onSocketEnd);
    socket.on('close', this.#onSocketClose);
    if (ctx.options.idleTimeoutMs > 0) socket.setTimeout(ctx.options.idleTimeoutMs, this.#onIdle);
    this.#helloTimer = setTimeout(() => this.#helloTimeout(), ctx.options.helloTimeoutMs);
    this.#helloTimer.unref();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** The one place the state changes; the server tracks live-set membership from it. */
  setState(next: ConnectionState): void {
    const prev = this.#state;
    if (prev === next || prev === 'closed') return;
    this.#state = next;
    if (prev === 'hello') {
      clearTimeout(this.#helloTimer);
      // Welcomed: frames up to the server's maximum from now on.
      if (next !== 'closed') this.#decoder.maxFrameBytes = this.ctx.maxFrameBytes;
    }
    if (next === 'closed') {
      this.reading.close();
      this.prefixes.close();
    }
    this.ctx.stateChanged(this, prev, next);
  }

  /** The TLS handshake is done: from now on the client can read what it is sent. */
  secured(): void {
    this.#tlsPending = false;
  }

  /** Bytes waiting for this client: in the socket, queued, encoded and not yet queued, and held. */
  get pendingBytes(): number {
    return this.out.pendingBytes + this.enc.pendingBytes + this.#ownBytes + this.#held.bytes;
  }

  /** Marks this connection for the tick's flush of its own frames (written into `enc`). */
  touch(): void {
    this.ctx.markDirty(this);
  }

  /** An ack among this connection's own frames (docs/PROTOCOL.md, A1). */
  ack(reqId: number, status: AckStatus, durability: Durability, code?: ErrorCode, message?: string): void {
    this.enc.ack(reqId, status, durability, code, message);
    this.touch();
  }

  hold(reason: ReadHold): void {
    this.reading.hold(reason);
  }

  release(reason: ReadHold): void {
    this.reading.release(reason);
  }

  /** A publish of this connection the store settled, from the server's tick: its ack. */
  settled(f: Publication, result: PublishOutcome | undefined, error: unknown): void {
    settlePublish(this, this.ctx, f, result, error);
  }

  /**
   * Live frames from the broadcast, for a connection that holds only the "" of its
   * hello; held while its replay runs (R1).
   */
  deliver(frames: Buffer, count: number): void {
    if (this.#state === 'replay') {
      this.#held.hold(frames, undefined);
    } else if (this.#state === 'live') {
      this.out.push(frames);
      this.ctx.markDirty(this);
    } else {
      return;
    }
    this.ctx.stats.messagesOut += count;
    // A live connection is judged after the tick's write (in flush), by what the socket
    // could not take: a burst a fast reader absorbs is not a slow consumer.
    if (this.#state === 'replay' && this.pendingBytes > this.ctx.options.maxOutboundBytes) this.slowConsumer();
  }

  match(i: number, sub: Subscription): boolean {
    const n = this.#matched.length;
    if (n > 0 && this.#matched[n - 1] === i) {
      // Another of its prefixes matches the same message: it still goes once.
      const by = this.#matchedBy[n - 1];
      if (by !== undefined) {
        if (sub.done) this.#matchedBy[n - 1] = undefined;
        else by.push(sub);
      }
      return false;
    }
    this.#matched.push(i);
    this.#matchedBy.push(sub.done ? undefined : [sub]);
    return n === 0;
  }

  /**
   * The messages of the tick its prefixes matched (server.ts), each once: sent now when
   * one prefix that matched it is done, else held until one is (B5). Held ones are
   * copied, so that they do not keep the tick's whole buffer alive.
   */
  deliverMatched(messages: TickMessages): void {
    const matched = this.#matched;
    const by = this.#matchedBy;
    const n = matched.length;
    this.#matched = [];
    this.#matchedBy = [];
    if (this.#state !== 'live' && this.#state !== 'replay') return;
    this.ctx.stats.messagesOut += n;
    const { bytes, ends } = messages;
    let now = 0;
    for (let k = 0; k < n; k++) if (by[k] === undefined) now++;
    if (now === messages.count) {
      // Everything, as the broadcast is: the same bytes.
      this.out.push(bytes);
      this.ctx.markDirty(this);
      return;
    }
    const parts: Buffer[] = [];
    // Runs of neighbours go as one piece: [from, to) to send, [heldFrom, heldTo) to hold for `heldBy`.
    let from = 0;
    let to = 0;
    let heldFrom = 0;
    let heldTo = 0;
    let heldBy: Subscription[] | undefined;
    for (let k = 0; k < n; k++) {
      const i = matched[k] as number;
      const start = i === 0 ? 0 : (ends[i - 1] as number);
      const end = ends[i] as number;
      const b = by[k];
      if (b === undefined) {
        if (start !== to) {
          if (to > from) parts.push(bytes.subarray(from, to));
          from = start;
        }
        to = end;
      } else if (heldBy !== undefined && start === heldTo && sameSubscriptions(heldBy, b)) {
        heldTo = end;
      } else {
        if (heldBy !== undefined) this.#held.hold(Buffer.from(bytes.subarray(heldFrom, heldTo)), heldBy);
        heldFrom = start;
        heldTo = end;
        heldBy = b;
      }
    }
    if (to > from) parts.push(bytes.subarray(from, to));
    if (heldBy !== undefined) this.#held.hold(Buffer.from(bytes.subarray(heldFrom, heldTo)), heldBy);
    if (parts.length > 0) {
      this.out.push(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      this.ctx.markDirty(this);
    }
    // What is sent is judged after the tick's write (flush); what is held, now.
    if (now < n && this.pendingBytes > this.ctx.options.maxOutboundBytes) this.slowConsumer();
  }

  deliverTick(): void {
    this.ctx.deliverTick();
  }

  /** Replayed frames, behind the own frames encoded so far (the welcome, a resync), handed to the socket. */
  sendReplayed(chunks: readonly Buffer[]): void {
    this.ctx.deliverTick();
    this.#takeOwn();
    for (const c of chunks) this.out.push(c);
    this.flush();
  }

  /**
   * A prefix's replay ended, its done frame encoded (R2, B5): the live messages it held
   * back follow it, in order. For a connection that holds only the "" of its hello, that
   * is every held message, and the connection is live.
   */
  replayEnded(sub: Subscription): void {
    if (this.#state === 'closed') return;
    this.#takeOwn();
    if (!this.prefixes.scoped) {
      this.#held.takeAll(this.#push);
      if (this.#state === 'replay') this.setState('live');
    } else {
      this.#held.release(sub, this.#push);
    }
    this.flush();
  }

  /**
   * From now on this connection's messages are matched prefix by prefix (its first
   * subscribe or unsubscribe after a hello that named no prefixes): what it holds for
   * the replay of its "" is held by that prefix, and it is live (B1, B5).
   */
  scope(): void {
    this.ctx.scoped(this);
    let implicit: Subscription | undefined;
    for (const sub of this.prefixes.values()) if (!sub.named && !sub.done) implicit = sub;
    // Messages are held only while that replay runs.
    if (implicit) this.#held.adopt(implicit);
    else this.#held.clear();
    if (this.#state === 'replay') this.setState('live');
  }

  matching(sub: Subscription, on: boolean): void {
    this.ctx.matching(sub, on);
  }

  /**
   * `sub` was dropped (B4): held messages that only it matched go; those another prefix
   * still replaying matched wait for that one.
   */
  dropped(sub: Subscription): void {
    this.#held.drop(sub);
  }

  /**
   * Hands the socket what is queued for this connection. The tick's broadcasts were
   * queued before its own frames, so a pong's or an ack's newest ts never reaches the
   * client ahead of the messages it covers.
   */
  flush(): void {
    if (this.#state === 'closed') return;
    this.#takeOwn();
    this.out.pump();
    if (this.pendingBytes > this.ctx.options.maxOutboundBytes) this.slowConsumer();
  }

  /**
   * Queues frames encoded by an encoder of their own (fetch results: its large slabs end
   * with the fetch, not with the connection) after the own frames encoded so far, for
   * the tick's flush; judged against the outbound cap like everything else.
   */
  send(frames: Buffer): void {
    if (this.#state === 'closed' || frames.length === 0) return;
    if (this.enc.pendingBytes > 0) this.#keepOwn(this.enc.take());
    this.#keepOwn(frames);
    this.touch();
    if (this.pendingBytes > this.ctx.options.maxOutboundBytes) this.slowConsumer();
  }

  #keepOwn(frames: Buffer): void {
    this.#own.push(frames);
    this.#ownBytes += frames.length;
  }

  /** The own frames of the tick, in the order they were made, into the queue. */
  #takeOwn(): void {
    if (this.#own.length > 0) {
      for (const b of this.#own) this.out.push(b);
      this.#own = [];
      this.#ownBytes = 0;
    }
    if (this.enc.pendingBytes > 0) this.out.push(this.enc.take());
  }

  /**
   * Sends an error frame and closes (docs/PROTOCOL.md, rule E2). Whatever is queued goes
   * first, unless `discard`: then it is dropped, and the error frame follows only what
   * the socket had already taken.
   */
  fatal(code: ErrorCode, message: string, discard = false): void {
    if (this.#state === 'closed') return;
    this.endReason ??= reasonOf(code);
    if (PROTOCOL_ERRORS.has(code)) this.ctx.stats.protocolErrors++;
    this.ctx.log.debug({ conn: this.id, code, message }, 'closing connection');
    if (discard) {
      this.enc.discard();
      this.#own = [];
      this.#ownBytes = 0;
      this.out.discard();
    } else {
      this.#takeOwn();
    }
    this.#held.clear();
    this.setState('closed');
    // Before its TLS handshake the peer can read nothing: it has until the hello deadline to finish it.
    const deadline = this.#tlsPending ? Math.max(0, this.#helloDeadline - performance.now()) : undefined;
    this.out.end(this.enc.error(code, message).take(), deadline);
  }

  /** Past the outbound cap: told first, then dropped (docs/PROTOCOL.md, E1). */
  slowConsumer(): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.slowConsumers++;
    this.ctx.log.warn(
      { conn: this.id, client: this.client, pendingBytes: this.pendingBytes },
      'slow consumer disconnected: raise --max-outbound or read faster',
    );
    this.fatal(
      'GOSSIP_ERR_SLOW_CONSUMER',
      `more than ${this.ctx.options.maxOutboundBytes} bytes waiting: read faster`,
      true,
    );
  }

  #helloTimeout(): void {
    if (this.#tlsPending) {
      // The TLS handshake is not done: nothing could be read by the peer. Free the descriptor now.
      this.ctx.log.debug({ conn: this.id }, 'no TLS handshake within the hello timeout');
      this.endReason ??= reasonOf('GOSSIP_ERR_HELLO_TIMEOUT');
      this.setState('closed');
      this.socket.destroy();
      return;
    }
    this.fatal('GOSSIP_ERR_HELLO_TIMEOUT', `no hello within ${this.ctx.options.helloTimeoutMs} ms`);
  }

  /**
   * The first byte tells the protocol (docs/PROTOCOL.md, "Telling native from legacy
   * connections"): `G` hands the socket to a legacy connection; anything else stays here,
   * and later chunks go straight to `#onData`.
   */
  #onFirstData(chunk: Buffer): void {
    this.#tlsPending = false;
    if (chunk[0] === LEGACY_FIRST_BYTE && this.#state === 'hello') {
      this.#handOver();
      this.ctx.adoptLegacy(this, chunk, this.#helloDeadline);
      return;
    }
    this.socket.on('data', (c: Buffer) => this.#onData(c));
    this.#onData(chunk);
  }

  /**
   * Leaves the socket to a legacy connection: this one is closed and lets go of every
   * listener and timer it set, so the socket's events reach the new owner only.
   */
  #handOver(): void {
    this.setState('closed');
    const socket = this.socket;
    socket.off('error', this.#onSocketError);
    socket.off('end', this.#onSocketEnd);
    socket.off('close', this.#onSocketClose);
    // With 0, setTimeout stops the idle timer and removes this listener.
    socket.setTimeout(0, this.#onIdle);
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    this.ctx.stats.bytesIn += chunk.length;
    try {
      this.#decoder.push(chunk);
    } catch (error) {
      if (!(error instanceof GossipError)) {
        this.ctx.log.error({ conn: this.id, err: error }, 'internal error handling a frame');
        this.fatal('GOSSIP_ERR_INTERNAL', 'internal server error');
      } else if (error.code === 'GOSSIP_ERR_FRAME_TOO_LARGE' && this.#state === 'hello') {
        this.fatal(
          error.code,
          `a frame before the welcome is at most ${MAX_HELLO_FRAME_BYTES} bytes (a hello, H1): is this a gossip client?`,
        );
      } else {
        this.fatal(error.code, error.message);
      }
    }
  }

  /** One handler per frame kind (docs/PROTOCOL.md, "Which side sends which frame"). */
  #onFrame(frame: Frame): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'hello') {
      if (frame.kind !== FrameKind.Hello) {
        this.fatal('GOSSIP_ERR_UNEXPECTED_FRAME', `expected a hello, got frame kind ${frame.kind}`);
        return;
      }
      if (onHello(this, this.ctx, frame)) this.#welcomed(frame);
      return;
    }
    switch (frame.kind) {
      case FrameKind.Publish:
        onPublish(this, this.ctx, frame);
        return;
      case FrameKind.Emit:
        onEmit(this, this.ctx, frame);
        return;
      case FrameKind.Fetch:
        onFetch(this, this.ctx, frame);
        return;
      case FrameKind.Ping:
        onPing(this, this.ctx, frame);
        return;
      case FrameKind.Subscribe:
        onSubscribe(this, this.ctx, frame);
        return;
      case FrameKind.Unsubscribe:
        onUnsubscribe(this, this.ctx, frame);
        return;
      case FrameKind.Pong:
        return;
      case FrameKind.Error:
        // The client is closing with a reason: nothing to answer (docs/PROTOCOL.md, E2).
        this.ctx.log.debug({ conn: this.id, code: frame.code, message: frame.message }, 'client sent an error');
        this.setState('closed');
        this.out.end();
        return;
      default:
        this.fatal('GOSSIP_ERR_UNEXPECTED_FRAME', `a client may not send frame kind ${frame.kind} here`);
    }
  }

  /**
   * hello → replay or live, once the hello is accepted and welcomed (handlers/hello.ts):
   * the prefixes it holds join the live stream before any replay starts, so nothing
   * accepted from here on can be missed (R1, B5); then their replays, one at a time, each
   * with the resync its since calls for (R3, H3, H4; none when live only, R4).
   * A hello that names no prefixes holds "" and gets the whole broadcast, held until its
   * replay-done; one that names prefixes is live, each prefix holding its own messages.
   */
  #welcomed(hello: HelloFrame): void {
    this.echo = hello.echo;
    this.name = hello.name;
    this.client = loggedName(hello.name);
    this.welcomed = true;
    this.ctx.log.info(
      {
        conn: this.id,
        remote: this.remote,
        client: this.client,
        tls: 'encrypted' in this.socket,
        since: hello.since === null ? null : String(hello.since),
        ...(hello.prefixes === undefined ? {} : { prefixes: hello.prefixes.length }),
      },
      'client connected',
    );
    this.prefixes.start(hello);
    this.setState(this.prefixes.scoped ? 'live' : 'replay');
    this.touch();
    this.prefixes.run();
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
    this.#held.clear();
    this.setState('closed');
    this.ctx.closed(this);
  }
}

/** Whether two lists of subscriptions are the same (as the server's matching makes them: in one order). */
function sameSubscriptions(a: readonly Subscription[], b: readonly Subscription[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
