/**
 * The W1 floor: a Node server that speaks gossip's handshake and acks each publish at once,
 * with no store, no index and no fan-out; its output is corked per turn of the event loop,
 * as gossipd's is. Driven by @gossip/client beside gossipd, it shows how fast the SDK's
 * publishes can be acknowledged by any server on this machine: what no gossipd can exceed.
 * Listens on the loopback port its one argument names; stops at SIGTERM.
 */
import { createServer } from 'node:net';
import { AckStatus, Durability, FrameDecoder, FrameEncoder, FrameKind, MIN_TS, newEpoch } from '@gossip/protocol';

const MAX_FRAME_BYTES = 1 << 21;
const epoch = newEpoch();

const server = createServer((socket) => {
  socket.setNoDelay(true);
  const enc = new FrameEncoder();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (enc.pendingBytes > 0 && !socket.destroyed) socket.write(enc.take());
  };
  const decoder = new FrameDecoder(
    (f) => {
      if (f.kind === FrameKind.Hello) {
        enc.welcome({
          epoch,
          newestTs: MIN_TS,
          horizon: null,
          maxIdBytes: 1024,
          maxDataBytes: 1 << 20,
          maxFrameBytes: MAX_FRAME_BYTES,
          server: 'ack-only floor',
        });
        enc.replayDone(0, MIN_TS, false);
      } else if (f.kind === FrameKind.Publish) enc.ack(f.reqId, AckStatus.Accepted, Durability.Written);
      else if (f.kind === FrameKind.Ping) enc.pong(f.nonce, MIN_TS);
      else return;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    { maxFrameBytes: MAX_FRAME_BYTES },
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => socket.destroy());
});

server.listen(Number(process.argv[2]), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
