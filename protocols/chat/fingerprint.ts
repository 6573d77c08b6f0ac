/**
 * The fingerprint: a short, human-comparable digest of an identity key.
 *
 *   fingerprint = base32(SHA-256(raw 32-byte Ed25519 identity key)[0..10])
 *
 * - base32 is RFC 4648 with the lowercase alphabet `abcdefghijklmnopqrstuvwxyz234567`, no padding:
 *   10 bytes = 80 bits = exactly 16 characters;
 * - shown as 4 groups of 4 joined by '-': `abcd-efgh-ijkl-mnop` (19 characters).
 * 80 bits: finding a second key with a given fingerprint costs about 2^80 hashes.
 * `nick#fingerprint` names a user unambiguously.
 */
import { createHash } from 'node:crypto'
import { IDENTITY_KEY_BYTES } from './constants.ts'
import { InvalidKeyError } from './errors.ts'

export const FINGERPRINT_BYTES = 10
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
/** The canonical printed form. */
export const FINGERPRINT_PATTERN = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/

function base32 (bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

/** `abcd-efgh-ijkl-mnop` for a raw 32-byte Ed25519 identity key. Throws InvalidKeyError for other lengths. */
export function fingerprint (identityKey: Uint8Array): string {
  if (!(identityKey instanceof Uint8Array) || identityKey.length !== IDENTITY_KEY_BYTES) {
    throw new InvalidKeyError('identity key must be 32 raw bytes')
  }
  const digest = createHash('sha256').update(identityKey).digest().subarray(0, FINGERPRINT_BYTES)
  const chars = base32(digest)
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}-${chars.slice(12, 16)}`
}

/** True for a fingerprint in the canonical printed form. */
export function isFingerprint (value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT_PATTERN.test(value)
}

/**
 * What a user typed (any case, with or without '-' or spaces) to the canonical form,
 * or undefined if it is not 16 base32 characters.
 */
export function normalizeFingerprint (input: string): string | undefined {
  if (typeof input !== 'string') return undefined
  const chars = input.toLowerCase().replace(/[-\s]/g, '')
  if (!/^[a-z2-7]{16}$/.test(chars)) return undefined
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}-${chars.slice(12, 16)}`
}
