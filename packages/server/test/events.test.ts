import { describe, expect, it } from 'vitest';
import { loggedName, RefusalLog, socketErrorReason } from '../src/events.js';

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
    let built = 0;
    const fields = (i: number) => () => {
      built++;
      return { i };
    };
    for (let i = 0; i < 25; i++) refusals.write('info', fields(i), 'request refused');
    // the lines left out built no fields
    expect(built).toBe(10);
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

  it("events - without a later line, the one that says what was left out comes at the second's end, and rides on the next line after that", async () => {
    const { lines, log } = keeper();
    const refusals = new RefusalLog(log);
    for (let i = 0; i < 12; i++) refusals.write('warn', () => ({ i }), 'auth failed');
    await new Promise((r) => setTimeout(r, 1100));
    expect(lines[10]).toMatchObject({
      level: 'warn',
      fields: { suppressed: 2 },
      msg: 'auth failed: 2 more left out of the log',
    });
    for (let i = 0; i < 12; i++) refusals.write('warn', () => ({ i }), 'auth failed');
    refusals.write('warn', () => ({ i: 99 }), 'auth failed');
    await new Promise((r) => setTimeout(r, 1100));
    refusals.write('warn', () => ({ last: true }), 'auth failed');
    expect(lines.at(-1)).toMatchObject({ fields: { last: true } });
    expect(lines.filter((l) => l.fields.suppressed !== undefined).map((l) => l.fields.suppressed)).toEqual([2, 4]);
    refusals.close();
  });

  it('events - a reset or a broken pipe is the client going away (client_reset); other socket errors are socket_error', () => {
    const error = (code: string) => Object.assign(new Error(code), { code });
    expect(socketErrorReason(error('ECONNRESET'))).toBe('client_reset');
    expect(socketErrorReason(error('EPIPE'))).toBe('client_reset');
    expect(socketErrorReason(error('ETIMEDOUT'))).toBe('socket_error');
    expect(socketErrorReason(new Error('no code'))).toBe('socket_error');
  });
});
