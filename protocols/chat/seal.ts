/**
 * The seal, version 2 (FORMAT.md "Seal"): public-key authenticated encryption to one of the recipient's
 * rotating X25519 onion keys, in the spirit of HPKE base mode (RFC 9180), built from standard primitives:
 * X25519 from libsodium (sodium-native's crypto_scalarmult on raw bytes: a node:crypto X25519 needs its
 * raw keys imported as KeyObjects first, which cost more than the X25519 itself; bench/sphinx.ts rows
 * "seal"/"unseal": ~145 -> ~105 us a seal on this machine), ChaCha20-Poly1305 from libsodium too
 * (crypto_aead_chacha20poly1305_ietf: ~2 us against ~25 us for node:crypto's cipher objects on a message,
 * the same bytes), HKDF from node:crypto:
 *
 *   (e, E)      = X25519 key pair, e = 32 random bytes        E: 32 bytes (RFC 7748)
 *   dh          = X25519(e, R)                               R: the recipient's onion public key of `epoch`;
 *                                                            an all-zero dh is refused
 *   okm         = HKDF-SHA256(ikm = dh, salt = E || R, info = "p2pchat/seal/v2" || epoch u32, L = 44)
 *   key, nonce  = okm[0..32], okm[32..44]
 *   header      = version(0x02) || epoch u32 || E            37 bytes, in the clear
 *   ct, tag     = ChaCha20-Poly1305(key, nonce, aad = header, plaintext)   (RFC 8439)
 *   sealed      = header || ct || tag                        overhead 53 bytes
 *
 * The epoch names which of the recipient's onion keys (PROTOCOL-V2.md section 1) opens it; it is bound
 * into both the key derivation and the AAD, so a seal relabelled with another epoch does not open under
 * any key. E and R in the salt bind the key to both public keys (as HPKE's kem_context does), so a changed
 * byte of E, even a bit X25519 ignores, yields another key. Each key seals one plaintext only, so the
 * derived nonce never repeats under a key. E is also the seal's identity: a recipient drops a second
 * delivery of the same sealed payload by E (`sealEphemeralKey` reads it without opening; record it only
 * after the seal opened, so nobody can block a genuine seal by sending garbage under its E first).
 * The sender is anonymous at this layer: who wrote the plaintext is proven by the signature inside it.
 */
import { hkdfSync, randomBytes } from 'node:crypto'
import {
  MAX_EPOCH,
  MAX_SEALED,
  SEAL_EPHEMERAL_BYTES,
  SEAL_HEADER_BYTES,
  SEAL_KDF_LABEL,
  SEAL_KEY_BYTES,
  SEAL_NONCE_BYTES,
  SEAL_TAG_BYTES,
  SEAL_VERSION,
  SEALED_OVERHEAD
} from './constants.ts'
import { Reader, Writer, concat, isBytes, utf8Encode } from './bytes.ts'
import { InvalidEpochError, InvalidKeyError, InvalidRandomError } from './errors.ts'
import { sodium, x25519BaseRaw, x25519Raw } from '../crypto/keys.ts'
import type { Failure, KeyForEpoch, RandomSource } from './types.ts'

const LABEL_BYTES = utf8Encode(SEAL_KDF_LABEL)
/** Bytes of the ephemeral private scalar drawn from the random source. */
const EPHEMERAL_SCALAR_BYTES = 32
/** An X25519 key, public or private, on the wire and at rest (RFC 7748). */
const X25519_KEY_BYTES = 32

function isX25519Key (key: unknown): key is Uint8Array {
  return isBytes(key) && key.length === X25519_KEY_BYTES
}

export interface SealOptions {
  /** Source of the ephemeral private scalar (32 bytes, drawn once); default node:crypto randomBytes. */
  random?: RandomSource
}

function isEpoch (epoch: unknown): epoch is number {
  return typeof epoch === 'number' && Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH
}

function deriveKeyAndNonce (dh: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array, epoch: number): { key: Uint8Array, nonce: Uint8Array } {
  const info = concat(LABEL_BYTES, new Writer().u32(epoch).finish())
  const okm = new Uint8Array(hkdfSync('sha256', dh, concat(ephemeralPublic, recipientPublic), info, SEAL_KEY_BYTES + SEAL_NONCE_BYTES))
  return { key: okm.subarray(0, SEAL_KEY_BYTES), nonce: okm.subarray(SEAL_KEY_BYTES) }
}

/**
 * Seals `plaintext` to the raw 32-byte X25519 onion public key of `epoch`.
 * Throws InvalidKeyError (unusable or low-order key), InvalidEpochError, InvalidRandomError.
 */
