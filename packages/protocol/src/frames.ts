import type { Epoch } from './epoch.js';
import type { ErrorCode } from './errors.js';
import type { AckStatus, Durability, FrameKind, ResyncReason } from './frame-kind.js';

/*
 * Decoded frames. Byte fields (`data`) are views: of the chunk the frame arrived in
 * when it arrived whole, or of a buffer the decoder allocated for that one frame when
 * it was split over chunks. The decoder never writes into either again, so a view
 * stays valid for as long as you hold it; copy it (`Buffer.from(view)`) before keeping
 * it for long, since a view keeps its whole chunk alive.
 */

/**
 * One prefix a hello subscribes to (rule B2): ids starting with `prefix` ("" matches
 * every id), replayed from `since`, or live only when `since` is null.
 */
export interface PrefixSpec {
  prefix: string;
  since: bigint | null;
}

/** What a client sends in its hello. */
export interface HelloOptions {
  /** Protocol version; defaults to the one this package speaks. */
  version?: number;
  /** Replay from this ts; `null`/absent means live only. */
  since?: bigint | null;
  /** The log identity the client last saw, if any. */
  epoch?: Epoch | null;
  /** Whether the server sends the client its own publishes and emits. Default true. */
  echo?: boolean;
  /** A name for logs and metrics. */
  name?: string;
  /** Auth token. */
  token?: string;
  /**
   * The prefixes to subscribe to (rule B2), each with its own since; the hello's own
   * `since` is then not used. Absent: the one prefix "" with the hello's `since`.
   */
  prefixes?: readonly PrefixSpec[];
}

/** What a server says in its welcome. */
export interface WelcomeOptions {
  version?: number;
  epoch: Epoch;
  newestTs: bigint;
  horizon: bigint | null;
  maxIdBytes: number;
  maxDataBytes: number;
  maxFrameBytes: number;
  server?: string;
  pingIntervalMs?: number;
  /** Ids one fetch may name on this server (rule W1); absent: the cap is not announced. */
  maxFetchIds?: number;
  /** Prefixes one connection may hold (rule B1); absent: no prefix subscriptions on this server. */
  maxPrefixes?: number;
  /** The longest prefix accepted, in bytes (rule B1); sent with `maxPrefixes`. */
  maxPrefixBytes?: number;
}

export interface HelloFrame {
  kind: typeof FrameKind.Hello;
  version: number;
  since: bigint | null;
  epoch: Epoch | null;
  echo: boolean;
  name: string | undefined;
  token: string | undefined;
  /** The hello's `prefixes` (rule B2); undefined when it named none: the one prefix "" with `since`. */
  prefixes: PrefixSpec[] | undefined;
}

export interface WelcomeFrame {
  kind: typeof FrameKind.Welcome;
  version: number;
  epoch: Epoch;
  newestTs: bigint;
  horizon: bigint | null;
  maxIdBytes: number;
  maxDataBytes: number;
  maxFrameBytes: number;
  server: string | undefined;
  pingIntervalMs: number | undefined;
  /** Ids one fetch may name (rule W1, Q1); undefined when the server did not say. */
  maxFetchIds: number | undefined;
  /** Prefixes one connection may hold (rule B1); undefined: the server has no prefix subscriptions. */
  maxPrefixes: number | undefined;
  /** The longest prefix accepted, in bytes (rule B1). */
  maxPrefixBytes: number | undefined;
}

export interface PublishFrame {
  kind: typeof FrameKind.Publish;
  reqId: number;
  ts: bigint;
  id: string;
  data: Buffer;
}

export interface EmitFrame {
  kind: typeof FrameKind.Emit;
  reqId: number;
  ts: bigint;
  id: string;
  data: Buffer;
}

export interface AckFrame {
  kind: typeof FrameKind.Ack;
  reqId: number;
  status: AckStatus;
  /**
   * A `Durability`, or a level a newer server added that this version does not know:
   * the field is open to new values (docs/PROTOCOL.md, "Open values").
   */
  durability: Durability | number;
  /** Set when `status` is `AckStatus.Error`. */
  code: ErrorCode | null;
  message: string;
}

export interface MessageFrame {
  kind: typeof FrameKind.Message;
  /** A sum of `MessageFlags`. */
  flags: number;
  ts: bigint;
  id: string;
  data: Buffer;
}

export interface ReplayDoneFrame {
  kind: typeof FrameKind.ReplayDone;
  /** Whether the replay was a full snapshot announced by a resync. */
  snapshot: boolean;
  count: number;
  newestTs: bigint;
}

export interface ResyncFrame {
  kind: typeof FrameKind.Resync;
  /** A `ResyncReason`, or one a newer server added (open to new values: docs/PROTOCOL.md, "Open values"). */
  reason: ResyncReason | number;
  horizon: bigint | null;
}

export interface FetchFrame {
  kind: typeof FrameKind.Fetch;
  reqId: number;
  ids: string[];
}

export type FetchEntry = { id: string; found: true; ts: bigint; data: Uint8Array } | { id: string; found: false };

export interface FetchResultFrame {
  kind: typeof FrameKind.FetchResult;
  reqId: number;
  more: boolean;
  entries: FetchEntry[];
}

export interface ErrorFrame {
  kind: typeof FrameKind.Error;
  code: ErrorCode;
  message: string;
}

export interface PingFrame {
  kind: typeof FrameKind.Ping;
  nonce: number;
}

export interface PongFrame {
  kind: typeof FrameKind.Pong;
  nonce: number;
  newestTs: bigint;
}

/** Adds a prefix to the connection (rule B3). */
export interface SubscribeFrame {
  kind: typeof FrameKind.Subscribe;
  reqId: number;
  prefix: string;
  /** Replay from this ts; null: live only. */
  since: bigint | null;
  /** The log identity `since` belongs to (rule H4), if any. */
  epoch: Epoch | null;
}

/** Drops a prefix from the connection (rule B4). */
export interface UnsubscribeFrame {
  kind: typeof FrameKind.Unsubscribe;
  reqId: number;
  prefix: string;
}

/** The end of one prefix's replay (rule B5): its replay-done. */
export interface PrefixDoneFrame {
  kind: typeof FrameKind.PrefixDone;
  prefix: string;
  snapshot: boolean;
  count: number;
  newestTs: bigint;
}

/** A full snapshot of one prefix follows (rule B6). */
export interface PrefixResyncFrame {
  kind: typeof FrameKind.PrefixResync;
  prefix: string;
  /** A `ResyncReason`, or one a newer server added (open to new values). */
  reason: ResyncReason | number;
  horizon: bigint | null;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | PublishFrame
  | EmitFrame
  | AckFrame
  | MessageFrame
  | ReplayDoneFrame
  | ResyncFrame
  | FetchFrame
  | FetchResultFrame
  | ErrorFrame
  | PingFrame
  | PongFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PrefixDoneFrame
  | PrefixResyncFrame;
