import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createUser } from '@nats-io/nkeys';
import type { Auth, Authenticator, JwtAuth, NKeyAuth } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { natsAuth } from '../src/cluster/auth.js';
import { parseCreds, parseNkeySeed } from '../src/cluster/credentials.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'gossip-auth-'));
  dirs.push(d);
  return d;
}

/** A credentials file's text for a new user of a new account, and that user's public key. */
async function creds(name: string): Promise<{ text: Uint8Array; user: string }> {
  const account = createAccount();
  const user = createUser();
  return { text: fmtCreds(await encodeUser(name, user, account), user), user: user.getPublicKey() };
}

/** What the edge's NATS client sends in its CONNECT for this nonce. */
function answer(authenticator: Authenticator | Authenticator[] | undefined, nonce: string): Auth {
  expect(typeof authenticator).toBe('function');
  return (authenticator as Authenticator)(nonce);
}

describe('the NATS authentication of an edge', () => {
  it('auth - a user, a token: passed through as they are', () => {
    expect(natsAuth({ user: 'edge', pass: 'secret' })).toEqual({ user: 'edge', pass: 'secret' });
    expect(natsAuth({ token: 't' })).toEqual({ token: 't' });
    expect(natsAuth()).toEqual({});
  });

  it('auth - a credentials file is read at each connect: a file replaced in place is used at the next', async () => {
    const file = join(await tmp(), 'edge.creds');
    const first = await creds('first');
    await writeFile(file, first.text);
    const { authenticator } = natsAuth({ credsFile: file });
    const a = answer(authenticator, 'nonce-1') as JwtAuth & NKeyAuth;
    expect(decode(a.jwt).name).toBe('first');
    expect(a.nkey).toBe(first.user);
    expect(a.sig).toEqual(expect.any(String));

    const second = await creds('second');
    await writeFile(file, second.text);
    const b = answer(authenticator, 'nonce-2') as JwtAuth & NKeyAuth;
    expect(decode(b.jwt).name).toBe('second');
    expect(b.nkey).toBe(second.user);
  });

  it('auth - credentials files as tools write them: CRLF, blanks at line ends, no last newline, a byte order mark', async () => {
    const { text } = await creds('edge');
    const lf = new TextDecoder().decode(text);
    const expected = parseCreds(lf);
    expect(expected?.jwt.split('.')).toHaveLength(3);
    expect(expected?.seed).toMatch(/^SU/);
    for (const variant of [
      lf.replace(/\n/g, '\r\n'),
      lf.replace(/-----\n/g, '----- \n'),
      lf.trimEnd(),
      `\uFEFF${lf}`,
      lf.replace(/^/gm, '  '),
    ])
      expect(parseCreds(variant)).toEqual(expected);
    // not a credentials file: either block missing, or a seed that is not a user's
    expect(parseCreds(lf.slice(0, lf.indexOf('-----BEGIN USER NKEY SEED')))).toBeUndefined();
    expect(parseCreds(lf.slice(lf.indexOf('-----BEGIN USER NKEY SEED')))).toBeUndefined();
    const seed = expected?.seed as string;
    expect(parseCreds(lf.replace(seed, `SA${seed.slice(2)}`))).toBeUndefined();
    expect(parseCreds('a user: edge\n')).toBeUndefined();
  });

  it('auth - nkey files: the seed alone, or among comments and a decorated block', () => {
    const seed = new TextDecoder().decode(createUser().getSeed());
    for (const text of [
      seed,
      `${seed}\r\n`,
      `# the edge's seed\n${seed}\n`,
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
    ])
      expect(parseNkeySeed(text)).toBe(seed);
    expect(parseNkeySeed(seed.replace(/^SU/, 'SA'))).toBeUndefined();
    expect(parseNkeySeed('')).toBeUndefined();
  });

  it('auth - a file caught empty (being replaced) gives the last one that parsed, with a warning; none before is an error', async () => {
    const file = join(await tmp(), 'edge.creds');
    const first = await creds('first');
    await writeFile(file, first.text);
    const warnings: string[] = [];
    const { authenticator } = natsAuth({ credsFile: file }, (m) => warnings.push(m));
    expect((answer(authenticator, 'n1') as JwtAuth & NKeyAuth).nkey).toBe(first.user);
    await writeFile(file, '');
    expect((answer(authenticator, 'n2') as JwtAuth & NKeyAuth).nkey).toBe(first.user);
    expect(warnings).toEqual([expect.stringContaining('using what it held before')]);

    const never = join(await tmp(), 'never.nk');
    await writeFile(never, 'not a seed\n');
    const nk = natsAuth({ nkeyFile: never });
    expect(() => answer(nk.authenticator, 'n')).toThrow(/cannot use .*never\.nk/);
  });

  it('auth - an nkey seed file: the public key and a signature of the nonce, read at each connect', async () => {
    const file = join(await tmp(), 'edge.nk');
    const user = createUser();
    await writeFile(file, `${new TextDecoder().decode(user.getSeed())}\n`);
    const { authenticator } = natsAuth({ nkeyFile: file });
    const a = answer(authenticator, 'nonce-1') as NKeyAuth;
    expect(a.nkey).toBe(user.getPublicKey());
    const sig = Buffer.from(a.sig, 'base64url');
    expect(user.verify(new TextEncoder().encode('nonce-1'), sig)).toBe(true);

    const other = createUser();
    await writeFile(file, new TextDecoder().decode(other.getSeed()));
    expect((answer(authenticator, 'nonce-2') as NKeyAuth).nkey).toBe(other.getPublicKey());
  });
});
