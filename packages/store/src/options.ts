import { DEFAULT_MAX_DATA_BYTES } from '@gossip/protocol';
import type { StoreFs } from './fs.js';

/** When an append is acknowledged (docs/STORAGE.md, S5). */
export type FsyncMode = 'always' | 'interval' | 'never';

/** pino-compatible: `logger.info({ fields }, 'message')`. */
export interface StoreLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface RecoveryProgress {
  segment: string;
  segmentsDone: number;
  segments: number;
  records: number;
}

/**
 * The store's defaults, one object: the store reads its options' defaults from here,
 * and a daemon derives its flags from it.
 */
export const DEFAULTS = {
  fsync: 'interval',
  fsyncIntervalMs: 100,
  segmentBytes: 64 * 1024 * 1024,
  maxDataBytes: DEFAULT_MAX_DATA_BYTES,
  compactThreshold: 0.5,
  compactCheckMs: 10_000,
  tombstoneRetentionMs: 24 * 3600 * 1000,
  corruption: 'skip',
  warm: true,
} as const satisfies Required<Pick<StoreOptions, DefaultedOption>>;

type DefaultedOption =
  | 'fsync'
  | 'fsyncIntervalMs'
  | 'segmentBytes'
  | 'maxDataBytes'
  | 'compactThreshold'
  | 'compactCheckMs'
  | 'tombstoneRetentionMs'
  | 'corruption'
  | 'warm';

/** No segment is larger, whatever `segmentBytes` asks: offsets in the index are 32-bit. */
export const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;

export interface StoreOptions {
  /** The data folder; created if missing. */
  dir: string;
  /**
   * `always`: an append settles after the fsync of the group commit that holds it.
   * `interval` (default): after the write; the file is fsynced every `fsyncIntervalMs`.
   * `never`: after the write; fsync only on roll-over and close.
   */
  fsync?: FsyncMode;
  /** Period of the background fsync under `interval`. Default 100 ms. */
  fsyncIntervalMs?: number;
  /** A segment takes no more appends past this size. Default 64 MiB; at most 1 GiB. */
  segmentBytes?: number;
  /** Largest data of one message. Default 10 MiB. */
  maxDataBytes?: number;
  /** Background compaction starts when the dead share of sealed segments passes this. Default 0.5; 0 turns it off. */
  compactThreshold?: number;
  /** How often the background compaction checks the dead ratio. Default 10 s. */
  compactCheckMs?: number;
  /** Tombstones whose ts is older than this are dropped by compaction. Default 24 h. */
  tombstoneRetentionMs?: number;
  /**
   * Instead of the retention: compaction drops the tombstones whose ts is below what this
   * returns when it runs. A store kept as a copy of a log of record elsewhere (a gossipd
   * cluster edge) passes one above the horizon that log set (`raiseHorizon`), so that its
   * horizon is the log's, not its own.
   */
  tombstoneCutoff?: () => bigint;
  /**
   * The identity a new data folder takes, instead of a new random one: a copy of a log
   * of record elsewhere takes that log's, so that its clients see one log. A folder that
   * exists keeps its own; compare `epoch` after the open.
   */
  epoch?: string;
  /** On a corrupt record inside an older segment: `skip` it and report (default), or `fail` to open. */
  corruption?: 'skip' | 'fail';
  /** The filesystem seam; tests pass a simulated disk. */
  fs?: StoreFs;
  logger?: StoreLogger;
  /** The clock retention is judged by. Default: the protocol's `now()`. */
  now?: () => bigint;
  /** Called after each segment recovery scans. */
  onRecoveryProgress?: (progress: RecoveryProgress) => void;
  /**
   * Compile the replay's per-record code right after the open (a few milliseconds, once
   * per process), so a process's first replay runs compiled code (docs/STORAGE.md,
   * "Replay"). Default true. An opener with more to do before it serves (gossipd, which
   * listens first) passes false and calls `warm()` when it is ready.
   */
  warm?: boolean;
}
