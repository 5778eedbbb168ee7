import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type Frame, FrameDecoder, FrameEncoder, FrameKind, type HelloOptions } from '@gossip/protocol';

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
