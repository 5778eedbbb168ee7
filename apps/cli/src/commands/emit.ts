import { parseArgs } from 'node:util';
import { CONNECTION_HELP, CONNECTION_OPTIONS, EXIT, type Io, parseTs, UsageError } from '../common.js';
import { clientFrom } from '../connect.js';

export const emitHelp = `Usage: gossip emit <id> [value] [--ts <ns>]

Sends value to the clients connected now: not stored, never replayed. Without a value,
it reads it from stdin and takes it as given, byte for byte (a trailing newline is part
of it). Exit: 0 sent, 1 failure, 2 usage.

  --ts <ns>   the message's ts in nanoseconds (default: now)

${CONNECTION_HELP}
`;

export async function emit(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...CONNECTION_OPTIONS, ts: { type: 'string' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(emitHelp);
    return EXIT.ok;
  }
  const [id, value, ...extra] = positionals;
  if (!id || extra.length > 0) throw new UsageError('gossip emit takes an id and at most one value');
  const data = value !== undefined ? Buffer.from(value, 'utf8') : await io.stdin();
  if (data.byteLength === 0) throw new UsageError('the value is empty: an emit carries a value');
  const client = clientFrom(values, io, 'now');
  try {
    await client.connect();
    let refused: Error | undefined;
    client.on('error', (e) => {
      refused = e;
    });
    client.emit(id, data, values.ts === undefined ? {} : { ts: parseTs(values.ts) });
    // The fetch's answer comes after the server has read the emit (and refused it, if it did).
    await client.fetch([id]);
    if (refused) throw refused;
    io.out('sent\n');
    return EXIT.ok;
  } finally {
    await client.close();
  }
}
