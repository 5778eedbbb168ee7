import { GossipError, type PrefixSpec } from '@gossip/protocol';
import type { Codec } from './codecs.js';
import { Connection } from './connection.js';
import { decodeMessage } from './decode.js';
import { closedError } from './errors.js';
import type { ReplaySink } from './message-source.js';
import { CLIENT_DEFAULTS, type ClientOptions } from './options.js';
import { ReqIds } from './req-ids.js';
import { Subscriptions } from './subscriptions.js';

/**
 * One replay for one view, over a short-lived extra connection: the protocol has no frame
 * to ask for a replay on an open connection, so a view made after the client's first
 * replay began gets its own. The connection says hello as a new client with the client's
 * options (address, TLS, token, name, `since`) but no epoch and echo off, so with `since`
 * 'all' the server answers with a resync and the full snapshot (H3, R3); every message
 * of it goes to `sink` alone, and at its replay-done the connection closes. It retries,
 * and resumes a replay cut short, on the client's `reconnect` strategy; `sink.failed`
 * when that gives up. A client with `since: 'now'` replays nothing: `sink.done` at once.
 *
 * With `prefixes` the hello names those instead (B2), each with its own since, and the
 * replay is whole once every one of them has its prefix-done (B5); none: `sink.done` at
 * once. The caller names prefixes only to a server whose welcome announced them.
 *
 * Messages that arrive live on the client's connection meanwhile reach the view too, in
 * any order with these: the view applies both by newest ts per id, and remembers the ts
 * of deletes, so neither an older snapshot entry nor an older live message wins.
 *
 * Returns a function that stops it.
 */
export function catchUp<T>(
  options: ClientOptions<T>,
  codec: Codec<T>,
  sink: ReplaySink<T>,
  onError: (error: GossipError) => void,
  prefixes?: PrefixSpec[],
): () => void {
  let finished = false;
  if (prefixes ? prefixes.length === 0 : (options.since ?? CLIENT_DEFAULTS.since) === 'now') {
    queueMicrotask(() => {
      if (!finished) sink.done();
      finished = true;
    });
    return () => {
      finished = true;
    };
  }
  const connection: Connection = new Connection(
    { ...options, echo: false, waitOnFirstConnect: true },
    {
      opened: () => undefined,
      message: (f) => {
        if (finished) return;
        const m = decodeMessage(codec, f);
        if (m instanceof GossipError) onError(m);
        else sink.message(m);
      },
      ack: () => undefined,
      fetchResult: () => undefined,
      dropped: () => undefined,
      closed: () => undefined,
    },
    (event, ...args) => {
      // Ready, at its first replay-done (or its prefixes' last prefix-done): the view
      // holds the replay. What comes live after it, the client's own connection delivers.
      if (event !== 'state' || args[0] !== 'ready' || finished) return;
      finished = true;
      connection.shutdown(closedError());
      sink.done();
    },
    prefixes && new Subscriptions(prefixes, options.replayDeltaMs ?? CLIENT_DEFAULTS.replayDeltaMs, new ReqIds()),
  );
  connection.connect().catch((error: GossipError) => {
    if (finished) return;
    finished = true;
    sink.failed(error);
  });
  return () => {
    if (finished) return;
    finished = true;
    connection.shutdown(closedError());
  };
}
