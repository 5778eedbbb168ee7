export type { GossipdOptions, LogLine } from './gossipd.js';
export { GOSSIPD, Gossipd } from './gossipd.js';
export { RawClient } from './raw-client.js';
