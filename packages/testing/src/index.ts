export type { SkimmedFrame } from './frame-skimmer.js';
export type { Exit, GossipdOptions, LogLine } from './gossipd.js';
export { GOSSIPD, Gossipd } from './gossipd.js';
export type { ProcMemory } from './proc.js';
export { procDescriptors, procMemory } from './proc.js';
export type { ConnEnd, DialOptions } from './raw-client.js';
export { RawClient } from './raw-client.js';
export type { WirePublisher, WirePublisherOptions } from './wire-publisher.js';
export { wirePublisher } from './wire-publisher.js';
