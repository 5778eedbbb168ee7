import { endianness } from 'node:os';
import { CRC_TABLE, checksum } from './crc.js';
import { HEADER, TABLES } from './kernel-asm.js';
import type { ReplayPlan, ReplayWindow } from './replay.js';

/*
 * The replay's per-record work in WebAssembly. A replay may be the first of a process,
 * when JS loops still run in V8's interpreter, at 0.1 to 0.3 µs per record and pass
 * and tens of ns per CRC byte, until the JIT has seen enough of them. WebAssembly is
 * compiled to machine code when it is instantiated, so a cold replay runs at nearly
 * the speed of a warm one: the window's bytes are copied in, checked and framed in one
 * call, and the frames copied out.
 *
 * The module is `assembleKernel` (kernel-asm.ts), written out below as base64 so that
 * no process pays for assembling it; the test suite checks that the two agree. Where
 * WebAssembly cannot run (--jitless, a big-endian host), both functions here return
 * undefined and the store uses its JS loops.
 */

/** Windows larger than this take the JS path: the module's memory never shrinks. */
const MAX_BYTES = 16 * 1024 * 1024;
const PAGE = 64 * 1024;
/** Memory: the CRC tables, a 16-byte header (a call's counts), then each call's arrays and bytes. */
const ARRAYS = HEADER + 16;

export interface WindowFrames {
  /** The window's valid records as message frames flagged `Replayed`, in window order: in the window's first buffer if they fit. */
  frames: Buffer;
  count: number;
  /** Items whose record failed its checks (length fields or CRC). */
  bad: Uint32Array;
}

/**
 * Records read into buffers, as a replay window holds them: item k is `size[k]` bytes
 * at `at[k]` of `bufs[buf[k]]`; `bytes` is the items' sizes added up.
 */
export interface ReadRecords {
  readonly bufs: readonly Uint8Array[];
  readonly count: number;
  readonly buf: Uint32Array;
  readonly at: Uint32Array;
  readonly size: Uint32Array;
  readonly bytes: number;
}

/**
 * Checks window `w`'s records (read, item by item) and frames those that are valid and
 * still hold the ts `plan` has for them (docs/STORAGE.md, S2; docs/PROTOCOL.md, M1).
 * Undefined when the module cannot run here or the window is too large for it.
 */
export function frameWindow(w: ReplayWindow, plan: ReplayPlan): WindowFrames | undefined {
  const n = w.count;
  const copy = copyPlan(w);
  const k = copy ? kernel() : undefined;
  if (!k || !copy) return undefined;
  if (n === 0) return { frames: Buffer.alloc(0), count: 0, bad: new Uint32Array(0) };
  // The plan's ts for the items: the range of plan positions the window spans, unless
  // ids updated since the plan left it sparse, then item by item.
  const spread = (w.pos[n - 1] as number) - (w.pos[0] as number) + 1;
  const dense = spread <= 2 * n + 1024;
  const planned = dense ? spread : n;
  const from = dense ? (w.pos[0] as number) : 0;
  const pos = ARRAYS;
  const buf = pos + 4 * n;
  const at = buf + 4 * n;
  const size = at + 4 * n;
  const bad = size + 4 * n;
  const lo = bad + 4 * n;
  const hi = lo + 4 * planned;
  const bases = hi + 4 * planned;
  const data = bases + 4 * copy.buffers;
  const out = data + copy.bytes;
  const mem = k.reserve(out + copy.bytes);
  if (!mem) return undefined;
  const words = (p: number, length: number) => new Uint32Array(mem, p, length);
  words(at, n).set(w.at.subarray(0, n));
  words(size, n).set(w.size.subarray(0, n));
  if (dense) {
    words(pos, n).set(w.pos.subarray(0, n));
    words(lo, planned).set(plan.lo.subarray(from, from + planned));
    words(hi, planned).set(plan.hi.subarray(from, from + planned));
  } else {
    const [p, l, h] = [words(pos, n), words(lo, n), words(hi, n)];
    for (let i = 0; i < n; i++) {
      p[i] = i;
      l[i] = plan.lo[w.pos[i] as number] as number;
      h[i] = plan.hi[w.pos[i] as number] as number;
    }
  }
  copyIn(w, copy.whole, mem, data, words(buf, n), words(bases, copy.buffers));
  let end: number;
  try {
    end = k.frames(n, pos, buf, at, size, lo, hi, from, bases, out, bad);
  } catch {
    // A trap: the frames would pass the memory's end if two items were one record,
    // which a sound index never has. The JS loops take the window.
    return undefined;
  }
  const [count, failed] = new Uint32Array(mem, HEADER, 2) as unknown as [number, number];
  // Back into the first read buffer when they fit, as they do when the window is one
  // read (its pages are in memory already); else a buffer of their own.
  const first = w.bufs[0] as Buffer;
  const framed = new Uint8Array(mem, out, end - out);
  const frames = first.length >= framed.length ? first.subarray(0, framed.length) : Buffer.allocUnsafe(framed.length);
  frames.set(framed);
  return { frames, count, bad: new Uint32Array(mem, bad, failed).slice() };
}

