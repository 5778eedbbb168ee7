import type { StoreFs } from './fs.js';
import type { IndexTable } from './index-table.js';
import type { Meta } from './meta.js';
import type { StoreLogger } from './options.js';
import type { SegmentSet } from './segments.js';

/** What the store's rooms share (the writer, recovery, compaction): the one of each a store holds. */
export interface StoreParts {
  fs: StoreFs;
  dir: string;
  meta: Meta;
  log: StoreLogger;
  index: IndexTable;
  segments: SegmentSet;
}
