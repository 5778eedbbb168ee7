import { readFileSync } from 'node:fs';
import { type ConnectionOptions, jwtAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';
import type { ClusterAuth } from '../config.js';
import { type Creds, parseCreds, parseNkeySeed } from './credentials.js';

const encoder = new TextEncoder();

/**
 * Reads `file` with `parse` at each call. A file that cannot be read or parsed (caught
 * while it is being replaced, say) gives the last one that could, with a warning: a NATS
 * client whose authenticator throws gives its connection up for good.
 */
function fromFile<T>(file: string, parse: (text: string) => T | undefined, warn: (message: string) => void): () => T {
  let last: T | undefined;
  return () => {
    let why: string;
    try {
      const got = parse(readFileSync(file, 'utf8'));
      if (got !== undefined) {
        last = got;
        return got;
      }
      why = 'it does not hold what it should';
    } catch (error) {
      why = (error as Error).message;
    }
    if (last === undefined) throw new Error(`cannot use ${file}: ${why}`);
    warn(`cannot use ${file} (${why}): using what it held before`);
    return last;
  };
}

/**
 * The NATS connection options for how an edge proves itself. The credentials and nkey
 * files are read at each connect, not once: a file an operator replaces (a rotated user
 * JWT, say) takes effect at the next reconnect, with no restart.
 */
export function natsAuth(
  auth: ClusterAuth = {},
  warn: (message: string) => void = () => undefined,
): Partial<ConnectionOptions> {
  const { credsFile, nkeyFile, ...plain } = auth;
  if (credsFile !== undefined) {
    const read = fromFile<Creds>(credsFile, parseCreds, warn);
    // one read per connect: the JWT is asked for first, then the seed that signs with it
    let creds: Creds | undefined;
    return {
      authenticator: jwtAuthenticator(
        () => {
          creds = read();
          return creds.jwt;
        },
        () => encoder.encode((creds ?? read()).seed),
      ),
    };
  }
  if (nkeyFile !== undefined) {
    const seed = fromFile(nkeyFile, parseNkeySeed, warn);
    return { authenticator: nkeyAuthenticator(() => encoder.encode(seed())) };
  }
  return plain;
}
