/**
 * Sizes, versions and labels of the end-to-end chat payload, version 2.
 * The byte layouts they govern are written down in ./FORMAT.md; keep both in step.
 */

/** FORMAT.md "Message": first byte of an encoded (signed, unsealed) message. */
export const MESSAGE_VERSION = 0x02
/** FORMAT.md "Seal": first byte of a sealed envelope. */
export const SEAL_VERSION = 0x02
/** FORMAT.md "Receipt": first byte of an encoded receipt. */
export const RECEIPT_VERSION = 0x02

/** FORMAT.md "Envelope": the type byte of the plaintext inside a seal (and of a reply through a reply block). */
export const ENVELOPE_TYPE_MESSAGE = 0x01
export const ENVELOPE_TYPE_RECEIPT = 0x02
/** type (1): the body is the rest of the envelope (the seal or the reply block's payload bounds it). */
export const ENVELOPE_HEADER_BYTES = 1

/** Domain separation for the message signature: Ed25519(label || recipient identity key || fields). */
export const MESSAGE_SIGNATURE_LABEL = 'p2pchat/msg/v2'
/** Domain separation for the receipt signature: Ed25519(label || addressee identity key || version || count || ids). */
export const RECEIPT_SIGNATURE_LABEL = 'p2pchat/receipt/v2'
/** HKDF-SHA256 info of the seal is this label followed by the onion key epoch (u32). */
export const SEAL_KDF_LABEL = 'p2pchat/seal/v2'

export const MESSAGE_ID_BYTES = 16
export const IDENTITY_KEY_BYTES = 32
export const ONION_KEY_BYTES = 32
export const ED25519_SEED_BYTES = 32
export const SIGNATURE_BYTES = 64
export const NICK_MIN_LENGTH = 1
export const NICK_MAX_LENGTH = 32
/** Text limit, counted in UTF-8 bytes, not characters: issue 10 asks for at least 1,000 bytes in every message. */
export const MAX_TEXT_BYTES = 1024
/** A Sphinx v2 reply block (PROTOCOL-V2.md section 3): first hop 32 + header 465 + payload key 32. A message carries 0 or this many. */
export const REPLY_BLOCK_BYTES = 529
/** Largest reply block length a message may carry (for bounds): only 0 and REPLY_BLOCK_BYTES are valid. */
export const MAX_REPLY_BLOCK = REPLY_BLOCK_BYTES

/** X25519 public key of the ephemeral sender key in the seal. */
export const SEAL_EPHEMERAL_BYTES = 32
/** The onion key epoch in the seal header (PROTOCOL-V2.md section 4: onion keys carry an epoch u32). */
export const SEAL_EPOCH_BYTES = 4
/** Largest epoch: a u32. */
export const MAX_EPOCH = 0xffff_ffff
export const SEAL_KEY_BYTES = 32
export const SEAL_NONCE_BYTES = 12
export const SEAL_TAG_BYTES = 16
/** version (1) + epoch (4) + ephemeral public key (32): the authenticated, cleartext part of a seal. */
export const SEAL_HEADER_BYTES = 1 + SEAL_EPOCH_BYTES + SEAL_EPHEMERAL_BYTES
/** version 1 + epoch 4 + ephemeral key 32 + Poly1305 tag 16 = 53 bytes. */
export const SEALED_OVERHEAD = SEAL_HEADER_BYTES + SEAL_TAG_BYTES

/**
 * Encoded message without nick, text, record and reply block: version 1 + id 16 + timestamp 8 + nick length 1 +
 * identity key 32 + text length 2 + record length 2 + reply block length 2 + signature 64 = 128 bytes.
 */
export const MESSAGE_FIXED_BYTES = 1 + MESSAGE_ID_BYTES + 8 + 1 + IDENTITY_KEY_BYTES + 2 + 2 + 2 + SIGNATURE_BYTES
/** Smallest encoded message (1-char nick, empty text, no record, no reply block): 129 bytes. */
export const MIN_ENCODED_MESSAGE = MESSAGE_FIXED_BYTES + NICK_MIN_LENGTH

