/**
 * Build-time errors: thrown when a caller asks to build, sign or seal something the format cannot carry.
 * Bytes from the network never throw; they are rejected with a `DecodeReason` instead (see ./types.ts).
 * Tests assert on `name`.
 */

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

export class ReplyBlockTooLargeError extends Error {
  static readonly code = 'ERR_REPLY_BLOCK_TOO_LARGE'
  constructor (message = 'reply block is larger than 700 bytes') {
    super(message)
    this.name = 'ReplyBlockTooLargeError'
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

export class EnvelopeTooLargeError extends Error {
  static readonly code = 'ERR_ENVELOPE_TOO_LARGE'
  constructor (message = 'envelope does not fit the requested size') {
    super(message)
    this.name = 'EnvelopeTooLargeError'
  }
}
