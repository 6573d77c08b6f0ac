/**
 * Build-time errors: thrown when a caller asks to build, sign or seal something the format cannot carry.
 * Bytes from the network never throw; they are rejected with a `DecodeReason` instead (see ./types.ts).
 * Tests assert on `name`.
 */
import { MAX_NAME_RECORD_BYTES, REPLY_BLOCK_BYTES } from './constants.ts'

export class InvalidNickError extends Error {
  static readonly code = 'ERR_INVALID_NICK'
  constructor (message = 'nick must be 1-32 characters of [a-z0-9_-]') {
    super(message)
    this.name = 'InvalidNickError'
  }
}

export class TextTooLongError extends Error {
  static readonly code = 'ERR_TEXT_TOO_LONG'
  constructor (message = 'text is longer than 1024 UTF-8 bytes') {
    super(message)
    this.name = 'TextTooLongError'
  }
}

export class InvalidTextError extends Error {
  static readonly code = 'ERR_INVALID_TEXT'
  constructor (message = 'text must be well-formed Unicode without NUL') {
    super(message)
    this.name = 'InvalidTextError'
  }
}

/** A reply block that is not 0 or 529 bytes (a Sphinx v2 reply block). */
export class InvalidReplyBlockError extends Error {
  static readonly code = 'ERR_INVALID_REPLY_BLOCK'
  constructor (message = `reply block must be empty or ${REPLY_BLOCK_BYTES} bytes`) {
    super(message)
    this.name = 'InvalidReplyBlockError'
  }
}

/** The sender's name record carried in a message is longer than 784 bytes (MAX_NAME_RECORD_BYTES) or not bytes: a sender omits such a record. */
export class NameRecordTooLargeError extends Error {
  static readonly code = 'ERR_NAME_RECORD_TOO_LARGE'
  constructor (message = `name record is larger than ${MAX_NAME_RECORD_BYTES} bytes`) {
    super(message)
    this.name = 'NameRecordTooLargeError'
  }
}

/** A receipt with no id, more than 32, or one id twice. */
export class InvalidReceiptError extends Error {
  static readonly code = 'ERR_INVALID_RECEIPT'
  constructor (message = 'a receipt names 1 to 32 distinct message ids') {
    super(message)
    this.name = 'InvalidReceiptError'
  }
}

/** An onion key epoch that is not a u32. */
export class InvalidEpochError extends Error {
  static readonly code = 'ERR_INVALID_EPOCH'
  constructor (message = 'onion key epoch must be an integer 0..2^32-1') {
    super(message)
    this.name = 'InvalidEpochError'
  }
}

/** A random source that returned something other than the bytes asked for. */
export class InvalidRandomError extends Error {
  static readonly code = 'ERR_INVALID_RANDOM'
  constructor (message = 'random source must return the number of bytes asked for') {
    super(message)
    this.name = 'InvalidRandomError'
  }
}

export class InvalidMessageIdError extends Error {
  static readonly code = 'ERR_INVALID_MESSAGE_ID'
  constructor (message = 'message id must be 16 bytes') {
    super(message)
    this.name = 'InvalidMessageIdError'
  }
}

export class InvalidTimestampError extends Error {
  static readonly code = 'ERR_INVALID_TIMESTAMP'
  constructor (message = 'timestamp must be a non-negative safe integer (ms since epoch)') {
    super(message)
    this.name = 'InvalidTimestampError'
  }
}

/** A malformed raw key: one class for the project, defined with the raw-key code. */
export { InvalidKeyError } from '../crypto/keys.ts'

/** The signer's public key is not the message's `senderIdentityKey`. */
export class SignerMismatchError extends Error {
  static readonly code = 'ERR_SIGNER_MISMATCH'
  constructor (message = 'signer public key differs from the message sender identity key') {
    super(message)
    this.name = 'SignerMismatchError'
  }
}

/** A signer returned something that is not a 64-byte signature. */
export class InvalidSignatureError extends Error {
  static readonly code = 'ERR_INVALID_SIGNATURE'
  constructor (message = 'signature must be 64 bytes') {
    super(message)
    this.name = 'InvalidSignatureError'
  }
}

/** A sealed envelope larger than a mailbox item (MAX_ITEM) when the caller asked for that bound. */
export class EnvelopeTooLargeError extends Error {
  static readonly code = 'ERR_ENVELOPE_TOO_LARGE'
  constructor (message = 'sealed envelope does not fit the requested size') {
    super(message)
    this.name = 'EnvelopeTooLargeError'
  }
}
