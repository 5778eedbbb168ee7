import { parseArgs } from 'node:util';
import type { ClientMessage } from '@gossip/client';
import {
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  describeError,
  EXIT,
  type Io,
  parseSince,
  showData,
  UsageError,
} from '../common.js';
import { clientFrom } from '../connect.js';

export const subHelp = `Usage: gossip sub [prefix...] [--since all|now|10m|<ns>] [--json] [--no-transient]

Prints a line per message until interrupted (Ctrl-C): "<ts> <id> <value>", with
"(deleted)" for tombstones and "~" before transient ones; --json prints one JSON object
per line. It reconnects by itself and catches up after any disconnect.

With prefixes (gossip sub flags/ presence/) only the ids that start with one of them
are printed, each prefix replayed on its own and resumed from its own last ts; the
server must support prefix subscriptions (else GOSSIP_ERR_PREFIXES_UNSUPPORTED, exit 1).
Without any, every id.

  --since <when>    all (default), now (live only), a duration back (30s, 10m, 2h) or a ts;
                    with prefixes, where each prefix's replay starts
  --json            JSON lines: {id, ts, value|base64, deleted, transient, replayed}
  --no-transient    skip emitted (transient) messages

${CONNECTION_HELP}
`;

export async function sub(args: string[], io: Io, signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...CONNECTION_OPTIONS,
      since: { type: 'string' },
      json: { type: 'boolean' },
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
  const since = parseSince(values.since ?? 'all');
  // No prefix: every id, as a client without prefixes (docs/PROTOCOL.md, B1).
  const client = clientFrom(values, io, since, true, positionals.length > 0 ? positionals : undefined);
  const print = (m: ClientMessage<Uint8Array>) => {
    if (m.transient && values['no-transient']) return;
    if (values.json) {
      const shown = m.deleted ? undefined : showData(m.data);
      io.out(
        `${JSON.stringify({
          id: m.id,
          ts: m.ts.toString(),
          ...(shown ? (shown.base64 ? { base64: shown.text } : { value: shown.text }) : {}),
          deleted: m.deleted,
          transient: m.transient,
          replayed: m.replayed,
        })}\n`,
      );
    } else {
      io.out(`${m.transient ? '~' : ''}${m.ts} ${m.id} ${m.deleted ? '(deleted)' : showData(m.data).text}\n`);
    }
  };
  client.on('message', print);
  client.on('disconnect', (reason) => io.err(`disconnected: ${describeError(reason)}; reconnecting\n`));
  client.on('resync', (info) =>
    io.err(
      info.prefix === undefined
        ? `resync (${info.reason}): a full snapshot follows\n`
        : `resync (${info.reason}) of ${JSON.stringify(info.prefix)}: a snapshot of it follows\n`,
    ),
  );
  await client.connect({ signal });
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    client.on('state', (s) => s === 'closed' && resolve());
  });
  await client.close({ timeoutMs: 1000 });
  return EXIT.ok;
}
