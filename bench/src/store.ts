/**
 * Store: append throughput and latency per durability mode, recovery, replay,
 * compaction, and index memory per id. Each case runs on a fresh temporary folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_FILE, type FsyncMode, Store } from '@gossip/store';
import { percentile, type Row } from './measure.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const DATA = Buffer.alloc(100, 0x61);

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'gossip-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Appends `total` messages over `ids` ids, `concurrency` appenders each awaiting its own ack. */
async function appendRate(mode: FsyncMode, concurrency: number, total: number, ids = 20_000): Promise<number> {
  return withDir(async (dir) => {
    const store = await Store.open({ dir, fsync: mode, compactThreshold: 0 });
    let ts = 1n;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          await store.append(`id:${i % ids}`, ts++, DATA);
        }
      }),
    );
    const ms = performance.now() - t0;
    await store.close();
    return (total / ms) * 1000;
  });
}

/** Pipelined appends: a publisher that does not wait, in slices of `slice` per turn. */
async function pipelinedRate(mode: FsyncMode, total: number, ids = 20_000, slice = 10_000): Promise<number> {
  return withDir(async (dir) => {
    const store = await Store.open({ dir, fsync: mode, compactThreshold: 0 });
    let ts = 1n;
    const t0 = performance.now();
    for (let done = 0; done < total; ) {
      const batch: Promise<unknown>[] = [];
      for (let k = 0; k < slice && done < total; k++, done++) batch.push(store.append(`id:${done % ids}`, ts++, DATA));
      await Promise.all(batch);
    }
    const ms = performance.now() - t0;
    await store.close();
    return (total / ms) * 1000;
  });
}

async function latency(mode: FsyncMode, count: number): Promise<{ p50: number; p99: number }> {
  return withDir(async (dir) => {
    const store = await Store.open({ dir, fsync: mode, compactThreshold: 0 });
    const samples = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await store.append(`id:${i % 1000}`, BigInt(i + 1), DATA);
      samples[i] = performance.now() - t0;
    }
    await store.close();
    samples.sort();
    return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
  });
}

async function fill(store: Store, records: number, ids: number): Promise<void> {
  let ts = 1n;
  for (let done = 0; done < records; ) {
    const batch: Promise<unknown>[] = [];
    for (let k = 0; k < 10_000 && done < records; k++, done++) batch.push(store.append(`id:${done % ids}`, ts++, DATA));
    await Promise.all(batch);
  }
}

