import { GossipError } from '@gossip/protocol';
import { clearTimer, setUnrefTimer, type Timer } from './timers.js';

/** What a heartbeat needs of its connection (as nats.js `heartbeats.ts` needs its `PH`). */
export interface HeartbeatHost {
  /** Sends a ping (K1). */
  ping(nonce: number): void;
  /** Nothing came for two intervals: the connection is dead; drop it with `reason`. */
  stale(reason: GossipError): void;
}

/**
 * The keep-alive of one connection (K3): it pings every interval, and a tick that finds
 * nothing heard since the previous tick's ping tells the host the connection is stale:
 * a ping unanswered for a whole interval, so at most two intervals after the server was
 * last heard. A listener that only receives still pings, so gossipd's idle timeout never
 * closes it.
 */
export class Heartbeat {
  readonly #host: HeartbeatHost;
  readonly #intervalMs: number;
  #timer: Timer | undefined;
  #nonce = 1;
  #pinged = false;
  /** Whether anything came from the server since the last ping was sent. */
  #heard = false;

  /** `intervalMs` ≤ 0: no pings, and no stale connection is ever detected. */
  constructor(host: HeartbeatHost, intervalMs: number) {
    this.#host = host;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.cancel();
    if (this.#intervalMs <= 0) return;
    this.#pinged = false;
    this.#schedule();
  }

  /** Bytes came from the server. */
  heard(): void {
    this.#heard = true;
  }

  cancel(): void {
    clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    // Unref'd: it only runs while connected, and the socket keeps the process alive.
    this.#timer = setUnrefTimer(() => this.#tick(), this.#intervalMs);
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#pinged && !this.#heard) {
      const ms = this.#intervalMs;
      this.#host.stale(
        new GossipError(
          'GOSSIP_ERR_TIMEOUT',
          `nothing heard from the server for two ping intervals (${2 * ms} ms): a ping went unanswered for ${ms} ms`,
        ),
      );
      return;
    }
    this.#heard = false;
    this.#pinged = true;
    this.#host.ping(this.#nonce++);
    this.#schedule();
  }
}
