/**
 * Build-time errors of the Sphinx packet format: thrown when a caller asks to build something the
 * format cannot carry (a bad path, an oversized payload, a malformed key or SURB).
 * Bytes from the network never throw; processPacket rejects them with a `DropReason` instead.
 * Tests assert on `name`.
 */

export class InvalidPathError extends Error {
  static readonly code = 'ERR_INVALID_PATH'
  constructor (message = 'a path needs 1..6 hops, each with a 38-byte Ed25519 peer id and a 32-byte X25519 onion key') {
    super(message)
    this.name = 'InvalidPathError'
  }
}

export class PayloadTooLargeError extends Error {
  static readonly code = 'ERR_PAYLOAD_TOO_LARGE'
  constructor (message = 'payload is larger than PAYLOAD_CAPACITY') {
    super(message)
    this.name = 'PayloadTooLargeError'
  }
}

/** A malformed raw key: one class for the project, defined with the raw-key code. */
export { InvalidKeyError } from '../crypto/keys.ts'

export class InvalidIdError extends Error {
  static readonly code = 'ERR_INVALID_ID'
  constructor (message = 'a message id is 16 bytes') {
    super(message)
    this.name = 'InvalidIdError'
  }
}

export class InvalidSurbError extends Error {
  static readonly code = 'ERR_INVALID_SURB'
  constructor (message = 'a SURB is SURB_SIZE bytes: a 38-byte Ed25519 peer id, a version 1 header and a 32-byte key') {
    super(message)
    this.name = 'InvalidSurbError'
  }
}

export class InvalidSurbSecretError extends Error {
  static readonly code = 'ERR_INVALID_SURB_SECRET'
  constructor (message = 'stored SURB secret is malformed') {
    super(message)
    this.name = 'InvalidSurbSecretError'
  }
}

export class RandomSourceError extends Error {
  static readonly code = 'ERR_RANDOM_SOURCE'
  constructor (message = 'the random source returned the wrong number of bytes') {
    super(message)
    this.name = 'RandomSourceError'
  }
}
