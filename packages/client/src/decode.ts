import { type FetchEntry, GossipError, MessageFlags, type MessageFrame } from '@gossip/protocol';
import type { Codec } from './codecs.js';
import type { ClientMessage } from './message-source.js';

export interface FetchResult<T> {
  id: string;
  found: boolean;
  ts?: bigint;
  value?: T;
  deleted?: boolean;
}

/**
 * A message frame as the client hands it on (M1, M2): its flags spelled out and its
 * value decoded; empty data is a tombstone and never reaches the codec. A codec that
 * throws gives GOSSIP_ERR_DECODE, returned rather than thrown: it is an `error` event,
 * never a crash of the connection.
 */
export function decodeMessage<T>(codec: Codec<T>, f: MessageFrame): ClientMessage<T> | GossipError {
  const deleted = f.data.byteLength === 0;
  let value: T | undefined;
  if (!deleted) {
    try {
      value = codec.decode(f.data);
    } catch (error) {
      return new GossipError('GOSSIP_ERR_DECODE', `the ${codec.name} codec could not decode ${f.id} @ ${f.ts}`, {
        cause: error,
      });
    }
  }
  return {
    id: f.id,
    ts: f.ts,
    value,
    data: f.data,
    deleted,
    transient: (f.flags & MessageFlags.Transient) !== 0,
    replayed: (f.flags & MessageFlags.Replayed) !== 0,
  };
}

/**
 * One result per id of `ids`, in their order, repeats included, from the entries of the
 * server's answer (each distinct id once, Q2), with a value decoded for each mention so
 * repeats share no object. Throws GOSSIP_ERR_DECODE (the codec's error as `cause`) for
 * a value the codec cannot decode, GOSSIP_ERR_MALFORMED_FRAME for an id the answer left out.
 */
export function fetchResults<T>(codec: Codec<T>, ids: string[], byId: Map<string, FetchEntry>): FetchResult<T>[] {
  return ids.map((id): FetchResult<T> => {
    const e = byId.get(id);
    if (!e) throw new GossipError('GOSSIP_ERR_MALFORMED_FRAME', `the server's fetch result left out ${id}`);
    if (!e.found) return { id, found: false };
    const deleted = e.data.byteLength === 0;
    return { id, found: true, ts: e.ts, deleted, value: deleted ? undefined : decodeFetched(codec, e) };
  });
}

function decodeFetched<T>(codec: Codec<T>, e: FetchEntry & { found: true }): T {
  try {
    return codec.decode(e.data);
  } catch (error) {
    throw new GossipError(
      'GOSSIP_ERR_DECODE',
      `the ${codec.name} codec could not decode the fetched ${e.id} @ ${e.ts}`,
      {
        cause: error,
      },
    );
  }
}
