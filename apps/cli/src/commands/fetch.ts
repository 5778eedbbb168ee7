import { parseArgs } from 'node:util';
import { CONNECTION_HELP, CONNECTION_OPTIONS, EXIT, type Io, UsageError } from '../common.js';
import { clientFrom } from '../connect.js';
import { humanId, humanLine, humanValue, isoTime, jsonData, outputForm, plainValue } from '../output.js';

export const fetchHelp = `Usage: gossip fetch <id> [id...] [--json | --raw]

Prints the newest stored value of each id. For one id, its value alone: on a terminal
quoted and escaped as sub prints values, into a pipe as text (base64:... when it is not
UTF-8). For several, a line each, "<time> <id> <value>" as
gossip sub prints them: the value a JSON string, base64:... or (deleted), and
"- <id> (not found)" for an id never stored. For scripts, --json: one JSON object per id,
  {"id", "found", "deleted", "ts" (ns, a decimal string, or null), "time" (ISO 8601, or
   null), "value" (UTF-8 text) or "base64" (any other bytes)}
and --raw: the values' bytes as stored; for one id exactly them (gossip pub reads them
back from stdin as they are), for several each followed by a newline.
Exit: 0 all found, 4 one or more not found (or deleted), 1 failure, 2 usage.

${CONNECTION_HELP}
`;

export async function fetch(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...CONNECTION_OPTIONS, json: { type: 'boolean' }, raw: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(fetchHelp);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError('gossip fetch takes one id or more');
  if (values.json && values.raw) throw new UsageError('--json and --raw are two output forms: give one');
  const form = outputForm(values);
  const client = clientFrom(values, io, 'now');
  try {
    await client.connect();
    const results = await client.fetch(positionals);
    const one = results.length === 1;
    let missing = false;
    for (const r of results) {
      const value = r.found && !r.deleted ? (r.value as Uint8Array) : undefined;
      if (!value) missing = true;
      if (form === 'json') {
        io.out(
          `${JSON.stringify({
            id: r.id,
            found: value !== undefined,
            deleted: r.deleted ?? false,
            ts: r.ts?.toString() ?? null,
            time: r.ts === undefined ? null : isoTime(r.ts),
            ...(value ? jsonData(value) : {}),
          })}\n`,
        );
      } else if (form === 'raw') {
        if (value) io.out(value);
        if (!one && value) io.out('\n');
        if (!value) io.err(`${humanId(r.id)}: ${r.deleted ? 'deleted' : 'not found'}\n`);
      } else if (one) {
        if (!value) io.err(`${humanId(r.id)}: ${r.deleted ? 'deleted' : 'not found'}\n`);
        // on a terminal quoted and escaped as every human line; into a pipe the text as it is
        else if (io.tty) io.out(`${humanValue(value)}\n`);
        else io.out(`${plainValue(value)}\n`);
      } else if (r.found && r.ts !== undefined) {
        io.out(humanLine(r.id, r.ts, value));
      } else {
        io.out(`- ${humanId(r.id)} (not found)\n`);
      }
    }
    return missing ? EXIT.notFound : EXIT.ok;
  } finally {
    await client.close();
  }
}
