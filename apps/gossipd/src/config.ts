import { accessSync, constants, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FRAME_OVERHEAD_BYTES, GossipError, MAX_FETCH_IDS } from '@gossip/protocol';
import {
  checkExposure as checkServerExposure,
  isLoopback,
  MAX_PREFIXES_SETTING,
  DEFAULTS as SERVER,
} from '@gossip/server';
import { DEFAULTS as STORE } from '@gossip/store';
import { parseCreds, parseNkeySeed } from './cluster/credentials.js';

/**
 * Every setting of gossipd, from flags and `GOSSIP_*` environment variables (a flag
 * wins over its variable). docs/OPERATIONS.md lists them; `--help` prints them.
 */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  fsync: 'always' | 'interval' | 'never';
  fsyncIntervalMs: number;
  maxData: number;
  maxFrame: number | undefined;
  segmentSize: number;
  compactThreshold: number;
  tombstoneRetentionMs: number;
  /** undefined: as many as the descriptor limit allows beside the store's reserve, at most 10 000. */
  maxConnections: number | undefined;
  helloTimeoutMs: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  maxOutbound: number;
  maxSkewMs: number;
  maxFetchIds: number;
  maxPrefixes: number;
  tokens: string[];
  insecure: boolean;
  /** Serve the original gossip protocol on the same port (--legacy on|off). */
  legacy: boolean;
  /** Serve it even with tokens set, though its handshake cannot carry one. */
  legacyWithTokens: boolean;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsCa: string | undefined;
  adminHost: string;
  /** null: no admin listener. */
  adminPort: number | null;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  /** NATS server URLs: run as an edge of that cluster (docs/CLUSTER.md). Empty: one node. */
  cluster: string[];
  /** The cluster's name: its JetStream stream is GOSSIP_<name>. */
  clusterName: string;
  /** Replicas of the stream, when this edge creates it. */
  clusterReplicas: number;
  /** How the edge proves itself to NATS: a user and password, a token, a credentials or an nkey file; none by default. */
  clusterAuth: ClusterAuth;
  /** TLS to NATS: the CA that signed the servers' certificates, and the edge's own (mutual TLS). */
  clusterTls: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
}

type Kind = 'string' | 'int' | 'bytes' | 'ms' | 'ratio' | 'bool' | 'list';

interface Setting {
  flag: string;
  env: string;
  kind: Kind;
  default: string | undefined;
  help: string;
  /**
   * The variable set to the empty string counts as set (and is then refused for holding
   * nothing), not as unset. For the token sources: `GOSSIP_TOKENS=${TOKENS}` with TOKENS
   * unset must not turn auth off. Other variables read empty as unset (their default).
   */
  emptyIsSet?: boolean;
}

/**
 * A default in the form --help and docs/OPERATIONS.md show it, and parseBytes reads back:
 * the largest binary unit that divides it (`64MiB`), else plain bytes.
 */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 1024],
  ] as const)
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  return String(n);
}

/** As formatBytes, for durations: whole hours (`24h`), else seconds (`60s`, `5s`), else `100ms`. */
export function formatMs(ms: number): string {
  if (ms >= 3600e3 && ms % 3600e3 === 0) return `${ms / 3600e3}h`;
  if (ms >= 1e3 && ms % 1e3 === 0) return `${ms / 1e3}s`;
  return `${ms}ms`;
}

/**
 * The table behind the flags, the variables, `--help` and the docs. Defaults of what the
 * server and the store do come from their `DEFAULTS`, formatted as a flag would say them.
 */
