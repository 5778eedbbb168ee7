export { TokenSet } from './auth.js';
export type { ConnectionState } from './connection.js';
export { RefusalLog } from './events.js';
export type { ServerLogger, ServerOptions } from './options.js';
export { DEFAULTS, MAX_PREFIXES_SETTING } from './options.js';
export type { PublishOutcome, RecordLog, Replicated } from './record-log.js';
export { REPLICATED, SUPERSEDED } from './record-log.js';
export { checkExposure, GossipServer, isLoopback } from './server.js';
export type { ServerStats } from './stats.js';
