/**
 * The publisher users run: a GossipClient calling publish() per message, for the drivers of
 * publish.ts. Shared by the peers run (gossipd's W1 and W2) and the prefixes suite. Nothing
 * happens on import.
 */
import { bytesCodec, type Codec, GossipClient, jsonCodec } from '@gossip/client';
import { PAYLOAD_BYTES, type Publisher } from './publish.js';

/** The JSON value the JSON publisher sends for every message: PAYLOAD_BYTES of JSON text. */
const JSON_VALUE = { text: 'a'.repeat(PAYLOAD_BYTES - '{"text":""}'.length) };

/**
 * A `Publisher` on a new GossipClient on `host:port` (echo off, live only, no reconnect: a
 * drop fails the run): one client.publish() per message, acked when it resolves. With the
 * bytes codec (the default) it publishes the driver's data; with `codec: 'json'`, a
 * GossipClient with the JSON codec publishes one object per message whose JSON text is as
 * long as that data (the driver's bytes are not used).
 */
export function clientPublisher(
  host: string,
  port: number,
  options: { codec?: 'bytes' | 'json' } = {},
): Promise<Publisher> {
  return options.codec === 'json'
    ? publisher(host, port, jsonCodec<typeof JSON_VALUE>(), () => JSON_VALUE)
    : publisher(host, port, bytesCodec, (data) => data);
}

/** The publisher over a GossipClient with `codec`, publishing `valueFor(the driver’s data)` per message. */
async function publisher<T>(
  host: string,
  port: number,
  codec: Codec<T>,
  valueFor: (data: Uint8Array) => T,
): Promise<Publisher> {
  const c = new GossipClient({ address: `${host}:${port}`, codec, reconnect: () => null, since: 'now', echo: false });
  await c.connect();
  const acked = () => pub.onAck(1);
  const failed = (e: Error) => pub.onError(e);
  const pub: Publisher = {
    send: (id, data) => void c.publish(id, valueFor(data)).then(acked, failed),
    flush: () => undefined, // the client writes what one synchronous run published in one write
    onAck: () => undefined,
    onError: () => undefined,
    close: () => c.close(),
  };
  c.on('error', failed);
  return pub;
}