export const SETTINGS: Setting[] = [
  { flag: 'host', env: 'GOSSIP_HOST', kind: 'string', default: SERVER.host, help: 'address to listen on' },
  {
    flag: 'port',
    env: 'GOSSIP_PORT',
    kind: 'int',
    default: String(SERVER.port),
    help: 'port to listen on; 0 picks a free one (logged)',
  },
  {
    flag: 'data-dir',
    env: 'GOSSIP_DATA_DIR',
    kind: 'string',
    default: './gossip-data',
    help: 'data folder (created if missing)',
  },
  {
    flag: 'fsync',
    env: 'GOSSIP_FSYNC',
    kind: 'string',
    default: STORE.fsync,
    help: 'always | interval | never (docs/STORAGE.md, S5)',
  },
  {
    flag: 'fsync-interval',
    env: 'GOSSIP_FSYNC_INTERVAL',
    kind: 'ms',
    default: formatMs(STORE.fsyncIntervalMs),
    help: 'fsync period under --fsync interval',
  },
  {
    flag: 'max-data',
    env: 'GOSSIP_MAX_DATA',
    kind: 'bytes',
    default: formatBytes(STORE.maxDataBytes),
    help: 'largest message data',
  },
  {
    flag: 'max-frame',
    env: 'GOSSIP_MAX_FRAME',
    kind: 'bytes',
    default: undefined,
    help: `largest frame a client may send (default: max-data + ${formatBytes(FRAME_OVERHEAD_BYTES)})`,
  },
  {
    flag: 'segment-size',
    env: 'GOSSIP_SEGMENT_SIZE',
    kind: 'bytes',
    default: formatBytes(STORE.segmentBytes),
    help: 'roll log segments past this size',
  },
  {
    flag: 'compact-threshold',
    env: 'GOSSIP_COMPACT_THRESHOLD',
    kind: 'ratio',
    default: String(STORE.compactThreshold),
    help: 'compact when this share of sealed segments is dead; 0 turns it off',
  },
  {
    flag: 'tombstone-retention',
    env: 'GOSSIP_TOMBSTONE_RETENTION',
    kind: 'ms',
    default: formatMs(STORE.tombstoneRetentionMs),
    help: 'compaction drops tombstones older than this',
  },
  {
    flag: 'max-connections',
    env: 'GOSSIP_MAX_CONNECTIONS',
    kind: 'int',
    default: undefined,
    help: `connections at once (default: ${SERVER.maxConnections}, or what the descriptor limit (ulimit -n) allows beside the store's reserve)`,
  },
  {
    flag: 'hello-timeout',
    env: 'GOSSIP_HELLO_TIMEOUT',
    kind: 'ms',
    default: formatMs(SERVER.helloTimeoutMs),
    help: 'a client must send its hello within this',
  },
  {
    flag: 'idle-timeout',
    env: 'GOSSIP_IDLE_TIMEOUT',
    kind: 'ms',
    default: formatMs(SERVER.idleTimeoutMs),
    help: 'close connections silent for this long; 0 turns it off',
  },
  {
    flag: 'ping-interval',
    env: 'GOSSIP_PING_INTERVAL',
    kind: 'ms',
    default: formatMs(SERVER.pingIntervalMs),
    help: 'how often clients are told to ping',
  },
  {
    flag: 'max-outbound',
    env: 'GOSSIP_MAX_OUTBOUND',
    kind: 'bytes',
    default: formatBytes(SERVER.maxOutboundBytes),
    help: 'bytes waiting for one client before it is dropped as a slow consumer',
  },
  {
    flag: 'max-skew',
    env: 'GOSSIP_MAX_SKEW',
    kind: 'ms',
    default: formatMs(SERVER.maxSkewMs),
    help: 'refuse a ts further ahead of the server clock; 0 turns it off',
  },
  {
    flag: 'max-fetch-ids',
    env: 'GOSSIP_MAX_FETCH_IDS',
    kind: 'int',
    default: String(SERVER.maxFetchIds),
    help: 'ids one fetch may name',
  },
  {
    flag: 'max-prefixes',
    env: 'GOSSIP_MAX_PREFIXES',
    kind: 'int',
    default: String(SERVER.maxPrefixes),
    help: `prefixes one connection may subscribe to (at most ${MAX_PREFIXES_SETTING})`,
  },
  {
    flag: 'token',
    env: 'GOSSIP_TOKENS',
    kind: 'list',
    default: undefined,
    help: 'auth token; repeat the flag, or comma-separate in the variable (set but empty: refused)',
    emptyIsSet: true,
  },
  {
    flag: 'token-file',
    env: 'GOSSIP_TOKEN_FILE',
    kind: 'string',
    default: undefined,
    help: 'file with one auth token per line, # comments allowed (no token in it: refused)',
    emptyIsSet: true,
  },
  {
    flag: 'insecure',
    env: 'GOSSIP_INSECURE',
    kind: 'bool',
    default: 'false',
    help: 'allow a non-loopback --host or --admin-host without tokens',
  },
  {
    flag: 'legacy',
    env: 'GOSSIP_LEGACY',
    kind: 'string',
    default: SERVER.legacy ? 'on' : 'off',
    help: 'on | off: also serve the original gossip protocol on the same port (docs/PROTOCOL.md, Legacy protocol)',
  },
  {
    flag: 'legacy-with-tokens',
    env: 'GOSSIP_LEGACY_WITH_TOKENS',
    kind: 'bool',
    default: String(SERVER.legacyWithTokens),
    help: 'serve the original protocol even with tokens set: it cannot carry a token, so anyone who reaches the port can read and write',
  },
  {
    flag: 'tls-cert',
    env: 'GOSSIP_TLS_CERT',
    kind: 'string',
    default: undefined,
    help: 'PEM certificate file: serve TLS',
  },
  {
    flag: 'tls-key',
    env: 'GOSSIP_TLS_KEY',
    kind: 'string',
    default: undefined,
    help: 'PEM private key file for --tls-cert',
  },
  { flag: 'tls-ca', env: 'GOSSIP_TLS_CA', kind: 'string', default: undefined, help: 'PEM CA bundle (optional)' },
  {
    flag: 'admin-host',
    env: 'GOSSIP_ADMIN_HOST',
    kind: 'string',
    default: '127.0.0.1',
    help: 'address of the admin HTTP listener; non-loopback needs tokens or --insecure',
  },
  {
    flag: 'admin-port',
    env: 'GOSSIP_ADMIN_PORT',
    kind: 'string',
    default: '7421',
    help: 'admin HTTP port (/healthz, /readyz, /metrics, POST /compact); 0 picks one; off disables',
  },
  {
    flag: 'cluster',
    env: 'GOSSIP_CLUSTER',
    kind: 'list',
    default: undefined,
    help: 'NATS URLs of a JetStream cluster, comma-separated: run as an edge of it (docs/CLUSTER.md)',
  },
  {
    flag: 'cluster-name',
    env: 'GOSSIP_CLUSTER_NAME',
    kind: 'string',
    default: 'gossip',
    help: 'the cluster log: its JetStream stream is GOSSIP_<name>',
  },
  {
    flag: 'cluster-replicas',
    env: 'GOSSIP_CLUSTER_REPLICAS',
    kind: 'int',
    default: '3',
    help: 'replicas of the stream, when an edge creates it (1 to 5)',
  },
  {
    flag: 'cluster-user',
    env: 'GOSSIP_CLUSTER_USER',
    kind: 'string',
    default: undefined,
    help: 'NATS user of the edge (with --cluster-password)',
  },
  {
    flag: 'cluster-password',
    env: 'GOSSIP_CLUSTER_PASSWORD',
    kind: 'string',
    default: undefined,
    help: 'NATS password of --cluster-user (better in the environment than on the command line)',
  },
  {
    flag: 'cluster-token',
    env: 'GOSSIP_CLUSTER_TOKEN',
    kind: 'string',
    default: undefined,
    help: 'NATS token of the edge, instead of a user',
  },
  {
    flag: 'cluster-creds',
    env: 'GOSSIP_CLUSTER_CREDS',
    kind: 'string',
    default: undefined,
    help: 'NATS credentials file of the edge (a user JWT and its nkey seed, as nsc writes it), instead of a user; read at each connect',
  },
  {
    flag: 'cluster-nkey',
    env: 'GOSSIP_CLUSTER_NKEY',
    kind: 'string',
    default: undefined,
    help: "file holding the edge's NATS nkey seed (SU…), for servers that list users by nkey; read at each connect",
  },
  {
    flag: 'cluster-tls-ca',
    env: 'GOSSIP_CLUSTER_TLS_CA',
    kind: 'string',
    default: undefined,
    help: "PEM CA bundle that signed the NATS servers' certificates: TLS to NATS",
  },
  {
    flag: 'cluster-tls-cert',
    env: 'GOSSIP_CLUSTER_TLS_CERT',
    kind: 'string',
    default: undefined,
    help: "the edge's PEM certificate, for NATS servers that verify clients (with --cluster-tls-key)",
  },
  {
    flag: 'cluster-tls-key',
    env: 'GOSSIP_CLUSTER_TLS_KEY',
    kind: 'string',
    default: undefined,
    help: 'PEM private key of --cluster-tls-cert',
  },
  {
    flag: 'log-level',
    env: 'GOSSIP_LOG_LEVEL',
    kind: 'string',
    default: 'info',
    help: 'trace | debug | info | warn | error',
  },
  {
    flag: 'log-format',
    env: 'GOSSIP_LOG_FORMAT',
    kind: 'string',
    default: undefined,
    help: 'json | pretty (default: pretty on a TTY, else json)',
  },
];

