/** The protocol version this package speaks (rule H2). */
export const PROTOCOL_VERSION = 1;

/** The first bytes of a native hello's body (rule H1): not ASCII, unlike the original `GOSSIP`. */
export const HELLO_MAGIC: Readonly<Uint8Array> = Uint8Array.of(0x89, 0x47, 0x53, 0x50);

/** Ids are 1 to 256 bytes of UTF-8. */
export const MAX_ID_BYTES = 256;

/** Default cap on a message's data: 10 MiB. */
export const DEFAULT_MAX_DATA_BYTES = 10 * 1024 * 1024;

/** Room for a frame's fixed fields and id beyond its data. */
export const FRAME_OVERHEAD_BYTES = 64 * 1024;

/** Default cap on one frame's declared length: max data plus overhead. */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULT_MAX_DATA_BYTES + FRAME_OVERHEAD_BYTES;

/** Ids one fetch frame can name: its count is a u16 (rule Q1). A server may announce a lower cap. */
export const MAX_FETCH_IDS = 65_535;

/** Prefixes one connection may hold by default (rule B1; gossipd `--max-prefixes`). */
export const DEFAULT_MAX_PREFIXES = 64;

/** The longest prefix gossipd accepts, in bytes of UTF-8: as long as the longest id (rule B1). */
export const MAX_PREFIX_BYTES = MAX_ID_BYTES;

/** The longest prefix the wire can carry: its length is a u16 (rules B3–B6). */
export const MAX_PREFIX_FIELD_BYTES = 0xffff;

/** Bytes of a log identity (epoch) on the wire. */
export const EPOCH_BYTES = 16;

/** Cap on the msgpack extension map of a hello or welcome. */
export const MAX_EXTENSION_BYTES = 16 * 1024;

/**
 * The largest hello: its length field at most (rule H1), kind byte and 30 fixed body
 * bytes and the largest extension. A server accepts no larger frame before its welcome.
 */
export const MAX_HELLO_FRAME_BYTES = 1 + 30 + MAX_EXTENSION_BYTES;

/**
 * The largest welcome: its length field at most (rule W1), kind byte and 44 fixed body
 * bytes and the largest extension. A client accepts no larger frame before the welcome.
 */
export const MAX_WELCOME_FRAME_BYTES = 1 + 44 + MAX_EXTENSION_BYTES;

/** Smallest and largest signed 64-bit integers: the domain of `ts`. */
export const MIN_TS = -(2n ** 63n);
export const MAX_TS = 2n ** 63n - 1n;
