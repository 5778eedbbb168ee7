import { parseArgs } from 'node:util';
import type { ClientMessage } from '@gossip/client';
import {
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  describeError,
  EXIT,
  type Io,
  parseCount,
  parseDuration,
  parseSince,
  UsageError,
} from '../common.js';
import { clientFrom } from '../connect.js';
import { humanLine, isoTime, jsonData, outputForm } from '../output.js';

/** Errors of an address that could not be reached or answered: the client tries the next. */
const TRANSPORT = new Set(['GOSSIP_ERR_IO', 'GOSSIP_ERR_TIMEOUT', 'GOSSIP_ERR_CONNECTION_CLOSED']);

export const subHelp = `Usage: gossip sub [prefix...] [--since all|now|10m|<ns>] [--json | --raw]
                [--count <n>] [--timeout <duration>] [--no-transient]

Prints each message as it comes, until interrupted (Ctrl-C), --count or --timeout.
It reconnects by itself and catches up after any disconnect.

A line per message, "<time> <id> <value>": the time in UTC to the nanosecond, the
value as a JSON string when it is UTF-8, base64:... when it is not, (deleted) for a
tombstone; an id with spaces or quotes is a JSON string; emitted (transient) messages
end with (transient). For scripts, --json: one JSON object per line,
  {"id", "ts" (ns, a decimal string), "time" (ISO 8601), "value" (UTF-8 text) or
   "base64" (any other bytes), "deleted", "transient", "replayed"}
and --raw: each value's bytes as received, then a newline; tombstones print nothing.

With prefixes (gossip sub flags/ presence/) only the ids that start with one of them
are printed, each prefix replayed on its own and resumed from its own last ts; the
server must support prefix subscriptions (else GOSSIP_ERR_PREFIXES_UNSUPPORTED, exit 1).
Without any, every id.

  --since <when>        all (default), now (live only), a duration back (30s, 10m, 2h)
                        or a ts; with prefixes, where each prefix's replay starts
  --json                JSON lines (above)
  --raw                 values only (above)
  --count <n>           exit 0 once n messages are printed
  --timeout <duration>  stop after this long (500ms, 30s, 10m): exit 0, or 5 when
                        --count messages were not all printed by then
  --no-transient        skip emitted (transient) messages

Exit: 0 done (Ctrl-C, --count, --timeout), 5 --timeout before --count, 1 failure, 2 usage.

${CONNECTION_HELP}
`;

export async function sub(args: string[], io: Io, signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...CONNECTION_OPTIONS,
      since: { type: 'string' },
      json: { type: 'boolean' },
      raw: { type: 'boolean' },
      count: { type: 'string' },
      timeout: { type: 'string' },
      'no-transient': { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(subHelp);
    return EXIT.ok;
  }
  const named = positionals.find((p, i) => positionals.indexOf(p) !== i);
  if (named !== undefined) throw new UsageError(`gossip sub names the prefix ${JSON.stringify(named)} twice`);
  if (values.json && values.raw) throw new UsageError('--json and --raw are two output forms: give one');
  const since = parseSince(values.since ?? 'all');
  const count = values.count === undefined ? undefined : parseCount(values.count, '--count');
  const timeoutMs = values.timeout === undefined ? undefined : parseDuration(values.timeout, '--timeout');
  const form = outputForm(values);
  // No prefix: every id, as a client without prefixes (docs/PROTOCOL.md, B1).
  const client = clientFrom(values, io, since, true, positionals.length > 0 ? positionals : undefined);

  let printed = 0;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const print = (m: ClientMessage<Uint8Array>) => {
    if (m.transient && values['no-transient']) return;
    if (count !== undefined && printed >= count) return;
    if (form === 'json') {
      io.out(
        `${JSON.stringify({
          id: m.id,
          ts: m.ts.toString(),
          time: isoTime(m.ts),
          ...(m.deleted ? {} : jsonData(m.data)),
          deleted: m.deleted,
          transient: m.transient,
          replayed: m.replayed,
        })}\n`,
      );
    } else if (form === 'raw') {
      if (m.deleted) return;
      io.out(m.data);
      io.out('\n');
    } else {
      io.out(humanLine(m.id, m.ts, m.data, m.transient));
    }
    printed++;
    if (count !== undefined && printed >= count) finish(EXIT.ok);
  };
  client.on('message', print);
  client.on('disconnect', (reason) => io.err(`disconnected: ${describeError(reason)}; reconnecting\n`));
  // Set once the first replay is applied (connect() resolved).
  let connected = false;
  client.on('resync', (info) => {
    // The full snapshot a first `--since all` asks for is no news; any other resync is.
    if (info.reason === 'full' && !connected) return;
    io.err(
      info.prefix === undefined
        ? `resync (${info.reason}): a full snapshot follows\n`
        : `resync (${info.reason}) of ${JSON.stringify(info.prefix)}: a snapshot of it follows\n`,
    );
  });
  // --timeout counts from the start, the connection and its replay included.
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          if (count !== undefined)
            io.err(`gossip: --timeout ${values.timeout}: ${printed} of ${count} messages printed\n`);
          finish(count === undefined ? EXIT.ok : EXIT.timeout);
        }, timeoutMs);
  // An address that cannot be reached is passed over for the next (the client goes on);
  // a refusal by a server (auth, an unsupported prefix) ends the run.
  client.on('error', (error) =>
    io.err(`${TRANSPORT.has(error.code) ? 'reconnecting' : 'gossip'}: ${describeError(error)}\n`),
  );
  // (before the first replay is done, connect() fails with the reason instead)
  client.on('state', (state) => state === 'closed' && connected && finish(EXIT.failed));
  const onAbort = () => finish(EXIT.ok);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const connecting = client.connect({ signal }).then(() => {
      connected = true;
    });
    // --count or --timeout may be reached during the first replay, before connect() resolves
    const code = await Promise.race([connecting.then(() => finished), finished]);
    connecting.catch(() => undefined);
    return code;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    await client.close({ timeoutMs: 1000 });
  }
}
