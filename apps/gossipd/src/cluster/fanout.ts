/**
 * The fan-out (docs/CLUSTER.md, "Following the stream"): what the stream took, handed by
 * the edge that published it to the other edges over core NATS, so that a copy need not
 * read every message back from the stream. A batch is a format byte (FORMAT, 1), then
 * entries one after the other:
 *
 *     sequence      u64 BE   the stream sequence the stream took the message at
 *     subject len   u16 BE
 *     subject       bytes    the message's subject (ASCII)
 *     body len      u32 BE
 *     body          bytes    the message's data, as the stream holds it
 */

/** One message the stream took. */
export interface Entry {
  readonly seq: number;
  readonly subject: string;
  readonly body: Uint8Array;
  /**
   * The id, when the edge that applies it published it itself: its body is then a
   * buffer of its own, no view of a read buffer, and its subject need not be decoded.
   */
  readonly id?: string | undefined;
}

/** The first byte of a batch: its layout. A batch of another layout is not read. */
export const FORMAT = 1;
const HEAD_BYTES = 8 + 2;
const BODY_LEN_BYTES = 4;

/** The bytes of one entry in a batch. */
export function entryBytes(subject: string, body: Uint8Array): number {
  return HEAD_BYTES + subject.length + BODY_LEN_BYTES + body.byteLength;
}

/** The entries of a batch, views of its bytes; undefined when it is not one (another format, cut short, a bad length or sequence). */
export function decodeFanout(batch: Uint8Array): Entry[] | undefined {
  const b = Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
  if (b.length === 0 || b[0] !== FORMAT) return undefined;
  const entries: Entry[] = [];
  let at = 1;
  while (at < b.length) {
    if (b.length - at < HEAD_BYTES) return undefined;
    // two u32 halves: no BigInt per entry
    const seq = b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
    const subjectLen = b.readUInt16BE(at + 8);
    at += HEAD_BYTES;
    if (seq < 1 || !Number.isSafeInteger(seq) || b.length - at < subjectLen + BODY_LEN_BYTES) return undefined;
    const subject = b.toString('latin1', at, at + subjectLen);
    at += subjectLen;
    const bodyLen = b.readUInt32BE(at);
    at += BODY_LEN_BYTES;
    if (b.length - at < bodyLen) return undefined;
    entries.push({ seq, subject, body: b.subarray(at, at + bodyLen) });
    at += bodyLen;
  }
  return entries;
}

/**
 * Gathers entries into batches: one is sent at the end of the I/O turn that began it
 * (the answers of the stream come in bursts), or at once when the next entry would take
 * it past `maxBytes`. An entry larger than `maxBytes` alone is not sent: the other edges
 * read it from the stream.
 */
export class FanoutBatcher {
  #parts: Uint8Array[] = [Uint8Array.of(FORMAT)];
  #bytes = 1;
  #scheduled = false;

  constructor(
    private readonly send: (batch: Uint8Array) => void,
    private readonly maxBytes: () => number,
  ) {}

  add(seq: number, subject: string, body: Uint8Array): void {
    const size = entryBytes(subject, body);
    const max = this.maxBytes();
    if (1 + size > max) return;
    if (this.#bytes + size > max) this.flush();
    const head = Buffer.allocUnsafe(HEAD_BYTES + subject.length + BODY_LEN_BYTES);
    head.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
    head.writeUInt32BE(seq >>> 0, 4);
    head.writeUInt16BE(subject.length, 8);
    head.write(subject, HEAD_BYTES, 'latin1');
    head.writeUInt32BE(body.byteLength, HEAD_BYTES + subject.length);
    this.#parts.push(head, body);
    this.#bytes += size;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.#parts.length === 1) return;
    const batch = Buffer.concat(this.#parts, this.#bytes);
    this.#parts = [Uint8Array.of(FORMAT)];
    this.#bytes = 1;
    this.send(batch);
  }
}
