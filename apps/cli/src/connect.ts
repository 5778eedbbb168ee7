import { readFileSync } from 'node:fs';
import { bytesCodec, GossipClient } from '@gossip/client';
import type { Io } from './common.js';

export interface ConnectionFlags {
  address?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
}

/**
 * A client from the connection flags and their environment variables. It does not
 * reconnect unless `reconnect`: a CLI call fails fast. With `prefixes`, it subscribes
 * to those alone (docs/PROTOCOL.md, B2).
 */
export function clientFrom(
  flags: ConnectionFlags,
  io: Io,
  since: 'all' | 'now' | bigint,
  reconnect = false,
  prefixes?: string[],
): GossipClient<Uint8Array> {
  const ca = flags.ca ?? io.env.GOSSIP_CA;
  return new GossipClient({
    // several, comma-separated: tried in turn (@gossip/client's `address`)
    address: (flags.address ?? io.env.GOSSIP_ADDRESS ?? '127.0.0.1:7420')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== ''),
    token: flags.token ?? io.env.GOSSIP_TOKEN,
    codec: bytesCodec,
    since,
    name: 'gossip-cli',
    ...(ca ? { tls: { ca: readFileSync(ca) } } : {}),
    ...(reconnect ? {} : { reconnect: () => null }),
    ...(prefixes ? { prefixes } : {}),
  });
}
