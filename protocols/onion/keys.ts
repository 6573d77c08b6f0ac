/**
 * The keyed primitives Sphinx composes (SPEC.md "Primitives"), on raw bytes, and the onion key prepared
 * for processPacket. Nothing here is invented: X25519 (RFC 7748), ChaCha20 (RFC 8439), SHA-256
 * (FIPS 180-4) and HMAC-SHA256 (RFC 2104), each from libsodium (`sodium-native`) or OpenSSL
 * (`node:crypto`), whichever measured faster for the size Sphinx uses (SPEC.md section 13):
 *
 * - X25519: libsodium's crypto_scalarmult on raw 32-byte strings (../crypto/keys.ts).
 * - ChaCha20: libsodium's crypto_stream_chacha20_ietf_xor_ic, 96-bit nonce all zero, block counter 0:
 *   the keystream of OpenSSL's `chacha20` with a zero 16-byte IV (byte-identical, tested), with no
 *   cipher object and no KeyObject per call.
 * - SHA-256: libsodium for short inputs (64 and 96 bytes: no hash object per call); OpenSSL's one-shot
 *   `crypto.hash` for long ones, where OpenSSL's SHA extensions beat libsodium's portable code ~5x.
 * - HMAC-SHA256: the RFC 2104 construction H((K ^ opad) || H((K ^ ipad) || m)) over those SHA-256
 *   calls, checked against node:crypto's createHmac and RFC 4231's vectors in test/sphinx.test.ts.
 *   For the five fixed label keys the pad blocks are absorbed once (`LABEL_STATES`) and every
 *   derivation starts from a copy of the state: two SHA-256 compressions instead of four. node:crypto
 *   would need a KeyObject per key and an Hmac object per call (~5 us each for 32 bytes here).
 *
 * Scratch buffers: the functions below are synchronous and reuse module-level scratch buffers for
 * intermediate values (pads, hash states), so a packet costs no allocation beyond what it returns.
 * Nothing in a scratch buffer outlives the call that wrote it; none is ever handed out.
 */

import { hash, randomBytes } from 'node:crypto'
import { InvalidKeyError, sodium, x25519BaseRaw } from '../crypto/keys.ts'
import { KEY_LENGTH, LABEL_MU, LABEL_PAD, LABEL_PI, LABEL_REPLAY, LABEL_RHO, MAC_LENGTH } from './constants.ts'

/** SHA-256 block size: the HMAC pads are one block. */
const BLOCK = 64
const IPAD = 0x36
const OPAD = 0x5c
/** The largest message hmacSha256 takes (a LIONESS R half is 2575 bytes; a beta and its version byte 401). */
export const MAX_HMAC_MESSAGE = 4096

/** ChaCha20's 96-bit nonce: always zero here, every key encrypts one stream (SPEC.md "Primitives"). */
const ZERO_NONCE = new Uint8Array(12)

const STATE_BYTES = sodium.crypto_hash_sha256_STATEBYTES
const state = new Uint8Array(STATE_BYTES)
const innerDigest = new Uint8Array(MAC_LENGTH)
/** (K ^ ipad) || message, for the inner hash of a long HMAC. */
const innerInput = Buffer.alloc(BLOCK + MAX_HMAC_MESSAGE + 1)
/** (K ^ opad) || inner digest. */
const outerInput = new Uint8Array(BLOCK + MAC_LENGTH)

/** A node's onion key, prepared once for processPacket: the raw X25519 scalar and its public key. */
export interface OnionPrivateKey {
  /** raw 32 bytes (the RFC 7748 scalar, clamped on use) */
  readonly scalar: Uint8Array
  readonly publicKey: Uint8Array
}

/**
 * Prepare a raw 32-byte X25519 private key (as stored in the data directory) for processPacket.
 * Throws InvalidKeyError for anything but 32 bytes.
 */
export function onionPrivateKeyFromRaw (raw: Uint8Array): OnionPrivateKey {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_LENGTH) throw new InvalidKeyError('X25519 private key must be 32 raw bytes')
  const scalar = new Uint8Array(raw)
  return { scalar, publicKey: x25519BaseRaw(scalar) }
}

/** A fresh random 32-byte X25519 scalar. */
export function randomScalar (): Uint8Array {
  return new Uint8Array(randomBytes(KEY_LENGTH))
}

/** The SHA-256 states after absorbing (K ^ ipad) and (K ^ opad): HMAC with key K, minus two compressions per call. */
interface HmacStates { readonly inner: Uint8Array, readonly outer: Uint8Array }

