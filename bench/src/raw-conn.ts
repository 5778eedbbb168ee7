/**
 * Raw native connections for the edge benchmarks and the attack script: frames are
 * written with `FrameEncoder` (or its unchecked mode) and read back either decoded or,
 * for bulk results, only skimmed (kind, length and the first body bytes), so that the
 * reading side costs little next to the server it measures. A `Pinger` is the
 * well-behaved client whose round trips show how long other clients were stalled.
 */
import { connect, type Socket } from 'node:net';
import {
  codeFromWire,
  type ErrorCode,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  type HelloOptions,
  type WelcomeFrame,
} from '@gossip/protocol';
import { uncheckedEncoder } from '@gossip/protocol/testing';
import { percentile } from './measure.js';

/** Body bytes a `SkimmedFrame` keeps: reqId, status and code of an ack; reqId and flags of a fetch-result. */
const HEAD_BYTES = 8;

/** A frame read without its body: enough to follow fetch-results and spot an error frame. */
export interface SkimmedFrame {
  kind: number;
  /** The frame's length field (kind byte and body). */
  length: number;
  /** The first bytes of the body (up to 8), a copy. */
  head: Buffer;
}

/** Reads frame boundaries from a byte stream of any chunking without keeping or copying bodies. */
export class FrameSkimmer {
  readonly #onFrame: (f: SkimmedFrame) => void;
  readonly #hdr = Buffer.alloc(4 + 1 + HEAD_BYTES);
  #have = 0;
  #need = 4;
  #len = 0;
  #skip = 0;

