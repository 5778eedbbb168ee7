import type { AckStatus, Durability, Epoch, ErrorCode, FetchFrame, FrameEncoder } from '@gossip/protocol';
import type { Publisher } from './context.js';
import type { Paced } from './pacing.js';
import type { ReadHold } from './read-gate.js';

/**
 * What a frame handler may do to its connection, and no more (nats.js's parser knows
 * only a `Dispatcher`): connection.ts implements it, tests fake it. Handlers import this
 * module, never connection.ts.
 */
export interface Session extends Publisher {
  /** For logs. */
  readonly id: number;
  /** The peer's address and port (`127.0.0.1:50412`), read at the accept. */
  readonly remote: string;
  /** The client's name from its hello (H1). */
  readonly name: string | undefined;
  /** That name as the log shows it (events.ts `loggedName`), made once at the hello. */
  readonly client: string | undefined;
  readonly closed: boolean;
  /**
   * The connection's own frames (acks, pongs, the welcome) are encoded here; `touch`
   * sends them at the tick's flush, behind the tick's broadcast (A4).
   */
  readonly enc: FrameEncoder;
  /** Marks the connection for the tick's flush of its own frames. */
  touch(): void;
  /** An ack among the own frames (`enc.ack`, then `touch`). */
  ack(reqId: number, status: AckStatus, durability: Durability, code?: ErrorCode, message?: string): void;
  /**
   * Frames made by an encoder of their own (fetch results), after the own frames encoded
   * so far; judged against the outbound cap.
   */
  send(frames: Buffer): void;
  /** Sends an error frame and closes (E2). */
  fatal(code: ErrorCode, message: string): void;
  /** What waits for the client: a fetch follows the reader's pace by it (Q3). */
  readonly out: Paced;
  /** Stops reading the socket for `reason` until it is released. */
  hold(reason: ReadHold): void;
  release(reason: ReadHold): void;
  /**
   * Bytes of publishes on their way to the log (read-gate.ts `InflightBytes`): past its
   * cap the socket is not read until half of them are settled (P5).
   */
  readonly publishing: { add(bytes: number): void; done(bytes: number): void };
  /** The connection's fetches, answered one at a time (handlers/fetch.ts). */
  readonly fetches: { add(f: FetchFrame): void };
  /** The connection's prefixes (handlers/subscribe.ts, subscriptions.ts). */
  readonly prefixes: PrefixSet;
}

/** The prefixes a connection holds, as subscribe and unsubscribe change them (docs/PROTOCOL.md, B1, B3, B4). */
export interface PrefixSet {
  /** How many it holds (a hello that named none holds ""). */
  readonly size: number;
  has(prefix: string): boolean;
  /**
   * Adds `prefix`, checked and acked by the caller: matched from now on, replayed from
   * `since` in its turn (live only when null), then its prefix-done (B5).
   */
  subscribe(prefix: string, since: bigint | null, epoch: Epoch | null): void;
  /**
   * Drops `prefix`: no longer matched; its replay stops, and its prefix-done never comes
   * (B4). `stopped` is called once nothing more of its replay will be sent: at once, or
   * once the batch it was reading is queued.
   */
  unsubscribe(prefix: string, stopped?: () => void): void;
}
