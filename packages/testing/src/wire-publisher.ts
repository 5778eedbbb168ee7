import { AckStatus, FrameKind, now } from '@gossip/protocol';
import { RawClient } from './raw-client.js';

/**
 * One connection that publishes durably, pipelined: the shape of the benchmarks' drivers
 * (bench/src/publish.ts `Publisher`), which keep their own window of publishes in flight.
 */
export interface WirePublisher {
  /** Encodes a publish; it is written at `flush` or once `flushBytes` are pending. */
  send(id: string, data: Uint8Array): void;
  /** Hands whatever was batched by `send` to the socket. */
  flush(): void;
  /** Called as the server acknowledges `n` more publishes. */
  onAck: (n: number) => void;
  /** A refused publish, an error frame or a closed connection. */
  onError: (e: Error) => void;
  close(): Promise<void>;
}

export interface WirePublisherOptions {
  /** Writes once this many bytes are encoded, without waiting for `flush` [64 KiB]. */
  flushBytes?: number;
  /** Gives up connecting after this long [never]. */
  timeoutMs?: number;
}

/**
 * A `WirePublisher` on a new lean RawClient (live only, echo off, no frame kept): no
 * promise per publish, so that it costs little next to the server it drives. Each publish
 * has its own reqId and a ts one nanosecond after the one before.
 */
export async function wirePublisher(port: number, options: WirePublisherOptions = {}): Promise<WirePublisher> {
  const flushBytes = options.flushBytes ?? 64 * 1024;
  const c = await RawClient.dial(port, {
    hello: { since: null, echo: false },
    until: 'replay-done',
    keep: false,
    slabBytes: 256 * 1024,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  const ts0 = now();
  let seq = 0;
  const pub: WirePublisher = {
    send(id, data) {
      seq++;
      c.enc.publish(seq, id, ts0 + BigInt(seq), data);
      if (c.enc.pendingBytes >= flushBytes) c.flush();
    },
    flush: () => c.flush(),
    onAck: () => undefined,
    onError: () => undefined,
    close: async () => c.close(),
  };
  c.onFrame = (f) => {
    if (f.kind === FrameKind.Ack) {
      if (f.status === AckStatus.Error) pub.onError(new Error(`publish refused: ${f.code} ${f.message}`));
      else pub.onAck(1);
    } else if (f.kind === FrameKind.Error) pub.onError(new Error(`gossipd sent an error: ${f.code} ${f.message}`));
  };
  c.socket.on('error', (e) => pub.onError(e));
  c.socket.on('close', () => pub.onError(new Error('gossipd closed the connection')));
  return pub;
}
