/**
 * Every error gossip raises is a `GossipError` with a stable `code`. Codes are the
 * contract (scripts and clients switch on them); messages are for people and may change.
 * Codes that cross the wire also have a stable 16-bit number (docs/PROTOCOL.md, rule E1).
 */

/** Stable error codes, with their wire numbers. Never renumber; only append. */
export const ERROR_CODES = {
  GOSSIP_ERR_UNKNOWN: 0,
  GOSSIP_ERR_FRAME_TOO_LARGE: 1,
  GOSSIP_ERR_MALFORMED_FRAME: 2,
  GOSSIP_ERR_UNKNOWN_FRAME: 3,
  GOSSIP_ERR_BAD_MAGIC: 4,
  GOSSIP_ERR_UNSUPPORTED_VERSION: 5,
  GOSSIP_ERR_ID_EMPTY: 6,
  GOSSIP_ERR_ID_TOO_LONG: 7,
  GOSSIP_ERR_ID_NOT_UTF8: 8,
  GOSSIP_ERR_DATA_TOO_LARGE: 9,
  GOSSIP_ERR_TS_AHEAD: 10,
  GOSSIP_ERR_UNAUTHORIZED: 11,
  GOSSIP_ERR_HELLO_TIMEOUT: 12,
  GOSSIP_ERR_IDLE_TIMEOUT: 13,
  GOSSIP_ERR_SLOW_CONSUMER: 14,
  GOSSIP_ERR_TOO_MANY_CONNECTIONS: 15,
  GOSSIP_ERR_UNEXPECTED_FRAME: 16,
  GOSSIP_ERR_SHUTTING_DOWN: 17,
  GOSSIP_ERR_STORE_WRITE: 18,
  GOSSIP_ERR_TOO_MANY_IDS: 19,
  GOSSIP_ERR_INTERNAL: 20,
  GOSSIP_ERR_TS_RESERVED: 21,
  GOSSIP_ERR_TOO_MANY_PREFIXES: 22,
  GOSSIP_ERR_PREFIX_TOO_LONG: 23,
  GOSSIP_ERR_ALREADY_SUBSCRIBED: 24,
  GOSSIP_ERR_NOT_SUBSCRIBED: 25,
  GOSSIP_ERR_CLUSTER_UNAVAILABLE: 26,
  // Local conditions below never cross the wire; they still get numbers so the
  // registry stays one table.
  GOSSIP_ERR_STORE_LOCKED: 100,
  GOSSIP_ERR_STORE_CLOSED: 101,
  GOSSIP_ERR_STORE_CORRUPT: 102,
  GOSSIP_ERR_IO: 103,
  GOSSIP_ERR_TIMEOUT: 104,
  GOSSIP_ERR_QUEUE_FULL: 105,
  GOSSIP_ERR_CONNECTION_CLOSED: 106,
  GOSSIP_ERR_ABORTED: 107,
  GOSSIP_ERR_DECODE: 108,
  GOSSIP_ERR_INVALID_ARGUMENT: 109,
  GOSSIP_ERR_CLIENT_CLOSED: 110,
  GOSSIP_ERR_INSECURE: 111,
  GOSSIP_ERR_CONFIG: 112,
  GOSSIP_ERR_NOT_GOSSIP_SERVER: 113,
  GOSSIP_ERR_PREFIXES_UNSUPPORTED: 114,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const BY_WIRE = new Map<number, ErrorCode>(
  Object.entries(ERROR_CODES).map(([code, wire]) => [wire, code as ErrorCode]),
);

/** The wire number of a code (docs/PROTOCOL.md, rule E1). */
export function wireCode(code: ErrorCode): number {
  return ERROR_CODES[code];
}

/** The code for a wire number; numbers from a newer peer map to `GOSSIP_ERR_UNKNOWN`. */
export function codeFromWire(wire: number): ErrorCode {
  return BY_WIRE.get(wire) ?? 'GOSSIP_ERR_UNKNOWN';
}

export interface GossipErrorOptions {
  cause?: unknown;
}

/** The base of every error gossip raises. Switch on `code`, never on `message`. */
export class GossipError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: GossipErrorOptions) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** A frame declares more bytes than the receiver allows. Fatal to the connection. */
export class FrameTooLargeError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_FRAME_TOO_LARGE', message, options);
  }
}

/** A frame's bytes do not match its kind's layout. Fatal to the connection. */
export class MalformedFrameError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_MALFORMED_FRAME', message, options);
  }
}

/** A frame kind this peer does not know. Fatal to the connection. */
export class UnknownFrameError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_UNKNOWN_FRAME', message, options);
  }
}

/** The hello does not start with the native magic. */
export class BadMagicError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_BAD_MAGIC', message, options);
  }
}

/** The peer speaks a protocol version this side does not. */
export class UnsupportedVersionError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_UNSUPPORTED_VERSION', message, options);
  }
}

/** An id is empty, too long, or not UTF-8. */
export class InvalidIdError extends GossipError {
  // biome-ignore lint/complexity/noUselessConstructor: narrows `code` to the id conditions.
  constructor(
    code: 'GOSSIP_ERR_ID_EMPTY' | 'GOSSIP_ERR_ID_TOO_LONG' | 'GOSSIP_ERR_ID_NOT_UTF8',
    message: string,
    options?: GossipErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** A payload is larger than the configured maximum. */
export class DataTooLargeError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_DATA_TOO_LARGE', message, options);
  }
}

/** A publish's ts is further ahead of the server's clock than the allowed skew. */
export class TsAheadError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_TS_AHEAD', message, options);
  }
}

/** An argument to an API call is out of its domain (a ts that is not a 64-bit integer, say). */
export class InvalidArgumentError extends GossipError {
  constructor(message: string, options?: GossipErrorOptions) {
    super('GOSSIP_ERR_INVALID_ARGUMENT', message, options);
  }
}

/**
 * Builds the error a peer reported: the subclass for its code where there is one,
 * a plain `GossipError` carrying the code otherwise.
 */
export function errorFromCode(code: ErrorCode, message: string): GossipError {
  switch (code) {
    case 'GOSSIP_ERR_FRAME_TOO_LARGE':
      return new FrameTooLargeError(message);
    case 'GOSSIP_ERR_MALFORMED_FRAME':
      return new MalformedFrameError(message);
    case 'GOSSIP_ERR_UNKNOWN_FRAME':
      return new UnknownFrameError(message);
    case 'GOSSIP_ERR_BAD_MAGIC':
      return new BadMagicError(message);
    case 'GOSSIP_ERR_UNSUPPORTED_VERSION':
      return new UnsupportedVersionError(message);
    case 'GOSSIP_ERR_ID_EMPTY':
    case 'GOSSIP_ERR_ID_TOO_LONG':
    case 'GOSSIP_ERR_ID_NOT_UTF8':
      return new InvalidIdError(code, message);
    case 'GOSSIP_ERR_DATA_TOO_LARGE':
      return new DataTooLargeError(message);
    case 'GOSSIP_ERR_TS_AHEAD':
      return new TsAheadError(message);
    case 'GOSSIP_ERR_INVALID_ARGUMENT':
      return new InvalidArgumentError(message);
    default:
      return new GossipError(code, message);
  }
}
