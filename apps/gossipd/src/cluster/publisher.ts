import { headers, type Msg, type MsgHdrs, type NatsConnection, nuid } from '@nats-io/transport-node';

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

interface Waiting {
  resolve(seq: number): void;
  reject(error: Error): void;
  /** When it was sent (performance.now()). */
  at: number;
}

/** How often answers overdue are failed. */
const SWEEP_MS = 100;

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

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#inbox = `_INBOX.${nuid.next()}.`;
    nc.subscribe(`${this.#inbox}*`, { callback: (_error, msg) => this.#answer(msg) });
    this.#sweep = setInterval(() => this.#overdue(), SWEEP_MS);
    this.#sweep.unref();
  }

  /**
   * Publishes `body` to `subject` if the subject's last sequence is `expected` (0: none);
   * resolves with its sequence. Fails with WRONG_LAST_SEQUENCE when it is not, or when a
   * publish with the same expectation was stored first (this one's or another's).
   */
  publish(subject: string, body: Uint8Array, expected: number): Promise<number> {
    const token = (++this.#count).toString(36);
    const h: MsgHdrs = headers();
    h.set('Nats-Expected-Last-Subject-Sequence', String(expected));
    // the subject's last token names it within the stream (an id, in base64url)
    h.set('Nats-Msg-Id', `${expected}@${subject.slice(subject.lastIndexOf('.') + 1)}`);
    return new Promise<number>((resolve, reject) => {
      this.#waiting.set(token, { resolve, reject, at: performance.now() });
      try {
        this.#nc.publish(subject, body, { reply: this.#inbox + token, headers: h });
      } catch (error) {
        this.#waiting.delete(token);
        reject(error as Error);
      }
    });
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length);
    const w = this.#waiting.get(token);
    if (w === undefined) return; // overdue and failed already
    this.#waiting.delete(token);
    // no stream behind the subject now (no leader): a status message, no body
    if (msg.data.length === 0) {
      const code = msg.headers?.code ?? 503;
      w.reject(new StreamError(0, `no responders (${code}): the stream has no leader now`));
      return;
    }
    let answer: { seq?: unknown; duplicate?: unknown; error?: { err_code?: unknown; description?: unknown } };
    try {
      answer = JSON.parse(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).toString('utf8'));
    } catch {
      w.reject(new StreamError(0, 'the stream answered with something other than JSON'));
      return;
    }
    if (answer.error) {
      const code = typeof answer.error.err_code === 'number' ? answer.error.err_code : 0;
      w.reject(new StreamError(code, String(answer.error.description ?? 'stream error')));
    } else if (answer.duplicate === true) {
      w.reject(new StreamError(WRONG_LAST_SEQUENCE, 'a publish with the same expected sequence was stored first'));
    } else if (typeof answer.seq === 'number') {
      w.resolve(answer.seq);
    } else {
      w.reject(new StreamError(0, 'the stream answered without a sequence'));
    }
  }

  #overdue(): void {
    const before = performance.now() - this.#timeoutMs;
    for (const [token, w] of this.#waiting) {
      if (w.at > before) break; // in the order they were sent
      this.#waiting.delete(token);
      w.reject(new StreamError(0, `timeout: no answer from the stream within ${this.#timeoutMs} ms`));
    }
  }

  /** Fails every publish still waiting. */
  close(): void {
    clearInterval(this.#sweep);
    for (const w of this.#waiting.values()) w.reject(new StreamError(0, 'the edge is closing'));
    this.#waiting.clear();
  }
}
