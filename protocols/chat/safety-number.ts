/**
 * The safety number two users compare out of band to verify each other (`/verify <nick>`), after
 * Signal's numeric fingerprint (libsignal `NumericFingerprintGenerator`, version 2), over our raw
 * 32-byte Ed25519 identity keys:
 *
 *   h_0     = 0x00 0x00 || "p2pchat-safety-number" || K            (version 0, a label, the key)
 *   h_{i+1} = SHA-512(h_i || K)                   for i = 0 .. 5199   (5200 iterations, as Signal)
 *   half(K) = for each 5-byte chunk c_j of h_5200[0..30], j = 0..5:
 *               the big-endian integer of c_j mod 100000, as 5 decimal digits
 *   safety number(A, B) = the two 30-digit halves sorted as strings, concatenated: 60 digits,
 *                         shown as 12 groups of 5
 *
 * Both users compute the same 60 digits (the halves are sorted), so they can read them to each other.
 * Each half carries about 99.6 bits (six 5-digit groups; a 40-bit chunk mod 10^5 is all but uniform);
 * the iterations make a key search for a colliding half 5200 times dearer. Known-answer vectors:
 * test/safety-number.test.ts and protocols/chat/FORMAT.md "Safety number".
 */
import { createHash } from 'node:crypto'
import { IDENTITY_KEY_BYTES } from './constants.ts'
import { InvalidKeyError } from './errors.ts'

/** As Signal: enough to make a search for a colliding half costly, still ~5 ms per key here. */
export const SAFETY_NUMBER_ITERATIONS = 5200
export const SAFETY_NUMBER_LABEL = 'p2pchat-safety-number'
/** 12 groups of 5 digits. */
export const SAFETY_NUMBER_DIGITS = 60

/** The 30-digit half of one identity key. */
export function safetyNumberHalf (identityKey: Uint8Array): string {
  if (!(identityKey instanceof Uint8Array) || identityKey.length !== IDENTITY_KEY_BYTES) throw new InvalidKeyError('identity key must be 32 raw bytes')
  let hash: Buffer = Buffer.concat([Buffer.from([0, 0]), Buffer.from(SAFETY_NUMBER_LABEL, 'ascii'), identityKey])
  for (let i = 0; i < SAFETY_NUMBER_ITERATIONS; i++) hash = createHash('sha512').update(hash).update(identityKey).digest()
  let out = ''
  for (let j = 0; j < 6; j++) out += String(Number(hash.readUIntBE(j * 5, 5) % 100000)).padStart(5, '0')
  return out
}

/** The 60 digits both sides compute, as 12 groups of 5 separated by spaces. */
export function safetyNumber (a: Uint8Array, b: Uint8Array): string {
  const digits = [safetyNumberHalf(a), safetyNumberHalf(b)].sort().join('')
  return digits.match(/\d{5}/g)?.join(' ') ?? ''
}
