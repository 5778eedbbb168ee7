import { parseArgs } from 'node:util';
import { CONNECTION_HELP, CONNECTION_OPTIONS, EXIT, type Io, showData, UsageError } from '../common.js';
import { clientFrom } from '../connect.js';

export const fetchHelp = `Usage: gossip fetch <id> [id...] [--json]

Prints the newest persisted value of each id: for one id its value alone, for several
"<id> <ts> <value>" lines; --json prints one JSON object per id.
Exit: 0 all found, 4 one or more not found (or deleted), 1 failure, 2 usage.

${CONNECTION_HELP}
`;

export async function fetch(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...CONNECTION_OPTIONS, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(fetchHelp);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError('usage: gossip fetch <id> [id...]');
  const client = clientFrom(values, io, 'now');
  try {
    await client.connect();
    const results = await client.fetch(positionals);
    let missing = false;
    for (const r of results) {
      const present = r.found && !r.deleted;
      if (!present) missing = true;
      if (values.json) {
        const shown = present ? showData(r.value as Uint8Array) : undefined;
        io.out(
          `${JSON.stringify({
            id: r.id,
            found: present,
            deleted: r.deleted ?? false,
            ts: r.ts?.toString() ?? null,
            ...(shown ? (shown.base64 ? { base64: shown.text } : { value: shown.text }) : {}),
          })}\n`,
        );
      } else if (present) {
        const shown = showData(r.value as Uint8Array).text;
        io.out(results.length === 1 ? `${shown}\n` : `${r.id} ${r.ts} ${shown}\n`);
      } else if (results.length > 1) {
        io.out(`${r.id} - ${r.deleted ? '(deleted)' : '(not found)'}\n`);
      } else {
        io.err(`${r.id}: ${r.deleted ? 'deleted' : 'not found'}\n`);
      }
    }
    return missing ? EXIT.notFound : EXIT.ok;
  } finally {
    await client.close();
  }
}
