// The launcher and the native client live in @gossip/testing, shared with the benchmarks;
// the legacy client stays here, written from docs/PROTOCOL.md alone.
export type { LegacyEvent, LegacyMessageEvent, LegacyTagChar } from './legacy-client.js';
export { LegacyClient, legacyFrame, legacyHandshake, legacyPayload } from './legacy-client.js';
