/**
 * Sizes, version, slot commands and key-derivation labels of the Sphinx packet, version 2.
 * The byte layout they govern is written down in ./SPEC.md (and fixed by ../PROTOCOL-V2.md section 3);
 * keep all three in step.
 */

/** SPEC.md "Packet layout": first byte of every packet. Version 2: 80-byte slots with commands and extensions. */
export const PACKET_VERSION = 0x02

/** SPEC.md "Sizes": a path has 1..MAX_HOPS Sphinx hops (PROTOCOL-V2.md: the longest normal path is a reply block's 4). */
export const MAX_HOPS = 5

/** An address: the raw 32-byte Ed25519 public key of a transport peer id (PROTOCOL-V2.md section 1). */
export const ADDRESS_LENGTH = 32
/** A libp2p Ed25519 peer id as a binary multihash: `00 24 08 01 12 20` (identity, 36 bytes, protobuf key type 1 length 32) + key. */
export const PEER_ID_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20)
export const PEER_ID_LENGTH = PEER_ID_PREFIX.length + ADDRESS_LENGTH // 38

/** Raw X25519 public keys, private scalars and shared secrets. */
export const KEY_LENGTH = 32
/** HMAC-SHA256 output. */
export const MAC_LENGTH = 32
/** Message / reply-block id carried in a final slot. */
export const ID_LENGTH = 16

/** SPEC.md "Routing slot": command (1) | address or id (32) | extensions (15) | next gamma (32). */
export const COMMAND_RELAY = 0x00
export const COMMAND_CLIENT = 0x01
export const COMMAND_SERVICE = 0x02
export const COMMAND_REPLY = 0x03
/** Where a slot's fields start, and the slot size. */
export const SLOT_ADDRESS = 1
export const EXTENSIONS_LENGTH = 15
export const SLOT_EXTENSIONS = SLOT_ADDRESS + ADDRESS_LENGTH // 33
export const SLOT_GAMMA = SLOT_EXTENSIONS + EXTENSIONS_LENGTH // 48
export const SLOT_SIZE = SLOT_GAMMA + MAC_LENGTH // 80

/** SPEC.md "Extensions": type 0x01, a u32 (big-endian) of milliseconds the hop holds the packet before forwarding. */
export const EXTENSION_DELAY = 0x01
export const DELAY_LENGTH = 4
/** Largest delay a slot can carry (u32). */
export const MAX_DELAY_MS = 0xffff_ffff
/** Extension types from here on are optional: a hop that does not know one skips it; below it, drops the packet. */
export const EXTENSION_OPTIONAL_FROM = 0x80

/** beta: MAX_HOPS slots. */
export const ROUTING_INFO_LENGTH = MAX_HOPS * SLOT_SIZE // 400

/** Offsets inside a packet. */
export const ALPHA_OFFSET = 1
export const BETA_OFFSET = ALPHA_OFFSET + KEY_LENGTH // 33
export const GAMMA_OFFSET = BETA_OFFSET + ROUTING_INFO_LENGTH // 433
export const HEADER_LENGTH = GAMMA_OFFSET + MAC_LENGTH // 465
export const PAYLOAD_OFFSET = HEADER_LENGTH

/** SPEC.md "Sizes": every packet on the wire has exactly this many bytes (PROTOCOL-V2.md section 7 spends them). */
export const PACKET_SIZE = 3072
/** The encrypted body that follows the header. */
export const BODY_LENGTH = PACKET_SIZE - HEADER_LENGTH // 2607

/** Sphinx's integrity check: the plaintext body starts with this many zero bytes. */
export const INTEGRITY_LENGTH = 16
/** Big-endian length of the application payload, after the zero bytes. */
export const LENGTH_PREFIX_LENGTH = 2
/** Replay tag returned by processPacket: HMAC-SHA256 output, full length. */
export const REPLAY_TAG_LENGTH = 32

/** Application bytes one packet (forward or reply) carries. */
export const PAYLOAD_CAPACITY = BODY_LENGTH - INTEGRITY_LENGTH - LENGTH_PREFIX_LENGTH // 2589

/** SPEC.md "Reply blocks": first-hop address | header | replier's payload key. */
export const SURB_SIZE = ADDRESS_LENGTH + HEADER_LENGTH + KEY_LENGTH // 529

/**
 * SPEC.md "Key derivation": key_label = HMAC-SHA256(key = ASCII label, message = shared secret).
 * Labels follow BOLT #4 (rho, mu, pad) with Sphinx-specific additions; unchanged from version 1.
 */
export const LABEL_RHO = 'rho' // ChaCha20 key for the routing information
export const LABEL_MU = 'mu' // HMAC key for gamma
export const LABEL_PI = 'pi' // LIONESS master key for the body, per hop
export const LABEL_REPLAY = 'replay' // replay tag
export const LABEL_PAD = 'pad' // ChaCha20 key for the sender's initial beta fill (keyed by a random seed)
