/** Frame kinds: the byte after every frame's length (docs/PROTOCOL.md, rule F2). */
export const FrameKind = {
  Hello: 0x01,
  Welcome: 0x02,
  Publish: 0x03,
  Emit: 0x04,
  Ack: 0x05,
  Message: 0x06,
  ReplayDone: 0x07,
  Resync: 0x08,
  Fetch: 0x09,
  FetchResult: 0x0a,
  Error: 0x0b,
  Ping: 0x0c,
  Pong: 0x0d,
  /** Rules B3–B6: sent only to and by peers that announced prefix subscriptions (F2). */
  Subscribe: 0x0e,
  Unsubscribe: 0x0f,
  PrefixDone: 0x10,
  PrefixResync: 0x11,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Bits of a message frame's flags byte (rule M2). */
export const MessageFlags = {
  /** Sent by emit: never stored, never replayed. */
  Transient: 0x01,
  /** Sent as part of a replay or snapshot, before replay-done. */
  Replayed: 0x02,
} as const;

/** An ack's outcome (rule A2). */
export const AckStatus = {
  Accepted: 0,
  Stale: 1,
  Error: 2,
} as const;
export type AckStatus = (typeof AckStatus)[keyof typeof AckStatus];

/** How far a write had got when it was acked (rule A3). */
export const Durability = {
  /** Nothing was written: a stale publish, an error, an emit. */
  None: 0,
  /** Written to the operating system; lost if the machine (not the process) dies before the next fsync. */
  Written: 1,
  /** fsynced: survives `kill -9` and power loss. */
  Synced: 2,
  /**
   * Held by the quorum of a cluster's replicated log (cluster mode, docs/CLUSTER.md):
   * survives the loss of any minority of its servers and of any edge.
   */
  Replicated: 3,
} as const;
export type Durability = (typeof Durability)[keyof typeof Durability];

/** Why the server sends a full snapshot instead of a replay (rule R3). */
export const ResyncReason = {
  /** The client's since is older than the newest tombstone compaction dropped. */
  Horizon: 1,
  /** The client last saw another log (a new data folder, a restored backup). */
  Epoch: 2,
  /** The client asked for everything and has no epoch: sent as a snapshot so it can drop what it holds. */
  Full: 3,
} as const;
export type ResyncReason = (typeof ResyncReason)[keyof typeof ResyncReason];