function hmacStates (key: Uint8Array): HmacStates {
  if (key.length > BLOCK) throw new RangeError('precomputed HMAC keys are at most one block')
  const pad = new Uint8Array(BLOCK)
  const inner = new Uint8Array(STATE_BYTES)
  const outer = new Uint8Array(STATE_BYTES)
  pad.fill(IPAD)
  for (let i = 0; i < key.length; i++) pad[i] ^= key[i]
  sodium.crypto_hash_sha256_init(inner)
  sodium.crypto_hash_sha256_update(inner, pad)
  pad.fill(OPAD)
  for (let i = 0; i < key.length; i++) pad[i] ^= key[i]
  sodium.crypto_hash_sha256_init(outer)
  sodium.crypto_hash_sha256_update(outer, pad)
  return { inner, outer }
}

/** SPEC.md "Key derivation": the labels, as HMAC keys whose pad blocks are absorbed once. */
export type Label = typeof LABEL_RHO | typeof LABEL_MU | typeof LABEL_PI | typeof LABEL_REPLAY | typeof LABEL_PAD
const LABEL_STATES: Readonly<Record<Label, HmacStates>> = Object.freeze({
  [LABEL_RHO]: hmacStates(new TextEncoder().encode(LABEL_RHO)),
  [LABEL_MU]: hmacStates(new TextEncoder().encode(LABEL_MU)),
  [LABEL_PI]: hmacStates(new TextEncoder().encode(LABEL_PI)),
  [LABEL_REPLAY]: hmacStates(new TextEncoder().encode(LABEL_REPLAY)),
  [LABEL_PAD]: hmacStates(new TextEncoder().encode(LABEL_PAD))
})

/** key_label = HMAC-SHA256(key = ASCII(label), message = secret), as BOLT #4's generateKey; written into `out`. */
export function deriveKey (label: Label, secret: Uint8Array, out: Uint8Array = new Uint8Array(MAC_LENGTH)): Uint8Array {
  const states = LABEL_STATES[label]
  state.set(states.inner)
  sodium.crypto_hash_sha256_update(state, secret)
  sodium.crypto_hash_sha256_final(state, innerDigest)
  state.set(states.outer)
  sodium.crypto_hash_sha256_update(state, innerDigest)
  sodium.crypto_hash_sha256_final(state, out)
  return out
}

/**
 * HMAC-SHA256(key, message || trailer) into `out`, where `trailer` is one optional byte (the version
 * byte gamma covers) so that callers need not concatenate. `key` is at most 64 bytes (all keys here
 * are 32); `message` at most MAX_HMAC_MESSAGE bytes.
 */
export function hmacSha256 (key: Uint8Array, message: Uint8Array, out: Uint8Array = new Uint8Array(MAC_LENGTH), trailer = -1): Uint8Array {
  if (key.length > BLOCK || message.length > MAX_HMAC_MESSAGE) throw new RangeError('HMAC key or message too long')
  innerInput.fill(IPAD, 0, BLOCK)
  for (let i = 0; i < key.length; i++) innerInput[i] ^= key[i]
  innerInput.set(message, BLOCK)
  let end = BLOCK + message.length
  if (trailer >= 0) innerInput[end++] = trailer
  const inner = hash('sha256', innerInput.subarray(0, end), 'buffer')
  outerInput.fill(OPAD, 0, BLOCK)
  for (let i = 0; i < key.length; i++) outerInput[i] ^= key[i]
  outerInput.set(inner, BLOCK)
  sodium.crypto_hash_sha256(out, outerInput)
  return out
}

/** SHA-256(input) into `out` (libsodium; for the short inputs Sphinx hashes). */
export function sha256 (input: Uint8Array, out: Uint8Array = new Uint8Array(MAC_LENGTH)): Uint8Array {
  sodium.crypto_hash_sha256(out, input)
  return out
}

/**
 * ChaCha20 (RFC 8439 block function, 96-bit nonce all zero, block counter from 0) as a stream cipher:
 * writes input XOR keystream into `out` (same length; may be `input` itself). Each key in this
 * format encrypts one stream only. Returns `out`.
 */
export function chacha20 (key: Uint8Array, input: Uint8Array, out: Uint8Array = new Uint8Array(input.length)): Uint8Array {
  sodium.crypto_stream_chacha20_ietf_xor_ic(out, input, ZERO_NONCE, 0, key)
  return out
}

/** Overwrites secrets held in scratch buffers (libsodium's sodium_memzero: not optimised away). */
export function wipe (...buffers: Uint8Array[]): void {
  for (const b of buffers) sodium.sodium_memzero(b)
}
