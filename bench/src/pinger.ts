/**
 * A well-behaved client that pings every few milliseconds and records each round trip:
 * its pongs show how long other clients stalled the server. A lean RawClient of
 * @gossip/testing, as @gossip/client exposes no ping.
 */
import { FrameKind } from '@gossip/protocol';
import { RawClient } from '@gossip/testing';
import { percentile } from './measure.js';

export interface PingStats {
  /** Pings sent in the window. */
  pings: number;
  /** The largest round trip in ms, counting an unanswered ping as its age at the end of the window (or the close). */
  max: number;
  p99: number;
  /** Pings of the window still unanswered at its end. */
  unanswered: number;
  /** The longest time in the window with no pong arriving, in ms. */
  stall: number;
  /** How the pinger's connection ended, if it did. */
  dropped: string | undefined;
}

export class Pinger {
  readonly conn: RawClient;
  /** Per nonce: when it was sent and, once answered, when the pong arrived. */
  readonly #sent: { at: number; back: number | undefined }[] = [];
  #timer: NodeJS.Timeout | undefined;

  private constructor(conn: RawClient) {
    this.conn = conn;
  }

  static async start(port: number, everyMs = 10): Promise<Pinger> {
    const conn = await RawClient.dial(port, {
      hello: { since: null },
      until: 'replay-done',
      keep: false,
      timeoutMs: 5000,
    });
    const p = new Pinger(conn);
    conn.onFrame = (f) => {
      if (f.kind === FrameKind.Pong) {
        const s = p.#sent[f.nonce];
        if (s && s.back === undefined) s.back = performance.now();
      }
    };
    p.#timer = setInterval(() => {
      if (conn.ended) return;
      p.#sent.push({ at: performance.now(), back: undefined });
      conn.enc.ping(p.#sent.length - 1);
      conn.flush();
    }, everyMs);
    return p;
  }

  /** Round trips of the pings sent from `from` (a `performance.now()`) to `to`. */
  stats(from: number, to = performance.now()): PingStats {
    // a ping unanswered when the connection closed was lost with it, not stalled after it
    to = Math.min(to, this.conn.ended?.at ?? to);
    const rtts: number[] = [];
    const arrivals: number[] = [];
    let unanswered = 0;
    for (const s of this.#sent) {
      if (s.at < from || s.at > to) continue;
      if (s.back === undefined || s.back > to) {
        unanswered++;
        rtts.push(to - s.at);
      } else {
        rtts.push(s.back - s.at);
        arrivals.push(s.back);
      }
    }
    rtts.sort((a, b) => a - b);
    arrivals.sort((a, b) => a - b);
    let stall = 0;
    let prev = from;
    for (const a of arrivals) {
      stall = Math.max(stall, a - prev);
      prev = a;
    }
    if (unanswered > 0) stall = Math.max(stall, to - prev);
    return {
      pings: rtts.length,
      max: rtts.length > 0 ? (rtts[rtts.length - 1] as number) : 0,
      p99: rtts.length > 0 ? percentile(rtts, 0.99) : 0,
      unanswered,
      stall,
      dropped: this.conn.describeEnd(),
    };
  }

  stop(): void {
    clearInterval(this.#timer);
    this.conn.close();
  }
}

/** "max 12.3 ms, p99 4.5 ms, stall 20.1 ms" and what went wrong. */
export function describePings(s: PingStats): string {
  let out = `ping max ${s.max.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, longest stall ${s.stall.toFixed(1)} ms (${s.pings} pings)`;
  if (s.unanswered > 0) out += `, ${s.unanswered} unanswered`;
  if (s.dropped) out += `, pinger dropped: ${s.dropped}`;
  return out;
}