/**
 * The CRC-32 of each item's bytes after its first `skip` (a record's after its crc
 * field); an item shorter than `skip` has CRC 0.
 */
export function spanChecksums(r: ReadRecords, skip: number): Uint32Array {
  const n = r.count;
  const out = new Uint32Array(n);
  const copy = copyPlan(r);
  const k = copy ? kernel() : undefined;
  const spans = ARRAYS;
  const results = spans + 8 * n;
  const bufOf = results + 4 * n;
  const bases = bufOf + 4 * n;
  const data = bases + 4 * (copy?.buffers ?? 0);
  const mem = k && copy ? k.reserve(data + copy.bytes) : undefined;
  if (!k || !copy || !mem) {
    for (let i = 0; i < n; i++) {
      const len = r.size[i] as number;
      const start = r.at[i] as number;
      if (len >= skip) out[i] = checksum(r.bufs[r.buf[i] as number] as Uint8Array, start + skip, start + len);
    }
    return out;
  }
  const placed = new Uint32Array(mem, bufOf, n);
  const starts = new Uint32Array(mem, bases, copy.buffers);
  copyIn(r, copy.whole, mem, data, placed, starts);
  const pairs = new Uint32Array(mem, spans, 2 * n);
  for (let i = 0; i < n; i++) {
    const len = r.size[i] as number;
    const start = ((starts[placed[i] as number] as number) + (r.at[i] as number)) >>> 0;
    pairs[2 * i] = len >= skip ? start + skip : start;
    pairs[2 * i + 1] = len >= skip ? start + len : start;
  }
  k.crcs(spans, results, results);
  out.set(new Uint32Array(mem, results, n));
  return out;
}

/**
 * How records go into the module's memory: their read buffers whole when the records
 * fill at least half of them; when the buffers are mostly dead records read across
 * (gaps of up to 32 KiB), record by record. Undefined past MAX_BYTES.
 */
function copyPlan(r: ReadRecords): { whole: boolean; bytes: number; buffers: number } | undefined {
  let read = 0;
  for (const b of r.bufs) read += b.length;
  const whole = read <= 2 * r.bytes;
  const bytes = whole ? read : r.bytes;
  return bytes <= MAX_BYTES ? { whole, bytes, buffers: whole ? r.bufs.length : r.count } : undefined;
}

/**
 * Copies `r`'s records into `mem` from `data` (as `copyPlan` says), so that item i's
 * record is at `bases[bufOf[i]] + r.at[i]`: with whole buffers, bufOf is `r.buf` and
 * bases are the buffers' places; record by record, each item is a buffer of its own.
 */
function copyIn(
  r: ReadRecords,
  whole: boolean,
  mem: ArrayBuffer,
  data: number,
  bufOf: Uint32Array,
  bases: Uint32Array,
): void {
  const u8 = new Uint8Array(mem);
  let p = data;
  if (whole) {
    bufOf.set(r.buf.subarray(0, r.count));
    for (let b = 0; b < r.bufs.length; b++) {
      const chunk = r.bufs[b] as Uint8Array;
      u8.set(chunk, p);
      bases[b] = p;
      p += chunk.length;
    }
    return;
  }
  for (let i = 0; i < r.count; i++) {
    const start = r.at[i] as number;
    const length = r.size[i] as number;
    u8.set((r.bufs[r.buf[i] as number] as Uint8Array).subarray(start, start + length), p);
    bufOf[i] = i;
    bases[i] = p - start; // mod 2^32, as the module adds
    p += length;
  }
}

// ---- the module ---------------------------------------------------------------------

/** The little of the WebAssembly API used here (the Node types leave it out). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: object };
}

interface Exports {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  crcs(spans: number, spansEnd: number, out: number): void;
  frames(
    n: number,
    pos: number,
    buf: number,
    at: number,
    size: number,
    lo: number,
    hi: number,
    from: number,
    bases: number,
    out: number,
    bad: number,
  ): number;
}

interface Kernel extends Exports {
  /** The memory, grown to at least `bytes`; undefined if it cannot grow (the JS loops serve). */
  reserve(bytes: number): ArrayBuffer | undefined;
}

