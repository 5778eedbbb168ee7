import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { nuid } from '@nats-io/transport-node';

/** JetStream's error code for a compare-and-set that found another last sequence. */
export const WRONG_LAST_SEQUENCE = 10071;

/**
 * How long the stream remembers a publish's message id (its `duplicate_window`). The id
 * names the subject and the expected sequence, so two publishes that race with the same
 * compare-and-set store only one: nats-server 2.9 at several replicas checks the
 * expected sequence before the write is committed and lets both through otherwise
 * (docs/CLUSTER.md, "Racing writes"). It need only outlast a commit.
 */
export const DEDUP_WINDOW_MS = 2_000;

/** An error the stream answered with: `code` is JetStream's `err_code`. */
export class StreamError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'StreamError';
    this.code = code;
  }
}

/** How a publish ends: the sequence the stream took it at, or why it did not. */
export type Done = (error: StreamError | Error | undefined, seq: number) => void;

interface Waiting {
  done: Done;
  /** When it was sent (performance.now()). */
  at: number;
}

/** How often answers overdue are failed. */
const SWEEP_MS = 100;

/**
 * The header block of a compare-and-set, as the NATS protocol writes it after HPUB
 * (`NATS/1.0`, a `Name: value` line per header, an empty line; CRLF after each):
 * `Nats-Expected-Last-Subject-Sequence` and `Nats-Msg-Id` (DEDUP_WINDOW_MS). Made
 * straight as its bytes, since nats.js asks a publish's headers for nothing but
 * `encode()`: its own MsgHdrs (a map, a check of every name and value, then the text
 * built and encoded) took a twentieth of an edge's CPU per publish. `name` names the
 * subject within the stream: ASCII, as every subject token the edges write.
 */
export function casHeaders(expected: number, name: string): MsgHdrs {
  const bytes = Buffer.from(
    `NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: ${expected}\r\nNats-Msg-Id: ${expected}@${name}\r\n\r\n`,
    'latin1',
  );
  return { encode: () => bytes } as unknown as MsgHdrs;
}

const QUOTE = 0x22;
const ZERO = 0x30;
const NINE = 0x39;

/** `"seq":` in a PubAck. */
const SEQ_KEY = Buffer.from('"seq":');

/**
 * The sequence of a PubAck that says nothing else than where the stream took the
 * message (`{"stream":"…","seq":N}`, as nats-server writes one), read without parsing
 * the JSON; undefined for any other answer (an error, a duplicate, a domain, …), which
 * is parsed as JSON.
 */
function plainAckSeq(b: Buffer): number | undefined {
  const at = b.indexOf(SEQ_KEY);
  if (at < 0) return undefined;
  let seq = 0;
  let i = at + SEQ_KEY.length;
  const start = i;
  for (; i < b.length; i++) {
    const c = b[i] as number;
    if (c < ZERO || c > NINE) break;
    seq = seq * 10 + (c - ZERO);
  }
  // the sequence ends the object, and the rest is the stream's name alone
  if (i === start || i - start > 15 || i !== b.length - 1 || b[i] !== 0x7d || seq === 0) return undefined;
  let quotes = 0;
  for (let j = 0; j < at; j++) if (b[j] === QUOTE) quotes++;
  return quotes === 4 ? seq : undefined;
}

/**
 * JetStream publishes with a compare-and-set on the subject's last sequence, as the
 * protocol has them: a core publish with a reply subject and the
 * `Nats-Expected-Last-Subject-Sequence` header, answered with a PubAck or an error as
 * JSON. The answers come to one wildcard inbox of this publisher, and overdue ones are
 * failed by one timer, instead of nats.js's request per publish (its subscription
 * entry, timer and an `Error` made at every settle), which took half an edge's CPU per
 * publish.
 */
export class StreamPublisher {
  readonly #nc: NatsConnection;
  readonly #inbox: string;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<string, Waiting>();
  readonly #sweep: NodeJS.Timeout;
  #count = 0;