/** How an edge proves itself to NATS (docs/CLUSTER.md, "Configuration"): at most one way. */
export interface ClusterAuth {
  user?: string;
  pass?: string;
  token?: string;
  /** A NATS credentials file: a user JWT and its nkey seed. */
  credsFile?: string;
  /** A file holding a user nkey seed. */
  nkeyFile?: string;
}

/**
 * A credential file given on the command line: readable, and of the right kind, so that a
 * wrong file is a start-up error and not an endless "cannot reach the cluster". The NATS
 * client reads it again at each connect: a file replaced in place takes effect at the next.
 */
function checkCredentialFile(
  flag: string,
  file: string | undefined,
  parse: (text: string) => unknown,
  what: string,
): void {
  if (file === undefined) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`--${flag}: cannot read ${file}: ${(error as Error).message}`);
  }
  if (parse(text) === undefined) throw new ConfigError(`--${flag}: ${file} does not hold ${what}`);
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** A cluster name: a NATS subject token and a stream name at once (docs/CLUSTER.md). */
function checkClusterName(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name))
    throw new ConfigError(`--cluster-name must be 1 to 32 letters, digits, _ or -, got ${JSON.stringify(name)}`);
  return name;
}

export class ConfigError extends GossipError {
  constructor(message: string) {
    super('GOSSIP_ERR_CONFIG', message);
  }
}

