export type { GossipdOptions, LogLine } from './gossipd.js';
export { GOSSIPD, Gossipd } from './gossipd.js';
export type { LegacyEvent, LegacyMessageEvent, LegacyTagChar } from './legacy-client.js';
export { LegacyClient, legacyFrame, legacyHandshake, legacyPayload } from './legacy-client.js';
export { RawClient } from './raw-client.js';
