import { GossipError } from '@gossip/protocol';
import { invalidOption } from './errors.js';

export { hostPort } from '@gossip/protocol';

export interface Address {
  host: string;
  port: number;
  tls: boolean;
}

export const DEFAULT_PORT = 7420;

/** The `address` option: one address or several (GOSSIP_ERR_INVALID_ARGUMENT for none, or one that does not parse). */
export function parseAddresses(option: string | readonly string[]): Address[] {
  const list = typeof option === 'string' ? [option] : option;
  if (!Array.isArray(list) || list.length === 0)
    throw invalidOption('address must be an address or a non-empty array of them');
  return list.map((a) => {
    if (typeof a !== 'string') throw invalidOption('every address must be a string');
    return parseAddress(a);
  });
}

/** `host:port`, `gossip://host:port`, `gossips://host:port` (TLS), `[::1]:7420`; the port defaults to 7420. */
export function parseAddress(text: string): Address {
  let rest = text.trim();
  let tls = false;
  const scheme = /^([a-z]+):\/\//i.exec(rest);
  if (scheme) {
    const name = (scheme[1] as string).toLowerCase();
    if (name !== 'gossip' && name !== 'gossips') {
      throw new GossipError(
        'GOSSIP_ERR_INVALID_ARGUMENT',
        `address scheme must be gossip:// or gossips://, got ${name}://`,
      );
    }
    tls = name === 'gossips';
    rest = rest.slice(scheme[0].length).replace(/\/+$/, '');
  }
  let host = rest;
  let port = DEFAULT_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1] as string;
    if (v6[2]) port = Number(v6[2]);
  } else if (rest.includes(':')) {
    const i = rest.lastIndexOf(':');
    host = rest.slice(0, i);
    port = Number(rest.slice(i + 1));
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new GossipError(
      'GOSSIP_ERR_INVALID_ARGUMENT',
      `address must look like host:port, gossip://host:port or gossips://host:port, got ${JSON.stringify(text)}`,
    );
  }
  return { host, port, tls };
}
