import { GossipError, now } from '@gossip/protocol';
import { NS_PER_MS } from './output.js';

/** Exit codes scripts can rely on (docs/OPERATIONS.md, "The gossip CLI"). */
export const EXIT = {
  ok: 0,
  /** Connection, server or I/O failure. */
  failed: 1,
  /** Bad usage: unknown flag, missing argument. */
  usage: 2,
  /** A publish or delete was stale: a newer ts was already stored. */
  stale: 3,
  /** fetch: an id was not found (or is deleted). */
  notFound: 4,
  /** sub: --timeout ended it before --count messages were printed. */
  timeout: 5,
} as const;

export class UsageError extends Error {}

export interface Io {
  /** Standard output: text, or bytes as they are (--raw). */
  out: (text: string | Uint8Array) => void;
  /** Whether standard output is a terminal (a person reads it). */
  tty: boolean;
  err: (text: string) => void;
  stdin: () => Promise<Buffer>;
  env: NodeJS.ProcessEnv;
}

export const CONNECTION_HELP = `Connection (every command that talks to a server):
  -a, --address <addr>  host:port, gossip://host:port or gossips://host:port (env GOSSIP_ADDRESS, default 127.0.0.1:7420);
                        several, comma-separated: tried in turn, the next one when one stops answering
  -t, --token <token>   auth token (env GOSSIP_TOKEN)
      --ca <file>       PEM CA for gossips:// with a private CA (env GOSSIP_CA)`;

export const CONNECTION_OPTIONS = {
  address: { type: 'string', short: 'a' },
  token: { type: 'string', short: 't' },
  ca: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
};

/** `all`, `now`, a duration back from now (`30s`, `10m`, `2h`, `7d`), or a ts in nanoseconds. */
export function parseSince(text: string): 'all' | 'now' | bigint {
  if (text === 'all' || text === 'now') return text;
  const m = /^(\d+)(ns|us|ms|s|m|h|d)$/.exec(text);
  if (m) return now() - BigInt(m[1] as string) * (UNITS[m[2] as string] as bigint);
  if (/^-?\d+$/.test(text)) return BigInt(text);
  throw new UsageError(
    `--since takes all, now, a duration like 10m or a ts in nanoseconds, got ${JSON.stringify(text)}`,
  );
}

/** A duration (`500ms`, `30s`, `10m`, `2h`, `7d`) in milliseconds, for `flag`. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  const ms = m ? (BigInt(m[1] as string) * (UNITS[m[2] as string] as bigint)) / NS_PER_MS : -1n;
  // a timer's longest wait: about 24.8 days
  if (ms < 1n || ms > 2_147_483_647n)
    throw new UsageError(
      `${flag} takes a duration from 1ms to 24d, like 500ms, 30s or 10m, got ${JSON.stringify(text)}`,
    );
  return Number(ms);
}

/** A count of at least 1, for `flag`. */
export function parseCount(text: string, flag: string): number {
  if (!/^[1-9]\d{0,8}$/.test(text))
    throw new UsageError(`${flag} takes a whole number from 1, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The usage lines of a command's help: its text up to the first blank line. */
export function usageOf(help: string): string {
  const end = help.indexOf('\n\n');
  return `${end === -1 ? help : help.slice(0, end)}\n`;
}

export function parseTs(text: string): bigint {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`--ts takes an integer of nanoseconds, got ${JSON.stringify(text)}`);
  return BigInt(text);
}

export function describeError(error: unknown): string {
  if (error instanceof GossipError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
