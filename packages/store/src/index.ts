export { CHECKPOINT_FILE } from './checkpoint.js';
export type { ParsedRecord } from './format.js';
export {
  FORMAT_VERSION,
  parseRecord,
  parseSegmentName,
  RECORD_OVERHEAD_BYTES,
  replaces,
  SEGMENT_HEADER_BYTES,
  segmentName,
} from './format.js';
export type { OpenMode, StoreFile, StoreFs } from './fs.js';
export { nodeFs } from './fs.js';
export type { Meta } from './meta.js';
export { LOCK_FILE, loadMeta, META_FILE } from './meta.js';
export type { Corruption, RecordVisitor, ScanResult, SegmentFile, TailContext, TailVerdict } from './recovery.js';
export { classifyTail, scanEnd, scanSegment, segmentFiles } from './recovery.js';
export type {
  AppendResult,
  CompactionResult,
  FsyncMode,
  RecoveryProgress,
  RecoveryReport,
  ReplayFrames,
  StoredMessage,
  StoreLogger,
  StoreOptions,
  StoreStats,
} from './store.js';
export { Store } from './store.js';
