import { parseArgs } from 'node:util';
import { CONNECTION_HELP, CONNECTION_OPTIONS, EXIT, type Io, parseTs, UsageError } from '../common.js';
import { clientFrom } from '../connect.js';

export const pubHelp = `Usage: gossip pub <id> [value] [--ts <ns>]
       gossip del <id> [--ts <ns>]

pub publishes value under id; del publishes a tombstone. Without a value, pub reads it
from stdin and takes it as given, byte for byte: a trailing newline is part of it
(printf or echo -n leave it out; gossip fetch --raw writes a value back as it is).
Prints "accepted <ts> <durability>" or "stale <ts>".
Exit: 0 accepted, 3 stale (a newer ts is stored), 1 failure, 2 usage.

  --ts <ns>   the message's ts in nanoseconds (default: now)

${CONNECTION_HELP}
`;

export async function pub(args: string[], io: Io, tombstone: boolean): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...CONNECTION_OPTIONS, ts: { type: 'string' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(pubHelp);
    return EXIT.ok;
  }
  const [id, value, ...extra] = positionals;
  if (!id || extra.length > 0 || (tombstone && value !== undefined)) {
    throw new UsageError(tombstone ? 'gossip del takes one id' : 'gossip pub takes an id and at most one value');
  }
  const data = tombstone ? new Uint8Array(0) : value !== undefined ? Buffer.from(value, 'utf8') : await io.stdin();
  if (!tombstone && data.byteLength === 0)
    throw new UsageError('the value is empty: an empty value is a tombstone, use gossip del');
  const ts = values.ts === undefined ? undefined : parseTs(values.ts);
  const client = clientFrom(values, io, 'now');
  try {
    await client.connect();
    const result = tombstone ? await client.delete(id, { ts }) : await client.publish(id, data, { ts });
    io.out(result.status === 'accepted' ? `accepted ${result.ts} ${result.durability}\n` : `stale ${result.ts}\n`);
    return result.status === 'accepted' ? EXIT.ok : EXIT.stale;
  } finally {
    await client.close();
  }
}
