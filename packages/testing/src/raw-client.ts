import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import {
  type AckFrame,
  codeFromWire,
  type ErrorCode,
  type ErrorFrame,
  type FetchEntry,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  type HelloOptions,
  type MessageFrame,
  type PongFrame,
  type ReplayDoneFrame,
  type ResyncFrame,
  type WelcomeFrame,
} from '@gossip/protocol';
import { FrameSkimmer, type SkimmedFrame } from './frame-skimmer.js';

const HOST = '127.0.0.1';
/** Far above gossipd's limits: the client reads what the server sent, not a limit of its own. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** How a connection ended, seen from the client. */
export interface ConnEnd {
  /** `performance.now()` at the close. */
  at: number;
  /** `end` (the server closed cleanly), `reset` (ECONNRESET and the like) or `destroyed` (closed here). */
  how: string;
}

export interface DialOptions {
  /** Connect with TLS, with these options [plain TCP]. */
  tls?: ConnectionOptions;
  /** Send this hello once connected, and resolve only at `until` [send nothing]. */
  hello?: HelloOptions;
  /** With `hello`: resolve at the welcome, or at the replay-done that ends the replay (R2) [welcome]. */
  until?: 'welcome' | 'replay-done';
  /**
   * Keep every frame in `frames`, which `next`, `replay`, `publish`, `fetch`… read [true].
   * A benchmark's client passes false and reads frames in `onFrame` instead.
   */
  keep?: boolean;
  /** Called with every decoded frame from the first on; `client.onFrame` may replace it later [none]. */
  onFrame?: (f: Frame) => void;
  /** Encode with the unchecked encoder, to send ids a real client refuses [false]. */
  unchecked?: boolean;
  /** The encoder's slab size: a benchmark that batches many frames per write wants a larger one [64 KiB]. */
  slabBytes?: number;
  /** Gives up on the connect and the hello's answer after this long, rejecting [never: the caller's own timeout]. */
  timeoutMs?: number;
}

/**
 * A native client at the level of frames, for tests and benchmarks. It sends what it is
 * told, including what a well-behaved client never would, and records every frame it
 * receives (`keep: false` records none: frames only go to `onFrame`, for a lean reader).
 * `open` and `connect` are the tests' shapes, `dial` takes every option.
 */
export class RawClient {
  readonly socket: Socket;
  readonly enc: FrameEncoder;
  /** Every frame received, in order; empty for a client dialled with `keep: false`. */
  readonly frames: Frame[] = [];
  /** `performance.now()` when the connection was started. */
  readonly openedAt = performance.now();
  /** Resolves once the socket has closed (never rejects). */
  readonly closed: Promise<void>;
  /** Called with every decoded frame (not once `skim` took over). */
  onFrame: (f: Frame) => void;
  /** Set when the decoder failed on the server's bytes: nothing more is decoded. */
  decodeError: Error | undefined;
  /** Bytes received. */
  bytesIn = 0;
  /** Set once the socket has closed. */
  ended: ConnEnd | undefined;
  /** The code and message of the error frame (E2) the server sent, if any (a skimmed one has no message). */
  errorCode: ErrorCode | undefined;
  errorMessage: string | undefined;
  readonly #keep: boolean;
  readonly #decoder: FrameDecoder;
  #push: (chunk: Buffer) => void;
  #first: Frame | undefined;
  #welcome: WelcomeFrame | undefined;
  #replayDone: ReplayDoneFrame | undefined;
  #reset: string | undefined;
  #reqId = 1;
  /** `next`'s waiters, over the recorded frames. */
  #waiters: { from: number; match: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }[] =
    [];
  /** `waitFor`'s: each frame from now on, and undefined when no more will come. */
  readonly #listeners = new Set<(f: Frame | undefined) => void>();

