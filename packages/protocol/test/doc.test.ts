import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protocol from '@gossip/protocol';
import { decodeFrame, type Frame, FrameDecoder, FrameEncoder, LegacyDecoder, type LegacyFrame } from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import { GOLDEN, goldenBytes } from './golden.js';
import { comparable } from './support.js';
import { TRANSCRIPT } from './transcript.js';

/*
 * docs/PROTOCOL.md is the contract: these tests hold the page and the code to each
 * other. Every example decodes and is as long as it says, the test vectors and the
 * session are what FrameEncoder writes, the Limits table holds the exported constants,
 * and every rule the code cites exists on the page.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const page = readFileSync(join(ROOT, 'docs/PROTOCOL.md'), 'utf8');

/** The text of the section that starts at heading `heading` and ends at the next heading of its level or higher. */
function section(heading: string): string {
  const start = page.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no heading ${heading}`);
  const level = heading.indexOf(' ');
  const rest = page.slice(start + heading.length + 2);
  const next = rest.search(new RegExp(`\\n#{1,${level}} `));
  return next < 0 ? rest : rest.slice(0, next);
}

const legacyPart = section('## Legacy protocol');

interface Example {
  bytes: number;
  hex: string;
  legacy: boolean;
}

/** Every "As one string (N bytes): `hex`" of the page. */
const examples: Example[] = [...page.matchAll(/As one string \(([\d,]+) bytes\): `([0-9a-f]*)`/g)].map((m) => ({
  bytes: Number((m[1] as string).replace(/,/g, '')),
  hex: m[2] as string,
  legacy: legacyPart.includes(m[0]),
}));

function decodeNative(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f));
  decoder.push(bytes);
  decoder.end();
  return frames;
}

/** A client's legacy bytes: the handshake (L1), then frames; an example of frames alone gets a handshake first. */
function decodeLegacy(bytes: Buffer): LegacyFrame[] {
  const frames: LegacyFrame[] = [];
  const decoder = new LegacyDecoder((f) => frames.push(f), { from: 'client' });
  if (!bytes.subarray(0, protocol.LEGACY_MAGIC.length).equals(Buffer.from(protocol.LEGACY_MAGIC)))
    decoder.push(new protocol.LegacyEncoder().hello(0n).take());
  decoder.push(bytes);
  decoder.end();
  return frames;
}

describe('doc examples', () => {
  it('doc examples - the page has native and legacy examples', () => {
    expect(examples.filter((e) => !e.legacy).length).toBeGreaterThan(20);
    expect(examples.filter((e) => e.legacy).length).toBeGreaterThan(0);
  });

  it.each(
    examples.map((e) => [e.hex.slice(0, 24), e] as const),
  )('doc examples - %s… is as many bytes as it says and decodes without error', (_short, e) => {
    const bytes = Buffer.from(e.hex, 'hex');
    expect(e.hex.length % 2).toBe(0);
    expect(bytes.length).toBe(e.bytes);
    const frames = e.legacy ? decodeLegacy(bytes) : decodeNative(bytes);
    expect(frames.length).toBeGreaterThan(0);
  });

  it('doc examples - F1: the two pings of one write decode as two frames', () => {
    const f1 = examples.find((e) => e.hex === '000000050c00000001000000050c00000002');
    expect(f1).toBeDefined();
    expect(decodeNative(Buffer.from(f1?.hex ?? '', 'hex'))).toEqual([
      { kind: protocol.FrameKind.Ping, nonce: 1 },
      { kind: protocol.FrameKind.Ping, nonce: 2 },
    ]);
  });

  it.each(GOLDEN)('doc examples - the test vector "$name" is on the page', (g) => {
    const hex = goldenBytes(g.hex).toString('hex');
    expect(page).toContain(`\`${hex}\``);
  });
});

describe('doc session', () => {
  const rows = [
    ...section('## A session, byte by byte').matchAll(/^\| (\d+) \| (C→S|S→C) \| (.+) \| (\d+) \| `([0-9a-f]+)` \|$/gm),
  ].map((m) => ({ n: Number(m[1]), dir: m[2], bytes: Number(m[4]), hex: m[5] as string }));

  it('doc session - the page lists every line of the transcript, numbered in order', () => {
    expect(rows.map((r) => r.n)).toEqual(TRANSCRIPT.map((_, i) => i + 1));
    expect(rows.map((r) => r.dir)).toEqual(TRANSCRIPT.map((l) => l.dir));
  });

  it.each(
    TRANSCRIPT.map((l, i) => [i + 1, l] as const),
  )('doc session - line %i holds what FrameEncoder writes and decodes back to its frame', (n, line) => {
    const row = rows[n - 1];
    const e = new FrameEncoder();
    line.encode(e);
    const bytes = e.take();
    expect(row?.hex).toBe(bytes.toString('hex'));
    expect(row?.bytes).toBe(bytes.length);
    expect(comparable(decodeFrame(Buffer.from(row?.hex ?? '', 'hex')))).toEqual(comparable(line.frame));
  });
});

