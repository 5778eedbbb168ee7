import type { AppendResult } from '@gossip/store';

/**
 * A publish held by the quorum of a replicated log of record (cluster mode,
 * docs/CLUSTER.md), and applied to this server's store.
 */
export interface Replicated {
  readonly status: 'accepted';
  readonly durability: 'replicated';
}

export const REPLICATED: Replicated = Object.freeze({ status: 'accepted', durability: 'replicated' });

/**
 * A publish the log of record took, and replaced with a newer one of the same id before
 * it reached this server's store: acked as accepted, never broadcast (its clients have,
 * or will have, the newer one).
 */
export const SUPERSEDED: Replicated = Object.freeze({ status: 'accepted', durability: 'replicated' });

/** How a publish settled: by the server's own store, or by a log of record outside it. */
export type PublishOutcome = AppendResult | Replicated;

/**
 * The log of record when it is not the server's own store: gossipd's cluster edge
 * (docs/CLUSTER.md). The server's store is then a copy the log of record keeps up to
 * date; the server still serves replay, snapshot, fetch and the horizon from it.
 */
export interface RecordLog {
  /**
   * Takes a publish. Settles `accepted` once the log of record holds it and it is applied
   * to the store (the server then broadcasts it to its own connections), `stale` when the
   * log holds an equal or newer ts for the id, or fails with a coded `GossipError`
   * (`GOSSIP_ERR_CLUSTER_UNAVAILABLE` while the log cannot be reached).
   */
  append(id: string, ts: bigint, data: Uint8Array): Promise<PublishOutcome>;
  /** Hands an emit of this server's clients to the log's other servers, never stored. */
  emit(id: string, ts: bigint, data: Uint8Array): void;
}