export type Parsed = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: Config };

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv, isTty: boolean): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  for (const s of SETTINGS)
    options[s.flag] = { type: s.kind === 'bool' ? 'boolean' : 'string', multiple: s.kind === 'list' };
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}; see gossipd --help`);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  const raw = (s: Setting): string | string[] | boolean | undefined => {
    const v = values[s.flag] as string | string[] | boolean | undefined;
    if (v !== undefined) return v;
    const e = env[s.env];
    if (e !== undefined && (e !== '' || s.emptyIsSet))
      return s.kind === 'list'
        ? e
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : e;
    return s.default;
  };
  const get = (flag: string): string | undefined => {
    const s = SETTINGS.find((x) => x.flag === flag) as Setting;
    const v = raw(s);
    return v === undefined ? undefined : String(v);
  };
  const setting = (flag: string) => SETTINGS.find((x) => x.flag === flag) as Setting;
  const int = (flag: string, min = 0, max = Number.MAX_SAFE_INTEGER) =>
    parseInt10(get(flag) as string, setting(flag), min, max);
  const bytes = (flag: string) => parseBytes(get(flag) as string, setting(flag));
  const ms = (flag: string) => parseDuration(get(flag) as string, setting(flag));
  const bool = (flag: string) => {
    const v = raw(setting(flag));
    return v === true || v === 'true' || v === '1' || v === 'yes';
  };

  const fsync = get('fsync');
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never') {
    throw new ConfigError(`--fsync must be always, interval or never, got ${JSON.stringify(fsync)}`);
  }
  const threshold = Number(get('compact-threshold'));
  if (!(threshold >= 0 && threshold <= 1))
    throw new ConfigError(`--compact-threshold must be between 0 and 1, got ${get('compact-threshold')}`);
  const adminPort = get('admin-port') as string;
  const logFormat = get('log-format') ?? (isTty ? 'pretty' : 'json');
  if (logFormat !== 'json' && logFormat !== 'pretty')
    throw new ConfigError(`--log-format must be json or pretty, got ${logFormat}`);
  const logLevel = get('log-level') as string;
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new ConfigError(`--log-level must be trace, debug, info, warn or error, got ${logLevel}`);
  }

  const legacy = get('legacy');
  if (legacy !== 'on' && legacy !== 'off')
    throw new ConfigError(`--legacy must be on or off, got ${JSON.stringify(legacy)}`);

  // A token source that yields no token is a mistake to report, never auth turned off.
  const tokens = [...((raw(setting('token')) as string[] | undefined) ?? [])];
  if (values.token === undefined && env.GOSSIP_TOKENS !== undefined && tokens.length === 0) {
    throw new ConfigError(
      `GOSSIP_TOKENS is set but holds no token (${JSON.stringify(env.GOSSIP_TOKENS)}): ` +
        'set it to comma-separated tokens, or unset it to run without auth',
    );
  }
  const tokenFile = get('token-file');
  if (tokenFile !== undefined) {
    const source = values['token-file'] === undefined ? 'GOSSIP_TOKEN_FILE' : '--token-file';
    if (tokenFile === '') throw new ConfigError(`${source} is empty: give the path of a file with one token per line`);
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read ${source} ${tokenFile}: ${(error as Error).message}`);
    }
    const fromFile = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    if (fromFile.length === 0) {
      throw new ConfigError(
        `${source} ${tokenFile} holds no token (only blank lines and # comments): put one token per line`,
      );
    }
    tokens.push(...fromFile);
  }
  if (tokens.some((t) => t.length === 0)) throw new ConfigError('an auth token is empty');
  const tlsCert = get('tls-cert');
  const tlsKey = get('tls-key');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new ConfigError('--tls-cert and --tls-key go together');
  const maxData = bytes('max-data');
  if (maxData > 2 ** 31) throw new ConfigError('--max-data is at most 2GiB');
  const maxFrame = get('max-frame') === undefined ? undefined : bytes('max-frame');
  if (maxFrame !== undefined && maxFrame > 2 ** 32 - 1) throw new ConfigError('--max-frame is at most 4GiB - 1');

  const cluster = [...((raw(setting('cluster')) as string[] | undefined) ?? [])].flatMap((u) =>
    u
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );
  for (const u of cluster) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(u) && !/^[^/:\s]+:\d+$/.test(u))
      throw new ConfigError(`--cluster takes NATS URLs such as nats://10.0.0.1:4222, got ${JSON.stringify(u)}`);
  }
  // only the flags given: nats.js takes an absent key as unset, and `Object.keys` counts them below
  const given = <K extends string>(flags: Record<K, string>): Partial<Record<K, string>> =>
    Object.fromEntries(
      Object.entries<string>(flags).flatMap(([key, flag]) => {
        const value = get(flag);
        return value === undefined ? [] : [[key, value]];
      }),
    ) as Partial<Record<K, string>>;
  const clusterAuth = given({
    user: 'cluster-user',
    pass: 'cluster-password',
    token: 'cluster-token',
    credsFile: 'cluster-creds',
    nkeyFile: 'cluster-nkey',
  });
  if ((clusterAuth.user === undefined) !== (clusterAuth.pass === undefined))
    throw new ConfigError('--cluster-user and --cluster-password go together');
  const ways = (['cluster-user', 'cluster-token', 'cluster-creds', 'cluster-nkey'] as const).filter(
    (flag) => get(flag) !== undefined,
  );
  if (ways.length > 1)
    throw new ConfigError(`an edge proves itself to NATS one way: --${ways.join(' or --')}, not several`);
  const clusterTlsFiles = given({ caFile: 'cluster-tls-ca', certFile: 'cluster-tls-cert', keyFile: 'cluster-tls-key' });
  if ((clusterTlsFiles.certFile === undefined) !== (clusterTlsFiles.keyFile === undefined))
    throw new ConfigError('--cluster-tls-cert and --cluster-tls-key go together');
  for (const [flag, file] of [
    ['cluster-tls-ca', clusterTlsFiles.caFile],
    ['cluster-tls-cert', clusterTlsFiles.certFile],
    ['cluster-tls-key', clusterTlsFiles.keyFile],
  ] as const) {
    if (file !== undefined && !readable(file)) throw new ConfigError(`--${flag}: cannot read ${file}`);
  }
  if (cluster.length === 0 && (Object.keys(clusterAuth).length > 0 || Object.keys(clusterTlsFiles).length > 0))
    throw new ConfigError(
      'the --cluster-user, --cluster-token, --cluster-creds, --cluster-nkey and --cluster-tls-* flags need --cluster',
    );
  checkCredentialFile(
    'cluster-creds',
    clusterAuth.credsFile,
    parseCreds,
    'a user JWT and an nkey seed (nsc writes one)',
  );
  checkCredentialFile('cluster-nkey', clusterAuth.nkeyFile, parseNkeySeed, 'a user nkey seed, SU…');

  return {
    kind: 'run',
    config: {
      host: get('host') as string,
      port: int('port', 0, 65535),
      dataDir: get('data-dir') as string,
      fsync,
      fsyncIntervalMs: ms('fsync-interval'),
      maxData,
      maxFrame,
      segmentSize: bytes('segment-size'),
      compactThreshold: threshold,
      tombstoneRetentionMs: ms('tombstone-retention'),
      maxConnections: get('max-connections') === undefined ? undefined : int('max-connections', 1),
      helloTimeoutMs: ms('hello-timeout'),
      idleTimeoutMs: ms('idle-timeout'),
      pingIntervalMs: ms('ping-interval'),
      maxOutbound: bytes('max-outbound'),
      maxSkewMs: ms('max-skew'),
      maxFetchIds: int('max-fetch-ids', 1, MAX_FETCH_IDS),
      maxPrefixes: int('max-prefixes', 1, MAX_PREFIXES_SETTING),
      tokens,
      insecure: bool('insecure'),
      legacy: legacy === 'on',
      legacyWithTokens: bool('legacy-with-tokens'),
      tlsCert,
      tlsKey,
      tlsCa: get('tls-ca'),
      adminHost: get('admin-host') as string,
      adminPort: adminPort === 'off' ? null : parseInt10(adminPort, setting('admin-port'), 0, 65535),
      logLevel,
      logFormat,
      cluster,
      clusterName: checkClusterName(get('cluster-name') as string),
      clusterAuth,
      clusterTls: Object.keys(clusterTlsFiles).length > 0 ? clusterTlsFiles : undefined,
      clusterReplicas: int('cluster-replicas', 1, 5),
    },
  };
}

