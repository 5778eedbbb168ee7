import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { deflateSync, inflateSync } from 'node:zlib';

/*
 * A client of the original gossip protocol, written from its description alone
 * (docs/PROTOCOL.md, "Legacy protocol") and not from @gossip/protocol's codec, so the
 * two cannot share a misreading:
 *
 * - handshake: the client sends `GOSSIP` and since (i64); the server answers `GOSSIP\n`;
 * - frames, both ways: kind (`M` persisted, `S` transient), u64 id length, id, i64 ts,
 *   u64 data length, data; from the server only, `D` ends the replay;
 * - the data of every frame starts with a tag: `=` raw, `z` zlib;
 * - bad input: the server writes one line of text and closes.
 *
 * All integers are big-endian.
 */

export type LegacyTagChar = '=' | 'z';

export interface LegacyMessageEvent {
  kind: 'M' | 'S';
  id: string;
  ts: bigint;
  /** The tag the server chose. */
  tag: LegacyTagChar;
  /** The data with the tag removed (inflated for `z`). */
  data: Buffer;
  /** The data field as received, tag included. */
  payload: Buffer;
}

export type LegacyEvent = LegacyMessageEvent | { kind: 'D' };

const WELCOME = Buffer.from('GOSSIP\n', 'latin1');
const TAG_RAW = 0x3d;
const TAG_ZLIB = 0x7a;

/** One frame as the original client writes it: the payload goes out exactly as given. */
export function legacyFrame(kind: 'M' | 'S' | string, id: string | Buffer, ts: bigint, payload: Buffer): Buffer {
  const idBytes = typeof id === 'string' ? Buffer.from(id, 'utf8') : id;
  const out = Buffer.alloc(1 + 8 + idBytes.length + 8 + 8 + payload.length);
  let p = 0;
  out[p++] = kind.charCodeAt(0);
  out.writeBigUInt64BE(BigInt(idBytes.length), p);
  p += 8;
  idBytes.copy(out, p);
  p += idBytes.length;
  out.writeBigInt64BE(ts, p);
  p += 8;
  out.writeBigUInt64BE(BigInt(payload.length), p);
  p += 8;
  payload.copy(out, p);
  return out;
}

/** The payload the original client sends for `data`: `=` and the data, or `z` and the data deflated. */
export function legacyPayload(data: Buffer | string, tag: LegacyTagChar = '='): Buffer {
  const raw = typeof data === 'string' ? Buffer.from(data) : data;
  return tag === '='
    ? Buffer.concat([Buffer.of(TAG_RAW), raw])
    : Buffer.concat([Buffer.of(TAG_ZLIB), deflateSync(raw)]);
}

/** The client's handshake. */
export function legacyHandshake(since: bigint): Buffer {
  const out = Buffer.alloc(14);
  out.write('GOSSIP', 0, 'latin1');
  out.writeBigInt64BE(since, 6);
  return out;
}

