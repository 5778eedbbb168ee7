/**
 * The publisher users run: a GossipClient calling publish() per message, for the drivers of
 * publish.ts. Shared by the peers run (gossipd's W1 and W2) and the prefixes suite. Nothing
 * happens on import.
 */
import { bytesCodec, GossipClient, jsonCodec } from '@gossip/client';
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
export async function clientPublisher(
  host: string,
  port: number,
  options: { codec?: 'bytes' | 'json' } = {},
): Promise<Publisher> {
  const common = { address: `${host}:${port}`, reconnect: () => null, since: 'now', echo: false } as const;
  const json = options.codec === 'json';
  const c = json
    ? new GossipClient({ ...common, codec: jsonCodec<typeof JSON_VALUE>() })
    : new GossipClient({ ...common, codec: bytesCodec });
  await c.connect();
  const acked = () => pub.onAck(1);
  const failed = (e: Error) => pub.onError(e);
  const pub: Publisher = {
    send: json
      ? (id) => void (c as GossipClient<typeof JSON_VALUE>).publish(id, JSON_VALUE).then(acked, failed)
      : (id, data) => void (c as GossipClient<Uint8Array>).publish(id, data).then(acked, failed),
    flush: () => undefined, // the client writes what one synchronous run published in one write
    onAck: () => undefined,
    onError: () => undefined,
    close: () => c.close(),
  };
  c.on('error', failed);
  return pub;
}
