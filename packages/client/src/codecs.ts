import { GossipError } from '@gossip/protocol';
import { Packr } from 'msgpackr';

/** Turns values into message data and back. Empty data is a tombstone and never reaches `decode`. */
export interface Codec<T> {
  readonly name: string;
  encode(value: T): Uint8Array;
  decode(data: Uint8Array): T;
}

/**
 * Bytes as they are (the default). `decode` returns the bytes it is given, not a copy:
 * the client hands it views of what it received, which nothing writes again, so a value
 * is safe to keep. A kept value holds in memory the block of received bytes it is a view
 * of (a replay's values share them); copy it (`Buffer.from(value)`) to keep one alone.
 */
export const bytesCodec: Codec<Uint8Array> = {
  name: 'bytes',
  encode: (value) => {
    if (!(value instanceof Uint8Array))
      throw new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', 'the bytes codec takes a Uint8Array or Buffer');
    return value;
  },
  decode: (data) => data,
};

const decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 strings; invalid UTF-8 fails to decode. */
export const utf8Codec: Codec<string> = {
  name: 'utf8',
  encode: (value) => {
    if (typeof value !== 'string')
      throw new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', 'the utf8 codec takes a string');
    return Buffer.from(value, 'utf8');
  },
  decode: (data) => decoder.decode(data),
};

/** JSON values as UTF-8 text. */
export function jsonCodec<T = unknown>(): Codec<T> {
  return {
    name: 'json',
    encode: (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) throw new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', 'value has no JSON form');
      return Buffer.from(text, 'utf8');
    },
    decode: (data) => JSON.parse(decoder.decode(data)) as T,
  };
}

/** MessagePack (msgpackr), bigints included. */
export function msgpackCodec<T = unknown>(): Codec<T> {
  const packr = new Packr({ useRecords: false, int64AsType: 'bigint', moreTypes: true });
  return {
    name: 'msgpack',
    encode: (value) => packr.pack(value),
    decode: (data) => packr.unpack(data) as T,
  };
}