  constructor(onFrame: (f: SkimmedFrame) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - p);
        this.#skip -= n;
        p += n;
        continue;
      }
      const n = Math.min(this.#need - this.#have, chunk.length - p);
      chunk.copy(this.#hdr, this.#have, p, p + n);
      this.#have += n;
      p += n;
      if (this.#have < this.#need) return;
      if (this.#need === 4) {
        this.#len = this.#hdr.readUInt32BE(0);
        if (this.#len === 0) throw new Error('a frame of length 0: the stream is not gossip frames');
        this.#need = 4 + Math.min(this.#len, 1 + HEAD_BYTES);
        continue;
      }
      const f = {
        kind: this.#hdr[4] as number,
        length: this.#len,
        head: Buffer.from(this.#hdr.subarray(5, this.#need)),
      };
      this.#skip = 4 + this.#len - this.#need;
      this.#have = 0;
      this.#need = 4;
      this.#onFrame(f);
    }
  }
}

/** How a connection ended, seen from the client. */
export interface ConnEnd {
  /** `performance.now()` at the close. */
  at: number;
  /** `end` (the server closed cleanly), `reset` (ECONNRESET and the like) or `destroyed` (closed here). */
  how: string;
}

export interface RawConnOptions {
  /** Gives up on the TCP connect after this long [5 s]. */
  timeoutMs?: number;
  /** Encode with the unchecked encoder, to send ids a real client refuses. */
  unchecked?: boolean;
}

/** One native connection, frame by frame. */
export class RawConn {
  readonly socket: Socket;
  readonly enc: FrameEncoder;
  readonly openedAt = performance.now();
  /** Set once the socket has closed. */
  ended: ConnEnd | undefined;
  /** The error frame (E2) the server sent, if any: its code. */
  errorCode: ErrorCode | undefined;
  errorMessage: string | undefined;
  /** Bytes received. */
  bytesIn = 0;
  /** Called with every decoded frame (not in skim mode). */
  onFrame: (f: Frame) => void = () => undefined;
  #push: (chunk: Buffer) => void;
  #reset: string | undefined;
  readonly #decoder: FrameDecoder;
  readonly #waiters = new Set<(f: Frame | undefined) => void>();

  private constructor(socket: Socket, enc: FrameEncoder) {
    this.socket = socket;
    this.enc = enc;
    this.#decoder = new FrameDecoder((f) => this.#frame(f), { maxFrameBytes: 64 * 1024 * 1024 });
    this.#push = (c) => this.#decoder.push(c);
    socket.on('data', (c: Buffer) => {
      this.bytesIn += c.length;
      try {
        this.#push(c);
      } catch (e) {
        // not gossip frames (a legacy error line, garbage): nothing more can be read
        this.#reset = `undecodable: ${(e as Error).message}`;
        socket.destroy();
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#reset = e.code ?? e.message;
    });
    socket.on('close', () => {
      const how = this.#reset ?? (socket.readableEnded ? 'end' : 'destroyed');
      this.ended = { at: performance.now(), how };
      for (const w of this.#waiters) w(undefined);
    });
  }

  /** Opens a TCP connection to gossipd on loopback; sends nothing. */
  static async open(port: number, options: RawConnOptions = {}): Promise<RawConn> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const conn = new RawConn(
      socket,
      options.unchecked ? uncheckedEncoder() : new FrameEncoder({ slabBytes: 256 * 1024 }),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no TCP connection within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    return conn;
  }

  /** Opens a connection and says hello; resolves with the welcome at replay-done, rejects with what happened instead. */
  static async connect(port: number, hello: HelloOptions = { since: null }, options: RawConnOptions = {}) {
    const conn = await RawConn.open(port, options);
    try {
      const welcome = await conn.hello(hello, options.timeoutMs ?? 5000);
      return { conn, welcome };
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /** Sends a hello and waits for the replay-done that follows the welcome (rule R1). */
  async hello(hello: HelloOptions, timeoutMs: number): Promise<WelcomeFrame> {
    let welcome: WelcomeFrame | undefined;
    this.send(this.enc.hello(hello));
    const done = await this.waitFor((f) => {
      if (f.kind === FrameKind.Welcome) welcome = f;
      return f.kind === FrameKind.ReplayDone;
    }, timeoutMs);
    if (done && welcome) return welcome;
    throw new Error(`no welcome: ${this.describeEnd() ?? `nothing within ${timeoutMs} ms`}`);
  }

  /** Writes what `enc` holds (the argument is only there to chain: `c.send(c.enc.ping(1))`). */
  send(_enc?: FrameEncoder): void {
    if (this.enc.pendingBytes > 0 && !this.socket.destroyed) this.socket.write(this.enc.take());
  }

  /** The first frame `pred` accepts, or undefined at close or after `timeoutMs`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined> {
    return new Promise((resolve) => {
      const finish = (f: Frame | undefined) => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        resolve(f);
      };
      const waiter = (f: Frame | undefined) => {
        if (f === undefined || pred(f)) finish(f);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      this.#waiters.add(waiter);
      if (this.ended) finish(undefined);
    });
  }

  /** Resolves at the close, or after `timeoutMs` (false: still open). */
  waitEnd(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => false, timeoutMs).then(() => this.ended !== undefined);
  }

  /**
   * From now on frames are only skimmed and handed to `onSkim` (an error frame is still
   * recorded). Call it between frames: after a frame awaited with `waitFor`.
   */
  skim(onSkim: (f: SkimmedFrame) => void = () => undefined): void {
    if (this.#decoder.bufferedBytes > 0) throw new Error('skim() called in the middle of a frame');
    const skimmer = new FrameSkimmer((f) => {
      if (f.kind === FrameKind.Error && f.head.length >= 2) this.errorCode = codeFromWire(f.head.readUInt16BE(0));
      onSkim(f);
    });
    this.#push = (c) => skimmer.push(c);
  }

  /** What the server did to end the connection, for a report; undefined while it is open. */
  describeEnd(): string | undefined {
    if (this.errorCode) return `E2 ${this.errorCode}`;
    if (this.ended) return `closed (${this.ended.how}), no error frame`;
    return undefined;
  }

  close(): void {
    this.socket.destroy();
  }

  #frame(f: Frame): void {
    if (f.kind === FrameKind.Error) {
      this.errorCode = f.code;
      this.errorMessage = f.message;
    }
    this.onFrame(f);
    for (const w of this.#waiters) w(f);
  }
}

export interface PingStats {
  /** Pings sent in the window. */
  pings: number;
  /** The largest round trip in ms, counting an unanswered ping as its age at the end of the window (or the close). */
  max: number;
  p99: number;
  /** Pings of the window still unanswered at its end. */
  unanswered: number;
  /** The longest time in the window with no pong arriving, in ms. */
  stall: number;
  /** How the pinger's connection ended, if it did. */
  dropped: string | undefined;
}

/**
 * A well-behaved client that pings every `everyMs` and records each round trip. It is a
 * raw connection rather than `@gossip/client`, which exposes no ping today.
 */
export class Pinger {
  readonly conn: RawConn;
  /** Per nonce: when it was sent and, once answered, when the pong arrived. */
  readonly #sent: { at: number; back: number | undefined }[] = [];
  #timer: NodeJS.Timeout | undefined;

  private constructor(conn: RawConn) {
    this.conn = conn;
  }

  static async start(port: number, everyMs = 10): Promise<Pinger> {
    const { conn } = await RawConn.connect(port);
    const p = new Pinger(conn);
    conn.onFrame = (f) => {
      if (f.kind === FrameKind.Pong) {
        const s = p.#sent[f.nonce];
        if (s && s.back === undefined) s.back = performance.now();
      }
    };
    p.#timer = setInterval(() => {
      if (conn.ended) return;
      p.#sent.push({ at: performance.now(), back: undefined });
      conn.send(conn.enc.ping(p.#sent.length - 1));
    }, everyMs);
    return p;
  }

  /** Round trips of the pings sent from `from` (a `performance.now()`) to `to`. */
  stats(from: number, to = performance.now()): PingStats {
    // a ping unanswered when the connection closed was lost with it, not stalled after it
    to = Math.min(to, this.conn.ended?.at ?? to);
    const rtts: number[] = [];
    const arrivals: number[] = [];
    let unanswered = 0;
    for (const s of this.#sent) {
      if (s.at < from || s.at > to) continue;
      if (s.back === undefined || s.back > to) {
        unanswered++;
        rtts.push(to - s.at);
      } else {
        rtts.push(s.back - s.at);
        arrivals.push(s.back);
      }
    }
    rtts.sort((a, b) => a - b);
    arrivals.sort((a, b) => a - b);
    let stall = 0;
    let prev = from;
    for (const a of arrivals) {
      stall = Math.max(stall, a - prev);
      prev = a;
    }
    if (unanswered > 0) stall = Math.max(stall, to - prev);
    return {
      pings: rtts.length,
      max: rtts.length > 0 ? (rtts[rtts.length - 1] as number) : 0,
      p99: rtts.length > 0 ? percentile(rtts, 0.99) : 0,
      unanswered,
      stall,
      dropped: this.conn.describeEnd(),
    };
  }

  stop(): void {
    clearInterval(this.#timer);
    this.conn.close();
  }
}

/** "max 12.3 ms, p99 4.5 ms, stall 20.1 ms" and what went wrong. */
export function describePings(s: PingStats): string {
  let out = `ping max ${s.max.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, longest stall ${s.stall.toFixed(1)} ms (${s.pings} pings)`;
  if (s.unanswered > 0) out += `, ${s.unanswered} unanswered`;
  if (s.dropped) out += `, pinger dropped: ${s.dropped}`;
  return out;
}