/**
 * Refuses (GOSSIP_ERR_INSECURE) a non-loopback --host or --admin-host without tokens
 * unless --insecure is set: anyone who can reach the main port could publish and read,
 * and the admin port's metrics and POST /compact would be open to them. gossipd runs
 * this before it creates the data folder or opens a port; the server checks its own
 * port again in listen().
 */
export function checkExposure(config: Config): void {
  // The main port's check is the server's own, run here too before anything is created.
  checkServerExposure(config.host, config.tokens.length > 0, config.insecure);
  if (config.tokens.length > 0 || config.insecure) return;
  if (config.adminPort !== null && !isLoopback(config.adminHost)) {
    throw new GossipError(
      'GOSSIP_ERR_INSECURE',
      `refusing to serve the admin listener on ${config.adminHost} without auth tokens: anyone who can reach it ` +
        'could read /metrics and run POST /compact. Keep --admin-host on loopback, set --token (or GOSSIP_TOKENS), ' +
        'or pass --insecure if the network is trusted',
    );
  }
}

function parseInt10(text: string, s: Setting, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new ConfigError(
      `--${s.flag} (${s.env}) must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gib: 2 ** 30,
};

/** `1048576`, `512KiB`, `10MiB`, `1GB`. */
export function parseBytes(text: string, s: Setting): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = BYTE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) {
    throw new ConfigError(
      `--${s.flag} (${s.env}) must be a size like 1048576, 512KiB or 10MiB, got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(Number(m[1]) * unit);
}

const MS_UNITS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** `250` (ms), `250ms`, `5s`, `10m`, `24h`, `7d`. */
export function parseDuration(text: string, s: Setting): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m)
    throw new ConfigError(
      `--${s.flag} (${s.env}) must be a duration like 250ms, 5s, 10m or 24h, got ${JSON.stringify(text)}`,
    );
  return Math.round(Number(m[1]) * (MS_UNITS[m[2] ?? 'ms'] as number));
}

export function helpText(version: string): string {
  const lines = [
    `gossipd ${version}: a small, fast, persistent pub/sub log over TCP`,
    '',
    'Usage: gossipd [options]',
    '',
    'Every option can also be set by the environment variable shown; a flag wins.',
    '',
  ];
  const width = Math.max(...SETTINGS.map((s) => s.flag.length)) + 4;
  for (const s of SETTINGS) {
    const def = s.default === undefined ? '' : ` (default ${s.default})`;
    lines.push(`  --${s.flag.padEnd(width)}${s.help}${def}`);
    lines.push(`    ${''.padEnd(width)}${s.env}`);
  }
  lines.push(`  --${'help'.padEnd(width)}this text`, `  --${'version'.padEnd(width)}print the version`, '');
  lines.push('Signals: SIGINT/SIGTERM stop gracefully (a second one exits at once).');
  lines.push('Exit codes: 0 stopped cleanly, 1 failed at runtime, 2 bad configuration.');
  return `${lines.join('\n')}\n`;
}
