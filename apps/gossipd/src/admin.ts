import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TokenSet } from '@gossip/server';
import type { Registry } from 'prom-client';

/** Scrapers and probes at once, at most: more are closed as they connect. */
const ADMIN_MAX_CONNECTIONS = 16;
/**
 * A connection that has not sent a whole request in this long is closed, checked this
 * often: ADMIN_MAX_CONNECTIONS idle or half-sent connections hold the listener for
 * seconds, not the minutes of Node's defaults.
 */
const ADMIN_REQUEST_TIMEOUT_MS = 5_000;
const ADMIN_TIMEOUT_CHECK_MS = 1_000;

export interface AdminHooks {
  isReady(): boolean;
  /** What /readyz says while not ready. Default `recovering`. */
  notReadyReason?(): string;
  /** Runs a compaction now; resolves with its result as JSON-able fields. */
  compact(): Promise<object>;
  /** gossipd's auth tokens: with any set, POST /compact needs one (the GETs stay open). */
  tokens: TokenSet;
  /** A POST /compact with a missing or wrong token was refused. */
  onAuthFailure(remote: string | undefined): void;
}

/**
 * The admin listener: `GET /healthz` (the process runs), `GET /readyz` (recovery is
 * done and the server accepts clients), `GET /metrics` (Prometheus text),
 * `POST /compact` (compact the log now; with tokens set, only with
 * `Authorization: Bearer <token>`). The GETs need no token, as Prometheus scrapers and
 * health probes expect: they read, and change nothing.
 */
export async function startAdmin(
  host: string,
  port: number,
  registry: () => Promise<Registry>,
  hooks: AdminHooks,
): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer(
    {
      headersTimeout: ADMIN_REQUEST_TIMEOUT_MS,
      requestTimeout: ADMIN_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: ADMIN_TIMEOUT_CHECK_MS,
    },
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/compact' && req.method === 'POST') {
        // TokenSet hashes and compares in constant time; without tokens it lets everything through.
        if (!hooks.tokens.verify(bearer(req.headers.authorization))) {
          hooks.onAuthFailure(req.socket.remoteAddress);
          res
            .writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="gossipd"' })
            .end(
              'unauthorized: POST /compact needs one of the auth tokens (--token, --token-file, GOSSIP_TOKENS) ' +
                'as the header "Authorization: Bearer <token>"\n',
            );
          return;
        }
        hooks.compact().then(
          (result) => res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(result)}\n`),
          (error: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
        );
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = hooks.isReady();
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
          .end(ready ? 'ready\n' : `${hooks.notReadyReason?.() ?? 'recovering'}\n`);
      } else if (path === '/metrics') {
        registry()
          .then(async (r) => ({ text: await r.metrics(), type: r.contentType }))
          .then(
            ({ text, type }) => res.writeHead(200, { 'content-type': type }).end(text),
            (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
          );
      } else {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try GET /healthz, /readyz, /metrics or POST /compact\n');
      }
    },
  );
  // Its descriptors come out of the reserve the server keeps beside the store's (descriptors.ts).
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, address: server.address() as AddressInfo };
}

/** The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive (RFC 7235). */
function bearer(header: string | undefined): string | undefined {
  return header === undefined ? undefined : /^Bearer +(.+)$/i.exec(header)?.[1];
}