  readonly #onError: (error: unknown) => void;

  /**
   * `onError`: what a `done` callback threw. Callbacks run inside the NATS client's
   * reading of its socket, which would stop at an exception: it is caught and reported.
   */
  constructor(nc: NatsConnection, timeoutMs: number, onError: (error: unknown) => void) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#onError = onError;
    this.#inbox = `_INBOX.${nuid.next()}.`;
    nc.subscribe(`${this.#inbox}*`, {
      callback: (error, msg) => {
        // a subscription error (a permission refused) brings no answer: the publishes time out
        if (!error) this.#answer(msg);
      },
    });
    this.#sweep = setInterval(() => this.#overdue(), SWEEP_MS);
    this.#sweep.unref();
  }

  /**
   * Publishes `body` to `subject` if the subject's last sequence is `expected` (0: none);
   * resolves with its sequence. Fails with WRONG_LAST_SEQUENCE when it is not, or when a
   * publish with the same expectation was stored first (this one's or another's).
   */
  publish(subject: string, body: Uint8Array, expected: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.send(subject, body, expected, (error, seq) => (error ? reject(error) : resolve(seq)));
    });
  }

  /** publish(), with a callback: no promise made per publish (an edge's own publishes). */
  send(subject: string, body: Uint8Array, expected: number, done: Done): void {
    const token = (++this.#count).toString(36);
    // the subject's last token names it within the stream (an id, in base64url)
    const h = casHeaders(expected, subject.slice(subject.lastIndexOf('.') + 1));
    this.#waiting.set(token, { done, at: performance.now() });
    try {
      this.#nc.publish(subject, body, { reply: this.#inbox + token, headers: h });
    } catch (error) {
      this.#waiting.delete(token);
      this.#settle(done, error as Error);
    }
  }

  #settle(done: Done, error: StreamError | Error | undefined, seq = 0): void {
    try {
      done(error, seq);
    } catch (thrown) {
      this.#onError(thrown);
    }
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length);
    const w = this.#waiting.get(token);
    if (w === undefined) return; // overdue and failed already
    this.#waiting.delete(token);
    // no stream behind the subject now (no leader): a status message, no body
    if (msg.data.length === 0) {
      const code = msg.headers?.code ?? 503;
      this.#settle(w.done, new StreamError(0, `no responders (${code}): the stream has no leader now`));
      return;
    }
    const b = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
    const seq = plainAckSeq(b);
    if (seq !== undefined) {
      this.#settle(w.done, undefined, seq);
      return;
    }
    let answer: { seq?: unknown; duplicate?: unknown; error?: { err_code?: unknown; description?: unknown } };
    try {
      answer = JSON.parse(b.toString('utf8'));
    } catch {
      this.#settle(w.done, new StreamError(0, 'the stream answered with something other than JSON'));
      return;
    }
    if (answer.error) {
      const code = typeof answer.error.err_code === 'number' ? answer.error.err_code : 0;
      this.#settle(w.done, new StreamError(code, String(answer.error.description ?? 'stream error')));
    } else if (answer.duplicate === true) {
      this.#settle(
        w.done,
        new StreamError(WRONG_LAST_SEQUENCE, 'a publish with the same expected sequence was stored first'),
      );
    } else if (typeof answer.seq === 'number' && answer.seq > 0) {
      this.#settle(w.done, undefined, answer.seq);
    } else {
      this.#settle(w.done, new StreamError(0, 'the stream answered without a sequence'));
    }
  }

  #overdue(): void {
    const before = performance.now() - this.#timeoutMs;
    for (const [token, w] of this.#waiting) {
      if (w.at > before) break; // in the order they were sent
      this.#waiting.delete(token);
      this.#settle(w.done, new StreamError(0, `timeout: no answer from the stream within ${this.#timeoutMs} ms`));
    }
  }

  /** Fails every publish still waiting. */
  close(): void {
    clearInterval(this.#sweep);
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) this.#settle(w.done, new StreamError(0, 'the edge is closing'));
  }
}
