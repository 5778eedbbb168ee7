import type { Socket } from 'node:net';

/** Why a connection's socket is not read: each reason is held and released on its own. */
export type ReadHold = 'fetches' | 'inflate' | 'publishes' | 'shutdown';

/**
 * Pauses reading a socket while any reason holds, so a client that asks for more than
 * the server does at once waits in TCP's buffers rather than in the server's memory.
 * Frames already in a chunk being decoded still arrive: holders keep a bounded backlog.
 */
export class ReadGate {
  readonly #socket: Socket;
  readonly #holds = new Set<ReadHold>();
  #closed = false;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  hold(reason: ReadHold): void {
    if (this.#closed || this.#holds.has(reason)) return;
    if (this.#holds.size === 0) this.#socket.pause();
    this.#holds.add(reason);
  }

  release(reason: ReadHold): void {
    if (!this.#holds.delete(reason) || this.#closed) return;
    if (this.#holds.size === 0) this.#socket.resume();
  }

  /**
   * The connection is closed: reading resumes for good (what arrives is ignored), so the
   * peer's unread bytes do not turn the close into a reset that loses the error frame.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const held = this.#holds.size > 0;
    this.#holds.clear();
    if (held) this.#socket.resume();
  }
}

/**
 * Bytes of a connection's requests the server holds until they settle (publishes on
 * their way to the log): past `cap` the connection is not read until half of them have.
 * So a client that pipelines large publishes faster than the disk takes them waits in
 * TCP's buffers, not in the server's memory.
 */
export class InflightBytes {
  readonly #gate: ReadGate;
  readonly #reason: ReadHold;
  readonly #cap: number;
  #bytes = 0;

  constructor(gate: ReadGate, reason: ReadHold, cap: number) {
    this.#gate = gate;
    this.#reason = reason;
    this.#cap = cap;
  }

  get bytes(): number {
    return this.#bytes;
  }

  add(n: number): void {
    this.#bytes += n;
    if (this.#bytes > this.#cap) this.#gate.hold(this.#reason);
  }

  done(n: number): void {
    this.#bytes -= n;
    if (this.#bytes <= this.#cap / 2) this.#gate.release(this.#reason);
  }
}

/** Publish bytes a connection may have on their way to the log: two of the largest frames. */
export function publishWindow(maxFrameBytes: number): number {
  return 2 * maxFrameBytes;
}

/**
 * What a publish on its way to the log is charged: its data and id, and about what the
 * server holds for it besides (the decoded frame, its place in the batch, the ack to
 * come), so that tiny publishes reach the window too.
 */
export function publishCost(idLength: number, dataBytes: number): number {
  return idLength + dataBytes + 512;
}
