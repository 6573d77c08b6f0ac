/**
 * Sizes, versions and labels of the end-to-end chat payload.
 * The byte layouts they govern are written down in ./FORMAT.md; keep both in step.
 */

/** FORMAT.md "Message": first byte of an encoded (signed, unsealed) message. */
export const MESSAGE_VERSION = 0x01
/** FORMAT.md "Seal": first byte of a sealed message. */
export const SEAL_VERSION = 0x01
/** FORMAT.md "Receipt": first byte of an encoded receipt. */
export const RECEIPT_VERSION = 0x01

/** FORMAT.md "Envelope": the type byte of an onion payload. */
export const ENVELOPE_TYPE_MESSAGE = 0x01
export const ENVELOPE_TYPE_RECEIPT = 0x02

/** Domain separation for the message signature: Ed25519(label || encoded fields). */
export const MESSAGE_SIGNATURE_LABEL = 'p2pchat/msg/v1'
/** Domain separation for the receipt signature: Ed25519(label || message id). */
export const RECEIPT_SIGNATURE_LABEL = 'p2pchat/receipt/v1'
/** HKDF-SHA256 info string of the seal. */
export const SEAL_KDF_LABEL = 'p2pchat/seal/v1'

export const MESSAGE_ID_BYTES = 16
export const IDENTITY_KEY_BYTES = 32
export const ONION_KEY_BYTES = 32
export const ED25519_SEED_BYTES = 32
export const SIGNATURE_BYTES = 64
export const NICK_MIN_LENGTH = 1
export const NICK_MAX_LENGTH = 32
/** Text limit, counted in UTF-8 bytes, not characters. */
export const MAX_TEXT_BYTES = 1024
/** The reply block (SURB) is opaque here; its size is bounded so the sealed message fits the onion payload. */
export const MAX_REPLY_BLOCK = 700

/** X25519 public key of the ephemeral sender key in the seal. */
export const SEAL_EPHEMERAL_BYTES = 32
export const SEAL_KEY_BYTES = 32
export const SEAL_NONCE_BYTES = 12
export const SEAL_TAG_BYTES = 16
/** version (1) + ephemeral public key (32) + Poly1305 tag (16) = 49 bytes. */
export const SEALED_OVERHEAD = 1 + SEAL_EPHEMERAL_BYTES + SEAL_TAG_BYTES

/**
 * Encoded message without text and reply block:
 * version 1 + id 16 + nick length 1 + identity key 32 + timestamp 8 + text length 2 + reply length 2 + signature 64,
 * plus the nick itself.
 */
const MESSAGE_FIXED_BYTES = 1 + MESSAGE_ID_BYTES + 1 + IDENTITY_KEY_BYTES + 8 + 2 + 2 + SIGNATURE_BYTES
/** Smallest encoded message (1-char nick, empty text, empty reply block): 127 bytes. */
export const MIN_ENCODED_MESSAGE = MESSAGE_FIXED_BYTES + NICK_MIN_LENGTH
/** Largest encoded message: 1882 bytes. */
export const MAX_ENCODED_MESSAGE = MESSAGE_FIXED_BYTES + NICK_MAX_LENGTH + MAX_TEXT_BYTES + MAX_REPLY_BLOCK
/** Largest sealed message: 1931 bytes. */
export const MAX_SEALED_MESSAGE = MAX_ENCODED_MESSAGE + SEALED_OVERHEAD

/** version 1 + message id 16 + signature 64 = 81 bytes. */
export const RECEIPT_BYTES = 1 + MESSAGE_ID_BYTES + SIGNATURE_BYTES

/** type 1 + body length 2. */
export const ENVELOPE_HEADER_BYTES = 3
/** Largest envelope (a sealed message of the largest message): 1934 bytes. */
export const MAX_ENVELOPE = ENVELOPE_HEADER_BYTES + MAX_SEALED_MESSAGE

/** The onion payload capacity every envelope must fit in (design: fixed-size packets). */
export const ONION_PAYLOAD_CAPACITY = 2300
