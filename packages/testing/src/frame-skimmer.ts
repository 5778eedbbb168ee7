/** Body bytes a `SkimmedFrame` keeps: reqId, status and code of an ack; reqId and flags of a fetch-result. */
const HEAD_BYTES = 8;

/** A frame read without its body: enough to follow fetch-results and spot an error frame. */
export interface SkimmedFrame {
  kind: number;
  /** The frame's length field (kind byte and body, rule F1). */
  length: number;
  /** The first bytes of the body (up to 8), a copy. */
  head: Buffer;
}

/**
 * Reads frame boundaries (rule F1) from a byte stream of any chunking without keeping or
 * copying bodies, so that reading bulk results costs little next to the server measured.
 */
export class FrameSkimmer {
  readonly #onFrame: (f: SkimmedFrame) => void;
  readonly #hdr = Buffer.alloc(4 + 1 + HEAD_BYTES);
  #have = 0;
  #need = 4;
  #len = 0;
  #skip = 0;

  constructor(onFrame: (f: SkimmedFrame) => void) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - p);
        this.#skip -= n;
        p += n;
        continue;
      }
      const n = Math.min(this.#need - this.#have, chunk.length - p);
      chunk.copy(this.#hdr, this.#have, p, p + n);
      this.#have += n;
      p += n;
      if (this.#have < this.#need) return;
      if (this.#need === 4) {
        this.#len = this.#hdr.readUInt32BE(0);
        if (this.#len === 0) throw new Error('a frame of length 0: the stream is not gossip frames');
        this.#need = 4 + Math.min(this.#len, 1 + HEAD_BYTES);
        continue;
      }
      const f = {
        kind: this.#hdr[4] as number,
        length: this.#len,
        head: Buffer.from(this.#hdr.subarray(5, this.#need)),
      };
      this.#skip = 4 + this.#len - this.#need;
      this.#have = 0;
      this.#need = 4;
      this.#onFrame(f);
    }
  }
}
