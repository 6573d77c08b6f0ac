/**
 * Sizes, version and key-derivation labels of the Sphinx packet.
 * The byte layout they govern is written down in ./SPEC.md; keep both in step.
 */

/** SPEC.md "Packet layout": first byte of every packet. */
export const PACKET_VERSION = 0x01

/** SPEC.md "Sizes": a path has 1..MAX_HOPS hops (up to 5 relays plus the recipient). */
export const MAX_HOPS = 6

/** Binary multihash of a libp2p Ed25519 peer id: `00 24 08 01 12 20` + 32-byte key. */
export const PEER_ID_LENGTH = 38
export const PEER_ID_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20)

/** Raw X25519 public keys, private scalars and shared secrets. */
export const KEY_LENGTH = 32
/** HMAC-SHA256 output. */
export const MAC_LENGTH = 32
/** Message / SURB id carried in the final slot. */
export const ID_LENGTH = 16

/** SPEC.md "Routing slot": type (1) | address field (38) | next MAC (32). */
export const SLOT_TYPE_FORWARD = 0x00
export const SLOT_TYPE_FINAL = 0x01
export const SLOT_TYPE_REPLY = 0x02
export const SLOT_SIZE = 1 + PEER_ID_LENGTH + MAC_LENGTH // 71

/** beta: MAX_HOPS slots. */
export const ROUTING_INFO_LENGTH = MAX_HOPS * SLOT_SIZE // 426

/** Offsets inside a packet. */
export const ALPHA_OFFSET = 1
export const BETA_OFFSET = ALPHA_OFFSET + KEY_LENGTH // 33
export const GAMMA_OFFSET = BETA_OFFSET + ROUTING_INFO_LENGTH // 459
export const HEADER_LENGTH = GAMMA_OFFSET + MAC_LENGTH // 491
export const PAYLOAD_OFFSET = HEADER_LENGTH

/** SPEC.md "Sizes": every packet on the wire has exactly this many bytes. */
export const PACKET_SIZE = 3072
/** The encrypted body that follows the header. */
export const BODY_LENGTH = PACKET_SIZE - HEADER_LENGTH // 2581

/** Sphinx's integrity check: the plaintext body starts with this many zero bytes. */
export const INTEGRITY_LENGTH = 16
/** Big-endian length of the application payload, after the zero bytes. */
export const LENGTH_PREFIX_LENGTH = 2
/** Replay tag returned by processPacket: HMAC-SHA256 output, full length. */
export const REPLAY_TAG_LENGTH = 32

/** Application bytes one packet (forward or reply) carries. */
export const PAYLOAD_CAPACITY = BODY_LENGTH - INTEGRITY_LENGTH - LENGTH_PREFIX_LENGTH // 2563

/** SPEC.md "SURB": first-hop peer id | header | replier's payload key. */
export const SURB_SIZE = PEER_ID_LENGTH + HEADER_LENGTH + KEY_LENGTH // 561

/**
 * SPEC.md "Key derivation": key_label = HMAC-SHA256(key = ASCII label, message = shared secret).
 * Labels follow BOLT #4 (rho, mu, um, pad) with Sphinx-specific additions.
 */
export const LABEL_RHO = 'rho' // ChaCha20 key for the routing information
export const LABEL_MU = 'mu' // HMAC key for gamma
export const LABEL_PI = 'pi' // LIONESS master key for the body, per hop
export const LABEL_REPLAY = 'replay' // replay tag
export const LABEL_PAD = 'pad' // ChaCha20 key for the sender's initial beta fill (keyed by a random seed)
