/**
 * How `gossip sub` and `gossip fetch` print a message (docs/OPERATIONS.md, "The gossip CLI").
 *
 * - **human** (the default): `<time> <id> <value>`, one line per message. The time is ISO
 *   8601 in UTC to the nanosecond; the value is a JSON string when it is UTF-8, `base64:…`
 *   when it is not, and a tombstone is `(deleted)`, which no value can be printed as. An
 *   id with spaces, quotes or control characters is printed as a JSON string. A transient
 *   (emitted) message ends with ` (transient)`.
 * - **json** (`--json`): one JSON object per line, safe to parse for any id and value.
 * - **raw** (`--raw`): the values' bytes alone, as received.
 */

export type OutputForm = 'human' | 'json' | 'raw';

/** The form the flags ask for; both at once is a usage error of the caller's. */
export function outputForm(flags: { json?: boolean | undefined; raw?: boolean | undefined }): OutputForm {
  return flags.json ? 'json' : flags.raw ? 'raw' : 'human';
}

export const NS_PER_MS = 1_000_000n;

/**
 * A ts (nanoseconds since the Unix epoch, signed 64-bit) as an ISO 8601 UTC time with all
 * nine digits of its fraction: `2026-12-07T15:33:59.123456789Z`. Every signed 64-bit ts
 * is inside the range of a JavaScript Date (±8.64e15 ms).
 */
export function isoTime(ts: bigint): string {
  // floored, so a ts before 1970 still has its nanoseconds counted forward from a millisecond
  let ms = ts / NS_PER_MS;
  if (ms * NS_PER_MS > ts) ms -= 1n;
  const rest = ts - ms * NS_PER_MS;
  const iso = new Date(Number(ms)).toISOString(); // …ss.mmmZ
  return `${iso.slice(0, -1)}${rest.toString().padStart(6, '0')}Z`;
}

// ignoreBOM: a value's leading U+FEFF is part of it, shown, not dropped
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A message's data as text when it is valid UTF-8, else as base64 (marked). */
export function showData(data: Uint8Array): { text: string; base64: boolean } {
  try {
    return { text: fatalUtf8.decode(data), base64: false };
  } catch {
    return { text: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'), base64: true };
  }
}

/** `value` (UTF-8) or `base64` (anything else), as the JSON lines carry them. */
export function jsonData(data: Uint8Array): { value: string } | { base64: string } {
  const shown = showData(data);
  return shown.base64 ? { base64: shown.text } : { value: shown.text };
}

/**
 * What a human line escapes, which a JSON string leaves as it is: what a terminal would
 * act on, or that hides or reorders what it shows. The controls past C0 (DEL, the C1 set:
 * U+009B starts an escape sequence on some terminals), the format characters
 * (bidirectional marks and overrides, zero-width characters, the BOM, stray tags), the
 * line and paragraph separators, and every space but U+0020 (U+00A0 would read as a
 * plain space). Not the joiners that make one emoji of several and write Persian and
 * Indic words (U+200C, U+200D), nor the tags of a subdivision flag (U+1F3F4, tags,
 * U+E007F): the first group matches such a flag, kept whole.
 */
const ESCAPED =
  /(\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F})|(?![\u200c\u200d])(?:[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs})/gu;

/** `c` as JSON escapes, one per UTF-16 unit. */
function escaped(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/** A JSON string whose every control, format and unusual space character is escaped. */
function quote(text: string): string {
  return JSON.stringify(text).replace(ESCAPED, (c, flag: string | undefined) => flag ?? escaped(c));
}

/** An id as it reads on a human line: as is, or a quoted string when it would not read as one safe word. */
export function humanId(id: string): string {
  return id === '' || /[\s"]/u.test(id) || quote(id) !== JSON.stringify(id) ? quote(id) : id;
}

/** A value as it is, for a pipe: its text, or `base64:…` when it is not UTF-8. */
export function plainValue(data: Uint8Array): string {
  const shown = showData(data);
  return shown.base64 ? `base64:${shown.text}` : shown.text;
}

/** A value as it reads on a human line: a JSON string, `base64:…`, or `(deleted)` for a tombstone. */
export function humanValue(data: Uint8Array | undefined): string {
  if (data === undefined || data.byteLength === 0) return '(deleted)';
  const shown = showData(data);
  return shown.base64 ? `base64:${shown.text}` : quote(shown.text);
}

/** One human line: `<time> <id> <value>[ (transient)]`. */
export function humanLine(id: string, ts: bigint, data: Uint8Array | undefined, transient = false): string {
  return `${isoTime(ts)} ${humanId(id)} ${humanValue(data)}${transient ? ' (transient)' : ''}\n`;
}
