import { describe, expect, it } from 'vitest';
import { loggedName, RefusalLog } from '../src/events.js';

/** A logger that keeps what it is given. */
function keeper() {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (fields: object, msg: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, msg });
  return { lines, log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

describe('events', () => {
  it('events - a refusal log writes 10 lines a second; close() says what it left out, and no timer writes after it', async () => {
    const { lines, log } = keeper();
    const refusals = new RefusalLog(log);
    for (let i = 0; i < 25; i++) refusals.write('info', { i }, 'request refused');
    expect(lines).toHaveLength(10);
    refusals.close();
    expect(lines).toHaveLength(11);
    expect(lines[10]).toMatchObject({
      level: 'info',
      fields: { suppressed: 15 },
      msg: 'request refused: 15 more left out of the log',
    });
    await new Promise((r) => setTimeout(r, 1100));
    expect(lines).toHaveLength(11);
  });

  it('events - a logged name is cut to 64 characters, never inside a surrogate pair', () => {
    expect(loggedName(undefined)).toBeUndefined();
    expect(loggedName('svc')).toBe('svc');
    const long = '😀'.repeat(100);
    const cut = loggedName(long) as string;
    expect(cut).toBe(`${'😀'.repeat(64)}…`);
    expect(loggedName('a'.repeat(64))).toBe('a'.repeat(64));
  });
});
