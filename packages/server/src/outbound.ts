import type { Socket } from 'node:net';

/**
 * Bytes handed to the socket at most while earlier ones are still in its buffer: the
 * rest waits in the connection's queue. Kept small so that a connection dropped as a
 * slow consumer can discard what it still holds and have its error frame sent right
 * behind the little the socket already took (docs/PROTOCOL.md, E2).
 */
const SOCKET_HIGH_WATER = 256 * 1024;

/** How long a closing connection's peer has to close too, once its last bytes reached the kernel. */
const CLOSE_GRACE_MS = 2_000;
/**
 * How long a closing connection may take to hand its last bytes (its error frame) to
 * the kernel: a slow reader gets that long to read what is ahead of its error frame.
 * What it holds meanwhile is bounded by the outbound cap: a slow consumer's queue is
 * dropped before its error frame, other closes send what was queued first.
 */
const CLOSE_DEADLINE_MS = 30_000;

/**
 * What one connection has to write, in whole frames, in order, and the socket it goes
 * to. `push` queues, `pump` hands the socket as much as it takes now (one cork, many
 * writes), and the socket's `drain` pumps again: `pump` stops only with the socket's
 * buffer past its own high water, so a `drain` always follows. Every byte waiting for
 * the client is either in the socket's buffer or here: `pendingBytes` counts both, and
 * is what the outbound cap is judged by.
 */
export class Outbound {
  readonly socket: Socket;
  #queue: Buffer[] = [];
  #head = 0;
  #queued = 0;
  #waiters: { limit: number; resolve: () => void }[] = [];
  /** `whenPumped`'s: resolved at the next pump, discard or close. */
  #pumped: (() => void)[] = [];
  /** Bytes handed to the socket so far. */
  #handed = 0;
  #ended = false;
  readonly #onBytes: (bytes: number) => void;

  /** `onBytes` counts the bytes handed to the socket. */
  constructor(socket: Socket, onBytes: (bytes: number) => void) {
    this.socket = socket;
    this.#onBytes = onBytes;
    socket.on('drain', () => this.pump());
    socket.once('close', () => this.#release(true));
  }

  /** Bytes waiting for the client: in the socket's buffer and queued here. */
  get pendingBytes(): number {
    return this.socket.writableLength + this.#queued;
  }

  /**
   * Bytes the socket has taken from this connection so far: handed to it and no longer in
   * its buffer, that is on their way to the client (what a replay's read credit gets back).
   */
  get taken(): number {
    return this.#handed - this.socket.writableLength;
  }

  /**
   * Whether what waits for the client is within the socket's own high water: no more
   * than a write the socket accepted whole, so no `drain` need follow.
   */
  get idle(): boolean {
    return this.pendingBytes <= this.socket.writableHighWaterMark;
  }

  /** Queues whole frames; nothing is written until `pump`. */
  push(frames: Buffer): void {
    if (frames.length === 0 || this.#ended) return;
    this.#queue.push(frames);
    this.#queued += frames.length;
  }

  /**
   * Hands the socket what it takes now: queued frames while its buffer holds less than
   * `highWater` (a closing connection passes Infinity: the socket's end follows its last write).
   */
  pump(highWater = SOCKET_HIGH_WATER): void {
    const socket = this.socket;
    if (this.#queued > 0 && !socket.destroyed && socket.writableLength < highWater) {
      const queue = this.#queue;
      let bytes = 0;
      socket.cork();
      while (this.#head < queue.length && socket.writableLength < highWater) {
        const b = queue[this.#head] as Buffer;
        queue[this.#head++] = EMPTY;
        bytes += b.length;
        socket.write(b);
      }
      socket.uncork();
      this.#queued -= bytes;
      if (this.#head === queue.length) {
        this.#queue = [];
        this.#head = 0;
      } else if (this.#head > 1024 && 2 * this.#head > queue.length) {
        // A standing backlog: drop the written slots rather than let the array grow.
        queue.splice(0, this.#head);
        this.#head = 0;
      }
      this.#handed += bytes;
      this.#onBytes(bytes);
    }
    this.#release(false);
  }

  /** Drops every queued byte (the socket keeps what it already took). */
  discard(): void {
    this.#queue = [];
    this.#head = 0;
    this.#queued = 0;
    this.#release(false);
  }

  /**
   * Ends the connection: everything queued goes to the socket (its end must follow its
   * last write), then `last`, then the end; nothing queued after this is sent. The
   * socket is destroyed `deadlineMs` from now at the latest (`endWithGrace`).
   */
  end(last?: Buffer, deadlineMs?: number): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.socket.destroyed) return;
    this.pump(Number.POSITIVE_INFINITY);
    endWithGrace(this.socket, last, deadlineMs);
  }

  /**
   * Resolves once at most `limit` bytes wait for the client, or the socket closed. A limit
   * below the socket's own high water counts as that: only past it does a `drain` follow.
   */
  whenBelow(limit: number): Promise<void> {
    const at = Math.max(limit, this.socket.writableHighWaterMark);
    if (this.pendingBytes <= at || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ limit: at, resolve }));
  }

  /**
   * Resolves at the next `pump` (a flush, a `drain`), `discard` or close: when the socket
   * may have taken more. Past the socket's high water a `drain` is sure to follow.
   */
  whenPumped(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#pumped.push(resolve));
  }

  #release(all: boolean): void {
    if (this.#pumped.length > 0) {
      const pumped = this.#pumped;
      this.#pumped = [];
      for (const resolve of pumped) resolve();
    }
    if (this.#waiters.length === 0) return;
    const pending = this.pendingBytes;
    this.#waiters = this.#waiters.filter((w) => {
      if (!all && pending > w.limit) return true;
      w.resolve();
      return false;
    });
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Ends the socket after its last bytes; a peer that does not read must not keep it (and
 * its buffer) forever: it is destroyed `CLOSE_GRACE_MS` after those bytes reached the
 * kernel, and `deadlineMs` (default `CLOSE_DEADLINE_MS`) after the end at the latest.
 */
export function endWithGrace(socket: Socket, last?: string | Buffer, deadlineMs = CLOSE_DEADLINE_MS): void {
  if (last === undefined) socket.end();
  else socket.end(last);
  let timer = setTimeout(() => socket.destroy(), deadlineMs).unref();
  const finished = () => {
    clearTimeout(timer);
    timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
  socket.once('finish', finished);
  socket.once('close', () => {
    clearTimeout(timer);
    socket.off('finish', finished);
  });
}
