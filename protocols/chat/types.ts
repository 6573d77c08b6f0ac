/**
 * Why bytes were rejected. Short, stable strings: callers count and log them, tests compare them.
 * - `input`: not a Uint8Array
 * - `length`: too short, too long, a length field out of bounds, or trailing bytes
 * - `version`: unknown version byte
 * - `type`: unknown envelope type
 * - `padding`: non-zero padding after an envelope body
 * - `nick`: nick is not 1-32 chars of [a-z0-9_-]
 * - `timestamp`: timestamp above 2^53 - 1
 * - `utf8`: text is not valid UTF-8
 * - `text`: text contains NUL
 * - `key`: the private key given to open with is not usable
 * - `decrypt`: the seal does not authenticate (wrong key, tampered bytes)
 */
export type DecodeReason =
  | 'input'
  | 'length'
  | 'version'
  | 'type'
  | 'padding'
  | 'nick'
  | 'timestamp'
  | 'utf8'
  | 'text'
  | 'key'
  | 'decrypt'

export type Failure = { ok: false, reason: DecodeReason }