let instance: Kernel | null | undefined;

/** The module, instantiated on first use; null where it cannot run. */
function kernel(): Kernel | null {
  if (instance !== undefined) return instance;
  instance = null;
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (!wasm || endianness() !== 'LE') return null;
  let e: Exports;
  try {
    e = new wasm.Instance(new wasm.Module(Buffer.from(KERNEL_WASM, 'base64'))).exports as Exports;
  } catch {
    return null; // --jitless and the like: the JS loops serve
  }
  new Int32Array(e.memory.buffer, TABLES, CRC_TABLE.length).set(CRC_TABLE);
  instance = {
    memory: e.memory,
    crcs: e.crcs,
    frames: e.frames,
    reserve(bytes) {
      const have = e.memory.buffer.byteLength;
      try {
        if (bytes > have) e.memory.grow(Math.ceil((bytes - have) / PAGE));
      } catch {
        return undefined;
      }
      return e.memory.buffer;
    },
  };
  return instance;
}

/** `assembleKernel()`, in base64. */
export const KERNEL_WASM = [
  'AGFzbQEAAAABFgJgA39/fwBgC39/f39/f39/f39/AX8DAwIAAQUDAQABBxoDBm1lbW9yeQIABGNyY3MAAAZmcmFtZXMAAQqy' +
    'BwKFAgEDfwJAA0AgACABTw0BIAAoAgAhAyAAKAIEIQRBfyEFAkADQCAEIANrQQhIDQEgBSADKAAAcyEFIAVB/wFxQQJ0KAKA' +
    'OCAFQQh2Qf8BcUECdCgCgDBzIAVBEHZB/wFxQQJ0KAKAKHMgBUEYdkECdCgCgCBzIAMtAARBAnQoAoAYcyADLQAFQQJ0KAKA' +
    'EHMgAy0ABkECdCgCgAhzIAMtAAdBAnQoAgBzIQUgA0EIaiEDDAALCwJAA0AgAyAETw0BIAUgAy0AAHNB/wFxQQJ0KAIAIAVB' +
    'CHZzIQUgA0EBaiEDDAALCyAFQX9zIQUgAiAFNgIAIAJBBGohAiAAQQhqIQAMAAsLC6gFAQx/IABBAnQhACAJIRMCQANAIAsg' +
    'AE8NASAEIAtqKAIAIQ0CQCANRQ0AIAggAiALaigCAEECdGooAgAgAyALaigCAGohDAJAIA1BFEkNACAMLQAEQRh0IAwtAAVB' +
    'EHRyIAwtAAZBCHRyIAwtAAdyIg5BCGogDUcNACAMLQARQQh0IAwtABJyIg9FDQAgD0GAAksNACAPQQtqIA5LDQAgDEEEaiER' +
    'IAwgDWohEkF/IRACQANAIBIgEWtBCEgNASAQIBEoAABzIRAgEEH/AXFBAnQoAoA4IBBBCHZB/wFxQQJ0KAKAMHMgEEEQdkH/' +
    'AXFBAnQoAoAocyAQQRh2QQJ0KAKAIHMgES0ABEECdCgCgBhzIBEtAAVBAnQoAoAQcyARLQAGQQJ0KAKACHMgES0AB0ECdCgC' +
    'AHMhECARQQhqIREMAAsLAkADQCARIBJPDQEgECARLQAAc0H/AXFBAnQoAgAgEEEIdnMhECARQQFqIREMAAsLIBBBf3MhECAQ' +
    'IAwtAABBGHQgDC0AAUEQdHIgDC0AAkEIdHIgDC0AA3JHDQAgASALaigCACAHa0ECdCEWIAwtAAlBGHQgDC0ACkEQdHIgDC0A' +
    'C0EIdHIgDC0ADHJBgICAgHhzIAYgFmooAgBHDQEgDC0ADUEYdCAMLQAOQRB0ciAMLQAPQQh0ciAMLQAQciAFIBZqKAIARw0B' +
    'IBNBBWogDEEIaiAO/AoAACATIA5BAWpBGHY6AAAgEyAOQQFqQRB2OgABIBMgDkEBakEIdjoAAiATIA5BAWo6AAMgE0EGOgAE' +
    'IBNBAjoABSATQQVqIA5qIRMgFEEBaiEUDAELIAogFUECdGogC0ECdjYCACAVQQFqIRULIAtBBGohCwwACwtBgMAAIBQ2AgBB' +
    'gMAAIBU2AgQgEws=',
].join('');
