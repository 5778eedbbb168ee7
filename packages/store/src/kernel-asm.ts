import { FrameKind, MAX_ID_BYTES, MessageFlags } from '@gossip/protocol';
import { CRC_TABLE } from './crc.js';

/** Where the module's memory holds the CRC tables, and where `frames` leaves its counts (kernel.ts). */
export const TABLES = 0;
export const HEADER = CRC_TABLE.byteLength;

/**
 * The module's bytes: one memory (exported, 1 page to start), and two functions.
 *
 * `crcs(p, pEnd, out)`: for each (start, end) u32 pair in p..pEnd, the CRC-32 of
 * memory[start..end) to `out` as a u32, in turn.
 *
 * `frames(n, pos, buf, at, size, lo, hi, from, bases, out, bad)`: for each window item
 * k < n (the u32 arrays pos, buf, at, size), whose record is at bases[buf[k]] + at[k]:
 * skip it if its size is 0; else check it as recordBodyLength (format.ts) does, adding
 * k to the array `bad` if that fails; skip it unless its ts is the plan's (lo and hi,
 * indexed by pos[k] - from); else write it at `out` as a frame. Returns the end of the
 * frames, and leaves the frame count and the bad count at HEADER.
 *
 * Both compute a CRC as `checksum` (crc.ts) does: with tables, 8 bytes a turn. Linear
 * memory is little-endian; the records' fields are big-endian and read byte by byte.
 */