describe('doc limits', () => {
  const constants = protocol as unknown as Record<string, unknown>;
  const rows = section('## Limits')
    .split('\n')
    .filter((line) => line.startsWith('| '))
    .map((line) => line.split('|').map((cell) => cell.trim()))
    .map((cells) => ({ limit: cells[1] as string, value: cells[2] as string, where: cells[3] as string }))
    .filter((r) => r.limit !== 'limit' && !r.limit.startsWith('---'));

  /** The exported numeric constants a row names in its "where" column. */
  const named = (where: string): string[] =>
    [...where.matchAll(/`([A-Z][A-Z0-9_]+)`/g)]
      .map((m) => m[1] as string)
      .filter((name) => typeof constants[name] === 'number' || typeof constants[name] === 'bigint');

  /** The numbers of a value cell: 10,485,760, -2^63, 2^63-1. */
  const numbers = (value: string): bigint[] =>
    [...value.matchAll(/-?2\^\d+(?:-1)?|\d{1,3}(?:,\d{3})+|\d+/g)].map((m) => {
      const t = m[0];
      const pow = /^(-?)2\^(\d+)(-1)?$/.exec(t);
      if (!pow) return BigInt(t.replace(/,/g, ''));
      const v = 2n ** BigInt(pow[2] as string) - (pow[3] ? 1n : 0n);
      return pow[1] ? -v : v;
    });

  it.each([
    'MAX_ID_BYTES',
    'DEFAULT_MAX_DATA_BYTES',
    'DEFAULT_MAX_FRAME_BYTES',
    'FRAME_OVERHEAD_BYTES',
    'MAX_EXTENSION_BYTES',
    'MAX_HELLO_FRAME_BYTES',
    'MAX_WELCOME_FRAME_BYTES',
    'EPOCH_BYTES',
    'MIN_TS',
    'MAX_TS',
  ])('doc limits - the table names %s', (name) => {
    expect(rows.some((r) => named(r.where).includes(name))).toBe(true);
  });

  it('doc limits - every number the table gives for a constant is its value', () => {
    const checked: string[] = [];
    for (const r of rows) {
      const names = named(r.where);
      if (names.length === 0) continue;
      const values = numbers(r.value.split(';')[0] as string);
      const want = names.map((name) => BigInt(constants[name] as number | bigint));
      // "a to b" names the bound: b for one constant, a and b for two.
      const got = names.length === 2 ? values.slice(0, 2) : [values[values.length - 1]];
      expect(got, `${r.limit}: ${r.value}`).toEqual(want);
      checked.push(...names);
    }
    expect(checked.length).toBeGreaterThanOrEqual(10);
  });

  it('doc limits - the largest hello and welcome are the fixed fields plus the largest extension', () => {
    expect(protocol.MAX_HELLO_FRAME_BYTES).toBe(1 + 30 + protocol.MAX_EXTENSION_BYTES);
    expect(protocol.MAX_WELCOME_FRAME_BYTES).toBe(1 + 44 + protocol.MAX_EXTENSION_BYTES);
    expect(page).toContain('1 + 30 + 16,384 = **16,415**');
    expect(page).toContain('1 + 44 + 16,384 = **16,429**');
  });
});

