/**
 * LIONESS (Anderson & Biham, "Two Practical and Provably Secure Block Ciphers: BEAR and LION", 1996):
 * a wide-block cipher over the whole packet body, so that changing any bit garbles all of it.
 * Built from ChaCha20 as the stream cipher S and HMAC-SHA256 as the keyed hash H (SPEC.md "LIONESS").
 *
 * The block is split into L (first 32 bytes, the size of a ChaCha20 key and of an HMAC-SHA256 output)
 * and R (the rest). With subkeys K1..K4 (32 bytes each):
 *
 *   encrypt: R ^= S(L ^ K1); L ^= H(K2, R); R ^= S(L ^ K3); L ^= H(K4, R)
 *   decrypt: L ^= H(K4, R); R ^= S(L ^ K3); L ^= H(K2, R); R ^= S(L ^ K1)
 *
 * S(k) is the ChaCha20 keystream under key k with a zero nonce. The subkeys come from a 32-byte master
 * key as the first 128 bytes of ChaCha20(master): K1 | K2 | K3 | K4.
 *
 * Both directions work in place in `out` (a copy of the block is made first when `out` is another
 * buffer) and allocate nothing; the two 32-byte temporaries are module scratch (see ./keys.ts).
 */

import { chacha20, hmacSha256, wipe } from './keys.ts'

export const LIONESS_KEY_LENGTH = 32
/** |L|: a ChaCha20 key and an HMAC-SHA256 output. */
const HALF = 32
/** A block must have a non-empty R. */
export const LIONESS_MIN_BLOCK = HALF + 1

/** The four subkeys K1 | K2 | K3 | K4, expanded once per layer: 128 bytes. */
export type LionessKey = Uint8Array
const SUBKEYS_LENGTH = 4 * HALF
const ZERO_SUBKEYS = new Uint8Array(SUBKEYS_LENGTH)

/** The two temporaries in one buffer: one wipe call per pass. */
const temporaries = new Uint8Array(2 * HALF)
const roundKey = temporaries.subarray(0, HALF)
const mac = temporaries.subarray(HALF)

/** Expand a 32-byte master key into the four subkeys, into `out` when given (128 bytes). */
export function lionessKey (master: Uint8Array, out: LionessKey = new Uint8Array(SUBKEYS_LENGTH)): LionessKey {
  if (master.length !== LIONESS_KEY_LENGTH) throw new RangeError('a LIONESS key is 32 bytes')
  return chacha20(master, ZERO_SUBKEYS, out)
}

function subkey (key: LionessKey, i: number): Uint8Array {
  return key.subarray(i * HALF, (i + 1) * HALF)
}

/** R ^= S(L ^ K_i) */
function streamRound (key: LionessKey, i: number, left: Uint8Array, right: Uint8Array): void {
  for (let j = 0; j < HALF; j++) roundKey[j] = left[j] ^ key[i * HALF + j]
  chacha20(roundKey, right, right)
}

/** L ^= H(K_i, R) */
function hashRound (key: LionessKey, i: number, left: Uint8Array, right: Uint8Array): void {
  hmacSha256(subkey(key, i), right, mac)
  for (let j = 0; j < HALF; j++) left[j] ^= mac[j]
}

function prepare (block: Uint8Array, out: Uint8Array): void {
  if (block.length < LIONESS_MIN_BLOCK || out.length !== block.length) throw new RangeError('LIONESS block of the wrong length')
  if (out !== block) out.set(block)
}

/** Encrypt `block` (length >= LIONESS_MIN_BLOCK) into `out` (same length; may be `block` itself). Returns `out`. */
export function lionessEncrypt (key: LionessKey, block: Uint8Array, out: Uint8Array = new Uint8Array(block.length)): Uint8Array {
  prepare(block, out)
  const left = out.subarray(0, HALF)
  const right = out.subarray(HALF)
  streamRound(key, 0, left, right)
  hashRound(key, 1, left, right)
  streamRound(key, 2, left, right)
  hashRound(key, 3, left, right)
  wipe(temporaries)
  return out
}

/** Decrypt `block` into `out` (same length; may be `block` itself). Returns `out`. */
export function lionessDecrypt (key: LionessKey, block: Uint8Array, out: Uint8Array = new Uint8Array(block.length)): Uint8Array {
  prepare(block, out)
  const left = out.subarray(0, HALF)
  const right = out.subarray(HALF)
  hashRound(key, 3, left, right)
  streamRound(key, 2, left, right)
  hashRound(key, 1, left, right)
  streamRound(key, 0, left, right)
  wipe(temporaries)
  return out
}
