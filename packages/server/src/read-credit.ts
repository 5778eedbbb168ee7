/** What a read credit watches: the bytes the socket has taken, and whether anything still waits (outbound.ts). */
export interface Drained {
  /** Bytes the socket has taken so far. */
  readonly taken: number;
  /** Nothing waits for the client but what the socket accepted whole. */
  readonly idle: boolean;
}

/**
 * How much a connection's replays may read from the store before its client takes what
 * it was sent (docs/PROTOCOL.md, B7). It starts at the outbound cap; a replay takes a
 * batch's bytes from it before it reads the batch, and every byte the socket takes
 * towards the client gives a byte back, up to the start. So a client that subscribes and
 * unsubscribes in a loop without reading makes the server read about the cap, not a
 * batch per loop.
 *
 * Once nothing waits for the client but what its socket accepted whole, the whole
 * credit is back. What the client took paid for what it was sent; what is still spent
 * then is only the batch the store reads ahead of a replay that stopped (an unsubscribe
 * queues the batch it was reading, subscriptions.ts), which no socket will ever take:
 * a client that has read everything must not wait forever for its next replay. A client
 * that does not read cannot get there: each stopped replay queued a batch for it first.
 */
export class ReadCredit {
  readonly #out: Drained;
  readonly #start: number;
  #credit: number;
  /** `taken` when last looked at. */
  #seen: number;

  constructor(out: Drained, start: number) {
    this.#out = out;
    this.#start = start;
    this.#credit = start;
    this.#seen = out.taken;
  }

  /** What is left now. */
  get available(): number {
    this.#refill();
    return this.#credit;
  }

  /** Takes `bytes` and returns true if that much is left; otherwise takes nothing and returns false. */
  take(bytes: number): boolean {
    this.#refill();
    if (this.#credit < bytes) return false;
    this.#credit -= bytes;
    return true;
  }

  /** Gives back what was taken and not read (a replay that read less than it took). */
  refund(bytes: number): void {
    this.#credit = Math.min(this.#start, this.#credit + bytes);
  }

  #refill(): void {
    const taken = this.#out.taken;
    if (this.#out.idle) this.#credit = this.#start;
    else this.#credit = Math.min(this.#start, this.#credit + (taken - this.#seen));
    this.#seen = taken;
  }
}