describe('doc rules', () => {
  const headings = [...page.matchAll(/^#{2,3} ([A-Z])(\d+)\. /gm)].map((m) => `${m[1]}${m[2]}`);
  const ruleSet = new Set(headings);
  const letters = new Set(headings.map((id) => id[0]));

  it('doc rules - every rule ID is a heading once', () => {
    expect(headings.length).toBeGreaterThan(30);
    expect(new Set(headings).size).toBe(headings.length);
  });

  it('doc rules - the contents list exactly the rules of the page', () => {
    const contents = section('## Contents');
    const listed = [...contents.matchAll(/\b([A-Z]\d+)\b/g)].map((m) => m[1] as string);
    expect([...listed].sort()).toEqual([...headings].sort());
  });

  it('doc rules - the IDs of a letter are numbered from 1 without gaps', () => {
    for (const letter of letters) {
      const ns = headings
        .filter((id) => id[0] === letter)
        .map((id) => Number(id.slice(1)))
        .sort((a, b) => a - b);
      expect(ns, letter).toEqual(ns.map((_, i) => i + 1));
    }
  });

  /**
   * Source files of the repository (no dependencies, no builds). Not tsup's
   * `tsup.config.bundled_*.mjs`: a build running beside the tests (turbo) writes and
   * removes one while this reads the tree.
   */
  function sources(dir: string, out: string[] = []): string[] {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
      if (entry.name.startsWith('tsup.config.bundled_')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) sources(path, out);
      else if (/\.(?:ts|mts|cts|js|mjs|cjs)$/.test(entry.name)) out.push(path);
    }
    return out;
  }

  /** Rule IDs a line cites: `rule X1`, `rules X1 to X6`, `(X1)`, `(X1, X2)`, `docs/PROTOCOL.md, X1, X2`. */
  function cited(line: string): string[] {
    const ids: string[] = [];
    const add = (text: string) => {
      for (const m of text.matchAll(/\b[A-Z]\d+\b/g)) ids.push(m[0]);
    };
    for (const m of line.matchAll(/\brules? ([A-Z]\d+(?: to [A-Z]\d+)?)/g)) add(m[1] as string);
    for (const m of line.matchAll(/PROTOCOL\.md,\s+(?:rules? )?([A-Z]\d+(?:(?:,\s*| to | and )[A-Z]\d+)*)/g))
      add(m[1] as string);
    for (const m of line.matchAll(/(?<![\w$.])\(([A-Z]\d+(?:,\s*[A-Z]\d+)*)\)/g)) add(m[1] as string);
    return [...new Set(ids)].filter((id) => letters.has(id[0] as string));
  }

  it('doc rules - every rule ID cited in the code exists on the page', () => {
    const missing: string[] = [];
    let citations = 0;
    for (const file of ['packages', 'apps', 'bench'].flatMap((dir) => sources(join(ROOT, dir)))) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        for (const id of cited(line)) {
          citations++;
          if (!ruleSet.has(id)) missing.push(`${relative(ROOT, file)}:${i + 1} cites ${id}`);
        }
      });
    }
    expect(citations).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });

  it('doc rules - the citation patterns find what they should, and not a call', () => {
    expect(cited('// (docs/PROTOCOL.md, rule F3)')).toEqual(['F3']);
    expect(cited('/** Hello (docs/PROTOCOL.md, H1, W1, R1, R3). */')).toEqual(['H1', 'W1', 'R1', 'R3']);
    expect(cited('// rules L1 to L6')).toEqual(['L1', 'L6']);
    expect(cited('// the refusal (Q1, Q2)')).toEqual(['Q1', 'Q2']);
    expect(cited('get(K4), get(N)')).toEqual([]);
    expect(cited('// (docs/STORAGE.md, S8)')).toEqual([]);
  });
});

describe('doc tests', () => {
  const table = [...section('## Tests that hold the code to this page').matchAll(/^\| (.+?) \| `(.+?)` \| (.+) \|$/gm)]
    .map((m) => ({ rules: m[1] as string, file: m[2] as string, tests: m[3] as string }))
    .filter((r) => r.rules !== 'rules');

  it('doc tests - the table names test files that exist', () => {
    expect(table.length).toBeGreaterThan(10);
    for (const r of table) expect(existsSync(join(ROOT, r.file)), r.file).toBe(true);
  });

  it('doc tests - every test the table names is in its file', () => {
    for (const r of table) {
      const text = readFileSync(join(ROOT, r.file), 'utf8');
      for (const m of r.tests.matchAll(/"([^"]+)"/g)) expect(text, `${r.file}: ${m[1]}`).toContain(m[1]);
    }
  });

  it('doc tests - every rule of the page is held by a row of the table', () => {
    const held = new Set(table.flatMap((r) => [...r.rules.matchAll(/\b[A-Z]\d+\b/g)].map((m) => m[0])));
    const headings = [...page.matchAll(/^#{2,3} ([A-Z]\d+)\. /gm)].map((m) => m[1] as string);
    expect(headings.filter((id) => !held.has(id))).toEqual([]);
  });
});