async function recoveryReplayCompaction(records: number, ids: number): Promise<Row[]> {
  return withDir(async (dir) => {
    // 8 MiB segments, so that most of the log is sealed and compaction has work to do.
    const segmentBytes = 8 * 1024 * 1024;
    let store = await Store.open({ dir, fsync: 'never', compactThreshold: 0, segmentBytes });
    await fill(store, records, ids);
    await store.close();

    // A scan of every record, as after a crash: the clean close's checkpoint is removed.
    await rm(join(dir, CHECKPOINT_FILE));
    let t0 = performance.now();
    store = await Store.open({ dir, compactThreshold: 0, segmentBytes });
    const recoveryMs = performance.now() - t0;

    // Each replay form three times, the best pass counted: one pass takes tens of ms.
    let replayed = 0;
    let replayMs = Number.POSITIVE_INFINITY;
    let framed = 0;
    let framesMs = Number.POSITIVE_INFINITY;
    for (let pass = 0; pass < 3; pass++) {
      t0 = performance.now();
      replayed = 0;
      for await (const batch of store.replayBatches(null)) replayed += batch.length;
      replayMs = Math.min(replayMs, performance.now() - t0);
      t0 = performance.now();
      framed = 0;
      for await (const batch of store.replayRecords(null)) framed += batch.count;
      framesMs = Math.min(framesMs, performance.now() - t0);
    }

    // Compaction of everything sealed while a writer appends at a steady pace.
    const before = store.stats();
    const lat: number[] = [];
    let writing = true;
    let ts = BigInt(records + 1);
    const writer = (async () => {
      while (writing) {
        const a = performance.now();
        await store.append(`w:${Number(ts) % 1000}`, ts++, DATA);
        lat.push(performance.now() - a);
      }
    })();
    t0 = performance.now();
    const result = await store.compact();
    const compactMs = performance.now() - t0;
    writing = false;
    await writer;
    await store.close();

    // A clean close wrote the checkpoint: the next open loads it instead of scanning.
    t0 = performance.now();
    store = await Store.open({ dir, compactThreshold: 0, segmentBytes });
    const checkpointMs = performance.now() - t0;
    const loaded = store.stats().ids;
    await store.close();
    const sorted = Float64Array.from(lat).sort();
    return [
      {
        bench: 'store',
        case: `recovery by scan, ${records / 1e6} M records / ${ids / 1e3} k ids`,
        value: (before.recovery.records / recoveryMs) * 1000,
        unit: 'records/s',
      },
      {
        bench: 'store',
        case: `open from the checkpoint, ${Math.round(loaded / 1e3)} k ids`,
        value: checkpointMs,
        unit: 'ms',
      },
      {
        bench: 'store',
        case: `replay ${replayed / 1e3} k ids (messages)`,
        value: (replayed / replayMs) * 1000,
        unit: 'messages/s',
      },
      {
        bench: 'store',
        case: `replay ${framed / 1e3} k ids (wire frames)`,
        value: (framed / framesMs) * 1000,
        unit: 'messages/s',
      },
      {
        bench: 'store',
        case: `compaction ${(result.bytesIn / 2 ** 20).toFixed(0)} MiB → ${(result.bytesOut / 2 ** 20).toFixed(0)} MiB`,
        value: (result.bytesIn / 2 ** 20 / compactMs) * 1000,
        unit: 'MiB/s',
      },
      { bench: 'store', case: 'append p99 during compaction', value: percentile(sorted, 0.99), unit: 'ms' },
    ];
  });
}

async function indexBytesPerId(ids: number): Promise<number> {
  return withDir(async (dir) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    const mem = () => {
      gc?.();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const store = await Store.open({ dir, fsync: 'never', compactThreshold: 0 });
    const names = Array.from({ length: ids }, (_, i) => `id:${i}`);
    const base = mem();
    for (let done = 0; done < ids; ) {
      const batch: Promise<unknown>[] = [];
      for (let k = 0; k < 10_000 && done < ids; k++, done++) batch.push(store.append(names[done] as string, 1n, DATA));
      await Promise.all(batch);
    }
    await store.flush();
    const used = mem() - base;
    await store.close();
    // The id strings were allocated before `base`: what is left is the index itself.
    return used / ids;
  });
}

export async function storeBench(): Promise<Row[]> {
  const scale = env('GOSSIP_BENCH_SCALE', 1);
  const rows: Row[] = [];
  const n = Math.round(1_000_000 * scale);
  rows.push({
    bench: 'store',
    case: 'append 100 B, interval, pipelined',
    value: await pipelinedRate('interval', n),
    unit: 'appends/s',
  });
  for (const c of [1, 16, 256]) {
    const total = Math.round((c === 1 ? 5_000 : c === 16 ? 40_000 : 200_000) * scale);
    rows.push({
      bench: 'store',
      case: `append 100 B, always, ${c} appenders`,
      value: await appendRate('always', c, total),
      unit: 'appends/s',
    });
  }
  rows.push({
    bench: 'store',
    case: 'append 100 B, interval, 256 appenders',
    value: await appendRate('interval', 256, n),
    unit: 'appends/s',
  });
  for (const mode of ['interval', 'always'] as const) {
    const { p50, p99 } = await latency(mode, Math.round(5_000 * scale));
    rows.push({ bench: 'store', case: `append latency p50, ${mode}`, value: p50, unit: 'ms' });
    rows.push({ bench: 'store', case: `append latency p99, ${mode}`, value: p99, unit: 'ms' });
  }
  rows.push(...(await recoveryReplayCompaction(n, Math.round(100_000 * scale))));
  rows.push({
    bench: 'store',
    case: 'index memory per id (beyond id bytes)',
    value: await indexBytesPerId(Math.round(1_000_000 * scale)),
    unit: 'bytes',
  });
  return rows;
}
