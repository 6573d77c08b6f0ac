/**
 * Why bytes were rejected. Short, stable strings: callers count and log them, tests compare them.
 * - `input`: not a Uint8Array
 * - `length`: too short, too long, a length field out of bounds, or trailing bytes
 * - `version`: unknown version byte
 * - `type`: unknown envelope type, or not the type the caller asked for
 * - `nick`: nick is not 1-32 chars of [a-z0-9_-]
 * - `timestamp`: timestamp above 2^53 - 1
 * - `utf8`: text is not valid UTF-8
 * - `text`: text contains NUL
 * - `count`: a receipt's id count is 0 or above 32
 * - `duplicate`: a receipt names one message id twice
 * - `epoch`: the seal names an onion key epoch the recipient has no key for
 * - `key`: the private key given to open with is not usable
 * - `decrypt`: the seal does not authenticate (wrong key, tampered bytes)
 */
export type DecodeReason =
  | 'input'
  | 'length'
  | 'version'
  | 'type'
  | 'nick'
  | 'timestamp'
  | 'utf8'
  | 'text'
  | 'count'
  | 'duplicate'
  | 'epoch'
  | 'key'
  | 'decrypt'

/** Every DecodeReason, for callers that count them (and fuzzers that check no other appears). */
export const DECODE_REASONS: readonly DecodeReason[] = [
  'input', 'length', 'version', 'type', 'nick', 'timestamp', 'utf8', 'text', 'count', 'duplicate', 'epoch', 'key', 'decrypt'
]

export type Failure = { ok: false, reason: DecodeReason }

/** The recipient's onion private key (raw 32-byte X25519 scalar) for an epoch, or undefined when it has none (erased, unknown). */
export type KeyForEpoch = (epoch: number) => Uint8Array | undefined

/** An optional source of randomness (tests and known-answer vectors): returns `n` bytes. Default: node:crypto randomBytes. */
export type RandomSource = (n: number) => Uint8Array