export class LegacyClient {
  readonly socket: Socket;
  readonly events: LegacyEvent[] = [];
  /** Whether the server answered the handshake with `GOSSIP\n`. */
  welcomed = false;
  /** Text the server sent where the handshake answer or a frame should have started: its error line. */
  text = '';
  /** Set when the server's bytes broke the protocol in a way that is not a text line. */
  problem: string | undefined;
  readonly closed: Promise<void>;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #inText = false;
  #isClosed = false;
  #waiters: {
    from: number;
    match: (e: LegacyEvent) => boolean;
    resolve: (e: LegacyEvent) => void;
    reject: (e: Error) => void;
  }[] = [];
  #welcomeWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** The frame being read: kind, id, ts, then how many data bytes. */
  #frame: { kind: 'M' | 'S'; idLen?: number; id?: string; ts?: bigint; dataLen?: number } | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      this.#parse();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
      this.#isClosed = true;
      const error = new Error(`connection closed${this.text ? `: ${this.text.trim()}` : ''}`);
      for (const w of this.#waiters) w.reject(error);
      for (const w of this.#welcomeWaiters) w.reject(error);
      this.#waiters = [];
      this.#welcomeWaiters = [];
    });
  }

  /** Opens a TCP connection without sending anything. */
  static async open(port: number): Promise<LegacyClient> {
    const socket = netConnect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new LegacyClient(socket);
  }

  /** Opens, sends the handshake with `since`, and resolves once the server answered `GOSSIP\n`. */
  static async connect(port: number, since: bigint): Promise<LegacyClient> {
    const c = await LegacyClient.open(port);
    c.send(legacyHandshake(since));
    try {
      await c.welcome();
    } catch (error) {
      c.close();
      throw error;
    }
    return c;
  }

  /** Resolves once `GOSSIP\n` has arrived; rejects if the connection closes first. */
  welcome(): Promise<void> {
    if (this.welcomed) return Promise.resolve();
    if (this.#isClosed) return Promise.reject(new Error(`connection closed: ${this.text.trim()}`));
    return new Promise((resolve, reject) => this.#welcomeWaiters.push({ resolve, reject }));
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Publishes `data` tagged `=` (or deflated with `z`). No answer comes: the protocol has no acks. */
  publish(id: string, ts: bigint, data: Buffer | string, tag: LegacyTagChar = '='): void {
    this.send(legacyFrame('M', id, ts, legacyPayload(data, tag)));
  }

  /** Emits (transient) `data`, tagged like `publish`. */
  emit(id: string, ts: bigint, data: Buffer | string, tag: LegacyTagChar = '='): void {
    this.send(legacyFrame('S', id, ts, legacyPayload(data, tag)));
  }

  /** The first event matching `match` received at or after index `from`. */
  next<T extends LegacyEvent = LegacyEvent>(match: (e: LegacyEvent) => boolean, from = 0): Promise<T> {
    for (let i = from; i < this.events.length; i++)
      if (match(this.events[i] as LegacyEvent)) return Promise.resolve(this.events[i] as T);
    if (this.#isClosed) return Promise.reject(new Error(`connection closed: ${this.text.trim()}`));
    return new Promise((resolve, reject) =>
      this.#waiters.push({ from, match, resolve: resolve as (e: LegacyEvent) => void, reject }),
    );
  }

  /** The message for `id` (optionally with ts `ts`) at or after `from`. */
  message(id: string, from = 0, ts?: bigint): Promise<LegacyMessageEvent> {
    return this.next<LegacyMessageEvent>(
      (e) => e.kind !== 'D' && e.id === id && (ts === undefined || e.ts === ts),
      from,
    );
  }

  /** Waits for `D` and returns the messages before it. */
  async replay(): Promise<{ messages: LegacyMessageEvent[]; done: number }> {
    const d = await this.next((e) => e.kind === 'D');
    const done = this.events.indexOf(d);
    return { messages: this.events.slice(0, done) as LegacyMessageEvent[], done };
  }

  /** Messages received at or after index `from`. */
  messages(from = 0): LegacyMessageEvent[] {
    return this.events.slice(from).filter((e): e is LegacyMessageEvent => e.kind !== 'D');
  }

  /** Waits for the server to close, then returns the text it sent (its error line, if any). */
  async closedWithText(): Promise<string> {
    await this.closed;
    return this.text;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  /** `n` bytes from the front of what arrived, or null until that many have. */
  #take(n: number): Buffer | null {
    if (this.#pendingBytes < n) return null;
    if (n === 0) return Buffer.alloc(0);
    let first = this.#pending[0] as Buffer;
    if (first.length < n) {
      first = Buffer.concat(this.#pending);
      this.#pending = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.#pending.shift();
    else this.#pending[0] = first.subarray(n);
    this.#pendingBytes -= n;
    return out;
  }

  #parse(): void {
    for (;;) {
      if (this.#inText) {
        const rest = this.#take(this.#pendingBytes);
        if (rest && rest.length > 0) this.text += rest.toString('utf8');
        return;
      }
      if (!this.welcomed) {
        const head = this.#take(WELCOME.length);
        if (!head) {
          // A line shorter than the answer, then a close: keep it as text.
          if (this.#pendingBytes > 0 && !WELCOME.subarray(0, this.#pendingBytes).equals(Buffer.concat(this.#pending)))
            this.#inText = true;
          if (this.#inText) continue;
          return;
        }
        if (!head.equals(WELCOME)) {
          this.text += head.toString('utf8');
          this.#inText = true;
          continue;
        }
        this.welcomed = true;
        for (const w of this.#welcomeWaiters.splice(0)) w.resolve();
        continue;
      }
      const f = this.#frame;
      if (!f) {
        const k = this.#take(1);
        if (!k) return;
        const kind = String.fromCharCode(k[0] as number);
        if (kind === 'D') this.#push({ kind: 'D' });
        else if (kind === 'M' || kind === 'S') this.#frame = { kind };
        else {
          // Not a frame: the server's error line.
          this.text += k.toString('utf8');
          this.#inText = true;
        }
        continue;
      }
      if (f.idLen === undefined) {
        const b = this.#take(8);
        if (!b) return;
        const n = b.readBigUInt64BE(0);
        if (n > 256n) {
          this.#broken(`id length ${n} over 256`);
          return;
        }
        f.idLen = Number(n);
        continue;
      }
      if (f.id === undefined) {
        const b = this.#take(f.idLen);
        if (!b) return;
        f.id = b.toString('utf8');
        continue;
      }
      if (f.ts === undefined) {
        const b = this.#take(8);
        if (!b) return;
        f.ts = b.readBigInt64BE(0);
        continue;
      }
      if (f.dataLen === undefined) {
        const b = this.#take(8);
        if (!b) return;
        const n = b.readBigUInt64BE(0);
        if (n > 2n ** 31n) {
          this.#broken(`data length ${n} over 2 GiB`);
          return;
        }
        f.dataLen = Number(n);
        continue;
      }
      const payload = this.#take(f.dataLen);
      if (!payload) return;
      this.#frame = undefined;
      const tag = payload[0];
      if (tag === TAG_RAW) {
        this.#push({ kind: f.kind, id: f.id, ts: f.ts, tag: '=', data: payload.subarray(1), payload });
      } else if (tag === TAG_ZLIB) {
        let data: Buffer;
        try {
          data = inflateSync(payload.subarray(1));
        } catch (error) {
          this.#broken(`bad z payload for ${f.id}: ${(error as Error).message}`);
          return;
        }
        this.#push({ kind: f.kind, id: f.id, ts: f.ts, tag: 'z', data, payload });
      } else {
        this.#broken(`payload of ${f.id} has tag ${tag === undefined ? 'none' : `0x${tag.toString(16)}`}`);
        return;
      }
    }
  }

  #broken(problem: string): void {
    this.problem ??= problem;
    this.socket.destroy();
  }

  #push(e: LegacyEvent): void {
    this.events.push(e);
    const index = this.events.length - 1;
    this.#waiters = this.#waiters.filter((w) => {
      if (index < w.from || !w.match(e)) return true;
      w.resolve(e);
      return false;
    });
  }
}
