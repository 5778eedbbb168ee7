import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import {
  type AckFrame,
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

/**
 * A client at the level of frames, for tests: it sends what it is told, including
 * what a well-behaved client never would, and records every frame it receives.
 */
export class RawClient {
  readonly socket: Socket;
  readonly enc = new FrameEncoder();
  readonly frames: Frame[] = [];
  /** Set when the decoder failed on the server's bytes. */
  decodeError: Error | undefined;
  readonly closed: Promise<void>;
  #reqId = 1;
  #waiters: { from: number; match: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }[] =
    [];
  #isClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    const dec = new FrameDecoder(
      (f) => {
        this.frames.push(f);
        const index = this.frames.length - 1;
        this.#waiters = this.#waiters.filter((w) => {
          if (index < w.from || !w.match(f)) return true;
          w.resolve(f);
          return false;
        });
      },
      { maxFrameBytes: 64 * 1024 * 1024 },
    );
    socket.on('data', (c: Buffer) => {
      try {
        dec.push(c);
      } catch (error) {
        this.decodeError = error as Error;
      }
    });
    socket.on('error', () => undefined);
    this.closed = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
      this.#isClosed = true;
      for (const w of this.#waiters) w.reject(new Error('connection closed while waiting for a frame'));
      this.#waiters = [];
    });
  }

  /** Opens a TCP (or TLS) connection without sending anything. */
  static async open(port: number, tls?: ConnectionOptions): Promise<RawClient> {
    const socket = tls ? tlsConnect({ port, host: '127.0.0.1', ...tls }) : netConnect(port, '127.0.0.1');
    await once(socket, tls ? 'secureConnect' : 'connect');
    return new RawClient(socket);
  }

  /** Opens, sends a hello, and resolves with the welcome (or rejects with the error frame). */
  static async connect(port: number, hello: HelloOptions = {}, tls?: ConnectionOptions): Promise<RawClient> {
    const c = await RawClient.open(port, tls);
    c.send(c.enc.hello(hello).take());
    const first = await c.next(() => true);
    if (first.kind !== FrameKind.Welcome) {
      c.close();
      throw Object.assign(new Error(`expected welcome, got ${JSON.stringify(first)}`), { frame: first });
    }
    return c;
  }

  get welcome(): WelcomeFrame {
    return this.frames.find((f) => f.kind === FrameKind.Welcome) as WelcomeFrame;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first frame matching `match` received at or after index `from` (default: any time). */
  next<T extends Frame = Frame>(match: (f: Frame) => boolean, from = 0): Promise<T> {
    for (let i = from; i < this.frames.length; i++)
      if (match(this.frames[i] as Frame)) return Promise.resolve(this.frames[i] as T);
    if (this.#isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) =>
      this.#waiters.push({ from, match, resolve: resolve as (f: Frame) => void, reject }),
    );
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

  close(): void {
    this.socket.destroy();
  }
}
