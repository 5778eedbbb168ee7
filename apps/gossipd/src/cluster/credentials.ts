/**
 * NATS credential files, read the way nsc and the nats CLI write and read them. Pure:
 * config.ts checks a file at the start with these, and the edge reads it at each connect
 * with the same (auth.ts), so that a file the start took is one the connect can use.
 */

import { fromSeed } from '@nats-io/nkeys';

/** A user JWT and its nkey seed, from a credentials file. */
export interface Creds {
  jwt: string;
  seed: string;
}

/** A user nkey seed: `SU` and base32. */
const USER_SEED = /^SU[A-Z2-7]{50,}$/;

/**
 * Whether `line` is a user seed the NATS client can sign with: its shape, and its
 * checksum (a seed with a letter mistyped, or cut short, would fail every connect).
 */
function isUserSeed(line: string): boolean {
  if (!USER_SEED.test(line)) return false;
  try {
    fromSeed(Buffer.from(line, 'ascii'));
    return true;
  } catch {
    return false;
  }
}
const BEGIN = /^-{3,}\s*BEGIN ([A-Z ]+?)\s*-{3,}$/;
const END = /^-{3,}\s*END [A-Z ]+?\s*-{3,}$/;

/** Lines without their ends (LF or CRLF), a byte order mark or the blanks around them. */
function lines(text: string): string[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim());
}

/**
 * The JWT and seed of a credentials file: the first line inside the `BEGIN NATS USER
 * JWT` block and inside the `BEGIN USER NKEY SEED` block. Undefined when either is
 * missing or not of its kind.
 */
export function parseCreds(text: string): Creds | undefined {
  const blocks = new Map<string, string>();
  let open: string | undefined;
  for (const line of lines(text)) {
    const begin = BEGIN.exec(line);
    if (begin) {
      open = begin[1];
      continue;
    }
    if (END.test(line)) {
      open = undefined;
      continue;
    }
    if (open !== undefined && line !== '' && !blocks.has(open)) blocks.set(open, line);
  }
  const jwt = blocks.get('NATS USER JWT');
  const seed = blocks.get('USER NKEY SEED');
  if (jwt === undefined || seed === undefined || jwt.split('.').length !== 3 || !isUserSeed(seed)) return undefined;
  return { jwt, seed };
}

/** The user seed of an nkey file: its first line that is one (comments and a decorated block around it are allowed). */
export function parseNkeySeed(text: string): string | undefined {
  return lines(text).find(isUserSeed);
}
