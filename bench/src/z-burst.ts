/**
 * The legacy `z` burst (docs/PROTOCOL.md, L4): one legacy connection sends, in one write,
 * messages whose payload is tag `z` and the zlib of `--max-data` zero bytes (about 10 KB
 * on the wire, 10 MiB once inflated), while an honest native subscriber reads everything
 * and a well-behaved client pings. Shared by the attack script and the `edges` bench.
 */
import { connect } from 'node:net';
import { deflateSync } from 'node:zlib';
import { DEFAULT_MAX_DATA_BYTES, FrameKind, LEGACY_WELCOME, LegacyEncoder, LegacyKind, now } from '@gossip/protocol';
import { RawClient } from '@gossip/testing';
import { Pinger, type PingStats } from './pinger.js';

export interface ZBurstOptions {
  /** Messages in the burst [40]. */
  messages?: number;
  /** Bytes each payload inflates to: gossipd's `--max-data` [10 MiB]. */
  inflatedBytes?: number;
  /** Gives up waiting for the subscriber after this long from the burst [20 s]. */
  timeoutMs?: number;
}

export interface ZBurstResult {
  /** The pinger from the burst's write until a second after the subscriber had everything, was dropped or gave up. */
  ping: PingStats;
  messages: number;
  /** Burst messages the honest subscriber received. */
  received: number;
  /** How the honest subscriber was dropped (an error frame or a close), if it was. */
  dropped: string | undefined;
  /** How the legacy connection ended, if it did (its L6 error line when there was one). */
  legacyEnd: string | undefined;
  /** Bytes of the one write. */
  burstBytes: number;
  /** From the write until the subscriber had every message, was dropped, or the timeout. */
  ms: number;
}

const ID_PREFIX = 'zburst/';
const SETTLE_MS = 1000;

export async function legacyZBurst(port: number, options: ZBurstOptions = {}): Promise<ZBurstResult> {
  const messages = options.messages ?? 40;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const payload = Buffer.concat([
    Buffer.of(0x7a), // tag z
    deflateSync(Buffer.alloc(options.inflatedBytes ?? DEFAULT_MAX_DATA_BYTES), { level: 9 }),
  ]);

  const honest = await RawClient.dial(port, {
    hello: { since: null },
    until: 'replay-done',
    keep: false,
    timeoutMs: 5000,
  });
  let received = 0;
  let allIn: () => void = () => undefined;
  const all = new Promise<void>((r) => {
    allIn = r;
  });
  honest.onFrame = (f) => {
    if (f.kind === FrameKind.Message && f.id.startsWith(ID_PREFIX) && ++received === messages) allIn();
  };
  const pinger = await Pinger.start(port);
  const legacy = connect(port, '127.0.0.1');
  legacy.setNoDelay(true);
  try {
    // The handshake, then the server's `GOSSIP\n` and `D` (nothing to replay from now: L1, L3).
    let head = Buffer.alloc(0);
    let tail = '';
    let legacyEnd: string | undefined;
    const greeted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('legacy handshake: no answer within 5 s')), 5000);
      legacy.on('data', (c: Buffer) => {
        if (head.length <= LEGACY_WELCOME.length) {
          head = Buffer.concat([head, c]);
          if (head.length > LEGACY_WELCOME.length) {
            clearTimeout(timer);
            resolve();
          }
        }
        // an L6 error line ends the stream: keep the end of it in text
        tail = (tail + c.toString('latin1')).slice(-512);
      });
      legacy.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`legacy handshake: closed (${tail.trim() || 'no line'})`));
      });
    });
    legacy.on('error', () => undefined); // reported by the close
    legacy.on('close', () => {
      const line = /error: (GOSSIP_ERR_\w+)/.exec(tail);
      legacyEnd = line ? `error line ${line[1]}` : 'closed, no error line';
    });
    legacy.write(new LegacyEncoder().hello(now()).take());
    await greeted;

    const enc = new LegacyEncoder({ slabBytes: messages * (payload.length + 64) });
    for (let i = 0; i < messages; i++) enc.frame(LegacyKind.Persisted, `${ID_PREFIX}${i}`, now(), payload);
    const burst = enc.take();
    const t0 = performance.now();
    legacy.write(burst);
    const timer = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([all, honest.waitEnd(timeoutMs), timer]);
    const ms = performance.now() - t0;
    // A stall can outlast the subscriber's drop: pings keep counting for a second more.
    await new Promise<void>((r) => setTimeout(r, SETTLE_MS));
    return {
      ping: pinger.stats(t0),
      messages,
      received,
      dropped: honest.ended || honest.errorCode ? honest.describeEnd() : undefined,
      legacyEnd,
      burstBytes: burst.length,
      ms,
    };
  } finally {
    legacy.destroy();
    pinger.stop();
    honest.close();
  }
}
