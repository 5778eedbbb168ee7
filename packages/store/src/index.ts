export { Buckets, COUNT_BUCKETS, SECONDS_BUCKETS } from './buckets.js';
export { CHECKPOINT_FILE } from './checkpoint.js';
export type { CompactionResult } from './compaction.js';
export type { ParsedRecord } from './format.js';
export {
  FORMAT_VERSION,
  parseRecord,
  parseSegmentName,
  RECORD,
  RECORD_OVERHEAD_BYTES,
  RECORD_PREFIX_BYTES,
  replaces,
  SEGMENT_HEADER_BYTES,
  segmentName,
} from './format.js';
export type { OpenMode, StoreFile, StoreFs } from './fs.js';
export { nodeFs } from './fs.js';
export type { Meta } from './meta.js';
export { LOCK_FILE, loadMeta, META_FILE } from './meta.js';
export type { FsyncMode, RecoveryProgress, StoreLogger, StoreOptions } from './options.js';
export { DEFAULTS } from './options.js';
export type { RecoveryReport } from './recover.js';
export type { Corruption, RecordVisitor, ScanResult, SegmentFile, TailContext, TailVerdict } from './recovery.js';
export { classifyTail, scanEnd, scanSegment, segmentFiles } from './recovery.js';
export type { RecordBatch, ReplayOptions, StoredMessage } from './replay.js';
export type { StoreStats } from './store.js';
export { Store } from './store.js';
export type { AppendResult } from './writer.js';