  private constructor(socket: Socket, options: DialOptions) {
    this.socket = socket;
    this.#keep = options.keep ?? true;
    this.onFrame = options.onFrame ?? (() => undefined);
    this.enc = new FrameEncoder({
      unchecked: options.unchecked ?? false,
      ...(options.slabBytes === undefined ? {} : { slabBytes: options.slabBytes }),
    });
    socket.setNoDelay(true);
    this.#decoder = new FrameDecoder((f) => this.#frame(f), { maxFrameBytes: MAX_FRAME_BYTES });
    this.#push = (c) => this.#decoder.push(c);
    socket.on('data', (c: Buffer) => {
      this.bytesIn += c.length;
      if (this.decodeError) return;
      try {
        this.#push(c);
      } catch (error) {
        // not gossip frames (a legacy line, garbage): nothing more can be read
        this.decodeError = error as Error;
        for (const l of this.#listeners) l(undefined);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#reset = e.code ?? e.message;
    });
    // Not `once(socket, 'close')`: that rejects on the 'error' (a reset) that comes first.
    this.closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        this.ended = { at: performance.now(), how: this.#reset ?? (socket.readableEnded ? 'end' : 'destroyed') };
        for (const w of this.#waiters) w.reject(new Error('connection closed while waiting for a frame'));
        this.#waiters = [];
        for (const l of this.#listeners) l(undefined);
        resolve();
      }),
    );
  }

  /** Opens a TCP (or TLS) connection on loopback without sending anything. */
  static open(port: number, tls?: ConnectionOptions): Promise<RawClient> {
    return RawClient.dial(port, tls ? { tls } : {});
  }

  /** Opens, sends a hello, and resolves with the welcome (or rejects with the frame that came instead). */
  static connect(port: number, hello: HelloOptions = {}, tls?: ConnectionOptions): Promise<RawClient> {
    return RawClient.dial(port, tls ? { tls, hello } : { hello });
  }

  /** Opens a connection to `port` on loopback with every option; with `hello`, resolves at `until`. */
  static async dial(port: number, options: DialOptions = {}): Promise<RawClient> {
    const t0 = performance.now();
    const left = () =>
      options.timeoutMs === undefined ? undefined : Math.max(0, options.timeoutMs - (performance.now() - t0));
    const tls = options.tls;
    const socket = tls ? tlsConnect({ port, host: HOST, ...tls }) : netConnect(port, HOST);
    const c = new RawClient(socket, options);
    try {
      await c.#connected(tls ? 'secureConnect' : 'connect', left());
      if (options.hello) await c.#handshake(options.hello, options.until ?? 'welcome', left, options.timeoutMs);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** The first welcome received (undefined before it). */
  get welcome(): WelcomeFrame {
    return this.#welcome as WelcomeFrame;
  }

  /** The first replay-done received, if any. */
  get replayDone(): ReplayDoneFrame | undefined {
    return this.#replayDone;
  }

  get isClosed(): boolean {
    return this.ended !== undefined;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes what `enc` holds, if anything and the socket is open. */
  flush(): void {
    if (this.enc.pendingBytes > 0 && !this.socket.destroyed) this.socket.write(this.enc.take());
  }

  /** The first recorded frame matching `match` at or after index `from` (default: any time); rejects at the close. */
  next<T extends Frame = Frame>(match: (f: Frame) => boolean, from = 0): Promise<T> {
    if (!this.#keep) return Promise.reject(new Error('next() reads the recorded frames: dial with keep: true'));
    for (let i = from; i < this.frames.length; i++)
      if (match(this.frames[i] as Frame)) return Promise.resolve(this.frames[i] as T);
    if (this.isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) =>
      this.#waiters.push({ from, match, resolve: resolve as (f: Frame) => void, reject }),
    );
  }

  /** The first frame from now on that `pred` accepts, or undefined at the close, a decoder failure or after `timeoutMs`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame | undefined> {
    if (this.ended || this.decodeError) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (f: Frame | undefined) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(f);
      };
      const listener = (f: Frame | undefined) => {
        if (f === undefined || pred(f)) finish(f);
      };
      if (timeoutMs !== undefined) timer = setTimeout(() => finish(undefined), timeoutMs);
      this.#listeners.add(listener);
    });
  }

  /** Resolves at the close, or after `timeoutMs`, with whether the connection has closed. */
  async waitEnd(timeoutMs: number): Promise<boolean> {
    if (!this.ended) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    return this.ended !== undefined;
  }

  /** Waits for the replay to end: the replayed messages, an optional resync, and the replay-done. */
  async replay(): Promise<{ messages: MessageFrame[]; resync: ResyncFrame | undefined; done: ReplayDoneFrame }> {
    const done = await this.next<ReplayDoneFrame>((f) => f.kind === FrameKind.ReplayDone);
    const end = this.frames.indexOf(done);
    const before = this.frames.slice(0, end);
    return {
      messages: before.filter((f): f is MessageFrame => f.kind === FrameKind.Message),
      resync: before.find((f): f is ResyncFrame => f.kind === FrameKind.Resync),
      done,
    };
  }

  /** Messages received so far (after `from`). */
  messages(from = 0): MessageFrame[] {
    return this.frames.slice(from).filter((f): f is MessageFrame => f.kind === FrameKind.Message);
  }

  async publish(id: string, ts: bigint, data: Uint8Array | string): Promise<AckFrame> {
    const reqId = this.#reqId++;
    this.send(this.enc.publish(reqId, id, ts, typeof data === 'string' ? Buffer.from(data) : data).take());
    return this.next<AckFrame>((f) => f.kind === FrameKind.Ack && f.reqId === reqId);
  }

  /** Sends an emit; with `ack`, waits for its ack. */
  async emit(id: string, ts: bigint, data: Uint8Array | string, ack = false): Promise<AckFrame | undefined> {
    const reqId = ack ? this.#reqId++ : 0;
    this.send(this.enc.emit(reqId, id, ts, typeof data === 'string' ? Buffer.from(data) : data).take());
    return ack ? this.next<AckFrame>((f) => f.kind === FrameKind.Ack && f.reqId === reqId) : undefined;
  }

  async fetch(ids: string[]): Promise<FetchEntry[]> {
    const reqId = this.#reqId++;
    const from = this.frames.length;
    this.send(this.enc.fetch(reqId, ids).take());
    const entries: FetchEntry[] = [];
    for (let at = from; ; ) {
      const f = await this.next(
        (x) => (x.kind === FrameKind.FetchResult || x.kind === FrameKind.Ack) && x.reqId === reqId,
        at,
      );
      if (f.kind === FrameKind.Ack) throw Object.assign(new Error(f.message), { code: f.code });
      if (f.kind !== FrameKind.FetchResult) throw new Error('unreachable');
      entries.push(...f.entries);
      if (!f.more) return entries;
      at = this.frames.indexOf(f) + 1;
    }
  }

  async ping(): Promise<PongFrame> {
    const nonce = this.#reqId++;
    this.send(this.enc.ping(nonce).take());
    return this.next<PongFrame>((f) => f.kind === FrameKind.Pong && f.nonce === nonce);
  }

  /** Resolves with the error frame the server sent before closing, if any, once the socket closed. */
  async closedWithError(): Promise<ErrorFrame | undefined> {
    await this.closed;
    return this.frames.find((f): f is ErrorFrame => f.kind === FrameKind.Error);
  }

  /**
   * From now on frames are only skimmed (kind, length, the first body bytes) and handed to
   * `onSkim`; an error frame still sets `errorCode`. Call it between frames: after a frame
   * awaited with `waitFor`, or at the replay-done.
   */
  skim(onSkim: (f: SkimmedFrame) => void = () => undefined): void {
    if (this.#decoder.bufferedBytes > 0) throw new Error('skim() called in the middle of a frame');
    const skimmer = new FrameSkimmer((f) => {
      if (f.kind === FrameKind.Error && f.head.length >= 2) this.errorCode = codeFromWire(f.head.readUInt16BE(0));
      onSkim(f);
    });
    this.#push = (c) => skimmer.push(c);
  }

  /** What ended the connection, for a report; undefined while it is open and readable. */
  describeEnd(): string | undefined {
    if (this.errorCode) return `E2 ${this.errorCode}`;
    if (this.decodeError) return `undecodable: ${this.decodeError.message}`;
    if (this.ended) return `closed (${this.ended.how}), no error frame`;
    return undefined;
  }

  close(): void {
    this.socket.destroy();
  }

  #frame(f: Frame): void {
    this.#first ??= f;
    if (f.kind === FrameKind.Welcome) this.#welcome ??= f;
    else if (f.kind === FrameKind.ReplayDone) this.#replayDone ??= f;
    else if (f.kind === FrameKind.Error) {
      this.errorCode = f.code;
      this.errorMessage = f.message;
    }
    if (this.#keep) {
      this.frames.push(f);
      const index = this.frames.length - 1;
      this.#waiters = this.#waiters.filter((w) => {
        if (index < w.from || !w.match(f)) return true;
        w.resolve(f);
        return false;
      });
    }
    this.onFrame(f);
    for (const l of this.#listeners) l(f);
  }

  /** Resolves once the socket is connected (and, for TLS, the handshake done); rejects on its error or the timeout. */
  #connected(event: 'connect' | 'secureConnect', timeoutMs: number | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        this.socket.off('error', fail);
        resolve();
      };
      const fail = (e: Error) => {
        clearTimeout(timer);
        this.socket.off(event, done);
        reject(e);
      };
      if (timeoutMs !== undefined)
        timer = setTimeout(
          () => fail(new Error(`no ${event === 'connect' ? 'TCP' : 'TLS'} connection within ${timeoutMs} ms`)),
          timeoutMs,
        );
      this.socket.once(event, done);
      this.socket.once('error', fail);
    });
  }

  /** Sends the hello; the answer must start with a welcome (W1), and with `replay-done` the replay must end (R2). */
  async #handshake(
    hello: HelloOptions,
    until: 'welcome' | 'replay-done',
    left: () => number | undefined,
    timeoutMs: number | undefined,
  ): Promise<void> {
    const nothing = () => this.describeEnd() ?? `nothing within ${timeoutMs} ms`;
    this.send(this.enc.hello(hello).take());
    const first = this.#first ?? (await this.waitFor(() => true, left()));
    if (first === undefined) throw new Error(`no welcome: ${nothing()}`);
    if (first.kind !== FrameKind.Welcome) {
      const got = first.kind === FrameKind.Error ? `E2 ${first.code}` : `got ${JSON.stringify(first, bigints)}`;
      throw Object.assign(new Error(`no welcome: ${got}`), { frame: first });
    }
    if (until === 'replay-done' && !this.#replayDone) {
      const done = await this.waitFor((f) => f.kind === FrameKind.ReplayDone, left());
      if (!done) throw new Error(`no replay-done: ${nothing()}`);
    }
  }
}

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
