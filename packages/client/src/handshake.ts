import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { FrameKind, GossipError, MAX_WELCOME_FRAME_BYTES } from '@gossip/protocol';
import type { Address } from './address.js';

/** The first bytes a peer sends, kept to name what answered if it is not a gossip server. */
const HEAD_BYTES = 16;

/** Opens the socket of one connection: TCP, or TLS for `gossips://`. */
export function dial(address: Address, tls: ConnectionOptions | undefined): Socket {
  const { host, port } = address;
  const socket = address.tls
    ? tlsConnect({ host, port, servername: isIpLiteral(host) ? undefined : host, ...tls })
    : netConnect({ host, port });
  socket.setNoDelay(true);
  return socket;
}

/**
 * What came before the welcome (F4). Until it, only a welcome or an error frame can
 * come; anything else means the peer is not a gossip server, and the error the client
 * reports says so, naming the first bytes the peer sent, rather than the framing error.
 */
export class HandshakeWatch {
  readonly #address: Address;
  /** The first bytes the peer sent, copied: a view would pin the read buffer. */
  #head = Buffer.alloc(0);

  constructor(address: Address) {
    this.#address = address;
  }

  /** Whether the peer sent anything at all. */
  get heard(): boolean {
    return this.#head.length > 0;
  }

  /** Bytes read before the welcome. */
  seen(chunk: Buffer): void {
    if (this.#head.length < HEAD_BYTES) {
      this.#head = Buffer.concat([this.#head, chunk.subarray(0, HEAD_BYTES - this.#head.length)]);
    }
  }

  /**
   * The error to report for a stream that failed to decode before the welcome: the
   * decoder's own when the first frame is headed as a welcome or an error frame (a gossip
   * server's answer that is malformed keeps its code), else GOSSIP_ERR_NOT_GOSSIP_SERVER.
   */
  failure(cause: GossipError): GossipError {
    return headedAsHandshakeAnswer(this.#head) ? cause : notGossipServer(this.#address, this.#head, cause);
  }
}

/**
 * Whether the first frame the peer sent is headed as a welcome or an error frame of a
 * length that fits before the welcome (F4): a gossip server's answer, even if it then
 * fails to decode.
 */
function headedAsHandshakeAnswer(head: Buffer): boolean {
  if (head.length < 5) return false;
  const length = head.readUInt32BE(0);
  const kind = head[4];
  return length >= 1 && length <= MAX_WELCOME_FRAME_BYTES && (kind === FrameKind.Welcome || kind === FrameKind.Error);
}

/** The peer answered the hello with something that is neither a welcome nor an error frame. */
function notGossipServer({ host, port }: Address, head: Buffer, cause: GossipError): GossipError {
  const answered = head.length > 0 ? ` it answered ${describeBytes(head)},` : '';
  return new GossipError(
    'GOSSIP_ERR_NOT_GOSSIP_SERVER',
    `${host}:${port} is not a gossip server:${answered} not a welcome (docs/PROTOCOL.md, W1); check the address and port`,
    { cause },
  );
}

/** Bytes as quoted text when they are printable ASCII (an HTTP status line, say), else hex. */
function describeBytes(bytes: Buffer): string {
  if (bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0d || b === 0x0a || b === 0x09)) {
    return JSON.stringify(bytes.toString('latin1'));
  }
  return `bytes ${bytes.toString('hex').replace(/(..)(?!$)/g, '$1 ')}`;
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
