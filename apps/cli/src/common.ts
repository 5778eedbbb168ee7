import { GossipError, now } from '@gossip/protocol';

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
} as const;

export class UsageError extends Error {}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  stdin: () => Promise<Buffer>;
  env: NodeJS.ProcessEnv;
}

export const CONNECTION_HELP = `Connection (every command that talks to a server):
  -a, --address <addr>  host:port, gossip://host:port or gossips://host:port (env GOSSIP_ADDRESS, default 127.0.0.1:7420)
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

export function parseTs(text: string): bigint {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`--ts takes an integer of nanoseconds, got ${JSON.stringify(text)}`);
  return BigInt(text);
}

/** A message's data for a terminal: the text if it is UTF-8, else base64 marked as such. */
export function showData(data: Uint8Array): { text: string; base64: boolean } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(buf), base64: false };
  } catch {
    return { text: buf.toString('base64'), base64: true };
  }
}

export function describeError(error: unknown): string {
  if (error instanceof GossipError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
