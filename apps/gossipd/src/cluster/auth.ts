import { readFileSync } from 'node:fs';
import { type ConnectionOptions, credsAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';
import type { ClusterAuth } from '../config.js';

/**
 * The NATS connection options for how an edge proves itself. The credentials and nkey
 * files are read at each connect, not once: a file an operator replaces in place (a
 * rotated user JWT, say) takes effect at the next reconnect, with no restart.
 */
export function natsAuth(auth: ClusterAuth = {}): Partial<ConnectionOptions> {
  const { credsFile, nkeyFile, ...plain } = auth;
  if (credsFile !== undefined) return { authenticator: credsAuthenticator(() => readFileSync(credsFile)) };
  if (nkeyFile !== undefined) {
    const seed = () => new TextEncoder().encode(readFileSync(nkeyFile, 'utf8').trim());
    return { authenticator: nkeyAuthenticator(seed) };
  }
  return plain;
}
