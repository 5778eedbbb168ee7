import type { ErrorCode } from '@gossip/protocol';
import type { ServerLogger } from './options.js';
import type { ServerStats } from './stats.js';

// What the server tells operators about connections and refusals: the `reason` of each
// metric label and log line, and a log of refusals that a flood cannot turn into a flood
// of lines. This module imports no connection and no server.

const REASONS = new Map<ErrorCode, string>();

/** A coded error as a metric's `reason` label: GOSSIP_ERR_SLOW_CONSUMER → slow_consumer (made once per code). */
export function reasonOf(code: ErrorCode): string {
  let reason = REASONS.get(code);
  if (reason === undefined) REASONS.set(code, (reason = code.replace(/^GOSSIP_ERR_/, '').toLowerCase()));
  return reason;
}

/** Why a connection ended that no error frame names: the client closed it, or its socket failed. */
export const CLIENT_CLOSED = 'client_closed';

/**
 * A socket error as a reason: a reset or a broken pipe is the client going away without
 * a clean close (a CLI that exits with data unread, a killed process): `client_reset`;
 * anything else `socket_error`.
 */
export function socketErrorReason(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE' ? 'client_reset' : 'socket_error';
}

/** At most this many characters of a client's name go into a log line. */
const LOGGED_NAME_CHARS = 64;

/**
 * A client's name (from its hello, up to 16 KiB) as a log field: cut to 64 characters.
 * Logged as `client`, not `name`, which pino-pretty would print unescaped in the line's
 * header, where a name with a newline could forge a line.
 */
export function loggedName(name: string | undefined): string | undefined {
  if (name === undefined || name.length <= LOGGED_NAME_CHARS) return name;
  // by code points, so that a cut never splits a surrogate pair; no further than the cut
  let cut = '';
  let n = 0;
  for (const c of name) {
    if (n++ === LOGGED_NAME_CHARS) break;
    cut += c;
  }
  return `${cut}…`;
}

/** Adds one to `reason`'s count. */
export function countReason(counts: Record<string, number>, reason: string): void {
  counts[reason] = (counts[reason] ?? 0) + 1;
}

/** Lines per second the refusal log writes at most; the rest are counted into the next line. */
const LINES_PER_SECOND = 10;

/**
 * The log of refusals (an error ack: an id too long, a ts too far ahead; a hello without
 * a valid token): a line each, at most LINES_PER_SECOND a second for all connections
 * together; past that they are counted, and the next line written says how many were
 * left out (`suppressed`). A client that sends a flood of bad requests cannot turn it
 * into a flood of log lines.
 */
export class RefusalLog {
  readonly #log: ServerLogger;
  #windowStart = Number.NEGATIVE_INFINITY;
  #written = 0;
  #suppressed = 0;
  /** Left out in the window that ended, kept for the line that says so. */
  #pending: { level: 'info' | 'warn'; msg: string } | undefined;
  #flush: NodeJS.Timeout | undefined;

  constructor(log: ServerLogger) {
    this.#log = log;
  }

  /**
   * One line, or one more counted as left out. `fields` is only called for a line that is
   * written: a flood that is dropped builds nothing per request.
   */
  write(level: 'info' | 'warn', fields: () => Record<string, unknown>, msg: string): void {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written >= LINES_PER_SECOND) {
      this.#suppressed++;
      this.#pending = { level, msg };
      // Said at the window's end even when nothing more comes (unref'd: it holds no process up).
      this.#flush ??= setTimeout(() => this.#said(), 1000 - (now - this.#windowStart)).unref();
      return;
    }
    this.#written++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    clearTimeout(this.#flush);
    this.#flush = undefined;
    this.#log[level](suppressed > 0 ? { ...fields(), suppressed } : fields(), msg);
  }

  /** Says what is left out now, and writes nothing more on a timer: at the server's close. */
  close(): void {
    clearTimeout(this.#flush);
    this.#said();
  }

  /** The line for what the window that ended left out, when no line came after it. */
  #said(): void {
    this.#flush = undefined;
    const pending = this.#pending;
    if (this.#suppressed === 0 || !pending) return;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.#windowStart = performance.now();
    this.#written = 1;
    this.#log[pending.level]({ suppressed }, `${pending.msg}: ${suppressed} more left out of the log`);
  }
}

/** What a connection, native or legacy, tells the log and the metrics of itself. */
export interface Ending {
  readonly id: number;
  /** The peer's address and port, read at the accept (`hostPort`). */
  readonly remote: string;
  /** The client's name as logged (`loggedName`), once its hello gave one. */
  readonly client: string | undefined;
  /** When it was accepted (`performance.now()`). */
  readonly openedAt: number;
  /** Why it ended; the first reason given wins. */
  endReason: string | undefined;
  /** Its hello (or legacy handshake) was accepted. */
  readonly welcomed: boolean;
}

/** A request refused with `code`: counted by reason and logged at the refusals' pace (docs/OPERATIONS.md, Logs). */
export function refused(
  ctx: { stats: ServerStats; refusals: RefusalLog },
  by: Pick<Ending, 'id' | 'remote' | 'client'>,
  code: ErrorCode,
  message: string,
  legacy = false,
): void {
  ctx.stats.refused++;
  countReason(ctx.stats.refusedBy, reasonOf(code));
  ctx.refusals.write(
    'info',
    () => ({ conn: by.id, remote: by.remote, client: by.client, ...(legacy ? { legacy } : {}), code, message }),
    'request refused',
  );
}
