import { GossipError } from '@gossip/protocol';
import { compact, compactHelp } from './commands/compact.js';
import { emit, emitHelp } from './commands/emit.js';
import { fetch, fetchHelp } from './commands/fetch.js';
import { inspect, inspectHelp } from './commands/inspect.js';
import { pub, pubHelp } from './commands/pub.js';
import { sub, subHelp } from './commands/sub.js';
import { describeError, EXIT, type Io, UsageError, usageOf } from './common.js';

/** apps/cli/package.json's version, written in by the build (tsup.config.ts). */
declare const __GOSSIP_VERSION__: string;
const VERSION = __GOSSIP_VERSION__;

const USAGE = 'Usage: gossip <command> [options]';

const HELP = `gossip ${VERSION}: the command line of gossip, a persistent pub/sub log

${USAGE}

Commands:
  pub <id> [value]   publish a value (stdin, as given, when absent)
  del <id>           delete an id (publish a tombstone)
  emit <id> [value]  send a transient message (not stored)
  sub [prefix...]    print messages as they come (under the prefixes), after a replay (--since)
  fetch <id>...      print the newest stored value of ids
  inspect <dir>      read a data folder offline: segments, records, checksums
  compact <dir>      compact a data folder offline

gossip <command> --help shows a command's options.
Exit codes: 0 ok, 1 failure, 2 usage, 3 stale publish, 4 fetch found nothing,
5 sub timed out before --count.
`;

const HELPS: Record<string, string> = {
  pub: pubHelp,
  del: pubHelp,
  emit: emitHelp,
  sub: subHelp,
  fetch: fetchHelp,
  inspect: inspectHelp,
  compact: compactHelp,
};

export async function run(argv: string[], io: Io, signal: AbortSignal): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'pub':
        return await pub(args, io, false);
      case 'del':
        return await pub(args, io, true);
      case 'emit':
        return await emit(args, io);
      case 'sub':
        return await sub(args, io, signal);
      case 'fetch':
        return await fetch(args, io);
      case 'inspect':
        return await inspect(args, io);
      case 'compact':
        return await compact(args, io);
      case 'help':
        io.out(args[0] && HELPS[args[0]] ? (HELPS[args[0]] as string) : HELP);
        return EXIT.ok;
      case '--version':
      case '-v':
        io.out(`gossip ${VERSION}\n`);
        return EXIT.ok;
      case undefined:
      case '--help':
      case '-h':
        io.out(HELP);
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof GossipError && error.code === 'GOSSIP_ERR_ABORTED') return EXIT.ok;
    const usage = error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    io.err(`gossip: ${describeError(error)}\n`);
    if (usage) {
      const help = command ? HELPS[command] : undefined;
      io.err(help ? usageOf(help) : `${USAGE}\n`);
      io.err(`see gossip ${help ? `${command} ` : ''}--help\n`);
    }
    return usage ? EXIT.usage : EXIT.failed;
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

// `gossip sub | head -1`: the reader is gone, and so is the need to write: a quiet exit 0.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  throw error;
});

const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.once('SIGTERM', () => controller.abort());
const io: Io = {
  out: (t) => process.stdout.write(t),
  tty: process.stdout.isTTY === true,
  err: (t) => process.stderr.write(t),
  stdin: readStdin,
  env: process.env,
};
run(process.argv.slice(2), io, controller.signal).then((code) => {
  process.exitCode = code;
});
