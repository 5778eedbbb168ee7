import { type HelloFrame, MIN_TS, PROTOCOL_VERSION } from '@gossip/protocol';
import type { ServerContext } from '../context.js';
import { loggedName } from '../events.js';
import type { Session } from '../session.js';
import { announcedLimits, helloPrefixesRefusal } from './check.js';

/**
 * Hello: version, auth and the prefixes it names, then the welcome (docs/PROTOCOL.md,
 * H1, H2, W1, B2). Returns whether the hello was accepted; the connection's state
 * machine then takes it from there: which replays, the resyncs, the live stream
 * (connection.ts, subscriptions.ts, R1, R3, R4, B5).
 */
export function onHello(session: Session, ctx: ServerContext, hello: HelloFrame): boolean {
  if (hello.version !== PROTOCOL_VERSION) {
    session.fatal(
      'GOSSIP_ERR_UNSUPPORTED_VERSION',
      `protocol version ${hello.version} is not supported; this server speaks ${PROTOCOL_VERSION}`,
    );
    return false;
  }
  if (!ctx.tokens.verify(hello.token)) {
    ctx.stats.authFailures++;
    ctx.authFailuresLog.write(
      'warn',
      () => ({ conn: session.id, remote: session.remote, client: loggedName(hello.name) }),
      'auth failed',
    );
    session.fatal(
      'GOSSIP_ERR_UNAUTHORIZED',
      hello.token === undefined ? 'this server needs a token' : 'the token is not valid',
    );
    return false;
  }
  const refused = hello.prefixes === undefined ? undefined : helloPrefixesRefusal(ctx, hello.prefixes);
  if (refused) {
    session.fatal(refused[0], refused[1]);
    return false;
  }
  const store = ctx.store;
  session.enc.welcome({
    epoch: store.epoch,
    newestTs: store.newestTs ?? MIN_TS,
    horizon: store.horizon,
    // The limits check.ts enforces; the fetch cap among them, so a client can split a
    // larger fetch rather than be refused (Q1), and the prefix limits, which also say
    // that this server takes prefixes (B1).
    ...announcedLimits(ctx),
    maxFrameBytes: ctx.maxFrameBytes,
    server: ctx.serverName,
    pingIntervalMs: ctx.options.pingIntervalMs,
  });
  return true;
}