export function seal (plaintext: Uint8Array, recipientPublic: Uint8Array, epoch: number, options: SealOptions = {}): Uint8Array {
  if (!isEpoch(epoch)) throw new InvalidEpochError()
  if (!isBytes(plaintext)) throw new TypeError('plaintext must be bytes')
  if (!isX25519Key(recipientPublic)) throw new InvalidKeyError('recipient onion key must be 32 raw bytes')
  const scalar = (options.random ?? randomBytes)(EPHEMERAL_SCALAR_BYTES)
  if (!isBytes(scalar) || scalar.length !== EPHEMERAL_SCALAR_BYTES) throw new InvalidRandomError()
  const ephemeralPublic = x25519BaseRaw(scalar)
  let dh: Uint8Array
  try {
    // all zeros (a low-order point) is refused by libsodium, as RFC 7748 section 6.1 allows
    dh = x25519Raw(scalar, recipientPublic)
  } catch {
    throw new InvalidKeyError('recipient onion key is a low-order point')
  }
  const { key, nonce } = deriveKeyAndNonce(dh, ephemeralPublic, recipientPublic, epoch)
  const header = new Writer().u8(SEAL_VERSION).u32(epoch).bytes(ephemeralPublic).finish()
  const sealed = new Uint8Array(SEAL_HEADER_BYTES + plaintext.length + SEAL_TAG_BYTES)
  sealed.set(header, 0)
  // ct || tag, written after the header
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(sealed.subarray(SEAL_HEADER_BYTES), plaintext, header, null, nonce, key)
  return sealed
}

export type SealHeader = { ok: true, epoch: number, ephemeralKey: Uint8Array } | Failure

/**
 * The cleartext header of a seal (epoch and ephemeral key E) without opening it; never throws.
 * Checks only the version and the bounds on length `[SEALED_OVERHEAD, maxLength]`.
 */
export function inspectSeal (sealed: Uint8Array, maxLength = MAX_SEALED): SealHeader {
  if (!isBytes(sealed)) return { ok: false, reason: 'input' }
  if (sealed.length < 1) return { ok: false, reason: 'length' }
  if (sealed[0] !== SEAL_VERSION) return { ok: false, reason: 'version' }
  if (sealed.length < SEALED_OVERHEAD || sealed.length > maxLength) return { ok: false, reason: 'length' }
  const r = new Reader(sealed)
  r.u8()
  const epoch = r.u32()
  const ephemeralKey = r.bytes(SEAL_EPHEMERAL_BYTES)
  if (epoch == null || ephemeralKey == null) return { ok: false, reason: 'length' }
  return { ok: true, epoch, ephemeralKey }
}

/** The seal's ephemeral key E (a copy), the key a recipient drops replays by; undefined for anything that is not a v2 seal. */
export function sealEphemeralKey (sealed: Uint8Array, maxLength = MAX_SEALED): Uint8Array | undefined {
  const header = inspectSeal(sealed, maxLength)
  return header.ok ? header.ephemeralKey : undefined
}

export type Unsealed = { ok: true, plaintext: Uint8Array, epoch: number, ephemeralKey: Uint8Array } | Failure

/**
 * Opens a seal with the recipient's onion private key for the epoch the seal names; never throws.
 * `keyForEpoch` returning undefined gives `epoch`; a key that is not 32 usable bytes gives `key`.
 * `maxLength` bounds the input before any work is done (default: the largest sealed envelope).
 */
export function unseal (sealed: Uint8Array, keyForEpoch: KeyForEpoch, maxLength = MAX_SEALED): Unsealed {
  const header = inspectSeal(sealed, maxLength)
  if (!header.ok) return header
  if (typeof keyForEpoch !== 'function') return { ok: false, reason: 'input' }
  let recipientPrivate: Uint8Array | undefined
  try {
    recipientPrivate = keyForEpoch(header.epoch)
  } catch {
    return { ok: false, reason: 'key' }
  }
  if (recipientPrivate === undefined) return { ok: false, reason: 'epoch' }
  if (!isX25519Key(recipientPrivate)) return { ok: false, reason: 'key' }
  const recipientPublic = x25519BaseRaw(recipientPrivate)
  const { epoch, ephemeralKey } = header
  let dh: Uint8Array
  try {
    dh = x25519Raw(recipientPrivate, ephemeralKey)
  } catch {
    // a low-order ephemeral key: nothing authentic can come of it
    return { ok: false, reason: 'decrypt' }
  }
  const { key, nonce } = deriveKeyAndNonce(dh, ephemeralKey, recipientPublic, epoch)
  const aad = sealed.subarray(0, SEAL_HEADER_BYTES)
  const body = sealed.subarray(SEAL_HEADER_BYTES) // ct || tag
  const plaintext = new Uint8Array(body.length - SEAL_TAG_BYTES)
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plaintext, null, body, aad, nonce, key)
    return { ok: true, plaintext, epoch, ephemeralKey }
  } catch {
    return { ok: false, reason: 'decrypt' }
  }
}