export function assembleKernel(): Uint8Array {
  const uleb = (v: number): number[] => {
    const out: number[] = [];
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      out.push(b);
    } while (v !== 0);
    return out;
  };
  const sleb = (v: number): number[] => {
    const out: number[] = [];
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return [...out, b];
      out.push(b | 0x80);
    }
  };
  type Code = number | Code[];
  const flat = (code: Code[]): number[] => code.flatMap((c) => (typeof c === 'number' ? [c] : flat(c)));
  const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
  const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
  const name = (s: string): number[] => vec([...Buffer.from(s, 'latin1')].map((b) => [b]));

  const I32 = 0x7f;
  const get = (local: number) => [0x20, local];
  const set = (local: number) => [0x21, local];
  const tee = (local: number) => [0x22, local];
  const i32 = (v: number) => [0x41, ...sleb(v)];
  const load = (offset: number) => [0x28, 2, ...uleb(offset)];
  const loadUnaligned = [0x28, 0, 0];
  const load8 = (offset: number) => [0x2d, 0, ...uleb(offset)];
  const store = (offset: number) => [0x36, 2, ...uleb(offset)];
  const store8 = (offset: number) => [0x3a, 0, ...uleb(offset)];
  const MEMORY_COPY = [0xfc, 10, 0, 0];
  const [EQZ, NE, LT_S, LT_U, GT_U, GE_U] = [0x45, 0x47, 0x48, 0x49, 0x4b, 0x4f];
  const [ADD, SUB, AND, OR, XOR, SHL, SHR_U] = [0x6a, 0x6b, 0x71, 0x72, 0x73, 0x74, 0x76];
  const BLOCK = [0x02, 0x40];
  const LOOP = [0x03, 0x40];
  const END = [0x0b];
  const br = (depth: number) => [0x0c, depth];
  const brIf = (depth: number) => [0x0d, depth];

  /** The big-endian u32 (or u16) at local `a` + `offset`. */
  const be32 = (a: number, offset: number): Code[] => [
    ...[get(a), load8(offset), i32(24), [SHL]],
    ...[get(a), load8(offset + 1), i32(16), [SHL], [OR]],
    ...[get(a), load8(offset + 2), i32(8), [SHL], [OR]],
    ...[get(a), load8(offset + 3), [OR]],
  ];
  const be16 = (a: number, offset: number) => [get(a), load8(offset), i32(8), [SHL], get(a), load8(offset + 1), [OR]];
  /** T[k][(c >>> shift) & 255], xored into what is on the stack unless first. */
  const fromC = (c: number, k: number, shift: number, first = false): Code[] => [
    get(c),
    shift > 0 ? [...i32(shift), SHR_U] : [],
    shift < 24 ? [...i32(255), AND] : [],
    [...i32(2), SHL, ...load(TABLES + 1024 * k)],
    first ? [] : [XOR],
  ];
  /** T[k][u8[s + byte]], xored into what is on the stack. */
  const fromByte = (s: number, k: number, byte: number): Code[] => [
    get(s),
    load8(byte),
    [...i32(2), SHL, ...load(TABLES + 1024 * k), XOR],
  ];
  /** Local c = the CRC-32 of memory[s..e), by `checksum`'s loop; s ends at e. */
  // biome-ignore format: one line per statement of the loop
  const crc = (s: number, e: number, c: number): Code[] => [
    i32(-1), set(c),
    BLOCK, LOOP,
    get(e), get(s), [SUB], i32(8), [LT_S], brIf(1), // signed: a span with e < s is empty
    get(c), get(s), loadUnaligned, [XOR], set(c),
    fromC(c, 7, 0, true), fromC(c, 6, 8), fromC(c, 5, 16), fromC(c, 4, 24),
    fromByte(s, 3, 4), fromByte(s, 2, 5), fromByte(s, 1, 6), fromByte(s, 0, 7),
    set(c), get(s), i32(8), [ADD], set(s), br(0),
    END, END,
    BLOCK, LOOP,
    get(s), get(e), [GE_U], brIf(1),
    get(c), get(s), load8(0), [XOR], i32(255), [AND], i32(2), [SHL], load(TABLES),
    get(c), i32(8), [SHR_U], [XOR], set(c),
    get(s), i32(1), [ADD], set(s), br(0),
    END, END,
    get(c), i32(-1), [XOR], set(c),
  ];

  // crcs: parameters p, pEnd, out; locals s, e, c.
  const crcs = (() => {
    const [P, P_END, OUT, S, E, C] = [0, 1, 2, 3, 4, 5];
    // biome-ignore format: one line per statement
    const body: Code[] = [
      BLOCK, LOOP,
      get(P), get(P_END), [GE_U], brIf(1),
      get(P), load(0), set(S), get(P), load(4), set(E),
      crc(S, E, C),
      get(OUT), get(C), store(0),
      get(OUT), i32(4), [ADD], set(OUT), get(P), i32(8), [ADD], set(P), br(0),
      END, END,
      END,
    ];
    return [...vec([[3, I32]]), ...flat(body)];
  })();

  // frames: parameters as documented; n is turned into 4n, the end of the item arrays' offsets.
  const frames = (() => {
    const [N, POS, BUF, AT, SIZE, LO, HI, FROM, BASES, OUT, BAD] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    // Locals: k4 = 4k, the record's address and size, its bodyLen and idLen, the CRC,
    // its span, the frames' end so far, the counts, and 4i for the plan's arrays.
    const [K4, A, RSIZE, BODY_LEN, ID_LEN, C, S, E, O, COUNT, FAILED, I4] = [
      11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    ];
    const word = (array: number, index: number): Code[] => [get(array), get(index), [ADD], load(0)];
    // biome-ignore format: one line per statement
    const body: Code[] = [
      get(N), i32(2), [SHL], set(N),
      get(OUT), set(O),
      BLOCK, LOOP, // depth 1: done; depth 0: next item
      get(K4), get(N), [GE_U], brIf(1),
      word(SIZE, K4), set(RSIZE),
      BLOCK, // depth 0: this item is done
      get(RSIZE), [EQZ], brIf(0), // left out: updated since its cut, or its segment is gone
      get(BASES), word(BUF, K4), i32(2), [SHL], [ADD], load(0), word(AT, K4), [ADD], set(A),
      BLOCK, // depth 0: bad; depth 1: this item is done
      get(RSIZE), i32(20), [LT_U], brIf(0), // shorter than a record with a 1-byte id
      be32(A, 4), tee(BODY_LEN), i32(8), [ADD], get(RSIZE), [NE], brIf(0),
      be16(A, 17), tee(ID_LEN), [EQZ], brIf(0),
      get(ID_LEN), i32(MAX_ID_BYTES), [GT_U], brIf(0),
      get(ID_LEN), i32(11), [ADD], get(BODY_LEN), [GT_U], brIf(0),
      get(A), i32(4), [ADD], set(S), get(A), get(RSIZE), [ADD], set(E),
      crc(S, E, C),
      get(C), be32(A, 0), [NE], brIf(0),
      word(POS, K4), get(FROM), [SUB], i32(2), [SHL], set(I4),
      be32(A, 9), i32(-0x80000000), [XOR], word(HI, I4), [NE], brIf(1), // updated since the plan
      be32(A, 13), word(LO, I4), [NE], brIf(1),
      get(O), i32(5), [ADD], get(A), i32(8), [ADD], get(BODY_LEN), MEMORY_COPY,
      get(O), get(BODY_LEN), i32(1), [ADD], i32(24), [SHR_U], store8(0),
      get(O), get(BODY_LEN), i32(1), [ADD], i32(16), [SHR_U], store8(1),
      get(O), get(BODY_LEN), i32(1), [ADD], i32(8), [SHR_U], store8(2),
      get(O), get(BODY_LEN), i32(1), [ADD], store8(3),
      get(O), i32(FrameKind.Message), store8(4),
      get(O), i32(MessageFlags.Replayed), store8(5),
      get(O), i32(5), [ADD], get(BODY_LEN), [ADD], set(O),
      get(COUNT), i32(1), [ADD], set(COUNT),
      br(1),
      END,
      get(BAD), get(FAILED), i32(2), [SHL], [ADD], get(K4), i32(2), [SHR_U], store(0),
      get(FAILED), i32(1), [ADD], set(FAILED),
      END,
      get(K4), i32(4), [ADD], set(K4), br(0),
      END, END,
      i32(HEADER), get(COUNT), store(0),
      i32(HEADER), get(FAILED), store(4),
      get(O),
      END,
    ];
    return [...vec([[12, I32]]), ...flat(body)];
  })();

  const params = (count: number) => vec(Array.from({ length: count }, () => [I32]));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(
      1,
      vec([
        [0x60, ...params(3), ...vec([])],
        [0x60, ...params(11), ...vec([[I32]])],
      ]),
    ), // types
    ...section(3, vec([[0], [1]])), // crcs has type 0, frames type 1
    ...section(5, vec([[0x00, 1]])), // memory 0: 1 page, no maximum
    ...section(
      7,
      vec([
        [...name('memory'), 0x02, 0],
        [...name('crcs'), 0x00, 0],
        [...name('frames'), 0x00, 1],
      ]),
    ),
    ...section(
      10,
      vec([
        [...uleb(crcs.length), ...crcs],
        [...uleb(frames.length), ...frames],
      ]),
    ),
  ]);
}
