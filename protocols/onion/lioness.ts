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
 * S(k) is the ChaCha20 keystream under key k with a zero IV. The subkeys come from a 32-byte master key
 * as the first 128 bytes of ChaCha20(master, zero IV): K1 | K2 | K3 | K4.
 */

import { createSecretKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { chacha20, hmacSha256 } from './keys.ts'

export const LIONESS_KEY_LENGTH = 32
/** |L|: a ChaCha20 key and an HMAC-SHA256 output. */
const HALF = 32
/** A block must have a non-empty R. */
export const LIONESS_MIN_BLOCK = HALF + 1

const ZERO_SUBKEYS = new Uint8Array(4 * HALF)

/** The four subkeys, expanded once per layer. */
export interface LionessKey {
  readonly k1: Uint8Array
  readonly k2: KeyObject
  readonly k3: Uint8Array
  readonly k4: KeyObject
}

export function lionessKey (master: Uint8Array): LionessKey {
  const sub = chacha20(master, ZERO_SUBKEYS)
  return {
    k1: sub.subarray(0, HALF),
    k2: createSecretKey(sub.subarray(HALF, 2 * HALF)),
    k3: sub.subarray(2 * HALF, 3 * HALF),
    k4: createSecretKey(sub.subarray(3 * HALF, 4 * HALF))
  }
}

/** A copy of the first 32 bytes (Buffer#slice would be a view, and the input must not change). */
function copyLeft (block: Uint8Array): Uint8Array {
  const left = new Uint8Array(HALF)
  left.set(block.subarray(0, HALF))
  return left
}

function xor32 (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(HALF)
  for (let i = 0; i < HALF; i++) out[i] = a[i] ^ b[i]
  return out
}

function xorInto (target: Uint8Array, mask: Uint8Array): void {
  for (let i = 0; i < HALF; i++) target[i] ^= mask[i]
}

/**
 * Encrypt `block` (length >= LIONESS_MIN_BLOCK) into `out` (same length; may be `block` itself).
 * Returns `out`.
 */
export function lionessEncrypt (key: LionessKey, block: Uint8Array, out: Uint8Array = new Uint8Array(block.length)): Uint8Array {
  const left = copyLeft(block)
  let right = chacha20(xor32(left, key.k1), block.subarray(HALF))
  xorInto(left, hmacSha256(key.k2, right))
  right = chacha20(xor32(left, key.k3), right)
  xorInto(left, hmacSha256(key.k4, right))
  out.set(left, 0)
  out.set(right, HALF)
  return out
}

/** Decrypt `block` into `out` (same length; may be `block` itself). Returns `out`. */
export function lionessDecrypt (key: LionessKey, block: Uint8Array, out: Uint8Array = new Uint8Array(block.length)): Uint8Array {
  const left = copyLeft(block)
  let right: Uint8Array = block.subarray(HALF)
  xorInto(left, hmacSha256(key.k4, right))
  right = chacha20(xor32(left, key.k3), right)
  xorInto(left, hmacSha256(key.k2, right))
  right = chacha20(xor32(left, key.k1), right)
  out.set(left, 0)
  out.set(right, HALF)
  return out
}