// ---- The byte budget of one 3072-byte packet (FORMAT.md "Byte budget", PROTOCOL-V2.md section 7) ----

/** PROTOCOL-V2.md section 3: every packet is 3072 bytes. */
export const PACKET_BYTES = 3072
/** version 1 + alpha 32 + beta 5 x 80 + gamma 32. */
export const SPHINX_HEADER_BYTES = 465
/** The Sphinx body's integrity tag and payload length (onion/SPEC.md). */
export const BODY_INTEGRITY_BYTES = 18
/** Service request header with the `stored` reply block: service 1 + block length 2 + block 529. */
export const SERVICE_HEADER_BYTES = 1 + 2 + REPLY_BLOCK_BYTES
/** DEPOSIT: op 1 + mailbox id 32 + item length 2 (mailbox/SPEC.md). */
export const DEPOSIT_HEADER_BYTES = 1 + 32 + 2
/** The largest mailbox item, i.e. sealed envelope, one packet carries: 3072 - 465 - 18 - 532 - 35 = 2022 bytes. */
export const MAX_ITEM = PACKET_BYTES - SPHINX_HEADER_BYTES - BODY_INTEGRITY_BYTES - SERVICE_HEADER_BYTES - DEPOSIT_HEADER_BYTES

// ---- What one message may carry, bounded by that budget ----

/**
 * The sender's signed name record carried on first contact (opaque here): the most that still leaves
 * MAX_TEXT_BYTES of text in one item with the longest nick and no reply block,
 * 2022 - 53 - 1 - 128 - 32 - 1024 = 784 bytes. Every record a client signs today fits: a name with
 * 3 onion keys, 4 mailboxes and a 32-character nick is 591 bytes (protocols/directory/record.ts), which
 * leaves 193 bytes for optional fields (0x80..0xff). A sender whose record is larger omits it (FORMAT.md).
 */
export const MAX_NAME_RECORD_BYTES = MAX_ITEM - SEALED_OVERHEAD - ENVELOPE_HEADER_BYTES - MESSAGE_FIXED_BYTES - NICK_MAX_LENGTH - MAX_TEXT_BYTES
/**
 * Largest encoded message the decoder accepts (32-char nick, 1024 text, 784 record, a 529 reply block):
 * 2497 bytes. Not all of it fits one item: what one item carries is bounded by MAX_ITEM (FORMAT.md "Byte budget").
 */
export const MAX_ENCODED_MESSAGE = MESSAGE_FIXED_BYTES + NICK_MAX_LENGTH + MAX_TEXT_BYTES + MAX_NAME_RECORD_BYTES + MAX_REPLY_BLOCK

/** Most message ids one receipt may carry: a batch that fits any item, 2 + 32 * 16 + 64 = 578 bytes. */
export const MAX_RECEIPT_IDS = 32
/** version 1 + count 1 + signature 64, plus 16 per id. */
export const RECEIPT_FIXED_BYTES = 1 + 1 + SIGNATURE_BYTES
/** A receipt of one id: 82 bytes. */
export const MIN_RECEIPT_BYTES = RECEIPT_FIXED_BYTES + MESSAGE_ID_BYTES
/** A receipt of 32 ids: 578 bytes. */
export const MAX_RECEIPT_BYTES = RECEIPT_FIXED_BYTES + MAX_RECEIPT_IDS * MESSAGE_ID_BYTES

/** Largest envelope: type 1 + the largest message. */
export const MAX_ENVELOPE = ENVELOPE_HEADER_BYTES + MAX_ENCODED_MESSAGE
/** Smallest envelope: type 1 + the smallest receipt. */
export const MIN_ENVELOPE = ENVELOPE_HEADER_BYTES + MIN_RECEIPT_BYTES
/** Bounds on a sealed envelope the opener accepts before any work. */
export const MIN_SEALED = SEALED_OVERHEAD + MIN_ENVELOPE
export const MAX_SEALED = SEALED_OVERHEAD + MAX_ENVELOPE
