import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { AckStatus, type Frame, FrameDecoder, FrameEncoder, FrameKind, type HelloOptions, now } from '@gossip/protocol';
import type { Publisher } from './publish.js';

/** A lean frame-level client for benchmarks: no per-message promises. */
export class WireClient {
  readonly socket: Socket;
  readonly enc = new FrameEncoder({ slabBytes: 256 * 1024 });
  onFrame: (f: Frame) => void = () => undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    const dec = new FrameDecoder((f) => this.onFrame(f), { maxFrameBytes: 64 * 1024 * 1024 });
    socket.on('data', (c: Buffer) => dec.push(c));
  }

  /** Connects, says hello and resolves at replay-done. */
  static async connect(port: number, hello: HelloOptions = {}, onFrame?: (f: Frame) => void): Promise<WireClient> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const c = new WireClient(socket);
    const done = new Promise<void>((resolve) => {
      c.onFrame = (f) => {
        onFrame?.(f);
        if (f.kind === FrameKind.ReplayDone) {
          if (onFrame) c.onFrame = onFrame;
          resolve();
        }
      };
    });
    socket.write(c.enc.hello(hello).take());
    await done;
    return c;
  }

  flush(): void {
    if (this.enc.pendingBytes > 0) this.socket.write(this.enc.take());
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A `Publisher` on a new WireClient (echo off): publishes are encoded into its encoder and
 * written every 64 KiB and at `flush`; a refused publish, an error frame or a closed
 * connection is reported to `onError`.
 */
export async function wirePublisher(port: number): Promise<Publisher> {
  const c = await WireClient.connect(port, { since: null, echo: false });
  const ts0 = now();
  let seq = 0;
  const pub: Publisher = {
    send(id, data) {
      seq++;
      c.enc.publish(seq, id, ts0 + BigInt(seq), data);
      if (c.enc.pendingBytes >= 64 * 1024) c.flush();
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
