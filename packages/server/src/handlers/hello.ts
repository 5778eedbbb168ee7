import { type HelloFrame, MAX_ID_BYTES, MIN_TS, PROTOCOL_VERSION, ResyncReason } from '@gossip/protocol';
import type { Connection } from '../connection.js';

/** Hello: version and auth, then welcome, then the live stream and the replay (docs/PROTOCOL.md, H1, W1, R1, R3). */
export function onHello(conn: Connection, hello: HelloFrame): void {
  const { ctx } = conn;
  if (hello.version !== PROTOCOL_VERSION) {
    conn.fatal(
      'GOSSIP_ERR_UNSUPPORTED_VERSION',
      `protocol version ${hello.version} is not supported; this server speaks ${PROTOCOL_VERSION}`,
    );
    return;
  }
  if (!ctx.tokens.verify(hello.token)) {
    ctx.stats.authFailures++;
    ctx.log.warn({ conn: conn.id, remote: conn.socket.remoteAddress, name: hello.name }, 'auth failed');
    conn.fatal(
      'GOSSIP_ERR_UNAUTHORIZED',
      hello.token === undefined ? 'this server needs a token' : 'the token is not valid',
    );
    return;
  }
  conn.echo = hello.echo;
  conn.name = hello.name;
  const store = ctx.store;
  conn.enc.welcome({
    epoch: store.epoch,
    newestTs: store.newestTs ?? MIN_TS,
    horizon: store.horizon,
    maxIdBytes: MAX_ID_BYTES,
    maxDataBytes: store.maxDataBytes,
    maxFrameBytes: ctx.maxFrameBytes,
    server: ctx.serverName,
    pingIntervalMs: ctx.options.pingIntervalMs,
    // The fetch cap, so a client can split a larger fetch rather than be refused (Q1).
    maxFetchIds: ctx.options.maxFetchIds,
  });

  // Which replay: a resync and a full snapshot when the client's since cannot be trusted (R3).
  const since = hello.since;
  let reason: ResyncReason | undefined;
  if (since !== null) {
    if (hello.epoch !== null && hello.epoch !== store.epoch) reason = ResyncReason.Epoch;
    else if (store.horizon !== null && since <= store.horizon) reason = ResyncReason.Horizon;
    else if (since === MIN_TS && hello.epoch === null) reason = ResyncReason.Full;
  }
  if (reason !== undefined) {
    ctx.stats.resyncs++;
    conn.enc.resync(reason, store.horizon);
  }
  // Join the live stream first, so nothing accepted from here on can be missed.
  conn.setState('replay');
  conn.touch();
  void conn.replay(since, reason !== undefined);
}
