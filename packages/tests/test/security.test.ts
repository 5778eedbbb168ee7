import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AckStatus, FrameKind, now } from '@gossip/protocol';
import { type Gossipd, RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { fatalError, harness, received } from './harness.js';

// Auth tokens, TLS, and the refusal to listen on a public address without auth.

const h = harness();

// TEST-ONLY certificate and key: self-signed for CN=localhost / 127.0.0.1, made with
//   openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost \
//     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
// The private key is public in this repository: never use them for anything else.
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const CERT = fixture('tls-cert.pem');
const KEY = fixture('tls-key.pem');

/** A hello with `token` is refused with GOSSIP_ERR_UNAUTHORIZED and the connection closed. */
async function expectRefused(d: Gossipd, token: string | undefined): Promise<void> {
  const c = await h.open(d.port);
  c.send(c.enc.hello(token === undefined ? { since: null } : { since: null, token }).take());
  const error = await fatalError(c);
  expect(error.code).toBe('GOSSIP_ERR_UNAUTHORIZED');
  expect(received(c, FrameKind.Welcome)).toBe(false);
}

/** Tokens "a" and "b" work, a missing or wrong one does not, and the failures are counted. */
async function checkTokens(d: Gossipd): Promise<void> {
  for (const token of ['a', 'b']) {
    const c = await h.connect(d.port, { since: null, token });
    await c.replay();
    expect((await c.publish('k', now(), token)).status).toBe(AckStatus.Accepted);
  }
  await expectRefused(d, undefined);
  await expectRefused(d, 'c');
  await expectRefused(d, '');
  expect(await d.metric('gossip_auth_failures_total')).toBe(3);
  expect(d.logs.filter((l) => l.msg === 'auth failed')).toHaveLength(3);
}

describe('auth', () => {
  it('auth - with --token a --token b only hellos with a or b get a welcome', async () => {
    const d = await h.start({ args: ['--token', 'a', '--token', 'b'] });
    await checkTokens(d);
    // Plain tokens are never logged.
    expect(JSON.stringify(d.logs)).not.toMatch(/"token"/);
  });

  it('auth - GOSSIP_TOKENS takes comma-separated tokens', async () => {
    const d = await h.start({ env: { GOSSIP_TOKENS: 'a, b' } });
    await checkTokens(d);
  });

  it('auth - --token-file reads one token per line, skipping blanks and comments', async () => {
    const dir = await h.tmp();
    const file = join(dir, 'tokens');
    await writeFile(file, '# service tokens\na\n\n  b  \n');
    const d = await h.start({ args: ['--token-file', file] });
    await checkTokens(d);
  });

  it('auth - a missing --token-file exits 2 with a message', async () => {
    const dir = await h.tmp();
    const run = await h.spawn([
      '--data-dir',
      dir,
      '--port',
      '0',
      '--admin-port',
      'off',
      '--token-file',
      '/nonexistent',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--token-file/);
  });

  it('auth - without tokens any hello is welcome, with or without a token', async () => {
    const d = await h.start();
    await h.connect(d.port, { since: null });
    await h.connect(d.port, { since: null, token: 'anything' });
    expect(await d.metric('gossip_auth_failures_total')).toBe(0);
  });
});

describe('tls', () => {
  it('tls - with --tls-cert and --tls-key gossipd serves TLS', async () => {
    const d = await h.start({ args: ['--tls-cert', CERT, '--tls-key', KEY] });
    expect(d.logs.find((l) => l.msg.includes('listening on gossips://'))).toMatchObject({ tls: true });
    const ca = readFileSync(CERT);
    const a = await h.connect(d.port, { since: null }, { ca, servername: 'localhost' });
    const b = await h.connect(d.port, { since: null }, { ca, servername: 'localhost' });
    await a.replay();
    await b.replay();
    const ts = now();
    expect((await a.publish('k', ts, 'over tls')).status).toBe(AckStatus.Accepted);
    expect(await b.next((f) => f.kind === FrameKind.Message)).toMatchObject({ id: 'k', ts });
  });

  it('tls - a plain TCP client gets no welcome from a TLS listener', async () => {
    const d = await h.start({ args: ['--tls-cert', CERT, '--tls-key', KEY] });
    const plain = await h.open(d.port);
    plain.send(plain.enc.hello({ since: null }).take());
    await plain.closed;
    expect(received(plain, FrameKind.Welcome)).toBe(false);
    // The listener still serves TLS clients.
    const c = await h.connect(d.port, { since: null }, { ca: readFileSync(CERT), servername: 'localhost' });
    expect(c.welcome.version).toBe(1);
  });

  it('tls - a client that does not trust the certificate cannot connect', async () => {
    const d = await h.start({ args: ['--tls-cert', CERT, '--tls-key', KEY] });
    await expect(RawClient.open(d.port, { servername: 'localhost' })).rejects.toThrow(/self-signed|certificate/i);
  });

  it('tls - --tls-cert without --tls-key exits 2', async () => {
    const dir = await h.tmp();
    const run = await h.spawn(['--data-dir', dir, '--port', '0', '--admin-port', 'off', '--tls-cert', CERT]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--tls-cert and --tls-key/);
  });
});

describe('bind', () => {
  it('bind - --host 0.0.0.0 without tokens exits 2 naming --token and --insecure', async () => {
    const dir = await h.tmp();
    const run = await h.spawn([
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--admin-port',
      'off',
      '--data-dir',
      dir,
      '--log-format',
      'json',
    ]);
    expect(run.code).toBe(2);
    expect(run.port).toBeUndefined();
    const fatal = run.logs.find((l) => l.code === 'GOSSIP_ERR_INSECURE');
    expect(fatal?.msg).toMatch(/--token/);
    expect(fatal?.msg).toMatch(/--insecure/);
  });

  it('bind - --host 0.0.0.0 with --insecure starts', async () => {
    const d = await h.start({ args: ['--host', '0.0.0.0', '--insecure'] });
    expect(d.logs.find((l) => l.msg.startsWith('gossipd') && l.msg.includes('listening on'))).toMatchObject({
      host: '0.0.0.0',
      auth: false,
    });
    await h.connect(d.port, { since: null });
  });

  it('bind - --host 0.0.0.0 with a token starts', async () => {
    const d = await h.start({ args: ['--host', '0.0.0.0', '--token', 'secret'] });
    expect(d.logs.find((l) => l.msg.startsWith('gossipd') && l.msg.includes('listening on'))).toMatchObject({
      host: '0.0.0.0',
      auth: true,
    });
    await h.connect(d.port, { since: null, token: 'secret' });
    await expectRefused(d, undefined);
  });
});
