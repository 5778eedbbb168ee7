import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { type Frame, FrameDecoder, FrameEncoder, FrameKind, type HelloFrame, MIN_TS } from '@gossip/protocol';

export interface FaultConn {
  socket: Socket;
  hello: HelloFrame;
  frames: Frame[];
  /** Every byte the client sent, as read. */
  chunks: Buffer[];
  enc: FrameEncoder;
  send(bytes: Buffer): void;
}

/**
 * A scripted server for client tests: it speaks just enough of the protocol, and a
 * test decides what each connection gets (a welcome, garbage, a drop, a resync).
 */
export class FaultServer {
  readonly server: Server;
  readonly conns: FaultConn[] = [];
  epoch = 'ab'.repeat(16);
  /** The welcome's fetch cap (docs/PROTOCOL.md, W1); undefined: not announced. */
  maxFetchIds: number | undefined = undefined;
  /** The welcome's prefix limits (B1); undefined: not announced, a server without prefixes. */
  maxPrefixes: number | undefined = undefined;
  maxPrefixBytes: number | undefined = undefined;
  /**
   * Called on each hello; the default sends welcome and an empty replay-done, or, to a
   * hello that names prefixes, an empty prefix-done for each.
   */
  onHello: (c: FaultConn) => void = (c) => (c.hello.prefixes ? this.welcomePrefixes(c) : this.welcome(c, true));
  /**
   * Called on each frame after the hello; the default acks publishes as accepted,
   * answers pings, acks subscribes with an empty prefix-done and acks unsubscribes.
   */
  onFrame: (c: FaultConn, f: Frame) => void = (c, f) => {
    if (f.kind === FrameKind.Publish) c.send(c.enc.ack(f.reqId, 0, 1).take());
    if (f.kind === FrameKind.Ping) c.send(c.enc.pong(f.nonce, MIN_TS).take());
    if (f.kind === FrameKind.Subscribe) c.send(c.enc.ack(f.reqId, 0, 0).prefixDone(f.prefix, 0, MIN_TS, false).take());
    if (f.kind === FrameKind.Unsubscribe) c.send(c.enc.ack(f.reqId, 0, 0).take());
  };
  #waiters: ((c: FaultConn) => void)[] = [];

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<FaultServer> {
    const fs = new FaultServer(createServer());
    fs.server.on('connection', (socket) => fs.#accept(socket));
    fs.server.listen(0, '127.0.0.1');
    await once(fs.server, 'listening');
    return fs;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resolves with the n-th connection (0-based) once its hello has arrived. */
  connection(n: number): Promise<FaultConn> {
    const c = this.conns[n];
    if (c) return Promise.resolve(c);
    return new Promise((resolve) => {
      const check = (conn: FaultConn) => {
        if (this.conns[n] === conn) resolve(conn);
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  welcome(c: FaultConn, done: boolean, newestTs = MIN_TS): void {
    c.enc.welcome({
      epoch: this.epoch,
      newestTs,
      horizon: null,
      maxIdBytes: 256,
      maxDataBytes: 1024,
      maxFrameBytes: 64 * 1024,
      pingIntervalMs: 0,
      maxFetchIds: this.maxFetchIds,
      maxPrefixes: this.maxPrefixes,
      maxPrefixBytes: this.maxPrefixBytes,
    });
    if (done) c.enc.replayDone(0, newestTs, false);
    c.send(c.enc.take());
  }

  /** A welcome without a replay-done, then what `script` encodes (a replay, a resync, a prefix-done…). */
  welcomeThen(c: FaultConn, script: (enc: FrameEncoder) => FrameEncoder): void {
    this.welcome(c, false);
    c.send(script(c.enc).take());
  }

  /** A welcome, then an empty prefix-done for each prefix the hello named (B5). */
  welcomePrefixes(c: FaultConn, newestTs = MIN_TS): void {
    this.welcome(c, false, newestTs);
    for (const { prefix } of c.hello.prefixes ?? []) c.enc.prefixDone(prefix, 0, newestTs, false);
    c.send(c.enc.take());
  }

  /** Drops every open connection. */
  dropAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise((r) => this.server.close(r));
  }

  #accept(socket: Socket): void {
    let conn: FaultConn | undefined;
    const frames: Frame[] = [];
    const chunks: Buffer[] = [];
    const enc = new FrameEncoder();
    const dec = new FrameDecoder((f) => {
      frames.push(f);
      if (!conn) {
        conn = { socket, hello: f as HelloFrame, frames, chunks, enc, send: (b) => socket.write(b) };
        this.conns.push(conn);
        this.onHello(conn);
        const c = conn;
        for (const w of this.#waiters.splice(0)) w(c);
      } else {
        this.onFrame(conn, f);
      }
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      try {
        dec.push(d);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
  }
}

/** What a scripted server holds back until the test calls `release()`: `gate` resolves then. */
export function latch(): { gate: Promise<void>; release: () => void } {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return { gate, release };
}
