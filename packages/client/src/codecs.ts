import { GossipError } from '@gossip/protocol';
import { Packr } from 'msgpackr';

/** Turns values into message data and back. Empty data is a tombstone and never reaches `decode`. */
export interface Codec<T> {
  readonly name: string;
  encode(value: T): Uint8Array;
  decode(data: Uint8Array): T;
}

/**
 * Bytes as they are (the default). `decode` returns a copy: safe to keep, without holding
 * in memory the whole block of received bytes that a view of them would (a `GossipState`
 * under churn would keep many such blocks for a few live values each).
 */
export const bytesCodec: Codec<Uint8Array> = {
  name: 'bytes',
  encode: (value) => {
    if (!(value instanceof Uint8Array))
      throw new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', 'the bytes codec takes a Uint8Array or Buffer');
    return value;
  },
  decode: (data) => Buffer.from(data),
};

/** Keeps a leading U+FEFF: a string the utf8 codec encoded with one decodes with it. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Drops a leading byte order mark, as JSON parsers may (RFC 8259, 8.1). */
const jsonText = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 strings, kept as they are (a leading U+FEFF too); invalid UTF-8 fails to decode. */
export const utf8Codec: Codec<string> = {
  name: 'utf8',
  encode: (value) => {
    if (typeof value !== 'string')
      throw new GossipError('GOSSIP_ERR_INVALID_ARGUMENT', 'the utf8 codec takes a string');
    return Buffer.from(value, 'utf8');
  },
  decode: (data) => utf8.decode(data),
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
    decode: (data) => JSON.parse(jsonText.decode(data)) as T,
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
