/**
 * Build-time errors of the Sphinx packet format: thrown when a caller asks to build something the
 * format cannot carry (a bad path, an oversized payload, a malformed key or SURB).
 * Bytes from the network never throw; processPacket rejects them with a `DropReason` instead.
 * Tests assert on `name`.
 */

export class InvalidPathError extends Error {
  static readonly code = 'ERR_INVALID_PATH'
  constructor (message = 'a path needs 1..5 hops, each with a 32-byte address and a 32-byte X25519 onion key (the first hop not a client, delays u32)') {
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
  constructor (message = 'a reply block is SURB_SIZE bytes: a 32-byte first-hop address, a version 2 header and a 32-byte key') {
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

/** Bytes that are not a 32-byte address, or a peer id that is not an Ed25519 one (only those have an address). */
export class InvalidAddressError extends Error {
  static readonly code = 'ERR_INVALID_ADDRESS'
  constructor (message = 'an address is the 32-byte Ed25519 public key of a libp2p Ed25519 peer id') {
    super(message)
    this.name = 'InvalidAddressError'
  }
}
