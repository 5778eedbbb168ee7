/**
 * The publisher users run: a GossipClient calling publish() per message, for the drivers of
 * publish.ts. Shared by the peers run (gossipd's W1 and W2) and the prefixes suite. Nothing
 * happens on import.
 */
import { bytesCodec, GossipClient } from '@gossip/client';
import type { Publisher } from './publish.js';

/**
 * A `Publisher` on a new GossipClient on `host:port` (bytes codec, echo off, live only, no
 * reconnect: a drop fails the run): one client.publish() per message, acked when it resolves.
 */
export async function clientPublisher(host: string, port: number): Promise<Publisher> {
  const c = new GossipClient({
    address: `${host}:${port}`,
    codec: bytesCodec,
    reconnect: () => null,
    since: 'now',
    echo: false,
  });
  await c.connect();
  const pub: Publisher = {
    send(id, data) {
      c.publish(id, data).then(
        () => pub.onAck(1),
        (e: Error) => pub.onError(e),
      );
    },
    flush: () => undefined, // the client writes what one synchronous run published in one write
    onAck: () => undefined,
    onError: () => undefined,
    close: () => c.close(),
  };
  c.on('error', (e) => pub.onError(e));
  return pub;
}
