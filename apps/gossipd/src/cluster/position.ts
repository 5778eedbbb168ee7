import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isEpoch } from '@gossip/protocol';

/** The file, in the edge's data folder, that says how far into the stream its copy goes. */
export const POSITION_FILE = 'cluster.json';

/**
 * How far an edge's copy goes (docs/CLUSTER.md, "An edge's copy"): the stream it copies,
 * the cluster's epoch, and the last stream sequence applied to the store. Written only
 * after the store has flushed what it names, so it never runs ahead of the copy: after a
 * crash the edge applies some messages again, which the store takes as stale.
 */
export interface Position {
  stream: string;
  epoch: string;
  applied: number;
}

export async function loadPosition(dir: string): Promise<Position | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, POSITION_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const j = JSON.parse(text) as Partial<Position> & { format?: number };
    if (j.format === 1 && typeof j.stream === 'string' && isEpoch(j.epoch) && Number.isSafeInteger(j.applied)) {
      return { stream: j.stream, epoch: j.epoch, applied: j.applied as number };
    }
  } catch {
    // a torn or foreign file: the copy is rebuilt from the stream
  }
  return undefined;
}

export async function savePosition(dir: string, p: Position): Promise<void> {
  const tmp = join(dir, `${POSITION_FILE}.tmp`);
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(`${JSON.stringify({ format: 1, ...p })}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, join(dir, POSITION_FILE));
}
